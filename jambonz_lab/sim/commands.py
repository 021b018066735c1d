"""Commands from the app, applied as feature-server 0.9.8 applies them (protocol doc §3.3)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..exceptions import VerbError
from ..protocol.verbs import normalize_verb

if TYPE_CHECKING:
    from .context import VerbContext

__all__ = ["apply_command"]

# commands that act on the running verb or call; the simulator records them
RECORDED = {
    "mute:status": ("mute_status", ("mute", "unmute")),
    "conf:mute-status": ("conf_mute_status", ("mute", "unmute")),
    "conf:hold-status": ("conf_hold_status", ("hold", "unhold")),
    "listen:status": ("listen_status", ("pause", "resume", "silence")),
    "stream:status": ("stream_status", ("pause", "resume", "silence")),
    "transcribe:status": ("transcribe_status", ("pause", "resume", "silence")),
}


def apply_command(call: VerbContext, msg: dict[str, Any]) -> None:
    name = msg["command"]
    data = msg.get("data")
    leg = msg.get("callSid")
    handler = call.listeners.get(name)
    if handler is not None:  # a running verb (llm, TTS stream) takes it
        handler(msg)
        return
    if name == "redirect":
        _redirect(call, data, bool(msg.get("queueCommand")))
    elif name == "call:status":
        if not isinstance(data, dict):
            call.note("no-op", "call:status with string data is a no-op in jambonz 0.9.8")
        elif data.get("call_status") == "completed" and call.answered:  # needs the dialog (~1493)
            call.end("jambonz")
        elif data.get("call_status") == "no-answer" and not call.answered:
            call.end("jambonz", 503, "Service Unavailable")
        else:
            call.note("no-op", f"call:status {data.get('call_status')!r} has no effect now")
    elif name in RECORDED:
        key, allowed = RECORDED[name]
        if isinstance(data, dict) and data.get(key) in allowed:
            call.note("command", f"{name} {data[key]}" + (f" on {leg}" if leg else ""))
        elif name == "mute:status" and data in allowed:
            call.note("command", f"{name} {data}")
        else:
            call.note("no-op", f"{name}: jambonz 0.9.8 reads {{{key}: ...}}; {data!r} does nothing")
    elif name == "dtmf":
        if isinstance(data, dict) and isinstance(data.get("dtmf"), dict) and "digit" in data["dtmf"]:
            call.note("command", f"dtmf {data['dtmf']['digit']} sent as SIP INFO")
        else:
            call.note(
                "error", "dtmf: jambonz 0.9.8 reads {dtmf: {digit, duration}}; this throws (logged only)"
            )
    elif name == "sip:request":
        if isinstance(data, dict) and isinstance(data.get("sip_request"), dict):
            call.note("command", f"sip:request {data['sip_request'].get('method')}")
        else:
            call.note(
                "error", "sip:request: jambonz 0.9.8 reads {sip_request: {...}}; this throws (logged only)"
            )
    elif name == "whisper":
        _whisper(call, data)
    elif name == "config":
        _config(call, data)
    elif name in ("record", "dub", "boostAudioSignal", "media:path", "conf:participant-action", "llm:update"):
        call.note("command", f"{name} {data!r}")
    elif name in ("tts:tokens", "tts:flush", "tts:clear"):
        from .verbs.ai import tts_stream

        tts_stream(call)
        call.listeners[name](msg)
    elif name == "tag":
        call.note("invalid-command", "tag is not a WebSocket command in jambonz 0.9.8; use the tag verb")
    else:
        call.note("invalid-command", f"invalid command {name!r}")


def _redirect(call: VerbContext, data: Any, queue: bool) -> None:
    if isinstance(data, list):
        verbs = call.accept_verbs(data, "redirect command")
        if not verbs:
            return  # dropped silently by jambonz
        if queue:
            call.append_stack(verbs)
        else:
            call.replace_stack(verbs)
    elif isinstance(data, dict) and data.get("call_hook"):
        asyncio.get_running_loop().create_task(_live_redirect(call, str(data["call_hook"])))
    elif isinstance(data, dict) and isinstance(data.get("parent_call"), list):
        verbs = call.accept_verbs(data["parent_call"], "redirect command")
        if verbs:
            call.replace_stack(verbs)
    else:
        call.note("no-op", f"redirect command with {type(data).__name__} data does nothing")


async def _live_redirect(call: VerbContext, hook: str) -> None:
    """``_lccCallHook`` (call-session.js ~1589–1651): the ack's verbs replace the stack (an empty
    array too); an ack without data still kills the current verb; invalid verbs change nothing."""
    from .engine import AckTimeout

    if hook.startswith(("http://", "https://")):
        call.note("http-hook", f"{hook} is an HTTP webhook; not sent on the socket")
        return
    try:
        data = await call.request("session:redirect", call.call_info(), hook)
    except AckTimeout:
        return
    if data is None:
        call.kill_current()
        return
    verbs = call.accept_verbs(data, f"ack to {hook}")
    if verbs or data == []:
        call.replace_stack(verbs)


def _whisper(call: VerbContext, data: Any) -> None:
    current = call.current
    if current is None or current.get("verb") not in ("dial", "listen"):  # call-session.js ~1813
        call.note("no-op", "whisper: only while a dial or listen verb runs (jambonz logs it)")
        return
    items = data.get("whisper") if isinstance(data, dict) else None
    items = [items] if isinstance(items, dict) else items
    if not isinstance(items, list):
        call.note("no-op", "whisper: jambonz reads {whisper: verb or [verbs]}")
        return
    for item in items:
        try:
            verb = normalize_verb(item)
        except VerbError as exc:
            call.note("error", f"whisper: {exc}")
            continue
        what = verb.get("text") if verb["verb"] == "say" else verb.get("url")
        call.heard("whisper", str(what))


def _config(call: VerbContext, data: Any) -> None:
    if not isinstance(data, dict):
        call.note("no-op", "config command needs an object")
        return
    try:
        verb = normalize_verb({"verb": "config", **data})
    except VerbError as exc:
        call.note("error", f"config command: {exc}")
        return
    if verb.get("notifyEvents"):
        call.notify_events = True
    call.config.update({k: v for k, v in verb.items() if k != "verb"})
