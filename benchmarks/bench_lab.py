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
from pathlib import Path

from jambonz_lab.lab.events import EventLog


def sample_rows(n: int) -> list[tuple[object, ...]]:
    """Rows shaped like a real call's (``jambonz_lab.records.RECORD_FIELDS`` order): a hook in,
    its ack out, a lab note."""
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
            rows.append(
                (t + i * 1e-4, sid, "in", "verb:hook", f"m{i}", "/echo", 0, hook, None, "/", "jambonz")
            )
        elif kind == 1:
            rows.append((t + i * 1e-4, sid, "out", "ack", f"m{i - 1}", None, 1, ack, None, "/", "jambonz"))
        else:
            rows.append((t + i * 1e-4, sid, "lab", "auto-ack", None, None, 0, None, "note", None, "jambonz"))
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


def time_stamp(n: int = 200_000) -> tuple[float, float]:
    """µs per row for ``callclocks.stamp`` (the lab's record hook): a row of a call that is not
    simulated here (a dict miss), and one of a simulated call (its call time looked up and set)."""
    import timeit

    from jambonz_lab import callclocks
    from jambonz_lab.records import make_row
    from jambonz_lab.sim.clock import Clock

    callclocks.register("bench-sim", Clock("virtual"))
    real = make_row("jambonz", "out", "ack", call_sid="bench-real", msgid="m")
    simulated = make_row("jambonz", "out", "ack", call_sid="bench-sim", msgid="m")
    miss = min(timeit.repeat(lambda: callclocks.stamp(real), number=n, repeat=5)) / n
    hit = min(timeit.repeat(lambda: callclocks.stamp(simulated), number=n, repeat=5)) / n
    return miss * 1e6, hit * 1e6


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
    miss, hit = time_stamp()
    print(f"call time stamp µs/row: real call {miss:.3f}, simulated call {hit:.3f}")


if __name__ == "__main__":
    main()


def ack_latency(with_panel: bool, hooks: int = 2000, calls: int = 20) -> tuple[float, float]:
    """p50/p99 hook round trip (ms) over real sockets, with a Lab panel (and its cards) live or not.

    Outside a kernel the widgets have no frontend: this measures what the panel costs the lab's
    loop thread (model updates, coalesced trait writes), which is what could delay an ack.
    """
    import jambonz_lab as jl

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.fakejambonz import FakeJambonz  # the tests' loopback jambonz stand-in

    lab = jl.start()
    svc = lab.service("/")

    @svc.on("session:new")
    async def new(session: jl.Session) -> None:
        async def hook(msg: jl.Message) -> None:
            session.say(text="ok").reply()

        session.on("/h", hook)
        session.answer().send()

    widget = jl.panel(lab) if with_panel else None
    times: list[float] = []
    for c in range(calls):
        with FakeJambonz(lab.url, f"lat-{with_panel}-{c}") as fj:
            fj.session_new()
            fj.recv()
            for _ in range(hooks // calls):
                t0 = time.perf_counter()
                fj.hook("/h")
                fj.recv()
                times.append((time.perf_counter() - t0) * 1000)
    lab.stop()
    del widget
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)]


def latency_table() -> None:
    print(f"\n{'hook round trip':<22} {'p50 ms':>7} {'p99 ms':>7}")
    for flag in (False, True):
        p50, p99 = ack_latency(flag)
        print(f"{'with Lab panel' if flag else 'no widgets':<22} {p50:7.2f} {p99:7.2f}")


if __name__ == "__main__" and "--latency" in sys.argv:
    latency_table()
