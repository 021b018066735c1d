"""The simulated listen/stream audio socket against a real audio server on loopback, and the call's
two-channel recording (feature-server 0.9.8 ``lib/tasks/listen.js``, FreeSWITCH mod_audio_fork)."""

from __future__ import annotations

import base64
import json
import wave
from pathlib import Path
from typing import Any

import numpy as np

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.protocol.audio import (
    SUBPROTOCOL,
    clear_marks,
    decode_l16,
    disconnect,
    encode_l16,
    kill_audio,
    mark,
    play_audio,
    to_wav,
)
from jambonz_lab.sim.audio import render
from jambonz_lab.sim.audio_socket import stream_url
from jambonz_lab.sim.caller import Audio, Tone
from jambonz_lab.sim.verbs.basic import speech_seconds
from tests.audioserver import AudioServer, Script
from tests.simtrace import notes, sent_hooks

TONE = Tone(440, 1.0)


def listen_call(
    lab: jl.Lab, caller: sim.Caller, script: Script | None = None, **listen: Any
) -> tuple[sim.CallResult, AudioServer, list[dict[str, Any]]]:
    """A call whose app streams with ``listen`` to a loopback audio server, then hangs up at its hook."""
    got: list[dict[str, Any]] = []
    with AudioServer(script) as server:

        @lab.service("/a").on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/end")
            def end(msg: jl.Message) -> None:
                got.append(msg.data)
                session.hangup().reply()

            session.listen(url=listen.pop("url", server.url), actionHook="/end", **listen).send()

        result = sim.call(lab.url + "/a", caller)
    return result, server, got


def stream_start(result: sim.CallResult) -> int:
    """The call-time sample the stream began at (the listen note's payload)."""
    [entry] = [e for e in result.trace if e.type == "listen" and isinstance(e.payload, dict)]
    return int(entry.payload["first_sample"])


class TestStream:
    def test_metadata_frames_and_the_callers_tone(self, lab: jl.Lab) -> None:
        """Metadata = {sampleRate, mixType} + callInfo (camelCase toJSON) + the verb's metadata (listen.js
        ~168–171); 8 kHz mono by default (~45–46): 320-byte frames, 20 ms each; the caller's tone arrives
        sample for sample, ``after`` s into the stream; maxLength ends it (~187–192)."""
        caller = sim.Caller(inputs=[Audio(TONE, after=0.5)], hangup_after=30)
        result, server, got = listen_call(lab, caller, maxLength=3, metadata={"agent": "a1"})
        [conn] = server.connections
        assert conn.subprotocol == SUBPROTOCOL
        meta = conn.metadata
        assert meta is not None
        assert (meta["sampleRate"], meta["mixType"], meta["agent"]) == (8000, "mono", "a1")
        assert meta["callSid"] == result.call_sid
        assert (meta["from"], meta["to"]) == (caller.number, result.trace[0].payload["data"]["to"])
        assert {len(f) for f in conn.frames} == {320}
        assert len(conn.frames) == 150
        pcm = decode_l16(b"".join(conn.frames), 1)[0]
        expected = render(TONE, 8000)
        assert np.array_equal(pcm[4000 : 4000 + expected.size], expected)
        assert not pcm[:4000].any() and not pcm[4000 + expected.size :].any()
        assert got[0]["dial_call_duration"] == 3 and "digits" not in got[0]

    def test_stereo_at_16k_puts_the_caller_left_and_the_apps_audio_right(self, lab: jl.Lab) -> None:
        """stereo: two interleaved channels (1280-byte frames at 16 kHz); the app's playAudio (raw,
        base64) plays to the caller, so it is on the right; playDone {id, …} follows (listen.js ~266–281)."""
        clip = (np.sin(np.arange(1, 1601) / 5) * 8000).astype(np.int16)
        script: Script = [(10, play_audio(clip, sample_rate=16000, id="p1"))]
        caller = sim.Caller(inputs=[Audio(TONE, after=0.2)], hangup_after=30)
        result, server, _ = listen_call(lab, caller, script, maxLength=2, sampleRate=16000, mixType="stereo")
        [conn] = server.connections
        assert {len(f) for f in conn.frames} == {1280}
        left, right = decode_l16(b"".join(conn.frames), 2)
        expected = render(TONE, 16000)
        assert np.array_equal(left[3200 : 3200 + expected.size], expected)
        start = int(np.flatnonzero(right)[0])
        assert np.array_equal(right[start : start + clip.size], clip)
        assert not right[start + clip.size :].any()
        [done] = [e for e in conn.events if e.get("type") == "playDone"]
        assert done["data"]["id"] == "p1" and done["data"]["playbackMilliseconds"] == 100
        # the recording has it on the app side at the call time it played (8 kHz: every other sample)
        rec = result.recording(16000)
        first = stream_start(result)
        assert np.array_equal(rec[1, first + start : first + start + clip.size], clip)

    def test_mixed_sums_both_legs_in_one_channel(self, lab: jl.Lab) -> None:
        script: Script = [(5, play_audio(np.full(800, 1000, np.int16), sample_rate=8000))]
        caller = sim.Caller(inputs=[Audio(np.full(8000, 500, np.int16), rate=8000)], hangup_after=30)
        _, server, _ = listen_call(lab, caller, script, maxLength=1, mixType="mixed")
        [conn] = server.connections
        assert {len(f) for f in conn.frames} == {320}
        pcm = decode_l16(b"".join(conn.frames), 1)[0]
        assert set(np.unique(pcm)) == {500, 1500}

    def test_pass_dtmf_and_finish_on_key(self, lab: jl.Lab) -> None:
        """passDtmf: {event: "dtmf", dtmf, duration} per key (listen.js ~223–231); the finishOnKey key
        ends the stream and is the hook's digits (~243–247); the keys' tones are in the caller's audio."""
        caller = sim.Caller(inputs=[sim.Digits("12#3", after=1, interval=0.5)], hangup_after=30)
        result, server, got = listen_call(lab, caller, passDtmf=True, finishOnKey="#", maxLength=20)
        [conn] = server.connections
        assert [(e["event"], e["dtmf"]) for e in conn.events] == [("dtmf", "1"), ("dtmf", "2"), ("dtmf", "#")]
        assert got[0]["digits"] == "#" and got[0]["dial_call_duration"] == 2
        assert len(conn.frames) in (100, 101)
        pcm = decode_l16(b"".join(conn.frames), 1)[0]
        assert pcm[8000:8800].any() and not pcm[7000:7990].any()  # key "1" sounds from 1 s

    def test_disconnect_ends_the_verb_and_the_action_hook_fires(self, lab: jl.Lab) -> None:
        """The app's disconnect kills the task (listen.js ~313–317); wsAuth is Basic auth (~172–177)."""
        caller = sim.Caller(inputs=[Audio(2.0)], hangup_after=30)  # 2 s of silence to stream
        result, server, got = listen_call(
            lab, caller, [(25, disconnect())], wsAuth={"username": "u", "password": "p"}
        )
        [conn] = server.connections
        assert conn.headers["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
        assert 25 <= len(conn.frames) < 60
        assert got and got[0]["dial_call_duration"] == 0
        assert "stream ended (disconnect)" in notes(result, "listen")

    def test_the_app_closing_the_socket_ends_the_verb(self, lab: jl.Lab) -> None:
        """mod_audio_fork reports a connection dropped by the far end as a disconnect."""
        caller = sim.Caller(inputs=[Audio(2.0)], hangup_after=30)
        result, server, got = listen_call(lab, caller, [(10, None)])
        assert got and "stream ended (closed)" in notes(result, "listen")

    def test_a_failed_connect_ends_it_with_no_results(self, lab: jl.Lab) -> None:
        """connect failure: notifyTaskDone with empty results (listen.js ~260–264); the hook still goes."""
        result, server, got = listen_call(lab, sim.Caller(hangup_after=30), url="ws://127.0.0.1:9/none")
        assert got and "dial_call_duration" not in got[0]
        assert any("cannot connect" in n for n in notes(result, "listen"))

    def test_a_mark_is_not_answered_in_play_audio_mode(self, lab: jl.Lab) -> None:
        """mod_audio_fork reports marks from its write-replace callback (``dub_speech_frame``,
        freeswitch-modules 30f2189 ``lws_glue.cpp`` ~932-1050), which ``mod_audio_fork.c`` adds only
        for a bidirectional *streaming* fork (~48-50, ~275-279): with playAudio a mark never comes back."""
        clip = np.full(1600, 300, np.int16)
        script: Script = [(5, play_audio(clip, sample_rate=8000, id="c")), (6, mark("m1"))]
        result, server, _ = listen_call(lab, sim.Caller(hangup_after=30), script, maxLength=5)
        [conn] = server.connections
        kinds = [(e["type"], e["data"].get("name") or e["data"].get("id")) for e in conn.events]
        assert kinds == [("playDone", "c")]
        assert any("marks need bidirectional streaming" in n for n in notes(result, "listen"))


class TestAppAudio:
    def test_kill_audio_cuts_what_plays_and_the_queue_plays_on(self, lab: jl.Lab) -> None:
        """killAudio is uuid_break (listen.js ~307–311): the playing file stops, its playDone follows with
        what played (~266–281); a queuePlay file waiting in the queue plays next, from the kill."""
        long = np.full(8000, 700, np.int16)  # 1 s
        short = np.full(800, 900, np.int16)  # 0.1 s
        script: Script = [
            (5, play_audio(long, sample_rate=8000, id="long")),
            (5, play_audio(short, sample_rate=8000, id="short", queue_play=True)),
            (20, kill_audio()),
        ]
        result, server, _ = listen_call(
            lab, sim.Caller(hangup_after=30), script, maxLength=2, mixType="stereo"
        )
        [conn] = server.connections
        done = [e["data"] for e in conn.events if e["type"] == "playDone"]
        assert [d["id"] for d in done] == ["long", "short"]
        assert 0 < done[0]["playbackMilliseconds"] < 1000 and done[1]["playbackMilliseconds"] == 100
        right = decode_l16(b"".join(conn.frames), 2)[1]
        played = right[right != 0]
        assert set(np.unique(played)) == {700, 900}
        assert (played == 700).sum() < long.size and (played == 900).sum() == short.size
        last_long = int(np.flatnonzero(right == 700)[-1])
        assert right[last_long + 1] == 900  # the queued clip starts where the kill cut the first
        rec = result.recording()
        assert (rec[1] == 700).sum() == (played == 700).sum()

    def test_bidirectional_streaming_plays_binary_frames_back_to_back(self, lab: jl.Lab) -> None:
        """bidirectionalAudio.streaming: the app's binary L16 frames, at bidirectionalAudio.sampleRate,
        play one after another (lws_glue.cpp processIncomingBinary); playAudio is ignored then; a mark
        after them is reached once they played."""
        chunks = [np.full(320, v, np.int16) for v in (100, 200, 300)]  # 20 ms each at 16 kHz
        script: Script = [(5, encode_l16(c)) for c in chunks]
        script += [(5, play_audio(np.full(800, 5000, np.int16), sample_rate=8000)), (5, mark("after"))]
        bidi = {"enabled": True, "streaming": True, "sampleRate": 16000}
        result, server, _ = listen_call(
            lab, sim.Caller(hangup_after=30), script, maxLength=1, mixType="stereo", bidirectionalAudio=bidi
        )
        [conn] = server.connections
        right = decode_l16(b"".join(conn.frames), 2)[1]  # the stream is 8 kHz: 160 samples a chunk
        voiced = right[right != 0]
        assert list(np.unique(voiced)) == [100, 200, 300] and voiced.size == 480
        start = int(np.flatnonzero(right)[0])
        assert [int(right[start + i * 160]) for i in range(3)] == [100, 200, 300]
        assert [(e["type"], e["data"]) for e in conn.events] == [
            ("mark", {"name": "after", "event": "playout"})
        ]
        assert any(
            "playAudio needs bidirectionalAudio enabled, not streaming" in n for n in notes(result, "listen")
        )
        rec = result.recording(16000)
        assert sorted(set(np.unique(rec[1])) - {0}) == [100, 200, 300]

    def test_kill_audio_while_streaming_clears_the_marks(self, lab: jl.Lab) -> None:
        """Streaming: killAudio drops the queued PCM and clears the marks not reached (event "cleared")."""
        pcm = encode_l16(np.full(8000, 400, np.int16))  # 1 s at 8 kHz in one binary message
        script: Script = [(5, pcm), (5, mark("m")), (10, kill_audio())]
        bidi = {"enabled": True, "streaming": True, "sampleRate": 8000}
        _, server, _ = listen_call(
            lab, sim.Caller(hangup_after=30), script, maxLength=2, mixType="stereo", bidirectionalAudio=bidi
        )
        [conn] = server.connections
        assert [(e["type"], e["data"]) for e in conn.events] == [("mark", {"name": "m", "event": "cleared"})]
        right = decode_l16(b"".join(conn.frames), 2)[1]
        assert 0 < (right == 400).sum() < 8000

    def test_clear_marks_drops_the_pending_marks_without_a_word(self, lab: jl.Lab) -> None:
        """clearMarks (``lws_glue.cpp`` ~321-332) moves the pending marks to the "cleared" list: no
        event for them, ever; a mark after it is answered (``send_mark_event`` ~570-576)."""
        pcm = encode_l16(np.full(4000, 300, np.int16))  # 0.5 s
        script: Script = [(5, pcm), (5, mark("m")), (6, clear_marks()), (7, pcm), (7, mark("n"))]
        bidi = {"enabled": True, "streaming": True, "sampleRate": 8000}
        _, server, _ = listen_call(
            lab, sim.Caller(hangup_after=30), script, maxLength=2, bidirectionalAudio=bidi
        )
        [conn] = server.connections
        assert [(e["type"], e["data"]) for e in conn.events] == [("mark", {"name": "n", "event": "playout"})]

    def test_marks_with_no_audio_after_them_come_one_per_frame(self, lab: jl.Lab) -> None:
        """Marks wait in mod_audio_fork's "inventory" until binary audio follows (``processIncomingBinary``
        ~79-101 puts them before it); with none, once the buffer ran dry ``dub_speech_frame`` answers
        one inventory mark per 20 ms frame (~1035-1043)."""
        script: Script = [(5, encode_l16(np.full(800, 300, np.int16)))]  # 0.1 s, then three marks
        script += [(5, mark("a")), (5, mark("b")), (5, mark("c"))]
        bidi = {"enabled": True, "streaming": True, "sampleRate": 8000}
        result, server, _ = listen_call(
            lab, sim.Caller(hangup_after=30), script, maxLength=1, mixType="stereo", bidirectionalAudio=bidi
        )
        [conn] = server.connections
        assert [e["data"]["name"] for e in conn.events] == ["a", "b", "c"]
        first = conn.event_frames[0]
        assert conn.event_frames == [first, first + 1, first + 2]  # one a frame, in order
        assert 10 <= first <= 12  # once the 0.1 s sent before them has played

    def test_more_than_thirty_pending_marks_are_dropped(self, lab: jl.Lab) -> None:
        """``MAX_MARKS`` 30 (``lws_glue.cpp`` ~31, ~43-49, ~306-308): the 31st pending mark is dropped."""
        script: Script = [(5, encode_l16(np.full(8000, 300, np.int16)))]  # 1 s: the marks stay pending
        script += [(5, mark(f"m{i}")) for i in range(31)]
        bidi = {"enabled": True, "streaming": True, "sampleRate": 8000}
        result, server, _ = listen_call(
            lab, sim.Caller(hangup_after=30), script, maxLength=2, bidirectionalAudio=bidi
        )
        [conn] = server.connections
        assert [e["data"]["name"] for e in conn.events] == [f"m{i}" for i in range(30)]
        assert any("30 marks pending; mark 'm30' dropped" in n for n in notes(result, "listen"))

    def test_an_error_from_the_app_ends_the_verb(self, lab: jl.Lab) -> None:
        """``{"type":"error"}``: mod_audio_fork raises ``mod_audio_fork::error`` (``lws_glue.cpp`` ~348-352)
        and listen's ``_onError`` ends the task (``listen.js`` ~318-322); the actionHook follows."""
        script: Script = [(10, '{"type": "error", "data": {"reason": "app gave up"}}')]
        caller = sim.Caller(inputs=[Audio(TONE)], hangup_after=30)  # 1 s: 50 frames but for the error
        result, server, got = listen_call(lab, caller, script)
        [conn] = server.connections
        assert got and 10 <= len(conn.frames) < 20
        assert "stream ended (error)" in notes(result, "listen")

    def test_wave_is_a_wav_content_type(self, lab: jl.Lab) -> None:
        """playAudio's audioContentType ``wave`` is a WAV file as ``wav`` is (``lws_glue.cpp`` ~253)."""
        clip = np.full(800, 1200, np.int16)
        frame = json.loads(play_audio(to_wav(clip, 8000), id="w"))
        frame["data"]["audioContentType"] = "wave"
        result, server, _ = listen_call(
            lab, sim.Caller(hangup_after=30), [(5, json.dumps(frame))], maxLength=1, mixType="stereo"
        )
        [conn] = server.connections
        assert [(e["type"], e["data"]["id"]) for e in conn.events] == [("playDone", "w")]
        right = decode_l16(b"".join(conn.frames), 2)[1]
        assert (right == 1200).sum() == clip.size

    def test_streaming_needs_a_sample_rate_and_not_enabled(self, lab: jl.Lab) -> None:
        """drachtio-fsmrf 4.1.2 ``forkAudioStart`` (``lib/endpoint.js`` ~1067-1071) sends ``enabled ||
        'true'``, ``streaming || 'false'``, ``sampleRate || ''`` as the last fields; FreeSWITCH drops a
        trailing empty field (``src/switch_utils.c`` ~2771-2803), so without a sampleRate
        ``mod_audio_fork.c`` (~263-287) keeps its defaults: a plain fork, playAudio plays, binary audio
        is never played. With one, ``enabled: false`` still streams (it reaches the module as true)."""
        pcm = encode_l16(np.full(1600, 400, np.int16))
        clip = np.full(800, 900, np.int16)
        script: Script = [(5, pcm), (5, play_audio(clip, sample_rate=8000, id="p"))]
        no_rate = {"enabled": True, "streaming": True}
        result, server, _ = listen_call(
            lab,
            sim.Caller(hangup_after=30),
            script,
            maxLength=1,
            mixType="stereo",
            bidirectionalAudio=no_rate,
        )
        [conn] = server.connections
        right = decode_l16(b"".join(conn.frames), 2)[1]
        assert set(np.unique(right)) == {0, 900}  # the playAudio, not the binary audio
        assert [(e["type"], e["data"]["id"]) for e in conn.events] == [("playDone", "p")]
        assert any("streaming without sampleRate" in n for n in notes(result, "listen"))

        disabled = {"enabled": False, "streaming": True, "sampleRate": 8000}
        _, server, _ = listen_call(
            lab,
            sim.Caller(hangup_after=30),
            script,
            maxLength=1,
            mixType="stereo",
            bidirectionalAudio=disabled,
        )
        [conn] = server.connections
        right = decode_l16(b"".join(conn.frames), 2)[1]
        assert set(np.unique(right)) == {0, 400}  # the binary audio plays; playAudio is ignored
        assert conn.events == []


class TestNestedTranscribe:
    def test_speech_during_the_stream_becomes_transcription_hooks_and_their_acks_are_ignored(
        self, lab: jl.Lab
    ) -> None:
        """listen's ``transcribe`` is a nested transcribe task (``listen.js`` ~64, ~83-91): each Speech
        after the stream's Audio is a transcriptionHook ``after`` s after the one before, as the
        transcribe verb's; the ack's verbs are ignored (``transcribe.js`` ~708, ``!this.parentTask``);
        it is killed with the stream (~98, ~121-124): speech not final by then is never transcribed."""
        hooks: list[dict[str, Any]] = []
        ended: list[dict[str, Any]] = []
        with AudioServer() as server:

            @lab.service("/a").on("session:new")
            def new(session: jl.Session) -> None:
                @session.on("/tx")
                def tx(msg: jl.Message) -> None:
                    hooks.append(msg.data)
                    session.say(text="never said").reply()  # a nested transcribe's ack is ignored

                @session.on("/end")
                def end(msg: jl.Message) -> None:
                    ended.append(msg.data)
                    session.hangup().reply()

                session.listen(
                    url=server.url,
                    actionHook="/end",
                    maxLength=4,
                    transcribe={"transcriptionHook": "/tx", "recognizer": {"vendor": "google"}},
                ).send()

            caller = sim.Caller(
                inputs=[
                    Audio(TONE),
                    sim.Speech("hello there", after=1.5),
                    sim.Speech("second thing", after=1.0),
                    sim.Speech("too late", after=5.0),
                ],
                hangup_after=30,
            )
            result = sim.call(lab.url + "/a", caller)
        [conn] = server.connections
        start = stream_start(result) / 8000
        sent = sent_hooks(result, "/tx")
        assert [round(t - start, 2) for t, _ in sent] == [1.5, 2.5]  # on the stream's 20 ms frames
        texts = [h["speech"]["alternatives"][0]["transcript"] for h in hooks]
        assert texts == ["hello there", "second thing"]
        assert hooks[0]["speech"]["is_final"] is True and hooks[0]["call_sid"] == result.call_sid
        assert result.heard == [] and ended and ended[0]["dial_call_duration"] == 4
        assert any("ack are ignored" in n for n in notes(result, "transcription"))
        pcm = decode_l16(b"".join(conn.frames), 1)[0]
        assert len(conn.frames) == 200

        def heard(a: float, b: float) -> Any:  # the stream's caller audio from a to b s into it
            return pcm[int(a * 8000) : int(b * 8000)]

        # each utterance sounds (a placeholder) in the stream before its final; the third one would
        # have ended at 7.5 s, so it is not in these 4 s and was never transcribed
        assert heard(1.05, 1.45).any() and heard(1.55, 2.45).any()
        assert not heard(2.55, 4.0).any()


class TestRecording:
    def test_length_is_the_call_and_the_tone_is_at_its_call_time(self, lab: jl.Lab, tmp_path: Path) -> None:
        caller = sim.Caller(inputs=[Audio(TONE, after=0.5)], hangup_after=10)
        result, _, _ = listen_call(lab, caller, maxLength=3)
        rec = result.recording()
        assert result.audio.end is not None
        assert rec.shape == (2, round(result.audio.end * 8000))
        at = stream_start(result) + 4000
        assert np.array_equal(rec[0, at : at + 8000], render(TONE, 8000))
        path = result.save_wav(tmp_path / "call.wav")
        with wave.open(str(path)) as w:
            assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 8000, rec.shape[1])

    def test_say_is_a_placeholder_of_its_length_on_the_app_side(self, lab: jl.Lab) -> None:
        text = "thanks for calling the lab today"

        @lab.service("/s").on("session:new")
        def new(session: jl.Session) -> None:
            session.say(text=text).hangup().send()

        result = sim.call(lab.url + "/s", sim.Caller(hangup_after=30))
        rec = result.recording()
        voiced = np.flatnonzero(rec[1])
        seconds = (voiced[-1] - voiced[0] + 1) / 8000
        assert abs(seconds - speech_seconds(text)) < 0.01
        assert not rec[0].any()

    def test_caller_speech_is_a_placeholder_ending_at_its_final(self, lab: jl.Lab) -> None:
        @lab.service("/g").on("session:new")
        def new(session: jl.Session) -> None:
            session.gather(input=["speech"], actionHook="/g2", timeout=5).send()
            session.on("/g2", lambda msg: msg.reply([{"verb": "hangup"}]))

        caller = sim.Caller(inputs=[sim.Speech("book a car", after=3)], hangup_after=30)
        result = sim.call(lab.url + "/g", caller)
        voiced = np.flatnonzero(result.recording()[0])
        assert voiced.size and voiced[-1] / 8000 < 3.2


def test_relative_urls_resolve_against_the_apps_base() -> None:
    class Call:
        url = "ws://127.0.0.1:3000/app/path"

    assert stream_url(Call(), "/audio") == "ws://127.0.0.1:3000/audio"  # type: ignore[arg-type]
    assert stream_url(Call(), "wss://x/y") == "wss://x/y"  # type: ignore[arg-type]
