"""What the Kazoo, Basix and Wazo clients share: a WebSocket kept open on the lab's loop.

:class:`EventSource` owns one connection and its lifecycle (state enum, reconnect with
backoff, recording). A subclass says how to open the socket (:meth:`EventSource._open`),
what to send once it is open (:meth:`EventSource._ready`: subscribe again, wait for an
init frame) and what one frame means (:meth:`EventSource._frame`). A frame that cannot be
understood is recorded as a ``bad-frame`` lab row and the connection goes on.

Threads: the socket and every attribute live on the lab's loop thread
(:mod:`jambonz_lab.loop`). The ``a*`` coroutines run there; the plain methods are for
cells and scripts and hand the work to the loop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from typing import Any, Self

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .. import loop
from ..exceptions import PlatformError
from ..records import Record, make_row
from ._feed import EventFeed, PlatformEvent

__all__ = ["EventSource", "SourceState"]

log = logging.getLogger("jambonz_lab.platforms")


class SourceState(enum.Enum):
    """Where a source's connection is."""

    IDLE = "idle"  # not started
    CONNECTING = "connecting"  # first connection in progress
    OPEN = "open"  # connected and set up (subscribed, started)
    RECONNECTING = "reconnecting"  # lost, trying again with backoff
    CLOSED = "closed"  # closed by us, or for good (a fatal error: see ``error``)


class EventSource(EventFeed):
    """Base of the platform clients (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        record: Record | None = None,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.5, 10.0),
    ) -> None:
        super().__init__()
        self.url = url
        self.record = record
        self.reconnect = reconnect
        self.backoff = backoff
        self.state = SourceState.IDLE
        #: the error that closed the source for good (or the last connection failure)
        self.error: BaseException | None = None
        #: events received, connections made (1 + reconnects)
        self.received = 0
        self.connections = 0
        #: what the connection waits for now (named in a timeout's error): set by the phases
        self.awaiting = "nothing"
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # -- subclass hooks (loop thread) -----------------------------------------------------

    async def _open(self) -> ClientConnection:
        """Open the socket (auth, headers); raise :exc:`PlatformError` when refused."""
        raise NotImplementedError

    async def _ready(self, ws: ClientConnection) -> None:
        """Set the fresh connection up (subscribe, start); runs on every (re)connection."""

    def _parse(self, data: str | bytes) -> Any:
        """Pure work on one frame (decoding), which may run on a worker thread: see
        :meth:`_off_loop`. Raise when it cannot be understood. Default: the frame itself."""
        return data

    def _off_loop(self, data: str | bytes) -> bool:
        """True when :meth:`_parse` of ``data`` is costly enough to run off the loop thread
        (as :meth:`_parse_off_loop`)."""
        return False

    def _parse_off_loop(self, data: str | bytes) -> Any:
        """:meth:`_parse` on a worker thread; may pause now and then to let the loop have the GIL."""
        return self._parse(data)

    def _frame(self, item: Any) -> None:
        """Handle one parsed frame (loop thread); raise (any exception) when it cannot be understood."""
        raise NotImplementedError

    def _closed_error(self, ws: ClientConnection) -> PlatformError | None:
        """The error a close means, if any (e.g. Wazo's 4002); ``None`` for a plain drop."""
        return None

    def _fatal(self, exc: BaseException) -> bool:
        """True when reconnecting after ``exc`` cannot help (bad credentials)."""
        return False

    # -- recording ------------------------------------------------------------------------

    def emit(
        self,
        direction: str,
        type: str,
        *,
        call_id: str | None = None,
        payload: Any = None,
        msgid: str | None = None,
        hook: str | None = None,
        note: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Record one row (loop thread). An ``in`` row is an event: it wakes waiters and
        listeners with ``data`` (the event's own payload; default: ``payload`` when a dict)."""
        if self.record is not None:
            self.record(
                make_row(
                    self.source,
                    direction,
                    type,
                    call_sid=call_id,
                    msgid=msgid,
                    hook=hook,
                    payload=payload,
                    note=note,
                    path=self.url_for_log,
                )
            )
        if direction == "in":
            body = data if data is not None else payload if isinstance(payload, dict) else {}
            self.received += 1
            self._deliver(PlatformEvent(self.source, type, call_id, body, time.time()))

    @property
    def url_for_log(self) -> str:
        """The URL as recorded: without credentials or tokens (override to strip more)."""
        return self.url

    # -- lifecycle (loop thread) ------------------------------------------------------------

    async def aconnect(self, timeout: float | None = None) -> None:
        """Connect and set up; raise if the first attempt fails. Then keep the socket open.

        ``timeout`` bounds the whole first attempt: past it the attempt stops (nothing keeps
        connecting in the background) and :exc:`PlatformError` names the URL and what was awaited.
        """
        loop.require_loop_thread()
        if self.state in (SourceState.OPEN, SourceState.CONNECTING, SourceState.RECONNECTING):
            return
        self._closing = False
        self.state = SourceState.CONNECTING
        try:
            async with asyncio.timeout(timeout):
                ws = await self._attempt()
        except BaseException as exc:
            error = self._explain(exc, timeout) if isinstance(exc, TimeoutError) else exc
            self.state = SourceState.CLOSED
            self.error = error
            self.emit("lab", "connect-failed", note=_one_line(error))
            if error is exc:
                raise
            raise error from None
        self._opened(ws)
        self._task = asyncio.get_running_loop().create_task(self._run(ws))

    async def _attempt(self) -> ClientConnection:
        """One connection: open, then set up; a socket opened by a failed set-up is closed."""
        self.awaiting = "the WebSocket opening handshake"
        ws = await self._open()
        try:
            self.awaiting = "the connection's set-up"
            await self._ready(ws)
        except BaseException:
            ws.transport.abort()  # not a close handshake: the server may be the one not answering
            raise
        self.awaiting = "nothing"
        return ws

    def _explain(self, exc: TimeoutError, limit: float | None) -> PlatformError:
        """A timeout as an error that says where and what for: the connect deadline (``limit``),
        or a library's own timeout (its text, e.g. websockets' ``open_timeout``)."""
        why = f" ({exc})" if str(exc) else ""
        within = f" within {limit:g} s" if limit is not None and not why else ""
        return PlatformError(
            f"{self.source} at {self.url_for_log} did not answer{within}: the lab was waiting for "
            f"{self.awaiting}{why}",
            source=self.source,
        )

    def _opened(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.connections += 1
        self.state = SourceState.OPEN
        self.emit("lab", "open", note=f"connection {self.connections}")

    async def aclose(self) -> None:
        """Close the socket (code 1000) and stop reconnecting."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5.0)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        self.state = SourceState.CLOSED

    async def _run(self, ws: ClientConnection) -> None:
        delay = self.backoff[0]
        while True:
            await self._read(ws)
            if self._closing:
                self.emit("lab", "close", note="closed by the lab")
                break
            error = self._closed_error(ws)
            code = ws.close_code
            self.emit("lab", "dropped", note=_one_line(error) if error else f"socket closed (code {code})")
            if error is not None:
                self.error = error
            if not self.reconnect or (error is not None and self._fatal(error)):
                self._fail_waiters(
                    error or PlatformError(f"{self.source} closed the socket", source=self.source)
                )
                break
            self.state = SourceState.RECONNECTING
            while not self._closing:
                await asyncio.sleep(delay)
                waited, delay = delay, min(delay * 2, self.backoff[1])
                try:
                    ws = await self._attempt()
                except (OSError, InvalidHandshake, PlatformError, ConnectionClosed, TimeoutError) as exc:
                    if isinstance(exc, TimeoutError):
                        exc = self._explain(exc, None)
                    self.error = exc
                    self.emit("lab", "reconnect-failed", note=_one_line(exc))
                    if self._fatal(exc):
                        self._closing = True
                        self._fail_waiters(exc)
                    continue
                self._opened(ws)
                self.emit("lab", "reconnect", note=f"after waiting {waited:g} s")
                delay = self.backoff[0]
                break
            if self._closing:
                break
        self.state = SourceState.CLOSED
        self._ws = None

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                if self._off_loop(data):
                    await self._safe_frame_off_loop(data)
                else:
                    self._safe_frame(data)
        except ConnectionClosed:
            pass

    def _safe_frame(self, data: str | bytes) -> None:
        try:
            self._frame(self._parse(data))
        except Exception as exc:  # bad input is reported and the socket goes on
            self._bad_frame(data, exc)

    async def _safe_frame_off_loop(self, data: str | bytes) -> None:
        """Parse on a worker thread (the loop keeps serving calls), then handle it here, in order:
        the next frame is not read before this one is done."""
        try:
            item = await asyncio.to_thread(self._parse_off_loop, data)
            self._frame(item)
        except Exception as exc:
            self._bad_frame(data, exc)

    def _bad_frame(self, data: str | bytes, exc: Exception) -> None:
        log.warning("%s: bad frame: %s", self.source, exc)
        preview = data[:300] if isinstance(data, str) else data[:120].hex(" ")
        self.emit("lab", "bad-frame", note=_one_line(exc), payload={"raw": preview})

    async def _send(self, message: str | bytes) -> None:
        if self._ws is None:
            raise PlatformError(f"{self.source} is not connected ({self.state.value})", source=self.source)
        await self._ws.send(message)

    # -- cells -----------------------------------------------------------------------------

    def connect(self, timeout: float = 15.0) -> Self:
        """Connect from a cell or a script: blocks until set up, at most ``timeout`` seconds,
        then stops trying. Raises what :meth:`aconnect` raises (a timeout as :exc:`PlatformError`
        naming the URL and what was awaited)."""
        loop.submit(self.aconnect(timeout)).result(timeout + 5)
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Close from a cell or a script."""
        loop.submit(self.aclose()).result(timeout)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url_for_log} {self.state.value}, {self.received} event(s)>"


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
