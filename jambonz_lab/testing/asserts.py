"""Assertions on a simulated call; a failure shows the call's transcript and its hooks.

Example::

    from jambonz_lab.testing import assert_heard, assert_status, assert_turn_latency

    result = jambonz_sim.call("/echo", caller=jambonz_caller("hello", "goodbye"))
    assert_heard(result, "Say something", re.compile(r"You said: hello\\b"), "Goodbye")
    assert_status(result, "completed")
    assert_turn_latency(result, p95_ms=500)
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from .report import hooks, transcript, turn_latencies

if TYPE_CHECKING:
    from ..sim import CallResult

__all__ = [
    "CallAssertionError",
    "assert_heard",
    "assert_status",
    "assert_turn_latency",
    "format_call",
    "percentile",
]


def _time(t: float | None) -> str:
    return f"{t:8.3f}" if t is not None else "       ?"


def format_call(result: CallResult) -> str:
    """The call's transcript (both sides, with call times) and its hook table, as text."""
    lines = [f"call {result.call_sid}: {result.final_status}, heard {len(result.heard)} item(s)"]
    lines.append("transcript (seconds into the call):")
    for line in transcript(result):
        lines.append(f"  {_time(line.t)}  {line.who:<6}  {line.what}")
    lines.append("hooks:")
    lines.append(f"  {'t':>8}  {'hook':<28}  {'answer ms':>9}  {'fields':<40}  answer")
    for h in hooks(result):
        ms = f"{h.latency * 1000:9.1f}" if h.latency is not None else f"{'-':>9}"
        lines.append(f"  {h.t:8.3f}  {h.hook:<28}  {ms}  {h.fields:<40}  {h.answer}")
    if result.errors:
        lines.append("errors:")
        lines.extend(f"  {error}" for error in result.errors)
    return "\n".join(lines)


class CallAssertionError(AssertionError):
    """A call did not do what a test asserted: the message shows its transcript and hooks; ``result``."""

    def __init__(self, summary: str, result: CallResult) -> None:
        super().__init__(f"{summary}\n{format_call(result)}")
        self.summary = summary
        self.result = result


def _fail(summary: str, result: CallResult) -> CallAssertionError:
    return CallAssertionError(summary, result)


def _matches(pattern: str | re.Pattern[str], text: str) -> bool:
    return bool(pattern.search(text)) if isinstance(pattern, re.Pattern) else pattern in text


def assert_heard(result: CallResult, *expected: str | re.Pattern[str]) -> None:
    """The caller heard each of ``expected``, in this order (others may come between).

    A string must appear in what was heard (a say's text, a play's URL); a compiled regex must
    ``search`` it. Each item heard matches at most one expectation.
    """
    __tracebackhide__ = True
    if not expected:
        raise ValueError("assert_heard needs at least one text or regex")
    heard = [text for _, text in result.heard]
    at = 0
    for n, pattern in enumerate(expected):
        found = next((i for i in range(at, len(heard)) if _matches(pattern, heard[i])), None)
        if found is None:
            shown = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
            after = f" after {expected[n - 1]!r}" if n else ""
            raise _fail(
                f"the caller did not hear {shown!r}{after} (expectation {n + 1} of {len(expected)})", result
            )
        at = found + 1


def assert_status(result: CallResult, status: str) -> None:
    """The call's final ``call_status`` is ``status`` (``completed``, ``failed``, ``busy``, …)."""
    __tracebackhide__ = True
    if result.final_status != status:
        raise _fail(f"the call ended {result.final_status!r}, not {status!r}", result)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values`` (not empty)."""
    ranked = sorted(values)
    return ranked[max(0, math.ceil(q / 100 * len(ranked)) - 1)]


def assert_turn_latency(
    result: CallResult,
    *,
    p95_ms: float | None = None,
    p50_ms: float | None = None,
    max_ms: float | None = None,
) -> None:
    """The app answered the caller's turns fast enough, on the call's clock.

    A turn is a ``verb:hook`` the app answered (a gather's result, an action hook): its latency is
    the time from the hook going out — the caller's end of input — to the app's ack or HTTP response.
    Percentiles are nearest-rank. A call with no answered turn fails: there is nothing to measure.
    """
    __tracebackhide__ = True
    limits = {"p50": (50.0, p50_ms), "p95": (95.0, p95_ms), "max": (100.0, max_ms)}
    if all(limit is None for _, limit in limits.values()):
        raise ValueError("assert_turn_latency needs p95_ms, p50_ms or max_ms")
    turns = turn_latencies(result)
    if not turns:
        raise _fail("no turn to measure: the app answered no verb:hook", result)
    for name, (q, limit) in limits.items():
        if limit is None:
            continue
        value = percentile(turns, q) * 1000
        if value > limit:
            shown = ", ".join(f"{t * 1000:.1f}" for t in turns)
            raise _fail(f"turn latency {name} {value:.1f} ms > {limit:g} ms (turns, ms: {shown})", result)
