"""``config.bargeIn``: the background gather of feature-server 0.9.8.

``config`` with ``bargeIn.enable`` builds a gather — ``{timeout: 0, bargein:
true, input: ["speech"]}`` overlaid with the bargeIn's ``finishOnKey``,
``input``, ``numDigits``, ``minDigits``, ``maxDigits``, ``interDigitTimeout``,
``bargein``, ``dtmfBargein``, ``minBargeinWordCount`` and ``actionHook``
(``lib/tasks/config.js`` ~32–46) — and runs it beside the verb stack
(``call-session.js`` ``enableBotMode`` ~1011–1043,
``lib/utils/background-task-manager.js`` ``_initBargeIn`` ~103–134):

* It takes the caller's next input when it starts. The first ``dtmf`` (a key,
  with ``dtmfBargein``), ``vad`` (the first interim transcript with
  ``bargein``), ``transcription`` or ``timeout`` event of the task
  (``_bargeInTaskCompleted`` ~210–216) kills the current verb and clears the
  stack up to a queued ``config`` with ``bargeIn.enable: false``, whose
  ``enable`` is removed (``call-session.js`` ``kill(true)`` ~2139–2166); an
  open TTS stream gets ``user_interruption`` (``gather.js`` ``_killAudio`` ~880).
* The gather resolves as a gather does and sends its actionHook (verb:hook,
  ``{speech|digits, reason}``); the ack's verbs replace the stack (``task.js``
  ~254, ``replaceApplication`` ~2082). An invalid ack is reported as a gather's.
* ``sticky: true`` starts it again once it is done (~120–127); without it the
  manager's "handled" flag stays set, so a later non-sticky bargeIn no longer
  kills the current verb (only its hook's verbs replace the stack).
* ``enable: true`` again with the same ``input`` is ignored; with another
  ``input`` it restarts; ``enable: false`` stops it (~1013–1049).
* A ``gather`` verb while it runs is skipped — prompt and all — and gives the
  background gather its ``timeout`` (``call-session.js`` ~1360–1368,
  ``gather.js`` ``updateTaskInProgress`` ~367–376), unless it wants speech
  the background one lacks: then bargeIn is switched off and the gather runs.

Its waits are moments of the call (:mod:`~jambonz_lab.sim.alarms`): the verb
stack's own waits stop there, so what it does happens on time on both clocks.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..alarms import Alarm, Alarms
from ..context import PerCall
from . import ai, runner
from . import gather as gathering
from .gather import _Gather, gather_result

if TYPE_CHECKING:
    from ..context import VerbContext

__all__ = ["config", "gather"]

#: the bargeIn keys config.js copies onto the gather (~39–45)
COPIED = (
    "finishOnKey input numDigits minDigits maxDigits interDigitTimeout bargein dtmfBargein "
    "minBargeinWordCount actionHook".split()
)


class _Moments:
    """A background gather's waits: moments of the call (the stack's waits stop there)."""

    def __init__(self, alarms: Alarms) -> None:
        self.alarms = alarms
        self.woken = asyncio.Event()
        self._held: Alarm | None = None

    async def reach(self, at: float | None) -> bool:
        """Wait for the call to reach ``at``; False when woken first (a new timer to look at).

        Raises:
            asyncio.CancelledError: the call ended.
        """
        self.woken.clear()
        alarm = self.alarms.add(math.inf if at is None else at)
        waker = asyncio.ensure_future(self.woken.wait())
        try:
            either: set[asyncio.Future[Any]] = {waker, alarm.reached}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
        if alarm.reached.cancelled():
            raise asyncio.CancelledError
        if alarm.reached.done():
            self._held = alarm
            return True
        self.alarms.release(alarm)
        return False

    def release(self) -> None:
        """What was due at the moment is done: the call goes on."""
        if self._held is not None:
            self.alarms.release(self._held)
            self._held = None


@dataclass
class _BargeIn:
    """The call's background gather (one at a time, like the task manager's ``bargeIn`` slot)."""

    opts: dict[str, Any] = field(default_factory=dict)
    sticky: bool = False
    task: asyncio.Task[None] | None = None
    gather: _Gather | None = None
    #: the manager's ``_bargeInHandled``: set by the first event, reset only by a sticky restart
    handled: bool = False

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


_state = PerCall(_BargeIn)


def gather_opts(call: VerbContext, barge: dict[str, Any], recognizer: Any) -> dict[str, Any]:
    """The background gather (``config.js`` ~32–46, ~249–256)."""
    opts: dict[str, Any] = {"verb": "gather", "timeout": 0, "bargein": True, "input": ["speech"]}
    opts.update({k: barge[k] for k in COPIED if barge.get(k) is not None})
    if isinstance(recognizer, dict) and recognizer:
        opts["recognizer"] = recognizer
    return opts


@runner("config")
async def config(call: VerbContext, verb: dict[str, Any]) -> None:
    """:func:`.ai.config` (itself :func:`.basic.config` and ttsStream), then ``bargeIn`` (~249–264)."""
    await ai.config(call, verb)
    barge = verb.get("bargeIn")
    if not isinstance(barge, dict) or "enable" not in barge:
        return
    if barge["enable"] is True:
        enable(call, gather_opts(call, barge, verb.get("recognizer")), sticky=bool(barge.get("sticky")))
    elif barge["enable"] is False:
        disable(call)


def enable(call: VerbContext, opts: dict[str, Any], *, sticky: bool) -> None:
    """``enableBotMode`` (~1011–1043)."""
    state = _state(call)
    if state.running:
        if state.opts.get("input") == opts.get("input"):
            call.note("bargein", "bargeIn already enabled with this input; ignored")
            return
        call.note("bargein", f"bargeIn restarted for input {opts.get('input')}")
        disable(call)
    state.opts, state.sticky = opts, sticky
    _start(call, state)


def disable(call: VerbContext) -> None:
    """``disableBotMode`` (~1045–1049): the background gather is killed, no hook."""
    state = _state(call)
    state.sticky = False
    if state.running and state.task is not None:
        call.note("bargein", "bargeIn disabled")
        state.task.cancel()


def _start(call: VerbContext, state: _BargeIn) -> None:
    call.note("bargein", f"background gather for {state.opts.get('input')} started")
    state.task = asyncio.get_running_loop().create_task(_run(call, state))


async def _run(call: VerbContext, state: _BargeIn) -> None:
    verb = dict(state.opts)

    async def on_event(event: str) -> None:
        if event in ("dtmf", "vad", "transcription", "timeout") and not state.handled:
            state.handled = True
            _bargein_done(call, event)

    state.gather = _Gather(call, verb, waits=_Moments(call.alarms), emit=on_event, background=True)
    try:
        result = await state.gather.run()
        if result:  # {}: an ASR error ended it with no actionHook
            await gather_result(call, verb, result, kill=True)
    except asyncio.CancelledError:
        return  # disabled, or the call ended
    finally:
        state.gather = None
    if state.sticky and call.result.final_status is None:
        state.handled = False
        _start(call, state)


def _bargein_done(call: VerbContext, event: str) -> None:
    """``bargeIn-done`` → ``kill(true)`` (~1033–1038, ~2139–2166)."""
    stream = ai.tts_stream(call)
    if stream.open:
        stream.settle()  # what was spoken up to now
        stream._interrupt()  # _killAudio → clearTtsStream (call-session.js ~991)
    keep: list[dict[str, Any]] = []
    rest = list(call.stack)
    for i, queued in enumerate(rest):
        barge = queued.get("bargeIn")
        if queued["verb"] == "config" and isinstance(barge, dict) and barge.get("enable") is False:
            kept = {**queued, "bargeIn": {k: v for k, v in barge.items() if k != "enable"}}
            keep = [kept, *rest[i + 1 :]]
            break
    call.note("bargein", f"background gather {event}: the current verb is killed, {len(keep)} verbs kept")
    call.replace_stack(keep)


@runner("gather")
async def gather(call: VerbContext, verb: dict[str, Any]) -> None:
    """:func:`.gather.gather`, unless bargeIn's background gather runs (then skipped, see the module)."""
    if not _skipped(call, verb):
        await gathering.gather(call, verb)


def _skipped(call: VerbContext, verb: dict[str, Any]) -> bool:
    """A gather verb while bargeIn runs: True when it is skipped (``call-session.js`` ~1360–1368)."""
    state = _state(call)
    background = state.gather
    if not state.running or background is None:
        return False
    wants_speech = "speech" in (verb.get("input") or ["digits"])
    if wants_speech and not background.speech_on:  # updateTaskInProgress returns false (~368–371)
        call.note("bargein", "gather wants speech the background gather lacks: bargeIn disabled")
        disable(call)
        return False
    raw = verb.get("timeout")
    background.timeout = 0.0 if raw == 0 else float(raw or 15)
    background.start_timer()
    if isinstance(background.waits, _Moments):
        background.waits.woken.set()
    call.note(
        "skipped", f"gather skipped: the background gather runs with its timeout, {background.timeout:g} s"
    )
    return True
