"""GIL probe: how long a thread reading the event-log views keeps another thread from the GIL.

The lab's loop thread shares the GIL with a cell thread that reads ``lab.calls`` or ``lab.hooks``;
every stretch the reader holds it is a wait for the loop (an ack delayed). Here a probe thread
sleeps 0.5 ms in a loop and records how late it wakes. Lateness alone also counts other processes
(a shared machine), so a wake counts as *held* only for as long as the reading thread used CPU
meanwhile (its own CPU clock): min(lateness, the reader's CPU time).

Rows: synthetic soak calls (the frames bench_soak.py's generator sends, 7 rows a call), built as the
keeper builds them, then the views read as bench_soak's reader does (``lab.calls`` + ``lab.hooks``,
1,500 new rows before each read) and each view alone. ``-v`` names where the reader was after each
hold over 2 ms (the line it reached once it let go).

Run: python benchmarks/bench_view_gil.py [--calls 100000] [--reads 3] [-v]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from types import TracebackType

from bench_soak import _data, _status

from jambonz_lab.lab.events import EventLog

Rows = list[tuple[object, ...]]


def rows_of(n: int, t0: float) -> Rows:
    """The rows of soak call ``n``: session:new and its ack, three statuses, a verb:hook and its ack."""
    sid = f"soak-{n:07d}"
    t = t0 + n * 0.01

    speech = {"alternatives": [{"transcript": "a coffee please", "confidence": 0.9}]}
    hook = {"call_sid": sid, "reason": "speechDetected", "speech": speech}
    welcome = [
        {"verb": "say", "text": "Welcome"},
        {"verb": "gather", "input": ["speech"], "actionHook": "/g"},
    ]
    bye = [{"verb": "say", "text": "thanks"}, {"verb": "hangup"}]
    new = {"type": "session:new", "msgid": f"{sid}-n", "call_sid": sid, "data": _data(sid, n)}
    heard = {"type": "verb:hook", "msgid": f"{sid}-h", "call_sid": sid, "hook": "/g", "data": hook}
    return [
        (t, sid, "in", "session:new", f"{sid}-n", None, 0, json.dumps(new), None, "/", "jambonz"),
        (t + 0.001, sid, "out", "ack", f"{sid}-n", None, 2, json.dumps(welcome), None, "/", "jambonz"),
        (
            t + 0.002,
            sid,
            "in",
            "call:status",
            f"{sid}-s0",
            None,
            0,
            _status(sid, "trying", 0),
            None,
            "/",
            "jambonz",
        ),
        (
            t + 0.003,
            sid,
            "in",
            "call:status",
            f"{sid}-s1",
            None,
            0,
            _status(sid, "in-progress", 1),
            None,
            "/",
            "jambonz",
        ),
        (t + 0.004, sid, "in", "verb:hook", f"{sid}-h", "/g", 0, json.dumps(heard), None, "/", "jambonz"),
        (t + 0.005, sid, "out", "ack", f"{sid}-h", None, 2, json.dumps(bye), None, "/", "jambonz"),
        (
            t + 0.006,
            sid,
            "in",
            "call:status",
            f"{sid}-s2",
            None,
            0,
            _status(sid, "completed", 2),
            None,
            "/",
            "jambonz",
        ),
    ]


class Probe:
    """A thread sleeping ``nap`` s in a loop while the calling thread works (use as ``with``)."""

    def __init__(self, nap: float = 0.0005) -> None:
        self.nap = nap
        self.late: list[float] = []
        self.held: list[float] = []
        self.where: list[tuple[float, str]] = []
        self.target = threading.get_ident()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        clock = time.pthread_getcpuclockid(self.target)
        while not self.stop.is_set():
            t, c = time.perf_counter(), time.clock_gettime(clock)
            time.sleep(self.nap)
            late = (time.perf_counter() - t - self.nap) * 1000
            held = min(late, (time.clock_gettime(clock) - c) * 1000)
            self.late.append(late)
            self.held.append(held)
            if held > 2:
                frame = sys._current_frames().get(self.target)
                stack: list[str] = []
                while frame is not None and len(stack) < 6:
                    code = frame.f_code
                    stack.append(f"{code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}:{code.co_name}")
                    frame = frame.f_back
                self.where.append((held, " < ".join(stack)))

    def __enter__(self) -> Probe:
        self.thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop.set()
        self.thread.join()

    def report(self, name: str, verbose: bool) -> None:
        held = sorted(self.held)
        if verbose:
            count: Counter[str] = Counter(s for _, s in self.where)
            worst: dict[str, float] = {}
            for ms, stack in self.where:
                worst[stack] = max(worst.get(stack, 0.0), ms)
            for stack in sorted(count, key=lambda k: -worst[k])[:12]:
                print(f"      {count[stack]:4d} max {worst[stack]:6.1f}  {stack}")
        over2, over5 = sum(x > 2 for x in held), sum(x > 5 for x in held)
        print(
            f"{name:>40}: wakes {len(held):6d} held >2 ms {over2:5d} >5 ms {over5:4d} max {held[-1]:.2f} ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--reads", type=int, default=3)
    ap.add_argument("--views", default="calls,hooks,statuses,events")
    ap.add_argument("-v", action="store_true", help="where the reader was after each hold over 2 ms")
    args = ap.parse_args()
    extra = 2000
    rows = [r for n in range(args.calls + extra) for r in rows_of(n, 1.7e9)]
    built, more = rows[: args.calls * 7], iter(rows[args.calls * 7 :])
    no_row: tuple[object, ...] = ()
    log = EventLog()
    with Probe() as idle:
        time.sleep(1)
    idle.report("idle (no reader)", False)
    cpu = time.thread_time()
    with Probe() as probe:
        for start in range(0, len(built), 3500):
            for row in built[start : start + 3500]:
                log.record(row)
            log.catch_up(yield_between=True, whole_chunks=True)
        log.catch_up(yield_between=True)
    cpu = time.thread_time() - cpu
    probe.report(f"keeper build of {len(built):,} rows", args.v)
    print(
        f"   build CPU {cpu:.2f} s ({cpu / len(built) * 1e6:.1f} us a row); spilled rows {log.spilled_rows:,}"
    )
    with Probe() as probe:
        t = time.perf_counter()
        for _ in range(args.reads):
            for _ in range(1500):
                row = next(more, no_row)
                if row:
                    log.record(row)
            _ = log.calls, log.hooks
        each = (time.perf_counter() - t) / args.reads
    probe.report(f"{args.reads} reads of calls + hooks ({each:.3f} s)", args.v)
    for view in args.views.split(","):
        with Probe() as probe:
            t = time.perf_counter()
            for _ in range(args.reads):
                log._cache = None  # a fresh frame each time
                getattr(log, view)
            each = (time.perf_counter() - t) / args.reads
        probe.report(f"{args.reads} reads of {view} ({each:.3f} s)", args.v)


if __name__ == "__main__":
    main()
