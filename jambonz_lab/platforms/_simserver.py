"""What the Kazoo, Basix and Wazo simulators share: an aiohttp server on loopback, run on the lab's loop.

A simulator is a small :class:`SimServer` subclass that adds its routes
(:meth:`SimServer._routes`: the WebSocket endpoint and the few REST calls its clients use)
and maps a :class:`~jambonz_lab.platforms.scenario.CallScenario` onto its own wire events
(:meth:`SimServer._play_step`). :meth:`SimServer.play` runs scenarios at a chosen pace.

Threads: ``start`` / ``stop`` / ``play`` are for cells, scripts and tests (they hand the
work to the lab's loop); everything else runs on the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, ClassVar, Self

from aiohttp import web

from .. import loop
from ..waiting import Waiter
from .scenario import CallScenario, Step

__all__ = ["SimServer"]

#: events a simulator keeps in its ``published`` list for tests and notebooks (the oldest half goes first)
KEEP_PUBLISHED = 10_000

#: seconds between two looks, while a play waits for its next step, at whether a command ended the call
_POLL = 0.1


class SimServer:
    """Base of the platform simulators (see the module docstring)."""

    #: short name used in messages
    name: ClassVar[str] = "simulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- subclass hooks (loop thread) -------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        """Add the simulator's routes."""
        raise NotImplementedError

    async def _play_step(self, scenario: CallScenario, step: Step, t0: float) -> None:
        """Emit the wire events of one step; ``t0`` is the scenario's Unix start time."""
        raise NotImplementedError

    def _over(self, scenario: CallScenario, t0: float) -> bool:
        """True once every leg of this play of ``scenario`` has ended (a hangup command can end a
        call before its script does); the play then stops early. Asked only after the play's first
        step. Default: never."""
        return False

    async def _on_stop(self) -> None:
        """Close the simulator's sockets before the server stops."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def astart(self) -> SimServer:
        loop.require_loop_thread()
        if self._runner is not None:
            return self
        app = web.Application()
        self._routes(app)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = int(runner.addresses[0][1])
        self._runner = runner
        return self

    async def astop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._on_stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self, timeout: float = 10.0) -> Self:
        """Listen on ``host:port`` (port 0: any free port). Cells and scripts."""
        loop.submit(self.astart()).result(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every socket and stop listening. Cells and scripts."""
        loop.submit(self.astop()).result(timeout)

    def __enter__(self) -> Self:
        """``with KazooSimulator() as sim:`` starts it and stops it at the end (cells, scripts, tests)."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run ``coro`` on the loop, cancelled at stop (loop thread)."""
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- scenarios ---------------------------------------------------------------------------

    async def aplay(self, scenarios: CallScenario | Sequence[CallScenario], time_scale: float = 1.0) -> None:
        """Play calls side by side; returns when every step was emitted (loop thread).

        ``time_scale`` is real seconds per scenario second: 1 plays in real time, 0.01 a
        hundred times faster, 0 without waiting (event timestamps keep the scenario's times).
        """
        items = [scenarios] if isinstance(scenarios, CallScenario) else list(scenarios)
        now = time.time()
        await asyncio.gather(*(self._play_one(s, now, time_scale) for s in items))

    async def _play_one(self, scenario: CallScenario, now: float, time_scale: float) -> None:
        t0 = scenario.start if scenario.start is not None else now
        clock = asyncio.get_running_loop()
        started = clock.time()
        for n, step in enumerate(scenario.steps()):
            due = started + step.at * time_scale
            if time_scale == 0:
                await asyncio.sleep(0)  # let the frames of other calls interleave
            while (delay := due - clock.time()) > 0:
                await asyncio.sleep(min(delay, _POLL))
                if n and self._over(scenario, t0):
                    return  # ended early by a command: the rest of the script has nothing to say
            await self._play_step(scenario, step, t0)
            if self._over(scenario, t0):
                return

    def play(
        self,
        scenarios: CallScenario | Sequence[CallScenario],
        time_scale: float = 1.0,
        timeout: float | None = None,
    ) -> Waiter[None]:
        """Start playing calls (see :meth:`aplay`); ``await`` the result or ``.result()``. Any thread.

        Example::

            done = kazoo_sim.play([CallScenario(seed=1), CallScenario(seed=2, answered=False)], 0)
            done.result()
        """
        items = [scenarios] if isinstance(scenarios, CallScenario) else list(scenarios)
        longest = max((s.duration for s in items), default=0.0)
        limit = timeout if timeout is not None else longest * time_scale + 30.0
        waiter: Waiter[None] = Waiter(f"{self.name} to play {len(items)} call(s)", limit)

        def begin() -> None:
            waiter.arm()
            task = self.spawn(self.aplay(items, time_scale))

            def done(t: asyncio.Task[None]) -> None:
                if t.cancelled():
                    waiter.fail(asyncio.CancelledError(f"{self.name} stopped while playing"))
                elif t.exception() is not None:
                    waiter.fail(t.exception())  # type: ignore[arg-type]
                else:
                    waiter.resolve(None)

            task.add_done_callback(done)

        loop.run_sync(begin)
        return waiter

    def __repr__(self) -> str:
        state = f"listening on {self.http_url}" if self._runner is not None else "stopped"
        return f"<{type(self).__name__} {state}>"
