"""Moments at which a call's background task acts (``config.bargeIn``): :class:`Alarms`.

The verb stack is one asyncio task whose waits (:meth:`SimCall.sleep
<jambonz_lab.sim.engine.SimCall.sleep>`, the idle wait) move the call's clock.
A background task cannot move that clock itself, so it asks for a moment
(:meth:`Alarms.moment`) and waits; the call's wait stops at that moment, rings
the alarm and waits until the background task has done what it does at once
(say, kill the current verb) before it goes on — on both clocks the same way.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

__all__ = ["EAGER_WAIT", "Alarm", "Alarms"]

#: real seconds an empty stack on the virtual clock waits for the app before an eager moment
#: (a frame's worth at 50x real time, like a foreground listen's pacing)
EAGER_WAIT = 0.0004


@dataclass
class Alarm:
    """One moment: ``reached`` resolves when the call gets there; the call waits for ``done``."""

    at: float
    #: the call need not wait for the app before it (a background listen's next frame): an empty
    #: stack on the virtual clock moves to it after :data:`EAGER_WAIT` real seconds, not ``idle_wait``
    eager: bool = False
    reached: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Alarms:
    """The pending moments of one call's background tasks."""

    def __init__(self) -> None:
        self._pending: list[Alarm] = []

    def next_at(self) -> float | None:
        """The call time of the earliest pending moment."""
        return min((a.at for a in self._pending), default=None)

    def next_is_eager(self) -> bool:
        """The earliest pending moment is an eager one (:attr:`Alarm.eager`)."""
        first = min(self._pending, key=lambda a: a.at, default=None)
        return first is not None and first.eager

    def add(self, at: float = math.inf, *, eager: bool = False) -> Alarm:
        """A moment at ``at`` (``inf``: never, but cancelled with the call like the others)."""
        alarm = Alarm(at, eager)
        self._pending.append(alarm)
        return alarm

    def release(self, alarm: Alarm) -> None:
        """Done with it (reached or not): the call goes on."""
        if alarm in self._pending:
            self._pending.remove(alarm)
        if not alarm.done.done():
            alarm.done.set_result(None)

    @asynccontextmanager
    async def moment(self, at: float) -> AsyncIterator[None]:
        """Wait until the call reaches ``at``; the call waits while the ``async with`` body runs.

        Raises:
            asyncio.CancelledError: the call ended first (:meth:`close`).
        """
        alarm = self.add(at)
        try:
            await alarm.reached
            yield
        finally:
            self.release(alarm)

    async def ring(self, now: float) -> None:
        """The call reached ``now``: let each moment due by then act, in time order, and wait for it."""
        for alarm in sorted((a for a in self._pending if a.at <= now), key=lambda a: a.at):
            self._pending.remove(alarm)
            if not alarm.reached.done():
                alarm.reached.set_result(None)
            await asyncio.shield(alarm.done)

    def close(self) -> None:
        """The call ended: pending moments never come (their waiters are cancelled)."""
        for alarm in self._pending:
            alarm.reached.cancel()
        self._pending.clear()
