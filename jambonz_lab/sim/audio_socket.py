"""The audio socket of a simulated ``listen`` / ``stream`` (FreeSWITCH ``mod_audio_fork``).

:class:`AudioSocket` does what feature-server 0.9.8 ``lib/tasks/listen.js`` and
mod_audio_fork do with the app's audio server:

* connects to the verb's ``url`` (a relative one against the app's base,
  ``call-session.js`` ``normalizeUrl`` ~1435–1456), subprotocol ``audio.drachtio.org``,
  ``wsAuth`` as Basic auth; a failed connect ends it with no results (``listen.js`` ~260–264);
* sends the metadata text frame, ``Object.assign({sampleRate, mixType}, callInfo,
  metadata)`` (~168–171; callInfo in its camelCase ``toJSON`` keys), then one binary frame
  of L16 per 20 ms at ``sampleRate`` (default 8000, ``mixType`` default mono, ~45–46):
  mono the caller, stereo caller / what the caller hears interleaved, mixed both summed;
* takes the caller's :class:`~jambonz_lab.sim.caller.Audio` inputs in a row (the first
  ``after`` s into the stream, each next one ``after`` the one before), and with
  ``finishOnKey`` / ``passDtmf`` the next Digits (keys from the stream's start, as before);
  a key sends ``{event: "dtmf", dtmf, duration}`` with ``passDtmf`` (~223–231), the
  ``finishOnKey`` key ends the stream with ``digits`` (~243–247);
* ends at ``maxLength`` (~187–192), on the app's ``disconnect`` or its closing the
  socket (mod_audio_fork reports a dropped connection as a disconnect, ~313–317), when
  the verb is killed or the call ends; ``timeout`` is read but never used (~30, ~189);
  ``dial_call_duration`` is the whole seconds streamed (``moment().diff``, ~117–120);
* the app's ``playAudio`` (base64 ``raw`` at ``sampleRate`` — 8/16/24/32/48/64 kHz, else
  16 kHz as mod_audio_fork's file suffixes — or ``wav``) plays from when it arrives,
  or after the queue with ``queuePlay`` (~284–305), and ``playDone {id, playbackSeconds,
  playbackMilliseconds, playbackLastOffsetPos}`` follows when it ends (~266–281);
  ``killAudio`` cuts what plays (``uuid_break``, ~307–311). With
  ``bidirectionalAudio.streaming`` binary frames from the app play back to back instead,
  at ``bidirectionalAudio.sampleRate`` — which it takes: drachtio-fsmrf 4.1.2
  ``forkAudioStart`` (``lib/endpoint.js`` ~1067–1071) passes ``enabled || 'true'`` (so
  ``enabled: false`` still reaches the module as true), ``streaming || 'false'`` and
  ``sampleRate || ''`` as the last ``|``-separated field; FreeSWITCH's
  ``separate_string_char_delim`` (``src/switch_utils.c`` ~2771–2803) does not count a
  trailing empty field, so without a sampleRate ``mod_audio_fork.c`` (~263–287) sees 9
  arguments and keeps its defaults (enabled, not streaming): a plain fork, where
  playAudio plays and the app's binary audio is buffered and never played;
* marks, as FreeSWITCH ``mod_audio_fork`` does them (``jambonz/freeswitch-modules``
  ``30f2189``, ``mod_audio_fork/lws_glue.cpp``): ``{type: "mark", data: {name}}`` (a string
  ``data.name``, ~301–319; at most 30 pending, more are dropped, ~31, ~43–49) goes before the
  next binary audio from the app (~79–101) and is answered ``{type: "mark", data: {name,
  event: "playout"}}`` (``send_mark_event`` ~570–576) when the audio before it has played
  (``dub_speech_frame`` ~993–1012); a mark no audio followed is answered once the app's
  audio ran out, one per 20 ms frame (~1035–1043). ``clearMarks`` (~321–332) drops the
  pending marks without a word; ``killAudio`` (~291–299) answers each pending one with
  ``event: "cleared"`` (~936–960). Only with ``bidirectionalAudio.streaming``:
  ``dub_speech_frame`` is the write-replace callback (``mod_audio_fork.c`` ~48–50), added
  only for a streaming fork (~275–279), so in ``playAudio`` mode marks are never answered;
* ``{type: "error"}`` from the app ends the verb (``lws_glue.cpp`` ~348–352 raises
  ``mod_audio_fork::error``, ``listen.js`` ``_onError`` ~318–322); ``transcription``,
  ``transfer`` and ``json`` are forwarded by the module (~333–382) but listen has no
  listener for them: no effect.

Pacing: each frame is sent once the call's clock passed it: in real time on the real
clock, 50 times faster on the virtual one (the clock moves 20 ms a frame,
:data:`VIRTUAL_FRAME_REAL` real seconds pass). On the virtual clock,
without ``maxLength``, once the caller's audio and the app's have played out the stream
waits for the app (``idle_wait`` real seconds) and then jumps to the end of the call,
sending no frames for the skipped silence.

``background=True`` (``config.listen``, :mod:`~jambonz_lab.sim.verbs.background_listen`):
the stack moves the clock and the socket follows it — on the virtual clock each frame is
a moment of the call (:mod:`~jambonz_lab.sim.alarms`) held until the next one is set, so
the stack's waits stop at every frame; silence is skipped only while the stack is empty;
:meth:`AudioSocket.stop` ends it and the call waits there until the owner's
:meth:`AudioSocket.release` (after the actionHook).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import websockets
from websockets.typing import Subprotocol

from ..exceptions import InvalidFrame
from ..protocol.audio import (
    SUBPROTOCOL,
    channels_of,
    decode_l16,
    decode_play_audio,
    dtmf_event,
    encode_l16,
    mark_event,
    parse_command,
    play_done_event,
)
from .alarms import Alarm
from .audio import DTMF_SECONDS, Segment, render
from .caller import Audio, Digits, Speech
from .http_link import base_url

if TYPE_CHECKING:
    from .context import VerbContext

__all__ = ["AudioSocket", "Beside", "FRAME_SECONDS", "stream_url"]

log = logging.getLogger("jambonz_lab.sim.audio_socket")

FRAME_SECONDS = 0.02
#: real seconds a frame takes on the virtual clock (50x real time), so that an app's
#: reply to a frame lands a few frames later, not after the stream
VIRTUAL_FRAME_REAL = 0.0004
#: raw playAudio rates mod_audio_fork writes a file for; others become ``.r16``
RAW_RATES = (8000, 16000, 24000, 32000, 48000, 64000)
#: marks pending at once (``lws_glue.cpp`` ``MAX_MARKS``); more are dropped
MAX_MARKS = 30
#: app commands mod_audio_fork forwards that listen.js does nothing with
IGNORED_COMMANDS = ("transcription", "transfer", "json")


def stream_url(call: VerbContext, url: str) -> str:
    """A listen ``url``: relative ones (``/…``) against the app's base URL."""
    return base_url(call.url) + url if url.startswith("/") else url


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class Beside(Protocol):
    """What runs on a stream's frame clock beside it (listen's nested ``transcribe``): started once
    the stream took its inputs, asked after every frame what is due, stopped with the stream."""

    def start(self) -> None: ...
    def next_at(self) -> float | None: ...
    async def due(self, until: float) -> None: ...
    def stop(self) -> None: ...


@dataclass
class _Play:
    segment: Segment
    id: Any
    streamed: bool  # bidirectional raw PCM (no playDone)


@dataclass
class _Mark:
    name: str
    at: float  # the call time the audio before it has played
    #: app audio came after it: it sits in the playout buffer (else in mod_audio_fork's inventory,
    #: answered one per frame once the buffer ran dry)
    in_buffer: bool = False


class AudioSocket:
    """One listen's audio socket; :meth:`run` streams until it ends and returns listen's results."""

    def __init__(
        self,
        call: VerbContext,
        verb: dict[str, Any],
        *,
        background: bool = False,
        beside: Beside | None = None,
    ) -> None:
        self.call = call
        self.verb = verb
        self.background = background
        self.beside = beside
        self.rate = int(verb.get("sampleRate") or 8000)
        self.mix_type = str(verb.get("mixType") or "mono")
        self.channels = channels_of(self.mix_type)
        self.samples_per_frame = int(round(self.rate * FRAME_SECONDS))
        given = verb.get("bidirectionalAudio")
        bidi: dict[str, Any] = given if isinstance(given, dict) else {}
        #: listen.js listens to playAudio (``{enabled: !disableBidirectionalAudio, ...bidirectionalAudio}``)
        self.bidi_enabled = bool(bidi.get("enabled", verb.get("disableBidirectionalAudio") is not True))
        #: a streaming fork: the app's binary audio plays, marks are answered, playAudio is not
        self.bidi_streaming = bool(bidi.get("streaming")) and bool(bidi.get("sampleRate"))
        self.bidi_rate = int(bidi.get("sampleRate") or self.rate)
        if bidi.get("streaming") and not bidi.get("sampleRate"):
            call.note(
                "listen",
                "bidirectionalAudio.streaming without sampleRate: jambonz starts a plain fork (the app's "
                "binary audio is never played, marks never answered; playAudio plays)",
            )
        self.finish_key = verb.get("finishOnKey")
        self.pass_dtmf = bool(verb.get("passDtmf"))
        self.max_length = float(verb.get("maxLength") or 0)
        self.plays: list[_Play] = []
        self.marks: list[_Mark] = []  # pending, in order
        self.keys: list[tuple[float, str]] = []  # (call time, key) pressed by the caller
        self.script_end = 0.0
        self.wake = asyncio.Event()
        self.stop_reason: str | None = None
        self.ws: Any = None
        self.frames_sent = 0
        self.stopped = asyncio.Event()
        self._held: Alarm | None = None  # a background listen's moment, held until the next is set
        self._gone: Alarm | None = None  # never rings: cancelled when the call ends
        if background and call.clock.virtual:  # the stack waits here while the socket connects
            self._held = call.alarms.add(call.clock.now(), eager=True)

    # -- time

    async def wait_until(self, at: float) -> None:
        """Let call time reach ``at`` (the verb moves the clock; a background listen waits for it).

        A background listen on the virtual clock waits for a moment of the call
        (:mod:`~jambonz_lab.sim.alarms`) and holds it until its next one is set, so the
        stack's waits stop at every frame; on the real clock it sleeps (the stack may be
        waiting on the app, the audio flows anyway). :meth:`stop` ends the wait.

        Raises:
            asyncio.CancelledError: the call ended.
        """
        call = self.call
        if not self.background:
            await call.sleep(max(0.0, at - call.clock.now()))
            return
        if not call.clock.virtual:
            sleeper = asyncio.ensure_future(asyncio.sleep(max(0.0, at - call.clock.now())))
            try:
                await self._first(sleeper)
            finally:
                sleeper.cancel()
            return
        alarm = call.alarms.add(at, eager=True)
        self._release_held()
        await self._first(alarm.reached)
        if alarm.reached.done():
            self._held = alarm
        else:  # stopped first
            call.alarms.release(alarm)

    async def _first(self, fut: asyncio.Future[Any]) -> None:
        """Wait for ``fut``, the stop or the call's end.

        Raises:
            asyncio.CancelledError: the call ended.
        """
        stopper = asyncio.ensure_future(self.stopped.wait())
        waits: set[asyncio.Future[Any]] = {fut, stopper}
        if self._gone is not None:
            waits.add(self._gone.reached)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if fut.cancelled() or (self._gone is not None and self._gone.reached.cancelled()):
            raise asyncio.CancelledError

    def _release_held(self) -> None:
        if self._held is not None:
            self.call.alarms.release(self._held)
            self._held = None

    def release(self) -> None:
        """A background listen's owner is done with it (after the actionHook): the call goes on.

        Until then the call stays at the moment the stream ended (virtual clock)."""
        self._release_held()
        if self._gone is not None:
            self.call.alarms.release(self._gone)
            self._gone = None

    def stop(self, reason: str = "killed") -> None:
        """Kill the stream (a background listen's ``stop``, ``background-task-manager.js`` ~62–71);
        on the virtual clock the call waits here until :meth:`release`."""
        if self.background and self.call.clock.virtual and self._held is None:
            self._held = self.call.alarms.add(self.call.clock.now(), eager=True)
        self.stop_reason = self.stop_reason or reason
        self.stopped.set()
        self.wake.set()

    # -- run

    async def run(self) -> dict[str, Any]:
        call = self.call
        url = stream_url(call, str(self.verb.get("url") or ""))
        headers = {}
        auth = self.verb.get("wsAuth")
        if isinstance(auth, dict) and auth.get("username") and auth.get("password"):
            token = base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        try:
            self.ws = await websockets.connect(
                url, subprotocols=[Subprotocol(SUBPROTOCOL)], additional_headers=headers, open_timeout=5
            )
        except (OSError, TimeoutError, websockets.WebSocketException, ValueError) as exc:
            call.note(
                "listen", f"audio socket {url}: cannot connect ({type(exc).__name__}: {exc}); listen ends"
            )
            return {}
        reader = asyncio.get_running_loop().create_task(self._read())
        if self.background:
            self._gone = call.alarms.add()
        try:
            return await self._stream(url)
        finally:
            if self.beside is not None:
                self.beside.stop()
            if not self.background:
                self.release()
            reader.cancel()
            call.note("listen", f"audio socket {url} closed: {self.frames_sent} frames sent")
            await self.ws.close()

    async def _stream(self, url: str) -> dict[str, Any]:
        call = self.call
        begun = call.clock.now()
        self._take_inputs(begun)
        if self.beside is not None:
            self.beside.start()
        first = math.ceil(begun * self.rate - 1e-9)  # the stream's first sample (call-time grid)
        started = first / self.rate
        self._place_audio(first)
        info = {_camel(k): v for k, v in call.call_info().items() if k != "customerData"}
        if call.customer_data is not None:
            info["customerData"] = call.customer_data
        metadata = {"sampleRate": self.rate, "mixType": self.mix_type, **info}
        if isinstance(self.verb.get("metadata"), dict):
            metadata.update(self.verb["metadata"])
        await self.ws.send(json.dumps(metadata))
        call.note(
            "listen",
            f"audio socket {url}: {self.mix_type} L16 at {self.rate} Hz from call time {started:.3f}",
            {"url": url, "start": started, "first_sample": first, "metadata": metadata},
        )
        results: dict[str, Any] = {}
        k = 0
        n = self.samples_per_frame
        while True:
            frame_first = first + k * n
            frame_end = (frame_first + n) / self.rate
            await self.wait_until(frame_end)
            if self.stopped.is_set():
                break
            await self._send_frame(frame_first)
            k += 1
            if call.clock.virtual:  # the app's replies take real time: give it some per frame
                await asyncio.sleep(VIRTUAL_FRAME_REAL)
            await self._due_events(frame_end, results)
            if self.stop_reason is None and self.max_length and frame_end - started >= self.max_length - 1e-9:
                self.stop_reason = "maxLength"
            if self.stop_reason is not None:
                break
            if (
                call.clock.virtual
                and not self.max_length
                and frame_end >= self._busy_until()
                and (not self.background or self._stack_idle())
            ):
                if not await self._idle():
                    break
                k = max(k, math.ceil((call.clock.now() * self.rate - first) / n))
        results["dial_call_duration"] = int(call.clock.now() - begun + 1e-6)  # whole seconds
        call.note("listen", f"stream ended ({self.stop_reason})")
        return results

    def _stack_idle(self) -> bool:
        """No verb runs and none is queued (a background listen skips silence only then)."""
        return self.call.current is None and not self.call.stack

    def _busy_until(self) -> float:
        keys = max((t for t, _ in self.keys), default=0.0)
        plays = max((p.segment.end for p in self.plays), default=0.0)
        marks = max((m.at for m in self.marks), default=0.0)
        beside = self.beside.next_at() if self.beside is not None else None
        return max(self.script_end, keys, plays, marks, beside or 0.0)

    async def _idle(self) -> bool:
        """Virtual clock, nothing left to play: wait for the app; False when the stream ended."""
        from .verbs.rooms import wait_for_end

        self.wake.clear()
        if self.stop_reason is not None:
            return False
        if self.background:  # the stack is idle too: wait for the app or the stack's idle wait
            self._release_held()
            waker = asyncio.ensure_future(asyncio.wait_for(self.wake.wait(), self.call.options.idle_wait))
            try:
                await self._first(waker)
            finally:
                waker.cancel()
        else:
            await wait_for_end(self.call, self.wake)  # raises Hangup at the call's end
        return self.stop_reason is None

    # -- the caller

    def _take_inputs(self, begun: float) -> None:
        call = self.call
        self._audio: list[Audio] = []
        while isinstance(call.peek_input(), Audio):
            taken = call.next_input()
            assert isinstance(taken, Audio)
            self._audio.append(taken)
        if self.finish_key or self.pass_dtmf:
            upcoming = call.peek_input()
            # a nested transcribe takes the Speech (``beside``); else it is said into the stream
            if isinstance(upcoming, Digits) or (isinstance(upcoming, Speech) and self.beside is None):
                taken = call.next_input()
                if isinstance(taken, Digits):
                    self.keys = [
                        (begun + taken.after + i * taken.interval, k) for i, k in enumerate(taken.digits)
                    ]
                elif isinstance(taken, Speech):
                    call.note("listen", f"caller said {taken.text!r} into the stream")

    def _place_audio(self, first: int) -> None:
        cursor = first
        for item in self._audio:
            try:
                samples = render(item, self.rate)
            except ValueError as exc:
                self.call.note("error", f"listen: {exc}; the caller is silent instead")
                self.call.error(str(exc))
                continue
            start = cursor + int(round(item.after * self.rate))
            self.call.result.audio.add("caller", start / self.rate, samples, self.rate, "caller audio")
            cursor = start + samples.size
        self.script_end = cursor / self.rate

    async def _send_frame(self, frame_first: int) -> None:
        audio = self.call.result.audio
        n = self.samples_per_frame
        caller = audio.window("caller", frame_first, n, self.rate)
        if self.mix_type == "mono":
            data = encode_l16(caller)
        else:
            app = audio.window("app", frame_first, n, self.rate)
            if self.mix_type == "stereo":
                data = encode_l16(np.stack([caller, app]))
            else:
                mixed = np.clip(caller.astype(np.int32) + app, -32768, 32767).astype(np.int16)
                data = encode_l16(mixed)
        try:
            await self.ws.send(data)
            self.frames_sent += 1
        except websockets.ConnectionClosed:
            self.stop_reason = self.stop_reason or "closed"

    async def _due_events(self, until: float, results: dict[str, Any]) -> None:
        """Send what happened by call time ``until``: keys, plays done, marks reached."""
        while self.keys and self.keys[0][0] < until:
            _, key = self.keys.pop(0)
            if self.pass_dtmf:
                await self._send_text(dtmf_event(key, int(DTMF_SECONDS * 8000)))
            if key == self.finish_key:
                results["digits"] = key
                self.stop_reason = "finishOnKey"
                self.keys.clear()
                return
        for play in [p for p in self.plays if p.segment.end <= until]:
            self.plays.remove(play)
            if not play.streamed:
                await self._play_done(play)
        from_inventory = False
        for mark in [m for m in self.marks if m.at <= until]:
            if not mark.in_buffer:
                if from_inventory:  # dub_speech_frame answers one of those per frame
                    mark.at = until + FRAME_SECONDS
                    continue
                from_inventory = True
            self.marks.remove(mark)
            await self._send_text(mark_event(mark.name, "playout"))
        if self.beside is not None:
            await self.beside.due(until)

    async def _play_done(self, play: _Play) -> None:
        seconds = play.segment.seconds
        await self._send_text(
            play_done_event(
                play.id,
                playbackSeconds=int(seconds),
                playbackMilliseconds=int(seconds * 1000),
                playbackLastOffsetPos=int(seconds * 8000),
            )
        )

    async def _send_text(self, text: str) -> None:
        try:
            await self.ws.send(text)
        except websockets.ConnectionClosed:
            self.stop_reason = self.stop_reason or "closed"

    # -- the app

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                try:
                    await self._on_message(message)
                except InvalidFrame as exc:
                    self.call.note("listen", f"audio socket: {exc}; ignored")
                self.wake.set()
        except websockets.ConnectionClosed:
            pass
        if self.stop_reason is None:  # mod_audio_fork: a dropped connection is a disconnect
            self.stop_reason = "closed"
        self.wake.set()

    def _now(self) -> float:
        return self.call.clock.now()

    async def _on_message(self, message: str | bytes) -> None:
        call = self.call
        if isinstance(message, bytes):
            if not self.bidi_streaming:
                call.note(
                    "listen",
                    "audio socket: binary audio from the app without bidirectional streaming; ignored",
                )
                return
            samples = decode_l16(message, 1)[0]
            self._queue(samples, self.bidi_rate, None, streamed=True, queued=True, label="app stream")
            for mark in self.marks:  # the pending marks go into the buffer before this audio
                mark.in_buffer = True
            return
        command = parse_command(message)
        call.note(
            f"audio:{command.type}",
            "received on the audio socket",
            {k: v for k, v in command.data.items() if k != "audioContent"},
        )
        if command.type == "playAudio":
            if not self.bidi_enabled or self.bidi_streaming:
                call.note(
                    "listen",
                    "audio socket: playAudio needs bidirectionalAudio enabled, not streaming; ignored",
                )
                return
            data = dict(command.data)
            if data.get("audioContentType", "raw") == "raw" and data.get("sampleRate") not in RAW_RATES:
                data["sampleRate"] = 16000
            samples, rate = decode_play_audio(data)
            mono = (
                samples[0]
                if samples.shape[0] == 1
                else samples.astype(np.int32).mean(axis=0).astype(np.int16)
            )
            queued = bool(data.get("queuePlay"))
            if not queued:
                await self._cut(keep_queue=False)
            self._queue(mono, rate, data.get("id"), streamed=False, queued=queued, label="playAudio")
        elif command.type == "killAudio":
            await self._cut(keep_queue=not self.bidi_streaming)
            if self.bidi_streaming:
                await self._clear_marks()
        elif command.type == "disconnect":
            self.stop_reason = "disconnect"
        elif command.type == "mark":
            self._mark(command.data.get("name"))
        elif command.type == "clearMarks":
            self.marks = []  # dropped without a word (lws_glue.cpp ~321–332)
        elif command.type == "error":
            call.note("listen", "audio socket: the app sent an error; listen ends")
            self.stop_reason = "error"
        elif command.type in IGNORED_COMMANDS:
            call.note("listen", f"audio socket: {command.type} has no effect on a listen; ignored")
        else:
            call.note("listen", f"audio socket: unknown command {command.type!r}; ignored")

    def _mark(self, name: Any) -> None:
        """A mark: kept (answered later) only in bidirectional streaming, as mod_audio_fork does."""
        call = self.call
        if not isinstance(name, str):
            call.note("listen", "audio socket: a mark without a string data.name; ignored")
        elif not self.bidi_streaming:
            call.note(
                "listen", f"audio socket: mark {name!r} is never answered: marks need bidirectional streaming"
            )
        elif len(self.marks) >= MAX_MARKS:
            call.note("listen", f"audio socket: {MAX_MARKS} marks pending; mark {name!r} dropped")
        else:
            self.marks.append(_Mark(name, max(self._now(), self._queue_end())))

    def _queue_end(self) -> float:
        return max((p.segment.end for p in self.plays), default=0.0)

    def _queue(self, samples: Any, rate: int, id: Any, *, streamed: bool, queued: bool, label: str) -> None:
        now = self._now()
        start = max(now, self._queue_end()) if queued else now
        segment = self.call.result.audio.add("app", start, samples, rate, label)
        self.plays.append(_Play(segment, id, streamed))

    async def _cut(self, *, keep_queue: bool) -> None:
        """Stop what plays now; the queue after it plays on from now (``keep_queue``) or is dropped."""
        now = self._now()
        audio = self.call.result.audio
        cursor = now
        for play in sorted(self.plays, key=lambda p: p.segment.start):
            seg = play.segment
            if seg.start <= now < seg.end:
                seg.cut(now)
                self.plays.remove(play)
                if not play.streamed:
                    await self._play_done(play)
            elif seg.start > now:
                if keep_queue:
                    seg.start, cursor = cursor, cursor + seg.seconds
                else:
                    self.plays.remove(play)
                    audio.segments.remove(seg)

    async def _clear_marks(self) -> None:
        marks, self.marks = self.marks, []
        for mark in marks:
            await self._send_text(mark_event(mark.name, "cleared"))
