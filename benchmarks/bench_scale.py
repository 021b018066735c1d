"""The event log at scale: Parquet write and read, and DuckDB queries, for 1 M events.

One real call (a lab service called by the simulator: a greeting, three speech turns, a timeout and a
goodbye) is recorded, then its rows are copied with new call sids until the log holds ``--events``
rows (as benchmarks/bench_turns.py does). Then, one run each:

* ``EventLog.to_parquet`` (zstd parts of 100,000 rows): seconds, bytes on disk, rows per second;
* the live sink: ``ParquetSink.add`` for every row (the loop thread's cost) and ``close()``;
* ``read_log(dir)`` back into an EventLog (rows only, views not built);
* DuckDB straight on the directory: events per type (a group-by over every row);
* ``jl.sql`` over the directory: calls per final status and the p95 hook latency (the first query
  has DuckDB build ``calls``, ``hooks`` and ``statuses`` from the parts, jambonz_lab/lab/derived.py;
  the later ones find them kept);
* ``EventLog.sql``-equivalent in memory (``lab.sql`` over an EventLog): the same two queries, after
  its views are built, next to the same answer computed with pandas.

Run: python benchmarks/bench_scale.py [--events 1000000]

Prints a table and the machine's load; nothing is asserted (timings live here, not in tests).
Needs the scale extra (pip install '.[scale]').
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_turns import one_call  # the same recorded call as the turns benchmark (a script beside this one)

import jambonz_lab as jl
from jambonz_lab.lab import queries
from jambonz_lab.lab.events import EventLog
from jambonz_lab.lab.parquet import ParquetSink, part_files
from jambonz_lab.records import Row


def synthesise(template: list[Row], events: int) -> list[Row]:
    sid = template[0].call_sid
    assert sid is not None
    out: list[Row] = []
    i = 0
    while len(out) < events:
        new = str(uuid.UUID(int=i + 1))
        shift = i * 0.01
        for row in template:
            payload = row.payload.replace(sid, new) if row.payload else row.payload
            out.append(row._replace(call_sid=new, payload=payload, ts=row.ts + shift))
        i += 1
    return out[:events]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in part_files(folder))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    args = ap.parse_args()
    template = [r for r in one_call() if r.call_sid]
    rows = synthesise(template, args.events)
    calls = len({r.call_sid for r in rows})
    payload_bytes = sum(len(r.payload or "") for r in rows)
    print(f"{len(rows):,} events, {calls:,} calls, {len(template)} rows a call, ", end="")
    print(f"payloads {payload_bytes / 1e6:.0f} MB")
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
    table: list[tuple[str, float, str]] = []
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        log = EventLog(memory_rows=10**8)
        log.extend(rows)
        folder = work / "log"
        t, _ = timed(lambda: log.to_parquet(folder))
        table.append(
            ("to_parquet (zstd)", t, f"{size(folder) / 1e6:.1f} MB, {len(part_files(folder))} parts, "
             f"{len(rows) / t / 1e3:.0f} k rows/s")
        )  # fmt: skip

        live = work / "live"
        sink = ParquetSink(live)
        t_add, _ = timed(lambda: [sink.add(r) for r in rows])
        t_close, _ = timed(sink.close)
        table.append(("sink.add, every row", t_add, f"{t_add / len(rows) * 1e9:.0f} ns a row (loop thread)"))
        note = f"{sink.parts_written} parts of ≤5,000 rows, {size(live) / 1e6:.1f} MB"
        table.append(("sink.close (rest)", t_close, note))

        t, back = timed(lambda: jl.read_log(folder))
        table.append(("read_log(dir)", t, f"{len(back):,} rows"))
        del back

        by_type = "select type, count(*) as n from events group by type order by n desc"
        t, out = timed(lambda: jl.sql(by_type, folder))
        table.append(("duckdb: events per type (dir)", t, f"{len(out)} groups"))
        status = "select final_status, count(*) as n from calls group by 1"
        p95 = "select quantile_cont(ack_ms, 0.95) as p95 from hooks"
        t, out = timed(lambda: jl.sql(status, folder))
        table.append(("jl.sql calls per status, 1st (dir)", t, f"builds calls; {out['n'].sum():,} calls"))
        t, out = timed(lambda: jl.sql(status, folder))
        table.append(("jl.sql calls per status, 2nd (dir)", t, "cached"))
        t, out = timed(lambda: jl.sql(p95, folder))
        table.append(("jl.sql hook p95 ack_ms (dir)", t, f"p95 {out['p95'][0]:.2f} ms"))

        t, _ = timed(lambda: (log.events, log.calls, log.hooks))
        table.append(("in memory: build events/calls/hooks", t, "the lab's views, once"))
        t, out = timed(lambda: queries.over_log(status, log))
        table.append(("lab.sql calls per status (memory)", t, f"{out['n'].sum():,} calls"))
        t, out = timed(lambda: queries.over_log(p95, log))
        table.append(("lab.sql hook p95 ack_ms (memory)", t, f"p95 {out['p95'][0]:.2f} ms"))
        t, out = timed(lambda: log.calls.groupby("final_status").size())
        table.append(("pandas calls per status (memory)", t, "the same, with pandas"))
        t, out = timed(lambda: log.hooks["ack_ms"].quantile(0.95))
        table.append(("pandas hook p95 (memory)", t, f"p95 {out:.2f} ms"))
        log.stop_keeper()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(name) for name, _, _ in table)
    print(f"{'step':<{width}} {'s':>8}  note")
    for name, seconds, note in table:
        print(f"{name:<{width}} {seconds:>8.3f}  {note}")
    print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
