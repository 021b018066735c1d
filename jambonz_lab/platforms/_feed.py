"""Waiting for and listening to platform events: what clients and the webhook receiver share.

:class:`EventFeed` hands each :class:`PlatformEvent` to listeners and to the waiters whose match
it fits (loop thread); cells ask for waiters with :meth:`EventFeed.wait_for` and listeners with
:meth:`EventFeed.listen`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from .. import loop
from ..waiting import Waiter

__all__ = ["EventFeed", "Match", "PlatformEvent"]

log = logging.getLogger("jambonz_lab.platforms")


@dataclass(frozen=True)
class PlatformEvent:
    """One event from a platform, as handed to waiters and listeners.

    Attributes:
        source: ``"kazoo"``, ``"basix"`` or ``"wazo"``.
        type: the platform's event name (``CHANNEL_CREATE``, ``channel.updated``, ``call_ended``).
        call_id: the platform's call id when the event is about a call.
        data: the event's payload, decoded.
        ts: when it arrived (Unix seconds).
    """

    source: str
    type: str
    call_id: str | None
    data: dict[str, Any]
    ts: float


Match = str | Callable[[PlatformEvent], bool]


class EventFeed:
    """Listeners and waiters of one source's events (their lists live on the loop thread)."""

    #: the ``source`` column value of this feed's rows
    source: ClassVar[str] = "?"

    def __init__(self) -> None:
        self._waiters: list[tuple[Match, Waiter[PlatformEvent]]] = []
        self._listeners: list[Callable[[PlatformEvent], None]] = []

    def _deliver(self, event: PlatformEvent) -> None:
        for fn in list(self._listeners):
            try:
                fn(event)
            except Exception:
                log.exception("%s listener %r failed", self.source, fn)
        keep = []
        for match, waiter in self._waiters:
            if waiter.done:
                continue
            hit = match(event) if callable(match) else event.type == match
            if not (hit and waiter.resolve(event)):
                keep.append((match, waiter))
        self._waiters = keep

    def _fail_waiters(self, exc: BaseException) -> None:
        waiters, self._waiters = self._waiters, []
        for _, waiter in waiters:
            waiter.fail(exc)

    def wait_for(self, match: Match, timeout: float = 30.0, *, count: int = 1) -> Waiter[PlatformEvent]:
        """Wait for the next event named ``match`` (or for which ``match(event)`` is true);
        with ``count``, for the ``count``-th such event (the waiter gives that one).

        Only events arriving after this call count. ``await`` it or call ``.result()``. Any thread.

        Example::

            ended = kazoo.wait_for("CHANNEL_DESTROY")
            ...
            event = await ended
        """
        if count < 1:
            raise ValueError(f"count must be 1 or more, not {count}")
        what = (
            f"{self.source} event {match!r}" if isinstance(match, str) else f"a matching {self.source} event"
        )
        if count > 1:
            what = f"{count} × {what}"
            match = _counting(match, count)
        waiter: Waiter[PlatformEvent] = Waiter(what, timeout)

        def add() -> None:
            waiter.arm()
            self._waiters.append((match, waiter))

        loop.run_sync(add)
        return waiter

    def listen(self, fn: Callable[[PlatformEvent], None]) -> Callable[[], None]:
        """Call ``fn(event)`` on the loop thread for every event (quick!); returns an unsubscribe."""
        loop.run_sync(self._listeners.append, fn)
        return lambda: loop.run_sync(self._listeners.remove, fn)


def _counting(match: Match, count: int) -> Callable[[PlatformEvent], bool]:
    """A match that is true for the ``count``-th event ``match`` accepts (called on the loop thread)."""
    seen = 0

    def nth(event: PlatformEvent) -> bool:
        nonlocal seen
        hit = match(event) if callable(match) else event.type == match
        seen += bool(hit)
        return hit and seen == count

    return nth
