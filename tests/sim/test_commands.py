"""Commands that act on the call as a whole: ``dial`` (a new REST call), ``config`` (the config verb
run as a command) and commands while a REST call rings; against lab apps and a raw app on loopback.

Sources (feature-server 0.9.8): ``lib/session/call-session.js`` ``_onCommand`` ~2276–2410,
``_lccCallDial`` ~1521–1535, ``_lccCallStatus`` ~1491–1514, ``_lccCallHook`` ~1589–1651,
``_lccConfig`` ~1854–1876, the command listener from the constructor on ~137;
``lib/http-routes/api/create-call.js``; ``lib/tasks/rest_dial.js`` ~37–67; ``lib/tasks/config.js``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.sim import Caller, CallResult, DialOutcome, SimOptions, Speech
from tests.simtrace import notes, sent, sent_hooks
from tests.wsapp import serving

BOB = "+15550001"
IDLE = SimOptions(ack_timeout=0.5, idle_wait=0.5)  # commands sent while idle arrive in time
RINGING = SimOptions(ack_timeout=0.5, idle_wait=0.3, ring_wait=5.0)  # a command ends the wait at once
CANCELLED = ("no-answer", 487, "Request Terminated")

Reply = Callable[[dict[str, Any]], list[dict[str, Any]]]


def ack(msg: dict[str, Any], data: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "ack", "msgid": msg["msgid"]}
    if data is not None:
        out["data"] = data
    return out


def command(name: str, data: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "command", "command": name, "queueCommand": False, "data": data, **extra}


@contextmanager
def raw_app(reply: Reply) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A jambonz app on a real socket: for each message it gets, it writes the frames ``reply(msg)``
    returns (acks, commands). Yields its URL and every message it got."""
    seen: list[dict[str, Any]] = []

    async def conn(ws: ServerConnection) -> None:
        async for frame in ws:
            msg = json.loads(frame)
            seen.append(msg)
            for out in reply(msg):
                await ws.send(json.dumps(out))

    with serving(conn, "/app") as url:
        yield url, seen


def statuses(result: CallResult) -> list[tuple[str, int, str]]:
    return [
        (m["data"]["call_status"], m["data"]["sip_status"], m["data"]["sip_reason"])
        for m in sent(result, "call:status")
    ]


def on_status(status: str, *frames: dict[str, Any], verbs: list[dict[str, Any]] | None = None) -> Reply:
    """Ack session:new with ``verbs`` (default: answer); on the ``status`` call:status, send ``frames``;
    every other ack empty."""

    def reply(msg: dict[str, Any]) -> list[dict[str, Any]]:
        kind = msg["type"]
        if kind == "session:new":
            return [ack(msg, verbs if verbs is not None else [{"verb": "answer"}])]
        if kind == "call:status":
            return list(frames) if msg["data"]["call_status"] == status else []
        if kind in ("verb:hook", "session:redirect"):
            return [ack(msg, [])]
        return []

    return reply


# -- dial --------------------------------------------------------------------------------


def dial_data(**extra: Any) -> dict[str, Any]:
    return {"call_hook": "/callee", "from": "+15550100", "to": {"type": "phone", "number": BOB}, **extra}


class TestDialCommand:
    def test_dial_places_a_rest_call_on_its_own_socket(self, lab: jl.Lab) -> None:
        """``_lccCallDial`` POSTs the data to createCall (call-session.js ~1521–1527): a new call
        with its own requestor on the call_hook, made absolute on the session's base URL (~1577,
        base-requestor.js ~26); it rings, is answered, then sends session:new there
        (create-call.js ~251–263, rest_dial.js ~113). It is no leg of this call: no
        parent_call_sid, and none of its statuses reach this call's socket."""
        callee: list[jl.Session] = []

        @lab.service("/parent").on("session:new")
        def parent(session: jl.Session) -> None:
            def status(msg: jl.Message) -> None:
                if msg.data["call_status"] == "in-progress":
                    session.inject("dial", dial_data(tag={"job": 7}))

            session.on("call:status", status)
            session.say(text="calling").send()

        @lab.service("/callee").on("session:new")
        def answered(session: jl.Session) -> None:
            callee.append(session)
            session.say(text="hello callee").hangup().send()

        caller = Caller(dial={BOB: DialOutcome("answer", ring=3, talk=30)}, hangup_after=60)
        result = sim.call(lab.url + "/parent", caller, options=IDLE)
        [new] = result.sessions
        assert new.call_sid != result.call_sid
        assert [s[0] for s in statuses(new)] == ["trying", "ringing", "in-progress", "completed"]
        assert new.heard == [("say", "hello callee")]
        [session_new] = sent(new, "session:new")
        data = session_new["data"]
        assert (data["direction"], data["from"], data["to"], data["customerData"]) == (
            "outbound",
            "+15550100",
            BOB,
            {"job": 7},
        )
        assert "parent_call_sid" not in data
        # the parent's socket hears only the parent's own statuses
        assert {m["data"]["call_sid"] for m in sent(result, "call:status")} == {result.call_sid}
        assert notes(result, "dial") == [
            f"dial command: createCall placed {new.call_sid} to {BOB} on {lab.url}/callee"
        ]
        assert len(callee) == 1

    def test_a_busy_callee_gets_no_session_new(self, lab: jl.Lab) -> None:
        """A 486 ends the REST call as busy before any session:new (create-call.js ~366–370)."""

        @lab.service("/parent").on("session:new")
        def parent(session: jl.Session) -> None:
            session.on(
                "call:status",
                lambda msg: (
                    session.inject("dial", dial_data()) if msg.data["call_status"] == "in-progress" else None
                ),
            )
            session.answer().send()

        caller = Caller(dial={BOB: DialOutcome("busy", ring=2)}, hangup_after=60)
        result = sim.call(lab.url + "/parent", caller, options=IDLE)
        [new] = result.sessions
        assert statuses(new)[-1] == ("busy", 486, "Busy Here")
        assert sent(new, "session:new") == []

    @pytest.mark.parametrize(
        ("data", "why"),
        [
            ({"call_hook": "/callee", "to": {"type": "phone", "number": BOB}}, "400 Invalid from"),
            (dial_data(to=BOB), "400 Invalid to"),
            (dial_data(tag="job-7"), "400 Invalid tag"),
            (dial_data(timeout=2.5), "400 Invalid timeout"),
            ({"from": "+15550100", "to": {"type": "phone", "number": BOB}}, "500: no call_hook"),
            ([dial_data()], "400 Invalid from"),  # an array is an object: the POST goes out
        ],
    )
    def test_a_refused_dial_reaches_no_one(self, data: Any, why: str) -> None:
        """createCall refuses it (schemas/create-call.js), but ``_lccCallDial`` does not await the POST
        (``bent(...)(url, opts)`` without ``await``, ~1525), so its catch never runs: no
        ``jambonz:error``, nothing at all reaches the app."""
        with raw_app(on_status("in-progress", command("dial", data))) as (url, _):
            result = sim.call(url, Caller(hangup_after=30), options=IDLE)
        [note] = notes(result, "dial-failed")
        assert note.startswith(f"dial command: createCall answers {why}")
        assert result.sessions == []
        assert sent(result, "jambonz:error") == []
        assert result.statuses() == ["trying", "in-progress", "completed"]

    def test_dial_with_string_data_sends_an_empty_jambonz_error(self) -> None:
        """``transformInputIfRequired`` is awaited and throws on a string (``opts.account_sid = …``,
        ~1541); the catch sends ``_notifyTaskError(err.body)``: a TypeError has no body, and
        ws-requestor spreads it into empty data (ws-requestor.js ~206)."""
        with raw_app(on_status("in-progress", command("dial", "+15550001"))) as (url, _):
            result = sim.call(url, Caller(hangup_after=30), options=IDLE)
        assert [m["data"] for m in sent(result, "jambonz:error")] == [{}]
        assert result.sessions == []


# -- config ------------------------------------------------------------------------------


class TestConfigCommand:
    def test_config_command_runs_the_config_verb(self) -> None:
        """``_lccConfig`` builds the config task and runs its ``exec`` (call-session.js ~1854–1870):
        bargeIn starts the background gather (config.js ~249–258) whose hook verbs replace the
        stack; notifyEvents turns on (~137). The command path sends no verb:status of its own and
        runs beside the stack (~2312, not awaited)."""
        config = {
            "notifyEvents": True,
            "bargeIn": {"enable": True, "input": ["speech"], "actionHook": "/barge"},
        }
        reply = on_status("in-progress", command("config", config))

        def with_barge(msg: dict[str, Any]) -> list[dict[str, Any]]:
            if msg["type"] == "verb:hook" and msg.get("hook") == "/barge":
                return [ack(msg, [{"verb": "say", "text": "ok"}, {"verb": "hangup"}])]
            return reply(msg)

        with raw_app(with_barge) as (url, _):
            caller = Caller(inputs=[Speech("agent please", after=2)], hangup_after=60)
            result = sim.call(url, caller, options=IDLE)
        [(_, data)] = sent_hooks(result, "/barge")
        assert data["speech"]["alternatives"][0]["transcript"] == "agent please"
        assert result.heard == [("say", "ok")]
        tasks = [
            (m["data"]["event"], m["data"]["name"])
            for m in sent(result, "verb:status")
            if "name" in m["data"]
        ]
        assert tasks == [("starting", "say"), ("finished", "say"), ("starting", "hangup")]  # none for config
        assert sent(result, "verb:status")[0]["data"]["event"] == "speech-bargein-detected"
        assert result.termination_by == "jambonz"

    def test_config_command_never_answers(self) -> None:
        """No precondition on the command path: an inbound call not answered yet has no endpoint
        (``task.exec(this, {ep: this.ep})``, ~1869), so bargeIn fails there (logged); notifyEvents
        still applies. Where the config verb answers for bargeIn (config.js ~67–73), the command
        leaves the call unanswered."""
        config = {"notifyEvents": True, "bargeIn": {"enable": True, "actionHook": "/barge"}}
        verbs = [{"verb": "pause", "length": 1}, {"verb": "pause", "length": 1}]
        reply = on_status("trying", command("config", config), verbs=verbs)
        with raw_app(reply) as (url, _):
            caller = Caller(inputs=[Speech("agent please", after=2)], hangup_after=20)
            result = sim.call(url, caller, options=IDLE)
        assert notes(result, "no-endpoint") == ["config command before the answer: no endpoint; bargeIn fail"]
        assert sent_hooks(result, "/barge") == []
        assert "in-progress" not in result.statuses()

    def test_invalid_config_command_changes_nothing(self) -> None:
        """normalizeJambones throws before the task exists (~1856): nothing runs."""
        reply = on_status("in-progress", command("config", {"bargeIn": "yes", "notifyEvents": True}))
        with raw_app(reply) as (url, _):
            result = sim.call(url, Caller(hangup_after=20), options=IDLE)
        assert [n.split(":")[0] for n in notes(result, "error")] == ["config command"]
        assert sent(result, "verb:status") == []


# -- while a REST call rings ---------------------------------------------------------------


def ringing_call(reply: Reply, options: SimOptions = RINGING) -> tuple[CallResult, list[dict[str, Any]]]:
    with raw_app(reply) as (url, seen):
        caller = Caller(number=BOB, answer=DialOutcome("answer", ring=30), hangup_after=120)
        result = sim.call(url, caller, direction="outbound", options=options)
    return result, seen


class TestWhileRinging:
    def test_call_status_no_answer_cancels_the_invite(self) -> None:
        """A REST call's CallSession listens from the INVITE on (call-session.js ~137; create-call.js
        ~296–306): ``no-answer`` with no dialog yet CANCELs the request (~1504–1510), which the
        callee answers 487: the call ends no-answer (create-call.js ~366–375), no session:new."""
        reply = on_status("ringing", command("call:status", {"call_status": "no-answer"}))
        result, seen = ringing_call(reply)
        assert statuses(result) == [("trying", 100, "Trying"), ("ringing", 180, "Trying"), CANCELLED]
        assert (result.final_status, result.sip_status) == ("no-answer", 487)
        assert sent(result, "session:new") == []
        assert notes(result, "command-lost") == []
        assert [m["type"] for m in seen] == ["call:status"] * 3

    def test_redirect_while_ringing_kills_rest_dial(self) -> None:
        """replaceApplication kills the current task, rest:dial, whose kill CANCELs the INVITE while
        it can (rest_dial.js ~56–67, call-session.js ~2114–2125): 487, and the verbs go with the
        early-media endpoint; the callee never hears them."""
        reply = on_status("ringing", command("redirect", [{"verb": "say", "text": "too early"}]))
        result, _ = ringing_call(reply)
        assert statuses(result)[-1] == CANCELLED
        assert result.heard == []
        assert sent(result, "session:new") == []

    def test_redirect_call_hook_while_ringing_asks_then_cancels(self) -> None:
        """``redirect {call_hook}`` sends session:redirect (no top-level call_sid before session:new,
        ws-requestor.js ~86); its verbs replace rest:dial, so the call is cancelled too (~1638)."""
        base = on_status("ringing", command("redirect", {"call_hook": "/other"}))

        def reply(msg: dict[str, Any]) -> list[dict[str, Any]]:
            if msg["type"] == "session:redirect":
                return [ack(msg, [{"verb": "say", "text": "other"}])]
            return base(msg)

        result, seen = ringing_call(reply)
        [redirect] = [m for m in seen if m["type"] == "session:redirect"]
        assert "call_sid" not in redirect
        assert redirect["hook"] == "/other"
        assert redirect["data"]["call_status"] == "ringing"
        assert statuses(result)[-1] == CANCELLED
        assert result.heard == []

    def test_call_status_completed_while_ringing_does_nothing(self) -> None:
        """``completed`` needs the dialog (~1493): while ringing it is a no-op; the callee answers and
        session:new follows."""
        reply = on_status(
            "ringing", command("call:status", {"call_status": "completed"}), verbs=[{"verb": "hangup"}]
        )
        options = SimOptions(ack_timeout=0.5, idle_wait=0.3, ring_wait=0.5)
        result, _ = ringing_call(reply, options)
        assert [s[0] for s in statuses(result)] == ["trying", "ringing", "in-progress", "completed"]
        assert len(sent(result, "session:new")) == 1
        assert notes(result, "no-op") == ["call:status 'completed' has no effect now"]
