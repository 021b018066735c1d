"""Dial leg hooks against a real websockets app: dtmfHook, onHoldHook, referHook and adulting.

What the parties do while bridged comes from ``DialOutcome.during`` (``sim.Press``, ``sim.Hold``,
``sim.Refer``); the feature-server lines are in each test's docstring (``lib/tasks/dial.js`` 0.9.8).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pytest import approx
from websockets.exceptions import ConnectionClosed

from jambonz_lab import sim
from jambonz_lab.sim.caller import LegEvent
from tests.wsapp import SyncConnection as ServerConnection
from tests.wsapp import serving_sync

BOB = "+15550001"
RING, TALK = 1.0, 20.0  # the bridge runs from t=1 to t=21


@dataclass
class App:
    """What the app received, per socket path, and how it answers each hook."""

    url: str
    answers: dict[str, Any]
    frames: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def on(self, path: str, kind: str | None = None) -> list[dict[str, Any]]:
        return [m for p, m in self.frames if p == path and kind in (None, m["type"])]

    def hook(self, hook: str) -> list[dict[str, Any]]:
        return [m["data"] for _, m in self.frames if m.get("hook") == hook]


@contextmanager
def app(verbs: list[dict[str, Any]], answers: dict[str, Any] | None = None) -> Iterator[App]:
    """A bare websockets app at ``/app``: acks session:new with ``verbs``, each hook with ``answers[hook]``
    (a hook named ``"/silent"`` or missing from ``answers`` with ``None``: never acked / acked empty)."""
    got = App("", dict(answers or {}))

    def reply(msg: dict[str, Any]) -> dict[str, Any] | None:
        if msg["type"] == "session:new":
            return {"type": "ack", "msgid": msg["msgid"], "data": verbs}
        if msg["type"] == "session:adulting":  # jambonz ignores what this ack says
            return {"type": "ack", "msgid": msg["msgid"], "data": [{"verb": "hangup"}]}
        if msg["type"] in ("verb:hook", "dial:confirm") and msg["hook"] != "/silent":
            ack: dict[str, Any] = {"type": "ack", "msgid": msg["msgid"]}
            if got.answers.get(msg["hook"]) is not None:
                ack["data"] = got.answers[msg["hook"]]
            return ack
        return None

    def handler(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else "?"
        for frame in ws:
            msg = json.loads(frame)
            got.frames.append((path, msg))
            answer = reply(msg)
            if answer is not None:
                try:
                    ws.send(json.dumps(answer))
                except ConnectionClosed:  # a session that does not wait for this ack may be gone
                    pass

    with serving_sync(handler, "/app") as url:
        got.url = url
        yield got


def dial(**extra: Any) -> list[dict[str, Any]]:
    return [
        {"verb": "dial", "actionHook": "/dial-done", "target": [{"type": "phone", "number": BOB}], **extra},
        {"verb": "hangup"},
    ]


def run(url: str, *during: LegEvent, hangup_after: float = 300) -> sim.CallResult:
    outcome = sim.DialOutcome("answer", ring=RING, talk=TALK, during=during)
    return sim.call(url, sim.Caller(dial={BOB: outcome}, hangup_after=hangup_after))


def b_sid(result: sim.CallResult) -> str:
    for e in result.messages("sent", "call:status"):
        if e.payload["data"]["call_sid"] != result.call_sid:
            return str(e.payload["data"]["call_sid"])
    raise AssertionError("no B-leg")


def sent_at(result: sim.CallResult, hook: str) -> list[float]:
    return [e.t for e in result.messages("sent", "verb:hook") if e.payload.get("hook") == hook]


def b_statuses(result: sim.CallResult) -> list[str]:
    return [
        e.payload["data"]["call_status"]
        for e in result.messages("sent", "call:status")
        if e.payload["data"]["call_sid"] != result.call_sid
    ]


class TestDtmfHook:
    def test_callee_keys_reach_the_hook_with_the_b_leg_info_not_awaited(self) -> None:
        """dial.js ~516: ``{dtmf: match, ...sd.callInfo.toJSON()}`` on the parent's socket, with
        ``.catch`` only: an unacked hook does not hold the dial (the actionHook still comes when the
        callee hangs up, not 5 s later)."""
        with app(dial(dtmfHook="/silent", dtmfCapture=["*9"])) as a:
            result = run(a.url, sim.Press("*9", at=2, by="callee"))
        (data,) = a.hook("/silent")
        assert list(data)[0] == "dtmf" and data["dtmf"] == "*9"
        assert data["call_sid"] == b_sid(result) and data["parent_call_sid"] == result.call_sid
        assert data["direction"] == "outbound"
        assert sent_at(result, "/silent") == approx([RING + 2 + 0.3], abs=0.2)
        assert sent_at(result, "/dial-done") == approx([RING + TALK], abs=0.5)

    def test_caller_keys_with_an_array_go_to_the_callers_own_collector(self) -> None:
        """dial.js ~33–36: an array arms both collectors; a parent match carries cs.callInfo (~497–500)."""
        with app(dial(dtmfHook="/dtmf", dtmfCapture=["12"])) as a:
            result = run(a.url, sim.Press("12", at=2, by="caller"), sim.Press("12", at=9, by="callee"))
        sids = [d["call_sid"] for d in a.hook("/dtmf")]
        assert sids == [result.call_sid, b_sid(result)]
        assert "parent_call_sid" not in a.hook("/dtmf")[0]

    def test_object_form_puts_parent_patterns_on_the_callee_and_ignores_the_caller(self) -> None:
        """dial.js ~37–44: ``parentCall`` patterns are pushed onto childKeys, so there is no parent
        collector (no INFO listener on the A-leg, ~922): the caller's 55 is lost, the callee's matches."""
        with app(dial(dtmfHook="/dtmf", dtmfCapture={"parentCall": ["55"]})) as a:
            result = run(a.url, sim.Press("55", at=2, by="caller"), sim.Press("55", at=9, by="callee"))
        assert [(d["dtmf"], d["call_sid"]) for d in a.hook("/dtmf")] == [("55", b_sid(result))]

    def test_a_gap_of_3_s_starts_a_new_group(self) -> None:
        """dtmf-collector.js ~16, ~24–30: a key 3 s or more after the last clears the buffer; a
        match is a pattern the buffer ends with, and the buffer is kept (~38)."""
        with app(dial(dtmfHook="/dtmf", dtmfCapture=["12"])) as a:
            run(
                a.url,
                sim.Press("1", at=1, by="callee"),
                sim.Press("2", at=4, by="callee"),  # 3.0 s later: a new group, "2" alone
                sim.Press("1", at=6, by="callee"),
                sim.Press("2", at=8.9, by="callee"),  # 2.9 s later: "...12"
                sim.Press("A", at=9.5, by="callee"),  # not 0-9#*: no key (dial.js ~508)
            )
        assert [d["dtmf"] for d in a.hook("/dtmf")] == ["12"]

    def test_without_dtmf_hook_nothing_is_sent(self) -> None:
        """dial.js ~115: the collectors exist only with a dtmfHook."""
        with app(dial(dtmfCapture=["1"])) as a:
            run(a.url, sim.Press("1", at=2, by="callee"))
        assert [m["hook"] for m in a.on("/app", "verb:hook")] == ["/dial-done"]


MUSIC = [{"verb": "say", "text": "Please hold"}, {"verb": "play", "url": "https://x/m.mp3", "loop": 10}]


class TestOnHoldHook:
    def test_callee_hold_plays_the_hook_verbs_to_the_caller_until_unhold(self) -> None:
        """dial.js ~1091–1128: silence_stream://500, then an awaited verb:hook of the parent's info
        plus hold_detail {from, to}; its verbs play to the caller. The unhold kills them (~843–845);
        the hook is asked once per hold (``this.isOnHold`` is never set, ~1136)."""
        with app(dial(onHoldHook="/hold"), {"/hold": MUSIC}) as a:
            result = run(a.url, sim.Hold(at=2, seconds=8, by="callee"))
        (data,) = a.hook("/hold")
        assert data["call_sid"] == result.call_sid
        assert set(data["hold_detail"]) == {"from", "to"}
        assert f"sip:{BOB}@" in data["hold_detail"]["from"]
        assert sent_at(result, "/hold") == approx([RING + 2 + 0.5], abs=0.2)
        heard = [h for h in result.heard if h[0].startswith("hold:")]
        assert heard[0] == ("hold:say", "Please hold")
        plays = [h for h in heard if h[0] == "hold:play"]
        assert 1 <= len(plays) < 10  # cut by the unhold, 8 s in
        assert sent_at(result, "/dial-done") == approx([RING + TALK], abs=0.5)

    def test_caller_hold_with_media_released_plays_to_the_callee(self) -> None:
        """dial.js ~1049–1058: a hold from the A-leg after the media was released re-anchors it and
        sets isIncomingLegHold, so the ConfirmCallSession runs on the B-leg (~1119–1120)."""
        with app(dial(onHoldHook="/hold"), {"/hold": MUSIC}) as a:
            result = run(a.url, sim.Hold(at=2, seconds=3, by="caller"))
        assert ("b-leg:say", "Please hold") in result.heard
        assert not [h for h in result.heard if h[0].startswith("hold:")]
        assert a.hook("/hold")[0]["hold_detail"]["from"].startswith(f"<sip:{sim.Caller().number}@")

    def test_caller_hold_with_media_anchored_plays_to_the_caller_itself(self) -> None:
        """dial.js ~1047–1058, ~1119: with anchorMedia the released-media branch is skipped,
        isIncomingLegHold stays false, and the verbs go to cs.ep: the holding caller's own leg."""
        with app(dial(onHoldHook="/hold", anchorMedia=True), {"/hold": MUSIC}) as a:
            result = run(a.url, sim.Hold(at=2, seconds=3, by="caller"))
        assert ("hold:say", "Please hold") in result.heard
        assert not [h for h in result.heard if h[0].startswith("b-leg:")]

    def test_other_verbs_in_the_ack_play_nothing(self) -> None:
        """dial.js ~1109–1113: any verb but play/say/pause throws; nothing plays, nothing is retried."""
        bad = [{"verb": "say", "text": "Please hold"}, {"verb": "gather", "input": ["digits"]}]
        with app(dial(onHoldHook="/hold"), {"/hold": bad}) as a:
            result = run(a.url, sim.Hold(at=2, seconds=8, by="callee"))
        assert len(a.hook("/hold")) == 1
        assert not [h for h in result.heard if h[0].startswith(("hold:", "b-leg:"))]

    def test_without_on_hold_hook_a_hold_sends_nothing(self) -> None:
        """place-outdial.js ~283: the re-INVITE only reaches the dial with onHoldHook (isOnHoldEnabled)."""
        with app(dial()) as a:
            result = run(a.url, sim.Hold(at=2, seconds=8, by="callee"))
        assert [m["hook"] for m in a.on("/app", "verb:hook")] == ["/dial-done"]
        assert b_statuses(result)[-1] == "completed"


TRANSFER = [{"verb": "say", "text": "You are being transferred"}]


class TestReferHook:
    def test_refer_from_the_callee_replaces_the_callers_app(self) -> None:
        """dial.js ~373–418: a REFER on the B-leg (isChild): the hook gets the B-leg's info and
        refer_details (referring = B, referred = A), then 202; the ack's verbs become the *parent's*
        application (``this.redirect``), which kills the dial as replaced: B-leg hung up, actionHook
        sent but its verbs ignored (call-session.js ~2123, dial.js ~249)."""
        answers = {"/refer": TRANSFER, "/dial-done": [{"verb": "say", "text": "never said"}]}
        with app(dial(referHook="/refer"), answers) as a:
            result = run(a.url, sim.Refer("+15559999", at=3, by="callee"))
        (data,) = a.hook("/refer")
        b = b_sid(result)
        assert data["call_sid"] == b and data["parent_call_sid"] == result.call_sid
        details = data["refer_details"]
        assert details["refer_to_user"] == "+15559999"
        assert details["sip_refer_to"].startswith("<sip:+15559999@")
        assert details["referred_by_user"] == BOB
        assert (details["referring_call_sid"], details["referred_call_sid"]) == (b, result.call_sid)
        assert b_statuses(result)[-1] == "completed"
        assert sent_at(result, "/dial-done")[0] < RING + TALK - 5
        assert ("say", "You are being transferred") in result.heard
        assert ("say", "never said") not in result.heard
        assert not result.sessions

    def test_refer_from_the_caller_adults_the_b_leg_on_a_new_socket(self) -> None:
        """call-session.js ~2858–2862 → dial.js handleRefer (isChild false, ~421–435) →
        place-outdial.js doAdulting ~439–502: a new WsRequestor at call_hook + '/adulting';
        ``session:adulting`` first, no call_sid in the envelope (only session:new sets it,
        ws-requestor.js ~86), data = the B-leg's info + parent_call_info; its ack's verbs ignored;
        the hook's verbs run there. The dial ends (ReferComplete) with no BYE to the B-leg; its
        actionHook is awaited and its verbs run on the caller."""
        hello_b = [{"verb": "say", "text": "Hello Bob"}, {"verb": "pause", "length": 2}, {"verb": "hangup"}]
        answers = {"/refer": hello_b, "/dial-done": [{"verb": "say", "text": "Back to you"}]}
        with app(dial(referHook="/refer"), answers) as a:
            result = run(a.url, sim.Refer("+15559999", at=3, by="caller"))
        (data,) = a.hook("/refer")
        b = b_sid(result)
        assert data["call_sid"] == result.call_sid
        d = data["refer_details"]
        assert (d["referring_call_sid"], d["referred_call_sid"]) == (result.call_sid, b)
        adult = [m for p, m in a.frames if p == "/app/adulting"]
        assert adult[0]["type"] == "session:adulting"
        assert "call_sid" not in adult[0] and "hook" not in adult[0]
        assert adult[0]["data"]["call_sid"] == b
        assert adult[0]["data"]["parent_call_sid"] == result.call_sid
        assert adult[0]["data"]["parent_call_info"]["call_sid"] == result.call_sid
        last = adult[-1]
        assert (last["type"], last["data"]["call_sid"], last["data"]["call_status"]) == (
            "call:status",
            b,
            "completed",
        )
        assert "completed" not in b_statuses(result)  # not hung up by the dial, not on the parent socket
        assert a.hook("/dial-done")[0]["dial_call_status"] == "completed"
        assert ("say", "Back to you") in result.heard
        (leg,) = result.sessions
        assert leg.call_sid == b and ("say", "Hello Bob") in leg.heard
        assert ("say", "hangup") not in leg.heard
        assert leg.final_status == "completed"

    def test_without_refer_hook_nothing_is_sent_and_the_bridge_goes_on(self) -> None:
        """dial.js ~449–451: no referHook, 501."""
        with app(dial()) as a:
            result = run(a.url, sim.Refer("+15559999", at=3, by="callee"))
        assert [m["hook"] for m in a.on("/app", "verb:hook")] == ["/dial-done"]
        assert sent_at(result, "/dial-done") == approx([RING + TALK], abs=0.5)

    def test_refer_hook_acked_empty_changes_nothing(self) -> None:
        """dial.js ~441–443: no verbs, no new application; the bridge goes on."""
        with app(dial(referHook="/refer")) as a:
            result = run(a.url, sim.Refer("+15559999", at=3, by="caller"))
        assert len(a.hook("/refer")) == 1
        assert sent_at(result, "/dial-done") == approx([RING + TALK], abs=0.5)
        assert not result.sessions and b_statuses(result)[-1] == "completed"
