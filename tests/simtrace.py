"""Reading a simulated call's trace in tests (one place for the queries several test files share)."""

from __future__ import annotations

from typing import Any

from jambonz_lab.sim import CallResult


def sent(result: CallResult, type: str | None = None) -> list[dict[str, Any]]:
    """The envelopes the simulated jambonz sent (of one type, or all)."""
    return [e.payload for e in result.messages("sent", type)]


def notes(result: CallResult, kind: str) -> list[str]:
    """The notes of the simulator's own events of one kind."""
    return [e.note or "" for e in result.messages("sim", kind)]


def sent_hooks(result: CallResult, hook: str) -> list[tuple[float, dict[str, Any]]]:
    """(t, data) of each verb:hook jambonz sent to ``hook``."""
    return [
        (e.t, e.payload["data"])
        for e in result.messages("sent", "verb:hook")
        if e.payload.get("hook") == hook
    ]


def answered_at(result: CallResult) -> float:
    """When (call clock) the call went in-progress."""
    return next(
        e.t
        for e in result.messages("sent", "call:status")
        if e.payload["data"]["call_status"] == "in-progress"
    )
