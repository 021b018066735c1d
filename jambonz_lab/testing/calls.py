"""What the pytest fixtures hand a test: a caller built from steps, and a simulator bound to a lab."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..lab import Lab
    from ..sim import Caller, CallResult, Digits, Silence, Speech

    Step = str | None | tuple[str, str] | Speech | Digits | Silence

__all__ = ["LabSim", "make_caller"]

SCHEMES = ("ws://", "wss://", "http://", "https://")


def make_caller(*steps: Step, hangup_after: float | None = None, **caller: Any) -> Caller:
    """A :class:`~jambonz_lab.sim.Caller` doing ``steps`` in turn, one per gather.

    A step is a text (the caller says it), ``None`` (silence: the gather times out), a pair
    ``("speech", text)`` / ``("dtmf", digits)`` / ``("silence", "")``, or a ``sim.Speech``,
    ``sim.Digits`` or ``sim.Silence``. ``hangup_after``: seconds into the call when the caller
    hangs up; other keywords are :class:`~jambonz_lab.sim.Caller` fields (``dial``, ``name``, …).
    """
    from ..sim import Caller, Digits, Silence, Speech
    from ..sim.caller import Input

    inputs: list[Input] = []
    for step in steps:
        if isinstance(step, Speech | Digits | Silence):
            inputs.append(step)
        elif step is None:
            inputs.append(Silence())
        elif isinstance(step, str):
            inputs.append(Speech(step))
        elif isinstance(step, tuple) and len(step) == 2:
            inputs.extend(Caller.from_steps([step]).inputs)
        else:
            raise ValueError(f"caller step {step!r}: use a text, None, (kind, value) or a sim input")
    return Caller(inputs=inputs, hangup_after=hangup_after, **caller)


class LabSim:
    """The simulated jambonz of a test, bound to its lab; every result is kept in :attr:`results`."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.results: list[CallResult] = []

    def url(self, target: str) -> str:
        """``/path`` is a service of the lab (over its WebSocket); a ws(s):// or http(s):// URL is itself."""
        if target.startswith("/"):
            return self.lab.url + target
        if target.startswith(SCHEMES):
            return target
        raise ValueError(f"call target {target!r}: use a /path of the lab or a ws(s):// or http(s):// URL")

    def call(self, target: str, caller: Caller | Sequence[Step] | None = None, **options: Any) -> CallResult:
        """Place one call to ``target`` and wait for its end (``options``: as :func:`jambonz_lab.sim.call`).

        ``caller`` may be a :class:`~jambonz_lab.sim.Caller` or a list of steps (see :func:`make_caller`).
        """
        from .. import sim

        if caller is not None and not isinstance(caller, sim.Caller):
            caller = make_caller(*caller)
        result = sim.call(self.url(target), caller, **options)
        self.results.append(result)
        return result

    @property
    def last(self) -> CallResult:
        """The latest call's result."""
        if not self.results:
            raise LookupError("no call placed yet")
        return self.results[-1]
