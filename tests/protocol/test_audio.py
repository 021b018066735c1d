"""Tests for jambonz_lab.protocol.audio: the listen/stream audio socket's frames, sans I/O
(feature-server 0.9.8 ``lib/tasks/listen.js`` ~168–185 metadata, ~223–230 dtmf, ~266–281 playDone)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from jambonz_lab.exceptions import CommandError, InvalidFrame
from jambonz_lab.protocol import audio


def test_metadata_is_flat_with_defaults() -> None:
    """listen.js ~168: Object.assign({sampleRate, mixType}, callInfo, verb.metadata)."""
    text = audio.metadata_frame("c1", from_="+1", to="+2", mix_type="stereo", metadata={"agent": "a7"})
    meta = audio.parse_metadata(text)
    assert (meta.call_sid, meta.sample_rate, meta.mix_type, meta.channels) == ("c1", 8000, "stereo", 2)
    assert (meta.from_, meta.to, meta.fields["agent"]) == ("+1", "+2", "a7")
    bare = audio.parse_metadata('{"callSid": "c2"}')
    assert (bare.sample_rate, bare.mix_type, bare.channels) == (8000, "mono", 1)


@pytest.mark.parametrize(
    "raw", ["{nope", "[1]", '{"mixType": "quad"}', '{"sampleRate": 0}', '{"sampleRate": "x"}']
)
def test_bad_metadata_is_invalid_frame(raw: str) -> None:
    with pytest.raises(InvalidFrame):
        audio.parse_metadata(raw)


def test_l16_mono_and_stereo_round_trip() -> None:
    mono = np.arange(-80, 80, dtype=np.int16)
    assert audio.encode_l16(mono) == mono.astype("<i2").tobytes()
    assert np.array_equal(audio.decode_l16(audio.encode_l16(mono), 1)[0], mono)
    stereo = np.stack([mono, -mono])
    raw = audio.encode_l16(stereo)
    # interleaved: left0, right0, left1, ...
    assert raw[:4] == np.array([mono[0], -mono[0]], dtype="<i2").tobytes()
    assert np.array_equal(audio.decode_l16(raw, 2), stereo)
    assert audio.frame_size(8000, 1) == 320 and audio.frame_size(16000, 2) == 1280


def test_odd_frames_are_invalid() -> None:
    with pytest.raises(InvalidFrame):
        audio.decode_l16(b"\x00\x01\x02", 1)
    with pytest.raises(InvalidFrame):
        audio.decode_l16(b"\x00\x01", 2)


def test_events() -> None:
    dtmf = audio.parse_event(audio.dtmf_event("5", 960))
    assert (dtmf.kind, dtmf.data) == ("dtmf", {"dtmf": "5", "duration": 960})
    done = audio.parse_event(audio.play_done_event("p1", playbackSeconds=1))
    assert (done.kind, done.data["id"]) == ("playDone", "p1")
    m = audio.parse_event(audio.mark_event("m1"))
    assert (m.kind, m.data) == ("mark", {"name": "m1", "event": "playout"})
    flat = audio.parse_event('{"type": "mark", "name": "m2"}')
    assert flat.data == {"name": "m2"}
    with pytest.raises(InvalidFrame):
        audio.parse_event('{"x": 1}')


def test_play_audio_from_samples_round_trips() -> None:
    tone = (np.sin(np.arange(800) / 5) * 9000).astype(np.int16)
    frame = json.loads(audio.play_audio(tone, sample_rate=16000, id="p1"))
    assert frame["type"] == "playAudio"
    assert frame["data"]["audioContentType"] == "raw" and frame["data"]["sampleRate"] == 16000
    assert "queuePlay" not in frame["data"] and frame["data"]["id"] == "p1"
    assert base64.b64decode(frame["data"]["audioContent"]) == tone.astype("<i2").tobytes()
    samples, rate = audio.decode_play_audio(audio.parse_command(json.dumps(frame)).data)
    assert rate == 16000 and np.array_equal(samples[0], tone)


def test_play_audio_from_wav() -> None:
    tone = np.arange(400, dtype=np.int16)
    wav = audio.to_wav(tone, 24000)
    frame = json.loads(audio.play_audio(wav, queue_play=True))
    assert frame["data"]["audioContentType"] == "wav" and frame["data"]["sampleRate"] == 24000
    assert frame["data"]["queuePlay"] is True
    samples, rate = audio.decode_play_audio(frame["data"])
    assert rate == 24000 and np.array_equal(samples[0], tone)


def test_bad_play_audio_values() -> None:
    with pytest.raises(CommandError):
        audio.play_audio(np.zeros(10, dtype=np.float32))
    with pytest.raises(CommandError):
        audio.play_audio(np.array([40000]))
    with pytest.raises(CommandError):
        audio.play_audio(np.zeros((2, 4), dtype=np.int16))
    with pytest.raises(InvalidFrame):
        audio.decode_play_audio({"audioContent": "!!!"})


def test_simple_commands() -> None:
    assert json.loads(audio.kill_audio()) == {"type": "killAudio"}
    assert json.loads(audio.disconnect()) == {"type": "disconnect"}
    assert json.loads(audio.mark("m1")) == {"type": "mark", "data": {"name": "m1"}}
    assert json.loads(audio.clear_marks()) == {"type": "clearMarks"}
    with pytest.raises(CommandError):
        audio.mark("")
    assert audio.parse_command(audio.mark("m1")) == audio.AudioCommand("mark", {"name": "m1"})


def test_mark_events_as_mod_audio_fork_writes_them() -> None:
    """``send_mark_event`` (freeswitch-modules 30f2189 ``mod_audio_fork/lws_glue.cpp`` ~570-576) writes
    ``{"type": "mark", "data": {"name":"…", "event": "playout"|"cleared"}}`` by hand: these bytes."""
    for event in ("playout", "cleared"):
        raw = '{"type": "mark", "data": {"name":"m1", ' + f'"event": "{event}"' + "}}"
        m = audio.parse_event(raw)
        assert (m.kind, m.data) == ("mark", {"name": "m1", "event": event})
        assert json.loads(audio.mark_event("m1", event)) == json.loads(raw)


def test_wave_is_read_as_wav() -> None:
    """mod_audio_fork takes ``audioContentType`` ``wave`` or ``wav`` as a WAV file (``lws_glue.cpp`` ~253)."""
    clip = np.full(400, 1500, np.int16)
    content = base64.b64encode(audio.to_wav(clip, 16000)).decode()
    samples, rate = audio.decode_play_audio({"audioContent": content, "audioContentType": "wave"})
    assert rate == 16000 and np.array_equal(samples[0], clip)
    with pytest.raises(InvalidFrame, match="not raw, wav or wave"):
        audio.decode_play_audio({"audioContent": content, "audioContentType": "mp3"})
