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
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["call_soon", "get_loop", "in_loop_thread", "require_loop_thread", "run_sync", "submit"]

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
    return future.result(timeout)


def call_soon(fn: Callable[..., object], *args: Any) -> None:
    """Schedule ``fn(*args)`` on the loop thread without waiting. Any thread."""
    get_loop().call_soon_threadsafe(fn, *args)


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Run a coroutine on the loop; returns a thread-safe future. Any thread but the loop's."""
    if in_loop_thread():
        coro.close()
        raise RuntimeError("submit() from the loop thread would deadlock; await the coroutine instead")
    return asyncio.run_coroutine_threadsafe(coro, get_loop())
