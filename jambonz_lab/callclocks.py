"""Each simulated call's own clock, by call sid, for whoever records its frames in this process.

The simulator (:mod:`jambonz_lab.sim`) registers its calls here; the lab reads. It sits beside
:mod:`jambonz_lab.records`, below both, so the lab need not import the simulator to ask.

A simulated call runs on its :class:`~jambonz_lab.sim.clock.Clock`: on the virtual clock a 38 s
call takes a few milliseconds of wall time. The lab's app server sees the call's frames as any
others; when the simulator runs in the same process, the lab asks :func:`call_time` for the
call's clock and writes it beside the wall time (``call_t`` of an event-log row).

A frame the simulator sent (jambonz → app) has the call time it was sent at (the simulator may
have let virtual time run on before the app server read it), found by its msgid; a webhook
request has none on the wire, so a webhook app's requests are matched in the order they were
sent, per row type (a retried request counts again); anything else (the app's acks and
commands, the lab's own rows) has the call's clock when it is asked, counting the real time of
an app wait under way (``Clock.live``).

Bounded: the latest :data:`KEEP` calls are kept (a row written after its call ended still finds
the clock, stopped where the call ended); older ones are forgotten.

Example::

    from jambonz_lab import callclocks
    callclocks.call_time(call_sid, "in", msgid)   # None if the call is not simulated here
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol

from .records import Row

__all__ = ["KEEP", "CallClock", "Clock", "call_time", "lookup", "register", "stamp", "webhook_type"]

#: how many calls' clocks are kept (the oldest is forgotten beyond)
KEEP = 10_000

_clocks: dict[str, CallClock] = {}
_lock = threading.Lock()  # registering (any thread); lookups are plain dict reads


class Clock(Protocol):
    """What a call clock offers (:class:`jambonz_lab.sim.clock.Clock` is one)."""

    def live(self) -> float: ...


class CallClock:
    """One call's clock and the call time of each frame it sent that was not looked up yet."""

    __slots__ = ("clock", "posted", "sent")

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        #: msgid -> call time when the simulator sent it (WebSocket frames)
        self.sent: dict[str, float] = {}
        #: a webhook app's requests (no msgid on the wire: the lab's server makes one up), by the
        #: row type the server gives them, in the order they were sent: their call times
        self.posted: dict[str, deque[float]] = {}

    def forget_sent(self) -> None:
        """The call's sockets and webhook client are closed: what the app's server has not read by
        now it never will (a simulator calling an app in another process); drop their times."""
        self.sent.clear()
        self.posted.clear()

    def post(self, kind: str) -> None:
        """The simulator sends (or retries) a webhook request of ``kind`` now."""
        self.posted.setdefault(webhook_type(kind), deque()).append(self.clock.live())

    def at(self, direction: str, msgid: str | None, transport: str | None = None, kind: str = "") -> float:
        """The call time of a row: a sent frame's or request's own, else the clock's now."""
        if direction == "in":
            if transport == "http":
                queue = self.posted.get(kind)
                if queue:
                    return queue.popleft()
            elif msgid is not None:
                sent = self.sent.pop(msgid, None)
                if sent is not None:
                    return sent
        return self.clock.live()


def webhook_type(kind: str) -> str:
    """The row type the lab's server records a webhook request of ``kind`` as (net/webhooks.py: a
    POST to the service path opens the call, ``<path>/status`` is a call status, any other POST
    of a known call is a ``verb:hook``)."""
    return kind if kind in ("session:new", "call:status") else "verb:hook"


def register(call_sid: str, clock: Clock) -> CallClock:
    """Make ``clock`` the clock of ``call_sid`` (a later call with the same sid replaces it)."""
    entry = CallClock(clock)
    with _lock:
        _clocks.pop(call_sid, None)  # to the end: the newest
        _clocks[call_sid] = entry
        while len(_clocks) > KEEP:
            del _clocks[next(iter(_clocks))]
    return entry


def lookup(call_sid: str) -> CallClock | None:
    return _clocks.get(call_sid)


def call_time(call_sid: str | None, direction: str, msgid: str | None) -> float | None:
    """Seconds on ``call_sid``'s own clock for a row (``direction``, ``msgid``); None when the
    call is not simulated in this process."""
    if call_sid is None:
        return None
    entry = _clocks.get(call_sid)
    return None if entry is None else entry.at(direction, msgid)


def stamp(row: Row) -> Row:
    """``row`` with its ``call_t``, when its call is simulated in this process (and it has none)."""
    if row.call_t is None and row.call_sid is not None:
        entry = _clocks.get(row.call_sid)
        if entry is not None:
            # call_t is the last field (records.py); _make is a third of _replace's cost
            return Row._make((*row[:-1], entry.at(row.direction, row.msgid, row.transport, row.type)))
    return row
