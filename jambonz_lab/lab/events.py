"""The event log: every message both ways and every lab event, as rows.

Rows are appended on the loop thread (a list append of a plain tuple, with the
frame kept as JSON text: nothing the garbage collector has to scan); readers
in any thread get dicts or a pandas DataFrame, built once per change and cached.
"""

from __future__ import annotations

import contextlib
import gc
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..records import RECORD_FIELDS
from . import views

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "EventLog"]

COLUMNS = RECORD_FIELDS
_PAYLOAD = COLUMNS.index("payload")
_CALL = COLUMNS.index("call_sid")


class EventLog:
    """Append-only rows with a cached DataFrame view.

    Example::

        lab.events                       # DataFrame, one row per event
        lab.events.query("direction == 'in'")
    """

    def __init__(self) -> None:
        self._rows: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._frame: pd.DataFrame | None = None
        self._frame_len = -1
        self._flat: pd.DataFrame | None = None
        self._flat_len = -1

    def record(self, row: tuple[Any, ...]) -> None:
        """Append one row (loop thread); fields in :data:`COLUMNS` order, payload as JSON text."""
        self._rows.append(row)  # list.append is atomic; readers copy under the lock

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self, call_sid: str | None = None) -> list[dict[str, Any]]:
        """The rows as dicts (payload parsed), optionally of one call. Any thread."""
        return [_as_dict(r) for r in self._select(call_sid)]

    def _select(self, call_sid: str | None) -> list[tuple[Any, ...]]:
        with self._lock:
            rows = self._rows[:]
        return rows if call_sid is None else [r for r in rows if r[_CALL] == call_sid]

    def to_dataframe(self, call_sid: str | None = None) -> pd.DataFrame:
        """The rows as a DataFrame (``ts`` as UTC datetimes, payload parsed). Any thread."""
        import pandas as pd

        n = len(self._rows)
        if call_sid is None and self._frame is not None and self._frame_len == n:
            return self._frame
        rows = self._select(call_sid) if call_sid is not None else self._select(None)[:n]
        with _gc_paused():  # building many dicts at once: the cyclic GC would rescan them over and over
            frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
            frame["payload"] = [_parse(p) for p in frame["payload"]]
        frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
        if call_sid is None:
            with self._lock:
                self._frame, self._frame_len = frame, n
        return frame

    # -- views ---------------------------------------------------------------------------

    @property
    def events(self) -> pd.DataFrame:
        """Every row, with the common payload fields as columns and ``ack_ms``."""
        n = len(self._rows)
        if self._flat is not None and self._flat_len == n:
            return self._flat
        frame = self.to_dataframe()
        with _gc_paused():
            flat = views.flatten(frame)
        self._flat, self._flat_len = flat, n
        return flat

    @property
    def jambonz(self) -> pd.DataFrame:
        """The rows of the jambonz app server only (``source == "jambonz"``)."""
        events = self.events
        return events[events["source"] == "jambonz"]

    @property
    def calls(self) -> pd.DataFrame:
        """One row per jambonz call (see :func:`jambonz_lab.lab.views.calls`)."""
        return views.calls(self.jambonz)

    @property
    def hooks(self) -> pd.DataFrame:
        """One row per message that wanted an ack, with its ack latency."""
        return views.hooks(self.jambonz)

    @property
    def statuses(self) -> pd.DataFrame:
        """Every ``call:status``."""
        return views.statuses(self.jambonz)

    def platform(self, source: str) -> pd.DataFrame:
        """The events of one platform source with its key columns (see
        :func:`jambonz_lab.lab.platform_views.platform_events`)."""
        from .platform_views import platform_events

        return platform_events(self.events, source)

    # -- persistence ---------------------------------------------------------------------

    def write_jsonl(self, row: tuple[Any, ...], sink: TextIO) -> None:
        """Append one row to an open JSON-lines file (loop thread)."""
        sink.write(json.dumps(dict(zip(COLUMNS, row, strict=True)), separators=(",", ":")) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> EventLog:
        """Load a log written with ``start(log_path=...)`` (JSON lines)."""
        log = cls()
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    raise ValueError(f"{path}:{n}: not a JSON line; is this a jambonz_lab log?") from None
                item.setdefault("source", "jambonz")  # logs written before platform sources existed
                log._rows.append(tuple(item.get(c) for c in COLUMNS))
        return log


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC for a bulk build (measured: 1M payloads parse 6x faster)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _parse(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) else text


def _as_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(COLUMNS, row, strict=True))
    out["payload"] = _parse(out["payload"])
    return out
