"""The session card's level meter (issue 14 item 2): real audio sockets, real widgets, the hub's flushes.

The card's ``audio_state`` / ``audio_labels`` / ``audio_levels`` traits are written by the widget
hub's coalesced flush (``_hub.py``: at most every 150 ms, on the loop thread), read again at each
flush while the call's stream is open. Levels are RMS in dBFS over the newest 0.1 s.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.net.audio import AudioStream
from jambonz_lab.net.audio_levels import FLOOR_DBFS
from jambonz_lab.sim.caller import Audio, Tone
from tests.fakejambonz import FakeJambonz, wait_until
from tests.net.test_audio import AudioFork, tone

#: a sine of amplitude A has RMS A/sqrt(2)
TONE_DBFS = 20 * math.log10(0.3 / math.sqrt(2))  # sim.Tone's default amplitude 0.3: -13.5 dBFS
FORK_DBFS = 20 * math.log10(8000 / math.sqrt(2) / 32768)  # tests.net.test_audio.tone: -15.3 dBFS


def test_a_simulated_stream_moves_the_meter_and_the_card_says_when_it_ended(lab: jl.Lab) -> None:
    """A real-clock simulated call streams a stereo listen (the caller's tone left, the app's
    side silent right): the card shows both levels while the frames flow, then ``ended``."""
    audio = lab.audio("/audio")
    streams: list[AudioStream] = []

    @lab.service("/a").on("session:new")
    def new(session: jl.Session) -> None:
        session.on("/end", lambda msg: session.hangup().reply())
        session.listen(url=f"{lab.url}/audio", actionHook="/end", mixType="stereo").send()

    audio.on("connect", streams.append)
    caller = sim.Caller(inputs=[Audio(Tone(440, 60.0))], hangup_after=90)
    results: list[Any] = []
    placing = threading.Thread(target=lambda: results.append(lab.call("/a", caller, clock="real")))
    placing.start()
    try:
        wait_until(lambda: streams, timeout=10)
        card = jl.card(lab.session(str(streams[0].call_sid)))
        wait_until(
            lambda: (
                card.audio_state == "flowing"
                and card.audio_levels
                and abs(card.audio_levels[0] - TONE_DBFS) < 1.0
            ),
            timeout=10,
        )
        assert card.audio_labels == ["caller", "app"]
        assert card.audio_levels[1] == FLOOR_DBFS  # nobody plays on the app's side
        assert all(type(v) is float for v in card.get_state()["audio_levels"])  # numbers, never text
    finally:
        if streams:
            streams[0].disconnect()  # ends the listen verb; its actionHook hangs up
        placing.join(30)
    assert results and results[0].final_status == "completed"
    wait_until(lambda: card.audio_state == "ended", timeout=5)
    assert card.audio_levels == [FLOOR_DBFS, FLOOR_DBFS] and card.audio_labels == ["caller", "app"]
    assert "audio ended: caller -90.0 dBFS, app -90.0 dBFS" in card._repr_mimebundle_()[0]["text/html"]


def test_a_client_stream_and_the_apps_raw_audio_back_are_two_meters(lab: jl.Lab) -> None:
    """jambonz's side as a raw websockets client (mod_audio_fork's frames, as in tests/net/test_audio.py)
    on a call's socket; the app answers with bidirectional raw PCM (``send_raw``): a mono stream
    shows ``caller`` and then ``app`` too, each at its own level, while frames keep coming."""
    lab.service("/")
    service = lab.audio("/audio")
    with FakeJambonz(lab.url, "c-meter") as fj:
        fj.session_new()
        wait_until(lambda: lab.server.sessions.get("c-meter"))
        card = jl.card(lab.session("c-meter"))
        assert card.audio_state == "" and card.audio_levels == []  # no stream yet: no meter
        waiter = service.wait_for_stream(timeout=5)
        fork = AudioFork(f"{lab.url}/audio")
        try:
            fork.metadata("c-meter")
            stream = waiter.result()
            frame = tone(160)[None, :]  # 20 ms; 160 samples are 8.8 cycles of 440 Hz

            def flowing(labels: list[str]) -> bool:
                fork.stream(frame)  # the sender keeps sending while we wait
                return (
                    card.audio_state == "flowing"
                    and card.audio_labels == labels
                    and abs(card.audio_levels[0] - FORK_DBFS) < 1.0
                )

            wait_until(lambda: flowing(["caller"]), timeout=5)
            quiet = np.full(800, 1000, np.int16)  # 0.1 s of a constant 1000: -30.3 dBFS
            want_app = round(20 * math.log10(1000 / 32768), 1)

            def answering() -> bool:
                stream.send_raw(quiet)
                fork.ws.recv(3)  # what jambonz would play back
                return flowing(["caller", "app"]) and card.audio_levels[1] == want_app

            wait_until(answering, timeout=5)
            assert stream.levels().labels == ("caller", "app")
        finally:
            fork.close()
        stream.wait_for("close", timeout=5).result()
        wait_until(lambda: card.audio_state == "ended", timeout=5)
        assert card.audio_levels == [FLOOR_DBFS, FLOOR_DBFS]
        ended = stream.levels()
        assert (ended.state, ended.dbfs) == ("ended", (FLOOR_DBFS, FLOOR_DBFS))
