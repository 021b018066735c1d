"""Simulated conference, enqueue, dequeue and leave against lab apps (protocol doc §4.3)."""

from __future__ import annotations

from typing import Any

import pytest

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.sim.caller import Input
from jambonz_lab.sim.verbs.basic import speech_seconds
from tests.simtrace import answered_at, notes, sent_hooks

FAST = sim.SimOptions(idle_wait=0.1)  # a silent app is given 0.1 s real time before time jumps


def account_sid(result: sim.CallResult) -> str:
    return str(result.messages("sent", "session:new")[0].payload["data"]["account_sid"])


class TestConference:
    def test_start_enter_hook_then_alone_until_hangup(self, lab: jl.Lab) -> None:
        """start, enterHook prompt, join; the caller's hangup sends leave and end, then completed and
        the actionHook (conference.js ~107–110: sent after every end; inbound-call-session.js ~113–118)."""
        entered: list[dict[str, Any]] = []

        @lab.service("/conf").on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/enter")
            def enter(msg: jl.Message) -> None:
                entered.append(msg.data)
                session.say(text="welcome to the room").reply()

            session.conference(
                name="room1",
                enterHook="/enter",
                statusHook="/status",
                statusEvents=["start", "join", "leave", "end", "start-talking"],
                actionHook="/after",
            ).send()

        result = sim.call(lab.url + "/conf", sim.Caller(hangup_after=30), options=FAST)
        assert result.heard == [("say", "welcome to the room")]
        status = sent_hooks(result, "/status")
        assert [d["event"] for _, d in status] == ["start", "join", "leave", "end"]
        assert [d["members"] for _, d in status] == [0, 1, 0, 0]
        order = [
            e.payload["data"].get("event", e.payload["hook"]) for e in result.messages("sent", "verb:hook")
        ]
        assert order == ["start", "/enter", "join", "leave", "end", "/after"]
        kinds = [(e.type, e.payload.get("hook")) for e in result.messages("sent") if e.type != "verb:status"]
        assert kinds.index(("call:status", None), 3) < kinds.index(("verb:hook", "/after"))
        start = status[0][1]
        assert start["conference_sid"] == f"conf:{account_sid(result)}:room1"
        assert start["friendly_name"] == "room1"
        assert start["call_sid"] == result.call_sid and start["fs_sip_address"] == "10.0.1.30:5070"
        assert start["time"].endswith("Z") and "T" in start["time"]
        assert status[0][1]["duration"] == pytest.approx(0, abs=0.05)
        assert status[1][1]["duration"] == pytest.approx(speech_seconds("welcome to the room"), abs=0.1)
        assert status[2][0] == pytest.approx(30, abs=0.01)
        assert entered[0]["caller_name"] == "Alice" and "fs_sip_address" not in entered[0]
        assert len(sent_hooks(result, "/after")) == 1
        assert result.termination_by == "caller"
        assert result.statuses() == ["trying", "in-progress", "completed"]

    def test_the_callers_speech_is_start_and_stop_talking(self, lab: jl.Lab) -> None:
        """Each thing the caller says in the room: start-talking when they begin, stop-talking when
        they end (mod_conference conference_loop_input), reported for the own member with the
        conference size as members (conference.js ~774-796) and the usual fields (~715-743)."""

        @lab.service("/talk").on("session:new")
        def new(session: jl.Session) -> None:
            events = ["start", "end", "join", "leave", "start-talking", "stop-talking"]
            session.conference(name="talk1", statusHook="/status", statusEvents=events).send()

        said: list[Input] = [
            sim.Speech("hello everyone", after=2.0),
            sim.Speech("can you hear me", after=1.0),
        ]
        result = sim.call(lab.url + "/talk", sim.Caller(inputs=said, hangup_after=30), options=FAST)
        status = sent_hooks(result, "/status")
        assert [d["event"] for _, d in status] == [
            "start",
            "join",
            "start-talking",
            "stop-talking",
            "start-talking",
            "stop-talking",
            "leave",
            "end",
        ]
        talk = status[2:6]
        assert [d["members"] for _, d in talk] == [1, 1, 1, 1]
        joined = status[1][0]
        assert talk[0][0] == pytest.approx(joined + 2.0, abs=0.01)  # the call clock, not wall time
        assert talk[1][0] - talk[0][0] == pytest.approx(speech_seconds("hello everyone"), abs=0.01)
        assert talk[2][0] - talk[1][0] == pytest.approx(1.0, abs=0.01)
        first = talk[0][1]
        assert first["conference_sid"] == f"conf:{account_sid(result)}:talk1"
        assert first["friendly_name"] == "talk1" and first["call_sid"] == result.call_sid
        assert first["time"].endswith("Z") and first["time"] != talk[1][1]["time"]
        assert first["duration"] == pytest.approx(2.0, abs=0.05)

    def test_only_listed_events_and_silence_ends_the_talking(self, lab: jl.Lab) -> None:
        """statusEvents filters (conference.js ~57-61, ~716); a Silence input: the caller says no more."""

        @lab.service("/talk2").on("session:new")
        def new(session: jl.Session) -> None:
            session.conference(name="talk2", statusHook="/status", statusEvents=["stop-talking"]).send()

        said: list[Input] = [sim.Speech("hi"), sim.Silence(), sim.Speech("never said")]
        result = sim.call(lab.url + "/talk2", sim.Caller(inputs=said, hangup_after=30), options=FAST)
        assert [d["event"] for _, d in sent_hooks(result, "/status")] == ["stop-talking"]

    def test_a_muted_member_reports_no_talking(self, lab: jl.Lab) -> None:
        """joinMuted joins with the mute flag (conference.js ~359): FreeSWITCH fires mute-detect, not
        start-talking, for a member who cannot speak; jambonz has no handler for it (~752)."""

        @lab.service("/talk3").on("session:new")
        def new(session: jl.Session) -> None:
            events = ["join", "start-talking", "stop-talking", "leave"]
            session.conference(name="talk3", joinMuted=True, statusHook="/status", statusEvents=events).send()

        said: list[Input] = [sim.Speech("can anyone hear me")]
        result = sim.call(lab.url + "/talk3", sim.Caller(inputs=said, hangup_after=30), options=FAST)
        assert [d["event"] for _, d in sent_hooks(result, "/status")] == ["join", "leave"]
        assert any("mute-detect" in n for n in notes(result, "conference"))

    def test_kick_ends_the_verb_with_the_action_hook(self, lab: jl.Lab) -> None:
        """conf:participant-action kick: leave, end, then the actionHook (call info); the stack goes on."""
        after: list[dict[str, Any]] = []

        @lab.service("/conf").on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/status")
            def status(msg: jl.Message) -> None:
                if msg.data["event"] == "join":
                    session.inject_conf_participant_action("kick")

            @session.on("/after")
            def done(msg: jl.Message) -> None:
                after.append(msg.data)
                session.say(text="you were removed").hangup().reply()

            session.conference(
                id="c1",
                name="room2",
                statusHook="/status",
                statusEvents=["join", "leave", "end"],
                actionHook="/after",
            ).say(text="never").send()

        result = sim.call(lab.url + "/conf", sim.Caller(hangup_after=60))
        assert result.heard == [("say", "you were removed")]
        order = [
            e.payload["data"].get("event", "action")
            for e in result.messages("sent", "verb:hook")
            if e.payload["hook"] in ("/status", "/after")
        ]
        assert order == ["join", "leave", "end", "action"]
        assert after[0]["verb_id"] == "c1" and after[0]["call_status"] == "in-progress"
        assert "event" not in after[0] and "conference_sid" not in after[0]
        assert result.termination_by == "jambonz"

    def test_replace_still_sends_the_action_hook(self, lab: jl.Lab) -> None:
        """A redirect command kills the conference: leave and end, then the actionHook (conference.js
        ~107–110: awaitTaskDone returns on the kill and performAction follows)."""

        @lab.service("/conf").on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/status")
            def status(msg: jl.Message) -> None:
                if msg.data["event"] == "join":
                    session.say(text="moved on").hangup().send()

            session.conference(
                name="room3", statusHook="/status", statusEvents=["join", "leave", "end"], actionHook="/after"
            ).send()

        result = sim.call(lab.url + "/conf", sim.Caller(hangup_after=60))
        assert result.heard == [("say", "moved on")]
        assert [d["event"] for _, d in sent_hooks(result, "/status")] == ["join", "leave", "end"]
        assert len(sent_hooks(result, "/after")) == 1
        assert any(e.note == "conference killed (replaced)" for e in result.messages("sim", "killed"))

    def test_wait_hook_loops_until_an_empty_ack(self, lab: jl.Lab) -> None:
        """startConferenceOnEnter false: waitHook rounds (0.75 s silence each) until an empty ack."""
        rounds: list[dict[str, Any]] = []

        @lab.service("/conf").on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/wait")
            def wait(msg: jl.Message) -> None:
                rounds.append(msg.data)
                if len(rounds) < 3:
                    session.say(text="please wait").reply()

            session.conference(
                name="room4",
                startConferenceOnEnter=False,
                waitHook="/wait",
                statusHook="/status",
                statusEvents=["start", "join", "leave", "end"],
                actionHook="/after",
            ).send()

        result = sim.call(lab.url + "/conf", sim.Caller(hangup_after=20), options=FAST)
        assert result.heard == [("say", "please wait"), ("say", "please wait")]
        times = [t - answered_at(result) for t, _ in sent_hooks(result, "/wait")]
        prompt = speech_seconds("please wait")
        assert times == pytest.approx([0.75, 1.5 + prompt, 2.25 + 2 * prompt], abs=0.05)
        assert rounds[0]["caller_name"] == "Alice" and "fs_sip_address" not in rounds[0]
        assert sent_hooks(result, "/status") == []
        [(t, _)] = sent_hooks(result, "/after")  # the waiting caller's hangup ends it too (~107)
        assert t == pytest.approx(20, abs=0.01)
        assert result.trace[-1].t == pytest.approx(20, abs=0.01)
        assert result.termination_by == "caller"

    def test_wait_hook_with_a_gather_stops_the_loop(self, lab: jl.Lab) -> None:
        """Only say/play/pause are allowed in a waitHook ack: anything else ends the loop, nothing plays."""

        @lab.service("/conf").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/wait", lambda msg: session.gather(input=["digits"]).reply())
            session.conference(name="room5", startConferenceOnEnter=False, waitHook="/wait").send()

        result = sim.call(lab.url + "/conf", sim.Caller(hangup_after=10), options=FAST)
        assert result.heard == []
        assert len(sent_hooks(result, "/wait")) == 1
        assert any("unsupported verb 'gather'" in (e.note or "") for e in result.messages("sim", "error"))


class TestQueues:
    def test_enqueue_wait_hook_tag_and_leave(self, lab: jl.Lab) -> None:
        """waitHook payloads are sparse; tag shows as customerData; leave ends the wait with queue_result."""
        waits: list[dict[str, Any]] = []
        done: list[dict[str, Any]] = []

        @lab.service("/q").on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/wait")
            def wait(msg: jl.Message) -> None:
                waits.append(msg.data)
                if len(waits) == 1:
                    session.say(text="you are first").tag(data={"vip": True}).reply()
                else:
                    session.say(text="bye queue").leave().say(text="never").reply()

            @session.on("/done")
            def finished(msg: jl.Message) -> None:
                done.append(msg.data)
                session.say(text="out").hangup().reply()

            session.enqueue(id="q1", name="support", waitHook="/wait", actionHook="/done").send()

        result = sim.call(lab.url + "/q", sim.Caller(hangup_after=60))
        assert result.heard == [("say", "you are first"), ("say", "bye queue"), ("say", "out")]
        sid = f"queue:{account_sid(result)}:support"
        call_id = result.messages("sent", "session:new")[0].payload["data"]["call_id"]
        assert waits[0] == {
            "queue_sid": sid,
            "queue_time": 0,
            "queue_size": 1,
            "queue_position": 0,
            "call_sid": result.call_sid,
            "call_id": call_id,
        }
        assert waits[1]["customerData"] == {"vip": True}
        assert waits[1]["queue_time"] == int(1.0 + speech_seconds("you are first"))
        elapsed = 1.0 + speech_seconds("you are first") + speech_seconds("bye queue")
        outcome = (done[0]["queue_result"], done[0]["queue_sid"], done[0]["queue_time"])
        assert outcome == ("leave", sid, int(elapsed))
        assert done[0]["verb_id"] == "q1" and done[0]["call_sid"] == result.call_sid

    def test_enqueue_empty_ack_waits_silently_until_hangup(self, lab: jl.Lab) -> None:
        """After an empty waitHook ack the caller waits in silence; the hangup kills the task and the
        actionHook reports queue_result 'hangup' (enqueue.js ~56, ~65–70; QueueResults.Wait)."""

        @lab.service("/q").on("session:new")
        def new(session: jl.Session) -> None:
            session.enqueue(name="support", waitHook="/wait", actionHook="/done").send()

        result = sim.call(lab.url + "/q", sim.Caller(hangup_after=15), options=FAST)
        assert len(sent_hooks(result, "/wait")) == 1
        [(t, done)] = sent_hooks(result, "/done")
        assert (t, done["queue_result"]) == (pytest.approx(15, abs=0.01), "hangup")
        assert done["queue_time"] in (14, 15)  # whole seconds, floored (enqueue.js ~12)
        assert result.heard == []
        assert result.trace[-1].t == pytest.approx(15, abs=0.01)
        assert (result.termination_by, result.final_status) == ("caller", "completed")

    def test_dequeue_times_out_and_the_next_verb_does_not_wait_for_the_ack(self, lab: jl.Lab) -> None:
        """Nobody queued: dequeue_result timeout after `timeout` s; jambonz does not await that hook."""
        got: list[dict[str, Any]] = []

        @lab.service("/dq").on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/dq")
            def dq(msg: jl.Message) -> None:
                got.append(msg.data)
                session.say(text="nobody").hangup().reply()

            session.dequeue(name="support", timeout=10, actionHook="/dq").say(text="next").send()

        result = sim.call(lab.url + "/dq", sim.Caller(hangup_after=100), options=FAST)
        assert result.heard == [("say", "next"), ("say", "nobody")]
        [(t, data)] = sent_hooks(result, "/dq")
        assert t - answered_at(result) == pytest.approx(10, abs=0.05)
        assert got[0]["dequeue_result"] == "timeout" and got[0]["call_sid"] == result.call_sid
        assert result.trace[-1].t - answered_at(result) == pytest.approx(
            10 + speech_seconds("next") + speech_seconds("nobody"), abs=0.1
        )
        assert result.termination_by == "jambonz"

    def test_dequeue_without_timeout_waits_until_hangup(self, lab: jl.Lab) -> None:
        """jambonz's default timeout 0 means no timeout: no actionHook, the caller's hangup ends it."""

        @lab.service("/dq").on("session:new")
        def new(session: jl.Session) -> None:
            session.dequeue(name="support", actionHook="/dq").send()

        result = sim.call(lab.url + "/dq", sim.Caller(hangup_after=40), options=FAST)
        assert sent_hooks(result, "/dq") == []
        assert result.trace[-1].t == pytest.approx(40, abs=0.01)
        assert result.termination_by == "caller"

    def test_leave_outside_a_queue_is_dead_air_until_hangup(self, lab: jl.Lab) -> None:
        """A top-level leave waits until killed: the next verb never runs."""

        @lab.service("/l").on("session:new")
        def new(session: jl.Session) -> None:
            session.say(text="hi").leave().say(text="after").send()

        result = sim.call(lab.url + "/l", sim.Caller(hangup_after=7), options=FAST)
        assert result.heard == [("say", "hi")]
        assert result.trace[-1].t == pytest.approx(7, abs=0.01)
        assert result.termination_by == "caller"
        assert [e.type for e in result.messages("sim") if e.type == "leave"] == ["leave"]
