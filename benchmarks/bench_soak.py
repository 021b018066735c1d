"""Soak: RSS and view times of a lab after 10 k and 100 k calls, and what a view rebuild adds to acks.

The lab runs in this process; a light load generator (raw WebSocket frames, shaped like
jambonz's: session:new, call:status, a verb:hook, completed) runs in a child process so
the lab's RSS is its own. Each call: session:new → ack (say + gather), trying, in-progress,
verb:hook → ack (hangup), completed, close 1000. Ack latency is measured by the generator.

Run: python benchmarks/bench_soak.py [--calls 10000 100000] [--concurrency 50]
     [--ack-calls 2000] [--rounds 1] [--keep-sessions N]

Prints a table; nothing is asserted (timings live here, not in tests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import multiprocessing as mp
import resource
import statistics
import threading
import time
from typing import Any

import jambonz_lab as jl


def _rss_mib(trim: bool = False) -> float:
    """This process's resident set; ``trim`` first hands freed heap back to the OS (glibc), so the
    figure is what is live rather than what a past peak left mapped."""
    if trim:
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data(sid: str, n: int) -> dict[str, Any]:
    return {
        "call_sid": sid,
        "direction": "inbound",
        "from": f"+1415555{n % 10000:04d}",
        "to": "+16175550199",
        "call_status": "trying",
        "sip_status": 100,
        "caller_name": "soak",
        "account_sid": "a" * 36,
        "application_sid": "b" * 36,
        "sip": {"headers": {f"X-Header-{i}": "v" * 40 for i in range(20)}},
        "env_vars": {},
    }


def _status(sid: str, status: str, k: int) -> str:
    """The soak call's ``k``-th ``call:status`` frame."""
    data = {
        "call_sid": sid,
        "call_status": status,
        "sip_status": 200,
        "duration": 3 if status == "completed" else None,
    }
    return json.dumps({"type": "call:status", "msgid": f"{sid}-s{k}", "call_sid": sid, "data": data})


async def _call(url: str, n: int, lat: list[float]) -> None:
    import websockets

    sid = f"soak-{n:07d}"
    async with websockets.connect(url, subprotocols=["ws.jambonz.org"]) as ws:  # type: ignore[list-item]

        async def ask(msg: dict[str, Any]) -> None:
            t = time.perf_counter()
            await ws.send(json.dumps(msg))
            while json.loads(await ws.recv()).get("msgid") != msg["msgid"]:
                pass
            lat.append((time.perf_counter() - t) * 1000)

        await ask({"type": "session:new", "msgid": f"{sid}-n", "call_sid": sid, "data": _data(sid, n)})
        await ws.send(_status(sid, "trying", 0))
        await ws.send(_status(sid, "in-progress", 1))
        speech = {"alternatives": [{"transcript": "a coffee please", "confidence": 0.9}]}
        hook = {"call_sid": sid, "reason": "speechDetected", "speech": speech}
        await ask({"type": "verb:hook", "msgid": f"{sid}-h", "call_sid": sid, "hook": "/g", "data": hook})
        await ws.send(_status(sid, "completed", 2))
        await ws.close(1000)


async def _load(url: str, first: int, calls: int, concurrency: int) -> list[float]:
    lat: list[float] = []
    todo = iter(range(first, first + calls))

    async def worker() -> None:
        for n in todo:
            await _call(url, n, lat)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat


def _generator(url: str, first: int, calls: int, concurrency: int, out: Any) -> None:
    out.put(asyncio.run(_load(url, first, calls, concurrency)))


def _run(url: str, first: int, calls: int, concurrency: int) -> tuple[float, list[float]]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    t = time.perf_counter()
    p = ctx.Process(target=_generator, args=(url, first, calls, concurrency, q))
    p.start()
    lat = q.get()
    p.join()
    return time.perf_counter() - t, lat


def _app(lab: jl.Lab) -> None:
    @lab.service("/").on("session:new")
    async def new(session: jl.Session) -> None:
        async def heard(msg: jl.Message) -> None:
            session.say(text="thanks").hangup().reply()

        session.on("/g", heard)
        session.say(text="Welcome").gather(input=["speech"], actionHook="/g").send()


def _settle(lab: jl.Lab, calls: int) -> None:
    """Wait for the last rows (the generator has closed; the server may still record)."""
    deadline = time.monotonic() + 30
    while len(lab.sessions) > lab.options.keep_sessions and time.monotonic() < deadline:
        time.sleep(0.1)
    lab.log.catch_up()


class _GcTimer:
    """Times every garbage collection (``gc.callbacks``), per generation: a collection holds the
    GIL throughout, so a full one stalls every ack in flight."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._t = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._t) * 1000)

    def report(self) -> None:
        print(f"\n{'collections':>11} {'count':>6} {'total s':>8} {'median ms':>10} {'max ms':>8}")
        for gen, xs in self.pauses.items():
            med = statistics.median(xs) if xs else float("nan")
            top = max(xs, default=0.0)
            print(f"{'gen ' + str(gen):>11} {len(xs):>6} {sum(xs) / 1000:8.2f} {med:10.2f} {top:8.2f}")


def _pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--ack-calls", type=int, default=2000, help="calls per ack phase")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of a phase without and one with a reader")
    ap.add_argument("--keep-sessions", type=int, default=None, help="ended sessions kept (start()'s default)")
    args = ap.parse_args()
    retention = {} if args.keep_sessions is None else {"keep_sessions": args.keep_sessions}
    lab = jl.start(port=0, grace=1.0, **retention)
    _app(lab)
    rss0 = _rss_mib(trim=True)
    timer = _GcTimer()
    gc.callbacks.append(timer)
    print(f"RSS at start: {rss0:.0f} MiB")
    header = (
        f"{'calls':>7} {'wall s':>7} {'RSS MiB':>8} {'trimmed':>8} {'MiB/1k calls':>12} {'spilled rows':>12} "
        f"{'sessions':>8} {'calls s':>8} {'events s':>9} {'hooks s':>8} {'statuses s':>10}"
    )
    print(header)
    done, marks = 0, []
    for target in sorted(args.calls):
        wall, _ = _run(lab.url + "/", done, target - done, args.concurrency)
        done = target
        _settle(lab, done)
        raw = _rss_mib()
        rss = _rss_mib(trim=True)
        marks.append((done, rss))
        times = []
        for view in ("calls", "events", "hooks", "statuses"):
            lab.log._cache = None  # a fresh build of the whole frame (the calls aggregate is kept up)
            t = time.perf_counter()
            frame = getattr(lab, view)
            times.append(time.perf_counter() - t)
            if view == "calls":
                assert len(frame) == done, (len(frame), done)
            del frame
        per_k = (rss - rss0) / (done / 1000)
        print(
            f"{done:>7} {wall:7.1f} {raw:8.0f} {rss:8.0f} {per_k:12.2f} {lab.log.spilled_rows:>12} "
            f"{len(lab.sessions):>8} {times[0]:8.2f} {times[1]:9.2f} {times[2]:8.2f} {times[3]:10.2f}"
        )
    if len(marks) > 1:
        (c0, r0), (c1, r1) = marks[0], marks[-1]
        print(f"steady state: {(r1 - r0) / ((c1 - c0) / 1000):.2f} MiB per 1,000 calls between {c0} and {c1}")
    # acks with and without a reader rebuilding the views in another thread: a warm-up load (the
    # generator's first calls are slow to start), then rounds of a quiet and a busy load, pooled
    n = args.ack_calls
    _run(lab.url + "/", done, 200, args.concurrency)
    done += 200
    quiet: list[float] = []
    busy: list[float] = []
    builds: list[float] = []
    for _ in range(args.rounds):
        _, lat = _run(lab.url + "/", done, n, args.concurrency)
        quiet += lat
        done += n
        stop = threading.Event()

        def reader(stop: threading.Event = stop) -> None:
            while not stop.is_set():
                t = time.perf_counter()
                _ = lab.calls, lab.hooks
                builds.append(time.perf_counter() - t)

        th = threading.Thread(target=reader)
        th.start()
        _, lat = _run(lab.url + "/", done, n, args.concurrency)
        busy += lat
        done += n
        stop.set()
        th.join()
    print(
        f"\nack latency, {args.rounds} round(s) of {n} calls without and {n} with a reader, "
        f"concurrency {args.concurrency} (ms, generator side):"
    )
    print(f"{'':>24} {'median':>7} {'p99':>7} {'p99.9':>7} {'max':>7}")
    reads = f"reader ({len(builds)} builds)"
    for name, xs in (("no reader", quiet), (reads, busy)):
        tail = f"{_pct(xs, 0.99):7.2f} {_pct(xs, 0.999):7.2f} {max(xs):7.2f}"
        print(f"{name:>24} {statistics.median(xs):7.2f} {tail}")
    if builds:
        print(f"a build of lab.calls + lab.hooks: median {statistics.median(builds):.3f} s")
    gc.callbacks.remove(timer)
    timer.report()  # the whole run, _rss_mib's own gc.collect() calls included
    lab.stop()


if __name__ == "__main__":
    main()
