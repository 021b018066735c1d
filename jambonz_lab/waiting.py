"""Waiting from cells: one object, two styles.

:meth:`Session.wait_for <jambonz_lab.Session.wait_for>` and
:meth:`Lab.wait_for_session <jambonz_lab.Lab.wait_for_session>` return a
:class:`Waiter`. In an async cell ``await waiter`` keeps the kernel's loop free
(widget clicks keep working); in a plain cell or a script
``waiter.result()`` blocks, and Ctrl-C / Stop cancels it. Both have a finite
timeout and raise :exc:`~jambonz_lab.WaitTimeout` (a ``TimeoutError``) saying
what was awaited.

Example::

    msg = await session.wait_for("/echo")          # the next /echo hook
    status = session.wait_for("call:status").result(timeout=10)

The matching happens on the lab's loop thread, where messages arrive; a
blocking ``.result()`` from that thread would deadlock and raises instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
from collections.abc import Generator
from typing import Any, Generic, TypeVar

from . import loop
from .exceptions import WaitTimeout

__all__ = ["Waiter"]

T = TypeVar("T")


class Waiter(Generic[T]):
    """A pending wait; ``await`` it or call :meth:`result`."""

    def __init__(self, what: str, timeout: float, *, call_sid: str | None = None) -> None:
        self.what = what
        self.timeout = timeout
        self.call_sid = call_sid
        self._future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._future.set_running_or_notify_cancel()
        self._timer: asyncio.TimerHandle | None = None

    # -- loop side --------------------------------------------------------------------

    def arm(self) -> None:
        """Start the timeout (loop thread)."""
        self._timer = loop.call_later(self.timeout, self._expire)

    def resolve(self, value: T) -> bool:
        """Deliver the awaited thing (loop thread); False if the wait already ended."""
        if self._future.done():
            return False
        if self._timer is not None:
            self._timer.cancel()
        self._future.set_result(value)
        return True

    def fail(self, exc: BaseException) -> None:
        if not self._future.done():
            if self._timer is not None:
                self._timer.cancel()
            self._future.set_exception(exc)

    def _expire(self) -> None:
        self.fail(
            WaitTimeout(f"waited {self.timeout:g} s for {self.what}; nothing came", call_sid=self.call_sid)
        )

    @property
    def done(self) -> bool:
        return self._future.done()

    # -- cell side ----------------------------------------------------------------------

    def result(self, timeout: float | None = None) -> T:
        """Block until it arrives (plain cells, scripts). Any thread but the loop's.

        Raises:
            WaitTimeout: nothing came within the waiter's timeout.
            RuntimeError: called on the lab's loop thread (use ``await``).
        """
        if loop.in_loop_thread():
            raise RuntimeError(
                f"a blocking wait for {self.what} on the lab's loop thread would deadlock; await it"
            )
        try:
            return self._future.result(timeout if timeout is not None else self.timeout + 1.0)
        except WaitTimeout:
            raise
        except concurrent.futures.TimeoutError:  # the builtin TimeoutError: our own wait ran out
            raise WaitTimeout(f"gave up waiting for {self.what}", call_sid=self.call_sid) from None
        except KeyboardInterrupt:
            self.cancel()
            raise

    def cancel(self) -> None:
        """Stop waiting (any thread)."""
        loop.call_soon(self.fail, asyncio.CancelledError(f"wait for {self.what} cancelled"))

    def __await__(self) -> Generator[Any, None, T]:
        return asyncio.wrap_future(self._future).__await__()

    def __repr__(self) -> str:
        state = "done" if self.done else "pending"
        return f"<Waiter for {self.what} {state}>"

    def _repr_html_(self) -> str:
        state = "done" if self.done else f"waiting (up to {self.timeout:g} s)"
        return f"<code>Waiter</code> for <b>{html.escape(self.what)}</b>: {state}"
