"""Answering machine detection (dial, config, REST calls) as feature-server 0.9.8 runs it.

The rules are ``lib/utils/amd-utils.js``; where it runs, the tasks that start it."""

from __future__ import annotations

from typing import Any

import pytest

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.sim.verbs.amd import timeline
from tests.simtrace import answered_at, sent, sent_hooks

BOB = "+15550001"
FAST = sim.SimOptions(ack_timeout=1.0, idle_wait=0.1)
MACHINE = ["amd_machine_detected", "amd_tone_detected", "amd_machine_stopped_speaking", "amd_stopped"]


def types(result: sim.CallResult, hook: str = "/amd") -> list[str]:
    return [data["type"] for _, data in sent_hooks(result, hook)]


def kinds(events: list[Any]) -> list[str]:
    return [e.data["type"] for e in events]


class TestTimeline:
    def test_short_final_greeting_is_a_human_then_the_detector_stops(self) -> None:
        """A final under thresholdWordCount (9) → human, 'short greeting' (amd-utils.js ~177).

        stopAmd then sends amd_stopped (~360-366, ~434)."""
        events = timeline({}, sim.Greeting("Hello?"), 0.0, "en-US")
        assert kinds(events) == ["amd_human_detected", "amd_stopped"]
        assert events[0].data == {
            "type": "amd_human_detected",
            "reason": "short greeting",
            "greeting": "Hello?",
            "language": "en-US",
        }

    def test_machine_greeting_beep_then_stopped_speaking(self) -> None:
        """9+ words (an interim is enough) → machine 'long greeting' (amd-utils.js ~185).

        The beep → tone_detected with frequency and variance (~245-249); the greeting timer
        (2 s, restarted by each transcript, ~142) → machine_stopped_speaking."""
        events = timeline({}, sim.Greeting.machine(seconds=4.0, beep=4.5), 0.0, "en-US")
        assert kinds(events) == [
            "amd_machine_detected",
            "amd_tone_detected",
            "amd_machine_stopped_speaking",
            "amd_stopped",
        ]
        assert events[0].data["reason"] == "long greeting"
        assert len(events[0].data["greeting"].split(" ")) == 9
        assert events[1].data == {"type": "amd_tone_detected", "frequency": 1000, "variance": 0}
        assert events[2].at > 4.5

    def test_silence_is_no_speech_after_the_timer(self) -> None:
        """No transcript in noSpeechTimeoutMs → amd_no_speech_detected, stopped (amd-utils.js ~131, ~352)."""
        events = timeline({"timers": {"noSpeechTimeoutMs": 3000}}, None, 10.0, "en-US")
        assert kinds(events) == ["amd_no_speech_detected", "amd_stopped"]
        assert 12.5 < events[0].at < 13.5

    def test_long_pause_before_a_short_final_hits_the_decision_timeout(self) -> None:
        """Speech, but no decision in time → decisionTimeoutMs (amd-utils.js ~124)."""
        greeting = sim.Greeting("um er so well I mean like you", start=0.5, seconds=30.0)
        events = timeline({"timers": {"decisionTimeoutMs": 8000}}, greeting, 0.0, "en-US")
        assert kinds(events) == ["amd_decision_timeout", "amd_stopped"]

    def test_digit_count(self) -> None:
        """digitCount: a run of that many digits in a transcript → machine, reason 'digit count' (~169)."""
        events = timeline({"digitCount": 4}, sim.Greeting("call 5551234 now please"), 0.0, "en-US")
        assert events[0].data["reason"] == "digit count"


class TestDialAmd:
    def test_dial_amd_events_reach_the_action_hook_with_the_parent_call_info(self, lab: jl.Lab) -> None:
        """dial.js ~932 starts AMD on the bridged B-leg; _onAmdEvent → performHook (~1082, task.js ~271).

        A verb:hook of the A-leg's call info plus the event."""
        got: list[dict[str, Any]] = []

        @lab.service("/amd").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/amd", lambda msg: got.append(msg.data))
            amd = {"actionHook": "/amd"}
            session.dial(target=[{"type": "phone", "number": BOB}], amd=amd).hangup().send()

        greeting = sim.Greeting.machine(seconds=4.0, beep=4.5)
        caller = sim.Caller(dial={BOB: sim.DialOutcome(talk=20, greeting=greeting)}, hangup_after=300)
        result = sim.call(lab.url + "/amd", caller)
        assert [d["type"] for d in got] == [
            "amd_machine_detected",
            "amd_tone_detected",
            "amd_machine_stopped_speaking",
            "amd_stopped",
        ]
        assert all(d["call_sid"] == result.call_sid for d in got)

    def test_ack_verbs_replace_the_application_and_end_the_dial(self, lab: jl.Lab) -> None:
        """performHook's ack verbs redirect (task.js ~281-286): the dial is killed, the new verbs run."""

        @lab.service("/amd2").on("session:new")
        def new(session: jl.Session) -> None:
            def on_amd(msg: jl.Message) -> None:
                if msg.data["type"] == "amd_human_detected":
                    session.say(text="a human").hangup().reply()

            session.on("/amd", on_amd)
            session.dial(target=[{"type": "phone", "number": BOB}], amd={"actionHook": "/amd"}).send()

        caller = sim.Caller(
            dial={BOB: sim.DialOutcome(talk=60, greeting=sim.Greeting("Hello?"))}, hangup_after=300
        )
        result = sim.call(lab.url + "/amd2", caller)
        assert ("say", "a human") in result.heard
        assert result.duration < 30

    def test_a_dial_ending_with_the_detector_running_stops_it(self, lab: jl.Lab) -> None:
        """The B-leg hangs up before any decision: Dial.kill stops AMD, amd_stopped alone (dial.js ~262)."""
        got: list[str] = []

        @lab.service("/amd3").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/amd", lambda msg: got.append(msg.data["type"]))
            session.dial(target=[{"type": "phone", "number": BOB}], amd={"actionHook": "/amd"}).send()

        late = sim.Greeting("Hello?", start=6.0)
        caller = sim.Caller(dial={BOB: sim.DialOutcome(talk=3, greeting=late)}, hangup_after=300)
        sim.call(lab.url + "/amd3", caller)
        assert got == ["amd_stopped"]


class TestTimelineFromTheAnswer:
    def test_words_said_before_the_detector_starts_are_not_heard(self) -> None:
        """The greeting counts from the answer; a detector started 5 s later hears nothing of it.

        So the no-speech timer fires (amd-utils.js ~91, ~131)."""
        events = timeline({}, sim.Greeting("Hello?"), 5.0, "en-US", origin=0.0)
        assert kinds(events) == ["amd_no_speech_detected", "amd_stopped"]

    def test_a_zero_timer_is_zero_not_the_default(self) -> None:
        """JavaScript's destructuring default replaces only a missing timer (amd-utils.js ~75-80)."""
        events = timeline({"timers": {"noSpeechTimeoutMs": 0}}, sim.Greeting("Hello?"), 0.0, "en-US")
        assert kinds(events) == ["amd_no_speech_detected", "amd_stopped"]
        assert events[0].at == 0.0


class TestConfigAmd:
    def test_config_amd_runs_on_the_call_beside_the_next_verbs(self, lab: jl.Lab) -> None:
        """config.amd starts AMD on the call itself (config.js ~151-161); the config verb ends at once.

        Its events reach amd.actionHook during the pause that follows, with the call's info
        (Config._onAmdEvent → performHook, config.js ~375, task.js ~271)."""
        got: list[dict[str, Any]] = []

        @lab.service("/camd").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/amd", lambda msg: got.append(msg.data))
            session.config(amd={"actionHook": "/amd"}).pause(length=20).hangup().send()

        caller = sim.Caller(greeting=sim.Greeting.machine(seconds=4.0, beep=4.5), hangup_after=300)
        result = sim.call(lab.url + "/camd", caller, options=FAST)
        assert [d["type"] for d in got] == MACHINE
        assert all(d["call_sid"] == result.call_sid for d in got)
        pause_ends = answered_at(result) + 20  # the call clock: all of them during the pause
        assert all(t < pause_ends for t, _ in sent_hooks(result, "/amd"))

    def test_ack_verbs_replace_the_application(self, lab: jl.Lab) -> None:
        """The human_detected ack's verbs kill the running pause and replace the stack.

        performHook → redirect → replaceApplication (task.js ~281-286, ~297)."""

        @lab.service("/camd2").on("session:new")
        def new(session: jl.Session) -> None:
            def on_amd(msg: jl.Message) -> None:
                if msg.data["type"] == "amd_human_detected":
                    session.say(text="a human").hangup().reply()

            session.on("/amd", on_amd)
            session.config(amd={"actionHook": "/amd"}).pause(length=30).say(text="never").send()

        result = sim.call(lab.url + "/camd2", sim.Caller(greeting=sim.Greeting("Hello?"), hangup_after=300))
        assert ("say", "a human") in result.heard
        assert ("say", "never") not in result.heard
        assert result.duration < 30

    def test_recognizer_defaults_come_from_earlier_configs_not_the_same_verb(self, lab: jl.Lab) -> None:
        """startAmd runs before the same config's recognizer is applied (config.js ~151 vs ~200):
        the language is the call's default from the earlier config (amd-utils.js ~56-57)."""

        @lab.service("/camd3").on("session:new")
        def new(session: jl.Session) -> None:
            session.config(recognizer={"vendor": "google", "language": "de-DE"})
            session.config(amd={"actionHook": "/amd"}, recognizer={"vendor": "google", "language": "fr-FR"})
            session.pause(length=10).hangup().send()

        result = sim.call(lab.url + "/camd3", sim.Caller(greeting=sim.Greeting("Hallo?"), hangup_after=300))
        human = [d for _, d in sent_hooks(result, "/amd") if d["type"] == "amd_human_detected"]
        assert [d["language"] for d in human] == ["de-DE"]

    def test_inbound_hangup_with_amd_running_sends_nothing_more(self, lab: jl.Lab) -> None:
        """Nothing stops a config.amd at the hangup (config.js ~372 is commented out): no amd_stopped."""

        @lab.service("/camd4").on("session:new")
        def new(session: jl.Session) -> None:
            session.config(amd={"actionHook": "/amd"}).pause(length=60).send()

        slow = sim.Greeting("Hello there", start=4.0)
        result = sim.call(lab.url + "/camd4", sim.Caller(greeting=slow, hangup_after=2), options=FAST)
        assert result.final_status == "completed"
        assert types(result) == []

    def test_amd_after_the_greeting_hears_no_speech(self, lab: jl.Lab) -> None:
        """A config.amd after a 5 s say starts too late for the greeting said on answering."""

        @lab.service("/camd5").on("session:new")
        def new(session: jl.Session) -> None:
            session.say(text="one two three four five six seven eight nine ten eleven twelve")
            session.config(amd={"actionHook": "/amd"}).pause(length=20).hangup().send()

        result = sim.call(lab.url + "/camd5", sim.Caller(greeting=sim.Greeting("Hello?"), hangup_after=300))
        assert types(result) == ["amd_no_speech_detected", "amd_stopped"]


class TestRestAmd:
    def test_rest_amd_events_reach_the_hook_after_session_new(self, lab: jl.Lab) -> None:
        """createCall's amd starts at the answer, before session:new (rest_dial.js ~100-106).

        The events follow, with the REST call's info (rest_dial.js ~158-165)."""

        @lab.service("/ramd").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/amd", lambda msg: None)
            session.pause(length=20).hangup().send()

        caller = sim.Caller(greeting=sim.Greeting.machine(seconds=4.0, beep=4.5), hangup_after=300)
        result = sim.call(
            lab.url + "/ramd", caller, direction="outbound", amd={"actionHook": "/amd"}, options=FAST
        )
        assert types(result) == MACHINE
        order = [m["type"] for m in sent(result) if m["type"] in ("session:new", "verb:hook")]
        assert order[0] == "session:new"
        assert all(d["call_sid"] == result.call_sid for _, d in sent_hooks(result, "/amd"))

    def test_hangup_stops_the_detector_before_the_final_status(self, lab: jl.Lab) -> None:
        """The REST call's hangup runs turnOffAmd first (rest-call-session.js ~62-65): amd_stopped,
        then call:status completed."""

        @lab.service("/ramd2").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/amd", lambda msg: None)
            session.pause(length=20).hangup().send()

        caller = sim.Caller(greeting=sim.Greeting("Hello there", start=6.0), hangup_after=3)
        result = sim.call(
            lab.url + "/ramd2", caller, direction="outbound", amd={"actionHook": "/amd"}, options=FAST
        )
        assert types(result) == ["amd_stopped"]
        tail = [
            m["data"].get("type") or m["data"].get("call_status")
            for m in sent(result)
            if m["type"] in ("verb:hook", "call:status")
        ]
        assert tail[-2:] == ["amd_stopped", "completed"]

    def test_amd_must_be_an_object_on_an_outbound_call(self) -> None:
        """The createCall schema: amd isObject (schemas/create-call.js ~40); REST calls only."""
        with pytest.raises(ValueError, match="object"):
            sim.call("ws://127.0.0.1:9/x", direction="outbound", amd=True)
        with pytest.raises(ValueError, match="outbound"):
            sim.call("ws://127.0.0.1:9/x", amd={"actionHook": "/amd"})
