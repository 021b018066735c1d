"""wazo-websocketd's wire protocol, both sides, without I/O (platforms.md §3).

What is here:

* client → server ops: :func:`op_subscribe`, :func:`op_start`, :func:`op_token`, :func:`op_ping`;
* server → client frames: :func:`server_frame` (encode, byte-compatible with the server's
  ``json.dumps``) and :func:`parse_server_frame` (v2 ``{"op","code","data"}`` frames, v1 raw
  bus bodies);
* close codes: :data:`CLOSE_CODES`, :func:`close_message`, :func:`closed_error` (→
  :exc:`~jambonz_lab.exceptions.WazoClosed`);
* the server side of one socket as a sans-I/O state machine (:class:`ServerSession`, states in
  :class:`SessionState`) with :func:`parse_handshake`, ACL matching (:func:`acl_matches`),
  delivery filtering (:func:`may_deliver`) and the token re-check interval
  (:func:`next_auth_check`) — the simulator drives it;
* event builders: :func:`bus_body` (bus headers merged with ``data``) and :func:`call_payload`
  (wazo-calld's Call), :func:`asterisk_time`, :func:`local_iso`;
* :func:`dedup_key`, and :data:`FLAT_COLUMNS` / :func:`flat` for the DataFrame layer.

Example::

    from jambonz_lab.protocol import wazo
    wazo.op_subscribe("call_created")      # '{"op": "subscribe", "data": {"event_name": "call_created"}}'
    session = wazo.ServerSession(version=2)
    session.authenticated(token_info).send  # ('{"op": "init", "code": 0, "data": {"version": 2}}',)

Pure: no asyncio, no sockets, no clock (times are arguments). Any thread.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import parse_qsl

from ..exceptions import WazoClosed

__all__ = [
    "ACK_OPS",
    "CALL_EVENTS",
    "CLOSE_AUTH_EXPIRED",
    "CLOSE_AUTH_FAILED",
    "CLOSE_CODES",
    "CLOSE_INTERNAL",
    "CLOSE_NO_TOKEN",
    "CLOSE_PROTOCOL_ERROR",
    "CLIENT_OPS",
    "FLAT_COLUMNS",
    "WEBSOCKETD_ACL",
    "Close",
    "Handshake",
    "Outcome",
    "ServerFrame",
    "ServerSession",
    "SessionState",
    "TokenInfo",
    "acl_matches",
    "asterisk_time",
    "bus_body",
    "call_payload",
    "close_message",
    "closed_error",
    "dedup_key",
    "flat",
    "local_iso",
    "may_deliver",
    "next_auth_check",
    "op_ping",
    "op_start",
    "op_subscribe",
    "op_token",
    "parse_handshake",
    "parse_iso",
    "parse_server_frame",
    "parse_utc",
    "server_frame",
    "token_allows",
    "is_tenant_wide",
    "utc_iso",
]

#: the ACL a token needs to open a websocketd session at all
WEBSOCKETD_ACL = "websocketd"

CLOSE_NO_TOKEN = 4001
CLOSE_AUTH_FAILED = 4002
CLOSE_AUTH_EXPIRED = 4003
CLOSE_PROTOCOL_ERROR = 4004
CLOSE_INTERNAL = 1011

#: close code → (the server's reason text, what it means in one line)
CLOSE_CODES: dict[int, tuple[str, str]] = {
    CLOSE_NO_TOKEN: ("no token", "the URL had no token= parameter and there was no X-Auth-Token header"),
    CLOSE_AUTH_FAILED: (
        "authentication failed",
        "the token is unknown or lacks the websocketd ACL (or a renewal token was refused)",
    ),
    CLOSE_AUTH_EXPIRED: (
        "authentication expired",
        "the token expired or was revoked and was not renewed with op:token in time",
    ),
    CLOSE_PROTOCOL_ERROR: (
        "",
        "protocol error: a frame the server could not accept (bad JSON, unknown op, bad data) "
        "or an unsupported version",
    ),
    CLOSE_INTERNAL: ("", "the server hit an unexpected error (bus connection lost, non-numeric version, …)"),
}

#: the ops a client may send; anything else closes the socket with 4004
CLIENT_OPS = ("subscribe", "start", "token", "ping")
#: the control ops the server answers with (the acks, init, pong)
ACK_OPS = ("init", "subscribe", "start", "token", "pong")
#: wazo-calld's call events (``data`` is a Call, see :func:`call_payload`)
CALL_EVENTS = ("call_created", "call_updated", "call_answered", "call_ended")


def close_message(code: int | None, reason: str = "") -> str:
    """One line saying what a close means.

    Example: ``close_message(4002, "authentication failed")`` →
    ``"wazo-websocketd closed the socket: 4002 authentication failed — the token is unknown or
    lacks the websocketd ACL (or a renewal token was refused)"``.
    """
    known = CLOSE_CODES.get(code) if code is not None else None
    words = reason or (known[0] if known else "")
    head = f"wazo-websocketd closed the socket: {code}" + (f" {words}" if words else "")
    return f"{head} — {known[1]}" if known else head


def closed_error(code: int, reason: str = "") -> WazoClosed:
    """The :exc:`WazoClosed` for a close code and reason."""
    return WazoClosed(close_message(code, reason), code=code, reason=reason)


# -- client → server ----------------------------------------------------------------------------


def _dump(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj)


def op_subscribe(event_name: str) -> str:
    """``{"op": "subscribe", "data": {"event_name": ...}}``; ``"*"`` subscribes to everything."""
    return _dump({"op": "subscribe", "data": {"event_name": event_name}})


def op_start() -> str:
    """``{"op": "start"}``: events flow only after this."""
    return _dump({"op": "start"})


def op_token(token: str) -> str:
    """``{"op": "token", "data": {"token": ...}}``: swap in a fresh token before the old one expires."""
    return _dump({"op": "token", "data": {"token": token}})


def op_ping(payload: str) -> str:
    """``{"op": "ping", "data": {"payload": ...}}``: answered by a pong in v2 only."""
    return _dump({"op": "ping", "data": {"payload": payload}})


# -- server → client ----------------------------------------------------------------------------


def server_frame(op: str, data: Any = None, code: int = 0) -> str:
    """A server frame exactly as wazo-websocketd writes it (``json.dumps`` with default separators)."""
    return json.dumps({"op": op, "code": code, "data": data})


@dataclass(frozen=True)
class ServerFrame:
    """One frame from the server.

    Attributes:
        op: ``init``, ``subscribe``, ``start``, ``token``, ``pong`` or ``event`` (a v1 raw body
            is reported as ``event`` too).
        code: the ``code`` field (``None`` for a v1 raw event body).
        data: the ``data`` field; for an event, the bus body (a dict with ``name``).
    """

    op: str
    code: int | None
    data: Any

    @property
    def body(self) -> dict[str, Any]:
        """The bus body of an event frame (``{}`` for the others)."""
        return self.data if self.op == "event" and isinstance(self.data, dict) else {}


def parse_server_frame(text: str | bytes, version: int = 2) -> ServerFrame:
    """Decode a server frame; raise ``ValueError`` (one line) when it is not one.

    v2: ``{"op": str, "code": int, "data": ...}``; an ``event`` carries the bus body as ``data``.
    v1: the control frames have the same shape; an event is the raw bus body (an object with a
    string ``name`` and no ``op``).
    """
    if not isinstance(text, str):
        raise ValueError(f"wazo-websocketd sends text frames; got a binary frame of {len(text)} bytes")
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"the frame's root is a JSON {type(obj).__name__}, not an object")
    if version == 1 and "op" not in obj:
        if not isinstance(obj.get("name"), str):
            raise ValueError("a v1 event body needs a string 'name'")
        return ServerFrame("event", None, obj)
    op = obj.get("op")
    if not isinstance(op, str):
        raise ValueError("the frame has no string 'op'")
    code = obj.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        raise ValueError(f"op {op!r} has no integer 'code'")
    data = obj.get("data")
    if op == "event" and not (isinstance(data, dict) and isinstance(data.get("name"), str)):
        raise ValueError("an event frame's 'data' must be the bus body: an object with a string 'name'")
    if op not in ACK_OPS and op != "event":
        raise ValueError(f"unknown op {op!r} from the server")
    return ServerFrame(op, code, data)


# -- the server side: handshake, ACL, filtering, session machine -------------------------------


@dataclass(frozen=True)
class Close:
    """Close the socket with ``code`` and ``reason``."""

    code: int
    reason: str = ""


@dataclass(frozen=True)
class Handshake:
    """What the connection request carried: the token and the protocol version."""

    token: str
    version: int


def parse_handshake(query: str, headers: Iterable[tuple[str, str]] = ()) -> Handshake | Close:
    """Read ``version`` and ``token`` like the server: version first (absent → 1; another integer →
    4004; not a number → 1011), then the token from the query, else from ``X-Auth-Token`` (any
    case), else 4001 ``no token``. Blank query values count as absent."""
    pairs = parse_qsl(query)
    version = 1
    for name, value in pairs:
        if name == "version":
            try:
                version = int(value)
            except ValueError:
                return Close(CLOSE_INTERNAL)
            if version not in (1, 2):
                return Close(CLOSE_PROTOCOL_ERROR)
            break
    token = next((value for name, value in pairs if name == "token"), None)
    if not token:
        token = next((value for name, value in headers if name.lower() == "x-auth-token"), None)
    if not token:
        return Close(CLOSE_NO_TOKEN, "no token")
    return Handshake(token, version)


@dataclass(frozen=True)
class TokenInfo:
    """What the server knows of a token (wazo-auth's answer, trimmed).

    Attributes:
        token: the token id.
        user_uuid, tenant_uuid, session_uuid: from the token's metadata.
        acl: the token's ACL patterns (dotted, with ``*`` / ``#`` wildcards, ``me`` for the user).
        expires_at: Unix time the token stops being valid.
        admin: ``metadata.admin`` (tenant admin: receives the whole tenant).
        purpose: ``metadata.purpose`` (``user``, ``internal``, ``external_api``).
    """

    token: str
    user_uuid: str
    tenant_uuid: str
    acl: tuple[str, ...]
    expires_at: float
    session_uuid: str = ""
    admin: bool = False
    purpose: str | None = None


def acl_matches(pattern: str, required: str, user_uuid: str | None = None) -> bool:
    """Whether the token ACL ``pattern`` grants ``required``.

    ``*`` stands for one dotted word (possibly empty), ``#`` for anything (dots included); a
    ``me`` word (``events.calls.me``) stands for ``user_uuid``.
    """
    if user_uuid is not None:
        if pattern.endswith(".me"):
            pattern = f"{pattern[:-3]}.{user_uuid}"
        pattern = pattern.replace(".me.", f".{user_uuid}.")
    regex = re.escape(pattern).replace(r"\*", "[^.]*").replace(r"\#", ".*")
    return re.fullmatch(regex, required, flags=re.DOTALL) is not None


def token_allows(token: TokenInfo, required: str | None) -> bool:
    """Whether any of the token's ACLs grants ``required`` (``None``: no ACL needed)."""
    if required is None:
        return True
    return any(acl_matches(p, required, token.user_uuid) for p in token.acl)


def is_tenant_wide(token: TokenInfo, master_tenant: str | None) -> bool:
    """Tenant admins, ``internal`` / ``external_api`` purposes and the master tenant see the tenant."""
    return token.admin or token.purpose in ("internal", "external_api") or token.tenant_uuid == master_tenant


def may_deliver(
    token: TokenInfo,
    body: Mapping[str, Any],
    *,
    origin_uuid: str | None = None,
    master_tenant: str | None = None,
) -> bool:
    """Whether the bus ``body`` (headers merged with data) reaches a socket opened with ``token``.

    It must carry a ``required_acl`` key the token grants (``null`` needs nothing), come from
    ``origin_uuid`` (when given), be in the token's tenant (the master tenant sees every tenant),
    and — for a plain user — be flagged ``user_uuid:<me>`` or ``user_uuid:*``.
    """
    if "required_acl" not in body:
        return False
    required = body["required_acl"]
    if required is not None and not isinstance(required, str):
        return False
    if not token_allows(token, required):
        return False
    if origin_uuid is not None and body.get("origin_uuid") != origin_uuid:
        return False
    master = token.tenant_uuid == master_tenant
    if not master and body.get("tenant_uuid") != token.tenant_uuid:
        return False
    if is_tenant_wide(token, master_tenant):
        return True
    return body.get(f"user_uuid:{token.user_uuid}") is True or body.get("user_uuid:*") is True


def next_auth_check(remaining: float) -> float:
    """Seconds until the server checks the token again, given ``remaining`` seconds of validity.

    Expired (≤ 0): 15 s. Under 15 s: the rest. Up to 80 s: the rest, at most 60 s. Up to 16 h:
    75 % of the rest (whole seconds). Beyond: 12 h.
    """
    if remaining <= 0:
        return 15.0
    if remaining < 15:
        return remaining
    if remaining <= 80:
        return min(remaining, 60.0)
    if remaining <= 57600:
        return float(int(0.75 * remaining))
    return 43200.0


class SessionState(enum.Enum):
    """Where a server-side socket is."""

    WAITING_AUTH = "waiting-auth"  # connected, token not validated yet: nothing is read
    OPEN = "open"  # init sent; subscribe / token / ping accepted; events dropped
    STARTED = "started"  # start received: subscribed events flow
    CLOSED = "closed"  # a close was decided; everything else is ignored


@dataclass(frozen=True)
class Outcome:
    """What the server does after an input.

    Attributes:
        send: text frames to send, in order.
        close: close the socket with this (after sending ``send``).
        check_token: an ``op:token`` asked for this token: validate it, then call
            :meth:`ServerSession.token_checked`.
    """

    send: tuple[str, ...] = ()
    close: Close | None = None
    check_token: str | None = None


class _Violation(Exception):
    """A frame breaking the protocol (→ 4004)."""


def _decode_client(frame: str | bytes) -> tuple[str, str | None]:
    if not isinstance(frame, str):
        raise _Violation(f"expected a text frame, got {len(frame)} bytes of binary")
    try:
        obj = json.loads(frame)
    except ValueError:
        raise _Violation("not a valid JSON document") from None
    if not isinstance(obj, dict):
        raise _Violation("the JSON root is not an object")
    if "op" not in obj:
        raise _Violation("the object has no 'op' key")
    op = obj["op"]
    if not isinstance(op, str):
        raise _Violation("'op' is not a string")
    key = {"subscribe": "event_name", "token": "token", "ping": "payload"}.get(op)
    if key is None:
        return op, None
    if "data" not in obj:
        raise _Violation(f"op {op!r} has no 'data' key")
    data = obj["data"]
    if not isinstance(data, dict):
        raise _Violation(f"op {op!r}: 'data' is not an object")
    if key not in data:
        raise _Violation(f"op {op!r}: 'data' has no {key!r} key")
    if not isinstance(data[key], str):
        raise _Violation(f"op {op!r}: data.{key} is not a string")
    return op, data[key]


@dataclass
class ServerSession:
    """The server side of one websocketd socket, sans I/O.

    Drive it with :meth:`authenticated` (once, after validating the handshake token),
    :meth:`receive` (each client frame), :meth:`token_checked` (after an ``op:token``),
    :meth:`expired` (the periodic check failed) and :meth:`event` (a bus body to maybe forward).
    Ack rules: v1 acks ``subscribe`` / ``token`` only before ``start``, v2 always; ``start`` is
    always acked; ``ping`` gets a pong in v2 and nothing in v1. Any violation → 4004 (empty reason).

    Attributes:
        version: 1 or 2.
        state: a :class:`SessionState`.
        token: the current token (after :meth:`authenticated`).
        subscriptions: event names subscribed (``"*"``: all).
        last_violation: why the last 4004 was decided (for logs).
    """

    version: int = 1
    state: SessionState = SessionState.WAITING_AUTH
    token: TokenInfo | None = None
    subscriptions: set[str] = field(default_factory=set)
    last_violation: str | None = None

    def _close(self, code: int, reason: str = "") -> Outcome:
        self.state = SessionState.CLOSED
        return Outcome(close=Close(code, reason))

    def authenticated(self, token: TokenInfo | None) -> Outcome:
        """The handshake token was validated (``None``: refused → 4002). Sends ``init``."""
        if self.state is not SessionState.WAITING_AUTH:
            return Outcome()
        if token is None:
            return self._close(CLOSE_AUTH_FAILED, "authentication failed")
        self.token = token
        self.state = SessionState.OPEN
        return Outcome(send=(server_frame("init", {"version": self.version}),))

    def receive(self, frame: str | bytes) -> Outcome:
        """One frame from the client (ignored before authentication and after close)."""
        if self.state in (SessionState.WAITING_AUTH, SessionState.CLOSED):
            return Outcome()
        try:
            op, value = _decode_client(frame)
            if op not in CLIENT_OPS:
                raise _Violation(f"unknown op {op!r}")
        except _Violation as exc:
            self.last_violation = str(exc)
            return self._close(CLOSE_PROTOCOL_ERROR)
        started = self.state is SessionState.STARTED
        acks = self.version == 2 or not started
        if op == "subscribe":
            assert value is not None
            self.subscriptions.add(value)
            return Outcome(send=(server_frame("subscribe"),) if acks else ())
        if op == "start":
            self.state = SessionState.STARTED
            return Outcome(send=(server_frame("start"),))
        if op == "token":
            return Outcome(check_token=value)
        # ping
        if self.version == 2:
            return Outcome(send=(server_frame("pong", {"payload": value}),))
        return Outcome()

    def token_checked(self, token: TokenInfo | None) -> Outcome:
        """The ``op:token`` token was validated (``None``: refused → 4002); acks per the version."""
        if self.state is SessionState.CLOSED:
            return Outcome()
        if token is None:
            return self._close(CLOSE_AUTH_FAILED, "authentication failed")
        self.token = token
        acks = self.version == 2 or self.state is not SessionState.STARTED
        return Outcome(send=(server_frame("token"),) if acks else ())

    def expired(self) -> Outcome:
        """The periodic check found the token expired or revoked → 4003."""
        if self.state is SessionState.CLOSED:
            return Outcome()
        return self._close(CLOSE_AUTH_EXPIRED, "authentication expired")

    def wants(self, name: str) -> bool:
        """Whether an event called ``name`` is subscribed."""
        return "*" in self.subscriptions or name in self.subscriptions

    def event(
        self,
        body: Mapping[str, Any],
        *,
        origin_uuid: str | None = None,
        master_tenant: str | None = None,
    ) -> str | None:
        """The frame to send for the bus ``body``, or ``None`` (not started, not subscribed, filtered)."""
        if self.state is not SessionState.STARTED or self.token is None:
            return None
        name = body.get("name")
        if not isinstance(name, str) or not self.wants(name):
            return None
        if not may_deliver(self.token, body, origin_uuid=origin_uuid, master_tenant=master_tenant):
            return None
        return json.dumps(dict(body)) if self.version == 1 else server_frame("event", dict(body))


# -- event builders ------------------------------------------------------------------------------


def local_iso(ts: float) -> str:
    """A bus header ``timestamp``: naive local time, ISO with microseconds (``datetime.now()``)."""
    return datetime.fromtimestamp(ts).isoformat(timespec="microseconds")


def asterisk_time(ts: float, tz: tzinfo | None = None) -> str:
    """A call time as Asterisk gives it: ``2015-12-16T15:13:59.526-0500`` (ms, offset without colon).
    ``tz``: the zone (default: the local zone)."""
    moment = datetime.fromtimestamp(ts, tz) if tz is not None else datetime.fromtimestamp(ts).astimezone()
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + moment.strftime("%z")


def bus_body(
    name: str,
    data: Any,
    *,
    origin_uuid: str,
    tenant_uuid: str,
    timestamp: str,
    user_uuids: Sequence[str] = (),
    required_acl: str | None = None,
) -> dict[str, Any]:
    """A bus body: the headers merged with ``data`` (wazo-bus).

    ``user_uuids`` become ``user_uuid:<uuid>: true`` flags (``"*"``: every user of the tenant);
    ``required_acl`` defaults to ``events.calls.<first user>`` for call events, else
    ``events.<name>``.
    """
    if required_acl is None:
        if name.startswith("call_") and user_uuids and user_uuids[0] != "*":
            required_acl = f"events.calls.{user_uuids[0]}"
        else:
            required_acl = f"events.{name}"
    body: dict[str, Any] = {
        "name": name,
        "origin_uuid": origin_uuid,
        "timestamp": timestamp,
        "tenant_uuid": tenant_uuid,
    }
    for uuid in user_uuids:
        body[f"user_uuid:{uuid}"] = True
    body["required_acl"] = required_acl
    body["required_access"] = f"event.{name}"
    body["data"] = data
    return body


def call_payload(
    *,
    call_id: str,
    user_uuid: str | None,
    status: str,
    direction: str,
    is_caller: bool,
    caller_id_name: str,
    caller_id_number: str,
    peer_caller_id_name: str,
    peer_caller_id_number: str,
    dialed_extension: str,
    creation_time: str,
    answer_time: str | None = None,
    hangup_time: str | None = None,
    talking_to: Mapping[str, str | None] | None = None,
    bridges: Sequence[str] = (),
    conversation_id: str | None = None,
    sip_call_id: str | None = None,
    line_id: int | None = None,
    on_hold: bool = False,
    muted: bool = False,
    parked: bool = False,
    is_video: bool = False,
    record_state: str = "inactive",
    reason_code: int | None = None,
) -> dict[str, Any]:
    """wazo-calld's Call. ``reason_code`` is added only when given (``call_ended``)."""
    call: dict[str, Any] = {
        "call_id": call_id,
        "conversation_id": conversation_id if conversation_id is not None else call_id,
        "sip_call_id": sip_call_id,
        "user_uuid": user_uuid,
        "line_id": line_id,
        "caller_id_name": caller_id_name,
        "caller_id_number": caller_id_number,
        "peer_caller_id_name": peer_caller_id_name,
        "peer_caller_id_number": peer_caller_id_number or dialed_extension,
        "dialed_extension": dialed_extension,
        "status": status,
        "direction": direction,
        "is_caller": is_caller,
        "is_video": is_video,
        "on_hold": on_hold,
        "muted": muted,
        "parked": parked,
        "record_state": record_state,
        "talking_to": dict(talking_to or {}),
        "bridges": list(bridges),
        "creation_time": creation_time,
        "answer_time": answer_time,
        "hangup_time": hangup_time,
    }
    if reason_code is not None:
        call["reason_code"] = reason_code
    return call


# -- reading events ------------------------------------------------------------------------------


def dedup_key(body: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """(``data.call_id``, ``name``, header ``timestamp``): the same event delivered twice has the same key."""
    data = body.get("data")
    call_id = data.get("call_id") if isinstance(data, dict) else None
    return (call_id, body.get("name"), body.get("timestamp"))


_OFFSET = re.compile(r"([+-])(\d\d):?(\d\d)$")


def parse_iso(text: Any) -> float | None:
    """Unix seconds of an ISO time with an offset (``-0500`` or ``-05:00`` or ``Z``); a naive
    time is read as local (the bus header). ``None`` when it is not a time."""
    if not isinstance(text, str) or not text:
        return None
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    value = _OFFSET.sub(r"\1\2:\3", value)
    try:
        return datetime.fromisoformat(value).timestamp()
    except (ValueError, OverflowError, OSError):  # not a time, or outside what the platform can convert
        return None


#: the columns :func:`flat` returns (platforms.md §4, plus ``event_ts``)
FLAT_COLUMNS: tuple[str, ...] = (
    "name",
    "call_id",
    "user_uuid",
    "status",
    "direction",
    "caller_id_number",
    "peer_caller_id_number",
    "is_caller",
    "talking_to",
    "reason_code",
    "event_ts",
)


def _scalar(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def flat(type: str, payload: Any) -> dict[str, Any]:
    """The §4 key columns of a bus body (an ``in`` row's payload); never raises.

    ``talking_to`` is the peer call ids joined with ``,`` (``None`` when empty). ``event_ts``:
    ``hangup_time``, else ``answer_time``, else ``creation_time`` (Asterisk times with offsets),
    else the naive-local header ``timestamp``; Unix seconds or ``None``.
    """
    out: dict[str, Any] = dict.fromkeys(FLAT_COLUMNS)
    if not isinstance(payload, dict):
        return out
    data = payload.get("data")
    if not isinstance(data, dict):
        data = {}
    name = payload.get("name")
    out["name"] = name if isinstance(name, str) else type
    for key in ("call_id", "user_uuid", "status", "direction", "caller_id_number", "peer_caller_id_number"):
        out[key] = _scalar(data.get(key))
    is_caller = data.get("is_caller")
    out["is_caller"] = is_caller if isinstance(is_caller, bool) else None
    talking = data.get("talking_to")
    if isinstance(talking, dict) and talking:
        out["talking_to"] = ",".join(str(k) for k in talking)
    reason = data.get("reason_code")
    out["reason_code"] = reason if isinstance(reason, int) and not isinstance(reason, bool) else None
    ts = None
    for key in ("hangup_time", "answer_time", "creation_time"):
        ts = parse_iso(data.get(key))
        if ts is not None:
            break
    if ts is None:
        ts = parse_iso(payload.get("timestamp"))
    out["event_ts"] = ts
    return out


def utc_iso(ts: float) -> str:
    """wazo-auth's ``utc_expires_at`` style: naive UTC, ISO with microseconds."""
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def parse_utc(text: Any) -> float | None:
    """Unix seconds of wazo-auth's naive-UTC ``utc_expires_at`` (an offset, if any, is honoured)."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(_OFFSET.sub(r"\1\2:\3", text.replace("Z", "+00:00")))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, OSError):
        return None
