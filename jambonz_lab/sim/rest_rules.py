"""What jambonz's REST API refuses, and how a call looks in its answers (no I/O).

The checks are the api-server's (``lib/routes/api/accounts.js``) followed by the feature
server's (``lib/http-routes/schemas/create-call.js``, ``api/update-call.js``); a
:class:`Refusal` is the status and body the api-server answers with. ``call_record`` is a
call as ``GET /v1/Accounts/{sid}/Calls`` shows it: the CallInfo the feature server wrote to
redis (``realtimedb-helpers`` ``update-call-status.js``: objects and nulls dropped, every
value a string), snake-cased, with ``duration`` and ``sip_status`` made numbers again
(``coerceNumbers``, accounts.js ~271).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SPEECH_KEYS",
    "UPDATE_KEYS",
    "Refusal",
    "bad_request",
    "call_record",
    "check_create",
    "check_update",
    "valid_sid",
]

#: ``validateUpdateCall`` (accounts.js ~293–312): one of these per request (whisper may come along)
UPDATE_KEYS = (
    "call_hook",
    "child_call_hook",
    "call_status",
    "listen_status",
    "transcribe_status",
    "conf_hold_status",
    "conf_mute_status",
    "mute_status",
    "sip_request",
    "record",
    "tag",
    "dtmf",
    "conferenceParticipantAction",
    "dub",
    "boostAudioSignal",
    "media_path",
)
#: without an ``application_sid`` createCall needs all five (accounts.js ~433–441)
SPEECH_KEYS = (
    "speech_synthesis_vendor",
    "speech_synthesis_language",
    "speech_synthesis_voice",
    "speech_recognizer_vendor",
    "speech_recognizer_language",
)
_ENUMS = {  # accounts.js ~332–346
    "call_status": ("completed", "no-answer"),
    "listen_status": ("pause", "silence", "resume"),
    "mute_status": ("mute", "unmute"),
    "conf_hold_status": ("hold", "unhold"),
    "conf_mute_status": ("mute", "unmute"),
}
_PARTICIPANT_ACTIONS = ("tag", "untag", "coach", "uncoach", "mute", "unmute", "hold", "unhold")
_MEDIA_PATHS = ("no-media", "partial-media", "full-media")
_ABSOLUTE = re.compile(r"^(https?|wss?):")
#: the ``uuid`` package's ``validate``: versions 1–8, the RFC variant, or the nil / max uuid
_UUID = re.compile(
    r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    r"|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Refusal:
    """An answer that is not a success: the HTTP status and its body (JSON, or plain text)."""

    status: int
    body: dict[str, Any] | str


def bad_request(msg: str) -> Refusal:
    """``DbErrorBadRequest``: 400 ``{msg}`` (``lib/routes/api/error.js`` ~8)."""
    return Refusal(400, {"msg": msg})


#: ``BadRequestError`` (an account or call sid that is not a uuid): 400 with a fixed message (error.js ~4)
BAD_SID = Refusal(400, {"msg": "Bad request"})
#: the feature server refused createCall: the api-server answers a bare 500 (accounts.js ~1005–1013)
FS_REFUSED = Refusal(500, "Internal Server Error")


def valid_sid(sid: str) -> bool:
    """``validateSid`` (``lib/routes/api/utils.js`` ~140): the ``uuid`` package's ``validate``."""
    return _UUID.match(sid) is not None


def _truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON value (``{}`` and ``[]`` are true, ``0`` and ``""`` false)."""
    if isinstance(value, dict | list):
        return True
    return bool(value)


def _js_json(value: Any) -> str:
    """``JSON.stringify`` as a template literal shows it (``undefined`` for a missing value)."""
    return "undefined" if value is None else json.dumps(value, separators=(",", ":"))


def _check_to(to: Any) -> Refusal | None:
    """``validateTo`` (accounts.js ~381–397)."""
    if isinstance(to, dict):
        key = {"phone": "number", "teams": "number", "user": "name", "sip": "sipUri"}.get(str(to.get("type")))
        if key is not None and isinstance(to.get(key), str):
            return None
    return bad_request(f"missing or invalid to property: {_js_json(to)}")


def _hook(body: dict[str, Any], key: str) -> Refusal | None:
    """A string hook becomes ``{url, method: POST}``; an object needs a string url (accounts.js ~446–465)."""
    hook = body.get(key)
    if isinstance(hook, str) and hook:
        body[key] = hook = {"url": hook, "method": "POST"}
    if not isinstance(hook, dict):
        return None
    what = "call_hook" if key == "call_hook" else "call_status_hook"
    if not isinstance(hook.get("url"), str):
        return bad_request(f"{what} must be string or an object containing a url property")
    if not _ABSOLUTE.match(hook["url"]):
        return bad_request(f"{what} url be an absolute url")
    return None


def _is_int(value: Any) -> bool:
    """express-validator's ``isInt`` on a JSON value (its string form: ``30`` and ``"30"`` pass)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return value.is_integer()
    return re.fullmatch(r"[-+]?[0-9]+", str(value)) is not None


def check_create(body: dict[str, Any]) -> Refusal | None:
    """createCall's body, checked as the api-server then the feature server check it.

    Rewrites ``call_hook`` / ``call_status_hook`` strings into objects, as the api-server does.
    """
    if not _truthy(body.get("from")):  # validateCreateCall (accounts.js ~408)
        return bad_request("missing from parameter")
    refusal = _check_to(body.get("to"))
    if refusal is not None:
        return refusal
    if body.get("application_sid"):  # lookupAppBySid: the simulator has no applications (~411–430)
        return bad_request(f"application_sid not found {body['application_sid']}")
    body.pop("application_sid", None)
    if not all(_truthy(body.get(k)) for k in SPEECH_KEYS):
        return bad_request(
            "either application_sid or set of speech_synthesis_vendor, speech_synthesis_language, "
            "speech_synthesis_voice, speech_recognizer_vendor, speech_recognizer_language required"
        )
    if not _truthy(body.get("call_hook")):
        return bad_request("either call_hook or application_sid required")
    for key in ("call_hook", "call_status_hook"):
        refusal = _hook(body, key)
        if refusal is not None:
            return refusal
    return _feature_server_schema(body)


def _feature_server_schema(body: dict[str, Any]) -> Refusal | None:
    """``createCallSchema`` (feature-server ``schemas/create-call.js``): a 400 there is a 500 here."""
    frm = body.get("from")
    if not isinstance(frm, str) or not 1 <= len(frm) <= 256:
        return FS_REFUSED
    for key in ("to", "amd", "tag", "call_hook", "call_status_hook"):
        if key in body and body[key] is not None and not isinstance(body[key], dict):
            return FS_REFUSED
    for key in ("timeout", "timeLimit"):
        if body.get(key) is not None and not _is_int(body[key]):
            return FS_REFUSED
    for key in ("fromHost", "callerName", *SPEECH_KEYS):
        if body.get(key) is not None and not isinstance(body[key], str):
            return FS_REFUSED
    if body.get("answerOnBridge") is not None and not isinstance(body["answerOnBridge"], bool):
        return FS_REFUSED
    return None


def check_update(body: Mapping[str, Any]) -> Refusal | None:
    """updateCall's body: ``validateUpdateCall`` (accounts.js ~293–379)."""
    has = {key for key in UPDATE_KEYS if _truthy(body.get(key))}
    count = len(has)
    if count == 0 and not _truthy(body.get("whisper")):
        return bad_request("no valid options supplied to updateCall")
    pair = has == {"call_hook", "child_call_hook"} or (
        "conf_hold_status" in has and _truthy(body.get("waitHook"))
    )
    if count > 2 or (count == 2 and not pair):
        return bad_request("multiple options are not allowed in updateCall")
    for key, allowed in _ENUMS.items():
        if _truthy(body.get(key)) and body[key] not in allowed:
            return bad_request(f"invalid {key}")
    return _check_update_values(body)


def _check_update_values(body: Mapping[str, Any]) -> Refusal | None:
    sip = body.get("sip_request")
    if _truthy(sip) and not (
        isinstance(sip, dict) and all(_truthy(sip.get(k)) for k in ("method", "content_type", "content"))
    ):
        return bad_request("sip_request requires method, content_type and content properties")
    record = body.get("record")
    if _truthy(record):
        action = record.get("action") if isinstance(record, dict) else None
        if not _truthy(action):
            return bad_request("record requires action property")
        assert isinstance(record, dict)
        if not _truthy(record.get("siprecServerURL")) and record.get("type") != "cloud":
            return bad_request("record requires siprecServerURL property when starting recording")
    dtmf = body.get("dtmf")
    if _truthy(dtmf) and not (isinstance(dtmf, dict) and _truthy(dtmf.get("digit"))):
        return bad_request("invalid dtmf")
    if _truthy(body.get("tag")) and not isinstance(body["tag"], dict):
        return bad_request("invalid tag data")
    action = body.get("conferenceParticipantAction")
    if _truthy(action):
        what = action.get("action") if isinstance(action, dict) else None
        if what not in _PARTICIPANT_ACTIONS:
            return bad_request(f"conferenceParticipantAction invalid action property {_js_str(what)}")
        assert isinstance(action, dict)
        if what in ("tag", "coach") and not _truthy(action.get("tag")):
            return bad_request(f"conferenceParticipantAction requires tag property when action is '{what}'")
    if _truthy(body.get("media_path")) and body["media_path"] not in _MEDIA_PATHS:
        return bad_request("invalid media_path")
    return None


def _js_str(value: Any) -> str:
    """A value in a JavaScript template literal."""
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def call_record(info: Mapping[str, Any], service_url: str) -> dict[str, Any]:
    """A call as the REST API lists it (see the module docstring)."""
    record: dict[str, Any] = {"service_url": service_url}
    for key, value in info.items():
        if value is None or isinstance(value, dict | list):
            continue
        record[_snake(key)] = _js_str(value)
    for key in ("duration", "sip_status"):
        if record.get(key):
            record[key] = int(float(record[key]))
    return record


def _snake(key: str) -> str:
    """``snakeCase`` (api-server ``lib/utils/snake-case.js``): each capital becomes ``_`` + lower."""
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), key)
