"""The simulated feature server's socket for one call: connect, send, read, reconnect.

:class:`Link` is the I/O around :class:`~jambonz_lab.protocol.feature.FeatureProtocol`
(the requestor's bookkeeping): it opens the socket the way jambonz does (subprotocol
``ws.jambonz.org``, Basic auth, 1.5 s handshake, ``#rc``/``#rp`` retries), writes what the
core lets out, waits for acks on the call's clock, reads the app's frames and hands commands
to :func:`~jambonz_lab.sim.commands.apply_command`, and re-opens a dropped socket with
``session:reconnect`` (protocol doc §1).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Set
from typing import TYPE_CHECKING, Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from ..protocol import SUBPROTOCOL
from ..protocol.feature import (
    Acked,
    Command,
    Event,
    FeatureProtocol,
    Frame,
    Invalid,
    StrayAck,
    TooLarge,
    invalid_message_data,
)

if TYPE_CHECKING:
    from .engine import SimCall, SimOptions

__all__ = ["AckTimeout", "Link", "close_code", "open_socket", "retryable"]


class AckTimeout(Exception):
    """No ack within the response timeout (jambonz rejects with a string)."""


class Link:
    """One call's socket(s) to the app, as jambonz's ``WsRequestor`` runs them."""

    def __init__(
        self,
        call: SimCall,
        url: str,
        options: SimOptions,
        retries: int,
        policies: Set[str],
        msgids: Callable[[], str],
    ) -> None:
        self.call = call
        self.url = url
        self.options = options
        self.retries = retries
        self.policies = policies
        #: the requestor's bookkeeping: envelopes, acks in flight, the queue while the socket is down
        self.core = FeatureProtocol(limit=options.max_frame, max_reconnects=retries, msgids=msgids)
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.pending: dict[str, asyncio.Future[Any]] = {}
        self.graceful = False  # the app closed with 1000
        self.reconnecting: asyncio.Task[None] | None = None
        self.new_ack: asyncio.Future[Any] | None = None  # the session:new ack, for the re-keyed reconnect

    async def notify(self, kind: str, data: Any, hook: str | None = None) -> None:
        """Send a message that wants no ack (discarded after a graceful close)."""
        frame = self.core.request(kind, data, hook)
        if frame is not None:
            await self.send(frame)

    async def request(
        self, kind: str, data: Any, hook: str | None = None, *, timeout: float | None = None
    ) -> Any:
        """Send a message that wants an ack; return the ack's ``data`` (``None`` if absent).

        Raises:
            AckTimeout: no ack in time (or the socket dropped and jambonz abandoned it).
        """
        frame = self.core.request(kind, data, hook)
        if frame is None:
            return None  # jambonz discards everything after a 1000 close
        if kind == "session:new":
            self.new_ack = self.expect(frame)
        return await self.await_ack(frame, timeout)

    def expect(self, frame: Frame) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[frame.msgid] = fut
        return fut

    async def await_ack(self, frame: Frame, timeout: float | None) -> Any:
        msgid = frame.msgid
        fut = self.pending.get(msgid) or self.expect(frame)
        await self.send(frame)
        try:
            return await self.call.wait_real(fut, self.options.ack_timeout if timeout is None else timeout)
        except TimeoutError:
            self._expire(msgid, frame.type.value, frame.request.hook)
            raise AckTimeout(msgid) from None
        finally:
            self.pending.pop(msgid, None)

    async def notify_hook(self, hook: str | None, data: dict[str, Any]) -> None:
        """A hook jambonz does not wait for (partial results, status hooks): sent now, acks ignored."""
        if not hook:
            return
        frame = self.core.request("verb:hook", data, hook)
        if frame is None:
            return
        fut = self.expect(frame)
        await self.send(frame)  # before whatever follows it
        task = asyncio.get_running_loop().create_task(self._unawaited(hook, frame.msgid, fut))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _unawaited(self, hook: str, msgid: str, fut: asyncio.Future[Any]) -> None:
        try:  # in the background: the call's clock does not wait for this ack
            await asyncio.wait_for(asyncio.shield(fut), self.options.ack_timeout)
        except TimeoutError:
            self._expire(msgid, "verb:hook", hook)
        except AckTimeout:
            pass
        finally:
            self.pending.pop(msgid, None)

    def _expire(self, msgid: str, kind: str, hook: str | None) -> None:
        """A response timer fired (ws-requestor.js ~266–270); during a reconnect it fails the
        reconnect: the queued requests are dropped and the call hangs up (call-session.js ~2258)."""
        expired = self.core.expire(msgid)
        self.call.note("ack-timeout", f"timeout from far end for msgid {msgid}", {"type": kind, "hook": hook})
        if expired is None or not expired.reconnect_failed:
            return
        for queued in expired.dropped:
            waiting = self.pending.get(queued.msgid)
            if waiting is not None and not waiting.done():
                waiting.set_exception(AckTimeout(queued.msgid))
        self.call.error("session:reconnect not acked; call hung up")
        self.call.end("jambonz")  # the socket stays up: the final call:status still goes out

    async def send(self, frame: Frame) -> None:
        """Trace a frame the core built, then write whatever the core lets out now."""
        self.call.trace("sent", frame.type.value, frame.msgid, frame.message)
        await self.flush()

    async def flush(self) -> None:
        """Write the core's outgoing frames in order (queued ones wait for the socket or the reconnect)."""
        for frame in self.core.frames_to_send():
            ws = self.ws
            if ws is None:
                continue
            try:
                await ws.send(frame.text)
            except websockets.ConnectionClosed:
                pass

    async def connect(self) -> Frame | None:
        """Open a socket with jambonz's retry policy (up to 1 + rc attempts).

        Returns:
            On a re-open, the ``session:reconnect`` to send first (see :meth:`_reconnect`).
        """
        attempt = 0
        while True:
            try:
                ws = await open_socket(self.url, self.options)
            except Exception as exc:  # what jambonz's retry policy sees
                if attempt >= self.retries or not retryable(exc, self.policies):
                    raise
                delay = self.core.next_backoff()
                self.call.note("connect-retry", f"{type(exc).__name__}: {exc}; retry in {delay:g} s")
                await self.call.pass_time(delay)
                attempt += 1
                continue
            self.ws = ws
            self.reader = asyncio.get_running_loop().create_task(self._read(ws))
            return self.core.connected()

    async def _read(self, ws: ClientConnection) -> None:
        late = self.options.read_delay > 0
        try:
            async for frame in ws:
                if late and self.new_ack is not None:
                    # a busy jambonz reads late: the frames that came meanwhile are one read,
                    # handled back to back before the session's command listener exists
                    late = False
                    await asyncio.sleep(self.options.read_delay)
                self._on_frame(frame)
                if self.ws is not ws:
                    return
        except websockets.ConnectionClosed:
            pass
        if self.ws is ws:
            self._on_close(close_code(ws))

    def _on_frame(self, frame: str | bytes) -> None:
        for event in self.core.receive(frame):
            self._on_event(event, frame)

    def _on_event(self, event: Event, frame: str | bytes) -> None:
        if isinstance(event, TooLarge):
            self.call.note("frame-too-large", f"app frame of {event.size} bytes; closing with 1009")
            self.call.error("app sent a frame over 24 KiB (closed 1009)")
            ws = self.ws
            if ws is not None:
                asyncio.get_running_loop().create_task(ws.close(1009, "message too big"))
        elif isinstance(event, Invalid):
            self.call.trace("received", "invalid", None, event.content[:2000], event.details)
            data = invalid_message_data(event, content_limit=2000)
            asyncio.get_running_loop().create_task(self.call.jambonz_error(data))
        elif isinstance(event, Acked | StrayAck):
            self.call.trace("received", "ack", event.msgid, event.message)
            fut: asyncio.Future[Any] | None = None
            if isinstance(event, Acked):
                fut = self.pending.get(event.msgid)
            if fut is None or fut.done():
                self.call.note("ack-discarded", f"ack to unknown msgid {event.msgid}, discarding")
                return
            fut.set_result(event.data)
        elif isinstance(event, Command):
            self.call.trace("received", event.name, event.msgid, event.message)
            if self.call.link is not self:
                self.call.note(
                    "command-ignored", f"{event.name} on a socket handed over by a redirect; ignored"
                )
                return
            # a REST call's CallSession listens from its creation at the INVITE (call-session.js ~137)
            if not self.call.session_started and self.call.direction == "inbound":
                new = self.new_ack
                when = "in the same read as" if new is not None and new.done() else "before"
                self.call.note(
                    "command-lost", f"{event.name} {when} the session:new ack; lost (no listener yet)"
                )
                return
            from .commands import apply_command

            apply_command(self.call, event.message)

    def _on_close(self, code: int | None) -> None:
        self.ws = None
        dropped = self.core.connection_lost(code)
        if dropped.graceful:
            self.graceful = True
            self.call.note("app-closed", "app closed with 1000; jambonz stops sending for this call")
            # the requests in flight stay there and fail when their 5 s pass (ws-requestor.js ~429, ~266)
            # no wake-up: an idle call stays in dead air until the caller hangs up or timeLimit (§1.5)
            return
        self.call.note("socket-closed", f"socket closed with {code}; reconnecting")
        if self.call.over:
            return
        for request in dropped.abandoned:
            waiting = self.pending.get(request.msgid)
            if waiting is not None and not waiting.done():
                self.call.note("abandoned", f"abandoning msgid {request.msgid} since socket is closed")
                waiting.set_exception(AckTimeout(request.msgid))
        if dropped.reconnect:
            self.reconnecting = asyncio.get_running_loop().create_task(self._reconnect())
        else:
            self.call.note("no-reconnect", f"{self.core.connections} connections made; no more reconnects")

    async def _reconnect(self) -> None:
        """Re-open a dropped socket, as ``_scheduleReconnect`` does (ws-requestor.js ~450–479).

        Each failed attempt is another drop: another reconnect after a longer wait, with no
        give-up count (only successful opens count against ``#rc``); an HTTP refusal of the
        upgrade is not a drop, so reconnecting stops there. The call hangs up only when the
        ``session:reconnect`` is not acked (:meth:`_expire`).
        """
        resync: Frame | None = None
        while not self.call.over and self.call.clock.now() < self.call.deadline()[0]:
            delay = self.core.next_backoff()
            left = self.call.deadline()[0] - self.call.clock.now()
            if left <= delay:
                return  # the call ends first (the call's clock is not this loop's to move)
            await self.call.pass_time(delay)
            if self.call.over:
                return
            try:
                ws = await open_socket(self.url, self.options)
            except websockets.InvalidStatus as exc:
                self.call.note("reconnect-failed", f"{exc}; no more reconnects")
                return
            except Exception as exc:  # noqa: BLE001 - a failed attempt is another drop (close 1006)
                self.call.note(
                    "reconnect-failed", f"{type(exc).__name__}: {exc}; retry in {self.core.backoff:g} s"
                )
                continue
            self.ws = ws
            self.reader = asyncio.get_running_loop().create_task(self._read(ws))
            resync = self.core.connected()
            break
        if self.call.over or resync is None:
            return
        try:
            data = await self.await_ack(resync, self.options.ack_timeout)
        except AckTimeout:
            return  # _expire hung the call up
        new = self.new_ack
        if not self.call.session_started and new is not None and not new.done():
            new.set_result(data)  # jambonz re-keys the unacked session:new to the reconnect
        await self.flush()  # the ack released the frames queued meanwhile, in order

    async def close(self, code: int) -> None:
        """jambonz closes the socket (the call is over): nothing more is sent or read."""
        if self.reconnecting is not None:
            self.reconnecting.cancel()
        self.core.close()
        ws, self.ws = self.ws, None
        if ws is not None:
            await ws.close(code)
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)
        for fut in self.pending.values():  # unawaited hooks still out: the call is over
            if not fut.done():
                fut.set_result(None)


async def open_socket(url: str, options: SimOptions) -> ClientConnection:
    """Open one socket the way jambonz does: ``ws.jambonz.org`` offered and required, Basic auth
    when configured, jambonz's user agent and handshake timeout, no compression.

    Raises:
        ConnectionError: the server did not select the subprotocol (jambonz aborts).
    """
    headers = {"User-Agent": "jambonz"}
    if options.username is not None:
        token = base64.b64encode(f"{options.username}:{options.password or ''}".encode())
        headers["Authorization"] = "Basic " + token.decode()
    ws = await websockets.connect(
        url,
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        additional_headers=headers,
        open_timeout=options.handshake_timeout,
        max_size=None,
        ping_interval=None,
        compression=None,
    )
    if ws.subprotocol != SUBPROTOCOL:
        await ws.close()
        raise ConnectionError("Server sent no subprotocol")
    return ws


def close_code(ws: ClientConnection) -> int | None:
    """The code that closed the socket: ours when we started the closing handshake.

    (An aiohttp app answers any close frame with 1000; jambonz's ws client reports its own 1009.)
    """
    proto = ws.protocol
    if proto.close_sent is not None and proto.close_rcvd_then_sent is not True:
        return proto.close_sent.code
    return ws.close_code


def retryable(exc: Exception, policies: Set[str]) -> bool:
    if "all" in policies:
        return True
    if isinstance(exc, websockets.InvalidStatus):
        code = exc.response.status_code
        return f"{code // 100}xx" in policies
    if isinstance(exc, TimeoutError):  # a handshake timeout has no error code: only rp=all
        return False
    if isinstance(exc, ConnectionRefusedError | ConnectionResetError | ConnectionAbortedError):
        return "ct" in policies
    if isinstance(exc, websockets.InvalidMessage) and isinstance(exc.__cause__, EOFError | ConnectionError):
        return "ct" in policies  # dropped before the HTTP response: Node's "socket hang up", ECONNRESET
    return False
