"""Verb runners of the simulated feature server.

Each runner is ``async def run(call, verb) -> None`` registered with
:func:`runner`; it does to the call what jambonz does (durations on the
call's clock, what the caller hears, hooks with the payloads of protocol doc
§4.3) and raises :class:`~jambonz_lab.sim.engine.Hangup` when the call ends.
:func:`run_verb` adds what every verb shares: ``verb:status`` events, the
implicit answer of verbs that need media, and preconditions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..context import VerbContext

__all__ = ["NEEDS_MEDIA", "RUNNERS", "config_needs_media", "run_verb", "runner", "task_status"]

Runner = Callable[["VerbContext", dict[str, Any]], Awaitable[None]]
RUNNERS: dict[str, Runner] = {}

#: verbs that answer an unanswered call unless earlyMedia (protocol doc §4.2)
NEEDS_MEDIA = frozenset(
    "say play gather transcribe listen llm dialogflow lex rasa conference enqueue dequeue dtmf answer".split()
)
NEEDS_ANSWERED = frozenset({"hangup", "sip:request", "sip:refer"})
S2S_VENDORS = {
    "openai_s2s": "openai",
    "microsoft_s2s": "microsoft",
    "google_s2s": "google",
    "elevenlabs_s2s": "elevenlabs",
    "deepgram_s2s": "deepgram",
    "voiceagent_s2s": "voiceagent",
    "ultravox_s2s": "ultravox",
}


def config_needs_media(verb: dict[str, Any]) -> bool:
    """The config verb's precondition: an endpoint (the answer) only for these (``config.js`` ~67–73)."""

    def has(key: str, field: str) -> bool:
        value = verb.get(key)
        return isinstance(value, dict) and bool(value.get(field))

    return (
        has("bargeIn", "enable")
        or has("record", "action")
        or has("listen", "url")
        or bool(verb.get("amd"))
        or "boostAudioSignal" in verb
        or has("transcribe", "enable")
    )


def runner(*names: str) -> Callable[[Runner], Runner]:
    def register(fn: Runner) -> Runner:
        for name in names:
            RUNNERS[name] = fn
        return fn

    return register


def canonical(verb: dict[str, Any]) -> dict[str, Any]:
    """Apply jambonz's synonyms: stream → listen, s2s shortcuts → llm with vendor."""
    name = verb["verb"]
    if name == "stream":
        return {**verb, "verb": "listen"}
    if name == "s2s":
        return {**verb, "verb": "llm"}
    if name in S2S_VENDORS:
        return {**verb, "verb": "llm", "vendor": verb.get("vendor", S2S_VENDORS[name])}
    return verb


#: the task names jambonz reports in verb:status for llm vendors (protocol doc §5)
LLM_STATUS_NAMES = {
    "openai": "Llm_OpenAI_s2s",
    "google": "Llm_Google_s2s",
    "elevenlabs": "Llm_Elevenlabs_s2s",
    "ultravox": "Llm_Ultravox_s2s",
    "voiceagent": "Llm_VoiceAgent_s2s",
    "deepgram": "Llm_VoiceAgent_s2s",
}


async def run_verb(call: VerbContext, verb: dict[str, Any]) -> None:
    verb = canonical(verb)
    name = verb["verb"]
    reported = (
        {**verb, "verb": LLM_STATUS_NAMES.get(str(verb.get("vendor")), name)} if name == "llm" else verb
    )
    await call.verb_status("starting", reported)
    if name in NEEDS_ANSWERED and not call.answered:
        call.note("skipped", f"{name} needs an answered call; skipped")
        return
    if name == "sip:decline" and call.answered:
        call.note("skipped", "sip:decline needs an unanswered call; skipped")
        return
    wants_media = name in NEEDS_MEDIA or (name == "config" and config_needs_media(verb))
    if wants_media and not verb.get("earlyMedia"):
        await call.answer()
    fn = RUNNERS.get(name)
    if fn is None:
        call.note("not-simulated", f"{name}: the simulator does not run this verb")
        call.error(f"{name}: not simulated")
    else:
        await fn(call, verb)
    await call.verb_status("finished", reported)


async def task_status(call: VerbContext, verb: dict[str, Any], event: str, **extra: Any) -> None:
    """A verb's own ``verb:status`` (``Task.notifyStatus``, ``task.js`` ~216): key ``verb``, not ``name``."""
    if call.notify_events:
        data: dict[str, Any] = {"event": event, **extra, "verb": verb["verb"]}
        if verb.get("id") is not None:
            data["id"] = verb["id"]
        await call.notify("verb:status", data)


# registers the runners; background after ai and gather: its config and gather runners wrap theirs,
# amd's config (imported by dial) wraps background's, background_listen's wraps amd's
from . import ai, basic, dial, gather, media, rooms  # noqa: E402,F401,I001
from . import background  # noqa: E402,F401,I001
from . import background_listen  # noqa: E402,F401,I001
