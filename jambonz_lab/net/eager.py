"""Start a coroutine at once, and make a task only if it really has to wait.

Most of the server's coroutines — a coroutine handler that composes and
replies, a flush whose frames fit the socket buffer — finish without ever
suspending. Creating an ``asyncio.Task`` for each costs a loop iteration and
most of the CPU of a hook round trip. :func:`start` runs the coroutine
synchronously up to its first real suspension (what Python 3.12 calls an
eager task); only then does a task take over, resuming the same coroutine
where it stopped. Loop thread only.

Example::

    task = start(flush(), context=ctx)   # None: it already finished
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["start"]

log = logging.getLogger("jambonz_lab.server")


def start(
    coro: Coroutine[Any, Any, Any], *, context: contextvars.Context | None = None
) -> asyncio.Task[Any] | None:
    """Run ``coro`` now, in ``context``; returns the task that finishes it, or None if it finished.

    An exception the coroutine raises before its first suspension is logged
    (the coroutines started here handle their own errors).
    """
    ctx = context if context is not None else contextvars.copy_context()
    try:
        waiting = ctx.run(coro.send, None)
    except StopIteration:
        return None
    except Exception:  # noqa: BLE001 - reported, never raised into the frame being handled
        log.exception("%s failed", getattr(coro, "__qualname__", coro))
        return None
    return asyncio.get_running_loop().create_task(_Resume(coro, waiting).wait(), context=ctx)


class _Resume:
    """Drive a coroutine that already ran its first step: hand the task what it waits for."""

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self._coro = coro
        self._waiting = waiting

    async def wait(self) -> Any:
        return await self

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, waiting = self._coro, self._waiting
        while True:
            try:
                value = yield waiting  # the task waits on the same future the coroutine awaits
            except BaseException as exc:  # cancellation and errors go into the coroutine
                try:
                    waiting = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    waiting = coro.send(value)
                except StopIteration as stop:
                    return stop.value
