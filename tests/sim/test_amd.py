"""Answering machine detection on dial, as feature-server 0.9.8 runs it (``lib/utils/amd-utils.js``)."""

from __future__ import annotations

from typing import Any

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.sim.verbs.amd import timeline

BOB = "+15550001"


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
