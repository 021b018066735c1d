"""lab.audio with the simulator on the other end: a simulated call's listen streams to the lab's own
audio endpoint (both sides of feature-server 0.9.8 ``lib/tasks/listen.js`` in one process)."""

from __future__ import annotations

import numpy as np

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.net.audio import AudioStream
from jambonz_lab.sim.caller import Audio, Tone


def test_a_simulated_listen_reaches_lab_audio_and_is_linked_to_its_session(lab: jl.Lab) -> None:
    audio = lab.audio("/audio")
    svc = lab.service("/a")
    sessions: list[jl.Session] = []
    streams: list[AudioStream] = []

    @svc.on("session:new")
    def new(session: jl.Session) -> None:
        sessions.append(session)
        session.on("/end", lambda msg: session.hangup().reply())
        session.listen(
            url=f"{lab.url}/audio", actionHook="/end", maxLength=2, mixType="stereo", passDtmf=True
        ).send()

    @audio.on("connect")
    def hello(stream: AudioStream) -> None:
        streams.append(stream)
        stream.play(np.full(1600, 1000, np.int16), id="p1")

    caller = sim.Caller(
        inputs=[Audio(Tone(440, 1.0), after=0.2), sim.Digits("5", after=1.0)], hangup_after=30
    )
    sim.call(f"{lab.url}/a", caller)
    [stream] = streams
    stream.wait_for("close", timeout=10).result()
    assert sessions[0].audio == [stream] and stream.call_sid == sessions[0].call_sid
    samples = stream.to_numpy()
    assert samples.shape == (2, 16000)  # maxLength 2 s of stereo at 8 kHz
    assert np.abs(samples[0]).max() > 1000  # the caller's tone on the left
    assert [e.kind for e in stream.events] == ["playDone", "dtmf"]
    assert stream.events[0].data["id"] == "p1"
