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
from collections.abc import Mapping
from typing import Any

from .. import loop
from ..protocol.verbs import load_models
from .caller import Caller
from .clock import Clock, ClockName
from .engine import Direction, SimCall, SimOptions
from .result import CallResult

__all__ = ["acall", "call", "load"]


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
) -> list[CallResult]:
    """Place ``calls`` calls, ``concurrency`` at a time; results in call order.

    A tqdm progress bar shows completed calls (``progress=False`` to hide it).
    ``direction="outbound"`` (with an optional ``tag``) makes them REST-originated
    calls, as in :func:`call`.
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
                seed = None if base["seed"] is None else base["seed"] + i
                seeded = SimOptions(**{**base, "seed": seed})
                result = await _sim(url, caller, clock, seeded, {}, direction, tag).run()
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
