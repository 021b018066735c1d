"""Kazoo webhooks (HTTP push), pure: query-string flattening, channel hook payloads, hook
configs, the auto-disable bookkeeping and the flat key columns (platforms.md §1.4, §4).

No I/O, no clock: times are passed in. The receiver on the lab's HTTP server and the
Kazoo-side sender (:mod:`jambonz_lab.platforms.kazoo_webhooks`) build on it.

Example::

    from jambonz_lab.protocol.kazoo_webhooks import channel_payload, to_querystring
    body = to_querystring(channel_payload("channel_create", event, cluster_id="lab"))
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote_plus

from . import kazoo as kazoo_wire
from .kazoo import GREGORIAN_OFFSET

__all__ = [
    "DISABLED_MESSAGE",
    "FLAT_COLUMNS",
    "FORMATS",
    "HOOK_EVENTS",
    "HTTP_VERBS",
    "RESERVED_CCVS",
    "HookDisabler",
    "WebhookConfig",
    "channel_payload",
    "clamp_retries",
    "flat",
    "from_querystring",
    "hook_event_for",
    "matches",
    "to_querystring",
]

#: the hook names a webhook document may carry (``all`` matches every event)
HOOK_EVENTS = (
    "channel_create",
    "channel_answer",
    "channel_bridge",
    "channel_destroy",
    "parking",
    "object",
    "notifications",
    "sms",
    "mms",
    "all",
)
HTTP_VERBS = ("get", "post", "put")
FORMATS = ("form-data", "json")

#: ``pvt_disabled_message`` (shown as ``disable_reason``) of a hook the disabler switched off
DISABLED_MESSAGE = "too many failed attempts"

#: CCVs lifted to the top level or internal to Kazoo, so not repeated in ``custom_channel_vars``
#: (Kazoo's list is the ``call_command.reserved_ccv_keys`` config; this set is our choice [inferred])
RESERVED_CCVS = frozenset(
    {
        "account_id",
        "authorizing_id",
        "authorizing_type",
        "owner_id",
        "reseller_id",
        "realm",
        "username",
        "channel_authorized",
        "global_resource",
        "resource_id",
        "emergency_resource",
        "call_forward",
        "original_number",
        "inception",
        "application_name",
        "application_node",
        "bridge_id",
        "fetch_id",
        "ecallmgr_node",
    }
)

_EVENT_TO_HOOK = {
    "CHANNEL_CREATE": "channel_create",
    "CHANNEL_ANSWER": "channel_answer",
    "CHANNEL_BRIDGE": "channel_bridge",
    "CHANNEL_DESTROY": "channel_destroy",
    "CHANNEL_DISCONNECTED": "channel_destroy",
    "PARK_PARKED": "parking",
    "PARK_RETRIEVED": "parking",
    "PARK_ABANDONED": "parking",
}
# keys the parking hook drops from the normalized event (webhooks_parking:format/1)
_PARKING_DROPPED = ("node", "msg_id", "app_version", "app_name", "event_category", "custom_channel_vars")

# -- query strings ------------------------------------------------------------------------

# Kazoo's kz_http_util:urlencode keeps only these bytes; space becomes '+', the rest %XX (upper case)
_SAFE = "-._~"
# key characters that would break the query string; Kazoo sends keys raw, we escape just these
_KEY_UNSAFE = frozenset("&=[]%+#? ;")


def _encode_value(value: str) -> str:
    return quote(value, safe=_SAFE + " ", encoding="utf-8", errors="replace").replace(" ", "+")


def _encode_key(key: str) -> str:
    if all(" " < ch < "\x7f" and ch not in _KEY_UNSAFE for ch in key):
        return key
    return _encode_value(key)


def _scalar(value: Any) -> str | None:
    """A leaf as Kazoo writes it, or None for a null (left out)."""
    if value is None:
        return None
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        # Erlang float_to_list/1 is "%.20e"; Kazoo then keeps two digits after the point
        # and drops the exponent (so 1.5 → "1.50" and 1.5e10 → "1.50": Kazoo's own quirk)
        text = f"{value:.20e}"
        return text[: text.index(".") + 3]
    if isinstance(value, str):
        return value
    return str(value)


def _flatten(obj: Mapping[Any, Any], prefix: str) -> list[str]:
    parts: list[str] = []
    for raw_key, value in obj.items():
        key = _encode_key(str(raw_key))
        name = f"{prefix}[{key}]" if prefix else key
        if isinstance(value, Mapping):
            # an empty object contributes an empty part, as in Kazoo ("a=1&&b=2")
            parts.append("&".join(_flatten(value, name)))
        elif isinstance(value, list | tuple):
            items = []
            for item in value:
                if isinstance(item, Mapping | list | tuple):
                    # Kazoo would crash here; we write the item's own flat form (lossy)
                    text = _scalar(to_querystring(item) if isinstance(item, Mapping) else str(item))
                else:
                    text = _scalar(item)
                if text is not None:
                    items.append(f"{name}[]={_encode_value(text)}")
            parts.append("&".join(items))
        else:
            text = _scalar(value)
            if text is None:
                continue  # Kazoo drops undefined values before flattening (a literal null crashes it)
            parts.append(f"{name}={_encode_value(text)}")
    return parts


def to_querystring(payload: Mapping[str, Any]) -> str:
    """Flatten a payload like Kazoo's ``kz_http_util:json_to_querystring`` (GET query, form body).

    A nested object becomes ``parent[child]=v``, a list repeated ``key[]=v``, booleans
    ``true`` / ``false``; values are URL-encoded (unreserved bytes kept, space as ``+``, the rest
    ``%XX`` of the UTF-8 bytes). Faithful quirks: an empty object or list leaves an empty part
    (``a=1&&b=2``), floats keep two decimals. Keys are written raw as Kazoo does, except that
    characters which would break the string (``& = [ ] % + # ? ;``, space, control, non-ASCII) are
    escaped (Kazoo would send a broken string). ``None`` values are left out.

    >>> to_querystring({"a": "x y", "ccv": {"owner_id": "o1"}, "l": [1, True]})
    'a=x+y&ccv[owner_id]=o1&l[]=1&l[]=true'
    """
    return "&".join(_flatten(payload, ""))


def _split_key(raw: str) -> list[str]:
    """``a[b][]`` → ``["a", "b", ""]`` (split on the raw key, then decode each part)."""
    start = raw.find("[")
    if start <= 0 or not raw.endswith("]"):
        return [unquote_plus(raw)]
    parts = [raw[:start]]
    rest = raw[start:]
    while rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            return [unquote_plus(raw)]
        parts.append(rest[1:end])
        rest = rest[end + 1 :]
    if rest:
        return [unquote_plus(raw)]
    return [unquote_plus(p) for p in parts]


def _assign(target: dict[str, Any], path: list[str], value: str) -> None:
    node: Any = target
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if last:
            current = None if isinstance(node, list) else node.get(part)
            if isinstance(node, list):
                node.append(value)
            elif current is None:
                node[part] = value
            elif isinstance(current, list):
                current.append(value)
            elif isinstance(current, dict):
                current[""] = value  # "a[b]=1&a=2": keep both
            else:
                node[part] = [current, value]  # a repeated plain key
            return
        following = path[i + 1]
        if isinstance(node, list):
            # a list of objects is not something Kazoo writes: open a new object per item
            child: dict[str, Any] = {}
            node.append(child)
            node = child
        want_list = following == "" and i + 1 == len(path) - 1
        current = node.get(part)
        if want_list:
            if isinstance(current, list):
                node = current
            elif current is None:
                node[part] = []
                node = node[part]
            else:  # a scalar (or object) already there: keep it as the first item
                node[part] = [current]
                node = node[part]
        else:
            if not isinstance(current, dict):
                node[part] = {} if current is None else {"": current}
            node = node[part]


def from_querystring(text: str) -> dict[str, Any]:
    """Rebuild the nested dict from a Kazoo query string or form body (inverse of
    :func:`to_querystring`).

    ``a[b][c]=v`` nests, ``k[]=v`` collects a list, a repeated plain key becomes a list (nothing
    is lost). **Form data loses types**: every leaf comes back as a string (``"true"``,
    ``"6"``, ``"63724349409"``), and an empty object or list leaves nothing. A raw ``?`` is
    taken as a separator too (Kazoo's GET appends ``?`` + query even when the hook's uri has a
    query, and a raw ``?`` never occurs in its encoded output), as are empty parts. Never raises.

    >>> from_querystring("a=x+y&ccv[owner_id]=o1&l[]=1&l[]=true")
    {'a': 'x y', 'ccv': {'owner_id': 'o1'}, 'l': ['1', 'true']}
    """
    out: dict[str, Any] = {}
    if not isinstance(text, str):
        return out
    for chunk in text.replace("?", "&").split("&"):
        if not chunk:
            continue
        raw_key, _, raw_value = chunk.partition("=")
        if not raw_key:
            continue
        path = _split_key(raw_key)
        if not path[0]:
            continue
        _assign(out, path, unquote_plus(raw_value))
    return out


# -- hook events and payloads -----------------------------------------------------------------


def hook_event_for(event_name: str) -> str | None:
    """The webhook ``hook_event`` of a call event name, or None when no channel hook fires for it.

    >>> hook_event_for("CHANNEL_DISCONNECTED"), hook_event_for("PARK_PARKED"), hook_event_for("CHANNEL_HOLD")
    ('channel_destroy', 'parking', None)
    """
    if not isinstance(event_name, str):
        return None
    return _EVENT_TO_HOOK.get(event_name.upper())


def _true(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def _seconds(value: Any) -> Any:
    """Blackhole samples carry durations as strings; the webhook sends integers."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


def channel_payload(
    hook_event: str,
    event_data: Mapping[str, Any],
    *,
    cluster_id: str,
    custom_data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The §1.4 channel hook payload from a normalized (blackhole-style, snake_case) call event.

    ``hook_event`` is ``channel_create`` / ``channel_answer`` / ``channel_bridge`` /
    ``channel_destroy`` / ``parking`` (an event name such as ``CHANNEL_CREATE`` is mapped with
    :func:`hook_event_for`). Keys whose value is undefined are left out; ``timestamp`` is a
    string (Gregorian seconds, as in Kazoo's samples); ``account_id``, ``authorizing_id``,
    ``owner_id``… are lifted from ``custom_channel_vars``; ``custom_data`` is merged in with its
    ``type`` / ``action`` keys stripped (its values win, as in ``kz_json:merge_jobjs``);
    ``cluster_id`` is added last. ``channel_bridge`` adds ``original_number`` and
    ``other_leg_destination_number``; ``channel_destroy`` the hangup cause and the durations.
    ``parking`` is the normalized event without internal keys, plus ``hook_event``.
    """
    kind = hook_event_for(hook_event) or str(hook_event).lower()
    data: Mapping[str, Any] = event_data if isinstance(event_data, Mapping) else {}
    raw_ccvs = data.get("custom_channel_vars")
    ccvs: Mapping[str, Any] = raw_ccvs if isinstance(raw_ccvs, Mapping) else {}

    body: dict[str, Any]
    if kind == "parking":
        body = {"hook_event": "parking"}
        body.update({k: v for k, v in data.items() if k not in _PARKING_DROPPED and v is not None})
        if "account_id" not in body and ccvs.get("account_id") is not None:
            body["account_id"] = ccvs["account_id"]
    else:
        was_global = _true(ccvs.get("global_resource"))
        timestamp = data.get("timestamp")
        cavs = data.get("custom_application_vars")
        body = {
            "hook_event": kind,
            "account_id": ccvs.get("account_id", data.get("account_id")),
            "authorizing_id": ccvs.get("authorizing_id"),
            "authorizing_type": ccvs.get("authorizing_type"),
            "call_direction": data.get("call_direction"),
            "call_forwarded": _true(ccvs.get("call_forward")),
            "call_id": data.get("call_id"),
            "callee_id_name": data.get("callee_id_name"),
            "callee_id_number": data.get("callee_id_number"),
            "caller_id_name": data.get("caller_id_name"),
            "caller_id_number": data.get("caller_id_number"),
            "custom_application_vars": dict(cavs) if isinstance(cavs, Mapping) else None,
            "custom_channel_vars": {k: v for k, v in ccvs.items() if k not in RESERVED_CCVS},
            "emergency_resource_used": _true(ccvs.get("emergency_resource")),
            "from": data.get("from"),
            "inception": data.get("inception", ccvs.get("inception")),
            "is_internal_leg": _true(data.get("channel_is_loopback")),
            "local_resource_id": None if was_global else ccvs.get("resource_id"),
            "local_resource_used": not was_global,
            "other_leg_call_id": data.get("other_leg_call_id"),
            "owner_id": ccvs.get("owner_id"),
            "request": data.get("request"),
            "reseller_id": ccvs.get("reseller_id"),
            "timestamp": None if timestamp is None else str(timestamp),
            "to": data.get("to"),
        }
        if kind == "channel_bridge":
            body["original_number"] = ccvs.get("original_number")
            body["other_leg_destination_number"] = data.get("other_leg_destination_number")
        elif kind == "channel_destroy":
            body["hangup_cause"] = data.get("hangup_cause")
            body["hangup_code"] = data.get("hangup_code")
            for key in ("duration_seconds", "ringing_seconds", "billing_seconds"):
                body[key] = _seconds(data.get(key))
        body = {k: v for k, v in body.items() if v is not None}
    if custom_data:
        body.update({k: v for k, v in custom_data.items() if k not in ("type", "action")})
    body["cluster_id"] = cluster_id
    return body


# -- hook documents --------------------------------------------------------------------------


def clamp_retries(value: Any, default: int = 2) -> int:
    """``retries`` as Kazoo reads it: an integer clamped to 1..5 (default 2); total attempts."""
    if isinstance(value, bool):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return default
    return max(1, min(5, number))


@dataclass
class WebhookConfig:
    """One webhook document (``PUT /v2/accounts/{id}/webhooks``) with Kazoo's defaults and clamps.

    ``http_verb`` defaults to ``post``, ``format`` to ``form-data`` (it applies to post/put
    only), ``retries`` is the total number of attempts, clamped to 1..5 (default 2).
    ``custom_data`` is merged into every payload (minus ``type`` / ``action``). ``account_id``
    is the hook's account (``X-Account-ID``; ``None``: the event's account);
    ``disable_reason`` is ``pvt_disabled_message`` once the disabler switched the hook off.
    Raises ``ValueError`` for an unknown verb, format or hook (Crossbar's schema refuses them).

    Example::

        WebhookConfig("calls", "http://127.0.0.1:8080/kazoo/hooks", "channel_create", format="json")
    """

    name: str
    uri: str
    hook: str = "all"
    http_verb: str = "post"
    format: str = "form-data"
    retries: int = 2
    custom_data: dict[str, Any] | None = None
    include_subaccounts: bool = False
    enabled: bool = True
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    account_id: str | None = None
    disable_reason: str | None = None

    def __post_init__(self) -> None:
        self.http_verb = str(self.http_verb or "post").lower()
        self.format = str(self.format or "form-data").lower()
        self.hook = str(self.hook or "").lower()
        self.retries = clamp_retries(self.retries)
        if self.http_verb not in HTTP_VERBS:
            raise ValueError(f"http_verb must be one of {', '.join(HTTP_VERBS)}, not {self.http_verb!r}")
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.hook not in HOOK_EVENTS:
            raise ValueError(f"hook must be one of {', '.join(HOOK_EVENTS)}, not {self.hook!r}")
        if not isinstance(self.uri, str) or not self.uri.startswith(("http://", "https://")):
            raise ValueError(f"uri must be an http(s) URL, not {self.uri!r}")

    def listing(self) -> dict[str, Any]:
        """The hook as a Crossbar listing shows it (``disable_reason`` only when disabled)."""
        row: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "uri": self.uri,
            "hook": self.hook,
            "http_verb": self.http_verb,
            "format": self.format,
            "retries": self.retries,
            "include_subaccounts": self.include_subaccounts,
            "enabled": self.enabled,
        }
        if self.custom_data:
            row["custom_data"] = dict(self.custom_data)
        if self.account_id is not None:
            row["account_id"] = self.account_id
        if self.disable_reason is not None:
            row["disable_reason"] = self.disable_reason
        return row


def matches(hook: str, hook_event: str) -> bool:
    """True when a hook document's ``hook`` fires for ``hook_event`` (``all`` matches everything).

    >>> matches("all", "channel_create"), matches("channel_create", "channel_destroy")
    (True, False)
    """
    if not isinstance(hook, str) or not isinstance(hook_event, str):
        return False
    wanted = hook.lower()
    return wanted == "all" or wanted == hook_event.lower()


class HookDisabler:
    """Kazoo's webhook auto-disable bookkeeping (``webhooks_disabler``), with explicit times.

    Every failed attempt (a transport error or a non-200 answer) is noted with its time in
    milliseconds; :meth:`check` (Kazoo runs it every ``window_ms / 4``) returns the hooks with
    at least ``limit`` failures younger than ``window_ms`` and forgets their failures. A failure
    exactly ``window_ms`` old has expired.

    Example::

        d = HookDisabler()
        for t in range(6):
            d.failure("hook1", t * 1000)
        d.check(6000)   # ['hook1']
    """

    def __init__(self, window_ms: int = 60_000, limit: int = 6) -> None:
        self.window_ms = window_ms
        self.limit = limit
        self._failures: dict[str, list[float]] = {}

    def failure(self, hook_id: str, now_ms: float) -> None:
        """Note one failed attempt of ``hook_id`` at ``now_ms``."""
        self._failures.setdefault(hook_id, []).append(now_ms)

    def count(self, hook_id: str, now_ms: float) -> int:
        """Failures of ``hook_id`` still inside the window at ``now_ms``."""
        return sum(1 for t in self._failures.get(hook_id, ()) if now_ms - t < self.window_ms)

    def check(self, now_ms: float) -> list[str]:
        """The hooks to disable now; expired failures are dropped, disabled hooks forgotten."""
        disable = []
        for hook_id in list(self._failures):
            live = [t for t in self._failures[hook_id] if now_ms - t < self.window_ms]
            if len(live) >= self.limit:
                disable.append(hook_id)
                del self._failures[hook_id]
            elif live:
                self._failures[hook_id] = live
            else:
                del self._failures[hook_id]
        return disable

    def reset(self, hook_id: str) -> None:
        """Forget the failures of ``hook_id`` (it was re-enabled)."""
        self._failures.pop(hook_id, None)

    @property
    def pending(self) -> bool:
        """True while some failure is remembered (the sender keeps its check timer only then)."""
        return bool(self._failures)


# -- flat columns ----------------------------------------------------------------------------

#: the key columns of a Kazoo row: the blackhole rows' own (:data:`.kazoo.FLAT_COLUMNS`), so both line up
FLAT_COLUMNS: tuple[str, ...] = kazoo_wire.FLAT_COLUMNS

_HOOK_TO_EVENT = {
    "channel_create": "CHANNEL_CREATE",
    "channel_answer": "CHANNEL_ANSWER",
    "channel_bridge": "CHANNEL_BRIDGE",
    "channel_destroy": "CHANNEL_DESTROY",
}


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return value if isinstance(value, str) else str(value)


def _event_ts(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(number):
        return None
    return float(int(number) - GREGORIAN_OFFSET)


def flat(type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The key columns (exactly :data:`FLAT_COLUMNS`) of a webhook row's payload.

    ``name`` is the blackhole event name where there is one (``channel_create`` →
    ``CHANNEL_CREATE``; parking → the payload's ``event_name``, e.g. ``PARK_PARKED``), so
    blackhole and webhook rows line up; ``event_ts`` is ``int(timestamp) − 62167219200`` (Unix
    seconds); ``subscribed_key`` is always None (a blackhole notion). Never raises.
    """
    body: dict[str, Any] = payload if isinstance(payload, dict) else {}
    hook_event = body.get("hook_event")
    if not isinstance(hook_event, str) or not hook_event:
        hook_event = type if isinstance(type, str) else None
    name: str | None = None
    if isinstance(hook_event, str):
        lowered = hook_event.lower()
        if lowered in _HOOK_TO_EVENT:
            name = _HOOK_TO_EVENT[lowered]
        elif lowered == "parking":
            event_name = body.get("event_name")
            name = event_name if isinstance(event_name, str) and event_name else "PARKING"
        else:
            name = hook_event.upper()
    caller = body.get("caller_id_number", body.get("caller_id_Number"))
    ccvs = body.get("custom_channel_vars")
    account = body.get("account_id")
    if account is None and isinstance(ccvs, dict):
        account = ccvs.get("account_id")
    return {
        "event_ts": _event_ts(body.get("timestamp")),
        "name": name,
        "call_id": _text(body.get("call_id")),
        "other_leg_call_id": _text(body.get("other_leg_call_id")),
        "call_direction": _text(body.get("call_direction")),
        "caller_id_number": _text(caller),
        "callee_id_number": _text(body.get("callee_id_number")),
        "account_id": _text(account),
        "hangup_cause": _text(body.get("hangup_cause")),
        "subscribed_key": None,
    }
