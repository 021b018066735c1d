"""Clocks for the simulator.

``virtual``: a call's own waits (a ``say`` lasting 3 s, a gather timeout, the
caller's pauses) take no real time, so a 30 s call finishes in milliseconds.
Waits on the app — an ack, a command — are real, because the app is a real
program; their real duration is added to the virtual time.

``real``: every wait is real (demos: you watch the call move).
"""

from __future__ import annotations

import time
from typing import Literal

__all__ = ["Clock", "ClockName", "make_clock"]

ClockName = Literal["virtual", "real"]


class Clock:
    """Seconds since the call started; virtual or real."""

    def __init__(self, kind: ClockName = "virtual") -> None:
        if kind not in ("virtual", "real"):
            raise ValueError(f"clock must be 'virtual' or 'real', not {kind!r}")
        self.kind: ClockName = kind
        self._start = time.monotonic()
        self._virtual = 0.0
        self._waits = 0  # app waits under way (virtual clock)
        self._real_from = 0.0  # when the real time they will add began to count

    @property
    def virtual(self) -> bool:
        return self.kind == "virtual"

    def now(self) -> float:
        if self.virtual:
            return self._virtual
        return time.monotonic() - self._start

    def live(self) -> float:
        """:meth:`now`, plus on the virtual clock the real seconds of an app wait under way (which
        :meth:`advance` adds once it ends): the call's time as a frame the app sends now sees it."""
        if self._waits and self.virtual:
            return self._virtual + max(0.0, time.monotonic() - self._real_from)
        return self.now()

    def waiting(self, started: bool) -> None:
        """An app wait begins (``True``) or ends (``False``): :meth:`live` counts its real time."""
        if started:
            if not self._waits:
                self._real_from = time.monotonic()
            self._waits += 1
        else:  # the wait's real time is in the virtual time now: count again from here
            self._waits = max(0, self._waits - 1)
            self._real_from = time.monotonic()

    def advance(self, seconds: float) -> None:
        """Move virtual time on (no-op for the real clock, which moves by itself)."""
        if self.virtual and seconds > 0:
            self._virtual += seconds


def make_clock(kind: ClockName | Clock) -> Clock:
    return kind if isinstance(kind, Clock) else Clock(kind)
