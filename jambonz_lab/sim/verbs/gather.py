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
  below ``recognizer.minConfidence``, both truthy, ~956) even while the prompt
  plays, and the resolve cuts the prompt whatever ``bargein`` says (~1065,
  ~1328). Each interim restarts a running main timer (~1095), goes to
  ``partialResultHook`` unawaited (~1108) and, with ``bargein`` and enough
  words, sends ``speech-bargein-detected`` until playComplete (~1096–1101).
  ASR errors and continuous ASR: :mod:`.recognition`.
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

from ..caller import Digits, Input, Silence, Speech
from . import recognition, runner, task_status
from .basic import PLAY_SECONDS, action_hook, hook_url, speech_result, speech_seconds, texts
from .synth import synthesize

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
        as_urls = await synthesize(call, nested, entries)
        for text in entries:
            call.heard("play" if text in as_urls else "say", text)
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


Heard = tuple[str, Speech]
Event = tuple[float, str, Any]  # (gather time, kind, a key or a Heard)
SPEECH_KINDS = ("interim", "final", "error")
FINAL_ASR_SECONDS = 1.0  # _startFinalAsrTimer (~813–820)


class _Gather:
    def __init__(
        self,
        call: VerbContext,
        verb: dict[str, Any],
        *,
        waits: Waits | None = None,
        emit: Emit = _no_emit,
        background: bool = False,
    ) -> None:
        self.call = call
        self.verb = verb
        #: how the gather waits: its own call time, or the moments of a background task (background.py)
        self.waits: Waits = waits or _CallTime(call)
        #: the task's events ``dtmf`` / ``vad`` / ``transcription`` / ``timeout`` (what bargeIn listens to)
        self.emit = emit
        self.background = background
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
        # recognition (~53–64, ~186–203)
        self.interim_on = bool(hook_url(verb.get("partialResultHook"))) or self.bargein or self.timeout > 0
        words = verb.get("minBargeinWordCount")
        self.barge_words = words if isinstance(words, int | float) else 1
        self.recognizer = recognition.effective_recognizer(call, verb)
        self.vendor = recognition.session_vendor(call, verb, str(self.recognizer["vendor"]))
        self.continuous, self.asr_timeout, self.asr_digit = recognition.asr_timeout(call, verb, self.vendor)
        self.buffered: list[dict[str, Any]] = []
        self.stt_stopped = False  # a first key stopped transcription (~405–410)
        self.buffer = ""
        self.prompt: _Prompt | None = None
        self.listen_during = False
        self.play_complete = False  # playComplete: the prompt ended or audio was killed (~256, ~881–901)
        self.t0 = call.clock.now()
        self.timer: float | None = None  # the main timer: when it fires (gather time)
        self.inter_timer: float | None = None
        self.asr_timer: float | None = None
        self.final_asr_timer: float | None = None

    def now(self) -> float:
        return self.call.clock.now() - self.t0

    def start_timer(self) -> None:
        self.timer = self.now() + self.timeout if self.timeout > 0 else None

    def start_asr_timer(self) -> None:
        self.asr_timer = self.now() + self.asr_timeout

    def start_listening(self) -> None:
        """``startListening`` (~232–236)."""
        self.start_timer()
        if self.continuous and self.timeout == 0 and not self.background:
            self.start_asr_timer()

    def listening(self) -> bool:
        return self.prompt is None or self.listen_during or self.prompt.done or self.prompt.killed

    def prompt_playing(self) -> bool:
        return self.prompt is not None and not (self.prompt.done or self.prompt.killed)

    async def kill_audio(self) -> None:
        """``_killAudio`` (~881–901): the prompt task is killed; playComplete from now on."""
        if self.prompt is not None:
            await self.prompt.kill(self.call)
        self.play_complete = True

    async def run(self) -> dict[str, Any]:
        """Play the gather out; the actionHook's result (``{}``: the task ended with no actionHook)."""
        call = self.call
        self.prompt = await _start_prompt(call, self.verb)
        self.listen_during = self.prompt is not None and self.verb.get("listenDuringPrompt") is not False
        if self.prompt is None:
            self.start_listening()
        said = call.next_input()
        events = self.events(said)
        try:
            while True:
                # None: nothing will happen; the caller hangs up or timeLimit ends the call
                step = self.next_step(events)
                reached = await self.waits.reach(None if step is None else self.t0 + step[0])
                if step is None or not reached:
                    if step is not None and step[1] in ("key", *SPEECH_KINDS):
                        events.insert(0, step)  # woken early (a new timer): it is still to come
                    continue
                try:
                    result = await self.handle(step[1], step[2])
                    if result is not None:
                        if self.prompt is not None:
                            await self.prompt.kill(call)
                        if result:
                            await self.emit(_EVENTS[result["reason"]])
                        return result
                finally:
                    self.waits.release()
        except asyncio.CancelledError:
            if self.prompt is not None:
                await self.prompt.kill(call)
            raise

    def keys_heard(self) -> bool:
        """The dtmf listener is on (~224–229)."""
        return self.digits_on or self.dtmf_bargein or bool(self.asr_digit)

    def events(self, said: Input) -> list[Event]:
        out: list[Event] = []
        if isinstance(said, Digits) and self.keys_heard():
            self.turn(said, 0.0, out)
        elif isinstance(said, Speech) and self.speech_on:
            self.turn(said, 0.0, out)
        elif not isinstance(said, Silence):
            self.call.note("ignored-input", f"caller input {said!r} is not among {self.verb.get('input')}")
        out.sort(key=lambda e: e[0])
        return out

    def turn(self, said: Speech | Digits, start: float, out: list[Event]) -> float:
        """The caller's events from ``start``; when they end."""
        t = start + said.after
        if isinstance(said, Digits):
            if not self.keys_heard():
                self.call.note("ignored-input", f"keys {said.digits!r}: this gather does not listen to keys")
                return t
            out.extend((t + i * said.interval, "key", k) for i, k in enumerate(said.digits))
            return t + max(0, len(said.digits) - 1) * said.interval
        if said.interims is None:
            words = said.text.split()
            interims: tuple[str, ...] = (" ".join(words[: max(1, len(words) // 2)]),) if words else ()
            step = 0.0
        else:
            interims, step = said.interims, said.interval
        for i, text in enumerate(interims):
            out.append((t + i * step, "interim", (text, said)))
        end = t + len(interims) * step
        if said.error is not None:
            out.append((end, "error", (said.error, said)))
        else:
            out.append((end, "final", (said.text, said)))
        for nxt in said.more:
            end = self.turn(nxt, end, out)
        return end

    def next_step(self, events: list[Event]) -> Event | None:
        options: list[tuple[float, int, str, Any]] = []
        if self.prompt_playing() and self.prompt is not None:
            options.append((self.prompt.seconds, 0, "prompt-end", ""))
        if events:
            at, kind, value = events[0]
            options.append((at, 1, kind, value))
        for rank, (when, kind) in enumerate(
            (
                (self.inter_timer, "inter-digit"),
                (self.final_asr_timer, "final-asr"),
                (self.asr_timer, "asr-timer"),
                (self.timer, "timer"),
            ),
            start=2,
        ):
            if when is not None:
                options.append((when, rank, kind, ""))
        if not options:
            return None
        at, _, kind, value = min(options, key=lambda o: (o[0], o[1]))
        if kind in ("key", *SPEECH_KINDS):
            events.pop(0)
        return max(at, self.now()), kind, value

    async def handle(self, kind: str, value: Any) -> dict[str, Any] | None:
        call = self.call
        if kind == "prompt-end" and self.prompt is not None:
            await self.prompt.end(call)
            self.play_complete = True
            self.start_listening()  # startListening (~233, ~262)
            return None
        if kind == "timer":
            self.timer = None
            if self.continuous:  # extended by the asr window (~746–747)
                self.start_asr_timer()
                return None
            if self.min is not None and len(self.buffer) >= self.min:
                return {"digits": self.buffer, "reason": "dtmfDetected"}
            return {"reason": "timeout"}
        if kind == "asr-timer":
            self.asr_timer = None
            if self.vendor == "speechmatics" and not self.buffered:  # keeps listening (~773–777)
                self.start_asr_timer()
                return None
            return self.buffered_result()
        if kind == "final-asr":
            return self.buffered_result()
        if kind == "inter-digit":
            return {"digits": self.buffer, "reason": "dtmfDetected"}
        if not self.listening():
            what = f"key {value!r}" if kind == "key" else f"speech {value[0]!r}"
            call.note("ignored-input", f"{what} during the prompt with listenDuringPrompt false: not heard")
            return None
        if kind == "key":
            return await self.key(value)
        text, said = value
        if self.stt_stopped:
            call.note("ignored-input", f"speech {text!r}: a key stopped the transcription (~405–410)")
            return None
        if kind == "interim":
            return await self.interim(text, said)
        if kind == "error":
            return await self.asr_error(text)
        return await self.final(text, said)

    def buffered_result(self) -> dict[str, Any]:
        """The continuous-ASR windows close (~769–780, ~815–819)."""
        if not self.buffered:
            return {"reason": "timeout"}
        speech = recognition.consolidate(self.buffered, str(self.recognizer["language"]), self.vendor)
        return {"speech": speech, "reason": "speechDetected"}

    async def key(self, key: str) -> dict[str, Any] | None:
        """``_onDtmf`` (~379–425)."""
        call = self.call
        if self.timer is None and self.timeout > 0:
            self.start_timer()
        self.inter_timer = None
        cut = False
        if self.dtmf_bargein:
            if not self.play_complete:
                await task_status(call, self.verb, "dtmf-bargein-detected", dtmf=key, duration=DTMF_DURATION)
            if self.prompt_playing():
                call.note("bargein", f"key {key!r} cut the prompt after {self.now():g} s")
                cut = True
            await self.kill_audio()
            await self.emit("dtmf")
        if self.continuous and key == self.asr_digit and self.buffered:  # ~393–399
            call.note("asr", f"key {key!r} ends continuous ASR: the transcripts go in 1 s")
            self.asr_timer = self.timer = None
            self.final_asr_timer = self.now() + FINAL_ASR_SECONDS
            return None
        if key == self.finish and self.digits_on:
            return {"digits": self.buffer, "reason": "dtmfDetected"}
        if self.digits_on:
            if not self.buffer and self.speech_on:  # DTMF is higher priority than STT (~405–410)
                self.stt_stopped = True
                self.asr_timer = None
            self.buffer += key
            if len(self.buffer) in (self.num, self.max):
                return {"digits": self.buffer, "reason": "dtmfDetected"}
        if self.inter_digit > 0 and self.min is not None and len(self.buffer) >= self.min:
            self.inter_timer = self.now() + self.inter_digit
            self.timer = None
        if cut:
            self.start_listening()  # the killed prompt task ends: startListening restarts the timer
        return None

    def low_confidence(self, evt: dict[str, Any]) -> bool:
        """Both truthy and below (~954–961)."""
        confidence = evt["alternatives"][0]["confidence"]
        minimum: Any = self.recognizer.get("minConfidence")
        return bool(confidence) and bool(minimum) and float(confidence) < float(minimum)

    async def interim(self, text: str, said: Speech) -> dict[str, Any] | None:
        """An interim transcript (``_onTranscription`` ~1069–1133)."""
        call = self.call
        if not self.interim_on:
            call.note("asr", f"interim {text!r} not sent: no partialResultHook, bargein or timeout (~53)")
            return None
        evt = speech_result(said, text, final=False)
        evt["alternatives"][0]["confidence"] = 0
        if self.low_confidence(evt):
            return {"speech": evt, "reason": "stt-low-confidence"}
        if not text:  # (an empty interim is no transcript for the timer or bargein)
            return None
        said_before = (b["alternatives"][0]["transcript"] for b in self.buffered)
        words = len(text.split(" ")) + sum(len(t.split(" ")) for t in said_before)
        if self.timer is not None:
            self.start_timer()  # ~1095, ~1127
        cut = False
        if self.bargein and words >= self.barge_words:
            if not self.play_complete:
                await self.emit("vad")
                await task_status(call, self.verb, "speech-bargein-detected", **evt)
            if self.prompt_playing():
                call.note("bargein", f"caller barged in after {self.now():g} s")
                cut = True
            await self.kill_audio()
        partial = hook_url(self.verb.get("partialResultHook"))
        if partial:  # requested, not awaited (~1108–1114)
            data = {"speech": evt, **call.call_info()}
            if self.verb.get("id"):
                data["verb_id"] = self.verb["id"]
            await call.notify_hook(partial, data)
        if self.continuous and self.asr_timer is not None:
            self.start_asr_timer()  # ~1132
        if cut:
            self.start_listening()
        return None

    async def final(self, text: str, said: Speech) -> dict[str, Any] | None:
        """A final transcript (``_onTranscription`` ~946–1067)."""
        call = self.call
        evt = speech_result(said, text)
        if self.low_confidence(evt):
            return {"speech": evt, "reason": "stt-low-confidence"}
        if not text:
            call.note("asr", "empty final transcript: jambonz keeps listening (~989–991)")
            return None
        if self.continuous:
            evt["alternatives"][0]["transcript"] = recognition.strip_punctuation(text, self.vendor)
            self.buffered.append(evt)
            self.timer = None
            if self.final_asr_timer is not None:  # ~1023–1027
                return self.buffered_result()
            self.start_asr_timer()
            call.note("asr", f"transcript {text!r} buffered; {self.asr_timeout:g} s for more")
            return None
        if self.prompt_playing():
            call.note("prompt-cut", f"final transcript after {self.now():g} s ends the gather and its prompt")
        return {"speech": evt, "reason": "speechDetected"}

    async def asr_error(self, error: str) -> dict[str, Any] | None:
        """The recognizer fails: ``_onVendorError`` ~1257 or ``_onJambonzError`` ~1190, ``_startFallback``
        ~1165–1188; {} when the task just ends (no actionHook)."""
        call = self.call
        route, detail = recognition.error_route(self.vendor, error)
        details = f"STT Vendor {self.vendor} error: {detail}"
        fallback = recognition.fall_back(call, self.recognizer)
        err: dict[str, Any] = {"msg": "ASR error", "details": details}
        err["failover"] = "in progress" if fallback else "not available"
        err["verb"] = "gather"
        if self.verb.get("id") is not None:
            err["id"] = self.verb["id"]
        await call.jambonz_error(err)
        if fallback:
            call.note("asr", f"recognizer {self.vendor} failed: falling back to {fallback}")
            self.vendor = fallback
            return None
        if route == "vendor":
            return {"reason": "error", "details": detail}
        call.note("asr", f"recognizer {self.vendor} failed: the gather ends with no actionHook (~1212–1214)")
        return {}


@runner("gather")
async def gather(call: VerbContext, verb: dict[str, Any]) -> None:
    result = await _Gather(call, verb).run()
    if result:
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
