"""Audio endpoints: the second socket of jambonz's ``listen`` / ``stream`` verbs.

``lab.audio("/audio")`` declares an :class:`AudioService` on the app server's
port. jambonz (FreeSWITCH ``mod_audio_fork``) connects there with subprotocol
``audio.drachtio.org``; each socket becomes an :class:`AudioStream`: its
metadata (the first text frame), its audio as numpy ``int16`` arrays per
channel, its events (``dtmf``, ``playDone``, ``mark``) and the commands you
send back (:meth:`AudioStream.play`, :meth:`~AudioStream.kill`,
:meth:`~AudioStream.mark`, :meth:`~AudioStream.clear_marks`,
:meth:`~AudioStream.disconnect`, :meth:`~AudioStream.send_raw`). Frame shapes
are in :mod:`jambonz_lab.protocol.audio`.

Example::

    audio = lab.audio("/audio")

    @audio.on("connect")
    def hello(stream):
        stream.on("dtmf", lambda ev: stream.play(beep, sample_rate=8000))

    stream = await audio.wait_for_stream()
    await stream.wait_for("close")
    stream.player()

Threads: as for :class:`~jambonz_lab.net.session.Session`, every public method
may be called from any thread; socket state lives on the loop thread
(:class:`AudioDriver`). Plain handlers run on a worker thread, coroutines on
the loop; one stream's handlers run one after the other, in arrival order.

Every step is an event-log row (source ``jambonz``, transport ``ws``, types
``audio:connect``, ``audio:metadata``, ``audio:dtmf``, ``audio:playDone``,
``audio:mark``, ``audio:playAudio``, ``audio:killAudio``, ``audio:clearMarks``,
``audio:disconnect``, ``audio:close``; ``audio:invalid`` for a bad frame).
Audio bytes never go into rows: a playAudio row says its size and length, the
close row how many frames and seconds came per channel.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from aiohttp import WSMsgType, web

from .. import loop
from ..exceptions import CommandError, InvalidFrame, JambonzLabError, SessionClosed
from ..protocol import audio as wire
from ..records import make_row
from ..waiting import Waiter
from .audio_buffer import AudioBuffer
from .audio_levels import FLOOR_DBFS, WINDOW, Freshness, Levels, SentAudio, level_labels, rms_dbfs
from .audio_views import player, spectrogram, waveform
from .limits import unlink_socket

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .server import AppServer

__all__ = ["AUDIO_EVENTS", "AudioDriver", "AudioService", "AudioStream", "serve_audio"]

log = logging.getLogger("jambonz_lab.audio")

Handler = Callable[[Any], Any]
H = TypeVar("H", bound=Handler)

#: what :meth:`AudioStream.on` and :meth:`AudioStream.wait_for` accept
AUDIO_EVENTS = ("dtmf", "playDone", "mark", "close", "event")
#: how many ended streams a service keeps
KEEP_STREAMS = 64


class AudioService:
    """A path of the app server that jambonz's ``listen`` / ``stream`` verbs connect to.

    Args (see :meth:`jambonz_lab.Lab.audio`):
        keep_seconds: audio kept in memory per stream; a longer stream goes whole to a WAV
            file in ``spill_dir`` (a temporary directory when None).
    """

    def __init__(self, path: str, *, keep_seconds: float = 60.0, spill_dir: str | None = None) -> None:
        if keep_seconds <= 0:
            raise ValueError(f"keep_seconds must be positive, not {keep_seconds!r}")
        self.path = path
        self.keep_seconds = keep_seconds
        self.spill_dir = spill_dir
        self._handlers: list[Handler] = []
        self._streams: deque[AudioStream] = deque()
        self._waiters: list[Waiter[AudioStream]] = []

    @overload
    def on(self, event: str, handler: None = None) -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: H) -> H: ...
    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register ``handler(stream)`` for ``"connect"`` (called once the metadata came)."""
        if event != "connect":
            raise ValueError(f"AudioService.on: unknown event {event!r}; use 'connect'")

        def add(fn: Handler) -> Handler:
            if not callable(fn):
                raise TypeError(
                    f"AudioService.on('connect'): handler must be callable, not {type(fn).__name__}"
                )
            loop.run_sync(self._handlers.append, fn)
            return fn

        return add if handler is None else add(handler)

    @property
    def streams(self) -> list[AudioStream]:
        """The live streams and the newest ended ones, oldest first."""
        return loop.run_sync(lambda: list(self._streams))

    def wait_for_stream(self, timeout: float = 30.0) -> Waiter[AudioStream]:
        """The next stream to connect (once its metadata came)."""
        waiter: Waiter[AudioStream] = Waiter(f"an audio stream on {self.path}", timeout)

        def add() -> None:
            waiter.arm()
            self._waiters.append(waiter)

        loop.run_sync(add)
        return waiter

    def handlers(self) -> list[Handler]:
        """The ``connect`` handlers (loop thread)."""
        return list(self._handlers)

    def opened(self, stream: AudioStream) -> None:
        """A stream's metadata came (loop thread): keep it, wake the waiters."""
        self._streams.append(stream)
        ended = [s for s in self._streams if s.closed]
        while len(self._streams) > KEEP_STREAMS and ended:
            old = ended.pop(0)
            self._streams.remove(old)
            old.driver.buffer.discard()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.resolve(stream)

    async def close_all(self, code: int = 1001) -> None:
        """Close every open stream's socket (the server stops)."""
        for stream in list(self._streams):
            await stream.driver.close(code)

    def __repr__(self) -> str:
        return f"<AudioService {self.path}>"


class AudioStream:
    """One audio socket: metadata, audio, events and commands. Any thread.

    Attributes:
        path: the request path the socket came in on.
        metadata: the parsed first frame (:class:`~jambonz_lab.protocol.audio.AudioMetadata`).
        call_sid: the call's ``callSid`` from the metadata.
        events: every event frame jambonz sent (``AudioEvent``), in order.
    """

    def __init__(self, service: AudioService, path: str, metadata: wire.AudioMetadata, driver: AudioDriver):
        self.service = service
        self.path = path
        self.metadata = metadata
        self.call_sid = metadata.call_sid
        self.events: list[wire.AudioEvent] = []
        self.close_code: int | None = None
        self.driver = driver
        self._handlers: dict[str, list[Handler]] = {}
        self._waiters: list[tuple[str, Waiter[Any]]] = []

    # -- facts ------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self.metadata.sample_rate

    @property
    def channels(self) -> int:
        """2 for ``mixType: stereo`` (caller, callee), else 1."""
        return self.metadata.channels

    @property
    def mix_type(self) -> str:
        return self.metadata.mix_type

    @property
    def closed(self) -> bool:
        return self.driver.closed

    @property
    def duration(self) -> float:
        """Seconds of audio received so far (per channel)."""
        return self.driver.buffer.seconds

    @property
    def frames(self) -> int:
        """Binary frames received so far."""
        return self.driver.buffer.frames

    @property
    def spill_path(self) -> str | None:
        """The WAV file holding the whole stream, once it outgrew ``keep_seconds``. It stays
        on disk until the service drops the ended stream (it keeps the newest 64)."""
        path = self.driver.buffer.path
        return None if path is None else str(path)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<AudioStream {self.call_sid} {self.mix_type} {self.sample_rate} Hz "
            f"{self.duration:.2f} s {state}>"
        )

    # -- audio for notebooks ----------------------------------------------------------------

    def to_numpy(self) -> Any:
        """Every sample so far: 1-D for one channel, ``(channels, n)`` for stereo (int16)."""
        samples = self.driver.buffer.samples()
        return samples[0] if self.channels == 1 else samples

    def latest(self, seconds: float = 1.0) -> Any:
        """The newest ``seconds`` of audio (from memory), shaped like :meth:`to_numpy`."""
        samples = self.driver.buffer.latest(seconds)
        return samples[0] if self.channels == 1 else samples

    def save_wav(self, path: str | os.PathLike[str]) -> int:
        """Write the audio so far as a 16-bit WAV file; returns the samples per channel."""
        samples = self.driver.buffer.samples()
        with open(path, "wb") as f:
            f.write(wire.to_wav(samples, self.sample_rate))
        return int(samples.shape[1])

    def player(self) -> Any:
        """An ``IPython.display.Audio`` player of the audio so far."""
        return player(self.driver.buffer.samples(), self.sample_rate)

    def waveform(self) -> Figure:
        """A matplotlib Figure of the waveform, one axis per channel."""
        return waveform(self.driver.buffer.samples(), self.sample_rate, title=self._title())

    def spectrogram(self, window: int = 256) -> Figure:
        """A matplotlib Figure of the spectrogram (numpy FFT, Hann window of ``window`` samples)."""
        return spectrogram(self.driver.buffer.samples(), self.sample_rate, window=window, title=self._title())

    def levels(self) -> Levels:
        """The level meter: RMS in dBFS over the newest 0.1 s, per channel (``caller``; ``app`` too
        for stereo, or once the app sent raw audio back), and whether audio flows (``flowing``,
        ``idle``, ``ended``). What the session card shows. Any thread."""
        return loop.run_sync(self.driver.levels)

    def _title(self) -> str:
        return f"{self.call_sid or 'audio'} ({self.mix_type}, {self.sample_rate} Hz)"

    # -- commands ---------------------------------------------------------------------

    def play(
        self,
        audio: Any,
        sample_rate: int | None = None,
        *,
        queue_play: bool | None = None,
        id: str | None = None,
    ) -> None:
        """Play int16 samples (raw L16 at ``sample_rate``, the stream's by default) or WAV bytes."""
        frame = wire.play_audio(
            audio, sample_rate=sample_rate or self.sample_rate, queue_play=queue_play, id=id
        )
        _on_loop(lambda: self.driver.command(frame))

    def kill(self) -> None:
        """Stop what plays (``killAudio``); in bidirectional streaming it also empties the buffer of
        raw audio sent, and each pending mark comes back with ``event: "cleared"``."""
        _on_loop(lambda: self.driver.command(wire.kill_audio()))

    def mark(self, name: str) -> None:
        """Put a mark after the raw audio sent so far. With ``bidirectionalAudio.streaming`` jambonz
        answers ``{name, event: "playout"}`` (a ``mark`` event) once that audio has played; in
        ``playAudio`` mode mod_audio_fork never answers a mark. At most 30 may be pending."""
        frame = wire.mark(name)
        _on_loop(lambda: self.driver.command(frame))

    def clear_marks(self) -> None:
        """Drop the pending marks: jambonz sends no event for them (``kill`` answers them ``cleared``)."""
        _on_loop(lambda: self.driver.command(wire.clear_marks()))

    def disconnect(self) -> None:
        """End the listen verb; jambonz closes this socket."""
        _on_loop(lambda: self.driver.command(wire.disconnect()))

    def send_raw(self, pcm: Any) -> None:
        """Send L16 audio back (``bidirectionalAudio`` with ``streaming`` and a ``sampleRate``; without
        the rate jambonz starts a plain fork and never plays it): bytes, or int16 samples."""
        data = bytes(pcm) if isinstance(pcm, (bytes, bytearray, memoryview)) else wire.encode_l16(pcm)
        if len(data) % 2:
            raise CommandError(f"raw audio of {len(data)} bytes is not whole 16-bit samples", command="audio")
        _on_loop(lambda: self.driver.send_bytes(data))

    def close(self, code: int = 1000) -> None:
        """Close the socket from the app's side (on the loop thread: started, not awaited)."""
        if loop.in_loop_thread():
            self.driver.server.spawn(self.driver.close(code))
        else:
            loop.submit(self.driver.close(code)).result(loop.STEP_TIMEOUT)

    # -- events -----------------------------------------------------------------------

    @overload
    def on(self, event: str, handler: None = None) -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: H) -> H: ...
    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register ``handler(data)`` for ``dtmf``, ``playDone``, ``mark`` (the event's ``data``
        dict), ``event`` (every :class:`~jambonz_lab.protocol.audio.AudioEvent`) or ``close``
        (the close code). Usable as a decorator."""
        if event not in AUDIO_EVENTS:
            raise ValueError(f"AudioStream.on: unknown event {event!r}; use one of {', '.join(AUDIO_EVENTS)}")

        def add(fn: Handler) -> Handler:
            if not callable(fn):
                raise TypeError(
                    f"AudioStream.on({event!r}): handler must be callable, not {type(fn).__name__}"
                )
            loop.run_sync(lambda: self._handlers.setdefault(event, []).append(fn))
            return fn

        return add if handler is None else add(handler)

    def wait_for(self, event: str, timeout: float = 30.0) -> Waiter[Any]:
        """The next ``dtmf`` / ``playDone`` / ``mark`` (its data), ``event`` or ``close`` (the code).

        Raises (from the waiter): WaitTimeout; SessionClosed if the socket closed first.
        """
        if event not in AUDIO_EVENTS:
            raise ValueError(
                f"AudioStream.wait_for: unknown event {event!r}; use one of {', '.join(AUDIO_EVENTS)}"
            )
        waiter: Waiter[Any] = Waiter(f"audio {event} on {self.call_sid}", timeout, call_sid=self.call_sid)
        loop.run_sync(self.driver.add_waiter, event, waiter)
        return waiter

    def handlers_for(self, event: str) -> list[Handler]:
        """Loop thread."""
        return list(self._handlers.get(event, ()))

    def waiters(self) -> list[tuple[str, Waiter[Any]]]:
        """Loop thread: the pending waits (the driver resolves them)."""
        return self._waiters


class AudioDriver:
    """The loop-thread side of an :class:`AudioStream`: the socket, the buffer, the rows."""

    def __init__(self, server: AppServer, ws: web.WebSocketResponse, path: str, buffer: AudioBuffer) -> None:
        self.server = server
        self.ws = ws
        self.path = path
        self.buffer = buffer
        self.closed = False
        self.stream: AudioStream | None = None
        self._queue: asyncio.Queue[tuple[Callable[[], list[Handler]], Any] | None] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._out: deque[str | bytes] = deque()
        self._writer: asyncio.Task[None] | None = None
        #: binary frames that came before the metadata (dropped)
        self.early = 0
        #: the newest raw audio the app sent back (bidirectional streaming), for the level meter
        self.sent: SentAudio | None = None
        self._fresh_in = Freshness()
        self._fresh_out = Freshness()

    @property
    def call_sid(self) -> str | None:
        return None if self.stream is None else self.stream.call_sid

    def row(self, direction: str, type: str, *, payload: Any = None, note: str | None = None) -> None:
        self.server.record_row(
            make_row(
                "jambonz",
                direction,
                type,
                call_sid=self.call_sid,
                payload=payload,
                note=note,
                path=self.path,
                transport="ws",
            )
        )

    # -- in -------------------------------------------------------------------------

    def receive_audio(self, data: bytes) -> None:
        stream = self.stream
        if stream is None:
            self.early += 1
            if self.early == 1:  # one row, not one per frame: the close row counts them all
                self.invalid(f"binary frame of {len(data)} bytes before the metadata; dropped (and any more)")
            return
        if len(data) % (2 * stream.channels):  # decoded when read (audio_buffer.py), checked now
            self.invalid(
                f"audio frame of {len(data)} bytes is not a whole number of "
                f"{stream.channels}-channel 16-bit samples; dropped"
            )
            return
        self.buffer.append_l16(data if type(data) is bytes else bytes(data))

    def receive_text(self, text: str) -> None:
        stream = self.stream
        try:
            event = wire.parse_event(text)
        except InvalidFrame as exc:
            self.invalid(f"{exc}; ignored", text)
            return
        assert stream is not None
        stream.events.append(event)
        self.row("in", f"audio:{event.kind}", payload=event.raw)
        self.dispatch(event.kind, event.data)
        self.dispatch("event", event)

    def invalid(self, note: str, raw: str | None = None) -> None:
        log.info("audio socket %s (call %s): %s", self.path, self.call_sid, note)
        self.row("lab", "audio:invalid", payload=None if raw is None else {"text": raw[:1000]}, note=note)

    def dispatch(self, event: str, arg: Any) -> None:
        stream = self.stream
        if stream is None:
            return
        keep = []
        for name, waiter in stream.waiters():
            if waiter.done:
                continue
            if name == event:
                waiter.resolve(arg)
            else:
                keep.append((name, waiter))
        stream.waiters()[:] = keep
        self.run(lambda: stream.handlers_for(event), arg)

    def run(self, handlers: Callable[[], list[Handler]], arg: Any) -> None:
        """Queue a handler chain; one task per stream runs the chains in order. The handlers are
        looked up when the chain's turn comes, so a ``connect`` handler's ``stream.on(...)``
        already sees the events that arrived while it ran."""
        self._queue.put_nowait((handlers, arg))
        if self._runner is None:
            self._runner = self.server.spawn(self._run_handlers())

    async def _run_handlers(self) -> None:
        running = asyncio.get_running_loop()
        while True:
            item = await self._queue.get()
            if item is None:
                return
            handlers, arg = item
            for handler in handlers():
                try:
                    if inspect.iscoroutinefunction(handler):
                        await handler(arg)
                    else:
                        result = await running.run_in_executor(None, handler, arg)
                        if inspect.iscoroutine(result):
                            result.close()
                            raise TypeError("handler returned an awaitable; declare it 'async def'")
                except Exception as exc:  # a handler's failure never reaches the socket
                    name = getattr(handler, "__qualname__", repr(handler))
                    self.server.report(
                        "handler-error", f"audio handler {name} raised {exc!r}", call_sid=self.call_sid
                    )

    def add_waiter(self, event: str, waiter: Waiter[Any]) -> None:
        if self.closed and event != "close":
            waiter.fail(
                SessionClosed(
                    f"audio stream {self.call_sid} closed; {event} will not come", call_sid=self.call_sid
                )
            )
            return
        if self.closed:
            waiter.resolve(self.stream.close_code if self.stream else None)
            return
        waiter.arm()
        assert self.stream is not None
        self.stream.waiters().append((event, waiter))

    def ended(self, code: int | None) -> None:
        """The socket closed (loop thread)."""
        if self.closed:
            return
        self.closed = True
        self.buffer.close()
        stream = self.stream
        summary: dict[str, Any] = {
            "frames": self.buffer.frames,
            "seconds": [round(self.buffer.seconds, 3)] * self.buffer.channels,
            "spilled": None if self.buffer.path is None else str(self.buffer.path),
        }
        if self.early:
            summary["dropped_before_metadata"] = self.early
        self.row("in", "audio:close", payload=summary, note=f"code {code}")
        if stream is None:
            return
        stream.close_code = code
        self.dispatch("close", code)
        for name, waiter in stream.waiters():
            waiter.fail(
                SessionClosed(
                    f"audio stream {self.call_sid} closed while waiting for {name}", call_sid=self.call_sid
                )
            )
        stream.waiters().clear()
        self._queue.put_nowait(None)

    # -- out ------------------------------------------------------------------------

    def command(self, frame: str) -> None:
        """Send one command text frame and record it (audio content summarised)."""
        self._check_open()
        obj = json.loads(frame)
        kind = obj.get("type", "?")
        payload: Any = obj
        if kind == "playAudio":
            data = dict(obj["data"])
            content = data.pop("audioContent")
            size = len(content) * 3 // 4 - content.count("=")
            data["bytes"] = size
            if data.get("audioContentType") == "raw":
                data["seconds"] = round(size / 2 / data["sampleRate"], 3)
            payload = {"type": kind, "data": data}
        self.row("out", f"audio:{kind}", payload=payload)
        self._send(frame)

    def send_bytes(self, data: bytes) -> None:
        self._check_open()
        if self.sent is None:
            self.sent = SentAudio(self.buffer.sample_rate)
        self.sent.add(data)
        self._send(data)

    # -- the level meter ------------------------------------------------------------

    def levels(self) -> Levels:
        """One reading of the meter (loop thread): decoded from the newest frames held, no work per frame."""
        stream = self.stream
        labels = level_labels(stream.mix_type) if stream is not None else ["caller"]
        if self.closed:
            state = "ended"
            dbfs = [FLOOR_DBFS] * len(labels)
        else:
            flowing = self._fresh_in.fresh(self.buffer.frames)
            state = "flowing" if flowing else "idle"
            dbfs = rms_dbfs(self.buffer.latest(WINDOW)) if flowing else [FLOOR_DBFS] * len(labels)
        if self.sent is not None and len(labels) == 1:  # mono / mixed: the app's raw audio back
            labels.append("app")
            fresh = not self.closed and self._fresh_out.fresh(self.sent.sends)
            dbfs += rms_dbfs(wire.decode_l16(self.sent.newest(), 1)) if fresh else [FLOOR_DBFS]
            if fresh and state == "idle":
                state = "flowing"
        return Levels(tuple(labels), tuple(dbfs), state)

    def _check_open(self) -> None:
        if self.closed or self.ws.closed:
            raise SessionClosed(f"audio stream {self.call_sid} is closed", call_sid=self.call_sid)

    def _send(self, data: str | bytes) -> None:
        self._out.append(data)
        if self._writer is None or self._writer.done():
            self._writer = self.server.spawn(self._write())

    async def _write(self) -> None:
        while self._out:
            data = self._out.popleft()
            try:
                if isinstance(data, str):
                    await self.ws.send_str(data)
                else:
                    await self.ws.send_bytes(data)
            except (ConnectionError, RuntimeError) as exc:
                log.info("audio socket %s: send failed: %s", self.path, exc)
                self._out.clear()

    async def close(self, code: int) -> None:
        if not self.ws.closed:
            await self.ws.close(code=code)


async def serve_audio(
    server: AppServer, request: web.Request, service: AudioService
) -> web.WebSocketResponse:
    """Run one audio socket to its end (loop thread)."""
    ws = web.WebSocketResponse(
        protocols=(wire.SUBPROTOCOL,),
        max_msg_size=server.options.max_incoming,
        compress=False,
        heartbeat=server.options.ping_interval,
    )
    await ws.prepare(request)
    path = request.path
    # the buffer is sized once the metadata says the rate and channels
    driver = AudioDriver(server, ws, path, AudioBuffer(8000, 1, keep_seconds=service.keep_seconds))
    note = (
        None
        if ws.ws_protocol == wire.SUBPROTOCOL
        else f"client did not offer {wire.SUBPROTOCOL}; serving anyway"
    )
    driver.row("in", "audio:connect", payload={"path": path, "subprotocol": ws.ws_protocol}, note=note)
    try:
        async for frame in ws:
            if frame.type is WSMsgType.BINARY:
                driver.receive_audio(frame.data)
            elif frame.type is WSMsgType.TEXT:
                if driver.stream is None:
                    _open(server, service, driver, path, frame.data)
                else:
                    driver.receive_text(frame.data)
            elif frame.type is WSMsgType.ERROR:
                log.info("audio socket error on %s: %s", path, ws.exception())
    finally:
        unlink_socket(request)
        driver.ended(ws.close_code)
    return ws


def _open(server: AppServer, service: AudioService, driver: AudioDriver, path: str, text: str) -> None:
    """The first text frame: the metadata. A bad one is reported; the next text frame is tried."""
    try:
        meta = wire.parse_metadata(text)
    except InvalidFrame as exc:
        driver.invalid(f"{exc}; waiting for the metadata", text)
        return
    driver.buffer = AudioBuffer(
        meta.sample_rate, meta.channels, keep_seconds=service.keep_seconds, spill_dir=service.spill_dir
    )
    stream = AudioStream(service, path, meta, driver)
    driver.stream = stream
    driver.row("in", "audio:metadata", payload=meta.fields)
    session = server.sessions.get(meta.call_sid) if meta.call_sid else None
    if session is not None:
        session.audio.append(stream)
    service.opened(stream)
    driver.run(service.handlers, stream)


def _on_loop(step: Callable[[], None]) -> None:
    """Run a sending step on the loop; its error is raised at the caller's line."""
    try:
        loop.run_sync(step)
    except JambonzLabError as exc:
        raise exc.with_traceback(None) from None
