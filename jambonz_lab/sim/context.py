"""What a verb runner (and a command) may use of its call: :class:`VerbContext`.

:class:`~jambonz_lab.sim.engine.SimCall` satisfies it; the runners in
:mod:`jambonz_lab.sim.verbs` and :func:`~jambonz_lab.sim.commands.apply_command`
are typed against it, so they see the call's facts, clock, trace and messages,
and the verb stack, not the socket or the run loop.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from .alarms import Alarms
    from .caller import Caller, Input
    from .clock import Clock
    from .engine import Direction, Hangup, SimOptions
    from .recording import Recording
    from .result import CallResult

__all__ = ["PerCall", "VerbContext", "hook_url", "spawn"]

T = TypeVar("T")

_spawned: set[asyncio.Task[Any]] = set()  # tasks nobody awaits, kept from the garbage collector


def hook_url(hook: Any) -> str | None:
    """The URL of a hook as verbs and commands carry it: a string, or an object with ``url``
    (``{url, method, username, password}``); None when there is none or it is not a string."""
    url = hook.get("url") if isinstance(hook, dict) else hook
    return url if isinstance(url, str) and url else None


def spawn(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Run ``coro`` as a task nobody awaits (a hook jambonz sends without waiting); keep it alive
    until it ends. Loop thread."""
    task = asyncio.get_running_loop().create_task(coro)
    _spawned.add(task)
    task.add_done_callback(_spawned.discard)
    return task


class PerCall(Generic[T]):
    """State a verb module keeps for each call, made on first use and gone with the call.

    Example::

        _state = PerCall(_BargeIn)
        _state(call).sticky = True     # made now
        _state.get(call)               # None for a call that never used it
    """

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._items: weakref.WeakKeyDictionary[VerbContext, T] = weakref.WeakKeyDictionary()

    def __call__(self, call: VerbContext) -> T:
        item = self._items.get(call)
        if item is None:
            item = self._items[call] = self._make()
        return item

    def get(self, call: VerbContext) -> T | None:
        return self._items.get(call)


class VerbContext(Protocol):
    """The call as a verb sees it."""

    call_sid: str
    #: the app's URL (jambonz's call_hook), without its ``#rc``/``#rp`` fragment
    url: str
    caller: Caller
    clock: Clock
    options: SimOptions
    result: CallResult
    #: what the caller does (fixed by the seed)
    rng: random.Random
    #: who things are (call and leg ids): never repeats with the seed
    ids: random.Random
    payload: dict[str, Any]
    config: dict[str, Any]
    customer_data: dict[str, Any] | None
    answered: bool
    direction: Direction
    #: a REST call's INVITE is out, not answered yet: commands act on the outdial
    ringing: bool
    #: when the call was answered (call clock), None before
    answer_at: float | None
    notify_events: bool
    #: commands a running verb takes over (llm, TTS streams), by command name
    listeners: dict[str, Callable[[dict[str, Any]], None]]
    #: the verbs still to run (read it; change it with replace_stack / append_stack)
    stack: deque[dict[str, Any]]
    #: the verb running now (None between verbs)
    current: dict[str, Any] | None
    #: the call's recording state (``record`` command, ``config.record``)
    recording: Recording
    #: texts this call synthesized already: (vendor, language, voice, text)
    tts_cache: set[tuple[str, str, str, str]]
    #: moments of the call's background tasks (``config.bargeIn``), see :mod:`~jambonz_lab.sim.alarms`
    alarms: Alarms
    #: sessions the call started that outlive their verb (an adulted B-leg); awaited when the call ends
    sessions: list[asyncio.Task[CallResult]]

    # -- facts and trace
    def next_input(self) -> Input: ...
    def peek_input(self) -> Input | None: ...
    def deadline(self) -> tuple[float, str]: ...
    def call_info(self) -> dict[str, Any]: ...
    def raw_info(self) -> dict[str, Any]: ...
    def note(self, kind: str, note: str, payload: Any = None) -> None: ...
    def heard(self, kind: str, what: str) -> None: ...
    def error(self, text: str) -> None: ...

    # -- time
    async def sleep(self, seconds: float) -> None: ...
    async def wait_real(self, fut: asyncio.Future[Any], timeout: float) -> Any: ...

    # -- messages to the app
    async def notify(self, kind: str, data: Any, hook: str | None = None) -> None: ...
    async def request(
        self, kind: str, data: Any, hook: str | None = None, *, timeout: float | None = None
    ) -> Any: ...
    async def hook(
        self, hook: str | None, data: dict[str, Any], *, kind: str = "verb:hook"
    ) -> list[dict[str, Any]]: ...
    async def notify_hook(self, hook: str | None, data: dict[str, Any]) -> None: ...
    async def send_status(
        self, status: str, sip_status: int | None = None, reason: str | None = None, **extra: Any
    ) -> None: ...
    async def send_final_status(self, ended: Hangup) -> None: ...
    async def verb_status(self, event: str, verb: dict[str, Any], **extra: Any) -> None: ...
    async def jambonz_error(self, data: dict[str, Any]) -> None: ...
    def accept_verbs(self, verbs: Any, where: str) -> list[dict[str, Any]]: ...
    async def handover(self, url: str) -> None: ...

    # -- the call and its verb stack
    async def answer(self) -> None: ...
    def end(self, by: str = "jambonz", sip_status: int = 200, reason: str = "OK") -> None: ...
    def replace_stack(self, verbs: list[dict[str, Any]], *, kill: bool = True) -> None: ...
    def kill_current(self) -> None: ...
    def append_stack(self, verbs: list[dict[str, Any]]) -> None: ...
