"""Calling an app: one call, its awaitable twin, and many calls with a progress bar.

Example::

    import jambonz_lab as jl
    from jambonz_lab import sim

    result = sim.call("ws://127.0.0.1:3000/echo", caller=sim.Caller.saying("hello"))
    result.heard          # [("say", "Say something"), ("say", "You said: hello"), ...]
    result.to_dataframe()

    # a REST-originated call: the callee is busy; no session:new is ever sent
    result = sim.call(url, sim.Caller(answer=sim.DialOutcome("busy")), direction="outbound", tag={"id": 7})
    result.final_status, result.sip_status   # ("busy", 486)

Threads: the call runs on the lab's loop thread (:mod:`jambonz_lab.loop`);
``call`` waits for it from any other thread, ``acall`` is awaited from a
coroutine (a notebook cell's loop, or the lab's own).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .. import loop
from ..protocol.verbs import load_models
from . import shards
from .caller import Caller
from .clock import Clock, ClockName
from .engine import _SEEDS, Direction, SimCall, SimOptions
from .result import CallResult

__all__ = ["LoadResults", "acall", "call", "load"]

log = logging.getLogger("jambonz_lab.sim")


def _sim(
    url: str,
    caller: Caller | None,
    clock: ClockName,
    options: SimOptions | None,
    attrs: dict[str, Any],
    direction: Direction = "inbound",
    tag: Mapping[str, Any] | None = None,
) -> SimCall:
    # both sides validate verbs with the SDK's models: load them before the first frame, so that a
    # call placed right after start() does not race their (slow, first-time) import against the grace
    load_models()
    return SimCall(url, caller, Clock(clock), options, direction=direction, tag=tag, **attrs)


def call(
    url: str,
    caller: Caller | None = None,
    clock: ClockName = "virtual",
    *,
    options: SimOptions | None = None,
    timeout: float = 600.0,
    direction: Direction = "inbound",
    tag: Mapping[str, Any] | None = None,
    **call_attrs: Any,
) -> CallResult:
    """Place one simulated call to the app at ``url`` and wait for its end.

    Args:
        url: the app's ws(s):// URL, or the http(s):// calling hook of a webhook app
            (``#rc=..&rp=..`` honoured; see :mod:`jambonz_lab.sim.http_link`).
        caller: what the caller does (default: silent, hangs up at the time limit).
            On an outbound call it is the party being called: ``caller.answer``
            (a :class:`DialOutcome`) says how it answers, ``caller.number`` is the ``to``.
        clock: ``virtual`` (fast, deterministic) or ``real``.
        options: timeouts and auth (:class:`SimOptions`).
        timeout: real seconds to wait for the call to end.
        direction: ``inbound`` (a call to the app's number: ``session:new`` first), or
            ``outbound``: a REST-originated call (createCall) — ``call:status`` trying →
            ringing/early-media → in-progress arrive first, without a top-level
            ``call_sid``; ``session:new`` only after the callee answered, and never if
            it is busy / does not answer / fails (protocol doc §2.2, §2.7). The app's
            commands act from the first ``call:status`` on: while it rings,
            ``call:status no-answer`` or a ``redirect`` cancels it (487); on the
            virtual clock ringing waits ``options.ring_wait`` real seconds for them.
        tag: outbound only: the createCall ``tag``, sent as ``customerData``.
        **call_attrs: override payload fields (``call_sid``, ``to``, ``from_``,
            ``env_vars``, ``sip_headers`` (inbound), ``ring_timeout`` (outbound:
            createCall's ``timeout``, default 60 s of ringing), …); for an http(s) app
            ``status_hook`` (or ``call_status_hook``: the URL that gets each call status; none
            by default, so none are sent) and ``method`` (the calling hook's, ``POST`` or ``GET``).
    """
    sim = _sim(url, caller, clock, options, call_attrs, direction, tag)
    return loop.submit(sim.run()).result(timeout)


async def acall(
    url: str,
    caller: Caller | None = None,
    clock: ClockName = "virtual",
    *,
    options: SimOptions | None = None,
    direction: Direction = "inbound",
    tag: Mapping[str, Any] | None = None,
    **call_attrs: Any,
) -> CallResult:
    """The awaitable twin of :func:`call` (same ``direction``, ``tag`` and call attributes)."""
    sim = _sim(url, caller, clock, options, call_attrs, direction, tag)
    if loop.in_loop_thread():
        return await sim.run()
    return await asyncio.wrap_future(loop.submit(sim.run()))


def load(
    url: str,
    calls: int = 10,
    concurrency: int = 10,
    caller: Caller | None = None,
    clock: ClockName = "virtual",
    *,
    options: SimOptions | None = None,
    progress: bool = True,
    direction: Direction = "inbound",
    tag: Mapping[str, Any] | None = None,
    processes: int = 1,
    client: Any = None,
) -> LoadResults:
    """Place ``calls`` calls, ``concurrency`` at a time; results in call order.

    A tqdm progress bar shows completed calls (``progress=False`` to hide it).
    ``direction="outbound"`` (with an optional ``tag``) makes them REST-originated
    calls, as in :func:`call`.

    Call ``i`` runs with seed ``options.seed + i`` (without a seed: the next numbers of the
    simulator's own counter), whoever runs it; ``result.seed`` says which.

    Args:
        processes: run the calls in this many processes (forked from a fresh forkserver, or
            spawned; each with its own loop: see :mod:`jambonz_lab.sim.shards`), ``concurrency``
            shared out among them. In a script, guard the call with
            ``if __name__ == "__main__":`` (the processes import it again).
        client: a ``distributed.Client``: run the shards as tasks on its Dask cluster instead,
            one per worker thread (``pip install 'jambonz-lab[scale]'``).

    A shard that fails (an exception, a process that died) is logged as one line on the
    ``jambonz_lab.sim`` logger; its calls have no result, the other shards' are kept
    (``results.failures`` lists the failed shards). In the lab's own loop (one process, no
    client) an exception in a call is raised here, as it always was.
    """
    if calls < 0 or concurrency < 1:
        raise ValueError("calls must be >= 0 and concurrency >= 1")
    if processes < 1:
        raise ValueError(f"processes must be >= 1, not {processes}")
    if client is not None and processes != 1:
        raise ValueError("give processes or a Dask client, not both")
    # what SimCall would refuse in every shard: refused here, once
    if direction not in ("inbound", "outbound"):
        raise ValueError(f"direction must be 'inbound' or 'outbound', not {direction!r}")
    if tag is not None and direction != "outbound":
        raise ValueError("tag is the REST createCall tag: only for direction='outbound'")
    if not calls:
        return LoadResults()
    from tqdm.auto import tqdm

    base = options or SimOptions()
    seeds: Iterable[int] = (
        range(base.seed, base.seed + calls) if base.seed is not None else [next(_SEEDS) for _ in range(calls)]
    )
    common: dict[str, Any] = {
        "caller": caller,
        "clock": clock,
        "options": options,
        "direction": direction,
        "tag": None if tag is None else dict(tag),
    }
    if client is not None:
        _needs_distributed()
        count = max(1, sum(client.nthreads().values()))
    else:
        count = processes
    if calls:
        load_models()  # before the first frame (see _sim): also checks the caller's verbs import
    plan = shards.plan(url, calls, concurrency, count, seeds, **common)
    done = dict.fromkeys(range(len(plan)), 0)  # by shard; read by this thread, which draws the bar

    def seen(k: int, n: int) -> None:
        done[k] = n

    with tqdm(total=calls, desc="calls", disable=not progress) as bar:

        def tick() -> None:
            bar.update(sum(done.values()) - bar.n)

        if client is not None:
            by_shard, failures = shards.run_dask(client, plan, _ticking(seen, tick))
        elif processes > 1:
            by_shard, failures = shards.run_processes(plan, _ticking(seen, tick))
        else:
            future = loop.submit(shards.run_calls(plan[0], lambda n: seen(0, n)))
            while True:
                try:
                    by_shard, failures = {0: future.result(0.1)}, []
                    break
                except TimeoutError:
                    tick()
        tick()
    for failure in failures:
        log.warning("sim.load: %s", failure)
    return LoadResults(
        (result for shard in plan for result in by_shard.get(shard.index, [])), failures=failures
    )


def _ticking(seen: shards.Progress, tick: Callable[[], None]) -> shards.Progress:
    def both(k: int, n: int) -> None:
        seen(k, n)
        tick()

    return both


def _needs_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ImportError(
            "sim.load(client=...) needs dask.distributed: pip install 'jambonz-lab[scale]'"
        ) from None


class LoadResults(list[CallResult]):
    """What :func:`load` returns: the calls' results in call order (a list), and
    ``failures``: the shards that brought none back (:class:`~jambonz_lab.sim.shards.ShardFailure`)."""

    def __init__(
        self, results: Iterable[CallResult] = (), failures: Iterable[shards.ShardFailure] = ()
    ) -> None:
        super().__init__(results)
        self.failures = list(failures)

    def __repr__(self) -> str:
        """One line, not one per call: ``<LoadResults 500 call(s): completed 498, failed 2>``.

        The calls are the list's items (``results[0]``, ``[r.final_status for r in results]``).
        """
        statuses = Counter(result.final_status or "no status" for result in self)
        counts = ", ".join(f"{status} {n}" for status, n in sorted(statuses.items()))
        failed = f"; {len(self.failures)} shard(s) failed" if self.failures else ""
        return f"<LoadResults {len(self)} call(s){': ' + counts if counts else ''}{failed}>"
