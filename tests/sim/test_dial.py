"""The simulator's dial (B-legs, dial:confirm, actionHook), sip:refer and sip:request against lab apps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pytest import approx

import jambonz_lab as jl
from jambonz_lab import sim
from tests.wsapp import SyncConnection as ServerConnection
from tests.wsapp import serving_sync

BOB = "+15550001"
CAROL = "+15550002"
DAVE = "+15550003"
TRYING = ("trying", 100, "Trying")
RINGING = ("ringing", 180, "Ringing")
ANSWERED = ("in-progress", 200, "OK")
COMPLETED = ("completed", 200, "OK")
CANCELLED = ("no-answer", 487, "Request Terminated")


def dial_app(lab: jl.Lab, path: str, **dial: Any) -> list[dict[str, Any]]:
    """An app that dials, then hangs up; returns the dial actionHook payloads it receives."""
    got: list[dict[str, Any]] = []

    @lab.service(path).on("session:new")
    def new(session: jl.Session) -> None:
        session.on("/dial-done", lambda msg: got.append(msg.data))
        session.dial(actionHook="/dial-done", **dial).hangup().send()

    return got


def phone(number: str, **extra: Any) -> dict[str, Any]:
    return {"type": "phone", "number": number, **extra}


def leg_statuses(result: sim.CallResult, sid: str | None = None) -> list[tuple[str, int, str]]:
    """(call_status, sip_status, sip_reason) of the B-leg statuses, in order (all on the parent's socket)."""
    out = []
    for e in result.messages("sent", "call:status"):
        data = e.payload["data"]
        if data["call_sid"] != result.call_sid and sid in (None, data["call_sid"]):
            assert e.payload["call_sid"] == result.call_sid
            assert data["parent_call_sid"] == result.call_sid
            out.append((data["call_status"], data["sip_status"], data["sip_reason"]))
    return out


def all_statuses(result: sim.CallResult) -> list[tuple[str, str]]:
    """("A" or "B", call_status) for every call:status, in order."""
    return [
        ("A" if e.payload["data"]["call_sid"] == result.call_sid else "B", e.payload["data"]["call_status"])
        for e in result.messages("sent", "call:status")
    ]


def hook_data(result: sim.CallResult, hook: str) -> list[dict[str, Any]]:
    return [e.payload["data"] for e in result.messages("sent") if e.payload.get("hook") == hook]


def hook_times(result: sim.CallResult) -> list[float]:
    """When each verb:hook was sent (virtual seconds; real waits on the app add a little)."""
    return [e.t for e in result.messages("sent", "verb:hook")]


def dial_fields(data: dict[str, Any]) -> tuple[Any, ...]:
    return (data["dial_call_status"], data["dial_sip_status"], data["dial_call_sid"])


def b_leg(result: sim.CallResult, status: str = "in-progress") -> dict[str, Any]:
    """The data of the first B-leg status with ``call_status`` = ``status``."""
    for e in result.messages("sent", "call:status"):
        data = e.payload["data"]
        if data["call_sid"] != result.call_sid and data["call_status"] == status:
            return dict(data)
    raise AssertionError(f"no B-leg {status} status")


class TestDial:
    def test_answered_dial_reports_the_b_leg_and_the_action_hook(self, lab: jl.Lab) -> None:
        """trying → ringing → in-progress → completed on the parent socket; actionHook says completed."""
        got = dial_app(lab, "/d", target=[phone(BOB)], callerId="+16175550123")
        caller = sim.Caller(dial={BOB: sim.DialOutcome("answer", ring=3, talk=20)}, hangup_after=300)
        result = sim.call(lab.url + "/d", caller)
        assert leg_statuses(result) == [TRYING, RINGING, ANSWERED, COMPLETED]
        leg = b_leg(result, "completed")
        assert leg["call_sid"] != result.call_sid
        assert (leg["direction"], leg["from"], leg["to"], leg["caller_id"]) == (
            "outbound",
            "+16175550123",
            BOB,
            "+16175550123",
        )
        assert leg["duration"] == 20
        # a plain dial answers the caller at once, before the B-leg is placed
        assert all_statuses(result) == [
            ("A", "trying"),
            ("A", "in-progress"),
            ("B", "trying"),
            ("B", "ringing"),
            ("B", "in-progress"),
            ("B", "completed"),
            ("A", "completed"),
        ]
        [action] = hook_data(result, "/dial-done")
        assert dial_fields(action) == ("completed", 200, leg["call_sid"])
        assert action["dial_sbc_callid"] == leg["sbc_callid"]
        assert (action["call_sid"], action["call_status"]) == (result.call_sid, "in-progress")
        assert got == [action]  # what the app's handler received
        assert hook_times(result) == approx([23.0], abs=0.3)
        assert (result.final_status, result.termination_by) == ("completed", "jambonz")

    def test_b_leg_ids_are_new_for_every_call_whatever_the_seed(self, lab: jl.Lab) -> None:
        """A B-leg is a new call (dial.js creates each leg with its own callSid, SIP Call-ID and the
        SBC's X-CID): two calls with one seed get their own, from the call's id source (SimCall.ids),
        while what the callee does still follows the seed."""
        dial_app(lab, "/d", target=[phone(BOB)])
        caller = sim.Caller(dial={BOB: sim.DialOutcome("answer", ring=1, talk=5)}, hangup_after=300)
        legs = [b_leg(sim.call(lab.url + "/d", caller, options=sim.SimOptions(seed=7))) for _ in range(2)]
        for key in ("call_sid", "call_id", "sbc_callid"):
            assert legs[0][key] != legs[1][key], key

    def test_caller_id_defaults_to_the_caller(self, lab: jl.Lab) -> None:
        dial_app(lab, "/d", target=[{"type": "sip", "sipUri": "sip:bob@example.com"}])
        result = sim.call(lab.url + "/d", sim.Caller(hangup_after=300))
        leg = b_leg(result)
        assert (leg["from"], leg["caller_id"], leg["to"]) == (
            "+14155550100",
            "+14155550100",
            "sip:bob@example.com",
        )

    def test_busy(self, lab: jl.Lab) -> None:
        dial_app(lab, "/d", target=[phone(BOB)])
        result = sim.call(lab.url + "/d", sim.Caller(dial={BOB: sim.DialOutcome("busy", ring=1)}))
        assert leg_statuses(result) == [TRYING, RINGING, ("busy", 486, "Busy Here")]
        [action] = hook_data(result, "/dial-done")
        assert dial_fields(action) == ("busy", 486, b_leg(result, "busy")["call_sid"])

    def test_ring_past_timeout_is_cancelled_487(self, lab: jl.Lab) -> None:
        """jambonz cancels a leg still ringing at the dial timeout."""
        dial_app(lab, "/d", target=[phone(BOB)], timeout=10)
        result = sim.call(lab.url + "/d", sim.Caller(dial={BOB: sim.DialOutcome("answer", ring=30)}))
        assert leg_statuses(result) == [TRYING, RINGING, CANCELLED]
        [action] = hook_data(result, "/dial-done")
        assert (action["dial_call_status"], action["dial_sip_status"]) == ("no-answer", 487)
        assert hook_times(result) == approx([10.0], abs=0.3)

    def test_failed_without_ringing(self, lab: jl.Lab) -> None:
        dial_app(lab, "/d", target=[phone(BOB)])
        result = sim.call(lab.url + "/d", sim.Caller(dial={"*": sim.DialOutcome("failed", ring=0)}))
        assert leg_statuses(result) == [TRYING, ("failed", 503, "Service Unavailable")]
        [action] = hook_data(result, "/dial-done")
        assert (action["dial_call_status"], action["dial_sip_status"]) == ("failed", 503)

    def test_early_media(self, lab: jl.Lab) -> None:
        dial_app(lab, "/d", target=[phone(BOB)])
        result = sim.call(lab.url + "/d", sim.Caller(dial={BOB: sim.DialOutcome(early_media=True)}))
        assert leg_statuses(result) == [TRYING, ("early-media", 183, "Session Progress"), ANSWERED, COMPLETED]

    def test_first_to_answer_wins_and_the_others_are_cancelled(self, lab: jl.Lab) -> None:
        dial_app(lab, "/d", target=[phone(BOB), phone(CAROL), phone(DAVE)])
        caller = sim.Caller(
            dial={
                BOB: sim.DialOutcome("busy", ring=1),
                CAROL: sim.DialOutcome("answer", ring=5),
                DAVE: sim.DialOutcome("answer", ring=3, talk=4),
            }
        )
        result = sim.call(lab.url + "/d", caller)
        b_events = [
            (e.payload["data"]["to"], e.payload["data"]["call_status"])
            for e in result.messages("sent", "call:status")
            if e.payload["data"]["call_sid"] != result.call_sid
        ]
        assert b_events == [
            (BOB, "trying"),
            (CAROL, "trying"),
            (DAVE, "trying"),
            (BOB, "ringing"),
            (CAROL, "ringing"),
            (DAVE, "ringing"),
            (BOB, "busy"),
            (DAVE, "in-progress"),
            (CAROL, "no-answer"),
            (DAVE, "completed"),
        ]
        legs = {
            e.payload["data"]["to"]: e.payload["data"]["call_sid"]
            for e in result.messages("sent", "call:status")
            if e.payload["data"]["call_sid"] != result.call_sid
        }
        assert len(set(legs.values())) == 3
        assert leg_statuses(result, legs[BOB]) == [TRYING, RINGING, ("busy", 486, "Busy Here")]
        assert leg_statuses(result, legs[CAROL]) == [TRYING, RINGING, CANCELLED]
        assert leg_statuses(result, legs[DAVE]) == [TRYING, RINGING, ANSWERED, COMPLETED]
        [action] = hook_data(result, "/dial-done")
        assert dial_fields(action) == ("completed", 200, legs[DAVE])

    def test_time_limit_caps_the_bridge(self, lab: jl.Lab) -> None:
        dial_app(lab, "/d", target=[phone(BOB)], timeLimit=5)
        result = sim.call(lab.url + "/d", sim.Caller(dial={BOB: sim.DialOutcome(ring=1, talk=60)}))
        assert b_leg(result, "completed")["duration"] == 5
        assert hook_times(result) == approx([6.0], abs=0.3)

    def test_answer_on_bridge_answers_the_caller_when_the_b_leg_answers(self, lab: jl.Lab) -> None:
        dial_app(lab, "/d", target=[phone(BOB)], answerOnBridge=True)
        result = sim.call(lab.url + "/d", sim.Caller(dial={BOB: sim.DialOutcome(ring=2, talk=3)}))
        assert all_statuses(result) == [
            ("A", "trying"),
            ("B", "trying"),
            ("B", "ringing"),
            ("B", "in-progress"),
            ("A", "in-progress"),
            ("B", "completed"),
            ("A", "completed"),
        ]
        assert result.duration == 3

    def test_caller_hangs_up_during_the_bridge(self, lab: jl.Lab) -> None:
        """The parent's completed comes first, then the B-leg's, then the actionHook (as jambonz does)."""
        dial_app(lab, "/d", target=[phone(BOB)])
        result = sim.call(
            lab.url + "/d", sim.Caller(dial={BOB: sim.DialOutcome(ring=2, talk=100)}, hangup_after=30)
        )
        assert all_statuses(result)[-2:] == [("A", "completed"), ("B", "completed")]
        parent = result.messages("sent", "call:status")[-2].payload["data"]
        assert (parent["call_termination_by"], parent["duration"]) == ("caller", 30)
        assert b_leg(result, "completed")["duration"] == 28
        [action] = hook_data(result, "/dial-done")
        assert (action["dial_call_status"], action["call_status"]) == ("completed", "completed")
        assert result.messages("sent")[-1].type == "verb:hook"  # the actionHook comes last
        assert (result.final_status, result.termination_by) == ("completed", "caller")

    def test_caller_hangs_up_while_ringing(self, lab: jl.Lab) -> None:
        dial_app(lab, "/d", target=[phone(BOB)])
        result = sim.call(lab.url + "/d", sim.Caller(dial={BOB: sim.DialOutcome(ring=50)}, hangup_after=8))
        assert leg_statuses(result) == [TRYING, RINGING, CANCELLED]
        assert all_statuses(result)[-2:] == [("A", "completed"), ("B", "no-answer")]
        [action] = hook_data(result, "/dial-done")
        assert (action["dial_call_status"], action["dial_sip_status"]) == ("no-answer", 487)

    def test_redirect_command_kills_the_dial(self, lab: jl.Lab) -> None:
        """The B-leg is hung up; the actionHook is still sent but its verbs are ignored."""

        @lab.service("/d").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/confirm", lambda msg: session.say(text="replaced").hangup().send())
            session.on("/dial-done", lambda msg: session.say(text="ignored").reply())
            session.dial(target=[phone(BOB)], confirmHook="/confirm", actionHook="/dial-done").send()

        result = sim.call(lab.url + "/d", sim.Caller(hangup_after=100))
        assert leg_statuses(result) == [TRYING, RINGING, ANSWERED, COMPLETED]
        assert [d["dial_call_status"] for d in hook_data(result, "/dial-done")] == ["completed"]
        assert result.heard == [("say", "replaced")]


class TestConfirm:
    def test_confirm_reply_is_heard_by_the_callee_then_bridged(self, lab: jl.Lab) -> None:
        confirms: list[jl.Message] = []

        @lab.service("/c").on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/confirm")
            def confirm(msg: jl.Message) -> None:
                confirms.append(msg)
                session.say(text="Call for you from Alice").reply()

            session.dial(target=[phone(BOB, confirmHook="/confirm")], actionHook="/dial-done").hangup().send()

        result = sim.call(lab.url + "/c", sim.Caller(dial={BOB: sim.DialOutcome(ring=2, talk=10)}))
        assert result.heard == [("b-leg:say", "Call for you from Alice")]
        leg = b_leg(result, "completed")
        [msg] = confirms
        assert (msg.type, msg.call_sid, msg.data["call_sid"], msg.data["call_status"]) == (
            "dial:confirm",
            result.call_sid,
            leg["call_sid"],
            "in-progress",
        )
        assert leg_statuses(result) == [TRYING, RINGING, ANSWERED, COMPLETED]
        assert leg["duration"] == 12  # 2.3 s of prompt + 10 s of talk, whole seconds
        [action] = hook_data(result, "/dial-done")
        assert dial_fields(action) == ("completed", 200, leg["call_sid"])

    def test_dial_level_confirm_hook_without_handler_bridges(self, lab: jl.Lab) -> None:
        """The lab acks a hook nobody handles empty at once: jambonz bridges."""
        dial_app(lab, "/c", target=[phone(BOB)], confirmHook="/nobody")
        result = sim.call(lab.url + "/c", sim.Caller(dial={BOB: sim.DialOutcome(ring=2, talk=10)}))
        assert [e.payload["hook"] for e in result.messages("sent", "dial:confirm")] == ["/nobody"]
        assert result.heard == []
        assert leg_statuses(result) == [TRYING, RINGING, ANSWERED, COMPLETED]
        assert hook_data(result, "/dial-done")[0]["dial_call_status"] == "completed"

    def test_unacked_confirm_declines_the_b_leg(self, lab: jl.Lab) -> None:
        """jambonz BYEs the B-leg with no status; the dial reports the leg's last status, in-progress."""
        verbs: list[dict[str, Any]] = [
            {"verb": "dial", "target": [phone(BOB)], "confirmHook": "/confirm", "actionHook": "/dial-done"},
            {"verb": "hangup"},
        ]
        with raw_app(verbs) as (url, seen):
            result = sim.call(url, options=sim.SimOptions(ack_timeout=0.5))
        assert [m["type"] for m in seen if m["type"] in ("dial:confirm", "verb:hook")] == [
            "dial:confirm",
            "verb:hook",
        ]
        assert leg_statuses(result) == [TRYING, RINGING, ANSWERED]
        [action] = hook_data(result, "/dial-done")
        assert (action["dial_call_status"], action["dial_sip_status"]) == ("in-progress", 200)
        assert [e.type for e in result.trace if e.direction == "sim"].count("dial-declined") == 1
        assert (result.final_status, result.termination_by) == ("completed", "jambonz")


@contextmanager
def raw_app(verbs: list[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A bare websockets app: acks session:new with ``verbs`` and verb:hooks empty; ignores dial:confirm."""
    seen: list[dict[str, Any]] = []

    def handler(ws: ServerConnection) -> None:
        for frame in ws:
            msg = json.loads(frame)
            seen.append(msg)
            if msg["type"] == "session:new":
                ws.send(json.dumps({"type": "ack", "msgid": msg["msgid"], "data": verbs}))
            elif msg["type"] == "verb:hook":
                ws.send(json.dumps({"type": "ack", "msgid": msg["msgid"]}))

    with serving_sync(handler, "/") as url:
        yield url, seen


class TestSipVerbs:
    def test_sip_refer_reports_notifies_and_the_final_status(self, lab: jl.Lab) -> None:
        """Each sipfrag status goes out parsed to a number (sip_refer.js ~86–98)."""
        events: list[dict[str, Any]] = []

        @lab.service("/r").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/refer-event", lambda msg: events.append(msg.data))
            session.answer().sip_refer(referTo=BOB, actionHook="/refer-done", eventHook="/refer-event")
            session.say(text="still here").hangup().send()

        result = sim.call(lab.url + "/r", sim.Caller(dial={BOB: sim.DialOutcome(ring=4)}, hangup_after=60))
        expected = [
            {"event": "transfer-status", "call_status": 100},
            {"event": "transfer-status", "call_status": 200},
        ]
        assert hook_data(result, "/refer-event") == expected  # no call info in these
        assert events == expected
        [action] = hook_data(result, "/refer-done")
        assert (action["refer_status"], action["final_referred_call_status"]) == (202, 200)
        assert action["call_sid"] == result.call_sid
        assert hook_times(result) == approx([0.0, 4.0, 4.0], abs=0.3)
        assert result.said == ["still here"]  # the stack goes on
        assert any(e.type == "transferred" for e in result.trace)

    def test_sip_refer_to_a_busy_party(self, lab: jl.Lab) -> None:
        @lab.service("/r").on("session:new")
        def new(session: jl.Session) -> None:
            session.answer().sip_refer(referTo=BOB, actionHook="/refer-done").hangup().send()

        result = sim.call(
            lab.url + "/r", sim.Caller(dial={BOB: sim.DialOutcome("busy", ring=1)}, hangup_after=60)
        )
        [action] = hook_data(result, "/refer-done")
        assert (action["refer_status"], action["final_referred_call_status"]) == (202, 486)
        assert not any(e.type == "transferred" for e in result.trace)

    def test_sip_request_action_hook(self, lab: jl.Lab) -> None:
        got: list[dict[str, Any]] = []

        @lab.service("/q").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/req-done", lambda msg: got.append(msg.data))
            session.answer().sip_request(method="info", actionHook="/req-done").hangup().send()

        result = sim.call(lab.url + "/q")
        [action] = hook_data(result, "/req-done")
        assert (action["result"], action["sip_status"], action["call_sid"]) == (
            "success",
            200,
            result.call_sid,
        )
        assert got == [action]
