"""The lab's event loop thread — and the one rule of jambonz_lab's threading.

**All socket and widget state lives on the lab's loop thread.** A daemon
thread named ``jambonz-lab-loop`` runs one asyncio loop for the whole
process; the app server, every call's protocol state, timers and widget
updates belong to it. Cells, worker threads running plain handlers and widget
callbacks never touch that state: they hand work to the loop with
:func:`run_sync` (wait for the result) or :func:`call_soon` (fire and forget),
which use ``call_soon_threadsafe`` / ``run_coroutine_threadsafe``. Code that
must run on the loop asserts it with :func:`require_loop_thread`.

Why a thread of our own and not the kernel's loop: a cell that runs
``time.sleep`` blocks the kernel's loop, and jambonz rejects a call whose
``session:new`` is not acked within 5 s. Nothing on this thread may
``print``: the text would land in whatever cell runs at that moment. Log to
the ``jambonz_lab.*`` loggers and to the event log instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = [
    "call_later",
    "call_soon",
    "get_loop",
    "in_loop_thread",
    "require_loop_thread",
    "run_sync",
    "submit",
]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None

#: how long a cell waits for the loop to run a short step before giving up
STEP_TIMEOUT = 10.0


def get_loop() -> asyncio.AbstractEventLoop:
    """The lab's loop, started on its daemon thread at first use. Any thread."""
    global _loop, _thread
    with _lock:
        if _loop is not None and _thread is not None and _thread.is_alive():
            return _loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name="jambonz-lab-loop", daemon=True)
        thread.start()
        ready.wait()
        _loop, _thread = loop, thread
        global _drain_scheduled
        if _posted:  # calls posted to a loop that died: run them on this one
            _drain_scheduled = True
            loop.call_soon_threadsafe(_drain)
        return loop


def in_loop_thread() -> bool:
    """True when called on the lab's loop thread."""
    return _thread is not None and threading.current_thread() is _thread


def require_loop_thread() -> None:
    """Raise ``RuntimeError`` unless called on the loop thread."""
    if not in_loop_thread():
        raise RuntimeError(
            f"this must run on the jambonz-lab-loop thread, not {threading.current_thread().name}"
        )


def run_sync(fn: Callable[..., T], *args: Any, timeout: float | None = STEP_TIMEOUT) -> T:
    """Run ``fn(*args)`` on the loop thread and return its result (or raise its error).

    On the loop thread itself it is a plain call. From any other thread it
    waits at most ``timeout`` seconds; ``fn`` must be quick and non-blocking.
    """
    if in_loop_thread():
        return fn(*args)
    loop = get_loop()
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def step() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to the caller's thread
            future.set_exception(exc)

    loop.call_soon_threadsafe(step)
    try:
        return future.result(timeout)
    except BaseException as exc:
        # the error is the caller's: drop the loop thread's and concurrent.futures' frames
        raise exc.with_traceback(None) from None


def call_later(delay: float, fn: Callable[..., object], *args: Any) -> asyncio.TimerHandle:
    """Run ``fn(*args)`` on the loop after ``delay`` seconds, in an empty context. Loop thread only.

    ``call_later`` itself copies the caller's context into the timer. A handler's context holds
    its run, and the run holds its call. asyncio keeps a cancelled timer in its heap until the
    timer's time. So a 30 s ``wait_for`` timer would keep its call in memory for 30 s after the
    call left. None of our timers reads the caller's context.

    Example::

        timer = loop.call_later(5.0, self._expire)   # on the loop thread
    """
    return asyncio.get_running_loop().call_later(delay, fn, *args, context=contextvars.Context())


_posted: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
_drain_scheduled = False


def call_soon(fn: Callable[..., object], *args: Any) -> None:
    """Schedule ``fn(*args)`` on the loop thread without waiting. Any thread.

    Calls run in the order they were made, also relative to :func:`run_sync`
    steps made later by the same thread. Calls made close together share one
    wake-up of the loop (one ``call_soon_threadsafe``), which is what makes a
    plain handler's ``reply()`` cheap.
    """
    global _drain_scheduled
    _posted.append((fn, args))  # append first, then look at the flag (see _drain)
    if not _drain_scheduled:
        _drain_scheduled = True
        get_loop().call_soon_threadsafe(_drain)


def _drain() -> None:
    global _drain_scheduled
    _drain_scheduled = False  # cleared before popping: a call appended from now on is seen below or
    while _posted:  # schedules a drain of its own
        fn, args = _posted.popleft()
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - one failing call must not strand the others
            logging.getLogger("jambonz_lab.loop").exception("call_soon callback %r failed", fn)


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Run a coroutine on the loop; returns a thread-safe future. Any thread but the loop's."""
    if in_loop_thread():
        coro.close()
        raise RuntimeError("submit() from the loop thread would deadlock; await the coroutine instead")
    return asyncio.run_coroutine_threadsafe(coro, get_loop())
