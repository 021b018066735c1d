"""Recording (``record`` command, ``config.record``) against ``call-session.js`` ~771–965.

Nothing of it reaches the app's socket in jambonz 0.9.8, so these tests read the
simulator's ``record`` / ``ignored`` notes and check that no message was sent for it.
The app is a real lab server; the commands go over its socket.
"""

from __future__ import annotations

from collections.abc import Callable

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.sim import Caller, SimOptions
from jambonz_lab.sim.recording import Recording
from tests.simtrace import notes

FAST = SimOptions(ack_timeout=0.5, idle_wait=0.2)
SRS = "sip:srs@recorder.example.com"


def kinds(result: sim.CallResult) -> list[str]:
    return [e.type for e in result.messages("sent")]


def call_answered(lab: jl.Lab, answered: Callable[[jl.Session], None]) -> sim.CallResult:
    """One simulated call to an app that answers, pauses 1 s and calls ``answered(session)`` once
    jambonz reports the call in progress (where the tests send their ``record`` commands)."""

    @lab.service("/app").on("session:new")
    def new(session: jl.Session) -> None:
        def status(msg: jl.Message) -> None:
            if msg.data["call_status"] == "in-progress":
                answered(session)

        session.on("call:status", status)
        session.answer().pause(length=1).send()

    return sim.call(lab.url + "/app", Caller(hangup_after=20), options=FAST)


class TestSiprec:
    def test_start_pause_resume_stop_each_send_an_info(self, lab: jl.Lab) -> None:
        """~868–965: one SIP INFO per action, X-Reason naming it; the 200 moves the state."""

        def answered(session: jl.Session) -> None:
            session.inject_record("startCallRecording", siprec_server_url=SRS, recording_id="r1")
            session.inject_record("pauseCallRecording")
            session.inject_record("resumeCallRecording")
            session.inject_record("stopCallRecording")

        result = call_answered(lab, answered)
        assert notes(result, "record") == [
            f"SIP INFO to the SBC (X-Reason: startCallRecording, X-Srs-Url: {SRS}, "
            "X-Srs-Recording-ID: r1); 200 OK, recording on",
            "SIP INFO to the SBC (X-Reason: pauseCallRecording); 200 OK, recording paused",
            "SIP INFO to the SBC (X-Reason: resumeCallRecording); 200 OK, recording on",
            "SIP INFO to the SBC (X-Reason: stopCallRecording); 200 OK, recording off",
        ]
        assert notes(result, "ignored") == []

    def test_actions_out_of_state_are_ignored(self, lab: jl.Lab) -> None:
        """~830–849: stop while off, resume while on, a second start: logged only."""

        def answered(session: jl.Session) -> None:
            session.inject_record("stopCallRecording")
            session.inject_record("startCallRecording", siprec_server_url=SRS)
            session.inject_record("resumeCallRecording")
            session.inject_record("startCallRecording", siprec_server_url=SRS)

        result = call_answered(lab, answered)
        assert notes(result, "ignored") == [
            "record: stopCallRecording while recording is off; ignored (logged only)",
            "record: resumeCallRecording while recording is on; ignored (logged only)",
            "record: startCallRecording while recording is on; ignored (logged only)",
        ]
        assert len(notes(result, "record")) == 1
        assert "jambonz:error" not in kinds(result)

    def test_config_record_before_the_answer_starts_at_the_answer(self, lab: jl.Lab) -> None:
        """config.js ~265; ~821–826: a start before the answer is kept and sent on answer (~2726).
        config answers the call for ``record.action`` (config.js ~67–73), so the two coincide;
        ``earlyMedia`` keeps it unanswered until the answer verb."""

        @lab.service("/app").on("session:new")
        def new(session: jl.Session) -> None:
            record = {"action": "startCallRecording", "siprecServerURL": SRS, "recordingID": "r2"}
            session.config(record=record, earlyMedia=True).pause(length=1).answer().send()

        result = sim.call(lab.url + "/app", Caller(hangup_after=20), options=FAST)
        assert notes(result, "record")[0] == "startCallRecording before the answer: saved, sent when answered"
        assert notes(result, "record")[1].startswith("SIP INFO to the SBC (X-Reason: startCallRecording")
        answer = next(
            e.t
            for e in result.messages("sent", "call:status")
            if e.payload["data"]["call_status"] == "in-progress"
        )
        sent_at = [e.t for e in result.messages("sim", "record")][1]
        assert sent_at >= answer


class TestCloud:
    def test_cloud_start_and_stop(self, lab: jl.Lab) -> None:
        """~775–816: a background listen, no hook; pause needs it running."""

        def answered(session: jl.Session) -> None:
            session.inject_record("pauseCallRecording", type="cloud")
            session.inject_record("startCallRecording", type="cloud")
            session.inject_record("stopCallRecording", type="cloud")

        result = call_answered(lab, answered)
        assert notes(result, "ignored") == [
            "record: pauseCallRecording with no cloud recording running; ignored"
        ]
        assert notes(result, "record") == [
            "cloud recording: a background listen to the recording service starts now",
            "cloud recording stopped",
        ]


class TestBadInput:
    def test_a_raw_invalid_action_is_logged_only(self, lab: jl.Lab) -> None:
        """~862 throws after the checks; the command does not await it (~2325)."""

        def answered(session: jl.Session) -> None:
            session.inject("record", {"action": "explode"})
            session.inject("record", "startCallRecording")

        result = call_answered(lab, answered)
        assert notes(result, "ignored") == [
            "record: invalid action 'explode'; jambonz throws, unawaited (logged only)",
            "record: 'startCallRecording' is not an object; jambonz throws (logged only)",
        ]
        assert result.final_status == "completed"

    def test_state_machine_without_a_call_is_plain(self) -> None:
        rec = Recording()
        assert rec.state.value == "off" and rec.pending is None and not rec.cloud
