"""Commands from the app, applied as feature-server 0.9.8 applies them (protocol doc §3.3).

A REST call hears commands from its INVITE on (its ``CallSession`` exists from then,
``call-session.js`` ~137): while it rings, ``call:status no-answer`` and any ``redirect``
cancel the INVITE (487). ``config`` runs the config verb itself, beside the running verb;
``dial`` places a new REST call (its own socket, its ``CallResult`` in the parent's ``sessions``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..exceptions import VerbError
from ..protocol.verbs import normalize_verb
from .context import hook_url, spawn

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
        elif data.get("call_status") == "no-answer" and call.ringing:  # req.cancel() (~1504–1510)
            call.note("cancelled", "call:status no-answer while ringing: jambonz CANCELs the INVITE (487)")
            call.end("jambonz", 487, "Request Terminated")
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
    elif name == "dial":
        _dial(call, data)
    elif name == "record":  # call-session.js ~2325: notifyRecordOptions, not awaited
        call.recording.apply(call, data)
    elif name in ("dub", "boostAudioSignal", "media:path", "conf:participant-action", "llm:update"):
        call.note("command", f"{name} {data!r}")
    elif name in ("tts:tokens", "tts:flush", "tts:clear"):
        from .verbs.ai import tts_stream

        tts_stream(call)
        call.listeners[name](msg)
    elif name == "tag":
        call.note("invalid-command", "tag is not a WebSocket command in jambonz 0.9.8; use the tag verb")
    else:
        call.note("invalid-command", f"invalid command {name!r}")


def _cancel_ringing(call: VerbContext, why: str) -> None:
    """A REST call's new application while it rings: ``replaceApplication`` kills the rest:dial task,
    which CANCELs the INVITE (``rest_dial.js`` ~56–67): the call ends ``no-answer`` 487. The new verbs
    start on the early-media endpoint and go with it when the 487 comes (``create-call.js`` ~372–381)."""
    call.note("cancelled", f"{why} while ringing kills rest:dial: jambonz CANCELs the INVITE (487)")
    call.end("jambonz", 487, "Request Terminated")


def _redirect(call: VerbContext, data: Any, queue: bool) -> None:
    if isinstance(data, list):
        verbs = call.accept_verbs(data, "redirect command")
        if not verbs:
            return  # dropped silently by jambonz
        if queue:
            if call.ringing:
                call.note("redirect", "queued while ringing: the session:new ack replaces them at the answer")
            call.append_stack(verbs)
        elif call.ringing:
            _cancel_ringing(call, "redirect")
        else:
            call.replace_stack(verbs)
    elif isinstance(data, dict) and data.get("call_hook"):
        spawn(_live_redirect(call, str(data["call_hook"])))
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
        await call.handover(hook)  # the socket hands over to webhooks (ws-requestor.js ~95–104)
    try:
        data = await call.request("session:redirect", call.call_info(), hook)
    except AckTimeout:
        return
    if call.ringing and (data is None or isinstance(data, list)):  # replace or kill: rest:dial dies
        _cancel_ringing(call, "redirect {call_hook}")
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


#: config settings that need the call's media endpoint (config.js ~67–73, ~151, ~249, ~265–313)
MEDIA_SETTINGS = ("bargeIn", "record", "listen", "amd", "boostAudioSignal", "transcribe")


def _config(call: VerbContext, data: Any) -> None:
    """``_lccConfig`` (call-session.js ~1854–1876): the config verb's own ``exec``, not awaited by the
    command handler, so beside the running verb (not killed, not queued), with no ``verb:status``
    and no precondition: it never answers the call. An inbound call not answered yet has no endpoint
    (``this.ep``), so the media settings fail there (jambonz logs the error)."""
    from .verbs import RUNNERS, config_needs_media

    if not isinstance(data, dict):
        call.note("no-op", "config command needs an object")
        return
    try:
        verb = normalize_verb({"verb": "config", **data})
    except VerbError as exc:
        call.note("error", f"config command: {exc}")
        return
    if config_needs_media(verb) and not call.answered and call.direction == "inbound":
        dropped = [k for k in MEDIA_SETTINGS if k in verb]
        call.note("no-endpoint", f"config command before the answer: no endpoint; {', '.join(dropped)} fail")
        verb = {k: v for k, v in verb.items() if k not in MEDIA_SETTINGS}
    spawn(_run_config(call, RUNNERS["config"], verb))


async def _run_config(call: VerbContext, run: Any, verb: dict[str, Any]) -> None:
    from .engine import Hangup

    try:
        await run(call, verb)
    except (Hangup, asyncio.CancelledError):
        pass
    except Exception as exc:  # noqa: BLE001 - jambonz logs it (call-session.js ~1872)
        call.note("error", f"config command: {type(exc).__name__}: {exc}")


# -- dial: a new REST call (createCall) ---------------------------------------------------------

TARGET_TYPES = ("phone", "teams", "user", "sip")


def _create_call_problem(data: dict[str, Any]) -> str | None:
    """What createCall refuses (``schemas/create-call.js``; ``create-call.js`` ~127–152, ~251)."""
    frm, to = data.get("from"), data.get("to")
    if not isinstance(frm, str) or not 1 <= len(frm) <= 256:
        return "400 Invalid from"
    if not isinstance(to, dict):
        return "400 Invalid to"
    for key in ("tag", "amd"):  # the hooks may be strings: the command path makes them objects (~1562)
        if key in data and not isinstance(data[key], dict):
            return f"400 Invalid {key}"
    for key in ("timeout", "timeLimit"):
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], int)):
            return f"400 Invalid {key}"
    if to.get("type") not in TARGET_TYPES:
        return f"500: no dial target for to.type {to.get('type')!r}"
    if not hook_url(data.get("call_hook")):
        return "500: no call_hook (an application_sid is not simulated)"
    return None


def _absolute(url: str, base: str) -> str:
    """A relative hook goes to the session's base URL: scheme://host:port (``transformInputIfRequired``
    ~1577, ``base-requestor.js`` ~26)."""
    if not url.startswith("/"):
        return url
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}{url}"


def _dial(call: VerbContext, data: Any) -> None:
    """``_lccCallDial`` (call-session.js ~1521–1535): the data (plus the account) is POSTed to the
    server's own createCall, which places a REST call: its own ``WsRequestor`` on the ``call_hook``
    (a new socket), ``call:status`` trying → ringing → in-progress, then ``session:new`` there; it is
    not this call's leg (no ``parent_call_sid``). The POST is not awaited (``bent(...)`` without
    ``await``), so a refusal never reaches the app: no ``jambonz:error``, no reply.

    The callee answers as ``caller.dial`` says for its number (``ring``, ``result``, ``talk``: it hangs
    up ``talk`` s after answering); the new call's result is in this call's ``result.sessions``."""
    from .caller import Caller
    from .clock import Clock
    from .engine import SimCall, SimOptions
    from .verbs.dial import target_key

    if not isinstance(data, dict | list):  # opts.account_sid = … throws in transformInputIfRequired (~1541)
        call.note("dial-failed", "dial command needs an object; jambonz:error with empty data (~1533)")
        spawn(call.notify("jambonz:error", {}))
        return
    # an array is an object: the POST goes out, and createCall refuses it
    problem = _create_call_problem(data) if isinstance(data, dict) else "400 Invalid from"
    if problem is not None or not isinstance(data, dict):
        call.note(
            "dial-failed", f"dial command: createCall answers {problem}; not awaited: the app hears none"
        )
        return
    url = _absolute(str(hook_url(data["call_hook"])), call.url)
    if not url.startswith(("ws://", "wss://")):
        call.note("http-hook", f"dial command: {url} is an HTTP webhook app; not simulated")
        return
    status_hook = hook_url(data.get("call_status_hook"))
    if status_hook and _absolute(status_hook, call.url) != url:
        call.note("not-simulated", "dial command: a call_status_hook of its own is HTTP; statuses stay here")
    number = target_key(data["to"])
    outcome = call.caller.outcome(number)
    time_limit = call.caller.time_limit
    if isinstance(data.get("timeLimit"), int):  # from the answer (rest_dial.js ~75)
        time_limit = min(time_limit, outcome.ring + data["timeLimit"])
    callee = Caller(
        number=number,
        answer=outcome,
        hangup_after=outcome.ring + outcome.talk,
        time_limit=time_limit,
        greeting=outcome.greeting,
    )
    attrs: dict[str, Any] = {"from_": data["from"]}
    if "timeout" in data:
        attrs["ring_timeout"] = data["timeout"]
    if isinstance(data.get("amd"), dict):
        attrs["amd"] = data["amd"]
    options = SimOptions(**{**vars(call.options), "seed": call.rng.getrandbits(32)})
    new = SimCall(
        url, callee, Clock(call.clock.kind), options, direction="outbound", tag=data.get("tag"), **attrs
    )
    call.note("dial", f"dial command: createCall placed {new.call_sid} to {number} on {url}")
    call.sessions.append(asyncio.get_running_loop().create_task(new.run()))
