"""Reference app on jambonz_lab, run as its own process by bench_server.py.

On ``session:new`` it sends a digits ``gather`` whose actionHook is
``/hook``; each ``/hook`` is answered with ``say "ok"``. It prints its port on
one stdout line, then serves until SIGTERM or SIGINT.

``--sync`` registers plain functions (run on the lab's handler thread pool)
instead of coroutines (run on the lab's loop). ``--profile PATH`` runs
cProfile on the lab's loop thread and writes its stats to PATH at exit.
"""

from __future__ import annotations

import argparse
import cProfile
import signal
import sys
from typing import Any

import jambonz_lab as jl
from jambonz_lab import loop


def register_async(svc: jl.Service) -> None:
    async def new(session: jl.Session) -> None:
        async def hook(msg: Any) -> None:
            session.say(text="ok").reply()

        session.on("/hook", hook)
        session.gather(input=["digits"], actionHook="/hook").send()

    svc.on("session:new", new)


def register_sync(svc: jl.Service) -> None:
    def new(session: jl.Session) -> None:
        def hook(msg: Any) -> None:
            session.say(text="ok").reply()

        session.on("/hook", hook)
        session.gather(input=["digits"], actionHook="/hook").send()

    svc.on("session:new", new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sync", action="store_true", help="plain-function handlers")
    parser.add_argument("--profile", metavar="PATH", help="cProfile the loop thread into PATH")
    args = parser.parse_args()
    # block before any thread starts, so that only sigwait() below sees them
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    lab = jl.start(port=0, grace=1.0)
    svc = lab.service("/bench")
    (register_sync if args.sync else register_async)(svc)
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        loop.run_sync(profiler.enable)  # cProfile only sees the thread that enables it
    print(lab.port, flush=True)
    try:
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    finally:
        if profiler is not None:
            loop.run_sync(profiler.disable)
            profiler.dump_stats(args.profile)
        lab.stop(timeout=2.0)
    sys.exit(0)


if __name__ == "__main__":
    main()
