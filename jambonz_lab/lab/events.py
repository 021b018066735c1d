"""The event log: every message both ways and every lab event, as rows.

Rows are appended on the loop thread (a list append of a plain tuple, with the
frame kept as JSON text: nothing the garbage collector has to scan). The views
are built off the loop, incrementally: each new chunk of rows is flattened once
(:class:`~jambonz_lab.lab.views.Views`) by a keeper thread or by the reader that
asks first. Memory is bounded: beyond ``memory_rows`` built rows the oldest
chunks spill to files in a private directory (pickled frames, removed with the
log), and the views read them back, so they still cover every call. Spilled chunks
are written, read and joined in bounded pieces (:mod:`~jambonz_lab.lab.slices`):
a view read in a cell thread never holds the GIL long, so the loop's acks do not
wait for it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..records import RECORD_FIELDS, Row, as_row
from . import slices, views
from .views import Chunk, Views

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "EventLog", "parsed", "repair_tail", "truncate"]

log = logging.getLogger("jambonz_lab.lab")

COLUMNS = RECORD_FIELDS
_TS, _SID = COLUMNS.index("ts"), COLUMNS.index("call_sid")

#: rows flattened at a time (the builder lets the loop run between chunks)
CHUNK_ROWS = 5_000
#: rows per spill file (consecutive chunks are merged into one; a file holds pickled slices of
#: ``slices.SLICE_ROWS`` rows, each read back in one short step)
SPILL_ROWS = 10_000
#: in-memory chunks merged once there are more than this many
_MAX_PARTS = 64
#: how much of a truncated payload is kept
TRUNCATED_HEAD = 1024
#: the interpreter's GIL switch interval (s) while views are built or read (see :func:`brisk`)
BUILD_SWITCH_INTERVAL = 0.0005


class _Brisk:
    """The switch interval lowered while any thread builds or reads views, restored after the last."""

    lock = threading.Lock()
    depth = 0
    saved = 0.0


@contextlib.contextmanager
def brisk() -> Iterator[None]:
    """Lower ``sys.setswitchinterval`` to :data:`BUILD_SWITCH_INTERVAL` for the block.

    A thread that wakes (the loop thread, from its poll) waits for the GIL until the thread
    holding it lets go: at the latest after the switch interval (5 ms by default) if that thread
    runs Python code, or after the C call it is in. An ack takes the GIL several times, so a
    builder busy in Python added up to 5 ms each time. The setting is process-wide: while a build
    runs, every thread (the loop too) hands the GIL over after 0.5 ms when another wants it, a
    few more hand-offs a second, each a few microseconds; once the last build ends the previous
    value is back, unless someone else changed it meanwhile (theirs stays).
    """
    with _Brisk.lock:
        if _Brisk.depth == 0:
            _Brisk.saved = sys.getswitchinterval()
            sys.setswitchinterval(min(_Brisk.saved, BUILD_SWITCH_INTERVAL))
        _Brisk.depth += 1
    try:
        yield
    finally:
        with _Brisk.lock:
            _Brisk.depth -= 1
            if _Brisk.depth == 0 and sys.getswitchinterval() == min(_Brisk.saved, BUILD_SWITCH_INTERVAL):
                sys.setswitchinterval(_Brisk.saved)


@dataclass
class _Part:
    """Built rows ``[start, start + n)``: in memory (``chunk``) or spilled (``path``)."""

    start: int
    n: int
    sids: frozenset[Any]
    chunk: Chunk | None = None
    path: Path | None = None

    def load(self) -> Chunk:
        if self.chunk is not None:
            return self.chunk
        assert self.path is not None  # noqa: S101 - a part is one or the other
        return Chunk(self.events(), *self.views())

    def events(self) -> pd.DataFrame:
        """The flattened events (read back from its file if spilled)."""
        if self.chunk is not None:
            return self.chunk.events
        assert self.path is not None  # noqa: S101
        with open(self.path.with_suffix(".events"), "rb") as f, _gc_paused():
            return slices.load(f)

    def views(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The hook messages, acks and statuses (without reading the events of a spilled part)."""
        if self.chunk is not None:
            return self.chunk.hook_ins, self.chunk.acks, self.chunk.statuses
        assert self.path is not None  # noqa: S101
        with open(self.path.with_suffix(".views"), "rb") as f, _gc_paused():
            return slices.load(f), slices.load(f), slices.load(f)


class EventLog:
    """Append-only rows with DataFrame views built incrementally, off the loop thread.

    Args:
        memory_rows: built rows kept in memory; older ones spill to disk.
        spill_dir: where the spill directory is made (default: the system's temp dir).

    Example::

        lab.events                       # DataFrame, one row per event
        lab.events.query("direction == 'in'")
    """

    def __init__(self, *, memory_rows: int = 200_000, spill_dir: str | Path | None = None) -> None:
        if memory_rows < 1:
            raise ValueError(f"memory_rows must be at least 1, not {memory_rows}")
        self.memory_rows = memory_rows
        # rows [_base, _base + len), kept as plain tuples in COLUMNS order: a plain tuple of text,
        # numbers and None leaves the garbage collector's lists at its first collection (a Row, a
        # tuple subclass, never does: each full collection walked every kept row)
        self._rows: list[tuple[Any, ...]] = []
        self._base = 0
        self._lock = threading.Lock()  # _rows and _base together
        self._build = threading.RLock()  # the views state, the parts
        self._views = Views()
        self._parts: list[_Part] = []
        self._built = 0
        self._spill_parent = spill_dir
        self._spill_dir: Path | None = None
        self._cache: tuple[int, pd.DataFrame] | None = None
        self._keeper: threading.Thread | None = None
        self._stop = threading.Event()

    def record(self, row: Row | tuple[Any, ...]) -> None:
        """Append one row (loop thread): a :class:`~jambonz_lab.records.Row`, or a plain tuple in
        :data:`COLUMNS` order (made a Row here); payload as JSON text."""
        self._rows.append(tuple(as_row(row)))  # list.append is atomic; readers copy under the lock

    def extend(self, rows: Iterable[Row]) -> None:
        """Append many rows at once (a log read back from a file; not for the loop thread)."""
        self._rows.extend(tuple(as_row(r)) for r in rows)

    def __len__(self) -> int:
        return self._base + len(self._rows)

    def __repr__(self) -> str:
        """One line: rows, calls, time span, and the tables to read (any thread but the loop's)."""
        tables = ".events .calls .hooks .statuses, .platform(source), .rows(call_sid)"
        with self._build:
            parts = list(self._parts)
            with self._lock:
                rows, base, built = self._rows[:], self._base, self._built
        if base + len(rows) == 0:
            return f"<EventLog empty; tables: {tables}>"
        sids: set[Any] = set().union(*(p.sids for p in parts))
        sids.update(r[_SID] for r in rows[built - base :] if r[_SID] is not None)
        first = rows[0][_TS] if base == 0 else parts[0].load().events["ts"].iloc[0].timestamp()
        last = rows[-1][_TS] if rows else parts[-1].load().events["ts"].iloc[-1].timestamp()
        seconds = float(last) - float(first)
        span = f"{_utc(first, '%Y-%m-%d %H:%M:%S')} → {_utc(last, '%H:%M:%S')} UTC ({seconds:.1f} s)"
        return f"<EventLog {base + len(rows):,} rows, {len(sids)} call(s), {span}; tables: {tables}>"

    @property
    def spilled_rows(self) -> int:
        """Rows that left memory for the spill files."""
        return self._base

    # -- building ------------------------------------------------------------------------

    @brisk()
    def catch_up(self, *, yield_between: bool = False, whole_chunks: bool = False) -> int:
        """Build the views of the rows not built yet; returns how many. Any thread but the loop's.

        ``yield_between`` sleeps a moment between chunks so the loop thread runs (the keeper).
        ``whole_chunks`` leaves a last chunk shorter than ``CHUNK_ROWS`` for later: a chunk's
        build has a fixed cost of many pandas operations, so small ones cost more per row.
        """
        import pandas as pd

        done = 0
        with self._build:
            while True:
                with self._lock:
                    first = self._built - self._base
                    rows = self._rows[first : first + CHUNK_ROWS]
                if not rows or (whole_chunks and len(rows) < CHUNK_ROWS):
                    break
                with _gc_paused():
                    frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
                    frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
                    chunk = self._views.add(frame)
                sids = frozenset(chunk.events["call_sid"].dropna().unique())
                self._parts.append(_Part(self._built, len(rows), sids, chunk=chunk))
                self._built += len(rows)
                done += len(rows)
                if yield_between:
                    time.sleep(0.001)
            if done:
                self._merge_parts()
                self._spill()
        return done

    def _merge_parts(self) -> None:
        memory = [p for p in self._parts if p.chunk is not None]
        if len(memory) <= _MAX_PARTS:
            return
        spilled = [p for p in self._parts if p.chunk is None]
        merged: list[_Part] = []
        group: list[_Part] = []
        for part in memory:
            if group and sum(p.n for p in group) + part.n > SPILL_ROWS:
                merged.append(_merge(group))
                group = []
            group.append(part)
        merged.append(_merge(group))
        self._parts = spilled + merged

    def _spill(self) -> None:
        """Move the oldest built chunks to disk while more than ``memory_rows`` are in memory."""
        while self._built - self._base > self.memory_rows:
            index = next(i for i, p in enumerate(self._parts) if p.chunk is not None)
            group: list[_Part] = []
            while index + len(group) < len(self._parts) and sum(p.n for p in group) < SPILL_ROWS:
                group.append(self._parts[index + len(group)])
            part = _merge(group)
            assert part.chunk is not None  # noqa: S101
            path = self._directory() / f"{part.start:012d}"
            with open(path.with_suffix(".events"), "wb") as f:
                slices.dump(part.chunk.events, f)
            with open(path.with_suffix(".views"), "wb") as f:
                for small in (part.chunk.hook_ins, part.chunk.acks, part.chunk.statuses):
                    slices.dump(small, f)
            self._parts[index : index + len(group)] = [_Part(part.start, part.n, part.sids, path=path)]
            with self._lock:
                del self._rows[: part.n]
                self._base += part.n
            self._cache = None

    def _directory(self) -> Path:
        if self._spill_dir is None:
            made = Path(tempfile.mkdtemp(prefix="jambonz-lab-log-", dir=self._spill_parent))
            weakref.finalize(self, shutil.rmtree, made, ignore_errors=True)
            self._spill_dir = made
        return self._spill_dir

    def start_keeper(self, interval: float = 0.5) -> None:
        """Build and spill in a daemon thread, so memory stays bounded and a reader finds the views
        nearly built. Idempotent.

        Every ``interval`` s it builds whole chunks of ``CHUNK_ROWS`` rows while rows keep
        coming, and the rest once the log has been quiet for an interval: under load it never
        pays a small chunk's fixed cost (about four times the per-row cost of a whole chunk at
        1,000 rows), and fewer builds mean fewer moments when it holds the GIL.
        """
        if self._keeper is not None and self._keeper.is_alive():
            return
        self._stop.clear()
        self._keeper = threading.Thread(
            target=self._keep, args=(interval,), name="jambonz-lab-log", daemon=True
        )
        self._keeper.start()

    def stop_keeper(self) -> None:
        self._stop.set()
        keeper, self._keeper = self._keeper, None
        if keeper is not None and keeper is not threading.current_thread():
            keeper.join(5.0)

    def _keep(self, interval: float) -> None:
        seen = len(self)
        while not self._stop.wait(interval):
            now = len(self)
            quiet, seen = now == seen, now
            try:
                slices.sweep()  # the frames readers dropped, freed a step at a time
                if now == self._built:
                    continue
                self.catch_up(yield_between=True, whole_chunks=not quiet)
            except Exception:  # the keeper must live on; a reader would raise the same
                log.exception("building the event-log views failed")

    def _snapshot(self) -> tuple[int, list[_Part]]:
        self.catch_up()
        with self._build:
            return self._built, list(self._parts)

    # -- views ---------------------------------------------------------------------------

    @property
    @brisk()
    def events(self) -> pd.DataFrame:
        """Every row, with the common payload fields as columns and ``ack_ms`` (``payload`` is the
        frame's JSON text: ``json.loads(row.payload)``)."""

        built, parts = self._snapshot()
        cached = self._cache
        if cached is not None and cached[0] == built:
            return cached[1]
        frames = [p.events() for p in parts]
        if not frames:
            frames = [Views().add(_empty()).events]
        slices.sweep()
        with _gc_paused():
            out = (
                slices.concat(frames, hand_out=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
            )
        _drop(frames)
        if built <= self.memory_rows:  # a small log keeps its frame; a big one is read again
            self._cache = (built, out)
        return out

    @property
    def jambonz(self) -> pd.DataFrame:
        """The rows of the jambonz app server only (``source == "jambonz"``)."""
        events = self.events
        return events[events["source"] == "jambonz"]

    @property
    @brisk()
    def calls(self) -> pd.DataFrame:
        """One row per jambonz call (see :func:`jambonz_lab.lab.views.calls`)."""
        self.catch_up()
        with self._build:
            return self._views.calls()

    @property
    @brisk()
    def hooks(self) -> pd.DataFrame:
        """One row per message that wanted an ack, with its ack latency."""
        _, parts = self._snapshot()
        small = [p.views() for p in parts] or [_small_empty()]
        slices.sweep()
        with _gc_paused():
            ins = slices.concat([s[0] for s in small])
            acks = slices.concat([s[1] for s in small])
            table = views.hooks_table(ins, acks, hand_out=True)
        for done in (ins, acks):
            slices.release(done, keep=table)
        _drop(small)
        return table

    @property
    @brisk()
    def statuses(self) -> pd.DataFrame:
        """Every ``call:status``."""
        _, parts = self._snapshot()
        small = [p.views() for p in parts] or [_small_empty()]
        slices.sweep()
        with _gc_paused():
            table = slices.concat([s[2] for s in small], hand_out=True)
        _drop(small)
        return table

    @brisk()
    def events_of(self, call_sid: str) -> pd.DataFrame:
        """The rows of one call (flattened, as in :attr:`events`); reads only the chunks it is in."""
        import pandas as pd

        _, parts = self._snapshot()
        frames = [
            f[f["call_sid"] == call_sid] for p in parts if call_sid in p.sids for f in [p.load().events]
        ]
        if not frames:
            return Views().add(_empty()).events
        return pd.concat(frames, ignore_index=True)

    def platform(self, source: str) -> pd.DataFrame:
        """The events of one platform source with its key columns (see
        :func:`jambonz_lab.lab.platform_views.platform_events`)."""
        from .platform_views import platform_events

        events = self.events
        return platform_events(parsed(events[events["source"] == source]), source)

    # -- rows ------------------------------------------------------------------------------

    def rows(self, call_sid: str | None = None) -> list[dict[str, Any]]:
        """The rows as dicts (payload parsed), optionally of one call. Any thread."""
        return [_as_dict(r) for r in self.select(call_sid)]

    @brisk()
    def select(self, call_sid: str | None = None) -> list[Row]:
        """The raw rows (payload as JSON text), optionally of one call, oldest first. Any thread
        but the loop's (spilled chunks are read back)."""
        with self._build:
            spilled = [p for p in self._parts if p.chunk is None]
            with self._lock:
                rows = self._rows[:]
        out: list[Row] = []
        for part in spilled:
            if call_sid is None or call_sid in part.sids:
                out.extend(_tuples(part.load().events, call_sid))
        out.extend(Row._make(r) for r in rows if call_sid is None or r[_SID] == call_sid)
        return out

    def to_dataframe(self, call_sid: str | None = None) -> pd.DataFrame:
        """The rows as a DataFrame (``ts`` as UTC datetimes, payload parsed). Any thread.

        Every payload is parsed: for a long log prefer :attr:`events` (payload as text).
        """
        import pandas as pd

        rows = self.select(call_sid)
        with _gc_paused():
            frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
            frame["payload"] = [_parse(p) for p in frame["payload"]]
        frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
        return frame

    # -- persistence ---------------------------------------------------------------------

    def write_jsonl(self, row: tuple[Any, ...], sink: TextIO) -> None:
        """Append one row to an open JSON-lines file (loop thread)."""
        sink.write(json.dumps(dict(zip(COLUMNS, row, strict=True)), separators=(",", ":")) + "\n")

    def to_parquet(self, directory: str | Path) -> list[Path]:
        """Append every row to the Parquet log in ``directory`` (made if missing) as new parts,
        partitioned ``date=YYYY-MM-DD/source=NAME/`` (see :mod:`jambonz_lab.lab.parquet` and
        docs/log-format.md); returns the parts written. Needs pyarrow (the ``scale`` extra).
        Any thread but the loop's."""
        from .parquet import write_rows

        return write_rows(self.select(), directory)

    @classmethod
    def read(cls, path: str | Path, **options: Any) -> EventLog:
        """Load a log written with ``start(log_path=...)`` (JSON lines), or a Parquet log (a
        directory written by ``start(parquet_dir=...)`` or :meth:`to_parquet`, or one part).

        A torn last line (the writer was killed mid-line) is skipped with a warning; a bad line
        anywhere else raises ``ValueError``.
        """
        from .parquet import is_parquet, read_rows

        log = cls(**options)
        if is_parquet(path):
            log.extend(read_rows(path))
            return log
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                if n == len(lines):
                    warnings.warn(
                        f"{path}:{n}: torn last line ({len(line)} bytes) skipped; the writer was stopped "
                        "mid-line",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    break
                raise ValueError(f"{path}:{n}: not a JSON line; is this a jambonz_lab log?") from None
            item.setdefault("source", "jambonz")  # logs written before platform sources existed
            log._rows.append(tuple(item.get(c) for c in COLUMNS))
        return log


def _utc(ts: Any, fmt: str) -> str:
    return time.strftime(fmt, time.gmtime(float(ts)))


def repair_tail(path: str | Path) -> int:
    """Cut a torn last line (no newline at the end) off a JSON-lines log; returns the bytes cut."""
    target = Path(path)
    if not target.exists():
        return 0
    with open(target, "rb+") as f:
        size = f.seek(0, 2)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        step, end = 65536, size
        while end > 0:  # find the last newline, reading backwards
            start = max(0, end - step)
            f.seek(start)
            cut = f.read(end - start).rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        else:
            keep = 0
        f.truncate(keep)
    return size - keep


def truncate(row: Row, limit: int) -> Row:
    """``row`` with a payload beyond ``limit`` characters replaced by its head and size."""
    text = row.payload
    if not isinstance(text, str) or len(text) <= limit:
        return row
    kept = json.dumps({"truncated": True, "size": len(text), "head": text[:TRUNCATED_HEAD]})
    note = f"payload of {len(text)} characters stored truncated to its first {TRUNCATED_HEAD}"
    if row.note:
        note = f"{row.note}; {note}"
    return row._replace(payload=kept, note=note)


def parsed(events: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``events`` with each payload parsed (for the few rows a picture or a table reads)."""
    return events.assign(payload=[_parse(p) for p in events["payload"]])


def _merge(parts: list[_Part]) -> _Part:
    if len(parts) == 1:
        return parts[0]
    chunks = [p.load() for p in parts]
    with _gc_paused():
        fields = ("events", "hook_ins", "acks", "statuses")
        chunk = Chunk(*(slices.concat([getattr(c, f) for c in chunks]) for f in fields))
    sids = frozenset().union(*(p.sids for p in parts))
    return _Part(parts[0].start, sum(p.n for p in parts), sids, chunk=chunk)


def _drop(items: list[Any]) -> None:
    """Drop the parts read back one at a time (freeing them all at once is one long C call)."""
    while items:
        items.pop()
        slices.pause()


def _tuples(events: pd.DataFrame, call_sid: str | None) -> list[Row]:
    """Rows back from a spilled frame (``ts`` as epoch seconds again)."""
    src = events if call_sid is None else events[events["call_sid"] == call_sid]
    frame = src[list(COLUMNS)].astype(object)
    frame["ts"] = src["ts"].astype("int64").to_numpy() / 1e9
    frame = frame.where(frame.notna(), None)
    return [Row._make(values) for values in frame.itertuples(index=False, name=None)]


def _empty() -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in COLUMNS})
    frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    return frame


def _small_empty() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    chunk = Views().add(_empty())
    return chunk.hook_ins, chunk.acks, chunk.statuses


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC for a bulk build (measured: 1M payloads parse 6x faster).

    The price: what every thread made meanwhile is walked in one young collection at the first
    allocation after (5–20 ms in the reader's thread at 30 k calls). Holding off only full
    collections instead (a huge third threshold) gave the loop more, shorter young collections,
    and its acks were slower (``benchmarks/README.md``, "Ended calls freed without the collector").
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _parse(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) else text


def _as_dict(row: Row) -> dict[str, Any]:
    out = row._asdict()
    out["payload"] = _parse(out["payload"])
    return out
