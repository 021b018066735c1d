"""Calling an app: one call, its awaitable twin, and many calls with a progress bar.

Example::

    import jambonz_lab as jl
    from jambonz_lab import sim

    result = sim.call("ws://127.0.0.1:3000/echo", caller=sim.Caller.saying("hello"))
    result.heard          # [("say", "Say something"), ("say", "You said: hello"), ...]
    result.to_dataframe()

Threads: the call runs on the lab's loop thread (:mod:`jambonz_lab.loop`);
``call`` waits for it from any other thread, ``acall`` is awaited from a
coroutine (a notebook cell's loop, or the lab's own).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .. import loop
from .caller import Caller
from .clock import Clock, ClockName
from .engine import SimCall, SimOptions
from .result import CallResult

__all__ = ["acall", "call", "load"]


def _sim(
    url: str, caller: Caller | None, clock: ClockName, options: SimOptions | None, attrs: dict[str, Any]
) -> SimCall:
    return SimCall(url, caller, Clock(clock), options, **attrs)


def call(
    url: str,
    caller: Caller | None = None,
    clock: ClockName = "virtual",
    *,
    options: SimOptions | None = None,
    timeout: float = 600.0,
    **call_attrs: Any,
) -> CallResult:
    """Place one simulated inbound call to the app at ``url`` and wait for its end.

    Args:
        url: the app's ws:// URL (``#rc=..&rp=..`` honoured).
        caller: what the caller does (default: silent, hangs up at the time limit).
        clock: ``virtual`` (fast, deterministic) or ``real``.
        options: timeouts and auth (:class:`SimOptions`).
        **call_attrs: override payload fields (``call_sid``, ``to``, ``env_vars``,
            ``sip_headers``, …).
    """
    sim = _sim(url, caller, clock, options, call_attrs)
    return loop.submit(sim.run()).result(timeout)


async def acall(
    url: str,
    caller: Caller | None = None,
    clock: ClockName = "virtual",
    *,
    options: SimOptions | None = None,
    **call_attrs: Any,
) -> CallResult:
    """The awaitable twin of :func:`call`."""
    sim = _sim(url, caller, clock, options, call_attrs)
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
) -> list[CallResult]:
    """Place ``calls`` calls, ``concurrency`` at a time; results in call order.

    A tqdm progress bar shows completed calls (``progress=False`` to hide it).
    """
    if calls < 0 or concurrency < 1:
        raise ValueError("calls must be >= 0 and concurrency >= 1")
    from tqdm.auto import tqdm

    done = [0]  # written on the loop thread, read here: the bar is drawn by this thread only

    async def run_all() -> list[CallResult]:
        gate = asyncio.Semaphore(concurrency)
        base = vars(options or SimOptions())

        async def one(i: int) -> CallResult:
            async with gate:
                seeded = SimOptions(**{**base, "seed": (base["seed"] or 0) + i})
                result = await _sim(url, caller, clock, seeded, {}).run()
            done[0] += 1
            return result

        return list(await asyncio.gather(*(one(i) for i in range(calls))))

    future = loop.submit(run_all())
    with tqdm(total=calls, desc="calls", disable=not progress) as bar:
        while True:
            try:
                results = future.result(0.1)
            except TimeoutError:
                bar.update(done[0] - bar.n)
                continue
            bar.update(calls - bar.n)
            return results
