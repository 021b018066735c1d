"""The event log: every message both ways and every lab event, as rows.

Rows are appended on the loop thread (a list append, nothing else); readers in
any thread get a pandas DataFrame built once per change and cached.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "EventLog"]

COLUMNS = ("ts", "call_sid", "direction", "type", "msgid", "hook", "verbs", "payload", "note", "path")


class EventLog:
    """Append-only rows with a cached DataFrame view.

    Example::

        lab.events                       # DataFrame, one row per event
        lab.events.query("direction == 'in'")
    """

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._frame: pd.DataFrame | None = None
        self._frame_len = -1

    def record(self, row: dict[str, Any]) -> None:
        """Append one row (loop thread)."""
        with self._lock:
            self._rows.append(row)

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self, call_sid: str | None = None) -> list[dict[str, Any]]:
        """A copy of the rows, optionally of one call. Any thread."""
        with self._lock:
            rows = list(self._rows)
        return rows if call_sid is None else [r for r in rows if r["call_sid"] == call_sid]

    def to_dataframe(self, call_sid: str | None = None) -> pd.DataFrame:
        """The rows as a DataFrame (``ts`` as UTC datetimes). Any thread."""
        import pandas as pd

        with self._lock:
            n = len(self._rows)
            if call_sid is None and self._frame is not None and self._frame_len == n:
                return self._frame
            rows = self._rows[:n]
        if call_sid is not None:
            rows = [r for r in rows if r["call_sid"] == call_sid]
        frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
        frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
        if call_sid is None:
            with self._lock:
                self._frame, self._frame_len = frame, n
        return frame
