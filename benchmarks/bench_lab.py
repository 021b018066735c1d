"""The lab's own costs: event-log append, DataFrame build, import + start.

Run: python benchmarks/bench_lab.py [--events N]

Prints a table; nothing is asserted (timings live here, not in tests).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from jambonz_lab.lab.events import EventLog


def sample_rows(n: int) -> list[tuple[object, ...]]:
    """Rows shaped like a real call's: a hook in, its ack out, a status in."""
    hook = json.dumps(
        {
            "type": "verb:hook",
            "msgid": "m",
            "call_sid": "c",
            "hook": "/echo",
            "data": {
                "reason": "speechDetected",
                "call_sid": "c",
                "call_status": "in-progress",
                "speech": {"alternatives": [{"transcript": "hello there", "confidence": 0.9}]},
            },
        }
    )
    ack = json.dumps({"type": "ack", "msgid": "m", "data": [{"verb": "say", "text": "hi"}]})
    rows = []
    t = time.time()
    for i in range(n):
        sid = f"call-{i // 40}"
        kind = i % 3
        if kind == 0:
            rows.append((t + i * 1e-4, sid, "in", "verb:hook", f"m{i}", "/echo", 0, hook, None, "/"))
        elif kind == 1:
            rows.append((t + i * 1e-4, sid, "out", "ack", f"m{i - 1}", None, 1, ack, None, "/"))
        else:
            rows.append((t + i * 1e-4, sid, "lab", "auto-ack", None, None, 0, None, "note", None))
    return rows


def time_append(rows: list[tuple[object, ...]]) -> float:
    log = EventLog()
    t0 = time.perf_counter()
    for r in rows:
        log.record(r)
    return (time.perf_counter() - t0) / len(rows)


def time_frames(rows: list[tuple[object, ...]]) -> tuple[float, float]:
    log = EventLog()
    for r in rows:
        log.record(r)
    t0 = time.perf_counter()
    log.to_dataframe()
    raw = time.perf_counter() - t0
    t0 = time.perf_counter()
    _ = log.events
    flat = time.perf_counter() - t0
    return raw, flat


def startup() -> float:
    code = (
        "import time;t=time.perf_counter();import jambonz_lab as jl;jl.start().stop();"
        "print(time.perf_counter()-t)"
    )
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(5)
    ]
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    args = ap.parse_args()
    rows = sample_rows(args.events)
    append = time_append(rows)
    raw, flat = time_frames(rows)
    print(
        f"{'events':>10} {'append µs/event':>16} {'to_dataframe s':>15} {'events view s':>14} "
        f"{'import+start s':>15}"
    )
    print(f"{args.events:>10,} {append * 1e6:16.3f} {raw:15.2f} {flat:14.2f} {startup():15.2f}")


if __name__ == "__main__":
    main()
