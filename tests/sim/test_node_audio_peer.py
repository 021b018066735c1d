"""The simulator's audio socket against an audio endpoint nobody here wrote: ``@jambonz/sdk``'s
``AudioStream`` (``createEndpoint(...)`` → ``makeService.audio({path})``, dist/index.cjs ~1017–1140,
~1249–1254).

The Node app below is one process on a free loopback port: its WebSocket service answers
``session:new`` with a ``listen`` to its own audio path (``/audio``, resolved against the app's
base as jambonz does, ``call-session.js`` ``normalizeUrl`` ~1435–1456), with ``passDtmf`` and
``finishOnKey: "#"``. Its audio handler keeps every binary frame; on the caller's key ``1``
(the sdk's ``dtmf`` event, ``{digit, duration}``) it sends a known clip and a mark — as a
``playAudio``, or (``bidirectionalAudio.streaming``) as 20 ms binary frames with ``sendAudio``;
when the socket closes it writes the PCM it got to a file and prints frame count, bytes and a
SHA-256 as a JSON line. The simulated caller plays a known tone (``sim.Audio(sim.Tone())``).

The installs come from :mod:`tests.sim.test_node_webhook_peer`'s session fixture (@jambonz/sdk
0.10.x); skipped when ``node`` or ``npm`` is missing.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jambonz_lab import sim
from jambonz_lab.protocol.audio import decode_l16, encode_l16
from jambonz_lab.sim import SimOptions
from jambonz_lab.sim.audio import render
from tests.fakejambonz import wait_until
from tests.sim.test_node_peer import _free_port, _listening, pytestmark  # noqa: F401 (skip marker)
from tests.sim.test_node_webhook_peer import sdk_dir  # noqa: F401 (the npm install fixture)

OPTIONS = SimOptions(ack_timeout=2.0, idle_wait=0.3)
TONE = sim.Tone(440, 1.0)
#: the clip the app plays back: 0.25 s of a 1 kHz sine at 8 kHz (no zero sample), built the same way in Node
CLIP = np.round(np.sin(2 * np.pi * 1000 * np.arange(2000) / 8000 + 0.3) * 6000).astype(np.int16)

APP = """
const http = require('http');
const fs = require('fs');
const crypto = require('crypto');
const { createEndpoint } = require('@jambonz/sdk/websocket');
const port = Number(process.argv[2]);
const out = process.argv[3];
const mode = process.argv[4];  // 'play': playAudio; 'stream': bidirectional PCM with sendAudio
const server = http.createServer();
const makeService = createEndpoint({ server, port });
const log = (o) => console.log(JSON.stringify(o));

const clip = Buffer.alloc(2000 * 2);
for (let i = 0; i < 2000; i++) {
  clip.writeInt16LE(Math.round(Math.sin(2 * Math.PI * 1000 * i / 8000 + 0.3) * 6000), i * 2);
}

makeService({ path: '/call' }).on('session:new', (session) => {
  log({ event: 'session:new', call_sid: session.callSid });
  session.on('/listen-done', (evt) => {
    log({ event: '/listen-done', digits: evt.digits, dial_call_duration: evt.dial_call_duration });
    session.hangup().reply();
  });
  session.on('close', (code) => log({ event: 'close', code }));
  const bidi = mode === 'stream' ? { enabled: true, streaming: true, sampleRate: 8000 } : undefined;
  session
    .listen({ url: '/audio', actionHook: '/listen-done', passDtmf: true, finishOnKey: '#', maxLength: 20,
      metadata: { app: 'node-audio' }, ...(bidi && { bidirectionalAudio: bidi }) })
    .send();
});

makeService.audio({ path: '/audio' }).on('connection', (stream) => {
  log({ event: 'audio:connect', call_sid: stream.callSid, sample_rate: stream.sampleRate,
    mix_type: stream.metadata.mixType, app: stream.metadata.app });
  const chunks = [];
  const sizes = new Set();
  stream.on('audio', (buf) => { chunks.push(buf); sizes.add(buf.length); });
  stream.on('dtmf', (d) => {
    log({ event: 'dtmf', digit: d.digit, duration: d.duration, frames: chunks.length });
    if (d.digit === '1') {
      if (mode === 'stream') {
        for (let at = 0; at < clip.length; at += 320) stream.sendAudio(clip.subarray(at, at + 320));
      } else {
        stream.playAudio(clip.toString('base64'), { sampleRate: 8000, id: 'reply' });
      }
      stream.sendMark('after-reply');
    }
  });
  stream.on('playDone', (d) => log({ event: 'playDone', ...d }));
  stream.on('mark', (d) => log({ event: 'mark', name: d.name, mark: d.event }));
  stream.on('close', (code) => {
    const pcm = Buffer.concat(chunks);
    fs.writeFileSync(out, pcm);
    log({ event: 'audio:close', code, frames: chunks.length, bytes: pcm.length, sizes: [...sizes],
      sha256: crypto.createHash('sha256').update(pcm).digest('hex') });
  });
});
"""


class AudioNodeApp:
    """The audio app in one ``node`` process; stdout is a file of JSON lines, the PCM it got a file."""

    def __init__(self, root: Path, mode: str) -> None:
        self.port = _free_port()
        script = root / "audio-app.js"
        script.write_text(APP)
        self.pcm = root / f"audio.{self.port}.pcm"
        self.out = root / f"audio.{self.port}.log"
        with self.out.open("w") as out:
            self.proc = subprocess.Popen(
                ["node", str(script), str(self.port), str(self.pcm), mode],
                cwd=root,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while not _listening(self.port) and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _listening(self.port):
            self.stop()
            pytest.fail(f"the node audio app did not start:\n{self.out.read_text()}")

    mode = "play"

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        rows = [json.loads(line) for line in self.out.read_text().splitlines() if line.startswith("{")]
        return [r for r in rows if kind is None or r["event"] == kind]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


@pytest.fixture(params=["play", "stream"])
def audio_app(request: pytest.FixtureRequest, sdk_dir: Path) -> Iterator[AudioNodeApp]:  # noqa: F811
    """The app replying with ``playAudio`` (base64, then playDone), or with bidirectional PCM
    (``bidirectionalAudio.streaming``: ``sendAudio`` binary frames, lws_glue.cpp processIncomingBinary)."""
    app = AudioNodeApp(sdk_dir, str(request.param))
    app.mode = str(request.param)
    yield app
    app.stop()


def first_sample(result: sim.CallResult) -> int:
    [entry] = [e for e in result.trace if e.type == "listen" and isinstance(e.payload, dict)]
    return int(entry.payload["first_sample"])


def test_the_sdk_audio_stream_gets_the_callers_audio_and_its_reply_is_in_the_recording(
    audio_app: AudioNodeApp,
) -> None:
    caller = sim.Caller(
        inputs=[sim.Audio(TONE, after=0.5), sim.Digits("1#", after=2.0, interval=1.5)], hangup_after=60
    )
    result = sim.call(f"ws://127.0.0.1:{audio_app.port}/call", caller, options=OPTIONS)
    wait_until(lambda: bool(audio_app.events("audio:close")) and bool(audio_app.events("close")), timeout=30)

    # the sdk saw jambonz's metadata (listen.js ~168–171) and the caller's keys (~223–231)
    [connect] = audio_app.events("audio:connect")
    assert connect == {
        "event": "audio:connect",
        "call_sid": result.call_sid,
        "sample_rate": 8000,
        "mix_type": "mono",
        "app": "node-audio",
    }
    assert [(d["digit"], d["duration"]) for d in audio_app.events("dtmf")] == [("1", 800), ("#", 800)]

    # what the Node app received is what the caller sent, byte for byte
    [closed] = audio_app.events("audio:close")
    got = audio_app.pcm.read_bytes()
    assert closed["sizes"] == [320] and closed["bytes"] == len(got) == closed["frames"] * 320
    assert closed["sha256"] == hashlib.sha256(got).hexdigest()
    first = first_sample(result)
    rec = result.recording()
    assert got == encode_l16(rec[0, first : first + len(got) // 2])
    pcm = decode_l16(got, 1)[0]
    tone = render(TONE, 8000)
    assert np.array_equal(pcm[4000 : 4000 + tone.size], tone)  # 0.5 s into the stream
    assert pcm[16000:16800].any()  # key "1" sounds from 2.0 s
    assert 175 <= closed["frames"] <= 176  # "#" at 3.5 s ends the stream (finishOnKey, ~243–247)

    # the app's playAudio is on the app side of the recording, after the key that asked for it
    app_side = rec[1]
    start = int(np.flatnonzero(app_side)[0])
    assert np.array_equal(app_side[start : start + CLIP.size], CLIP)
    assert not app_side[start + CLIP.size :].any()
    assert first + 16000 <= start < first + 28000  # after key 1, before "#"
    marks = [(m["name"], m["mark"]) for m in audio_app.events("mark")]
    if audio_app.mode == "play":
        [done] = audio_app.events("playDone")
        assert (done["id"], done["playbackMilliseconds"]) == ("reply", 250)
        # mod_audio_fork answers marks only on a streaming fork: its write-replace callback
        # (dub_speech_frame) is added only then (freeswitch-modules mod_audio_fork.c ~48-50, ~275-279)
        assert marks == []
    else:  # streamed PCM has no playDone; its 13 binary frames play back to back, then the mark
        assert audio_app.events("playDone") == []
        assert marks == [("after-reply", "playout")]

    # listen's actionHook reached the session (digits, whole seconds streamed), then the hangup
    [hook] = audio_app.events("/listen-done")
    assert (hook["digits"], hook["dial_call_duration"]) == ("#", 3)
    assert result.final_status == "completed"
