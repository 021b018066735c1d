"""``lab.turns`` at scale: the turns of 1 k and 10 k calls, built from an event log.

One real call (a lab service called by the simulator: a greeting, three speech turns, a timeout and a
goodbye) is recorded, then its rows are copied with new call sids into a fresh event log, as many
times as asked. The table gives the time of the first ``lab.events`` (the log's view, built once
and then cached) and of ``turns(events)`` on top of it (the median of ``--repeat`` runs).

Run: python benchmarks/bench_turns.py [--calls 1000 10000] [--repeat 3]

Prints a table; nothing is asserted (timings live here, not in tests).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.lab.events import EventLog
from jambonz_lab.lab.turns import turns


def one_call() -> list[jl.records.Row]:
    lab = jl.start()
    svc = lab.service("/bench")

    @svc.on("session:new")
    def new(session: jl.Session) -> None:
        @session.on("/heard")
        def heard(msg: jl.Message) -> None:
            if msg.data.get("reason") == "timeout":
                session.say(text="Goodbye").hangup().reply()
                return
            session.gather(input=["speech"], actionHook="/heard", say={"text": f"You said {msg.transcript}"})
            session.reply()

        session.gather(input=["speech"], actionHook="/heard", say={"text": "Hello"}).send()

    lab.call("/bench", sim.Caller.saying("one", "two", "three"))
    rows = lab.log.select()
    lab.stop()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    template = [r for r in one_call() if r.call_sid]
    sid = template[0].call_sid
    print(f"{'calls':>7} {'rows':>9} {'events s':>9} {'turns s':>8} {'turns':>7}")  # events: first build
    for n in args.calls:
        log = EventLog(memory_rows=10**8)
        for i in range(n):
            new = str(uuid.UUID(int=i + 1))
            shift = i * 0.001
            for row in template:
                payload = row.payload.replace(str(sid), new) if row.payload else row.payload
                log.record(row._replace(call_sid=new, payload=payload, ts=row.ts + shift))
        t_events, t_turns = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            events = log.events
            t1 = time.perf_counter()
            table = turns(events)
            t2 = time.perf_counter()
            t_events.append(t1 - t0)
            t_turns.append(t2 - t1)
        print(
            f"{n:>7} {len(events):>9} {t_events[0]:>9.2f} {statistics.median(t_turns):>8.2f} {len(table):>7}"
        )
        log.stop_keeper()


if __name__ == "__main__":
    main()
