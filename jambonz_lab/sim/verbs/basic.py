"""say, play, pause, gather, hangup, answer, config, tag, redirect, sip:decline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..caller import Digits, Silence, Speech
from ..engine import AckTimeout, Hangup
from . import runner

if TYPE_CHECKING:
    from ..engine import SimCall

WORDS_PER_SECOND = 2.6  # a TTS voice's speaking rate
PLAY_SECONDS = 3.0  # an audio file's length (no media is fetched)


def speech_seconds(text: str) -> float:
    return round(0.3 + len(text.split()) / WORDS_PER_SECOND, 3)


def loops(verb: dict[str, Any]) -> int:
    value = verb.get("loop", 1)
    if value in ("forever", 0):
        return 1000  # until killed or hung up
    return max(1, int(value))


def with_id(verb: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "verb_id": verb["id"]} if "id" in verb else data


def pick(call: SimCall, value: Any) -> str:
    """``text`` / ``url`` may be a list: jambonz picks one at random."""
    if isinstance(value, list):
        return str(call.rng.choice(value)) if value else ""
    return str(value or "")


@runner("say")
async def say(call: SimCall, verb: dict[str, Any]) -> None:
    text = pick(call, verb.get("text"))
    for _ in range(loops(verb)):
        call.heard("say", text)
        await call.sleep(speech_seconds(text))


@runner("play")
async def play(call: SimCall, verb: dict[str, Any]) -> None:
    urls = verb["url"] if isinstance(verb["url"], list) else [verb["url"]]
    seconds = float(verb.get("timeoutSecs") or PLAY_SECONDS)
    played = 0.0
    for _ in range(loops(verb)):
        for url in urls:
            call.heard("play", str(url))
            await call.sleep(seconds)
            played += seconds
    result = {
        "reason": "playCompleted",
        "playback_seconds": int(played),
        "playback_milliseconds": int(played * 1000),
        "playback_last_offset_pos": int(played * 8000),
    }
    await action_hook(call, verb, result)


@runner("pause")
async def pause(call: SimCall, verb: dict[str, Any]) -> None:
    await call.sleep(float(verb.get("length", 1)))


@runner("answer")
async def answer(call: SimCall, verb: dict[str, Any]) -> None:
    await call.answer()


@runner("hangup")
async def hangup(call: SimCall, verb: dict[str, Any]) -> None:
    raise Hangup("jambonz")


@runner("tag")
async def tag(call: SimCall, verb: dict[str, Any]) -> None:
    call.customer_data = dict(verb.get("data") or {})


@runner("config")
async def config(call: SimCall, verb: dict[str, Any]) -> None:
    if verb.get("notifyEvents"):  # false does not switch it off (protocol doc §5)
        call.notify_events = True
    call.config.update({k: v for k, v in verb.items() if k not in ("verb", "id")})


@runner("sip:decline")
async def sip_decline(call: SimCall, verb: dict[str, Any]) -> None:
    status = int(verb["status"])
    reason = str(verb.get("reason") or "Declined")
    call.note("declined", f"call declined with {status} {reason}")
    await call.send_status("failed", status, reason)
    raise Hangup("jambonz", status, reason)


@runner("redirect")
async def redirect(call: SimCall, verb: dict[str, Any]) -> None:
    hook = hook_url(verb.get("actionHook"))
    if hook and hook.startswith(("ws://", "wss://")):
        call.note("redirect", f"redirect to {hook}: a new socket in jambonz; simulated on this socket")
    try:
        verbs = await call.hook(hook, call.call_info(), kind="session:redirect")
    except AckTimeout:
        call.error("session:redirect not acked: the call is hung up")
        raise Hangup("jambonz") from None
    if verbs:  # an empty ack carries on with the stack
        call.replace_stack(verbs, kill=False)


@runner("gather")
async def gather(call: SimCall, verb: dict[str, Any]) -> None:
    kinds = verb.get("input") or ["digits"]
    heard_input = call.next_input()
    prompt = verb.get("say") or verb.get("play")
    prompt_seconds = 0.0
    if isinstance(prompt, dict):
        if "say" in verb:
            text = pick(call, prompt.get("text"))
            call.heard("say", text)
            prompt_seconds = speech_seconds(text)
        else:
            call.heard("play", pick(call, prompt.get("url")))
            prompt_seconds = PLAY_SECONDS
    accepted = (isinstance(heard_input, Speech) and "speech" in kinds) or (
        isinstance(heard_input, Digits) and "digits" in kinds
    )
    barge = verb.get("listenDuringPrompt", True) and (
        (isinstance(heard_input, Speech) and verb.get("bargein", False))
        or (isinstance(heard_input, Digits) and verb.get("dtmfBargein", True))
    )
    if accepted and barge and not isinstance(heard_input, Silence) and heard_input.after < prompt_seconds:
        await call.sleep(heard_input.after)
        call.note("bargein", f"caller barged in after {heard_input.after:g} s")
        after = 0.0
    else:
        await call.sleep(prompt_seconds)
        after = heard_input.after if accepted and not isinstance(heard_input, Silence) else 0.0
    timeout = float(verb.get("timeout", 15) or 0)
    if not accepted:
        if isinstance(heard_input, Speech | Digits):
            call.note("ignored-input", f"caller input {heard_input!r} is not among {kinds}")
        if timeout == 0:  # no timeout: wait until the caller hangs up
            end, _ = call.deadline()
            await call.sleep(end - call.clock.now())
        await call.sleep(timeout)
        await gather_result(call, verb, {"reason": "timeout"})
        return
    if isinstance(heard_input, Speech):
        await call.sleep(after)
        words = heard_input.text.split()
        if verb.get("partialResultHook") and len(words) > 1:
            partial = speech_result(heard_input, " ".join(words[: len(words) // 2]), final=False)
            await call.notify_hook(
                hook_url(verb["partialResultHook"]), with_id(verb, {**call.call_info(), "speech": partial})
            )
        minimum = (verb.get("recognizer") or {}).get("minConfidence")
        low = minimum is not None and heard_input.confidence < float(minimum)
        reason = "stt-low-confidence" if low else "speechDetected"
        await gather_result(
            call, verb, {"reason": reason, "speech": speech_result(heard_input, heard_input.text)}
        )
        return
    assert isinstance(heard_input, Digits)
    await call.sleep(after)
    digits, reason = collect_digits(verb, heard_input.digits)
    await call.sleep(heard_input.interval * max(1, len(digits)))
    if reason == "timeout":
        await call.sleep(float(verb.get("interDigitTimeout", 5)))
        await gather_result(call, verb, {"reason": "timeout"})
        return
    await gather_result(call, verb, {"reason": "dtmfDetected", "digits": digits})


def collect_digits(verb: dict[str, Any], pressed: str) -> tuple[str, str]:
    """What a digits gather reports for the keys pressed: (digits, reason)."""
    finish = verb.get("finishOnKey")
    limit = verb.get("numDigits") or verb.get("maxDigits")
    minimum = int(verb.get("minDigits", 1))
    out = ""
    for key in pressed:
        if finish and key == finish:
            return out, "dtmfDetected" if len(out) >= minimum else "timeout"
        out += key
        if limit and len(out) >= int(limit):
            return out, "dtmfDetected"
    # no finish key: the inter-digit timeout ends collection
    return out, "dtmfDetected" if out and len(out) >= minimum else "timeout"


def speech_result(said: Speech, text: str, *, final: bool = True) -> dict[str, Any]:
    return {
        "language_code": said.language,
        "channel_tag": 1,
        "is_final": final,
        "alternatives": [{"confidence": said.confidence, "transcript": text}],
        "vendor": {"name": "google", "evt": {"is_final": final, "transcript": text}},
    }


async def gather_result(call: SimCall, verb: dict[str, Any], result: dict[str, Any]) -> None:
    """Send the gather actionHook; an unacked one is reported as jambonz reports it."""

    async def invalid_response() -> None:
        err = {"msg": "invalid actionHook response", "verb": "gather"}
        if "id" in verb:
            err["id"] = verb["id"]
        await call.jambonz_error(err)
        status = {**call.call_info(), "error": "invalid actionHook response", "reason": result.get("reason")}
        await call.notify("call:status", status)

    await action_hook(call, verb, result, on_timeout=invalid_response)


async def action_hook(
    call: SimCall,
    verb: dict[str, Any],
    result: dict[str, Any],
    *,
    on_timeout: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """An awaited actionHook: a 5 s stall if unacked (then ``on_timeout``); verbs replace the stack."""
    hook = hook_url(verb.get("actionHook"))
    if not hook:
        return
    try:
        verbs = await call.hook(hook, with_id(verb, {**call.call_info(), **result}))
    except AckTimeout:
        if on_timeout is not None:
            await on_timeout()
        return
    if verbs:
        call.replace_stack(verbs, kill=False)


def hook_url(hook: Any) -> str | None:
    if isinstance(hook, dict):
        return str(hook.get("url")) if hook.get("url") else None
    return str(hook) if hook else None
