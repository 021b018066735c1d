"""Simulated transcribe, listen/stream, message, dtmf, alert and dub against lab apps (protocol doc §4.3)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.sim.verbs.basic import speech_seconds
from jambonz_lab.sim.verbs.media import BEEP
from tests.audioserver import AudioServer
from tests.simtrace import answered_at, notes, sent_hooks

FAST = sim.SimOptions(idle_wait=0.1)  # a silent app is given 0.1 s real time before time jumps


class TestTranscribe:
    def test_each_speech_input_becomes_a_transcription_hook(self, lab: jl.Lab) -> None:
        """Raw CallInfo + speech per utterance, `after` s apart; then it transcribes until the hangup."""
        got: list[dict[str, Any]] = []

        @lab.service("/t").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/tx", lambda msg: got.append(msg.data))
            session.transcribe(
                transcriptionHook="/tx", recognizer={"vendor": "google", "language": "en-US"}
            ).send()

        caller = sim.Caller(
            inputs=[sim.Speech("hello there", after=2), sim.Speech("second thing", after=3), sim.Silence()],
            hangup_after=30,
        )
        result = sim.call(lab.url + "/t", caller, options=FAST)
        hooks = sent_hooks(result, "/tx")
        assert [t - answered_at(result) for t, _ in hooks] == pytest.approx([2, 5], abs=0.05)
        texts = [d["speech"]["alternatives"][0]["transcript"] for d in got]
        assert texts == ["hello there", "second thing"]
        speech = got[0]["speech"]
        assert (speech["is_final"], speech["language_code"], speech["channel_tag"]) == (True, "en-US", 1)
        assert got[0]["caller_name"] == "Alice" and got[0]["local_sip_address"] == "10.0.1.30:5070"
        assert "fs_sip_address" not in got[0]
        assert result.heard == []
        assert result.trace[-1].t == pytest.approx(30, abs=0.01)
        assert result.termination_by == "caller"

    def test_ack_verbs_replace_the_stack_and_end_the_transcribe(self, lab: jl.Lab) -> None:
        """The first non-empty ack wins: its verbs run, later speech is not transcribed."""

        @lab.service("/t").on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/tx")
            def tx(msg: jl.Message) -> None:
                if msg.data["speech"]["alternatives"][0]["transcript"] == "stop":
                    session.say(text="got it").hangup().reply()

            session.transcribe(transcriptionHook="/tx").say(text="never").send()

        caller = sim.Caller(inputs=[sim.Speech("go on"), sim.Speech("stop"), sim.Speech("ignored")])
        result = sim.call(lab.url + "/t", caller)
        assert len(sent_hooks(result, "/tx")) == 2
        assert result.heard == [("say", "got it")]
        assert result.termination_by == "jambonz"

    def test_translation_hook_is_noted_not_simulated(self, lab: jl.Lab) -> None:
        @lab.service("/t").on("session:new")
        def new(session: jl.Session) -> None:
            session.transcribe(transcriptionHook="/tx", translationHook="/tr").send()

        result = sim.call(lab.url + "/t", sim.Caller(hangup_after=5), options=FAST)
        assert sent_hooks(result, "/tr") == [] and sent_hooks(result, "/tx") == []
        assert notes(result, "not-simulated") == ["translationHook: no translation is simulated"]


@pytest.fixture
def audio_url() -> Any:
    """A loopback audio server's URL (listen now really connects; tests/sim/test_audio.py tests it)."""
    with AudioServer() as server:
        yield server.url


class TestListen:
    def test_stream_runs_max_length_then_the_action_hook(self, lab: jl.Lab, audio_url: str) -> None:
        """stream is listen: maxLength s later the actionHook gets dial_call_duration, no digits."""
        got: list[dict[str, Any]] = []

        @lab.service("/s").on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/end")
            def end(msg: jl.Message) -> None:
                got.append(msg.data)
                session.say(text="stream over").hangup().reply()

            session.config(notifyEvents=True).stream(url=audio_url, maxLength=12, actionHook="/end")
            session.send()

        result = sim.call(lab.url + "/s", sim.Caller(hangup_after=60))
        [(t, _)] = sent_hooks(result, "/end")
        assert t - answered_at(result) == pytest.approx(12, abs=0.05)
        assert got[0]["dial_call_duration"] == 12 and "digits" not in got[0]
        assert result.heard == [("say", "stream over")]
        names = [e.payload["data"].get("name") for e in result.messages("sent", "verb:status")]
        assert "listen" in names and "stream" not in names
        assert any(audio_url in n for n in notes(result, "listen"))

    def test_finish_on_key_ends_it_early(self, lab: jl.Lab, audio_url: str) -> None:
        """The beep plays, keys come every interval; the finish key ends it and is reported as digits."""
        got: list[dict[str, Any]] = []

        @lab.service("/s").on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/end")
            def end(msg: jl.Message) -> None:
                got.append(msg.data)
                session.hangup().reply()

            session.listen(
                id="l1",
                url=audio_url,
                finishOnKey="#",
                maxLength=60,
                playBeep=True,
                actionHook="/end",
            ).send()

        caller = sim.Caller(inputs=[sim.Digits("12#", after=2, interval=0.5)], hangup_after=100)
        result = sim.call(lab.url + "/s", caller)
        assert result.heard == [("play", BEEP)]
        [(t, _)] = sent_hooks(result, "/end")
        assert t - answered_at(result) == pytest.approx(0.5 + 2 + 1.0, abs=0.05)
        assert (got[0]["digits"], got[0]["dial_call_duration"], got[0]["verb_id"]) == ("#", 3, "l1")

    def test_hangup_before_max_length_sends_no_action_hook(self, lab: jl.Lab, audio_url: str) -> None:
        @lab.service("/s").on("session:new")
        def new(session: jl.Session) -> None:
            session.listen(url=audio_url, maxLength=60, actionHook="/end").send()

        result = sim.call(lab.url + "/s", sim.Caller(hangup_after=5))
        assert sent_hooks(result, "/end") == []
        assert result.trace[-1].t == pytest.approx(5, abs=0.01)
        assert result.termination_by == "caller"


class TestOtherMedia:
    def test_message_action_hook_reports_success(self, lab: jl.Lab) -> None:
        """message_sid, message_status success, the carrier and a carrier message id, merged into call
        info; sent without waiting (message.js ~12, ~30, ~93–98: performAction not awaited)."""
        got: list[dict[str, Any]] = []

        @lab.service("/m").on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/sms")
            def sms(msg: jl.Message) -> None:
                got.append(msg.data)
                session.say(text="sent").hangup().reply()

            session.message(
                id="m1", to="+15550001", from_="+15550002", text="hi", carrier="Twilio", actionHook="/sms"
            )
            session.send()

        result = sim.call(lab.url + "/m", sim.Caller(hangup_after=30))
        data = got[0]
        assert (data["message_status"], data["carrier"], data["verb_id"]) == ("success", "Twilio", "m1")
        assert str(uuid.UUID(data["carrier_message_id"])) == data["carrier_message_id"]
        assert str(uuid.UUID(data["message_sid"])) == data["message_sid"]
        assert data["call_sid"] == result.call_sid
        assert result.heard == [("say", "sent")]
        assert "SMS from +15550002 to +15550001 via Twilio: 'hi'" in notes(result, "message")

    def test_message_ids_are_new_for_every_call_whatever_the_seed(self, lab: jl.Lab) -> None:
        """message_sid and carrier_message_id name one message (message.js ~93–98 takes them from the
        carrier): two calls with one seed get their own, from the call's id source (SimCall.ids)."""
        got: list[dict[str, Any]] = []

        @lab.service("/m2").on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/sms")
            def sms(msg: jl.Message) -> None:
                got.append(msg.data)
                session.hangup().reply()

            session.message(to="+15550001", from_="+15550002", text="hi", actionHook="/sms")
            session.send()

        for _ in range(2):
            sim.call(lab.url + "/m2", sim.Caller(hangup_after=30), options=sim.SimOptions(seed=7))
        assert len(got) == 2
        assert got[0]["message_sid"] != got[1]["message_sid"]
        assert got[0]["carrier_message_id"] != got[1]["carrier_message_id"]

    def test_dtmf_is_heard_and_lasts_as_jambonz_waits(self, lab: jl.Lab) -> None:
        """3 digits of 100 ms: 3 × (100 + 250) + 750 ms; it answers the call."""

        @lab.service("/d").on("session:new")
        def new(session: jl.Session) -> None:
            session.dtmf(dtmf="123", duration=100).hangup().send()

        result = sim.call(lab.url + "/d", sim.Caller(hangup_after=30))
        assert result.heard == [("dtmf", "123")]
        assert result.trace[-1].t - answered_at(result) == pytest.approx(1.8, abs=0.05)
        assert result.statuses() == ["trying", "in-progress", "completed"]

    def test_alert_and_dub_take_no_time(self, lab: jl.Lab) -> None:
        """alert is noted; dub notes action/track and what is played on a track is heard as dub."""

        @lab.service("/x").on("session:new")
        def new(session: jl.Session) -> None:
            session.say(text="hi").alert(message="check this call")
            session.dub(action="addTrack", track="music")
            session.dub(action="sayOnTrack", track="music", say="hola")
            session.dub(action="playOnTrack", track="music", play="https://x.example/m.mp3")
            session.dub(action="removeTrack", track="music")
            session.hangup().send()

        result = sim.call(lab.url + "/x", sim.Caller(hangup_after=30))
        assert result.heard == [("say", "hi"), ("dub", "hola"), ("dub", "https://x.example/m.mp3")]
        assert notes(result, "alert") == ["application alert written: 'check this call'"]
        assert notes(result, "dub") == [
            "addTrack on track 'music'",
            "sayOnTrack on track 'music'",
            "playOnTrack on track 'music'",
            "removeTrack on track 'music'",
        ]
        assert result.trace[-1].t - answered_at(result) == pytest.approx(speech_seconds("hi"), abs=0.05)


class TestMessageUnawaited:
    def test_next_verb_starts_before_the_message_ack(self, lab: jl.Lab) -> None:
        """message.js ~93–98 does not await performAction: the next verb runs at once; the ack's
        verbs replace the stack when they come. The verb's own message_sid is passed on (~12)."""

        @lab.service("/m2").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/sms", lambda msg: session.say(text="acked").hangup().reply())
            session.message(
                to="+15550001", from_="+15550002", text="hi", message_sid="sid-1", actionHook="/sms"
            )
            session.say(text="right after").send()

        result = sim.call(lab.url + "/m2", sim.Caller(hangup_after=30))
        [(_, data)] = sent_hooks(result, "/sms")
        assert data["message_sid"] == "sid-1"
        assert result.heard[0] == ("say", "right after")
        assert ("say", "acked") in result.heard
