"""The lab layer: runtime (background server, default lab), event log, CLI."""

from __future__ import annotations

from .events import EventLog
from .runtime import Lab, LabState, default_lab, lab_for, read_log, service, sql, start, stop_all

__all__ = [
    "EventLog",
    "Lab",
    "LabState",
    "default_lab",
    "lab_for",
    "read_log",
    "service",
    "sql",
    "start",
    "stop_all",
]
