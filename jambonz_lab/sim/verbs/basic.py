"""say, play, pause, hangup, answer, config, tag, redirect, sip:decline; the hook helpers verbs share.

say (``tasks/say.js``)
    Every entry of a ``text`` array is spoken, in order (~74, ~278), ``loop``
    times (``loop || 1``: 0 plays once, ~84; ``"forever"`` until killed).
    ``verb:status`` (with ``notifyEvents``): ``synthesized-audio`` for each
    entry (:mod:`.synth`), ``start-playback`` once (~276),
    ``stop-playback`` after each entry (~307); killed, ``stop-playback`` if
    none was sent yet and ``kill-playback`` (~462–464).
play (``tasks/play.js``)
    ``loop || 1`` (~26); ``start-playback`` (~55), ``kill-playback`` when killed (~69).
hooks
    :func:`hook_verbs` is an awaited hook whose ack verbs are checked the way
    ``performAction`` checks them (``task.js`` ~254): invalid verbs raise
    :class:`InvalidAck`, like a missing ack raises ``AckTimeout``. What a verb
    does then is the verb's: gather reports it (``gather.js`` ~1426), redirect
    and llm end the call, play carries on (``play.js`` ~99).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ...exceptions import VerbError
from ...protocol.verbs import normalize_verbs
from ..caller import Speech
from ..context import hook_url, spawn
from ..engine import FS_VERBS, AckTimeout, Hangup
from ..http_link import WebhookFailed
from . import runner, task_status
from .synth import synthesize

if TYPE_CHECKING:
    from ..context import VerbContext

__all__ = [
    "InvalidAck",
    "action_hook",
    "hang_up_on_error",
    "hook_url",
    "hook_verbs",
    "perform_hook",
    "loops",
    "speak",
    "speech_result",
    "speech_seconds",
    "texts",
    "unawaited_action",
    "with_id",
]

WORDS_PER_SECOND = 2.6  # a TTS voice's speaking rate
PLAY_SECONDS = 3.0  # an audio file's length (no media is fetched)
FOREVER = 1000  # loop "forever": until killed or hung up


class InvalidAck(Exception):
    """The ack's verbs do not validate: jambonz's ``performAction`` throws (``task.js`` ~254–256)."""


def speech_seconds(text: str) -> float:
    return round(0.3 + len(text.split()) / WORDS_PER_SECOND, 3)


def loops(verb: dict[str, Any]) -> int:
    """``loop || 1`` (``say.js`` ~84, ``play.js`` ~26): 0 and absent play once."""
    value = verb.get("loop")
    if value == "forever":
        return FOREVER
    return max(1, int(value or 1))


def texts(verb: dict[str, Any]) -> list[str]:
    """A say's ``text``: a string, or an array whose every entry is spoken in order (``say.js`` ~74)."""
    value = verb.get("text")
    if isinstance(value, list):
        return [str(t) for t in value]
    return [str(value)] if value else []


def with_id(verb: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "verb_id": verb["id"]} if "id" in verb else data


async def speak(call: VerbContext, verb: dict[str, Any], *, heard_as: str = "say") -> None:
    """The say task: each text entry, ``loop`` times, with its verb:status events."""
    entries = texts(verb)
    stopped = False
    urls = await synthesize(call, verb, entries)
    await task_status(call, verb, "start-playback")
    try:
        for _ in range(loops(verb)):
            for text in entries:
                call.heard("play" if text in urls else heard_as, text)
                await placeholder_sleep(call, speech_seconds(text), f"say {text!r}")
                await task_status(call, verb, "stop-playback")
                stopped = True
    except asyncio.CancelledError:
        if not stopped:
            await task_status(call, verb, "stop-playback")
        await task_status(call, verb, "kill-playback")
        raise


async def placeholder_sleep(call: VerbContext, seconds: float, label: str) -> None:
    """The app's audio for ``seconds``: in the call's recording as a placeholder from its start (a
    background listen streams it while it plays), cut to what really played by a kill or a hangup."""
    start = call.clock.now()
    segment = call.result.audio.add_placeholder("app", start, seconds, label)
    try:
        await call.sleep(seconds)
    finally:
        if segment is not None:
            segment.cut(call.clock.now())


@runner("say")
async def say(call: VerbContext, verb: dict[str, Any]) -> None:
    await speak(call, verb)


@runner("play")
async def play(call: VerbContext, verb: dict[str, Any]) -> None:
    urls = verb["url"] if isinstance(verb["url"], list) else [verb["url"]]
    seconds = float(verb.get("timeoutSecs") or PLAY_SECONDS)
    played = 0.0
    await task_status(call, verb, "start-playback")
    try:
        for _ in range(loops(verb)):
            for url in urls:
                call.heard("play", str(url))
                await placeholder_sleep(call, seconds, f"play {url}")
                played += seconds
    except asyncio.CancelledError:
        await task_status(call, verb, "kill-playback")
        raise
    result = {
        "reason": "playCompleted",
        "playback_seconds": int(played),
        "playback_milliseconds": int(played * 1000),
        "playback_last_offset_pos": int(played * 8000),
    }
    await action_hook(call, verb, result)


@runner("pause")
async def pause(call: VerbContext, verb: dict[str, Any]) -> None:
    await call.sleep(float(verb.get("length", 1)))


@runner("answer")
async def answer(call: VerbContext, verb: dict[str, Any]) -> None:
    await call.answer()


@runner("hangup")
async def hangup(call: VerbContext, verb: dict[str, Any]) -> None:
    raise Hangup("jambonz")


@runner("tag")
async def tag(call: VerbContext, verb: dict[str, Any]) -> None:
    call.customer_data = dict(verb.get("data") or {})


@runner("config")
async def config(call: VerbContext, verb: dict[str, Any]) -> None:
    if verb.get("notifyEvents"):  # false does not switch it off (protocol doc §5)
        call.notify_events = True
    call.config.update({k: v for k, v in verb.items() if k not in ("verb", "id")})
    record = verb.get("record")
    if isinstance(record, dict) and record.get("action"):  # config.js ~265-267
        call.recording.apply(call, record)


@runner("sip:decline")
async def sip_decline(call: VerbContext, verb: dict[str, Any]) -> None:
    status = int(verb["status"])
    reason = str(verb.get("reason") or "Declined")
    call.note("declined", f"call declined with {status} {reason}")
    await call.send_status("failed", status, reason)
    raise Hangup("jambonz", status, reason)


@runner("redirect")
async def redirect(call: VerbContext, verb: dict[str, Any]) -> None:
    """An unacked session:redirect, or one acked with invalid verbs, throws: the call ends."""
    hook = hook_url(verb.get("actionHook"))
    if hook and hook.startswith(("ws://", "wss://")):
        call.note("redirect", f"redirect to {hook}: a new socket (redirect.js ~22–33)")
        try:
            await call.handover(hook)
        except Exception as exc:  # noqa: BLE001 - the request on the new requestor fails: the call ends
            call.error(f"session:redirect: cannot connect to {hook}: {type(exc).__name__}: {exc}")
            raise Hangup("jambonz") from None
    try:
        verbs = await hook_verbs(call, hook, call.call_info(), kind="session:redirect")
    except AckTimeout:
        call.error("session:redirect not acked: the call is hung up")
        raise Hangup("jambonz") from None
    except InvalidAck as exc:
        call.error(f"session:redirect acked with invalid verbs ({exc}): the call is hung up")
        raise Hangup("jambonz") from None
    if verbs:  # an empty ack carries on with the stack
        call.replace_stack(verbs, kill=False)


def ack_problem(raw: list[Any]) -> str:
    """Why jambonz would refuse these ack verbs (``invalid instruction: <verb>`` for unknown ones)."""
    try:
        checked = normalize_verbs(raw)
    except VerbError as exc:
        if exc.property is None and "unknown verb" in str(exc):
            return f"invalid instruction: {exc.verb}"
        return exc.problems[0].split(": ", 1)[-1] if exc.problems else str(exc)
    except (TypeError, AttributeError, KeyError):
        return "malformed jambonz payload: must be array of objects"
    unknown = [v["verb"] for v in checked if v["verb"] not in FS_VERBS]
    return f"invalid instruction: {unknown[0]}" if unknown else "invalid verbs"


async def hook_verbs(
    call: VerbContext, hook: str | None, data: dict[str, Any], *, kind: str = "verb:hook"
) -> list[dict[str, Any]]:
    """An awaited hook's valid ack verbs ([] = carry on).

    Raises:
        AckTimeout: no ack in time.
        InvalidAck: the ack carries verbs jambonz would not run.
    """
    if not hook or hook.startswith(("http://", "https://")):
        return await call.hook(hook, data, kind=kind)
    raw = await call.request(kind, data, hook)
    verbs = call.accept_verbs(raw, f"ack to {hook}")
    if not verbs and isinstance(raw, list) and raw:
        raise InvalidAck(ack_problem(raw))
    return verbs


OnError = Callable[[str | None], Awaitable[None]]


async def action_hook(
    call: VerbContext,
    verb: dict[str, Any],
    result: dict[str, Any],
    *,
    on_error: OnError | None = None,
    kill: bool = False,
) -> None:
    """An awaited actionHook; its verbs replace the stack (``kill``: and kill the running verb,
    for a hook sent from beside the stack, like bargeIn's).

    Unacked (a 5 s stall) or acked with invalid verbs, ``performAction`` throws:
    ``on_error`` gets the error message (None for a timeout: jambonz rejects
    with a plain string, which has no ``message``); without one the verb carries on.
    """
    hook = hook_url(verb.get("actionHook"))
    if not hook:
        return
    try:
        verbs = await hook_verbs(call, hook, with_id(verb, {**call.call_info(), **result}))
    except AckTimeout as exc:  # a failed webhook has a message (http-requestor.js ~265), a timeout none
        if on_error is not None:
            await on_error(exc.reason if isinstance(exc, WebhookFailed) else None)
        return
    except InvalidAck as exc:
        if on_error is not None:
            await on_error(str(exc))
        return
    if verbs:
        call.replace_stack(verbs, kill=kill)


async def hang_up_on_error(call: VerbContext, verb: dict[str, Any], result: dict[str, Any]) -> None:
    """An actionHook whose failure throws out of the task: the call ends (``call-session.js`` ~1390)."""

    async def fail(message: str | None) -> None:
        why = message or "actionHook not acked"
        call.error(f"{verb['verb']} actionHook failed ({why}): the call is hung up")
        raise Hangup("jambonz")

    await action_hook(call, verb, result, on_error=fail)


def unawaited_action(call: VerbContext, verb: dict[str, Any], result: dict[str, Any]) -> None:
    """An actionHook jambonz sends without waiting: the ack's verbs replace the stack when they come."""
    hook = hook_url(verb.get("actionHook"))
    if hook:
        perform_hook(call, hook, with_id(verb, {**call.call_info(), **result}))


def perform_hook(
    call: VerbContext, hook: str | None, data: dict[str, Any], *, note: tuple[str, str] | None = None
) -> asyncio.Task[None]:
    """``performHook`` (``task.js`` ~271–286): ``data`` sent to ``hook`` and not awaited; verbs in
    the ack replace the application (after ``note``, when given). No hook: nothing is sent."""

    async def send() -> None:
        if not hook:
            return
        try:
            verbs = await call.hook(hook, data)
        except AckTimeout:
            return
        if verbs:
            if note is not None:
                call.note(*note)
            call.replace_stack(verbs)

    return spawn(send())


def speech_result(said: Speech, text: str, *, final: bool = True) -> dict[str, Any]:
    return {
        "language_code": said.language,
        "channel_tag": 1,
        "is_final": final,
        "alternatives": [{"confidence": said.confidence, "transcript": text}],
        "vendor": {"name": "google", "evt": {"is_final": final, "transcript": text}},
    }
