"""The event log as Parquet files: a directory of parts, partitioned by date and source.

Layout (hive style, readable by DuckDB, pyarrow, Spark, polars)::

    DIR/date=2026-12-06/source=jambonz/part-1765061230123456789-4242-000001-1a2b.parquet

Every part holds the columns of :class:`~jambonz_lab.records.Row` (``ts`` as the row's own UTC
epoch seconds, a double, so a round trip gives back the very same value; ``payload`` as JSON
text) and ``jambonz_lab.schema_version`` in its file metadata (:data:`SCHEMA_VERSION`;
docs/log-format.md describes it). A part is written to a hidden temp
file next to its final place and renamed into place, and never rewritten: a reader listing
``**/*.parquet`` sees whole parts only, however often the writer appends.

:class:`ParquetSink` is the lab's live writer (``jambonz_lab.start(parquet_dir=...)``): the loop
thread only appends a row to a list; a writer thread turns the rows into a part every
:data:`BATCH_ROWS` rows or :data:`FLUSH_INTERVAL` seconds, and once more when the lab stops.

pyarrow is an optional extra (``pip install 'jambonz-lab[scale]'``), imported on first use.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..records import RECORD_FIELDS, Row

__all__ = [
    "BATCH_ROWS",
    "FLUSH_INTERVAL",
    "SCHEMA_VERSION",
    "VERSION_KEY",
    "ParquetSink",
    "check_parts",
    "is_parquet",
    "part_files",
    "read_parts",
    "read_rows",
    "require",
    "write_rows",
]

log = logging.getLogger("jambonz_lab.lab")

#: the version of the columns below; bumped when a column changes meaning or type
SCHEMA_VERSION = 1
#: the file-metadata key that holds :data:`SCHEMA_VERSION`
VERSION_KEY = b"jambonz_lab.schema_version"
#: rows per part written by the live sink (at most; fewer when a flush comes first)
BATCH_ROWS = 5_000
#: seconds between the live sink's writes while rows keep coming
FLUSH_INTERVAL = 2.0
#: rows per part written by :func:`write_rows` (a whole log at once)
PART_ROWS = 100_000
#: the compression of every part (zstd: about half snappy's size on these rows, as fast to read)
COMPRESSION = "zstd"

_counter = itertools.count(1)
_counter_lock = threading.Lock()


def require(module: str, feature: str) -> Any:
    """Import ``module`` (an optional dependency) or raise a one-line ImportError naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{feature} needs {module.split('.')[0]}: pip install 'jambonz-lab[scale]'"
        ) from None


def schema() -> Any:
    """The Arrow schema of a part (a ``pyarrow.Schema``, with the schema version in its metadata)."""
    pa = require("pyarrow", "Parquet logs")
    fields = []
    for name in RECORD_FIELDS:
        if name in ("ts", "call_t"):
            kind = pa.float64()
        elif name == "verbs":
            kind = pa.int32()
        else:
            kind = pa.string()
        fields.append(pa.field(name, kind, nullable=name not in ("ts", "direction", "type", "source")))
    return pa.schema(fields, metadata={VERSION_KEY: str(SCHEMA_VERSION).encode()})


def is_parquet(path: str | Path) -> bool:
    """Whether ``path`` is a Parquet log: a directory, or a ``.parquet`` file."""
    target = Path(path)
    return target.is_dir() or target.suffix == ".parquet"


def part_files(directory: str | Path) -> list[Path]:
    """The whole parts under ``directory``, oldest first (temp files are hidden and never listed)."""
    root = Path(directory)
    return sorted(
        (p for p in root.glob("**/*.parquet") if not p.name.startswith(".")), key=lambda p: (p.name, str(p))
    )


def _table(rows: Sequence[Row]) -> Any:
    pa = require("pyarrow", "Parquet logs")
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in RECORD_FIELDS]
    arrays: list[Any] = []
    for name, values in zip(RECORD_FIELDS, columns, strict=True):
        if name in ("ts", "call_t"):
            arrays.append(pa.array(values, type=pa.float64()))
        elif name == "verbs":
            arrays.append(pa.array(values, type=pa.int32()))
        else:
            arrays.append(pa.array([None if v is None else str(v) for v in values], type=pa.string()))
    return pa.Table.from_arrays(arrays, schema=schema())


def _stem() -> str:
    """A new part name: nanoseconds, pid, a process-wide counter and a random tag (sorts by time)."""
    with _counter_lock:
        n = next(_counter)
    return f"part-{time.time_ns():019d}-{os.getpid()}-{n:06d}-{secrets.token_hex(2)}"


def _partitions(rows: Sequence[Row]) -> dict[tuple[str, str], list[Row]]:
    import numpy as np

    seconds = np.fromiter((r.ts for r in rows), dtype="float64", count=len(rows))
    days = np.floor(seconds / 86_400).astype("int64").astype("datetime64[D]").astype(str)
    groups: dict[tuple[str, str], list[Row]] = {}
    for day, row in zip(days.tolist(), rows, strict=True):
        groups.setdefault((day, str(row.source)), []).append(row)
    return groups


def write_rows(rows: Sequence[Row], directory: str | Path, *, part_rows: int = PART_ROWS) -> list[Path]:
    """Append ``rows`` to the Parquet log in ``directory`` as new parts (one per date and source,
    split every ``part_rows`` rows); returns their paths. Each is written to a hidden temp file and
    renamed into place, so a reader never sees half a part. Any thread but the loop's."""
    pq = require("pyarrow.parquet", "Parquet logs")
    root = Path(directory)
    written: list[Path] = []
    for start in range(0, len(rows), part_rows):
        stem = _stem()  # one batch: its parts in every partition share the name, so they sort together
        for (day, source), group in _partitions(rows[start : start + part_rows]).items():
            folder = root / f"date={day}" / f"source={source}"
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / f"{stem}.parquet"
            temp = folder / f".{stem}.parquet.tmp"
            try:
                pq.write_table(_table(group), temp, compression=COMPRESSION)
                os.replace(temp, final)
            finally:
                temp.unlink(missing_ok=True)
            written.append(final)
    return written


def _check_version(path: Path, metadata: dict[bytes, bytes] | None) -> None:
    raw = (metadata or {}).get(VERSION_KEY)
    if raw is None:
        raise ValueError(f"{path}: no {VERSION_KEY.decode()} in its metadata; is this a jambonz_lab log?")
    version = int(raw)
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"{path}: schema version {version} is newer than this jambonz_lab reads ({SCHEMA_VERSION}); "
            "upgrade jambonz_lab"
        )


def check_parts(files: Sequence[Path]) -> None:
    """Refuse, in one line naming the file, a part of a newer schema or of no jambonz_lab log
    (what :func:`read_parts` refuses), reading only each part's footer."""
    pq = require("pyarrow.parquet", "Parquet logs")
    for file in files:
        _check_version(file, pq.read_schema(file).metadata)


def read_rows(path: str | Path) -> list[Row]:
    """The rows of a Parquet log (a directory of parts, or one part), oldest part first; within
    one batch (the parts sharing a name across partitions) by time."""
    target = Path(path)
    return read_parts([target] if target.is_file() else part_files(target))


def read_parts(files: Sequence[Path]) -> list[Row]:
    """The rows of these parts (in :func:`part_files` order), batch by batch, by time in a batch."""
    pq = require("pyarrow.parquet", "Parquet logs")
    out: list[Row] = []
    for _, batch in itertools.groupby(files, key=lambda p: p.name):
        rows: list[Row] = []
        for file in batch:
            table = pq.read_table(file)
            _check_version(file, table.schema.metadata)
            rows.extend(_rows(table))
        rows.sort(key=lambda r: r.ts)  # stable: one partition's rows keep their order
        out.extend(rows)
    return out


def _rows(table: Any) -> Iterable[Row]:
    names = set(table.column_names)
    n = table.num_rows
    columns: list[list[Any]] = []
    for name in RECORD_FIELDS:
        if name not in names:  # a column a later version added is absent from an older part
            columns.append([None] * n)
        else:
            columns.append(table.column(name).to_pylist())
    return (Row._make(values) for values in zip(*columns, strict=True))


class ParquetSink:
    """Rows to Parquet parts, written by a thread of its own (the loop thread never waits on disk).

    Args:
        directory: the log's directory (made if missing).
        batch_rows: write a part once this many rows wait.
        interval: write what waits at least this often (seconds).

    The loop thread calls :meth:`add`; :meth:`flush` makes what waits visible now (any thread but
    the loop's); :meth:`close` writes the rest and ends the thread. A failed write (disk full) is
    logged and its rows kept for the next try: nothing is dropped.
    """

    def __init__(
        self, directory: str | Path, *, batch_rows: int = BATCH_ROWS, interval: float = FLUSH_INTERVAL
    ) -> None:
        require("pyarrow.parquet", "a Parquet log")
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.batch_rows = batch_rows
        self.interval = interval
        #: rows written so far, and the parts they went to
        self.rows_written = 0
        self.parts_written = 0
        #: the last write's error, or None
        self.error: str | None = None
        self._pending: list[Row] = []  # appended by the loop thread; the writer deletes a prefix
        self._added = 0
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._done = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="jambonz-lab-parquet", daemon=True)
        self._thread.start()

    def add(self, row: Row) -> None:
        """Queue one row (loop thread: a list append, no disk)."""
        self._pending.append(row)
        self._added += 1
        if len(self._pending) >= self.batch_rows and not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Write every row queued so far; True once they are in parts (False: timed out or failed)."""
        target = self._added
        self._wake.set()
        with self._done:
            return self._done.wait_for(
                lambda: self.rows_written >= target or not self._thread.is_alive(), timeout
            )

    def close(self, timeout: float = 10.0) -> None:
        """Write the rest and stop the writer thread. Idempotent."""
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the Parquet writer for %s did not finish in %.0f s", self.directory, timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            closing = self._closing.is_set()
            self._write()
            if closing:
                with self._done:
                    self._done.notify_all()
                return

    def _write(self) -> None:
        while self._pending:
            n = min(len(self._pending), self.batch_rows)
            batch = self._pending[:n]
            try:
                parts = write_rows(batch, self.directory)
            except Exception as exc:  # the writer lives on; the rows wait for the next try
                message = f"cannot write the Parquet log {self.directory}: {exc}"
                if message != self.error:
                    log.error("%s; its rows are kept and written again later", message)
                self.error = message
                return
            del self._pending[:n]  # the loop thread only appends: the prefix is this batch
            self.error = None
            with self._done:
                self.rows_written += n
                self.parts_written += len(parts)
                self._done.notify_all()

    def __repr__(self) -> str:
        return (
            f"<ParquetSink {self.directory}: {self.rows_written:,} rows in {self.parts_written} part(s), "
            f"{len(self._pending):,} waiting>"
        )
