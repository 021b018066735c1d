"""REST-originated (outbound) calls in the simulator (protocol doc §1.6, §2.2, §2.7, §6.11).

The pre-answer ``call:status`` messages open the socket and carry no top-level ``call_sid``;
``session:new`` is sent only after the callee answered, never when it is busy, does not
answer or fails. An unacked REST ``session:new`` leaves the answered call idle (no 480).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.sim import Caller, CallResult, DialOutcome, SimOptions
from tests.fakejambonz import wait_until
from tests.simtrace import notes, sent
from tests.wsapp import SyncConnection as ServerConnection
from tests.wsapp import serving_sync

FAST = SimOptions(ack_timeout=0.5, idle_wait=0.3)
CALLEE = "+15550001"
APP_NUMBER = "+16175550199"
TAG = {"orderId": 42, "Customer": {"firstName": "Ann"}}  # customerData stays verbatim (camelCase)
TRYING = ("trying", 100, "Trying")
ANSWERED = ("in-progress", 200, "OK")
COMPLETED = ("completed", 200, "OK")
SAY_HI = [{"verb": "say", "text": "hi"}]


@dataclass
class RawApp:
    """What a bare websockets app saw: every message, and the close code of each socket."""

    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    close_codes: list[int | None] = field(default_factory=list)

    def types(self) -> list[str]:
        return [m["type"] for m in self.seen]


@contextmanager
def raw_app(ack: list[dict[str, Any]] | None, redirect_after: float | None = None) -> Iterator[RawApp]:
    """An app that acks session:new with ``ack`` (``None``: never acks) and verb:hooks empty.

    ``redirect_after``: seconds after session:new at which it sends a redirect command (say "late", hangup).
    """
    app = RawApp("")

    def handler(ws: ServerConnection) -> None:
        due: float | None = None
        try:
            while True:
                wait = None if due is None else max(0.0, due - time.monotonic())
                try:
                    msg = json.loads(ws.recv(wait))
                except TimeoutError:
                    verbs = [{"verb": "say", "text": "late"}, {"verb": "hangup"}]
                    ws.send(json.dumps({"type": "command", "command": "redirect", "data": verbs}))
                    due = None
                    continue
                app.seen.append(msg)
                if msg["type"] == "session:new":
                    if ack is not None:
                        ws.send(json.dumps({"type": "ack", "msgid": msg["msgid"], "data": ack}))
                    if redirect_after is not None:
                        due = time.monotonic() + redirect_after
                elif msg["type"] == "verb:hook":
                    ws.send(json.dumps({"type": "ack", "msgid": msg["msgid"]}))
        except ConnectionClosed:
            pass
        finally:
            app.close_codes.append(ws.close_code)

    with serving_sync(handler, "/out") as url:
        app.url = url
        yield app


def statuses(result: CallResult) -> list[tuple[str, int, str]]:
    """(call_status, sip_status, sip_reason) of every call:status, in order."""
    out = []
    for e in result.messages("sent", "call:status"):
        data = e.payload["data"]
        out.append((data["call_status"], data["sip_status"], data["sip_reason"]))
    return out


class TestAnswered:
    def test_statuses_then_session_new_end_to_end(self, lab: jl.Lab) -> None:
        """trying → ringing → in-progress (no top-level call_sid) → session:new → verbs → completed."""
        sessions: list[jl.Session] = []
        closes: list[jl.SocketClose] = []

        @lab.service("/out").on("session:new")
        def new(session: jl.Session) -> None:
            sessions.append(session)
            session.on("close", closes.append)
            session.say(text="Hello from the app").send()

        caller = Caller(number=CALLEE, hangup_after=10)
        result = sim.call(lab.url + "/out", caller, direction="outbound", tag=TAG, options=FAST)
        msgs = sent(result)
        assert [(m["type"], "call_sid" in m) for m in msgs] == [
            ("call:status", False),
            ("call:status", False),
            ("call:status", False),
            ("session:new", True),
            ("call:status", True),
        ]
        # provisional statuses carry no reason of their own: sip_reason stays "Trying" (call-info.js)
        assert statuses(result) == [TRYING, ("ringing", 180, "Trying"), ANSWERED, COMPLETED]
        assert [m["data"]["call_sid"] for m in msgs] == [result.call_sid] * 5
        assert msgs[3]["call_sid"] == result.call_sid
        assert result.heard == [("say", "Hello from the app")]
        assert (result.final_status, result.sip_status, result.termination_by) == ("completed", 200, "caller")
        assert result.duration == 8  # answered after the 2 s ring, the callee hangs up at 10 s
        completed = msgs[4]["data"]
        assert (completed["call_termination_by"], completed["duration"]) == ("caller", 8)
        assert completed["customerData"] == TAG
        wait_until(lambda: closes)
        [session] = sessions
        types = [m.type.value for m in session.messages]
        assert types == ["call:status"] * 3 + ["session:new", "call:status"]  # the early ones were kept
        assert [m.call_sid for m in session.messages] == [None, None, None, result.call_sid, result.call_sid]
        assert [m.data["call_status"] for m in session.messages[:3]] == ["trying", "ringing", "in-progress"]
        assert (session.direction, session.from_, session.to) == ("outbound", APP_NUMBER, CALLEE)
        assert closes[0].code == 1000

    def test_session_new_payload_is_the_tojson_shape(self) -> None:
        """direction outbound, in-progress 200 OK, customerData = tag, defaults; no sip/caller_name."""
        with raw_app(SAY_HI) as app:
            result = sim.call(
                app.url,
                Caller(number=CALLEE, hangup_after=5),
                direction="outbound",
                tag=TAG,
                options=FAST,
                env_vars={"GREETING": "Hi"},
            )
        [new] = [m for m in app.seen if m["type"] == "session:new"]
        data = new["data"]
        assert list(data) == [
            "call_sid",
            "direction",
            "from",
            "to",
            "call_id",
            "sbc_callid",
            "sip_status",
            "sip_reason",
            "call_status",
            "account_sid",
            "trace_id",
            "application_sid",
            "fs_sip_address",
            "customerData",
            "fs_public_ip",
            "defaults",
            "env_vars",
        ]
        assert {k: data[k] for k in ("call_sid", "direction", "from", "to", "call_status")} == {
            "call_sid": result.call_sid,
            "direction": "outbound",
            "from": APP_NUMBER,
            "to": CALLEE,
            "call_status": "in-progress",
        }
        assert (data["sip_status"], data["sip_reason"]) == (200, "OK")
        assert data["customerData"] == TAG
        assert data["env_vars"] == {"GREETING": "Hi"}
        voice = "en-US-Standard-C"
        assert data["defaults"] == {
            "synthesizer": {"vendor": "google", "language": "en-US", "voice": voice, "label": None},
            "recognizer": {"vendor": "google", "language": "en-US", "label": None},
        }
        assert result.heard == [("say", "hi")]
        assert app.close_codes == [1000]

    def test_sbc_callid_from_the_first_provisional_on(self) -> None:
        """REST calls carry the SBC's X-CID as sbc_callid from the 18x on, or from the 200 when none
        came (create-call.js ~339, ~346–349); trying has none."""
        for ring in (2.0, 0.0):
            with raw_app(SAY_HI) as app:
                sim.call(
                    app.url,
                    Caller(hangup_after=5, answer=DialOutcome(ring=ring)),
                    direction="outbound",
                    options=FAST,
                )
            status = [m["data"] for m in app.seen if m["type"] == "call:status"]
            assert "sbc_callid" not in status[0]
            cids = {d["sbc_callid"] for d in status[1:]}
            [new] = [m["data"] for m in app.seen if m["type"] == "session:new"]
            assert len(cids) == 1 and new["sbc_callid"] in cids

    def test_early_media_instead_of_ringing(self) -> None:
        """A callee ringing with SDP gives early-media 183 instead of ringing 180."""
        caller = Caller(answer=DialOutcome(ring=3, early_media=True), hangup_after=6)
        with raw_app(SAY_HI) as app:
            result = sim.call(app.url, caller, direction="outbound", options=FAST)
        assert statuses(result) == [TRYING, ("early-media", 183, "Trying"), ANSWERED, COMPLETED]
        assert app.types() == ["call:status"] * 3 + ["session:new", "call:status"]
        assert "customerData" not in app.seen[-1]["data"]  # no tag given
        assert result.duration == 3

    def test_answered_call_is_not_answered_again_by_a_media_verb(self) -> None:
        """A gather after session:new sends no second trying or in-progress."""
        verbs = [{"verb": "gather", "input": ["speech"], "actionHook": "/g", "timeout": 5}]
        caller = Caller.saying("yes", answer=DialOutcome(ring=1), hangup_after=30)
        with raw_app(verbs) as app:
            result = sim.call(app.url, caller, direction="outbound", options=FAST)
        assert result.statuses() == ["trying", "ringing", "in-progress", "completed"]
        [hook] = [m for m in app.seen if m["type"] == "verb:hook"]
        assert hook["call_sid"] == result.call_sid
        assert (hook["data"]["direction"], hook["data"]["speech"]["alternatives"][0]["transcript"]) == (
            "outbound",
            "yes",
        )
        assert "sbc_callid" in hook["data"] and "originating_sip_ip" not in hook["data"]


class TestNotAnswered:
    @pytest.mark.parametrize(
        ("outcome", "final", "sip", "reason"),
        [
            ("busy", "busy", 486, "Busy Here"),
            ("no-answer", "no-answer", 487, "Request Terminated"),
            ("failed", "failed", 503, "Service Unavailable"),
        ],
    )
    def test_failure_ends_the_call_without_session_new(
        self, outcome: Any, final: str, sip: int, reason: str
    ) -> None:
        """Busy / no-answer / failed: the failure status, no session:new, close 1000."""
        caller = Caller(answer=DialOutcome(outcome, ring=4))
        with raw_app(SAY_HI) as app:
            result = sim.call(app.url, caller, direction="outbound", tag=TAG, options=FAST)
        assert app.types() == ["call:status"] * 3
        assert all("call_sid" not in m for m in app.seen)
        assert statuses(result) == [TRYING, ("ringing", 180, "Trying"), (final, sip, reason)]
        assert (result.final_status, result.sip_status, result.termination_by) == (final, sip, "caller")
        assert (result.duration, result.heard, result.trace[-1].t) == (0, [], 4)
        assert app.seen[-1]["data"]["customerData"] == TAG
        assert app.close_codes == [1000]

    @pytest.mark.parametrize(("attrs", "after"), [({}, 60.0), ({"ring_timeout": 20}, 20.0)])
    def test_ring_timeout_cancels_with_487(self, attrs: dict[str, Any], after: float) -> None:
        """A callee who rings past createCall's timeout (default 60 s) is cancelled: no-answer 487."""
        caller = Caller(answer=DialOutcome(ring=90))
        with raw_app(SAY_HI) as app:
            result = sim.call(app.url, caller, direction="outbound", options=FAST, **attrs)
        assert app.types() == ["call:status"] * 3
        assert statuses(result)[-1] == ("no-answer", 487, "Request Terminated")
        assert (result.final_status, result.termination_by) == ("no-answer", "jambonz")
        assert result.trace[-1].t == after
        assert notes(result, "ring-timeout") == [f"no answer within {after:g} s; jambonz cancels"]

    def test_acall_places_an_outbound_call(self) -> None:
        """acall takes direction too (a busy callee here)."""
        with raw_app(SAY_HI) as app:
            caller = Caller(answer=DialOutcome("busy"))
            result = asyncio.run(sim.acall(app.url, caller, direction="outbound", options=FAST))
        assert (result.final_status, result.sip_status) == ("busy", 486)
        assert app.types() == ["call:status"] * 3


class TestUnackedSessionNew:
    def test_call_stays_answered_and_idles_until_the_hangup(self) -> None:
        """No ack to a REST session:new: error logged, no 480 / 1001; idle until hangup_after, completed."""
        t0 = time.monotonic()
        with raw_app(None) as app:
            result = sim.call(app.url, Caller(hangup_after=10), direction="outbound", options=FAST)
        assert time.monotonic() - t0 < 3.0
        assert result.errors == ["session:new not acked in time"]
        assert notes(result, "no-app") == ["session:new not acked; the call stays answered with no app"]
        assert [e.type for e in result.messages("sim")].count("idle") == 1
        assert notes(result, "rejected") == []
        assert result.statuses() == ["trying", "ringing", "in-progress", "completed"]
        assert (result.final_status, result.sip_status, result.termination_by) == ("completed", 200, "caller")
        assert (result.duration, result.heard) == (8, [])
        assert app.types() == ["call:status"] * 3 + ["session:new", "call:status"]
        assert app.close_codes == [1000]

    def test_a_later_redirect_command_drives_the_idle_call(self) -> None:
        """After the ack timeout, a redirect command still gives the call an app."""
        options = SimOptions(ack_timeout=0.5, idle_wait=1.5)
        with raw_app(None, redirect_after=0.8) as app:
            result = sim.call(app.url, Caller(hangup_after=10), direction="outbound", options=options)
        assert result.errors == ["session:new not acked in time"]
        assert result.heard == [("say", "late")]
        assert (result.final_status, result.termination_by) == ("completed", "jambonz")
        assert result.statuses() == ["trying", "ringing", "in-progress", "completed"]
        assert app.close_codes == [1000]


class TestApi:
    def test_load_places_outbound_calls_with_the_tag(self) -> None:
        """load(direction="outbound", tag=...) places REST calls, each carrying the tag."""
        with raw_app(SAY_HI) as app:
            results = sim.load(
                app.url,
                calls=2,
                caller=Caller(hangup_after=5),
                options=FAST,
                progress=False,
                direction="outbound",
                tag={"batch": 1},
            )
        assert [r.statuses() for r in results] == [["trying", "ringing", "in-progress", "completed"]] * 2
        news = [m for m in app.seen if m["type"] == "session:new"]
        assert [m["data"]["customerData"] for m in news] == [{"batch": 1}] * 2

    def test_tag_is_for_outbound_calls_only(self) -> None:
        """An inbound call has no REST tag."""
        with pytest.raises(ValueError, match="only for direction='outbound'"):
            sim.call("ws://127.0.0.1:9/x", tag={"a": 1})
