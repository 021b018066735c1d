"""Answering machine detection (``amd``) as feature-server 0.9.8 runs it (``lib/utils/amd-utils.js``).

Where it runs: ``dial`` with ``amd`` starts it on the B-leg once bridged
(``dial.js`` ~932). Not yet wired: ``config.amd`` (``config.js`` ~151) and REST
calls' ``amd`` (``rest_dial.js`` ~100).
It listens to what the party says on answering (:class:`~jambonz_lab.sim.caller.Greeting`:
``DialOutcome.greeting`` for a B-leg, ``Caller.greeting`` for the call) and reports
each event to ``amd.actionHook`` with ``performHook`` (``task.js`` ~271): a
``verb:hook`` of the call's info (the A-leg's, also for a dial) plus the event,
not awaited; verbs in its ack replace the application (and so end the verb running).

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
from ..engine import AckTimeout
from .basic import WORDS_PER_SECOND, hook_url

if TYPE_CHECKING:
    from ..context import VerbContext

__all__ = ["Detector", "timeline"]

VENDORS = frozenset("google aws polly microsoft nuance deepgram soniox ibm nvidia cobalt".split())
_background: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class Event:
    """One AMD event: ``at`` seconds on the call's clock, what the hook gets."""

    at: float
    data: dict[str, Any]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _ms(timers: dict[str, Any], key: str, default: float) -> float:
    value = timers.get(key)
    return (float(value) if isinstance(value, int | float) and value else default) / 1000


def transcripts(greeting: Greeting | None, start: float) -> list[tuple[float, str, bool]]:
    """(time, transcript so far, is_final) as a streaming recognizer reports a greeting."""
    words = greeting.text.split() if greeting else []
    if not greeting or not words:
        return []
    seconds = greeting.seconds if greeting.seconds is not None else len(words) / WORDS_PER_SECOND
    step = max(seconds, 0.0) / len(words)
    begin = start + greeting.start
    out = [(begin + step * (i + 1), " ".join(words[: i + 1]), False) for i in range(len(words) - 1)]
    out.append((begin + max(seconds, 0.0), " ".join(words), True))
    return out


def timeline(opts: dict[str, Any], greeting: Greeting | None, start: float, language: str) -> list[Event]:
    """Every event an AMD started at ``start`` reports, in order, ending with ``amd_stopped``."""
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
        (t, 1, "speech", (s, f)) for t, s, f in transcripts(greeting, start)
    ]
    if greeting is not None and greeting.beep is not None:
        inputs.append((start + greeting.beep, 2, "beep", greeting))
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
    """One AMD run on a leg: its events handed out as the call's clock passes them."""

    def __init__(
        self, call: VerbContext, opts: dict[str, Any], greeting: Greeting | None, where: str
    ) -> None:
        self.call = call
        self.hook = hook_url(opts.get("actionHook"))
        recognizer = _dict(opts.get("recognizer"))
        vendor = str(recognizer.get("vendor") or "default")
        vendor = "google" if vendor == "default" else vendor
        language = str(recognizer.get("language") or "default")
        language = "en-US" if language == "default" else language
        self.events: list[Event] = []
        if vendor not in VENDORS and not vendor.startswith("custom:"):
            call.note(
                "amd", f"amd on {where}: invalid vendor {vendor}; jambonz does not start it (no events)"
            )
            return
        if not self.hook:
            call.note("amd", f"amd on {where} has no actionHook: its events go nowhere")
        self.events = timeline(opts, greeting, call.clock.now(), language)
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

    def send(self, data: dict[str, Any]) -> asyncio.Task[None]:
        """``performHook``: sent, not awaited; verbs in the ack replace the application."""
        call, hook = self.call, self.hook

        async def run() -> None:
            if not hook:
                return
            try:
                verbs = await call.hook(hook, {**call.call_info(), **data})
            except AckTimeout:
                return
            if verbs:
                call.note("amd", f"{data['type']} ack: new verbs replace the application")
                call.replace_stack(verbs)

        task = asyncio.get_running_loop().create_task(run())
        _background.add(task)
        task.add_done_callback(_background.discard)
        return task

    async def deliver(self, events: list[dict[str, Any]]) -> None:
        """Send ``events`` and give the app its ack time before the clock moves on."""
        for data in events:
            sent = self.send(data)
            try:
                await self.call.wait_real(sent, self.call.options.ack_timeout)
            except TimeoutError:
                pass
