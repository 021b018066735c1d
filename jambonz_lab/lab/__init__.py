"""The lab layer: runtime (background server, default lab), event log, CLI."""

from __future__ import annotations

from .events import EventLog
from .runtime import Lab, default_lab, read_log, service, start, stop_all

__all__ = ["EventLog", "Lab", "default_lab", "read_log", "service", "start", "stop_all"]
