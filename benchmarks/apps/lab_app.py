"""Reference app on jambonz_lab, run as its own process by bench_server.py.

On ``session:new`` it sends a digits ``gather`` whose actionHook is
``/hook``; each ``/hook`` is answered with one ``say`` built from the hook's
payload: ``You pressed {digits}``. It prints its port on one stdout line, then
serves until SIGTERM or SIGINT.

``--sync`` registers plain functions (run on the lab's handler thread pool)
instead of coroutines (run on the lab's loop). ``--profile PATH`` runs
cProfile on the lab's loop thread and on every handler thread: at exit the loop
thread's stats go to PATH and the handler threads' (merged) to
``PATH.workers``. ``--profile-clock cpu`` makes cProfile count each thread's
CPU time (``time.thread_time``) instead of wall time, so that time blocked in a
hand-off does not count.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import jambonz_lab as jl
from jambonz_lab import loop
from jambonz_lab.protocol.verbs import load_models


def register_async(svc: jl.Service) -> None:
    async def new(session: jl.Session) -> None:
        async def hook(msg: Any) -> None:
            session.say(text=f"You pressed {msg.digits}").reply()

        session.on("/hook", hook)
        session.gather(input=["digits"], actionHook="/hook").send()

    svc.on("session:new", new)


def register_sync(svc: jl.Service) -> None:
    def new(session: jl.Session) -> None:
        def hook(msg: Any) -> None:
            session.say(text=f"You pressed {msg.digits}").reply()

        session.on("/hook", hook)
        session.gather(input=["digits"], actionHook="/hook").send()

    svc.on("session:new", new)


HANDLER_THREAD_PREFIX = "jambonz-lab-handler"


def new_profiler(clock: str) -> cProfile.Profile:
    return cProfile.Profile(time.thread_time) if clock == "cpu" else cProfile.Profile()


class HandlerThreadProfiles:
    """cProfile on every handler thread the lab starts after :meth:`install`.

    ``threading.setprofile`` runs :meth:`_start` as the first profile event of
    each new thread; there a thread of the handler pool enables a profiler of
    its own (which replaces the hook on that thread), any other thread drops
    the hook.
    """

    def __init__(self, clock: str) -> None:
        self.clock = clock
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def install(self) -> None:
        threading.setprofile(self._start)

    def _start(self, frame: FrameType, event: str, arg: Any) -> None:
        if not threading.current_thread().name.startswith(HANDLER_THREAD_PREFIX):
            sys.setprofile(None)
            return
        profiler = new_profiler(self.clock)
        with self._lock:
            self.profiles.append(profiler)
        profiler.enable()

    def dump(self, path: str) -> int:
        """Merge the threads' stats into ``path``; returns how many threads were profiled.

        Call it while the threads are idle: a profiler is read, not disabled,
        since only its own thread could disable it.
        """
        threading.setprofile(None)  # type: ignore[arg-type]
        with self._lock:
            profiles = list(self.profiles)
        if profiles:
            pstats.Stats(*(_Snapshot(p) for p in profiles)).dump_stats(path)
        return len(profiles)


class _Snapshot:
    """What ``pstats.Stats`` loads from: the stats of a profiler still enabled on another thread."""

    def __init__(self, profiler: cProfile.Profile) -> None:
        profiler.snapshot_stats()  # type: ignore[attr-defined]
        self.stats = profiler.stats  # type: ignore[attr-defined]

    def create_stats(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sync", action="store_true", help="plain-function handlers")
    parser.add_argument(
        "--profile", metavar="PATH", help="cProfile the loop thread into PATH, handler threads into *.workers"
    )
    parser.add_argument(
        "--profile-clock", choices=("wall", "cpu"), default="wall", help="what cProfile counts (wall)"
    )
    args = parser.parse_args()
    # block before any thread starts, so that only sigwait() below sees them
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    workers = HandlerThreadProfiles(args.profile_clock) if args.profile else None
    if workers is not None:
        workers.install()  # before any handler thread starts (the pool starts them on demand)
    load_models()  # before the port is printed: the warm-up must not meet a cold SDK import
    lab = jl.start(port=0, grace=1.0)
    svc = lab.service("/bench")
    (register_sync if args.sync else register_async)(svc)
    profiler = new_profiler(args.profile_clock) if args.profile else None
    if profiler is not None:
        loop.run_sync(profiler.enable)  # cProfile only sees the thread that enables it
    print(lab.port, flush=True)
    try:
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    finally:
        if profiler is not None and workers is not None:
            loop.run_sync(profiler.disable)
            profiler.dump_stats(args.profile)
            workers.dump(args.profile + ".workers")
        lab.stop(timeout=2.0)
    sys.exit(0)


if __name__ == "__main__":
    main()
