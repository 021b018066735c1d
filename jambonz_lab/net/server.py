"""The app server jambonz connects to: aiohttp, HTTP and WebSocket on one port.

:class:`AppServer` routes each request by the longest service path that is a
prefix of it (segment-wise: ``/echo`` serves ``/echo/adulting`` but not
``/echoes``), answers unknown paths 404, answers ``OPTIONS`` with the
service's env-var schema (the jambonz portal's discovery request), and
upgrades WebSocket requests, selecting the ``ws.jambonz.org`` subprotocol.

Each socket is a :class:`Connection`. Its first message opens a
:class:`~jambonz_lab.net.session.Session` (``session:new``, a redirect, an
adulting leg) or rebinds an existing one (``session:reconnect`` for a known
``call_sid``: same object, same ``locals``). The protocol bookkeeping is in
:class:`~jambonz_lab.protocol.CallProtocol`; this module moves frames, runs
handlers and timers, and reports every step to a ``record`` callback (the
lab's event log) as a plain dict.

Runs on the lab's loop thread only (:mod:`jambonz_lab.loop`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from .. import loop
from ..exceptions import InvalidFrame, JambonzLabError, ServerError
from ..protocol import (
    MAX_APP_FRAME,
    SUBPROTOCOL,
    CallProtocol,
    CallState,
    Message,
    MessageType,
    Outgoing,
    parse,
)
from ..protocol.verbs import normalize_verbs
from ..records import RECORD_FIELDS, Record, Row, make_row
from ..waiting import Waiter
from . import eager
from .audio import AudioService, serve_audio
from .handlers import HandlerRun, Workers, current_run, handler_name
from .limits import (
    AcceptFloodFilter,
    HandshakeGuard,
    basic_auth_ok,
    connection_cap,
    raise_descriptor_limit,
    unlink_socket,
)
from .session import Handler, Service, Session, SocketClose, is_coroutine_handler
from .webhooks import WebhookCall, is_webhook, serve_webhook

__all__ = ["RECORD_FIELDS", "AppServer", "Connection", "History", "ServerOptions"]

log = logging.getLogger("jambonz_lab.server")

#: what the server reports for every frame and lab event, as a plain tuple (plain tuples of
#: strings and numbers are not tracked by the garbage collector, so a long history costs no GC time)


#: a plain HTTP endpoint served next to the WebSocket services
HttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: what a grace timer calls: ``fn(session, msgid)`` (see :meth:`AppServer._after_grace`)
GraceCall = Callable[[Session, str | None], None]

DEFAULT_VERBS = [{"verb": "answer"}]


@dataclass
class ServerOptions:
    """How the app server behaves.

    Attributes:
        grace: seconds to wait for the app's first ``send()`` before acking
            ``session:new`` with ``default_verbs`` (jambonz rejects the call
            after 5 s; a person typing in a notebook cannot meet that).
        default_verbs: what that automatic ack carries; it must keep the call
            up (an empty stack then waits for commands).
        ack_warning: seconds after which a hook still not acked is reported
            (jambonz gives up at 5 s).
        command_hold: after the opening ack, commands wait for jambonz's
            next frame on the call (an inbound call sends ``call:status``
            ``trying`` as its session starts) or this many seconds, whichever
            comes first: jambonz drops a command that reaches it in the same
            socket read as the ack (it handles the whole read before its call
            session listens for commands).
        unreplied: what happens to verbs a hook's handlers composed and did
            not send: ``"reply"`` sends them as the hook's ack and records an
            ``implicit-reply`` warning row; ``"error"`` drops them, records a
            ``handler-error`` row and acks the hook empty.
        handler_threads: worker threads kept for plain-function handlers.
        handler_threads_max: how far the pool grows while every thread is
            blocked (sleeping, waiting on I/O): one more thread per waiting
            event after 50 ms, so a blocked handler never holds up another
            call's; a ``handlers-blocked`` row and a warning say so.
        handshake_timeout: seconds a new connection has to send its HTTP
            request; silent ones (half-open upgrades) are closed.
        ping_interval: seconds between WebSocket pings on each call's socket
            (jambonz answers them); no pong within half of it and the socket
            counts as dropped. ``None``: no pings.
        max_connections: WebSocket connections served at once (call sockets
            and listen/stream audio sockets together); more are refused
            with 503. ``None``: the open-files limit (raised to its hard
            limit at start) minus a headroom.
        auth: ``(username, password)``: every WebSocket upgrade must carry
            them as HTTP Basic credentials (jambonz sends them when the
            application's WebSocket URL is configured with a username and
            password); others get 401. ``None``: no check.
        max_frame: largest frame the app may send (jambonz's 24 KiB).
        max_incoming: largest frame accepted from jambonz.
        backlog: pending TCP connections the listener queues (a burst of
            calls beyond it waits for SYN retransmits, ~1 s each).
        keep_sessions: ended sessions kept in ``AppServer.sessions`` (the
            oldest leave first; their rows stay in the event log). 1,000 lets a
            notebook read ``lab.session(sid).locals`` after a load; each full
            garbage collection walks every kept session, and the time grows
            faster than their number once they fall out of the CPU's cache:
            7–15 ms with 1,000 kept, 2 ms with 200 (``jambonz-lab serve`` keeps
            200; benchmarks/README.md).
        keep_sessions_for: seconds an ended session is kept at most.
        keep_messages: messages kept in each ``Session.messages`` (the oldest
            leave first; the event log has them all).
        early_frames: frames kept per socket before its ``session:new``;
            beyond, they are dropped (one ``early`` row says so).
        webhook_secret: the account's webhook secret: every HTTP hook must
            carry a valid ``Jambonz-Signature`` (others get 403). ``None``: no
            check.
        webhook_idle: seconds an HTTP webhook call may go without a request
            before its session is taken as ended (jambonz tells a webhook app
            that a call ended only through a status hook).
    """

    grace: float = 1.0
    default_verbs: list[dict[str, Any]] = field(default_factory=lambda: list(DEFAULT_VERBS))
    ack_warning: float = 4.0
    command_hold: float = 0.1
    unreplied: str = "reply"
    handler_threads: int = 32
    handler_threads_max: int = 512
    handshake_timeout: float = 10.0
    ping_interval: float | None = 30.0
    max_connections: int | None = None
    auth: tuple[str, str] | None = None
    max_frame: int = MAX_APP_FRAME
    max_incoming: int = 16 * 1024 * 1024
    backlog: int = 1024
    keep_sessions: int = 1000
    keep_sessions_for: float = 3600.0
    keep_messages: int = 1000
    early_frames: int = 100
    webhook_secret: str | None = None
    webhook_idle: float = 600.0

    def __post_init__(self) -> None:
        if self.default_verbs != DEFAULT_VERBS:  # the default is valid; don't load the SDK for it
            self.default_verbs = normalize_verbs(self.default_verbs)
        if not self.default_verbs:
            raise ValueError("default_verbs must hold at least one verb (jambonz rejects an empty ack)")
        if self.unreplied not in ("reply", "error"):
            raise ValueError(f"unreplied must be 'reply' or 'error', not {self.unreplied!r}")
        if not 0 <= self.command_hold < 5:
            raise ValueError(f"command_hold must be between 0 and 5 seconds, not {self.command_hold}")
        if self.auth is not None and (
            len(self.auth) != 2 or not all(isinstance(x, str) and x for x in self.auth)
        ):
            raise ValueError("auth must be a (username, password) pair of non-empty strings")
        if self.ping_interval is not None and self.ping_interval <= 0:
            raise ValueError(f"ping_interval must be positive seconds or None, not {self.ping_interval}")
        if self.handshake_timeout <= 0:
            raise ValueError(f"handshake_timeout must be positive seconds, not {self.handshake_timeout}")
        if self.webhook_idle <= 0:
            raise ValueError(f"webhook_idle must be > 0 seconds, not {self.webhook_idle}")
        if min(self.keep_sessions, self.keep_messages, self.early_frames, self.keep_sessions_for) < 0:
            raise ValueError("keep_sessions, keep_sessions_for, keep_messages and early_frames must be >= 0")
        if self.grace < 0 or self.grace >= 5:
            raise ValueError(f"grace must be between 0 and 5 seconds (jambonz waits 5 s), not {self.grace}")


class Channel(Protocol):
    """What carries one call's frames: a :class:`Connection` (a WebSocket) or a
    :class:`~jambonz_lab.net.webhooks.WebhookCall` (HTTP hook requests). Loop thread only."""

    server: AppServer
    service: Service
    path: str
    session: Session | None
    early: list[Message]
    closing: int | None

    @property
    def transport(self) -> str: ...

    @property
    def open(self) -> bool: ...

    def write(self, session: Session, outs: list[Outgoing]) -> None: ...

    def close(self, code: int) -> None: ...

    def finish(self) -> None: ...

    async def flush(self) -> None: ...


class _ClosedSocket:
    """What a :class:`Connection` holds once its socket is gone: closed, so writers stop."""

    closed = True

    async def send_str(self, data: str) -> None:
        raise ConnectionResetError("the socket is closed")

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        return False


_CLOSED = _ClosedSocket()


class Connection:
    """One WebSocket from jambonz (loop thread only).

    Frames are queued by :meth:`write` and written in order by :meth:`flush`,
    which a handler task awaits right after the handler (no extra task switch
    for coroutine handlers); otherwise a flush task is started.
    """

    #: how frames travel (the event log's ``transport`` column)
    transport = "ws"

    def __init__(self, server: AppServer, ws: web.WebSocketResponse, service: Service, path: str) -> None:
        self.server = server
        self.ws: web.WebSocketResponse | _ClosedSocket = ws
        self.service = service
        self.path = path
        self.session: Session | None = None
        self.early: list[Message] = []  # messages before the session opened
        self._out: deque[str] = deque()
        self._flushing = False
        self._close_code: int | None = None
        #: the code this side closed with (None while jambonz is the one to close)
        self.closing: int | None = None

    @property
    def open(self) -> bool:
        return not self.ws.closed

    def write(self, session: Session, outs: list[Outgoing]) -> None:
        for out in outs:
            self._out.append(out.text)
            self.server.record_out(session, out)
        self._kick()

    def close(self, code: int) -> None:
        """Close with ``code`` once the frames queued before have been written."""
        self._close_code = code
        self.closing = code
        self._kick()

    def finish(self) -> None:
        """The socket is gone: drop what was not written, and let go of aiohttp's request,
        response and handler (a kept session would keep them alive for hours, and the garbage
        collector would walk them in every full collection)."""
        self._out.clear()
        self.ws = _CLOSED

    def _kick(self) -> None:
        if not self._flushing:  # else the running flush writes it; a flush only waits on a full buffer
            self.server.start_now(self.flush())

    async def flush(self) -> None:
        """Write the queued frames in order; one writer at a time, any task may call it."""
        if self._flushing:
            return
        self._flushing = True
        try:
            while self._out and not self.ws.closed:
                await self.ws.send_str(self._out.popleft())
            if self._close_code is not None and not self.ws.closed:
                await self.ws.close(code=self._close_code)
        except (ConnectionError, RuntimeError) as exc:
            log.info("write failed on %s: %s", self.path, exc)
            self._out.clear()
        finally:
            self._flushing = False


class History(Protocol):
    """What the owner of an :class:`AppServer` keeps of each call (the lab's event log).

    ``Session.events``, ``Session.timeline()`` and ``Session.save()`` read it; a server
    without one (``history=None``) keeps nothing and those raise. Any thread but the loop's.
    """

    def events_of(self, call_sid: str) -> Any:
        """The call's rows as a DataFrame."""
        ...

    def timeline_of(self, call_sid: str) -> Any:
        """A picture of the call's messages (a matplotlib Figure)."""
        ...

    def turns_of(self, call_sid: str) -> Any:
        """The call's conversational turns as a DataFrame."""
        ...

    def transcript_of(self, call_sid: str) -> Any:
        """Both sides of the call as a dialogue."""
        ...

    def save_of(self, call_sid: str, path: str) -> int:
        """Write the call's rows to ``path`` as JSON lines; the row count."""
        ...


class AppServer:
    """Services, sessions and the aiohttp application (loop thread only, but
    :meth:`service` may be called from any thread before or while serving)."""

    def __init__(
        self,
        options: ServerOptions | None = None,
        record: Record | None = None,
        history: History | None = None,
    ) -> None:
        self.options = options or ServerOptions()
        self.services: dict[str, Service] = {}
        #: the listen/stream audio endpoints, by path (see :mod:`jambonz_lab.net.audio`)
        self.audio_services: dict[str, AudioService] = {}
        self.sessions: dict[str, Session] = {}
        self._record = record
        self._workers = Workers(
            self.options.handler_threads,
            max_size=self.options.handler_threads_max,
            on_grow=lambda threads, waiting: loop.call_soon(self._handlers_blocked, threads, waiting),
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connections: set[Connection] = set()
        #: listen/stream audio sockets being served (they count toward the connection cap too)
        self.audio_sockets = 0
        #: calls served over HTTP webhooks and not ended (the sweeper ends the idle ones)
        self._webhook_calls: set[WebhookCall] = set()
        #: hooks waiting for their ack, oldest first (deadlines grow: one ack_warning for all)
        # (the call's sid, not the call: the watch must not keep an ended call in memory for 4 s;
        # and a tuple of a float and strings is one the garbage collector stops tracking)
        self._watch: deque[tuple[float, str, str, str]] = deque()
        self._session_waiters: list[tuple[str | None, Waiter[Session]]] = []
        #: ended sessions, oldest first, for the retention bound (see :meth:`_retire`)
        self._ended: deque[tuple[float, str, Session]] = deque()
        #: what the owner keeps of each call (the lab's event log), for Session.events/timeline/save
        self.history = history
        #: plain HTTP endpoints on the same port, by exact path (e.g. a Kazoo webhook receiver)
        self.http_routes: dict[str, HttpHandler] = {}
        self._runner: web.AppRunner | None = None
        self._guard = HandshakeGuard(self.options.handshake_timeout)
        self._max_connections: int | None = None
        self.host: str | None = None
        self.port: int | None = None

    # -- services -------------------------------------------------------------------

    def service(self, path: str, env_vars: Mapping[str, Any] | None = None) -> Service:
        """Declare (or replace) the service at ``path``."""
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"service path must start with '/', not {path!r}")
        _check_env_schema(env_vars or {})
        norm = path.rstrip("/") or "/"
        svc = Service(norm, env_vars=env_vars)
        self.services[norm] = svc
        return svc

    def audio(self, path: str, *, keep_seconds: float = 60.0, spill_dir: str | None = None) -> AudioService:
        """Declare (or replace) the audio endpoint at ``path``: WebSocket upgrades there are
        listen/stream audio sockets, not call sockets. Loop thread, or before :meth:`start`."""
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"audio path must start with '/', not {path!r}")
        norm = path.rstrip("/") or "/"
        svc = AudioService(norm, keep_seconds=keep_seconds, spill_dir=spill_dir)
        self.audio_services[norm] = svc
        return svc

    def route_audio(self, path: str) -> AudioService | None:
        """The audio endpoint whose path is the longest segment-wise prefix of ``path``."""
        best: AudioService | None = None
        for prefix, svc in self.audio_services.items():
            if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
                if best is None or len(prefix) > len(best.path):
                    best = svc
        return best

    def add_http(self, path: str, handler: HttpHandler) -> None:
        """Serve plain HTTP requests to exactly ``path`` with ``handler`` (a coroutine on the loop).

        Such a path is no longer a WebSocket service path. Loop thread, or before :meth:`start`.
        """
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"HTTP path must start with '/', not {path!r}")
        self.http_routes[path.rstrip("/") or "/"] = handler

    def route(self, path: str) -> Service | None:
        """The service whose path is the longest segment-wise prefix of ``path``."""
        best: Service | None = None
        for prefix, svc in self.services.items():
            if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
                if best is None or len(prefix) > len(best.path):
                    best = svc
        return best

    # -- lifecycle --------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        self._max_connections = connection_cap(self.options.max_connections, raise_descriptor_limit())
        running = asyncio.get_running_loop()
        if running.get_exception_handler() is None:
            running.set_exception_handler(AcceptFloodFilter())
        app = web.Application(client_max_size=self.options.max_incoming)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True, backlog=self.options.backlog)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ServerError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another port or port=0"
            ) from None
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else port
        self.host = host
        self._runner = runner
        self.spawn(self._sweep())
        self.spawn(self._guard_handshakes())
        log.info("serving on %s:%s", host, self.port)
        return self.port

    async def stop(self) -> None:
        """Close every socket with 1001 (jambonz reconnects) and stop listening."""
        for conn in list(self._connections):
            if not conn.ws.closed:
                conn.closing = 1001
                await conn.ws.close(code=1001, message=b"server going away")
        for audio in self.audio_services.values():
            await audio.close_all(1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for task in list(self._tasks):
            task.cancel()
        self._workers.shutdown()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def start_now(self, coro: Any, context: contextvars.Context | None = None) -> None:
        """Run ``coro`` at once; a task (tracked for :meth:`stop`) only if it has to wait."""
        task = eager.start(coro, context=context)
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- HTTP -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self._guard.greeted(request.protocol)
        endpoint = self.http_routes.get(request.path.rstrip("/") or "/")
        if endpoint is not None:
            return await endpoint(request)
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if not upgrade and is_webhook(request):
            return await serve_webhook(self, request)  # an HTTP webhook app's hook
        audio = self.route_audio(request.path) if upgrade else None
        if audio is not None:  # a listen/stream verb's audio socket
            return self._refuse(request, audio) or await self._serve_audio(request, audio)
        if not upgrade and self.route(request.path) is None and self.route_audio(request.path):
            return web.Response(
                status=426,
                headers={"Upgrade": "websocket"},
                text=f"{request.path} is a listen/stream audio endpoint: a WebSocket (audio.drachtio.org)\n",
            )
        service = self.route(request.path)
        if service is None:
            return web.Response(status=404, text=f"no jambonz_lab service at {request.path}\n")
        if request.method == "OPTIONS":
            return web.json_response(service.env_vars)
        if not upgrade:
            return web.Response(
                status=426,
                headers={"Upgrade": "websocket"},
                text=(
                    f"{service.path} is a jambonz endpoint: a WebSocket (subprotocol {SUBPROTOCOL}) "
                    "or HTTP webhooks (POST)\n"
                ),
            )
        refused = self._refuse(request, service)
        if refused is not None:
            return refused
        # no permessage-deflate: jambonz frames are small and compressing them costs more CPU than it saves
        ws = web.WebSocketResponse(
            protocols=(SUBPROTOCOL,),
            max_msg_size=self.options.max_incoming,
            autoping=True,
            compress=False,
            heartbeat=self.options.ping_interval,
        )
        await ws.prepare(request)
        if ws.ws_protocol != SUBPROTOCOL:
            log.info("client on %s did not offer %s; serving anyway", request.path, SUBPROTOCOL)
        conn = Connection(self, ws, service, request.path)
        self._connections.add(conn)
        try:
            async for frame in ws:
                if frame.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self.receive(conn, frame.data)
                elif frame.type is WSMsgType.ERROR:
                    log.info("socket error on %s: %s", request.path, ws.exception())
        finally:
            self._connections.discard(conn)
            conn.finish()
            unlink_socket(request)
            self.connection_lost(conn, ws.close_code)
        return ws

    async def _serve_audio(self, request: web.Request, service: AudioService) -> web.StreamResponse:
        """One audio socket, counted toward the connection cap from its upgrade to its close."""
        self.audio_sockets += 1
        try:
            return await serve_audio(self, request, service)
        finally:
            self.audio_sockets -= 1

    @property
    def open_sockets(self) -> int:
        """WebSockets served now: call sockets and listen/stream audio sockets (loop thread)."""
        return len(self._connections) + self.audio_sockets

    def _refuse(self, request: web.Request, service: Service | AudioService) -> web.Response | None:
        """401 without the configured credentials, 503 beyond the connection cap (call and audio
        sockets together); else None."""
        auth = self.options.auth
        if auth is not None and not basic_auth_ok(request.headers.get("Authorization"), *auth):
            peer = request.remote or "?"
            note = f"WebSocket upgrade to {service.path} from {peer} without valid credentials; refused (401)"
            self.report("auth-refused", note)
            return web.Response(
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="jambonz_lab", charset="UTF-8"'},
                text="credentials required\n",
            )
        cap = self._max_connections
        if cap is not None and self.open_sockets >= cap:
            note = (
                f"{self.open_sockets} sockets open, the cap is {cap}; upgrade to {service.path} refused (503)"
            )
            self.report("refused", note)
            return web.Response(status=503, headers={"Retry-After": "1"}, text="too many connections\n")
        return None

    # -- frames -------------------------------------------------------------------------

    def receive(self, conn: Channel, raw: str | bytes) -> None:
        """One frame from jambonz on ``conn`` (a WebSocket's, or one a webhook request stands for)."""
        session = conn.session
        try:
            msg = parse(raw)
        except InvalidFrame as exc:
            sid = session.call_sid if session else exc.call_sid
            log.warning("bad frame on %s (call %s): %s", conn.path, sid, exc)
            preview = raw[:500] if isinstance(raw, str) else repr(raw[:100])
            self.record_lab(sid, "bad-frame", str(exc), payload={"raw": preview})
            return
        self.record_in(conn, msg, raw if isinstance(raw, str) else raw.decode(errors="replace"))
        try:
            if session is None:
                self._open(conn, msg)
            elif msg.type is MessageType.SESSION_RECONNECT:
                self._rebind(conn, session, msg)
            else:
                self._dispatch(session, msg)
        except JambonzLabError as exc:
            log.warning("cannot handle %s on call %s: %s", msg.type, msg.call_sid, exc)
            self.record_lab(msg.call_sid, "protocol-error", str(exc), msgid=msg.msgid)

    def _open(self, conn: Channel, msg: Message) -> None:
        if not msg.type.opens_session:
            self._keep_early(conn, msg)
            return
        reconnect = msg.type is MessageType.SESSION_RECONNECT
        known = self.sessions.get(msg.call_sid or "")
        if reconnect and known is not None and not known.closed:
            old = known.driver.conn
            if old is not conn and old.open and known.state is not CallState.DETACHED:
                # jambonz reconnects only after its socket closed: a second socket for a live call
                # is not jambonz's (or a stale one); it must not take the call over
                note = (
                    f"session:reconnect for call {known.call_sid} while its socket is still open; "
                    "refused (closed with 1008)"
                )
                log.warning("%s on %s", note, conn.path)
                self.record_lab(known.call_sid, "protocol-error", note, msgid=msg.msgid)
                conn.close(1008)
                return
            self._rebind(conn, known, msg)
            return
        call, outs = CallProtocol.open(msg, limit=self.options.max_frame, socket=conn.transport == "ws")
        service = conn.service
        session = Session(self, conn, call, service)
        session.messages.extend(conn.early[: self.options.early_frames])
        session.messages.append(msg)
        conn.session = session
        self.sessions[session.call_sid] = session
        if isinstance(conn, WebhookCall):
            self._webhook_calls.add(conn)
        self._announce(session, conn.path)
        session.driver.write(outs)
        if reconnect:  # the app restarted: a call it never saw open; its verbs run on in jambonz
            self.record_lab(
                session.call_sid,
                "reconnect",
                "session:reconnect for a call unknown here (the app restarted?); acked, "
                "session:reconnect handlers only",
                msgid=msg.msgid,
            )
            self.run_handlers(
                session, service.handlers("session:reconnect"), session, auto_ack=False, what=msg.type.value
            )
            return
        if call.opening_ack_owed:
            self._after_grace(self._grace_expired, session, call.initial_msgid)
        event = "session:new"
        if msg.type is MessageType.SESSION_REDIRECT and service.handlers("session:redirect"):
            event = "session:redirect"
        self.run_handlers(
            session,
            service.handlers(event),
            session,
            msgid=call.initial_msgid,
            auto_ack=False,
            what=msg.type.value,
        )

    def _rebind(self, conn: Channel, session: Session, msg: Message) -> None:
        old = session.driver.conn
        conn.session = session
        session.driver.conn = conn
        session.reconnects += 1
        session.messages.append(msg)
        if old is not conn and old.session is session:
            old.session = None
        outs = session.driver.call.reconnect(msg)
        self.record_lab(
            session.call_sid, "reconnect", f"socket {session.reconnects + 1} rebound to the session"
        )
        session.driver.write(outs)
        if session.driver.call.opening_ack_owed:
            self._after_grace(self._grace_expired, session, msg.msgid)
        self.run_handlers(
            session, conn.service.handlers("session:reconnect"), session, auto_ack=False, what=msg.type.value
        )

    def _dispatch(self, session: Session, msg: Message) -> None:
        handlers, awaited = session.driver.deliver(msg)
        if msg.needs_ack:
            deadline = asyncio.get_running_loop().time() + self.options.ack_warning
            self._watch.append((deadline, session.call_sid, msg.msgid, msg.hook or msg.type.value))
            if awaited and not handlers and not session.driver.call.socket:
                # a webhook call: the hook's answer is its HTTP response, so the code awaiting the hook
                # (wait_for) gets `grace` seconds to send() it before the empty auto-ack
                self._after_grace(self._ack_if_owed, session, msg.msgid)
                return
        arg: Any = msg
        redirect = msg.type is MessageType.SESSION_REDIRECT
        if redirect and not handlers:
            # a redirect (REST call_hook, redirect verb) to a ws URL of the same socket: the service
            # at the hook's path takes the session over, as if the redirect had opened a socket
            target = self.route(urlsplit(msg.hook or "").path or "/")
            if target is not None:
                handlers = target.handlers("session:redirect") or target.handlers("session:new")
                arg = session
                if handlers:
                    note = f"session:redirect to {msg.hook}: the session goes to service {target.path}"
                    self.record_lab(session.call_sid, "redirect", note, msgid=msg.msgid)
        self.run_handlers(
            session,
            handlers,
            arg,
            msgid=msg.msgid if msg.needs_ack else None,
            what=msg.hook or msg.type.value,
            send_replies=redirect,
        )

    def connection_lost(
        self, conn: Channel, code: int | None, *, final: bool | None = None, why: str | None = None
    ) -> None:
        """``conn`` is gone: a socket closed with ``code``, or a webhook call ended (``final``, ``why``)."""
        session = conn.session
        if session is None:
            return
        if isinstance(conn, WebhookCall):
            self._webhook_calls.discard(conn)
        if final is not None:
            pass
        elif conn.closing is not None:  # this side closed: 1000 tells jambonz the call is over
            final = conn.closing == 1000
        else:  # jambonz closed: it closes only on purpose (1000, or 1001 rejecting a call) and then
            final = code in (1000, 1001)  # never reconnects; a drop (1006, 1009, …) it reconnects
        final = final or session.closed
        abandoned = session.driver.call.connection_lost(code, final=final)
        by = "the app" if conn.closing is not None else "jambonz"
        note = why or f"socket closed by {by} with {code}" + ("" if final else "; jambonz should reconnect")
        if abandoned:
            note += f"; {len(abandoned)} ack(s) abandoned"
        self.record_lab(session.call_sid, "close", note)
        closed = SocketClose(code, final)
        session.driver.resolve(("close",), closed)
        handlers = session.driver.handlers_for("close")  # before _retire: a session that leaves drops them
        if session.closed:
            session.driver.fail_waiters()
            self._retire(session)
        self.run_handlers(session, handlers, closed, what="close")

    # -- retention ------------------------------------------------------------------------

    def _keep_early(self, conn: Channel, msg: Message) -> None:
        """A frame before ``session:new``: kept up to ``early_frames`` per socket, then dropped."""
        cap = self.options.early_frames
        if len(conn.early) < cap:
            conn.early.append(msg)
            self.record_lab(msg.call_sid, "early", f"{msg.type} before any session:new; kept")
        elif len(conn.early) == cap:
            conn.early.append(msg)  # the marker: later ones are dropped without a row
            note = f"{cap} frames before any session:new on this socket; later ones are dropped"
            log.warning("%s on %s", note, conn.path)
            self.record_lab(msg.call_sid, "early", note)

    def _retire(self, session: Session) -> None:
        """An ended session leaves ``sessions`` after ``keep_sessions`` newer ones or
        ``keep_sessions_for`` seconds (checked as sessions end and by the sweeper)."""
        self._ended.append((time.monotonic(), session.call_sid, session))
        self._drop_retired()

    def _drop_retired(self) -> None:
        now = time.monotonic()
        ended = self._ended
        limit, age = self.options.keep_sessions, self.options.keep_sessions_for
        while ended and (len(ended) > limit or ended[0][0] <= now - age):
            _, sid, old = ended.popleft()
            if self.sessions.get(sid) is old and old.closed:
                del self.sessions[sid]
                old.driver.release()

    def wait_for_session(self, path: str | None, waiter: Waiter[Session]) -> None:
        """Resolve ``waiter`` with the next session opened under ``path`` (loop thread)."""
        waiter.arm()
        self._session_waiters.append((path, waiter))

    def _announce(self, session: Session, path: str) -> None:
        keep: list[tuple[str | None, Waiter[Session]]] = []
        for want, waiter in self._session_waiters:
            if waiter.done:
                continue
            if want is None or path == want or path.startswith(want.rstrip("/") + "/"):
                waiter.resolve(session)
            else:
                keep.append((want, waiter))
        self._session_waiters = keep

    # -- timers ---------------------------------------------------------------------------

    def _after_grace(self, fn: GraceCall, session: Session, msgid: str | None) -> None:
        """``fn(session, msgid)`` in ``grace`` seconds, if the session is still in memory then.

        The timer links its call weakly: a call that ended within ``grace`` leaves memory at once
        instead of when its timer fires (at a thousand calls a second, a thousand ended calls more
        for every collection to walk, each one old enough to count toward a full one).
        """
        loop.call_later(self.options.grace, _if_alive, weakref.ref(session), fn, msgid)

    def _grace_expired(self, session: Session, msgid: str | None) -> None:
        call = session.driver.call
        if msgid is None or call.initial_msgid != msgid or call.state is not CallState.OPENING:
            return
        opening = call.opening.type
        verbs = self.options.default_verbs if opening is not MessageType.SESSION_REDIRECT else []
        try:
            session.driver.write(call.reply(msgid, verbs, auto=True))
        except JambonzLabError as exc:
            self.record_lab(session.call_sid, "protocol-error", str(exc), msgid=msgid)
            return
        self.record_lab(
            session.call_sid,
            "auto-ack",
            f"no send() within {self.options.grace:g} s; "
            f"acked {call.opening.type} with {len(verbs)} default verb(s)",
            msgid=msgid,
        )

    async def _sweep(self) -> None:
        """Report hooks still not acked after ``ack_warning`` (one sweeper, not a timer per hook)."""
        running = asyncio.get_running_loop()
        idle_check = 0.0
        while True:
            await asyncio.sleep(min(0.5, self.options.ack_warning / 4))
            now = running.time()
            if self._webhook_calls and now >= idle_check:
                idle_check = now + min(5.0, self.options.webhook_idle / 4)
                self._end_idle_webhooks()
            if self._watch and self._watch[0][0] <= now:
                self._check_acks(now)
            if self._ended:
                self._drop_retired()  # the age bound holds when no other session ends

    def _check_acks(self, now: float) -> None:
        """Report the watched hooks due by ``now`` (a method of its own: the sweeper's frame,
        suspended between rounds, must not keep the last call it looked at)."""
        watch = self._watch
        while watch and watch[0][0] <= now:
            _, sid, msgid, what = watch.popleft()
            session = self.sessions.get(sid)
            if session is not None:  # a call that left sessions ended, and its acks were abandoned
                self._ack_late(session, msgid, what)  # a no-op when the hook was acked meanwhile

    def _end_idle_webhooks(self) -> None:
        """End the webhook calls with no request for ``webhook_idle`` seconds."""
        cutoff = time.monotonic() - self.options.webhook_idle
        for conn in [c for c in self._webhook_calls if c.seen <= cutoff]:
            conn.finish()
            why = f"no webhook request for {self.options.webhook_idle:g} s; the call is taken as ended"
            self.connection_lost(conn, None, final=True, why=why)

    async def _guard_handshakes(self) -> None:
        """Close connections that never sent their request within ``handshake_timeout``."""
        running = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(0.5, self.options.handshake_timeout / 4))
            runner = self._runner
            server = runner.server if runner is not None else None
            if server is None:
                continue
            closed = self._guard.sweep(server.connections, running.time())
            if closed:
                note = (
                    f"closed {closed} connection(s) that sent no request within "
                    f"{self.options.handshake_timeout:g} s"
                )
                self.report("handshake-timeout", note, level=logging.INFO)

    def _handlers_blocked(self, threads: int, waiting: int) -> None:
        note = (
            f"every plain handler thread was blocked and {waiting} event(s) waited: the pool grew to "
            f"{threads} threads; block in a handler as little as you can (async def, or a thread of your own)"
        )
        self.report("handlers-blocked", note)

    def _ack_late(self, session: Session, msgid: str, what: str) -> None:
        if session.driver.call.is_pending(msgid):
            note = f"{what} not acked after {self.options.ack_warning:g} s; jambonz gives up at 5 s"
            self.report("ack-late", note, call_sid=session.call_sid, msgid=msgid)

    # -- handlers ---------------------------------------------------------------------------

    def run_handlers(
        self,
        session: Session,
        handlers: list[Handler],
        arg: Any,
        *,
        msgid: str | None = None,
        auto_ack: bool = True,
        what: str = "",
        send_replies: bool = False,
    ) -> None:
        """Run handlers one after the other in one :class:`HandlerRun`, then finish the run.

        Plain functions run on a worker thread (the whole chain, when every
        handler is plain), coroutines on the loop in one task. Finishing sends
        verbs the handlers composed and did not send, and auto-acks ``msgid``
        if nobody did (``auto_ack``).
        """
        if not handlers:
            if msgid and auto_ack:
                self._auto_ack(session, msgid)
            return
        run = HandlerRun(session, msgid, what or (msgid or "event"), send_replies=send_replies)
        if not any(is_coroutine_handler(h) for h in handlers):
            self._workers.submit(functools.partial(self._run_plain, run, handlers, arg, auto_ack))
            return
        ctx = contextvars.copy_context()
        ctx.run(current_run.set, run)
        self.start_now(self._run_all(run, handlers, arg, auto_ack), ctx)

    def _run_plain(self, run: HandlerRun, handlers: list[Handler], arg: Any, auto_ack: bool) -> None:
        """A worker thread: every handler of the run, then one hand-off back to the loop."""
        errors: list[tuple[str, BaseException]] = []
        token = current_run.set(run)  # this worker's own context: reset before the next job
        try:
            for handler in handlers:
                run.handler = handler_name(handler)
                try:
                    _call_plain(handler, arg)
                except Exception as exc:  # a handler's failure never reaches the socket
                    errors.append((run.handler, exc))
        finally:
            current_run.reset(token)
        loop.call_soon(self._finish_run, run, errors, auto_ack)

    async def _run_all(self, run: HandlerRun, handlers: list[Handler], arg: Any, auto_ack: bool) -> None:
        """A task on the loop: coroutine handlers here, plain ones on a worker thread."""
        errors: list[tuple[str, BaseException]] = []
        session = run.session
        for handler in handlers:
            run.handler = handler_name(handler)
            try:
                if is_coroutine_handler(handler):
                    await handler(arg)
                    await session.driver.conn.flush()  # its replies leave now, from this task
                else:
                    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    job = contextvars.copy_context().run  # this task's context, the run included
                    self._workers.submit(functools.partial(job, _run_one, handler, arg, done))
                    await done
            except Exception as exc:  # a handler's failure never reaches the socket
                errors.append((run.handler, exc))
        self._finish_run(run, errors, auto_ack)

    def _finish_run(self, run: HandlerRun, errors: list[tuple[str, BaseException]], auto_ack: bool) -> None:
        """The loop thread, after the last handler of a run: report, send what was left, auto-ack."""
        session = run.session
        for name, exc in errors:
            log.error(
                "handler %s failed on call %s: %s: %s",
                name,
                session.call_sid,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            self.record_lab(
                session.call_sid, "handler-error", f"{name}: {type(exc).__name__}: {exc}", msgid=run.msgid
            )
        left = session.driver.take_verbs(run)
        call = session.driver.call
        msgid = run.msgid
        owed = msgid is not None and not run.replied and call.pending_hook(msgid)
        try:
            if left:
                self._unsent(run, left, owed)
            elif owed and auto_ack and msgid is not None:
                session.driver.write(call.auto_ack(msgid))
        except JambonzLabError as exc:
            self.record_lab(session.call_sid, "protocol-error", str(exc), msgid=msgid)

    def _unsent(self, run: HandlerRun, verbs: list[dict[str, Any]], owed: bool) -> None:
        """Verbs a run composed and never sent: its event's reply, or appended to the stack."""
        session, call, msgid = run.session, run.session.driver.call, run.msgid
        names = ", ".join(v.get("verb", "?") for v in verbs)
        who = run.handler or "handler"
        if owed and msgid is not None:
            if self.options.unreplied == "error":
                note = (
                    f"{who} composed {len(verbs)} verb(s) ({names}) for {run.what} and returned without "
                    "reply(); they were dropped (ServerOptions.unreplied='error')"
                )
                self.report(
                    "handler-error", note, call_sid=session.call_sid, msgid=msgid, level=logging.ERROR
                )
                if msgid != call.initial_msgid:
                    session.driver.write(call.auto_ack(msgid))
                return
            note = (
                f"{who} composed {len(verbs)} verb(s) ({names}) for {run.what} and returned without "
                "reply(); sent them as its reply"
            )
            self.report("implicit-reply", note, call_sid=session.call_sid, msgid=msgid)
            session.driver.write(call.reply(msgid, verbs))
            return
        note = (
            f"{who} composed {len(verbs)} verb(s) ({names}) after {run.what} was answered and did not "
            "send them; appended them to the verb stack (a redirect with queueCommand)"
        )
        self.report("implicit-send", note, call_sid=session.call_sid, msgid=msgid)
        session.driver.write(call.send(verbs, exec_immediate=False))

    def apply_reply(self, session: Session, msgid: str, verbs: list[dict[str, Any]], text: str) -> None:
        """The loop side of a worker thread's ``reply()``: ack ``msgid`` with the frame it encoded."""
        try:
            outs = session.driver.call.reply(msgid, verbs, text=text)
        except JambonzLabError as exc:
            log.warning("call %s: reply to %s not sent: %s", session.call_sid, msgid, exc)
            self.record_lab(session.call_sid, "protocol-error", f"reply not sent: {exc}", msgid=msgid)
            return
        session.driver.write(outs)

    def _ack_if_owed(self, session: Session, msgid: str | None) -> None:
        if msgid is not None and session.driver.call.is_pending(msgid):
            self._auto_ack(session, msgid)

    def _auto_ack(self, session: Session, msgid: str) -> None:
        try:
            outs = session.driver.call.auto_ack(msgid)
        except JambonzLabError as exc:
            self.record_lab(session.call_sid, "protocol-error", str(exc), msgid=msgid)
            return
        session.driver.write(outs)

    # -- recording -------------------------------------------------------------------------

    def record_in(self, conn: Channel, msg: Message, raw: str) -> None:
        if self._record is not None:
            sid = conn.session.call_sid if conn.session else (msg.call_sid or msg.leg_sid)
            self._record(
                Row(
                    time.time(),
                    sid,
                    "in",
                    msg.type.value,
                    msg.msgid,
                    msg.hook,
                    0,
                    raw,
                    None,
                    conn.path,
                    "jambonz",
                    conn.transport,
                )
            )

    def record_out(self, session: Session, out: Outgoing) -> None:
        if self._record is not None:
            note = "auto" if out.auto else None
            self._record(
                Row(
                    time.time(),
                    session.call_sid,
                    "out",
                    out.kind,
                    out.acks,
                    None,
                    out.verbs,
                    out.text,
                    note,
                    session.driver.conn.path,
                    "jambonz",
                    session.driver.conn.transport,
                )
            )

    def report(
        self,
        kind: str,
        note: str,
        *,
        call_sid: str | None = None,
        msgid: str | None = None,
        level: int = logging.WARNING,
    ) -> None:
        """Log ``note`` (prefixed with the call, if any) and record it as a ``kind`` lab row."""
        if call_sid is None:
            log.log(level, "%s", note)
        else:
            log.log(level, "call %s: %s", call_sid, note)
        self.record_lab(call_sid, kind, note, msgid=msgid)

    def record_row(self, row: Row) -> None:
        """Hand a row to the owner's event log (loop thread)."""
        if self._record is not None:
            self._record(row)

    def record_lab(
        self, call_sid: str | None, kind: str, note: str, *, msgid: str | None = None, payload: Any = None
    ) -> None:
        if self._record is not None:
            row = make_row("jambonz", "lab", kind, call_sid=call_sid, msgid=msgid, payload=payload, note=note)
            self._record(row)


def _call_plain(handler: Handler, arg: Any) -> None:
    """Call a plain handler; one that hands back an awaitable was meant to be ``async def``."""
    result = handler(arg)
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError("handler returned an awaitable; declare it 'async def'")


def _run_one(handler: Handler, arg: Any, done: asyncio.Future[None]) -> None:
    """A worker thread: one plain handler of a mixed run; the outcome goes back to the loop."""
    try:
        _call_plain(handler, arg)
    except Exception as exc:  # noqa: BLE001 - handed to the run, which reports it
        loop.call_soon(_settle, done, exc)
    else:
        loop.call_soon(_settle, done, None)


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)


def _check_env_schema(schema: Mapping[str, Any]) -> None:
    """The portal reads ``{NAME: {"type", "description", "required"?, …}}``."""
    for name, spec in schema.items():
        if not isinstance(spec, Mapping) or spec.get("type") not in ("string", "number", "boolean"):
            raise ValueError(f"env var {name!r}: give a dict with 'type' string, number or boolean")
        if not isinstance(spec.get("description"), str):
            raise ValueError(f"env var {name!r}: give a 'description' (the portal shows it)")
    json.dumps(dict(schema))  # must be JSON


def _if_alive(ref: weakref.ref[Session], fn: GraceCall, msgid: str | None) -> None:
    """A weakly linked timer's call: ``fn(session, msgid)`` unless the session has left memory."""
    session = ref()
    if session is not None:
        fn(session, msgid)
