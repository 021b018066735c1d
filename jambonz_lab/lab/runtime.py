"""The lab: an app server in the background of the kernel, its event log, its sessions.

Example::

    import jambonz_lab as jl

    lab = jl.start()                 # returns once listening on 127.0.0.1
    svc = lab.service("/hello")

    @svc.on("session:new")
    def hello(session):
        session.say(text="Hello from Python").hangup().send()

    lab.url                           # ws://127.0.0.1:PORT — the call hook to give jambonz

Threads: call these from cells, scripts or handlers, never from a coroutine
running on the lab's loop (start/stop wait for the loop).
"""

from __future__ import annotations

import atexit
import enum
import gc
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from .. import loop
from ..callclocks import stamp
from ..exceptions import ServerError
from ..net import AppServer, ServerOptions, Service, Session
from ..net.audio import AudioService
from ..net.rest import RestClient
from ..protocol.verbs import load_models
from ..records import Row
from ..waiting import Waiter
from .events import EventLog, parsed, repair_tail, truncate

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ..platforms import EventSource
    from ..platforms.basix import BasixClient
    from ..platforms.kazoo import KazooClient
    from ..platforms.kazoo_webhooks import WebhookReceiver
    from ..platforms.wazo import WazoClient
    from ..sim import Caller, CallResult, SimOptions
    from ..sim.clock import ClockName
    from ..sim.engine import Direction
    from .parquet import ParquetSink
    from .turns import Transcript

    S = TypeVar("S", bound=EventSource)

__all__ = ["Lab", "LabState", "default_lab", "lab_for", "read_log", "service", "sql", "start", "stop_all"]


class LabState(enum.Enum):
    """Where a :class:`Lab` is in its life: it starts once and stops once."""

    NEW = "not started"
    RUNNING = "running"
    STOPPED = "stopped"


log = logging.getLogger("jambonz_lab.lab")

_registry_lock = threading.RLock()
_running: dict[tuple[str, int], Lab] = {}
_default: Lab | None = None


class Lab:
    """One app server with its services, sessions and event log.

    Create it with :func:`jambonz_lab.start`. Attributes ``url``, ``host``
    and ``port`` tell where jambonz should connect.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_path: str | Path | None = None,
        parquet_dir: str | Path | None = None,
        memory_rows: int = 200_000,
        spill_dir: str | Path | None = None,
        max_logged_frame: int = 65_536,
        **options: Any,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.log = EventLog(memory_rows=memory_rows, spill_dir=spill_dir)
        self.log_path = Path(log_path) if log_path is not None else None
        #: where the live Parquet sink writes (``start(parquet_dir=...)``), or None
        self.parquet_dir = Path(parquet_dir) if parquet_dir is not None else None
        #: the live Parquet writer while the lab runs (see :class:`~jambonz_lab.lab.parquet.ParquetSink`)
        self.parquet: ParquetSink | None = None
        if max_logged_frame < 1024:
            raise ValueError(f"max_logged_frame must be at least 1024 characters, not {max_logged_frame}")
        #: payloads longer than this are logged truncated (their head and size)
        self.max_logged_frame = max_logged_frame
        self._sink: TextIO | None = None
        self._subscribers: list[Callable[[Row], None]] = []
        self._stop_listeners: list[Callable[[], None]] = []
        self.server = AppServer(
            ServerOptions(**options),
            record=self._on_record,
            history=_History(
                self.log.events_of, self.timeline, self._save_call, self._turns_of, self.transcript
            ),
        )
        #: the lab's lifecycle (see :class:`LabState`)
        self.state = LabState.NEW
        #: the platform event sources this lab records (see :meth:`watch`)
        self.sources: list[EventSource] = []
        #: the Kazoo webhook receivers mounted on this lab's server, by path
        self.webhooks: dict[str, WebhookReceiver] = {}
        #: the REST API clients made by :meth:`rest` (closed with the lab)
        self.rest_clients: list[RestClient] = []
        #: whether the next :func:`jambonz_lab.start` may stop this lab (``start(replace=False)``: no)
        self.replaceable = True
        #: the URL of the lab this one's :func:`jambonz_lab.start` stopped, if any (shown in the repr)
        self.replaced: str | None = None

    @property
    def running(self) -> bool:
        """True while the lab serves (``state is LabState.RUNNING``)."""
        return self.state is LabState.RUNNING

    def _on_record(self, row: Row) -> None:
        """Every frame and lab event (loop thread): log it, persist it, tell the subscribers."""
        row = stamp(truncate(row, self.max_logged_frame))  # a simulated call's rows: its call time
        self.log.record(row)
        if self._sink is not None:
            try:
                self.log.write_jsonl(row, self._sink)
            except OSError as exc:
                log.error("cannot write %s: %s; persistence stopped", self.log_path, exc)
                self._sink = None
        if self.parquet is not None:
            self.parquet.add(row)
        for fn in self._subscribers:
            try:
                fn(row)
            except Exception:  # a widget's failure must not touch the socket
                log.exception("event subscriber %r failed", fn)

    def subscribe(self, fn: Callable[[Row], None]) -> Callable[[], None]:
        """Call ``fn(row)`` on the loop thread for every new event-log row; returns an unsubscribe.

        ``fn`` must be quick and must not block (widgets use it to update themselves).
        """
        loop.run_sync(self._subscribers.append, fn)
        return lambda: loop.run_sync(self._unsubscribe, fn)

    def _unsubscribe(self, fn: Callable[[Row], None]) -> None:
        if fn in self._subscribers:
            self._subscribers.remove(fn)

    def on_stop(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` on the loop thread once this lab has stopped (widgets use it to say so).

        Quick and non-blocking, like a :meth:`subscribe` callback. Any thread.
        """
        loop.run_sync(self._stop_listeners.append, fn)

    def _stopped(self) -> None:
        """Tell the stop listeners (loop thread)."""
        for fn in self._stop_listeners:
            try:
                fn()
            except Exception:  # one listener's failure must not stop the others
                log.exception("stop listener %r failed", fn)

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> Lab:
        """Start listening; returns once the socket listens and the verb models are loaded.

        The models load once per process (one to two seconds in a Jupyter environment, see
        :func:`jambonz_lab.protocol.verbs.load_models`): the start pays it, so that the first
        call is answered at once. Idempotent.
        """
        if self.state is LabState.RUNNING:
            return self
        if self.state is LabState.STOPPED:
            raise ServerError("this lab was stopped; call jambonz_lab.start() for a new one")
        load_models()  # here, not in the first call's ack (issue 18 item 4)
        _freeze_imports()
        if self.log_path is not None:
            cut = repair_tail(self.log_path)
            if cut:
                log.warning(
                    "%s ended in a torn line; cut its %d byte(s) before appending", self.log_path, cut
                )
            self._sink = open(self.log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed in stop()
        if self.parquet_dir is not None:
            from .parquet import ParquetSink

            self.parquet = ParquetSink(self.parquet_dir)
        loop.submit(self.server.start(self.host, self.requested_port)).result(loop.STEP_TIMEOUT)
        self.state = LabState.RUNNING
        self.log.start_keeper()
        with _registry_lock:
            _running[(self.host, self.port)] = self
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every call socket (1001: jambonz reconnects) and stop. Idempotent."""
        if self.state is not LabState.RUNNING:
            self.state = LabState.STOPPED
            return
        self.state = LabState.STOPPED
        with _registry_lock:
            if _running.get((self.host, self.port)) is self:
                del _running[(self.host, self.port)]
        for source in self.sources:
            try:
                loop.submit(source.aclose()).result(timeout)
            except Exception as exc:  # stopping goes on whatever one source does
                log.info("closing %r: %s", source, exc)
        for client in self.rest_clients:
            try:
                loop.submit(client.aclose()).result(timeout)
            except Exception as exc:
                log.info("closing %r: %s", client, exc)
        try:
            loop.submit(self.server.stop()).result(timeout)
        except TimeoutError:
            pass
        sink, self._sink = self._sink, None
        if sink is not None:
            loop.run_sync(sink.close)
        parquet = loop.run_sync(self._detach_parquet)
        if parquet is not None:
            parquet.close()  # writes the rows still waiting
        self.log.stop_keeper()
        loop.run_sync(self._stopped)

    def _detach_parquet(self) -> ParquetSink | None:
        """Take the Parquet sink off the loop thread's path (loop thread: no row slips past it)."""
        parquet, self.parquet = self.parquet, None
        return parquet

    # -- facts --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.server.port if self.server.port is not None else self.requested_port

    @property
    def url(self) -> str:
        """``ws://host:port`` — append a service path for jambonz's call hook."""
        return f"ws://{self.host}:{self.port}"

    @property
    def options(self) -> ServerOptions:
        return self.server.options

    def service(self, path: str = "/", *, env_vars: Mapping[str, Any] | None = None) -> Service:
        """Declare the service at ``path`` (again: replace it).

        Args:
            path: the URL path jambonz connects to.
            env_vars: the app's env-var schema, answered to the portal's
                ``OPTIONS`` request: ``{"NAME": {"type": "string",
                "description": "…", "required": True}}``.
        """
        if self.running:
            return loop.run_sync(self.server.service, path, env_vars)
        return self.server.service(path, env_vars)

    def audio(
        self, path: str = "/audio", *, keep_seconds: float = 60.0, spill_dir: str | Path | None = None
    ) -> AudioService:
        """Declare the audio endpoint at ``path`` for ``listen`` / ``stream`` verbs (again: replace it).

        Point a verb there: ``session.listen(url=f"{lab.url}/audio").send()``. Each socket is an
        :class:`~jambonz_lab.net.audio.AudioStream` (``service.on("connect", fn)``,
        ``await service.wait_for_stream()``); a call's streams are also ``session.audio``.

        Args:
            path: the URL path the audio socket connects to (not a call service's path).
            keep_seconds: audio kept in memory per stream; a longer stream goes whole to a
                WAV file in ``spill_dir`` (the system's temporary directory by default).
        """
        spill = None if spill_dir is None else str(spill_dir)
        if self.running:
            return loop.run_sync(lambda: self.server.audio(path, keep_seconds=keep_seconds, spill_dir=spill))
        return self.server.audio(path, keep_seconds=keep_seconds, spill_dir=spill)

    @property
    def sessions(self) -> list[Session]:
        """The live sessions and the most recent ended ones (``keep_sessions``), oldest first."""
        return loop.run_sync(lambda: list(self.server.sessions.values()))

    def session(self, call_sid: str) -> Session:
        """The session of ``call_sid`` (KeyError if unknown)."""
        return loop.run_sync(lambda: self.server.sessions[call_sid])

    def call(
        self,
        path: str = "/",
        caller: Caller | None = None,
        clock: ClockName = "virtual",
        *,
        options: SimOptions | None = None,
        timeout: float = 600.0,
        direction: Direction = "inbound",
        tag: Mapping[str, Any] | None = None,
        **call_attrs: Any,
    ) -> CallResult:
        """Place a simulated call to this lab's service at ``path`` and wait for its end.

        Args:
            path: the service's path (``"/"``, ``"/ivr"``).
            caller: what the caller does (:class:`~jambonz_lab.sim.Caller`; default silent,
                hanging up at the time limit). Seeded: the same seed, the same caller.
            clock: ``"virtual"`` (fast, deterministic) or ``"real"``.
            options: the simulator's timeouts and auth (:class:`~jambonz_lab.sim.SimOptions`).
            timeout: real seconds to wait for the call to end.
            direction: ``"inbound"`` (``session:new`` first) or ``"outbound"`` (a REST-made
                call: its ``call:status`` first, ``session:new`` once answered).
            tag: outbound only: the createCall ``tag`` (sent as ``customerData``).
            **call_attrs: payload fields to override (``call_sid``, ``to``, ``from_``,
                ``env_vars``, ``sip_headers``, ``ring_timeout``, …).

        Same as :func:`jambonz_lab.sim.call` with ``self.url + path``.
        """
        from ..sim import call

        return call(
            self.url + path,
            caller,
            clock,
            options=options,
            timeout=timeout,
            direction=direction,
            tag=tag,
            **call_attrs,
        )

    def wait_for_session(self, path: str | None = None, timeout: float = 30.0) -> Waiter[Session]:
        """Wait for the next call (under ``path``, or any); ``await`` it or ``.result()``.

        Only calls that open after this method returns count: to catch a simulated call,
        create the waiter first, then place the call.

        Example::

            next_call = lab.wait_for_session("/echo")
            ...                                   # a call comes in
            session = await next_call
        """
        what = f"a call on {path}" if path else "a call"
        waiter: Waiter[Session] = Waiter(what, timeout)
        loop.run_sync(self.server.wait_for_session, path, waiter)
        return waiter

    @property
    def events(self) -> pd.DataFrame:
        """Every message both ways and every lab event, one row each (payload fields flattened,
        ``ack_ms`` on acks; ``call_t``: seconds on a simulated call's own clock, NaN for real
        calls). Built on demand, cached until the next event."""
        return self.log.events

    @property
    def calls(self) -> pd.DataFrame:
        """One row per call: from/to, start, answer, end, duration, final status, hooks, errors, and
        ``clock``: ``call`` (a simulated call: answer and end on its own clock) or ``wall``."""
        return self.log.calls

    @property
    def hooks(self) -> pd.DataFrame:
        """One row per message that wanted an ack, with ``ack_ms`` and whether it was automatic."""
        return self.log.hooks

    @property
    def statuses(self) -> pd.DataFrame:
        """Every ``call:status`` (A- and B-legs)."""
        return self.log.statuses

    @property
    def turns(self) -> pd.DataFrame:
        """One row per conversational turn of every call: the caller's input and when it ended, the
        hook's ack latency, what the app said next and how soon, tool calls, barge-ins, the gap to
        the next input (:func:`jambonz_lab.lab.turns.turns`)."""
        from . import turns

        return turns.turns(self.log.events)

    def sql(self, query: str, parquet: str | Path | None = None) -> pd.DataFrame:
        """Run a DuckDB SQL query over the tables ``events``, ``calls``, ``hooks``, ``statuses`` and
        ``turns`` of this lab's log (or, with ``parquet``, of that Parquet log directory); returns a
        DataFrame. Needs duckdb (the ``scale`` extra). A bad query raises
        :exc:`~jambonz_lab.exceptions.QueryError` (a ValueError) with DuckDB's message.

        Example::

            lab.sql("select final_status, count(*) n from calls group by 1")
        """
        from . import queries

        if parquet is not None:
            return queries.over_directory(query, parquet)
        return queries.over_log(query, self.log)

    def _turns_of(self, call_sid: str) -> pd.DataFrame:
        from . import turns

        return turns.turns(self.log.events_of(call_sid))

    def turn_summary(self) -> pd.DataFrame:
        """One row per call: turns, p50/p95/max response time, longest gap, barge-ins, tool calls."""
        from . import turns

        return turns.summary(self.turns)

    def compare_turns(self, groups: Mapping[str, Iterable[Any]]) -> pd.DataFrame:
        """Turn latencies per group of calls, e.g. two versions of an agent::

            lab.compare_turns({"v1": sim.load(url_v1, ...), "v2": sim.load(url_v2, ...)})

        A group is CallResults or call sids. See :func:`jambonz_lab.lab.turns.compare`.
        """
        from . import turns

        return turns.compare(self.turns, groups)

    def plot_response_times(self, groups: Mapping[str, Iterable[Any]] | None = None) -> Figure:
        """The response-time distribution of every group of calls (or of all turns), as a Figure."""
        from . import turns

        return turns.plot_response_times(self.turns, groups)

    def transcript(self, call_sid: str) -> Transcript:
        """Both sides of the call as a dialogue (``.frame`` is the DataFrame; a chat view in a
        notebook). Times are the call's own clock for simulated calls."""
        from . import turns

        return turns.transcript(self.log.events_of(call_sid), call_sid)

    def timeline(self, call_sid: str | None = None, *, last: int | None = 20) -> Figure:
        """A picture of the messages of the newest calls (or of ``call_sid``): swim-lanes over time.

        Returns a ``matplotlib.figure.Figure`` that shows inline in a notebook
        (see :func:`jambonz_lab.lab.timeline.draw`). Needs matplotlib. Any thread but the loop's.

        Args:
            call_sid: draw only this call.
            last: draw the ``last`` calls that started most recently (a lane per call, so a
                500-call load would be a picture 90,000 pixels tall); the title says how many
                were left out. ``None`` draws every call.

        Example::

            lab.timeline()                       # the newest 20 calls
            lab.timeline(last=None)              # every call
            lab.timeline(sid).savefig("call.png")
        """
        from .timeline import draw

        events = self.log.jambonz
        if call_sid is not None:
            events = events[events["call_sid"] == call_sid]
            if len(events) == 0:
                raise KeyError(f"no events for call {call_sid!r}")
            return draw(events, title=None)
        if last is not None and last < 1:
            raise ValueError(f"last must be a positive number of calls or None, not {last!r}")
        sids = events["call_sid"].dropna().unique()  # in the order the calls first appear
        if last is not None and len(sids) > last:
            kept = sids[-last:]
            events = events[events["call_sid"].isin(kept) | events["call_sid"].isna()]
            title: str | None = f"the newest {last} of {len(sids)} calls (timeline(last=None): all)"
        else:
            title = f"{len(sids)} call(s)" if len(sids) != 1 else None
        return draw(events, title=title)

    # -- platform event sources ---------------------------------------------------------

    def watch(self, source: S, timeout: float = 15.0) -> S:
        """Record ``source``'s events in this lab's log (``source`` column) and connect it.

        Raises what the first connection raises (:exc:`~jambonz_lab.PlatformError` and
        its kin); later drops are reconnected and recorded. Cells and scripts.

        Example::

            from jambonz_lab.platforms.wazo import WazoClient
            wazo = lab.watch(WazoClient("http://127.0.0.1:9497", username="alice", password="pw"))
        """
        source.record = self._on_record
        if source not in self.sources:
            self.sources.append(source)
        source.connect(timeout)
        return source

    def kazoo(self, url: str, *, auth_token: str, account_id: str, **options: Any) -> KazooClient:
        """Watch a Kazoo blackhole websocket (``ws://HOST:5555``); see
        :class:`~jambonz_lab.platforms.kazoo.KazooClient` for ``bindings`` and the other options."""
        from ..platforms.kazoo import KazooClient

        return self.watch(KazooClient(url, auth_token=auth_token, account_id=account_id, **options))

    def basix(self, url: str, *, app_name: str, **options: Any) -> BasixClient:
        """Watch a Basix PBX's CTI feed (``wss://HOST/basix/api/ws_cti``); see
        :class:`~jambonz_lab.platforms.basix.BasixClient` for auth and user selection."""
        from ..platforms.basix import BasixClient

        return self.watch(BasixClient(url, app_name=app_name, **options))

    def wazo(self, url: str, **options: Any) -> WazoClient:
        """Watch a Wazo stack's websocketd; see :class:`~jambonz_lab.platforms.wazo.WazoClient`
        for the token or credentials and the event names."""
        from ..platforms.wazo import WazoClient

        return self.watch(WazoClient(url, **options))

    def rest(self, base_url: str, account_sid: str, api_key: str) -> RestClient:
        """A client for jambonz's REST API whose requests and answers are rows of this lab's log.

        Example::

            server = sim.serve_rest()        # the simulator's; or your jambonz's URL and keys
            rest = lab.rest(server.base_url, server.account_sid, server.api_key)
            sid = rest.create_call(from_="+15550100", to={"type": "phone", "number": "+15550111"},
                                   call_hook=lab.url + "/outbound", **server.speech)
            rest.redirect(sid, lab.url + "/after")

        Any thread; see :class:`~jambonz_lab.net.rest.RestClient` for which methods block.
        """
        client = RestClient(base_url, account_sid, api_key, record=self._on_record)
        self.rest_clients.append(client)
        return client

    def kazoo_webhooks(self, path: str = "/kazoo/hooks", *, secret: str | None = None) -> WebhookReceiver:
        """Receive Kazoo webhooks at ``http://HOST:PORT{path}`` on this lab's server (GET, POST form
        or JSON; answered 200 at once) and record each one. Give ``receiver.url`` to Kazoo.

        ``secret``: require a shared secret (in ``receiver.url``'s query, or the hook's
        ``custom_data``); others get 401 and an ``auth-failed`` row. Cells and scripts."""
        from ..platforms.kazoo_webhooks import WebhookReceiver

        receiver = WebhookReceiver(path, record=self._on_record, base_url=self.http_url, secret=secret)
        loop.run_sync(self.server.add_http, receiver.path, receiver.handle)
        self.webhooks[receiver.path] = receiver
        return receiver

    @property
    def http_url(self) -> str:
        """``http://host:port`` — the same server, for plain HTTP endpoints such as webhooks."""
        return f"http://{self.host}:{self.port}"

    def platform_events(self, source: str) -> pd.DataFrame:
        """One platform's events (``"kazoo"``, ``"basix"`` or ``"wazo"``) with its key columns and the
        platform's own event time in UTC (see :mod:`jambonz_lab.lab.platform_views`)."""
        return self.log.platform(source)

    def platform_timeline(self, sources: tuple[str, ...] | None = None) -> Figure:
        """One lane per call per source (jambonz, Kazoo, Basix, Wazo), events as labelled dots
        (see :mod:`jambonz_lab.lab.platform_timeline`). Any thread but the loop's."""
        from .platform_timeline import draw_sources

        return draw_sources(parsed(self.events), sources=sources)

    def _save_call(self, call_sid: str, path: str) -> int:
        """Write one call's rows as JSON lines (``Session.save``); any thread but the loop's."""
        rows = self.log.select(call_sid)
        if not rows:
            raise KeyError(f"no events for call {call_sid!r}")
        with open(path, "w", encoding="utf-8") as sink:
            for row in rows:
                self.log.write_jsonl(row, sink)
        return len(rows)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """In a notebook the lab shows as its live panel (widget libraries are imported only here)."""
        from .widgets import lab_bundle

        return lab_bundle(self, **kwargs)

    def _counts(self) -> str:
        """``"2 service(s), 3 call(s)"`` (and platform sources, when any)."""
        counts = f"{len(self.server.services)} service(s), {len(self.server.sessions)} call(s)"
        if self.sources or self.webhooks:
            counts += f", {len(self.sources) + len(self.webhooks)} platform source(s)"
        return counts

    def __repr__(self) -> str:
        with _registry_lock:
            others = [lab.url for lab in _running.values() if lab is not self]
        also = f"; also running: {', '.join(others)}" if others else ""
        if self.replaced is not None:
            also += f"; replaced {self.replaced} (stopped)"
        return f"<Lab {self.url} {self.state.value}, {self._counts()}{also}>"


_frozen = False


def _freeze_imports() -> None:
    """Once per process, at the first start: move every object alive now (the imported modules,
    their functions and classes, the SDK's models and the IRI grammar its import builds, some
    200,000 objects) out of the garbage collector's reach with ``gc.freeze()``.

    They live as long as the process, and a full collection walked every one of them, each time:
    a quarter of a second with the GIL held, an ack held up behind it. Frozen objects are still
    freed when nothing refers to them; only a reference cycle among them would never be
    collected, and objects made after this call are collected as usual.
    """
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()


def start(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_path: str | Path | None = None,
    parquet_dir: str | Path | None = None,
    replace: bool = True,
    **options: Any,
) -> Lab:
    """Start a lab (an app server on the lab's loop thread) and make it the default.

    Args:
        host: the address to bind; loopback unless you mean otherwise.
        port: 0 lets the OS pick. A lab already running on the same port is
            stopped and replaced.
        log_path: append every event to this JSON-lines file too, so a kernel
            restart loses nothing (:func:`read_log` loads it back). A torn last
            line (the process was killed mid-write) is cut before appending.
        parquet_dir: write every event to a Parquet log in this
            directory too (``date=…/source=…/`` parts, docs/log-format.md), by a
            thread of its own every 5,000 rows or 2 s and at ``stop()``;
            :func:`read_log` and :func:`jambonz_lab.sql` read it. Needs the
            ``scale`` extra.
        **options: the event log's ``memory_rows`` (rows kept in memory, default
            200,000; older ones spill to files removed with the log, and the
            views still cover every call), ``spill_dir`` (where those files go;
            default the system's temp dir), ``max_logged_frame`` (payloads longer
            than this many characters, default 65,536, are logged truncated to
            their first KiB with their size); and
            :class:`~jambonz_lab.net.ServerOptions` fields (``grace``,
            ``default_verbs``, ``ack_warning``, ``handler_threads``,
            ``keep_sessions``, ``keep_sessions_for``, ``keep_messages``,
            ``early_frames``, …).

        replace: stop the previous default lab (the one the last ``start()``
            made) if it still runs, with a warning naming it: re-running the cell
            ``lab = jl.start()`` leaves one lab listening, not two. ``False``
            keeps every other lab running, and this one is never stopped by a
            later ``start()`` either (for labs meant to run side by side, such as
            a test fixture's); the repr then names the others.

    Services declared with :func:`jambonz_lab.service` before the first
    start are served by it.
    """
    global _default
    with _registry_lock:
        previous = _default if _default is not None and _default.running else None
        replaced: str | None = None
        if port:
            old = _running.get((host, port))
            if old is not None:
                old.stop()
                replaced = old.url
        if replace and previous is not None and previous.running and previous.replaceable:
            log.warning(
                "stopped the previous lab %s (%s); start(replace=False) keeps it",
                previous.url,
                previous._counts(),
            )
            previous.stop()
            replaced = previous.url
        elif previous is not None and previous.running:
            log.info("the previous lab %s keeps running alongside (replace=False)", previous.url)
        lab = Lab(host, port, log_path=log_path, parquet_dir=parquet_dir, **options)
        lab.replaceable = replace
        lab.replaced = replaced
        if _default is not None and _default.state is LabState.NEW:
            lab.server.services.update(_default.server.services)
        lab.start()
        _default = lab
        return lab


class _History:
    """The lab's event log as its server's :class:`~jambonz_lab.net.server.History`."""

    def __init__(
        self,
        events_of: Callable[[str], pd.DataFrame],
        timeline_of: Callable[[str], Figure],
        save_of: Callable[[str, str], int],
        turns_of: Callable[[str], pd.DataFrame],
        transcript_of: Callable[[str], Transcript],
    ) -> None:
        self.events_of = events_of
        self.timeline_of = timeline_of
        self.save_of = save_of
        self.turns_of = turns_of
        self.transcript_of = transcript_of


def lab_for(server: AppServer) -> Lab | None:
    """The lab whose app server ``server`` is (running, or the default one), or None. Any thread.

    Example::

        lab_for(session.server)   # the lab a session's call came in on
    """
    with _registry_lock:
        labs = list(_running.values())
        if _default is not None:
            labs.append(_default)
    return next((lab for lab in labs if lab.server is server), None)


def default_lab() -> Lab:
    """The lab :func:`start` made last, or an unstarted one to declare services on."""
    global _default
    with _registry_lock:
        if _default is None or _default.state is LabState.STOPPED:
            _default = Lab()
        return _default


def service(path: str = "/", *, env_vars: Mapping[str, Any] | None = None) -> Service:
    """Declare a service on the default lab (see :meth:`Lab.service`)."""
    return default_lab().service(path, env_vars=env_vars)


def read_log(path: str | Path, **options: Any) -> EventLog:
    """Load a log written with ``start(log_path=...)`` (JSON lines) or a Parquet log directory
    (``start(parquet_dir=...)``, :meth:`EventLog.to_parquet`): ``.events``, ``.calls``, ``.hooks``,
    ``.statuses``.

    A torn last line is skipped with a ``RuntimeWarning``; ``options`` are
    :class:`EventLog`'s (``memory_rows``, ``spill_dir``).
    """
    return EventLog.read(path, **options)


def sql(query: str, parquet: str | Path | None = None) -> pd.DataFrame:
    """Run a DuckDB SQL query over a Parquet log directory's tables (``events``, ``calls``,
    ``hooks``, ``statuses``, ``turns``), or without ``parquet`` over the default lab's log (see
    :meth:`Lab.sql`). Needs the ``scale`` extra.

    Example::

        jl.sql("select count(*) from calls", "logs/")
    """
    from . import queries

    if parquet is not None:
        return queries.over_directory(query, parquet)
    return queries.over_log(query, default_lab().log)


def stop_all() -> None:
    """Stop every running lab (also run at interpreter exit)."""
    with _registry_lock:
        labs = list(_running.values())
    for lab in labs:
        lab.stop()


atexit.register(stop_all)
