"""Answering machine detection (``amd``) as feature-server 0.9.8 runs it (``lib/utils/amd-utils.js``).

Where it runs:

* ``dial`` with ``amd`` starts it on the B-leg once bridged (``dial.js`` ~932);
  the dial's end stops it (~262).
* ``config`` with ``amd`` starts it on the call itself (``config.js`` ~151–161),
  before the same verb's ``recognizer`` takes effect (~200): the vendor and
  language default to those of earlier configs. It runs beside the verb stack
  after the config verb is done; nothing stops it at the hangup (``Config.kill``
  leaves it, ~372), so it just goes silent.
* a REST call's ``amd`` (the createCall body, ``sim.call(..., direction="outbound",
  amd={...})``) starts it on the call when it is answered, before ``session:new``
  (``rest_dial.js`` ~100–106); the hangup stops it (``turnOffAmd``,
  ``rest-call-session.js`` ~62–65): ``amd_stopped`` goes out before the final
  ``call:status``.

The call has one detector (``ep.amd``): a later ``config.amd`` replaces a running one.
It listens to what the party says on answering (:class:`~jambonz_lab.sim.caller.Greeting`:
``DialOutcome.greeting`` for a B-leg, ``Caller.greeting`` for the call; its times
count from the answer, and words said before the detector starts are not heard) and
reports each event to ``amd.actionHook`` with ``performHook`` (``task.js`` ~271): a
``verb:hook`` of the call's info (the A-leg's, also for a dial) plus the event,
not awaited; verbs in its ack replace the application (and so end the verb running).
The call's detector waits on moments of the call (:mod:`~jambonz_lab.sim.alarms`), so
its events come on time between (and during) the verbs' own waits, on both clocks.

The rules (amd-utils.js):

* timers from the start (~76–80, ~89–93): ``noSpeechTimeoutMs`` 5000,
  ``decisionTimeoutMs`` 15000, ``toneTimeoutMs`` 20000; the first transcript
  stops the no-speech timer (~147).
* each transcript (interim ones too) is judged (~155–192): ``thresholdWordCount``
  (9) words or more → ``amd_machine_detected`` ``{reason: "long greeting",
  greeting, language}``; a final one with fewer → ``amd_human_detected``
  ``{reason: "short greeting", ...}``; with ``digitCount`` a run of that many
  digits → machine ``{reason: "digit count"}``.
* after a machine decision, each further transcript restarts the greeting
  timer (``greetingCompletionTimeoutMs`` 2000, 1000 once a beep was heard,
  ~103–106, ~142); when it fires: ``amd_machine_stopped_speaking``.
* a beep (avmd) → ``amd_tone_detected`` ``{frequency, variance}`` (~245–249).
* human, no speech (``amd_no_speech_detected``), decision timeout
  (``amd_decision_timeout``), the tone timeout (no event of its own, ~380) and
  machine-stopped-speaking stop the detector: ``amd_stopped`` follows (~404–435).
  A dial that ends with the detector running stops it too (``dial.js`` ~262).
* ``amd_error`` is emitted under its own name, which no task listens to
  (~218): the app never gets it; an unknown recognizer vendor throws at start
  (~348) and nothing is reported at all.

Transcripts are modelled on a streaming recognizer: one interim per word as it
is said, the final when the greeting ends.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..caller import Greeting
from ..context import PerCall
from . import background, runner
from .basic import WORDS_PER_SECOND, hook_url, perform_hook

if TYPE_CHECKING:
    from ..context import VerbContext

__all__ = ["Detector", "config", "hangup", "start_rest", "timeline"]

VENDORS = frozenset("google aws polly microsoft nuance deepgram soniox ibm nvidia cobalt".split())


@dataclass(frozen=True)
class Event:
    """One AMD event: ``at`` seconds on the call's clock, what the hook gets."""

    at: float
    data: dict[str, Any]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _ms(timers: dict[str, Any], key: str, default: float) -> float:
    """A timer in seconds; JavaScript's destructuring default only replaces a missing one (0 is 0)."""
    value = timers.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value) / 1000
    return default / 1000


def transcripts(
    greeting: Greeting | None, start: float, origin: float | None = None
) -> list[tuple[float, str, bool]]:
    """(time, transcript so far, is_final) as a streaming recognizer started at ``start`` reports a greeting.

    The greeting's times count from ``origin`` (the answer; default ``start``); words
    finished before ``start`` are not heard.
    """
    words = greeting.text.split() if greeting else []
    if not greeting or not words:
        return []
    seconds = greeting.seconds if greeting.seconds is not None else len(words) / WORDS_PER_SECOND
    step = max(seconds, 0.0) / len(words)
    begin = (start if origin is None else origin) + greeting.start
    said = [(begin + step * (i + 1), word) for i, word in enumerate(words)]
    heard = [(t, word) for t, word in said if t >= start]
    out = [(t, " ".join(w for _, w in heard[: i + 1]), False) for i, (t, _) in enumerate(heard[:-1])]
    if heard:
        out.append((heard[-1][0], " ".join(w for _, w in heard), True))
    return out


def timeline(
    opts: dict[str, Any],
    greeting: Greeting | None,
    start: float,
    language: str,
    origin: float | None = None,
) -> list[Event]:
    """Every event an AMD started at ``start`` reports, in order, ending with ``amd_stopped``.

    With a machine detected and nothing after it, the run may end without a stop
    (the tone timer was stopped by a beep, the greeting timer is armed only by speech).
    """
    timers = _dict(opts.get("timers"))
    threshold = int(opts.get("thresholdWordCount") or 9)
    digits = int(opts.get("digitCount") or 0)
    clock: dict[str, float | None] = {
        "decision": start + _ms(timers, "decisionTimeoutMs", 15000),
        "no-speech": start + _ms(timers, "noSpeechTimeoutMs", 5000),
        "tone": start + _ms(timers, "toneTimeoutMs", 20000),
        "greeting": None,
    }
    completion = _ms(timers, "greetingCompletionTimeoutMs", 2000)
    inputs: list[tuple[float, int, str, Any]] = [
        (t, 1, "speech", (s, f)) for t, s, f in transcripts(greeting, start, origin)
    ]
    if greeting is not None and greeting.beep is not None:
        beep = (start if origin is None else origin) + greeting.beep
        if beep >= start:
            inputs.append((beep, 2, "beep", greeting))
    inputs.sort(key=lambda item: (item[0], item[1]))
    events: list[Event] = []
    decision: str | None = None
    beeped = False

    def emit(at: float, kind: str, **extra: Any) -> None:
        events.append(Event(at, {"type": kind, **extra}))

    def next_timer() -> tuple[float, str] | None:
        armed = [(t, name) for name, t in clock.items() if t is not None]
        return min(armed) if armed else None

    for at, _, kind, value in inputs + [(float("inf"), 9, "end", None)]:
        while (timer := next_timer()) is not None and timer[0] <= at:
            t, name = timer
            clock[name] = None
            if name == "decision":
                emit(t, "amd_decision_timeout")
            elif name == "no-speech":
                emit(t, "amd_no_speech_detected")
            elif name == "greeting":
                emit(t, "amd_machine_stopped_speaking")
            emit(t, "amd_stopped")  # every timer that fires stops the detector (the tone timeout silently)
            return events
        if kind == "beep":
            emit(at, "amd_tone_detected", frequency=value.frequency, variance=value.variance)
            clock["tone"] = None
            beeped = True
        elif kind == "speech":
            text, final = value
            if decision is not None:  # only the machine's end of greeting is awaited now
                clock["greeting"] = at + (1.0 if beeped else completion)
                continue
            clock["no-speech"] = None
            count = len(text.split(" "))
            found = {"greeting": text, "language": language}
            if digits and re.search(f"[0-9]{{{digits}}}", text):
                decision = "machine"
                emit(at, "amd_machine_detected", reason="digit count", **found)
            elif final and count < threshold:
                emit(at, "amd_human_detected", reason="short greeting", **found)
                emit(at, "amd_stopped")
                return events
            elif count >= threshold:
                decision = "machine"
                emit(at, "amd_machine_detected", reason="long greeting", **found)
            if decision is not None:
                clock["decision"] = None
                clock["greeting"] = at + (1.0 if beeped else completion)
    return events


class Detector:
    """One AMD run on a leg: its events handed out as the call's clock passes them.

    ``recognizer`` is the call's recognizer defaults (``cs.speechRecognizerVendor``
    and ``...Language``, ``amd-utils.js`` ~53–57); default: the call's config now.
    ``origin`` is when the party answered (the greeting's times count from it).
    """

    def __init__(
        self,
        call: VerbContext,
        opts: dict[str, Any],
        greeting: Greeting | None,
        where: str,
        *,
        origin: float | None = None,
        recognizer: dict[str, Any] | None = None,
    ) -> None:
        self.call = call
        self.hook = hook_url(opts.get("actionHook"))
        defaults = _dict(call.config.get("recognizer")) if recognizer is None else recognizer
        own = _dict(opts.get("recognizer"))

        def pick(key: str, fallback: str) -> str:
            base = defaults.get(key)
            base = base if isinstance(base, str) and base and base != "default" else fallback
            value = own.get(key)
            return base if not isinstance(value, str) or not value or value == "default" else value

        vendor, language = pick("vendor", "google"), pick("language", "en-US")
        self.events: list[Event] = []
        if vendor not in VENDORS and not vendor.startswith("custom:"):
            call.note(
                "amd", f"amd on {where}: invalid vendor {vendor}; jambonz does not start it (no events)"
            )
            return
        if not self.hook:
            call.note("amd", f"amd on {where} has no actionHook: its events go nowhere")
        self.events = timeline(opts, greeting, call.clock.now(), language, origin)
        call.note("amd", f"amd started on {where}: " + ", ".join(e.data["type"] for e in self.events))

    @property
    def running(self) -> bool:
        return bool(self.events)

    def next_at(self) -> float | None:
        return self.events[0].at if self.events else None

    def due(self) -> list[dict[str, Any]]:
        """The events whose time has come (removed from the run)."""
        now = self.call.clock.now()
        out = []
        while self.events and self.events[0].at <= now:
            out.append(self.events.pop(0).data)
        return out

    def stop(self) -> list[dict[str, Any]]:
        """The leg ends with the detector running: ``amd_stopped`` (``dial.js`` ~262)."""
        if not self.events:
            return []
        self.events = []
        return [{"type": "amd_stopped"}]

    def send(self, data: dict[str, Any], hook: str | None = None) -> asyncio.Task[None]:
        """``performHook``: sent, not awaited; verbs in the ack replace the application."""
        call = self.call
        note = ("amd", f"{data['type']} ack: new verbs replace the application")
        return perform_hook(
            call, hook if hook is not None else self.hook, {**call.call_info(), **data}, note=note
        )

    async def deliver(self, events: list[dict[str, Any]], hook: str | None = None) -> None:
        """Send ``events`` and give the app its ack time before the clock moves on."""
        for data in events:
            sent = self.send(data, hook)
            try:
                await self.call.wait_real(sent, self.call.options.ack_timeout)
            except TimeoutError:
                pass


# -- the call's own detector (config.amd, a REST call's amd) ------------------------------


@dataclass
class _Slot:
    """The call's ``ep.amd``: the detector running on it, and the REST task's own amd hook."""

    detector: Detector | None = None
    task: asyncio.Task[None] | None = None
    #: a REST call's amd.actionHook: ``turnOffAmd`` at the hangup reports to it (None: no REST amd)
    rest_hook: str | None = None
    rest: bool = False


_slot = PerCall(_Slot)


def _start(call: VerbContext, detector: Detector) -> None:
    """Run ``detector`` on the call beside the verb stack, one event time after another."""
    slot = _slot(call)
    if slot.task is not None and not slot.task.done():
        call.note("amd", "a new amd replaces the one running on the call (ep.amd)")
        slot.task.cancel()
    slot.detector = detector
    if not detector.running:
        slot.task = None
        return

    async def run() -> None:
        while (at := detector.next_at()) is not None:
            async with call.alarms.moment(at):  # raises CancelledError when the call ended
                await detector.deliver(detector.due())

    slot.task = asyncio.get_running_loop().create_task(run())


@runner("config")
async def config(call: VerbContext, verb: dict[str, Any]) -> None:
    """``config.amd`` starts AMD on the call (``config.js`` ~151–161), then :func:`.background.config`.

    AMD starts before this verb's ``recognizer`` is applied (~166, ~200): it takes
    the recognizer of earlier configs as its defaults.
    """
    amd = verb.get("amd")
    if amd is not None and not isinstance(amd, dict):
        call.note("error", "config amd must be an object; ignored")
        call.error("config amd must be an object")
    earlier = dict(_dict(call.config.get("recognizer")))
    if isinstance(amd, dict) and amd:
        origin = call.answer_at if call.answer_at is not None else call.clock.now()
        _start(call, Detector(call, amd, call.caller.greeting, "the call", origin=origin, recognizer=earlier))
    await background.config(call, verb)


def start_rest(call: VerbContext, amd: dict[str, Any]) -> None:
    """A REST call's ``amd``, at the answer and before ``session:new`` (``rest_dial.js`` ~42–46, ~100–106)."""
    slot = _slot(call)
    slot.rest, slot.rest_hook = True, hook_url(amd.get("actionHook"))
    _start(call, Detector(call, amd, call.caller.greeting, "the REST call", origin=call.clock.now()))


async def hangup(call: VerbContext) -> None:
    """The call ends. A REST call stops a running detector: ``amd_stopped`` to the REST amd's hook.

    ``turnOffAmd`` stops whatever runs on ``ep.amd`` and emits on the REST task
    (``rest_dial.js`` ~52–53, ``rest-call-session.js`` ~62–65); an inbound call has
    nothing that stops a ``config.amd``: it goes silent.
    """
    slot = _slot.get(call)
    if slot is None:
        return
    if slot.task is not None and not slot.task.done():
        slot.task.cancel()
    detector, slot.detector, slot.task = slot.detector, None, None
    if detector is None or not detector.running:
        return
    if not slot.rest:
        detector.stop()
        call.note("amd", "the call ended with amd running: nothing stops it, nothing more is sent")
        return
    events = detector.stop()
    if slot.rest_hook:
        await detector.deliver(events, slot.rest_hook)
