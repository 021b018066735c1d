"""A load split into shards: each shard runs some of the load's calls on an asyncio loop of its own.

:func:`jambonz_lab.sim.load` cuts its calls into contiguous shards (:func:`plan`) and runs them on
the lab's loop (one shard), in processes (:func:`run_processes`, the ``spawn`` context: a process
never forks the lab's loop thread) or on Dask workers (:func:`run_dask`); the results are merged
back in call order.

* Seeds: call ``i`` of the load has the same seed whichever shard runs it (``options.seed + i``;
  without a seed, numbers reserved in the parent from the simulator's own counter), so a load's
  callers behave the same whatever the shard count. A call's sid is random (``SimCall.ids``),
  never derived from the seed: no two shards make the same sid.
* Clocks: each call keeps its own call clock (seconds from its start); ``TraceEntry.ts`` is
  ``time.time()`` in whatever process ran it, comparable across processes of one machine (and
  across machines as far as their clocks agree).
* Progress: a shard reports how many of its calls ended, at most every :data:`REPORT_EVERY`
  seconds and at its end; the parent sums them.
* Failures: a shard that raises (or whose process dies) is reported as one line, ``shard k
  (calls a-b): what``; the other shards' results are kept.

Rows: a lab in the parent process records its rows itself. Its call-time stamps
(:mod:`jambonz_lab.callclocks`) only know the calls simulated in its own process, so the rows of
calls that a shard process (or a Dask worker) simulated carry wall time only (``call_t`` None).
"""

from __future__ import annotations

import asyncio
import inspect
import io
import itertools
import multiprocessing
import pickle
import queue as queue_mod
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..protocol.verbs import load_models
from .caller import Caller
from .clock import Clock, ClockName
from .engine import Direction, SimCall, SimOptions
from .result import CallResult

__all__ = [
    "PRELOAD",
    "REPORT_EVERY",
    "Progress",
    "Shard",
    "ShardFailure",
    "plan",
    "process_main",
    "run_calls",
    "run_dask",
    "run_processes",
    "run_shard",
]

#: the most often (real seconds) a shard reports its progress
REPORT_EVERY = 0.1

#: what the forkserver imports once, before it forks shard processes (the verb models are the
#: slow part of a simulator's start: see jambonz_lab.protocol.verbs.load_models)
PRELOAD = ["__main__", "jambonz_lab.sim.shards", "jambonz_sdk.verb_registry", "jambonz_sdk._models._registry"]

#: called with (shard index, calls of that shard ended so far)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Shard:
    """Some calls of a load: their indices in the load, their seeds, and what each call is."""

    index: int
    url: str
    calls: tuple[int, ...]
    seeds: tuple[int, ...]
    concurrency: int
    caller: Caller | None = None
    clock: ClockName = "virtual"
    options: SimOptions | None = None
    direction: Direction = "inbound"
    tag: Mapping[str, Any] | None = None

    @property
    def span(self) -> str:
        """``calls a-b`` (the load's call indices this shard runs)."""
        if not self.calls:
            return "no calls"
        return f"calls {self.calls[0]}-{self.calls[-1]}"


@dataclass(frozen=True)
class ShardFailure:
    """A shard that did not bring its results back: which one, and what happened."""

    shard: int
    calls: tuple[int, ...]
    what: str
    span: str = field(default="")

    def __str__(self) -> str:
        return f"shard {self.shard} ({self.span}): {self.what}"


def plan(
    url: str,
    calls: int,
    concurrency: int,
    shards: int,
    seeds: Iterable[int],
    **common: Any,
) -> list[Shard]:
    """Cut ``calls`` calls into at most ``shards`` contiguous shards (none empty); ``concurrency``
    is the load's total, shared out among them (at least 1 each); ``seeds`` gives call i's seed."""
    seed_list = list(itertools.islice(seeds, calls))
    if len(seed_list) != calls:
        raise ValueError(f"{calls} calls need {calls} seeds, got {len(seed_list)}")
    count = max(1, min(shards, calls))
    out = []
    for k in range(count):
        lo, hi = calls * k // count, calls * (k + 1) // count
        share = concurrency * (k + 1) // count - concurrency * k // count
        out.append(
            Shard(
                k,
                url,
                tuple(range(lo, hi)),
                tuple(seed_list[lo:hi]),
                max(1, share),
                **common,
            )
        )
    return out


async def run_calls(shard: Shard, report: Callable[[int], None]) -> list[CallResult]:
    """Run the shard's calls on the running loop, ``shard.concurrency`` at a time; results in order.

    ``report(n)`` is called on this loop each time a call ends (``n``: calls ended so far).
    Each result's ``seed`` is the seed its call ran with.
    """
    load_models()  # before the first frame (sim.api._sim): the first import is slow
    gate = asyncio.Semaphore(shard.concurrency)
    base = vars(shard.options or SimOptions())
    done = 0

    async def one(seed: int) -> CallResult:
        nonlocal done
        async with gate:
            options = SimOptions(**{**base, "seed": seed})
            sim = SimCall(
                shard.url, shard.caller, Clock(shard.clock), options, direction=shard.direction, tag=shard.tag
            )
            result = await sim.run()
        result.seed = seed
        done += 1
        report(done)
        return result

    return list(await asyncio.gather(*(one(seed) for seed in shard.seeds)))


class _Throttle:
    """Passes a shard's progress on at most every REPORT_EVERY seconds (and always at the end)."""

    def __init__(self, total: int, send: Callable[[int], None]) -> None:
        self.total, self.send = total, send
        self.last = 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if done == self.total or now - self.last >= REPORT_EVERY:
            self.last = now
            self.send(done)


def run_shard(shard: Shard, report: Callable[[int], None] | None = None) -> list[CallResult]:
    """Run a shard on a new loop in this thread (a shard process, a Dask worker's task thread)."""
    throttle = _Throttle(len(shard.calls), report or (lambda done: None))
    return asyncio.run(run_calls(shard, throttle))


def describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def process_main(shard: Shard, out: Any) -> None:
    """A shard process: run the shard, put ``(kind, shard, value)`` messages on ``out``:
    ``progress`` (calls ended), then ``done`` (the results, pickled here: a result that cannot be
    pickled is this shard's error, not a message the queue drops) or ``error`` (one line)."""
    try:
        results = run_shard(shard, lambda done: out.put(("progress", shard.index, done)))
        pickled = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which keeps the others
        out.put(("error", shard.index, describe(exc)))
        return
    out.put(("done", shard.index, pickled))


def run_processes(
    shards: list[Shard],
    progress: Progress,
    *,
    target: Callable[[Shard, Any], None] = process_main,
    context: str | None = None,
) -> tuple[dict[int, list[CallResult]], list[ShardFailure]]:
    """Run each shard in a process of its own; results by shard, and the shards that failed.

    ``target`` is what each process runs (a top-level function, as :func:`process_main`).
    ``context`` is ``forkserver`` (the default where there is one: a server process, started
    once, fresh (it has no loop thread), with the simulator and the SDK's verb models imported
    (:data:`PRELOAD`), forks each shard from itself, so a shard starts in milliseconds, not
    seconds) or ``spawn``; never ``fork``, which would copy the lab's loop thread's locks mid-use.
    """
    if context is None:
        context = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    if context == "spawn":
        ctx: Any = multiprocessing.get_context("spawn")
    elif context == "forkserver":
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)  # no effect once its server runs (since the first load)
    else:
        raise ValueError(f"context must be 'spawn' or 'forkserver', not {context!r}")
    _check_shippable(shards[:1])
    out = ctx.Queue()
    procs = {s.index: ctx.Process(target=target, args=(s, out), daemon=True) for s in shards}
    by_index = {s.index: s for s in shards}
    results: dict[int, list[CallResult]] = {}
    failures: dict[int, ShardFailure] = {}
    finished = False
    dead: dict[int, int] = {}  # shard -> polls since its process was seen dead without a word
    try:
        for proc in procs.values():
            proc.start()
        while len(results) + len(failures) < len(shards):
            try:
                kind, k, value = out.get(timeout=REPORT_EVERY)
            except queue_mod.Empty:
                for k, proc in procs.items():
                    if k in results or k in failures or proc.exitcode is None:
                        continue
                    dead[k] = dead.get(k, 0) + 1
                    if dead[k] > 3:  # its last words had time to come through the pipe
                        failures[k] = _failure(by_index[k], f"process exited with code {proc.exitcode}")
                continue
            if kind == "progress":
                progress(k, value)
            elif kind == "done":
                try:
                    results[k] = pickle.loads(value)
                except Exception as exc:  # noqa: BLE001 - e.g. a class this process cannot import
                    failures[k] = _failure(by_index[k], f"results unreadable here: {describe(exc)}")
                    continue
                progress(k, len(results[k]))
            else:
                failures[k] = _failure(by_index[k], value)
        finished = True
    finally:
        for proc in procs.values():
            if proc.pid is None:  # never started (an earlier start raised): nothing to stop
                continue
            proc.join(timeout=5 if finished else 0)  # interrupted (Ctrl-C): stop them now
            if proc.is_alive():
                proc.terminate()
                proc.join()
        out.close()
    return results, sorted(failures.values(), key=lambda f: f.shard)


class _NotebookNames(pickle.Pickler):
    """Pickles to nowhere, noting the first class or function defined in ``__main__`` it meets."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), pickle.HIGHEST_PROTOCOL)
        self.found: str | None = None

    def persistent_id(self, obj: Any) -> None:
        if self.found is None:
            owner = obj if isinstance(obj, type) or inspect.isroutine(obj) else type(obj)
            if getattr(owner, "__module__", None) == "__main__":
                self.found = getattr(owner, "__qualname__", repr(owner))
        return None


def _check_shippable(shards: list[Shard]) -> None:
    """Refuse, in one line, shards another process cannot rebuild: what does not pickle, and
    classes defined in a notebook (``__main__`` without a file: a shard process cannot import
    them, and would die before its first call)."""
    finder = _NotebookNames()
    try:
        finder.dump(shards)
    except Exception as exc:  # noqa: BLE001 - said in one line
        problem: str | None = describe(exc)
    else:
        problem = None
    notebook = getattr(sys.modules.get("__main__"), "__file__", None) is None
    if finder.found is not None and notebook:
        raise ValueError(
            f"{finder.found} is defined in this notebook and shard processes cannot import it: "
            "define it in a module, or use client= (Dask ships it by value)"
        )
    if problem is not None:
        raise ValueError(
            f"a load in processes sends its caller, options and tag to them, and they must pickle: {problem}"
        )


def _failure(shard: Shard, what: str) -> ShardFailure:
    return ShardFailure(shard.index, shard.calls, what, shard.span)


def _queue_class() -> Any:
    """distributed.Queue (an untyped class: its calls are Any here)."""
    from distributed import Queue

    return Queue


def dask_main(shard: Shard, queue_name: str) -> list[CallResult]:
    """A shard as a Dask task: run it on a new loop in the worker's task thread; progress goes to
    the distributed queue ``queue_name`` as ``(shard, calls ended)``."""
    progress = _queue_class()(queue_name)
    return run_shard(shard, lambda done: progress.put((shard.index, done)))


def run_dask(
    client: Any, shards: list[Shard], progress: Progress
) -> tuple[dict[int, list[CallResult]], list[ShardFailure]]:
    """Run each shard as a task on the Dask cluster behind ``client``; results by shard, and the
    shards that failed."""
    run = uuid.uuid4().hex[:12]
    updates = _queue_class()(f"jambonz-lab-load-{run}", client=client)
    futures = {
        s.index: client.submit(
            dask_main, s, updates.name, key=f"jambonz-lab-shard-{run}-{s.index}", pure=False
        )
        for s in shards
    }
    by_index = {s.index: s for s in shards}
    results: dict[int, list[CallResult]] = {}
    failures: list[ShardFailure] = []
    try:
        while futures:
            for k, done in updates.get(batch=True):
                progress(k, done)
            for k, future in list(futures.items()):
                if not future.done():
                    continue
                del futures[k]
                if future.status == "finished":
                    results[k] = future.result()
                    progress(k, len(results[k]))
                else:
                    exc = future.exception()
                    failures.append(_failure(by_index[k], describe(exc) if exc else future.status))
            if futures:
                time.sleep(REPORT_EVERY)
    finally:
        for future in futures.values():
            future.cancel()
        updates.close()
    return results, sorted(failures, key=lambda f: f.shard)
