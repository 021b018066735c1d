"""How handlers run: one :class:`HandlerRun` per event, and the workers for plain functions.

Every event jambonz sends on a call (a hook, a ``call:status``, the opening
``session:new``) runs its handlers, one after the other, inside one
:class:`HandlerRun`. The run is the handlers' context (a ``contextvars``
variable, so it follows a plain handler onto its worker thread and a coroutine
handler into the tasks it starts): verbs composed while it is current belong
to that event, and ``reply()`` acks that event's msgid with exactly those
verbs — two hooks in flight never mix their verbs. Verbs composed outside any
run (in a cell) go to the session's own queue.

Plain-function handlers run on :class:`Workers` (threads), so one that blocks
never delays another call; coroutine handlers run on the loop. Threads: a run
is created and finished on the loop thread; its ``verbs`` list is guarded by
the session's lock because a worker thread composes into it.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .session import Session

__all__ = ["HandlerRun", "Workers", "current_run", "handler_name"]

log = logging.getLogger("jambonz_lab.handlers")


@dataclass(eq=False)
class HandlerRun:
    """The handlers of one event of one session, while they run.

    Attributes:
        session: the call.
        msgid: the msgid the handlers answer (``None`` for fire-and-forget
            events such as ``call:status``).
        what: the event (hook URL or message type), for reports.
        verbs: verbs composed during the run and not sent yet.
        replied: True once a handler acked ``msgid``.
        handler: the qualified name of the handler running now.
        send_replies: ``send()`` in this run acks ``msgid`` (a ``session:redirect`` on the
            call's own socket: jambonz runs the verbs of its ack).
    """

    session: Session
    msgid: str | None
    what: str
    verbs: list[dict[str, Any]] = field(default_factory=list)
    replied: bool = False
    handler: str = ""
    send_replies: bool = False


#: the run whose handler is executing in this context (None in cells)
current_run: contextvars.ContextVar[HandlerRun | None] = contextvars.ContextVar(
    "jambonz_lab_current_run", default=None
)


def handler_name(handler: Any) -> str:
    return str(getattr(handler, "__qualname__", None) or repr(handler))


class Workers:
    """Threads for plain-function handlers: a queue, ``size`` threads kept, more while all are blocked.

    Lighter than ``ThreadPoolExecutor`` + ``run_in_executor``: a job is a
    callable; it reports back by itself (with :func:`jambonz_lab.loop.call_soon`),
    so no future is chained across threads. A thread is started when a job
    arrives and none is idle, up to ``size``.

    When every thread is busy and no queued job has been picked up for
    ``stall`` seconds (the handlers are blocked: sleeping, waiting on I/O), a
    watchdog thread starts one extra thread per queued job, up to
    ``max_size``, and calls ``on_grow(threads, waiting)`` once per such
    episode; extra threads leave after ``linger`` idle seconds. So handlers
    that block delay another call's handler by about ``stall``, not until
    they return. Any thread may submit.
    """

    def __init__(
        self,
        size: int,
        *,
        max_size: int | None = None,
        stall: float = 0.05,
        linger: float = 10.0,
        on_grow: Callable[[int, int], None] | None = None,
        name: str = "jambonz-lab-handler",
    ) -> None:
        if size < 1:
            raise ValueError(f"handler_threads must be at least 1, not {size}")
        self.size = size
        self.max_size = max(size, max_size if max_size is not None else 8 * size)
        self.stall = stall
        self.linger = linger
        self.on_grow = on_grow
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._count = 0  # threads alive (extra ones leave)
        self._serial = 0
        self._idle = 0  # threads waiting for a job; negative: jobs waiting for a thread
        self._picked = time.monotonic()  # when a thread last took a job
        self._watching = False
        self._closed = False

    def submit(self, job: Callable[[], object]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the handler workers are shut down")
            if self._idle <= 0 and self._count < self.size:
                self._spawn(extra=False)
            self._idle -= 1
            watch = self._idle < 0 and not self._watching and self._count < self.max_size
            if watch:
                self._watching = True
        self._jobs.put(job)
        if watch:
            threading.Thread(target=self._watch, name=f"{self._name}-watchdog", daemon=True).start()

    @property
    def busy(self) -> int:
        """Jobs submitted and not finished (queued or running)."""
        with self._lock:
            return self._count - self._idle

    @property
    def threads(self) -> int:
        """Threads alive now (``size`` at most, unless blocked handlers made the pool grow)."""
        with self._lock:
            return self._count

    def shutdown(self) -> None:
        """Stop the threads once their current job ends; queued jobs are dropped."""
        with self._lock:
            self._closed = True
            count = self._count
        for _ in range(count):
            self._jobs.put(None)

    def _spawn(self, *, extra: bool) -> None:
        """Start a thread (lock held); it counts as idle until it takes a job."""
        name = f"{self._name}-{self._serial}"
        self._serial += 1
        self._count += 1
        self._idle += 1
        threading.Thread(target=self._work, args=(extra,), name=name, daemon=True).start()

    def _watch(self) -> None:
        """While jobs wait: grow the pool when no thread has taken a job for ``stall`` seconds."""
        grown = False
        while True:
            time.sleep(self.stall / 2)
            with self._lock:
                waiting = -self._idle
                if waiting <= 0 or self._closed or self._count >= self.max_size:
                    self._watching = False
                    return
                if time.monotonic() - self._picked < self.stall:
                    continue
                for _ in range(min(waiting, self.max_size - self._count)):
                    self._spawn(extra=True)
                threads = self._count
            if not grown and self.on_grow is not None:
                grown = True
                try:
                    self.on_grow(threads, waiting)
                except Exception:  # noqa: BLE001 - a report must not stop the watchdog
                    log.exception("on_grow callback failed")

    def _work(self, extra: bool) -> None:
        jobs = self._jobs
        while True:
            try:
                job = jobs.get(timeout=self.linger) if extra else jobs.get()
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # nothing waits for this thread: leave
                        self._idle -= 1
                        self._count -= 1
                        return
                continue
            if job is None:
                with self._lock:
                    self._count -= 1
                return
            self._picked = time.monotonic()
            try:
                job()
            except BaseException:  # noqa: BLE001 - a job reports its own errors; never lose the thread
                log.exception("handler job failed")
            finally:
                job = None  # an idle thread must not keep the last call it ran
                with self._lock:
                    self._idle += 1
