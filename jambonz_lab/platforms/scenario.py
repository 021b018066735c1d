"""One call description for every platform simulator.

A :class:`CallScenario` says who calls whom, whether the call is answered, how long it
rings and talks, and how it ends. :meth:`CallScenario.steps` turns it into the generic
steps every simulator maps onto its own wire events (Kazoo CHANNEL_* frames, Basix
``info_event`` terms, Wazo ``call_*`` events), so one notebook cell can play the same
call on all three.

Example::

    from jambonz_lab.platforms import CallScenario
    call = CallScenario(caller="+15550100", callee="1002", ring=2, talk=5)
    [(s.at, s.kind, s.leg) for s in call.steps()]
    # [(0.0, 'create', 'a'), (0.1, 'create', 'b'), (2.0, 'answer', 'b'), (2.0, 'answer', 'a'),
    #  (2.0, 'bridge', 'a'), (7.0, 'destroy', 'b'), (7.0, 'destroy', 'a')]

Pure: no I/O, no clock. Any thread.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, NamedTuple

__all__ = ["Q850", "CallScenario", "Step"]

#: FreeSWITCH hangup cause names → their codes (Q.850, and 487 for ORIGINATOR_CANCEL)
Q850 = {
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "CALL_REJECTED": 21,
    "UNALLOCATED_NUMBER": 1,
    "ORIGINATOR_CANCEL": 487,
}

StepKind = Literal["create", "answer", "bridge", "hold", "unhold", "destroy"]


class Step(NamedTuple):
    """One generic thing that happens to a leg, ``at`` seconds after the call starts."""

    at: float
    kind: StepKind
    leg: Literal["a", "b"]


@dataclass(frozen=True)
class CallScenario:
    """A two-leg call: leg ``a`` is the caller's channel, leg ``b`` the callee's.

    Attributes:
        caller, caller_name: who calls (number, display name). Caller-controlled: data.
        callee, callee_name: who is called.
        direction: ``"inbound"`` (from outside), ``"outbound"`` or ``"internal"``.
        ring: seconds from the first event to the answer (or to giving up).
        talk: seconds from the answer to the hangup.
        answered: False for a call nobody picks up (or that is busy: set ``hangup_cause``).
        hold: seconds into the talk when leg ``a`` is put on hold for 1 s (``None``: never).
        hangup_cause: FreeSWITCH cause name; ``NORMAL_CLEARING`` by default, ``NO_ANSWER``
            when unanswered and left at the default.
        hangup_by: which side hangs up first (``"callee"``, the default, or ``"caller"``).
        seed: makes the platform call ids (each simulator derives its own format from it).
        start: Unix time of the first event; ``None`` means when the simulator starts playing.
    """

    caller: str = "+15550100"
    caller_name: str = "Alice"
    callee: str = "1002"
    callee_name: str = "Bob"
    direction: Literal["inbound", "outbound", "internal"] = "inbound"
    ring: float = 2.0
    talk: float = 5.0
    answered: bool = True
    hold: float | None = None
    hangup_cause: str | None = None
    hangup_by: Literal["caller", "callee"] = "callee"
    seed: int = 0
    start: float | None = None

    def __post_init__(self) -> None:
        if self.ring < 0 or self.talk < 0:
            raise ValueError("ring and talk are durations in seconds: give values >= 0")
        if self.hold is not None and not 0 <= self.hold <= max(self.talk - 1.0, 0.0):
            raise ValueError(f"hold={self.hold} must fall inside the talk time (0..{self.talk - 1:g} s)")

    @property
    def cause(self) -> str:
        """The hangup cause name actually used."""
        if self.hangup_cause is not None:
            return self.hangup_cause
        return "NORMAL_CLEARING" if self.answered else "NO_ANSWER"

    @property
    def cause_code(self) -> int:
        """The cause's Q.850 code (16 when the name is unknown)."""
        return Q850.get(self.cause, 16)

    @property
    def duration(self) -> float:
        """Seconds from the first to the last step."""
        return self.ring + (self.talk if self.answered else 0.0)

    def rng(self, leg: str) -> random.Random:
        """A random generator for ids of ``leg``, fixed by ``seed``."""
        return random.Random(f"{self.seed}:{leg}")

    def steps(self) -> list[Step]:
        """The generic steps, in time order."""
        out = [Step(0.0, "create", "a"), Step(min(0.1, self.ring), "create", "b")]
        if not self.answered:
            return [*out, Step(self.ring, "destroy", "b"), Step(self.ring, "destroy", "a")]
        out += [
            Step(self.ring, "answer", "b"),
            Step(self.ring, "answer", "a"),
            Step(self.ring, "bridge", "a"),
        ]
        if self.hold is not None:
            out += [
                Step(self.ring + self.hold, "hold", "a"),
                Step(self.ring + self.hold + 1.0, "unhold", "a"),
            ]
        end = self.ring + self.talk
        if self.hangup_by == "caller":
            return [*out, Step(end, "destroy", "a"), Step(end, "destroy", "b")]
        return [*out, Step(end, "destroy", "b"), Step(end, "destroy", "a")]
