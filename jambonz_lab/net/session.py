"""Sessions and services: what app code and cells use.

A :class:`Service` is a path on the app server (``/``, ``/echo``) with
handlers for ``session:new``, ``session:redirect`` and ``session:reconnect``.
A :class:`Session` is one call: compose verbs with its chainable methods,
push them with :meth:`Session.send` or answer a hook with
:meth:`Session.reply`, and react to hooks and events with :meth:`Session.on`.

Threads: every public method may be called from any thread (a cell, a
handler's worker thread, a coroutine on the loop). Protocol state changes
only on the loop thread (:mod:`jambonz_lab.loop`); methods that write a frame
wait for the loop to take it, so their errors (:exc:`FrameTooLarge`,
:exc:`AlreadyReplied`, …) are raised in the caller.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import FunctionType
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

from .. import loop
from ..exceptions import AlreadyReplied, FrameTooLarge, JambonzLabError, SessionClosed, VerbError
from ..protocol import CallProtocol, CallState, Message, MessageType, Outgoing, TtsQueue, VerbMethods
from ..protocol import commands as cmd
from ..protocol.call import ack_message
from ..protocol.messages import encode
from ..protocol.verbs import build_verb, normalize_verbs
from ..waiting import Waiter
from .handlers import HandlerRun, current_run

if TYPE_CHECKING:
    from .audio import AudioStream
    from .server import AppServer, Channel, History

__all__ = ["SocketClose", "Handler", "Service", "Session"]

log = logging.getLogger("jambonz_lab.session")

Handler = Callable[[Any], Any]
#: the handler a decorator gets back unchanged (its own type, for the checker)
H = TypeVar("H", bound=Handler)

SERVICE_EVENTS = ("session:new", "session:redirect", "session:reconnect")


@dataclass(frozen=True, slots=True)
class SocketClose:
    """What ``close`` handlers get: the call's socket closed, and whether the call is over.

    An event, not an exception (that is :exc:`~jambonz_lab.SessionClosed`, raised when
    you write to a call whose socket is gone for good).

    Attributes:
        code: the WebSocket close code (``None`` if the TCP link just died).
        final: True when the call is over: jambonz closed the socket (it does
            so only on purpose, with 1000, or 1001 when it rejects the call)
            or the app closed it with 1000. Otherwise jambonz reconnects.
    """

    code: int | None
    final: bool


class _Handlers:
    def __init__(self, allowed: Iterable[str] | None = None) -> None:
        self._allowed = tuple(allowed) if allowed else None
        self._by_event: dict[str, list[Handler]] = {}

    def on(self, owner: str, event: str, handler: Handler | None) -> Any:
        if not isinstance(event, str) or not event:
            raise ValueError(f"{owner}.on: event must be a non-empty string, not {event!r}")
        if self._allowed and event not in self._allowed:
            raise ValueError(f"{owner}.on: unknown event {event!r}; use one of {', '.join(self._allowed)}")

        def add(fn: Handler) -> Handler:
            if not callable(fn):
                raise TypeError(f"{owner}.on({event!r}): handler must be callable, not {type(fn).__name__}")
            self._by_event.setdefault(event, []).append(fn)
            return fn

        return add if handler is None else add(handler)

    def get(self, *events: str | None) -> list[Handler]:
        out: list[Handler] = []
        for event in events:
            if event:
                out.extend(self._by_event.get(event, ()))
        return out


class Service:
    """A path of the app server that jambonz connects to.

    Example::

        svc = lab.service("/hello")

        @svc.on("session:new")
        def greet(session):
            session.say(text="Hello from Python").hangup().send()

    ``session:new`` handlers also get ``session:adulting`` sessions and, when
    no ``session:redirect`` handler exists, sessions a redirect opened.
    The same service answers jambonz over WebSocket and over HTTP webhooks
    (POST to the path: the calling hook; to :attr:`status_path`: call status;
    see :mod:`jambonz_lab.net.webhooks`).
    Declaring a path again replaces its service (re-running a cell is safe).
    Any thread may call these methods.
    """

    def __init__(self, path: str, *, env_vars: Mapping[str, Any] | None = None) -> None:
        self.path = path
        #: where an HTTP webhook app's call status hook is received (``<path>/status``; set it to
        #: the path of the application's call status webhook if that differs)
        self.status_path = path.rstrip("/") + "/status"
        #: the application's env-var schema, answered to the portal's OPTIONS
        self.env_vars: dict[str, Any] = dict(env_vars or {})
        self._handlers = _Handlers(SERVICE_EVENTS)

    @overload
    def on(self, event: str, handler: None = None) -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: H) -> H: ...
    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register ``handler(session)`` for ``event``; a decorator without ``handler``."""
        return self._handlers.on("Service", event, handler)

    def handlers(self, event: str) -> list[Handler]:
        return self._handlers.get(event)

    def __repr__(self) -> str:
        return f"<Service {self.path!r}>"


class Session(VerbMethods):
    """One call, as the app sees it.

    Example::

        @svc.on("session:new")
        def new(session):
            session.locals["tries"] = 0
            session.on("/echo", echo)
            session.gather(input=["speech"], actionHook="/echo", say={"text": "Say something"})
            session.send()

        def echo(msg):
            session = ...   # the handler closes over its session
            session.say(text=f"You said {msg.transcript}").reply()

    Attributes:
        call_sid, direction, from_, to, caller_name: from the opening payload.
        data: the whole opening payload (``sip``, ``env_vars``, ``defaults``…).
        locals: a dict for the app's own state; it survives reconnects.
        messages: the messages jambonz sent on this call, in order: the newest
            ``ServerOptions.keep_messages`` (the event log keeps them all).
        status: the latest ``call_status`` of this leg.
    """

    def __init__(self, server: AppServer, conn: Channel, call: CallProtocol, service: Service) -> None:
        opening = call.opening
        self._server = server
        #: the loop-thread side the app server drives (see :class:`SessionDriver`)
        self.driver = SessionDriver(self, conn, call)
        self.service = service
        self.data: dict[str, Any] = opening.data
        self.call_sid: str = call.call_sid or opening.msgid
        self.direction: str | None = _s(opening.data.get("direction"))
        self.from_: str | None = _s(opening.data.get("from"))
        self.to: str | None = _s(opening.data.get("to"))
        self.caller_name: str | None = _s(opening.data.get("caller_name"))
        self.opened_by: MessageType = opening.type
        self.locals: dict[str, Any] = {}
        self.messages: list[Message] = []
        self.status: str | None = _s(opening.data.get("call_status"))
        self.reconnects = 0
        #: the call's listen/stream audio sockets (:class:`~jambonz_lab.net.audio.AudioStream`), oldest first
        self.audio: list[AudioStream] = []
        self._queue: list[dict[str, Any]] = []
        self._qlock = threading.Lock()
        self._handlers = _Handlers()
        self._tts = TtsQueue()
        self._waiters: list[tuple[str, Waiter[Any]]] = []

    @property
    def _call(self) -> CallProtocol:
        return self.driver.call

    @property
    def _conn(self) -> Channel:
        return self.driver.conn

    # -- facts ----------------------------------------------------------------------

    @property
    def server(self) -> AppServer:
        """The app server this call came in on (see :func:`jambonz_lab.lab.runtime.lab_for`)."""
        return self._server

    @property
    def env_vars(self) -> dict[str, Any]:
        value = self.data.get("env_vars")
        return dict(value) if isinstance(value, Mapping) else {}

    @property
    def state(self) -> CallState:
        return self._call.state

    @property
    def closed(self) -> bool:
        return self._call.state is CallState.CLOSED

    @property
    def queued(self) -> list[dict[str, Any]]:
        """A copy of the verbs composed but not sent yet (in a handler: those of its event)."""
        with self._qlock:
            return copy.deepcopy(self._composing())

    @property
    def events(self) -> Any:
        """This call's rows of the lab's event log, as a pandas DataFrame."""
        return self._history().events_of(self.call_sid)

    @property
    def turns(self) -> Any:
        """This call's conversational turns (see ``Lab.turns``), as a pandas DataFrame."""
        return self._history().turns_of(self.call_sid)

    def transcript(self) -> Any:
        """Both sides of this call as a dialogue (see ``Lab.transcript``)."""
        return self._history().transcript_of(self.call_sid)

    def timeline(self) -> Any:
        """A picture of this call's messages (a matplotlib ``Figure``; see ``Lab.timeline``).

        Example::

            session.timeline().savefig("call.png")
        """
        return self._history().timeline_of(self.call_sid)

    def save(self, path: str | os.PathLike[str]) -> int:
        """Write this call's event-log rows to ``path`` as JSON lines; returns the row count.

        The file replays the call against a changed app (``jambonz_lab.sim.replay``)
        and loads back with ``jambonz_lab.read_log``. Any thread but the loop's.

        Example::

            session.save("echo-v1.jsonl")
            report = sim.replay("echo-v1.jsonl", lab.url + "/echo")
        """
        return self._history().save_of(self.call_sid, os.fspath(path))

    def _history(self) -> History:
        history = self._server.history
        if history is None:
            raise RuntimeError("this session's server keeps no event log")
        return history

    def pending(self) -> list[str]:
        """msgids jambonz waits an ack for, oldest first."""
        return [p.msgid for p in loop.run_sync(self._call.pending)]

    def __repr__(self) -> str:
        return f"<Session {self.call_sid} {self.from_}→{self.to} {self.state.value}>"

    # -- composing ------------------------------------------------------------------

    def _composing(self) -> list[dict[str, Any]]:
        """Where verbs composed now go: the running handler's event, else the session queue."""
        run = current_run.get()
        return run.verbs if run is not None and run.session is self else self._queue

    def _verb(self, method: str, spec: Any, args: dict[str, Any]) -> Self:
        props: dict[str, Any] = {}
        if spec is not None:
            if hasattr(spec, "model_dump"):
                props.update(spec.model_dump(mode="json", by_alias=True, exclude_unset=True))
            elif isinstance(spec, Mapping):
                props.update(spec)
            else:
                raise TypeError(f"{method}() takes a dict or an SDK model, not {type(spec).__name__}")
        props.update({k: v for k, v in args.items() if k not in ("self", "spec", "extra")})
        props.update(args.get("extra") or {})
        try:
            verb = build_verb(method, props)
        except VerbError as exc:
            raise exc.with_traceback(None) from None  # the error is the caller's line, not ours
        with self._qlock:
            self._composing().append(verb)
        return self

    def extend(self, verbs: Iterable[Mapping[str, Any]]) -> Self:
        """Queue verbs given as JSON (``{"verb": "say", …}`` or ``{"say": {…}}``), validated."""
        try:
            checked = normalize_verbs(verbs)
        except VerbError as exc:
            raise exc.with_traceback(None) from None
        with self._qlock:
            self._composing().extend(checked)
        return self

    def clear(self) -> Self:
        """Drop the verbs composed but not sent (in a handler: those of its event)."""
        with self._qlock:
            self._composing().clear()
        return self

    # -- sending --------------------------------------------------------------------

    def send(self, exec_immediate: bool = True) -> None:
        """Send the composed verbs.

        The first send acks ``session:new`` with them; later sends become a
        ``redirect`` command (``exec_immediate=False`` appends them to the
        running stack instead of replacing it). Nothing queued, nothing sent.
        Inside a handler it sends the verbs that handler's event composed;
        elsewhere (a cell) the session's queue.

        In a ``session:redirect`` handler it acks that redirect (jambonz runs
        its verbs instead of the call's). A redirect to a ws URL reaches the
        session on its own socket; when the session has no handler for it, the
        service at the URL's path takes it (its ``session:redirect`` handlers,
        else its ``session:new`` ones, with the session).

        Commands right after the opening ack are held until jambonz shows it
        listens (its next frame for the call, or ``ServerOptions.command_hold``
        seconds): jambonz drops a command that reaches it in the same read as
        the ack.

        Raises:
            FrameTooLarge: over 24 KiB; nothing stays queued (the refused
                verbs are on ``exc.verbs``).
            SessionClosed: the call is over.
        """
        run = current_run.get()
        if run is not None and run.session is self and run.send_replies and not run.replied:
            self._reply_run(run)  # a session:redirect's handler: its ack carries the new verbs
            return
        self._flush(None, lambda verbs: self._call.send(verbs, exec_immediate=exec_immediate))

    def reply(self, msgid: str | None = None) -> None:
        """Ack a hook with the composed verbs (none: an empty ack, carry on).

        Inside a hook handler it acks that handler's hook with exactly the
        verbs composed in that handler run, even with several hooks in flight.
        Elsewhere (a cell) it acks the newest hook still waiting, or ``msgid``
        when given, with the session's queue. A hook handler that composes
        verbs and returns without ``reply()`` has them sent as its reply, with
        a warning row (``ServerOptions.unreplied``).

        From a plain handler's worker thread the ack is handed to the loop
        without waiting; if jambonz abandoned the hook meanwhile (the socket
        dropped), that is reported as a ``protocol-error`` row.

        Raises:
            AlreadyReplied: that hook was acked already (by you, or
                automatically because no handler replied).
            NoPendingHook: jambonz waits for no such hook.
            FrameTooLarge: over 24 KiB; nothing stays queued.
        """
        run = current_run.get()
        if run is not None and run.session is self and run.msgid is not None and msgid in (None, run.msgid):
            self._reply_run(run)
            return
        self._flush(msgid, lambda verbs: self._call.reply(msgid, verbs))

    def _reply_run(self, run: HandlerRun) -> None:
        """reply() inside a handler run: that event's msgid, that run's verbs."""
        assert run.msgid is not None
        msgid = run.msgid
        if loop.in_loop_thread() or run.msgid == self._call.initial_msgid:
            self._flush(msgid, lambda verbs: self._call.reply(msgid, verbs), run)
            return
        # a worker thread: check what can be checked here, hand the ack over without waiting
        with self._qlock:
            if run.replied:
                raise AlreadyReplied(
                    f"{run.what} (msgid {msgid}) was already acked by this handler run; "
                    "use send() to push more verbs",
                    call_sid=self.call_sid,
                    msgid=msgid,
                )
            verbs = list(run.verbs)
            run.verbs.clear()
            try:
                text = encode(ack_message(msgid, verbs), limit=self._call.limit, call_sid=self.call_sid)
            except FrameTooLarge as exc:
                exc.verbs = verbs
                loop.call_soon(self._server.record_lab, self.call_sid, "refused-frame", str(exc))
                raise exc.with_traceback(None) from None
            run.replied = True
        loop.call_soon(self._server.apply_reply, self, msgid, verbs, text)

    def _flush(
        self,
        msgid: str | None,
        step: Callable[[list[dict[str, Any]]], list[Outgoing]],
        run: HandlerRun | None = None,
    ) -> None:
        source_run = run or current_run.get()
        if source_run is not None and source_run.session is not self:
            source_run = None

        def on_loop() -> None:
            # take the verbs and step the protocol in one go on the loop, so that a hook
            # answered right after this frame cannot pick up the same verbs
            with self._qlock:
                source = source_run.verbs if source_run is not None else self._queue
                verbs = list(source)
                try:
                    outs = step(verbs)
                except FrameTooLarge as exc:
                    del source[: len(verbs)]  # refused: nothing stays queued, the verbs are on exc
                    exc.verbs = verbs
                    self._server.record_lab(self.call_sid, "refused-frame", str(exc))
                    raise
                del source[: len(verbs)]
                if source_run is not None and msgid is not None and msgid == source_run.msgid:
                    source_run.replied = True
            self.driver.write(outs)

        _on_loop(on_loop)

    def inject(self, command: str, data: Any = None, *, call_sid: str | None = None) -> None:
        """Send any command as is (prefer the checked ``inject_*`` helpers)."""
        self._command(command, data, call_sid=call_sid)

    def _command(self, name: str, data: Any = None, **kw: Any) -> None:
        def on_loop() -> None:
            try:
                outs = self._call.command(name, data, **kw)
            except FrameTooLarge as exc:
                self._server.record_lab(self.call_sid, "refused-frame", str(exc))
                raise
            self.driver.write(outs)

        _on_loop(on_loop)

    def inject_mute(self, status: str = "mute", *, call_sid: str | None = None) -> None:
        """Mute or unmute a leg (dial or conference); ``call_sid`` picks a B-leg."""
        self._command(*cmd.mute_status(status), call_sid=call_sid)

    def inject_whisper(self, verbs: Any, *, call_sid: str | None = None) -> None:
        """Say/play to one party of a dial or listen."""
        self._command(*cmd.whisper(verbs), call_sid=call_sid)

    def inject_record(self, action: str, *, call_sid: str | None = None, **options: Any) -> None:
        """``startCallRecording`` / stop / pause / resume (type, recording_id, …)."""
        self._command(*cmd.record(action, **options), call_sid=call_sid)

    def inject_dtmf(self, digit: str, duration: int = 250, *, call_sid: str | None = None) -> None:
        """Send DTMF to the leg as SIP INFO."""
        self._command(*cmd.dtmf(digit, duration), call_sid=call_sid)

    def inject_sip_request(self, method: str, *, call_sid: str | None = None, **options: Any) -> None:
        """Send a SIP request in the dialog (content_type, content, headers)."""
        self._command(*cmd.sip_request(method, **options), call_sid=call_sid)

    def inject_listen_status(self, status: str, *, stream: bool = False, call_sid: str | None = None) -> None:
        """Pause, resume or silence the running listen/stream."""
        self._command(*cmd.listen_status(status, stream=stream), call_sid=call_sid)

    def inject_transcribe_status(self, status: str, *, call_sid: str | None = None) -> None:
        """Pause, resume or silence transcription."""
        self._command(*cmd.transcribe_status(status), call_sid=call_sid)

    def inject_conf_mute_status(self, status: str = "mute", *, call_sid: str | None = None) -> None:
        """Mute or unmute all non-moderators of the conference."""
        self._command(*cmd.conf_mute_status(status), call_sid=call_sid)

    def inject_conf_hold_status(
        self, status: str = "hold", wait_hook: str | None = None, *, call_sid: str | None = None
    ) -> None:
        """Hold or unhold a conference member."""
        self._command(*cmd.conf_hold_status(status, wait_hook), call_sid=call_sid)

    def inject_conf_participant_action(
        self,
        action: str,
        tag: str | None = None,
        wait_hook: str | None = None,
        *,
        call_sid: str | None = None,
    ) -> None:
        """Tag, coach, hold, mute or kick a conference participant."""
        self._command(*cmd.conf_participant_action(action, tag, wait_hook), call_sid=call_sid)

    def inject_dub(self, action: str, track: str, *, call_sid: str | None = None, **props: Any) -> None:
        """Manage a dub track on the leg."""
        self._command(*cmd.dub(action, track, **props), call_sid=call_sid)

    def inject_boost_audio_signal(self, level: int | float | str, *, call_sid: str | None = None) -> None:
        """Gain on the leg (``-2`` or ``"-2 dB"``)."""
        self._command(*cmd.boost_audio_signal(level), call_sid=call_sid)

    def inject_media_path(self, path: str, *, call_sid: str | None = None) -> None:
        """``no-media``, ``partial-media`` or ``full-media`` during a dial."""
        self._command(*cmd.media_path(path), call_sid=call_sid)

    def inject_config(self, *, call_sid: str | None = None, **props: Any) -> None:
        """Run a config verb now."""
        self._command(*cmd.config(**props), call_sid=call_sid)

    def inject_call_status(self, status: str = "completed", *, call_sid: str | None = None) -> None:
        """Hang up now (``completed``) or reject an unanswered call (``no-answer``)."""
        self._command(*cmd.call_status(status), call_sid=call_sid)

    def send_tool_output(self, tool_call_id: str, data: Any) -> None:
        """Answer an ``llm:tool-call`` (``data`` in the vendor's shape)."""
        if not isinstance(tool_call_id, str) or not tool_call_id:
            raise ValueError("send_tool_output: tool_call_id must be the id from the llm:tool-call")
        self._command("llm:tool-output", data, tool_call_id=tool_call_id)

    def update_llm(self, data: Any) -> None:
        """Send an ``llm:update`` to the running llm verb."""
        self._command("llm:update", data)

    # -- TTS token streaming ----------------------------------------------------------

    def tts_tokens(self, text: str) -> None:
        """Stream text to TTS; one ``tts:tokens`` in flight, paused while jambonz is full."""
        loop.run_sync(lambda: self._tts_commands(self._tts.push(text)))

    def tts_flush(self) -> None:
        """Ask jambonz to speak what it buffered, after the tokens queued so far."""
        loop.run_sync(lambda: self._tts_commands(self._tts.flush()))

    def tts_clear(self) -> None:
        """Drop the queued tokens here and jambonz's buffer."""
        loop.run_sync(lambda: self._tts_commands(self._tts.clear()))

    @property
    def tts_pending(self) -> int:
        """Token chunks not yet accepted by jambonz."""
        return self._tts.queued

    def _tts_commands(self, commands: list[tuple[str, Any]]) -> None:
        for name, data in commands:
            self.driver.write(self._call.command(name, data))

    # -- events ---------------------------------------------------------------------

    @overload
    def on(self, event: str, handler: None = None) -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: H) -> H: ...
    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register ``handler(message)`` for a hook (``"/echo"``) or an event type.

        Types: ``call:status``, ``verb:status``, ``jambonz:error``,
        ``llm:event``, ``llm:tool-call``, ``tts:streaming-event``,
        ``tts:tokens-result``, ``dial:confirm``, ``session:redirect``,
        ``verb:hook`` (every verb hook), and ``close`` (gets a :class:`SocketClose`).
        Plain functions run on a worker thread, coroutines on the loop. A hook
        whose handlers return without :meth:`reply` is acked empty.
        Usable as a decorator.
        """
        return self._handlers.on("Session", event, handler)

    def wait_for(self, event: str, timeout: float = 30.0) -> Waiter[Any]:
        """Wait for the next hook (``"/echo"``) or event type (``"call:status"``, ``"close"``).

        Returns a :class:`~jambonz_lab.waiting.Waiter`: ``await`` it in an async
        cell, or call ``.result()``. It yields the :class:`~jambonz_lab.Message`
        (a :class:`SocketClose` for ``"close"``). A hook nobody handles is acked
        automatically before the waiter sees it; push verbs with :meth:`send`.
        On an HTTP webhook call the hook's answer is its response: the waiter
        gets ``ServerOptions.grace`` seconds to :meth:`send` it first.

        Raises (from the waiter):
            WaitTimeout: nothing matching within ``timeout`` seconds.
            SessionClosed: the call ended first.

        Any thread may call it; the match happens on the loop thread.
        """
        waiter: Waiter[Any] = Waiter(f"{event} on call {self.call_sid}", timeout, call_sid=self.call_sid)
        loop.run_sync(self._add_waiter, event, waiter)
        return waiter

    def _add_waiter(self, event: str, waiter: Waiter[Any]) -> None:
        if self.closed and event != "close":
            waiter.fail(
                SessionClosed(
                    f"call {self.call_sid} has ended; {event} will not come", call_sid=self.call_sid
                )
            )
            return
        waiter.arm()
        self._waiters.append((event, waiter))

    def close(self, code: int = 1000) -> None:
        """Close the call's socket (1000: jambonz stops sending for this call)."""
        loop.run_sync(self._close_now, code)

    def _close_now(self, code: int) -> None:
        if code == 1000:
            self._call.close()
        self._conn.close(code)


class SessionDriver:
    """The loop-thread side of a :class:`Session`: what the app server drives.

    ``Session`` is the thread-safe public API; the server (``net/server.py``) talks only to
    ``session.driver``: the call's protocol state (``call``), its socket (``conn``, replaced
    on a reconnect), and the entry points below. Loop thread only.
    """

    def __init__(self, session: Session, conn: Channel, call: CallProtocol) -> None:
        # weak: the session owns its driver, and a link back would make every session a cycle
        # that only a full garbage collection frees (see release())
        self._session = weakref.ref(session)
        self.call = call
        self.conn = conn
        self._server = session.server
        self._settle_timer: asyncio.TimerHandle | None = None

    @property
    def session(self) -> Session:
        session = self._session()
        if session is None:  # only a timer or task that outlived release() can get here
            raise SessionClosed(f"call {self.call.call_sid} has left memory", call_sid=self.call.call_sid)
        return session

    def release(self) -> None:
        """The ended session left ``AppServer.sessions``: drop what links it to itself.

        That is its handlers (they close over the session), the socket's link back, and the
        settle timer (its context holds the handler run, which holds the session). Then
        reference counting frees the session once the app lets go of it, with no wait for a
        full garbage collection, which walks every tracked object of the process. A kept
        reference still reads everything (state, messages, events). Loop thread only.
        """
        session = self._session()
        if self._settle_timer is not None:
            self._settle_timer.cancel()
            self._settle_timer = None
        if session is not None:
            session._handlers = _Handlers()
        if self.conn.session is session:
            self.conn.session = None
        self.conn.early.clear()

    def write(self, outs: list[Outgoing]) -> None:
        """Send what the call protocol produced, in order."""
        loop.require_loop_thread()
        self.conn.write(self.session, outs)
        if self.call.state is CallState.STARTING and self._settle_timer is None:
            # the opening ack is out; held commands go at jambonz's next frame, or after command_hold
            self._settle_timer = loop.call_later(self._server.options.command_hold, self._settle)

    def _settle(self) -> None:
        self._settle_timer = None  # a fired handle links back to this driver through its callback
        outs = self.call.settle()
        if outs:
            self._server.record_lab(
                self.session.call_sid,
                "commands-held",
                f"{len(outs)} command(s) held after the opening ack sent after "
                f"{self._server.options.command_hold:g} s (no frame from jambonz meanwhile)",
            )
            self.write(outs)

    def deliver(self, msg: Message) -> tuple[list[Handler], bool]:
        """Take a message for this call; returns the handlers to run, and whether a waiter took it."""
        session = self.session
        released = self.call.receive(msg)
        if released:  # commands held since the opening ack: jambonz listens now
            self._server.record_lab(
                session.call_sid,
                "commands-held",
                f"{len(released)} command(s) held after the opening ack sent on jambonz's next frame",
            )
            self.write(released)
        self._keep(msg)
        if msg.type is MessageType.CALL_STATUS and msg.leg_sid in (session.call_sid, None):
            session.status = msg.call_status or session.status
        elif msg.type is MessageType.TTS_TOKENS_RESULT:
            session._tts_commands(session._tts.on_result(msg.data))
        elif msg.type is MessageType.TTS_STREAMING_EVENT:
            session._tts_commands(session._tts.on_event(str(msg.data.get("event_type", ""))))
        awaited = self.resolve((msg.hook, msg.type.value), msg)
        return session._handlers.get(msg.hook, msg.type.value), awaited

    def _keep(self, msg: Message) -> None:
        """Append to ``Session.messages``, keeping the newest ``keep_messages`` (trimmed in batches)."""
        messages = self.session.messages
        messages.append(msg)
        cap = self._server.options.keep_messages
        if len(messages) >= 2 * cap + 1:
            del messages[: len(messages) - cap]

    def resolve(self, keys: tuple[str | None, ...], value: Any) -> bool:
        """Hand ``value`` to the session's waiters for any of ``keys``; True if one took it."""
        session = self.session
        if not session._waiters:
            return False
        keep = []
        taken = False
        for event, waiter in session._waiters:
            if waiter.done:
                continue
            if event in keys:
                waiter.resolve(value)
                taken = True
            else:
                keep.append((event, waiter))
        session._waiters = keep
        return taken

    def fail_waiters(self) -> None:
        """The call ended: every waiter but those for ``close`` fails with SessionClosed."""
        session = self.session
        for event, waiter in session._waiters:
            if event != "close":
                waiter.fail(
                    SessionClosed(
                        f"call {session.call_sid} ended while waiting for {event}", call_sid=session.call_sid
                    )
                )
        session._waiters = [(e, w) for e, w in session._waiters if e == "close" and not w.done]

    def handlers_for(self, event: str) -> list[Handler]:
        return self.session._handlers.get(event)

    def take_verbs(self, run: HandlerRun) -> list[dict[str, Any]]:
        """The verbs a handler run composed and did not send (emptied), under the session's lock."""
        with self.session._qlock:
            left = list(run.verbs)
            run.verbs.clear()
        return left


def _on_loop(step: Callable[[], None]) -> None:
    """Run a sending step on the loop; its error is raised at the caller's line, not ours."""
    try:
        loop.run_sync(step)
    except JambonzLabError as exc:
        raise exc.with_traceback(None) from None


def _s(value: object) -> str | None:
    return value if isinstance(value, str) else None


def is_coroutine_handler(fn: Handler) -> bool:
    if type(fn) is FunctionType:  # nearly always: one flag test on the hot path
        return bool(fn.__code__.co_flags & inspect.CO_COROUTINE)
    call = type(fn).__call__ if not inspect.isroutine(fn) else None
    return inspect.iscoroutinefunction(fn) or (call is not None and inspect.iscoroutinefunction(call))
