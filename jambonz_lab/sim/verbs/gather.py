"""gather, as ``tasks/gather.js`` of feature-server 0.9.8 runs it.

The caller's next input is one :class:`~jambonz_lab.sim.caller.Digits` (keys
from ``after`` seconds into the gather, one every ``interval``) or
:class:`~jambonz_lab.sim.caller.Speech` (its final transcript ``after`` seconds
into the gather). What happens is worked out event by event, in time order:

* The prompt (``say`` — every text entry — or ``play``) starts at once. With
  ``listenDuringPrompt`` (default true when there is a prompt) keys and speech
  are taken while it plays; without, only after it (earlier input is lost).
* The main timer (``timeout``, default 15 s, 0 = none) starts when the prompt
  ends (~233, ~262) — or at the start without a prompt, or at the first key if
  none runs yet (~381). Keys do not reset it. When it fires the gather ends
  with ``dtmfDetected`` if ``minDigits`` is set and reached, else ``timeout``
  (~749): there is no default ``minDigits`` or ``interDigitTimeout`` (~39–41).
* A key: with ``dtmfBargein`` (default true when digits are an input, ~49) it
  cuts the prompt (``verb:status dtmf-bargein-detected``, ~388) and the main
  timer restarts when the prompt task ends. ``finishOnKey`` resolves
  ``dtmfDetected`` whatever was collected (~400); ``numDigits`` /
  ``maxDigits`` reached resolve it (~413); otherwise with
  ``interDigitTimeout`` and ``minDigits`` reached the inter-digit timer
  replaces the main timer (~418–423).
* A final transcript resolves ``speechDetected`` (or ``stt-low-confidence``
  below ``recognizer.minConfidence``) even while the prompt plays, and the
  resolve cuts the prompt whatever ``bargein`` says (~1065, ~1328); with
  ``bargein`` the interim result first sends ``speech-bargein-detected``
  (~1100), and ``partialResultHook`` gets it.
* Resolving kills the nested prompt task even when it had finished, so its
  ``kill-playback`` goes out then (~1328, ``say.js`` ~464).
* An unacked actionHook, or one acked with invalid verbs: ``jambonz:error
  {msg:"invalid actionHook response", details?}`` and a ``call:status`` with
  ``error`` and ``reason`` = the error message (~1426–1444; a timeout rejects
  with a plain string, so neither ``details`` nor ``reason`` is set); then the
  stack goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..caller import Digits, Silence, Speech
from . import runner, task_status
from .basic import PLAY_SECONDS, action_hook, hook_url, speech_result, speech_seconds, texts, with_id

if TYPE_CHECKING:
    from ..context import VerbContext

__all__ = ["gather"]

DTMF_DURATION = "1600"  # FreeSWITCH's DTMF-Duration header (samples) on the ep 'dtmf' event
#: the event a resolved gather emits, by hook reason (``_resolve`` ~1350–1390)
_EVENTS = {
    "dtmfDetected": "dtmf",
    "speechDetected": "transcription",
    "timeout": "timeout",
    "stt-low-confidence": "stt-low-confidence",
    "error": "stt-error",
}


@dataclass
class _Prompt:
    """The gather's nested say/play task."""

    verb: dict[str, Any]
    seconds: float
    stopped: bool = False  # say: a stop-playback was sent
    killed: bool = False
    done: bool = False

    async def end(self, call: VerbContext) -> None:
        """It played to its end."""
        self.done = True
        if self.verb["verb"] == "say":
            await task_status(call, self.verb, "stop-playback")
            self.stopped = True

    async def kill(self, call: VerbContext) -> None:
        """``_killAudio``: the task is killed (once), finished or not."""
        if self.killed:
            return
        self.killed = True
        if self.verb["verb"] == "say" and not self.stopped:
            await task_status(call, self.verb, "stop-playback")
        await task_status(call, self.verb, "kill-playback")


async def _start_prompt(call: VerbContext, verb: dict[str, Any]) -> _Prompt | None:
    for name in ("say", "play"):
        spec = verb.get(name)
        if isinstance(spec, dict):
            nested = {"verb": name, **spec}
            break
    else:
        return None
    if nested["verb"] == "say":
        entries = texts(nested)
        for text in entries:
            call.heard("say", text)
        seconds = sum(speech_seconds(t) for t in entries)
    else:
        urls = nested.get("url")
        for url in urls if isinstance(urls, list) else [urls]:
            call.heard("play", str(url))
        seconds = PLAY_SECONDS * (len(urls) if isinstance(urls, list) else 1)
    await task_status(call, nested, "start-playback")
    return _Prompt(nested, seconds)


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Waits(Protocol):
    """How a gather waits for its next moment (``reach``) and lets the call go on (``release``)."""

    async def reach(self, at: float | None) -> bool: ...
    def release(self) -> None: ...


class _CallTime:
    """A foreground gather's waits: its own (the call's clock moves)."""

    def __init__(self, call: VerbContext) -> None:
        self.call = call

    async def reach(self, at: float | None) -> bool:
        end, _ = self.call.deadline()
        await self.call.sleep((end if at is None else at) - self.call.clock.now())
        return at is not None

    def release(self) -> None:
        pass


Emit = Callable[[str], Awaitable[None]]


async def _no_emit(event: str) -> None:
    pass


class _Gather:
    def __init__(
        self,
        call: VerbContext,
        verb: dict[str, Any],
        *,
        waits: Waits | None = None,
        emit: Emit = _no_emit,
    ) -> None:
        self.call = call
        self.verb = verb
        #: how the gather waits: its own call time, or the moments of a background task (background.py)
        self.waits: Waits = waits or _CallTime(call)
        #: the task's events ``dtmf`` / ``vad`` / ``transcription`` / ``timeout`` (what bargeIn listens to)
        self.emit = emit
        kinds = verb.get("input") or ["digits"]
        self.digits_on = "digits" in kinds
        self.speech_on = "speech" in kinds
        given = verb.get("dtmfBargein")
        self.dtmf_bargein = (given is not False and self.digits_on) or bool(given)
        self.bargein = bool(verb.get("bargein"))
        raw = verb.get("timeout")
        self.timeout = 0.0 if raw == 0 else float(raw or 15)
        self.finish = verb.get("finishOnKey")
        self.num = _number(verb.get("numDigits"))
        self.max = _number(verb.get("maxDigits"))
        self.min = _number(verb.get("minDigits"))
        inter = verb.get("interDigitTimeout")
        self.inter_digit = float(inter) if isinstance(inter, int | float) and inter > 0 else 0.0
        self.buffer = ""
        self.prompt: _Prompt | None = None
        self.listen_during = False
        self.t0 = call.clock.now()
        self.timer: float | None = None  # the main timer: when it fires (gather time)
        self.inter_timer: float | None = None

    def now(self) -> float:
        return self.call.clock.now() - self.t0

    def start_timer(self) -> None:
        self.timer = self.now() + self.timeout if self.timeout > 0 else None

    def listening(self) -> bool:
        return self.prompt is None or self.listen_during or self.prompt.done or self.prompt.killed

    async def run(self) -> dict[str, Any]:
        """Play the gather out; the actionHook's result."""
        call = self.call
        self.prompt = await _start_prompt(call, self.verb)
        self.listen_during = self.prompt is not None and self.verb.get("listenDuringPrompt") is not False
        if self.prompt is None:
            self.start_timer()
        said = call.next_input()
        events = self.events(said)
        try:
            while True:
                # None: nothing will happen; the caller hangs up or timeLimit ends the call
                step = self.next_step(events)
                reached = await self.waits.reach(None if step is None else self.t0 + step[0])
                if step is None or not reached:
                    if step is not None and step[1] in ("key", "speech"):
                        events.insert(0, step)  # woken early (a new timer): it is still to come
                    continue
                try:
                    result = await self.handle(step[1], step[2], said)
                    if result is not None:
                        if self.prompt is not None:
                            await self.prompt.kill(call)
                        await self.emit(_EVENTS[result["reason"]])
                        return result
                finally:
                    self.waits.release()
        except asyncio.CancelledError:
            if self.prompt is not None:
                await self.prompt.kill(call)
            raise

    def events(self, said: Digits | Speech | Silence) -> list[tuple[float, str, str]]:
        if isinstance(said, Digits) and self.digits_on:
            return [(said.after + i * said.interval, "key", k) for i, k in enumerate(said.digits)]
        if isinstance(said, Speech) and self.speech_on:
            return [(said.after, "speech", said.text)]
        if not isinstance(said, Silence):
            self.call.note("ignored-input", f"caller input {said!r} is not among {self.verb.get('input')}")
        return []

    def next_step(self, events: list[tuple[float, str, str]]) -> tuple[float, str, str] | None:
        options: list[tuple[float, int, str, str]] = []
        prompt = self.prompt
        if prompt is not None and not (prompt.done or prompt.killed):
            options.append((prompt.seconds, 0, "prompt-end", ""))
        if events:
            at, kind, value = events[0]
            options.append((at, 1, kind, value))
        if self.inter_timer is not None:
            options.append((self.inter_timer, 2, "inter-digit", ""))
        if self.timer is not None:
            options.append((self.timer, 3, "timer", ""))
        if not options:
            return None
        at, _, kind, value = min(options)
        if kind in ("key", "speech"):
            events.pop(0)
        return max(at, self.now()), kind, value

    async def handle(self, kind: str, value: str, said: Digits | Speech | Silence) -> dict[str, Any] | None:
        call = self.call
        if kind == "prompt-end" and self.prompt is not None:
            await self.prompt.end(call)
            self.start_timer()  # startListening (~233, ~262)
            return None
        if kind == "timer":
            if self.min is not None and len(self.buffer) >= self.min:
                return {"digits": self.buffer, "reason": "dtmfDetected"}
            return {"reason": "timeout"}
        if kind == "inter-digit":
            return {"digits": self.buffer, "reason": "dtmfDetected"}
        if not self.listening():
            what = f"key {value!r}" if kind == "key" else f"speech {value!r}"
            call.note("ignored-input", f"{what} during the prompt with listenDuringPrompt false: not heard")
            return None
        if kind == "key":
            return await self.key(value)
        return await self.speech(said) if isinstance(said, Speech) else None

    async def key(self, key: str) -> dict[str, Any] | None:
        """``_onDtmf`` (~379–425)."""
        call = self.call
        if self.timer is None and self.timeout > 0:
            self.start_timer()
        self.inter_timer = None
        cut = False
        prompt = self.prompt
        if self.dtmf_bargein and prompt is not None and not (prompt.done or prompt.killed):
            await task_status(call, self.verb, "dtmf-bargein-detected", dtmf=key, duration=DTMF_DURATION)
            call.note("bargein", f"key {key!r} cut the prompt after {self.now():g} s")
            await prompt.kill(call)
            cut = True
        if self.dtmf_bargein:
            await self.emit("dtmf")
        if key == self.finish:
            return {"digits": self.buffer, "reason": "dtmfDetected"}
        self.buffer += key
        if len(self.buffer) in (self.num, self.max):
            return {"digits": self.buffer, "reason": "dtmfDetected"}
        if self.inter_digit > 0 and self.min is not None and len(self.buffer) >= self.min:
            self.inter_timer = self.now() + self.inter_digit
            self.timer = None
        if cut:
            self.start_timer()  # the killed prompt task ends: startListening restarts the timer
        return None

    async def speech(self, said: Speech) -> dict[str, Any]:
        """A final transcript (``_onTranscription`` ~904–1067), after its interim result."""
        call = self.call
        words = said.text.split()
        interim = speech_result(said, " ".join(words[: max(1, len(words) // 2)]), final=False)
        prompt = self.prompt
        if self.bargein and prompt is not None and not (prompt.done or prompt.killed):
            await task_status(call, self.verb, "speech-bargein-detected", **interim)
            call.note("bargein", f"caller barged in after {self.now():g} s")
            await prompt.kill(call)
        partial = hook_url(self.verb.get("partialResultHook"))
        if partial and len(words) > 1:
            await call.notify_hook(partial, with_id(self.verb, {**call.call_info(), "speech": interim}))
        if prompt is not None and not (prompt.done or prompt.killed):
            call.note("prompt-cut", f"final transcript after {self.now():g} s ends the gather and its prompt")
        minimum = (self.verb.get("recognizer") or {}).get("minConfidence")
        low = minimum is not None and said.confidence < float(minimum)
        reason = "stt-low-confidence" if low else "speechDetected"
        return {"speech": speech_result(said, said.text), "reason": reason}


@runner("gather")
async def gather(call: VerbContext, verb: dict[str, Any]) -> None:
    result = await _Gather(call, verb).run()
    await gather_result(call, verb, result)


async def gather_result(
    call: VerbContext, verb: dict[str, Any], result: dict[str, Any], *, kill: bool = False
) -> None:
    """The actionHook; a failed one is reported as ``gather.js`` ~1426–1444 reports it."""

    async def invalid_response(message: str | None) -> None:
        err: dict[str, Any] = {"msg": "invalid actionHook response"}
        if message is not None:
            err["details"] = message
        err["verb"] = "gather"
        if verb.get("id") is not None:
            err["id"] = verb["id"]
        await call.jambonz_error(err)
        status = {**call.call_info(), "error": "invalid actionHook response"}
        if message is not None:
            status["reason"] = message
        await call.notify("call:status", status)

    await action_hook(call, verb, result, on_error=invalid_response, kill=kill)
