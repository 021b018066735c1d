"""Inject commands in the shapes the feature server reads (protocol doc §3.3).

Each builder validates its arguments and returns ``(command, data)``. The
shapes follow feature-server 0.9.8's code, not the older docs: ``dtmf`` is
``{"dtmf": {"digit", "duration"}}`` and ``sip:request`` is
``{"sip_request": {…}}`` (the flat forms throw inside the server), status
commands use objects (the string forms are no-ops), and
``conf:participant-action`` knows ``kick``.

Example::

    name, data = mute_status("mute")   # ("mute:status", {"mute_status": "mute"})
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..exceptions import CommandError, VerbError
from .verbs import build_verb, normalize_verb

__all__ = [
    "boost_audio_signal",
    "call_status",
    "conf_hold_status",
    "conf_mute_status",
    "conf_participant_action",
    "config",
    "dtmf",
    "dub",
    "listen_status",
    "media_path",
    "mute_status",
    "record",
    "sip_request",
    "transcribe_status",
    "whisper",
]

Command = tuple[str, Any]

RECORD_ACTIONS = ("startCallRecording", "stopCallRecording", "pauseCallRecording", "resumeCallRecording")
PARTICIPANT_ACTIONS = ("tag", "untag", "coach", "uncoach", "hold", "unhold", "mute", "unmute", "kick")
MEDIA_PATHS = ("no-media", "partial-media", "full-media")
STREAM_STATES = ("pause", "resume", "silence")
_DIGITS = re.compile(r"[0-9A-Da-d*#w]+")
_GAIN = re.compile(r"^[+-]?\d+(\.\d+)?\s*dB$")


def _choice(command: str, name: str, value: object, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise CommandError(
            f"{command}: {name} must be one of {', '.join(map(repr, allowed))}, not {value!r}",
            command=command,
        )
    return str(value)


def _drop_none(**items: Any) -> dict[str, Any]:
    return {k: v for k, v in items.items() if v is not None}


def mute_status(status: str = "mute") -> Command:
    """Mute or unmute a leg during dial or conference."""
    return "mute:status", {"mute_status": _choice("mute:status", "status", status, ("mute", "unmute"))}


def conf_mute_status(status: str = "mute") -> Command:
    """Mute or unmute every non-moderator of the conference."""
    value = _choice("conf:mute-status", "status", status, ("mute", "unmute"))
    return "conf:mute-status", {"conf_mute_status": value}


def conf_hold_status(status: str = "hold", wait_hook: str | None = None) -> Command:
    """Hold (mute and deafen) or unhold a conference member."""
    value = _choice("conf:hold-status", "status", status, ("hold", "unhold"))
    return "conf:hold-status", _drop_none(conf_hold_status=value, wait_hook=wait_hook)


def conf_participant_action(action: str, tag: str | None = None, wait_hook: str | None = None) -> Command:
    """Act on a conference participant (``tag``, ``coach``, ``kick``, …)."""
    act = _choice("conf:participant-action", "action", action, PARTICIPANT_ACTIONS)
    if act in ("tag", "coach") and not tag:
        raise CommandError(
            f"conf:participant-action: action {act!r} needs a tag", command="conf:participant-action"
        )
    return "conf:participant-action", _drop_none(action=act, tag=tag, wait_hook=wait_hook)


def listen_status(status: str, *, stream: bool = False) -> Command:
    """Pause, resume or silence the running listen/stream (``stream=True`` names it stream)."""
    key = "stream" if stream else "listen"
    value = _choice(f"{key}:status", "status", status, STREAM_STATES)
    return f"{key}:status", {f"{key}_status": value}


def transcribe_status(status: str) -> Command:
    """Pause, resume or silence background or running transcription."""
    value = _choice("transcribe:status", "status", status, STREAM_STATES)
    return "transcribe:status", {"transcribe_status": value}


def record(
    action: str,
    *,
    type: str | None = None,
    recording_id: str | None = None,
    siprec_server_url: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Command:
    """Start, stop, pause or resume call recording (SIPREC or cloud)."""
    act = _choice("record", "action", action, RECORD_ACTIONS)
    if type is not None:
        _choice("record", "type", type, ("siprec", "cloud"))
    data = _drop_none(
        action=act,
        type=type,
        recordingID=recording_id,
        siprecServerURL=siprec_server_url,
        headers=dict(headers) if headers else None,
    )
    return "record", data


def whisper(verbs: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Command:
    """Say or play something to one party of a dial or listen (``say``/``play`` only)."""
    items = [verbs] if isinstance(verbs, Mapping) else list(verbs)
    if not items:
        raise CommandError("whisper: give at least one say or play verb", command="whisper")
    out = []
    for item in items:
        try:
            verb = normalize_verb(item)
        except VerbError as exc:
            raise CommandError(f"whisper: {exc}", command="whisper") from None
        if verb["verb"] not in ("say", "play"):
            raise CommandError(
                f"whisper: only say and play can be whispered, not {verb['verb']!r}", command="whisper"
            )
        out.append(verb)
    return "whisper", {"whisper": out if len(out) > 1 else out[0]}


def dtmf(digit: str, duration: int = 250) -> Command:
    """Send DTMF to the leg as SIP INFO (``{"dtmf": {"digit", "duration"}}``)."""
    if not isinstance(digit, str) or not _DIGITS.fullmatch(digit):
        raise CommandError(
            f"dtmf: digit must be DTMF characters (0-9, *, #, A-D, w), not {digit!r}", command="dtmf"
        )
    if not isinstance(duration, int) or isinstance(duration, bool) or duration <= 0:
        raise CommandError(
            f"dtmf: duration must be a positive number of ms, not {duration!r}", command="dtmf"
        )
    return "dtmf", {"dtmf": {"digit": digit, "duration": duration}}


def sip_request(
    method: str,
    *,
    content_type: str | None = None,
    content: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Command:
    """Send a SIP request (INFO, MESSAGE, NOTIFY, …) within the dialog."""
    if not isinstance(method, str) or not re.fullmatch(r"[A-Z]+", method):
        raise CommandError(
            f"sip:request: method must be an upper-case SIP method, not {method!r}", command="sip:request"
        )
    if content is not None and content_type is None:
        raise CommandError("sip:request: content needs a content_type", command="sip:request")
    body = _drop_none(
        method=method, content_type=content_type, content=content, headers=dict(headers or {}) or None
    )
    return "sip:request", {"sip_request": body}


def dub(action: str, track: str, **props: Any) -> Command:
    """Add, remove, silence or play on a dub track, validated as the dub verb."""
    return "dub", _verb_data("dub", dict(action=action, track=track, **props))


def config(**props: Any) -> Command:
    """Run a config verb at once (``config`` command), validated as the verb."""
    return "config", _verb_data("config", props)


def boost_audio_signal(level: int | float | str) -> Command:
    """Gain on the leg: a number of dB, or a string like ``"-2 dB"``."""
    ok = isinstance(level, int | float) and not isinstance(level, bool)
    if not ok and not (isinstance(level, str) and _GAIN.match(level.strip())):
        raise CommandError(
            f"boostAudioSignal: level must be a number or like '-2 dB', not {level!r}",
            command="boostAudioSignal",
        )
    return "boostAudioSignal", level


def media_path(path: str) -> Command:
    """Release or re-anchor media during a dial."""
    return "media:path", _choice("media:path", "path", path, MEDIA_PATHS)


def call_status(status: str = "completed") -> Command:
    """Hang up (``completed``) or, before answer, reject (``no-answer``) the call."""
    value = _choice("call:status", "status", status, ("completed", "no-answer"))
    return "call:status", {"call_status": value}


def _verb_data(verb: str, props: Mapping[str, Any]) -> dict[str, Any]:
    try:
        wire = build_verb(verb, props)
    except VerbError as exc:
        raise CommandError(str(exc), command=verb) from None
    wire.pop("verb")
    return wire
