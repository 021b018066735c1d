"""Audio endpoints: a real ``websockets`` client plays jambonz's side of a listen/stream socket.

What the client does is what FreeSWITCH's mod_audio_fork does for feature-server 0.9.8
``lib/tasks/listen.js``: subprotocol ``audio.drachtio.org``; one JSON metadata text frame,
``Object.assign({sampleRate, mixType}, callInfo, verb.metadata)`` (~168–185); binary L16 frames
(20 ms here); ``{"event":"dtmf","dtmf","duration"}`` with passDtmf (~223–230);
``{"type":"playDone","data":{"id",…}}`` after a playAudio (~266–281).
"""

from __future__ import annotations

import base64
import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
from websockets.sync.client import ClientConnection, connect

import jambonz_lab as jl
from jambonz_lab.net.audio import AudioStream
from jambonz_lab.protocol import audio as wire
from tests.fakejambonz import FakeJambonz, http, wait_until


class AudioFork:
    """jambonz's side of one audio socket (mod_audio_fork)."""

    def __init__(self, url: str) -> None:
        self.ws: ClientConnection = connect(url, subprotocols=[wire.SUBPROTOCOL], open_timeout=5).__enter__()  # type: ignore[list-item]

    def metadata(
        self, call_sid: str, *, mix_type: str = "mono", sample_rate: int = 8000, **extra: Any
    ) -> None:
        self.ws.send(
            wire.metadata_frame(
                call_sid,
                from_="+14155550100",
                to="+16175550199",
                sample_rate=sample_rate,
                mix_type=mix_type,
                call_info={"direction": "inbound", "accountSid": "acct"},
                metadata=extra,
            )
        )

    def stream(self, samples: np.ndarray[Any, Any], sample_rate: int = 8000) -> int:
        """Send ``samples`` (channels, n) as 20 ms L16 frames; returns how many frames."""
        step = sample_rate // 50
        frames = 0
        for start in range(0, samples.shape[1], step):
            self.ws.send(wire.encode_l16(samples[:, start : start + step]))
            frames += 1
        return frames

    def recv_json(self, timeout: float = 3.0) -> dict[str, Any]:
        frame = self.ws.recv(timeout)
        assert isinstance(frame, str), f"expected a text frame, got {len(frame)} bytes"
        obj: dict[str, Any] = json.loads(frame)
        return obj

    def close(self) -> None:
        self.ws.close()


def tone(n: int, freq: float = 440.0, rate: int = 8000, amp: int = 8000) -> np.ndarray[Any, Any]:
    return (np.sin(2 * np.pi * freq * np.arange(n) / rate) * amp).astype(np.int16)


def audio_rows(lab: jl.Lab, call_sid: str | None = None) -> list[dict[str, Any]]:
    return [
        r
        for r in lab.log.rows()
        if str(r["type"]).startswith("audio:") and (call_sid is None or r["call_sid"] == call_sid)
    ]


def test_mono_metadata_audio_and_dtmf(lab: jl.Lab) -> None:
    service = lab.audio("/audio")
    connected: list[AudioStream] = []
    service.on("connect", connected.append)
    waiter = service.wait_for_stream(timeout=5)
    fork = AudioFork(f"{lab.url}/audio")
    try:
        fork.metadata("c-mono", agent="a7")
        stream = waiter.result()
        assert (stream.call_sid, stream.sample_rate, stream.mix_type, stream.channels) == (
            "c-mono",
            8000,
            "mono",
            1,
        )
        assert stream.metadata.fields["agent"] == "a7" and stream.metadata.fields["direction"] == "inbound"
        sent = tone(8000)
        dtmf = stream.wait_for("dtmf", timeout=5)
        frames = fork.stream(sent[None, :])
        fork.ws.send(wire.dtmf_event("5", 960))
        assert dtmf.result() == {"dtmf": "5", "duration": 960}
        wait_until(lambda: stream.frames == frames)
        got = stream.to_numpy()
        assert got.shape == (8000,) and np.array_equal(got, sent)
        assert stream.duration == 1.0
        wait_until(lambda: connected == [stream])
    finally:
        fork.close()
    assert stream.wait_for("close", timeout=5).result() is not None
    types = [r["type"] for r in audio_rows(lab, "c-mono")]
    assert types == ["audio:metadata", "audio:dtmf", "audio:close"]
    close = audio_rows(lab, "c-mono")[-1]
    assert close["payload"]["frames"] == frames and close["transport"] == "ws"
    assert all(len(json.dumps(r["payload"])) < 2000 for r in audio_rows(lab))  # no audio in rows
    assert audio_rows(lab)[0]["type"] == "audio:connect"


def test_stereo_is_deinterleaved(lab: jl.Lab) -> None:
    service = lab.audio("/audio")
    waiter = service.wait_for_stream(timeout=5)
    fork = AudioFork(f"{lab.url}/audio/stereo")  # a sub-path is the same endpoint
    try:
        fork.metadata("c-st", mix_type="stereo", sample_rate=16000)
        stream = waiter.result()
        sent = np.stack([tone(3200, rate=16000), tone(3200, 1000.0, rate=16000, amp=3000)])
        frames = fork.stream(sent, 16000)
        wait_until(lambda: stream.frames == frames)
        got = stream.to_numpy()
        assert got.shape == (2, 3200) and np.array_equal(got, sent)
        assert stream.path == "/audio/stereo"
    finally:
        fork.close()


def test_commands_reach_jambonz_as_listen_reads_them(lab: jl.Lab, tmp_path: Path) -> None:
    service = lab.audio("/audio")
    waiter = service.wait_for_stream(timeout=5)
    fork = AudioFork(f"{lab.url}/audio")
    try:
        fork.metadata("c-cmd")
        stream = waiter.result()
        clip = tone(1600, 300.0)
        stream.play(clip, id="p1")
        play = fork.recv_json()
        assert play["type"] == "playAudio" and play["data"]["audioContentType"] == "raw"
        assert play["data"]["sampleRate"] == 8000 and play["data"]["id"] == "p1"
        assert "queuePlay" not in play["data"]
        back = np.frombuffer(base64.b64decode(play["data"]["audioContent"]), dtype="<i2")
        assert np.array_equal(back, clip)

        stream.play(wire.to_wav(clip, 16000), queue_play=True)
        wav = fork.recv_json()["data"]
        assert (wav["audioContentType"], wav["sampleRate"], wav["queuePlay"]) == ("wav", 16000, True)
        stream.kill()
        assert fork.recv_json() == {"type": "killAudio"}
        stream.mark("m1")
        assert fork.recv_json() == {"type": "mark", "data": {"name": "m1"}}
        stream.clear_marks()
        assert fork.recv_json() == {"type": "clearMarks"}
        stream.send_raw(clip[:160])
        assert fork.ws.recv(3) == clip[:160].astype("<i2").tobytes()

        done = stream.wait_for("playDone", timeout=5)
        fork.ws.send(wire.play_done_event("p1", playbackSeconds=0.2))
        assert done.result()["id"] == "p1"
        marked = stream.wait_for("mark", timeout=5)
        fork.ws.send(wire.mark_event("m1"))
        assert marked.result() == {"name": "m1", "event": "playout"}

        stream.disconnect()
        assert fork.recv_json() == {"type": "disconnect"}
    finally:
        fork.close()
    rows = audio_rows(lab, "c-cmd")
    out = [r["type"] for r in rows if r["direction"] == "out"]
    assert out == [
        "audio:playAudio",
        "audio:playAudio",
        "audio:killAudio",
        "audio:mark",
        "audio:clearMarks",
        "audio:disconnect",
    ]
    first = rows[[r["type"] for r in rows].index("audio:playAudio")]["payload"]
    assert first["data"]["bytes"] == 3200 and first["data"]["seconds"] == 0.2
    assert "audioContent" not in first["data"]


def test_a_long_stream_spills_to_a_wav_file_and_keeps_everything(lab: jl.Lab, tmp_path: Path) -> None:
    service = lab.audio("/audio", keep_seconds=0.5, spill_dir=tmp_path)
    waiter = service.wait_for_stream(timeout=5)
    fork = AudioFork(f"{lab.url}/audio")
    try:
        fork.metadata("c-long")
        stream = waiter.result()
        sent = np.random.default_rng(7).integers(-20000, 20000, 8000 * 3, dtype=np.int16)
        frames = fork.stream(sent[None, :])
        wait_until(lambda: stream.frames == frames)
        assert stream.spill_path is not None and Path(stream.spill_path).parent == tmp_path
        assert len(stream.latest(10.0)) <= 4000 + 160  # memory holds about keep_seconds
        assert np.array_equal(stream.to_numpy(), sent)
    finally:
        fork.close()
    stream.wait_for("close", timeout=5).result()
    target = tmp_path / "whole.wav"
    assert stream.save_wav(target) == sent.size
    with wave.open(str(target), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (1, 8000, sent.size)
    assert audio_rows(lab, "c-long")[-1]["payload"]["spilled"] == stream.spill_path


def test_bad_frames_are_rows_and_the_stream_goes_on(lab: jl.Lab) -> None:
    service = lab.audio("/audio")
    waiter = service.wait_for_stream(timeout=5)
    fork = AudioFork(f"{lab.url}/audio")
    try:
        fork.ws.send("{not json")  # a broken metadata frame: reported, the next one is tried
        fork.metadata("c-bad", mix_type="stereo")
        stream = waiter.result()
        fork.ws.send(b"\x01\x02\x03")  # odd length
        fork.ws.send(b"\x01\x02")  # one sample of a two-channel stream
        fork.ws.send("[1, 2")
        good = np.stack([tone(160), tone(160, 700.0)])
        fork.stream(good)
        dtmf = stream.wait_for("dtmf", timeout=5)
        fork.ws.send(wire.dtmf_event("#"))
        assert dtmf.result()["dtmf"] == "#"
        assert stream.frames == 1 and np.array_equal(stream.to_numpy(), good)
    finally:
        fork.close()
    invalid = [r for r in lab.log.rows() if r["type"] == "audio:invalid"]
    assert len(invalid) == 4 and all(r["direction"] == "lab" for r in invalid)
    assert "not JSON" in invalid[0]["note"] and invalid[0]["call_sid"] is None
    assert "3 bytes" in invalid[1]["note"] and invalid[1]["call_sid"] == "c-bad"


def test_a_handler_error_is_reported_and_later_events_still_run(lab: jl.Lab) -> None:
    service = lab.audio("/audio")
    seen: list[str] = []

    @service.on("connect")
    def hello(stream: AudioStream) -> None:
        def boom(data: dict[str, Any]) -> None:
            seen.append(data["dtmf"])
            raise RuntimeError("oops")

        stream.on("dtmf", boom)

    waiter = service.wait_for_stream(timeout=5)
    fork = AudioFork(f"{lab.url}/audio")
    try:
        fork.metadata("c-h")
        waiter.result()
        fork.ws.send(wire.dtmf_event("1"))  # maybe before hello() registered boom: it still sees it
        fork.ws.send(wire.dtmf_event("2"))
        wait_until(lambda: seen == ["1", "2"])
    finally:
        fork.close()
    wait_until(lambda: len([r for r in lab.log.rows() if r["type"] == "handler-error"]) == 2)


def test_session_audio_links_the_call(lab: jl.Lab) -> None:
    """The audio socket's callSid is the call's: ``session.audio`` lists its streams."""
    lab.service("/")
    service = lab.audio("/audio")
    with FakeJambonz(lab.url, "c-linked") as fj:
        fj.session_new()
        wait_until(lambda: lab.server.sessions.get("c-linked"))
        session = lab.session("c-linked")
        waiter = service.wait_for_stream(timeout=5)
        fork = AudioFork(f"{lab.url}/audio")
        try:
            fork.metadata("c-linked")
            stream = waiter.result()
            assert session.audio == [stream]
        finally:
            fork.close()
    other = AudioFork(f"{lab.url}/audio")
    try:
        waiter = service.wait_for_stream(timeout=5)
        other.metadata("nobody")
        assert waiter.result().call_sid == "nobody"
    finally:
        other.close()
    assert session.audio == [stream]


def test_notebook_views(lab: jl.Lab, tmp_path: Path) -> None:
    service = lab.audio("/audio")
    waiter = service.wait_for_stream(timeout=5)
    fork = AudioFork(f"{lab.url}/audio")
    try:
        fork.metadata("c-view", mix_type="stereo")
        stream = waiter.result()
        frames = fork.stream(np.stack([tone(4000, 500.0), tone(4000, 2000.0)]))
        wait_until(lambda: stream.frames == frames)
    finally:
        fork.close()
    from matplotlib.figure import Figure

    wave_fig = stream.waveform()
    spec_fig = stream.spectrogram()
    assert isinstance(wave_fig, Figure) and len(wave_fig.axes) == 2
    assert isinstance(spec_fig, Figure) and len(spec_fig.axes) == 4  # two spectrograms, two colorbars
    audio = stream.player()
    assert audio.data[:4] == b"RIFF"


def test_the_spectrum_peaks_at_the_tone() -> None:
    from jambonz_lab.net.audio_views import spectrum

    power, freqs, _times = spectrum(tone(8000, 1000.0), 8000, window=256)
    assert abs(freqs[int(power.mean(axis=1).argmax())] - 1000.0) <= 8000 / 256


def test_audio_before_metadata_is_one_row_and_plain_http_is_told_what_the_path_is(lab: jl.Lab) -> None:
    service = lab.audio("/audio")
    status, text = http("GET", f"{lab.url}/audio")
    assert status == 426 and "audio.drachtio.org" in text
    waiter = service.wait_for_stream(timeout=5)
    fork = AudioFork(f"{lab.url}/audio")
    try:
        for _ in range(5):
            fork.ws.send(b"\x00\x00" * 160)
        fork.metadata("c-early")
        stream = waiter.result()
    finally:
        fork.close()
    stream.wait_for("close", timeout=5).result()
    rows = [r for r in lab.log.rows() if r["type"] == "audio:invalid"]
    assert len(rows) == 1 and "before the metadata" in rows[0]["note"]
    assert audio_rows(lab, "c-early")[-1]["payload"]["dropped_before_metadata"] == 5
    assert stream.frames == 0
