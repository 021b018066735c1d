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
    """

    session: Session
    msgid: str | None
    what: str
    verbs: list[dict[str, Any]] = field(default_factory=list)
    replied: bool = False
    handler: str = ""


#: the run whose handler is executing in this context (None in cells)
current_run: contextvars.ContextVar[HandlerRun | None] = contextvars.ContextVar(
    "jambonz_lab_current_run", default=None
)


def handler_name(handler: Any) -> str:
    return str(getattr(handler, "__qualname__", None) or repr(handler))


class Workers:
    """Threads for plain-function handlers: a queue and up to ``size`` daemon threads.

    Lighter than ``ThreadPoolExecutor`` + ``run_in_executor``: a job is a
    callable; it reports back by itself (with :func:`jambonz_lab.loop.call_soon`),
    so no future is chained across threads. A thread is started when a job
    arrives and none is idle, up to ``size``. Any thread may submit.
    """

    def __init__(self, size: int, *, name: str = "jambonz-lab-handler") -> None:
        if size < 1:
            raise ValueError(f"handler_threads must be at least 1, not {size}")
        self.size = size
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False

    def submit(self, job: Callable[[], object]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the handler workers are shut down")
            if self._idle <= 0 and len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                self._idle += 1
                thread.start()
            self._idle -= 1
        self._jobs.put(job)

    @property
    def busy(self) -> int:
        """Jobs submitted and not finished (queued or running)."""
        with self._lock:
            return len(self._threads) - self._idle

    def shutdown(self) -> None:
        """Stop the threads once their current job ends; queued jobs are dropped."""
        with self._lock:
            self._closed = True
            count = len(self._threads)
        for _ in range(count):
            self._jobs.put(None)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except BaseException:  # noqa: BLE001 - a job reports its own errors; never lose the thread
                log.exception("handler job failed")
            finally:
                with self._lock:
                    self._idle += 1
