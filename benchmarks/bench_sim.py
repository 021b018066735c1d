"""1,000 concurrent simulated calls of a 6-verb flow against our reference app (virtual clock).

The simulator and the app server share this process (and the lab's one loop
thread), so the CPU figure is both sides together. Target: <= 10 s on one core.

Run: python benchmarks/bench_sim.py [--calls N] [--concurrency C] [--sync-handlers]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jambonz_lab as jl
from jambonz_lab import sim


def reference_app(lab: jl.Lab, sync: bool) -> None:
    """say, gather → say, pause, gather → hangup: six verbs, two hooks."""
    svc = lab.service("/flow")

    def first(msg: jl.Message, session: jl.Session) -> None:
        session.say(text=f"You said {msg.transcript}").pause(length=1)
        session.gather(input=["speech"], actionHook="/second", timeout=5).reply()

    def second(msg: jl.Message, session: jl.Session) -> None:
        session.hangup().reply()

    if sync:

        @svc.on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/first", lambda m: first(m, session))
            session.on("/second", lambda m: second(m, session))
            session.say(text="Welcome").gather(input=["speech"], actionHook="/first", timeout=5).send()
    else:

        @svc.on("session:new")
        async def anew(session: jl.Session) -> None:
            async def on_first(m: jl.Message) -> None:
                first(m, session)

            async def on_second(m: jl.Message) -> None:
                second(m, session)

            session.on("/first", on_first)
            session.on("/second", on_second)
            session.say(text="Welcome").gather(input=["speech"], actionHook="/first", timeout=5).send()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=1000)
    ap.add_argument("--sync-handlers", action="store_true", help="plain-function handlers (worker threads)")
    args = ap.parse_args()
    lab = jl.start(port=0, handler_threads=64)
    reference_app(lab, args.sync_handlers)
    caller = sim.Caller.saying("a coffee please", "thanks")
    sim.load(lab.url + "/flow", calls=20, concurrency=20, caller=caller, progress=False)  # warm-up
    cpu0, t0 = time.process_time(), time.perf_counter()
    results = sim.load(
        lab.url + "/flow", calls=args.calls, concurrency=args.concurrency, caller=caller, progress=False
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    lab.stop()
    ok = sum(r.ok for r in results)
    verbs = sum(len([e for e in r.trace if e.type == "ack" and e.direction == "received"]) for r in results)
    durations = [r.duration for r in results]
    kind = "sync (worker threads)" if args.sync_handlers else "async (loop)"
    print(f"python {platform.python_version()}, {platform.machine()}, handlers: {kind}")
    print(
        f"{'calls':>6} {'conc':>5} {'ok':>5} {'wall s':>7} {'cpu s':>6} {'calls/s':>8} {'cpu ms/call':>11} "
        f"{'acks':>6} {'median call (virtual s)':>24}"
    )
    print(
        f"{args.calls:>6} {args.concurrency:>5} {ok:>5} {wall:7.2f} {cpu:6.2f} {args.calls / wall:8.0f} "
        f"{1000 * cpu / args.calls:11.2f} {verbs:>6} {statistics.median(durations):>24.1f}"
    )
    print(f"target: <= 10 s on one core -> {'met' if cpu <= 10 and wall <= 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
