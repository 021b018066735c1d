"""SQL over the event log with DuckDB: ``lab.sql(query)``, ``jambonz_lab.sql(query, directory)``.

The tables a query can name are :data:`TABLES`: ``events``, ``calls``, ``hooks``, ``statuses`` and
``turns``, the same DataFrames as ``lab.events``, ``lab.calls``, … Only the tables the query
names are built (a word match on the query's text).

Over a Parquet log directory (``start(parquet_dir=...)``) ``events`` is DuckDB's own scan of the
parts (``read_parquet('DIR/**/*.parquet', hive_partitioning = true)``: the stored columns of
docs/log-format.md, ``ts`` as a UTC timestamp, plus the ``date`` partition; nothing is loaded
into pandas for it, so a query over millions of rows stays in DuckDB). ``calls``, ``hooks`` and
``statuses`` are reduced from the parts by DuckDB with the lab's rules
(:mod:`jambonz_lab.lab.derived`: the same frames as ``read_log(DIR).calls`` and so on);
``turns`` is built from the directory's rows as the lab builds it. Both are kept once per set
of parts (a new part builds them again).

duckdb is an optional extra (``pip install 'jambonz-lab[scale]'``), imported on first use.
Any thread but the loop's.

Example::

    lab.sql("select final_status, count(*) as n from calls group by 1 order by 2 desc")
    jl.sql("select quantile_cont(ack_ms, 0.95) from hooks", "logs/")
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import QueryError
from .parquet import check_parts, part_files, read_parts, require, schema

if TYPE_CHECKING:
    import pandas as pd

    from .events import EventLog

__all__ = ["TABLES", "over_directory", "over_log", "run"]

#: the tables a query can name
TABLES = ("events", "calls", "hooks", "statuses", "turns")

_NAMES = re.compile(r"\b(" + "|".join(TABLES) + r")\b", re.IGNORECASE)
_cache_lock = threading.Lock()
#: the last directory read for its turns: (directory, its parts, the log)
_cache: tuple[Path, tuple[Path, ...], EventLog] | None = None
#: the tables DuckDB builds from a directory's parts (jambonz_lab.lab.derived)
_BUILT = ("calls", "hooks", "statuses")
#: the last directory's built tables: (directory, its parts, table name -> DataFrame)
_built: tuple[Path, tuple[Path, ...], dict[str, pd.DataFrame]] | None = None


def named(query: str) -> set[str]:
    """The tables of :data:`TABLES` that ``query`` names."""
    return {m.lower() for m in _NAMES.findall(query)}


def run(
    query: str, tables: Mapping[str, Callable[[], Any]], views: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Run ``query`` on a fresh DuckDB connection with ``tables`` (name → a function returning a
    DataFrame or an Arrow table; called only for the names the query uses) registered and
    ``views`` (name → SQL) created; returns a DataFrame. Times are shown in UTC."""
    duckdb = require("duckdb", "lab.sql")
    if not query.strip():
        raise QueryError("SQL query failed: the query is empty", query=query)
    used = named(query)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, sql in (views or {}).items():
            if name in used:
                con.execute(f"CREATE VIEW {name} AS {sql}")
        for name, make in tables.items():
            if name in used:
                con.register(name, make())
        try:
            result: pd.DataFrame = con.sql(query).df()
        except duckdb.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise QueryError(f"SQL query failed: {reason}", query=query) from None
        return result
    finally:
        con.close()


def over_log(query: str, log: EventLog) -> pd.DataFrame:
    """``query`` over an in-memory event log's tables."""

    def turns() -> pd.DataFrame:
        from .turns import turns as build

        return build(log.events)

    tables: dict[str, Callable[[], Any]] = {
        "events": lambda: log.events,
        "calls": lambda: log.calls,
        "hooks": lambda: log.hooks,
        "statuses": lambda: log.statuses,
        "turns": turns,
    }
    return run(query, tables)


def over_directory(query: str, directory: str | Path) -> pd.DataFrame:
    """``query`` over a Parquet log directory: ``events`` scanned by DuckDB, the rest built."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"no Parquet log directory {root}")
    parts = tuple(part_files(root))
    glob = str(root / "**" / "*.parquet").replace("'", "''")
    scan = f"read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"
    # ts is stored as epoch seconds (exact); shown as a UTC timestamp, as in lab.events
    views = {"events": f"SELECT * REPLACE (to_timestamp(ts) AS ts) FROM {scan}"} if parts else {}

    def derived(name: str) -> Callable[[], Any]:
        def make() -> Any:
            if name in _BUILT and parts:  # DuckDB reduces the parts; nothing parsed in Python
                return _built_of(root, parts)[name]
            log = _log_of(root, parts)
            if name == "turns":
                from .turns import turns

                return turns(log.events)
            return getattr(log, name)

        return make

    tables: dict[str, Callable[[], Any]] = {name: derived(name) for name in TABLES if name != "events"}
    if not parts:
        tables["events"] = lambda: schema().empty_table()
    return run(query, tables, views)


def _built_of(root: Path, parts: tuple[Path, ...]) -> dict[str, pd.DataFrame]:
    """The directory's ``calls``, ``hooks`` and ``statuses`` from DuckDB, kept while its parts stay
    the same. All three come from one scan of the parts (the scan is most of the time), so a
    later query on another of them finds it ready."""
    global _built
    from .derived import build

    key = root.resolve()
    with _cache_lock:
        if _built is not None and _built[:2] == (key, parts):
            return _built[2]
    check_parts(parts)  # the versions read_parts would check
    tables = build(parts, set(_BUILT))
    with _cache_lock:
        _built = (key, parts, tables)
    return tables


def _log_of(root: Path, parts: tuple[Path, ...]) -> EventLog:
    """The directory's rows as an event log, kept while its parts stay the same (parts only come)."""
    global _cache
    from .events import EventLog

    key = root.resolve()
    with _cache_lock:
        if _cache is not None and _cache[0] == key and _cache[1] == parts:
            return _cache[2]
    log = EventLog()
    log.extend(read_parts(parts))
    with _cache_lock:
        _cache = (key, parts, log)
    return log
