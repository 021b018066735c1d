"""Kazoo (2600Hz) wire facts, pure: Gregorian time, blackhole frames, event normalization.

No I/O, no clock, no sockets: callers pass the time in. The blackhole client and simulator
(:mod:`jambonz_lab.platforms.kazoo`, :mod:`jambonz_lab.platforms.kazoo_sim`) build on it.

What is here (platforms.md §1.1-§1.3):

* client → server frames: :func:`subscribe_frame`, :func:`unsubscribe_frame`, :func:`ping_frame`
  (one ``binding`` per frame, inside ``data``, with ``account_id``);
* server → client frames: :func:`parse_frame` gives a :class:`Reply` (matched by ``request_id``;
  an error reply carries Kazoo's ``errors`` list) or an :class:`Event`;
* :func:`normalize` (keys lower-cased recursively, ``-`` → ``_``, ``None`` values dropped) and
  :func:`encode_routing_word` (``.`` → ``%2E``, space → ``+``, other unsafe bytes → ``%XX``);
* :class:`Blackhole`: the server's request pipeline (rate → authenticate → validate → authorize →
  limits → command) as a plain state machine over a :class:`BlackholeSession`, with Kazoo's
  exact error strings, for the simulator;
* :func:`channel_event`: the ``data`` of CHANNEL_* events, as Kazoo normalizes it;
* :data:`FLAT_COLUMNS` / :func:`flat`: the key columns of a blackhole event row (§4).

Example::

    from jambonz_lab.protocol import kazoo
    kazoo.subscribe_frame("call.CHANNEL_CREATE.*", account_id="4b31...", auth_token="T", request_id="r-1")
    kazoo.gregorian_to_unix(63610891956)   # 1443672756.0 = 2015-10-01 04:12:36 UTC

Any thread.
"""

from __future__ import annotations

import copy
import enum
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CALL_EVENTS",
    "DOC_ACTIONS",
    "DOC_TYPES",
    "FAMILIES",
    "FLAT_COLUMNS",
    "GREGORIAN_OFFSET",
    "REDACTED",
    "Blackhole",
    "BlackholeSession",
    "Directory",
    "Event",
    "Outcome",
    "Reply",
    "Stage",
    "TokenBucket",
    "call_routing_key",
    "channel_event",
    "encode",
    "encode_routing_word",
    "error_reply",
    "event_frame",
    "flat",
    "gregorian_to_unix",
    "internal_bindings",
    "normalize",
    "load_json",
    "parse_frame",
    "parse_obj",
    "ping_frame",
    "public_fields",
    "redact",
    "redact_frame",
    "reply_frame",
    "subscribe_frame",
    "topic_match",
    "unix_to_gregorian",
    "unsubscribe_frame",
    "validate_binding",
]

#: seconds from 0000-01-01 (Kazoo's Gregorian seconds) to 1970-01-01
GREGORIAN_OFFSET = 62167219200


def gregorian_to_unix(value: int | float | str) -> float:
    """Kazoo's Gregorian seconds (an int, or a string as webhooks send it) → Unix seconds.

    >>> gregorian_to_unix(63610891956)   # 2015-10-01 04:12:36 UTC
    1443672756.0
    """
    return float(value) - GREGORIAN_OFFSET


def unix_to_gregorian(ts: float) -> int:
    """Unix seconds → Kazoo's Gregorian seconds (whole seconds, as Kazoo sends them)."""
    return int(ts) + GREGORIAN_OFFSET


# -- wire vocabulary ---------------------------------------------------------------------------

#: the events a ``call.<EVENT>.<CALL_ID>`` binding accepts (bh_call); ``call.*.*`` expands to all 9
CALL_EVENTS = (
    "CHANNEL_CREATE",
    "CHANNEL_ANSWER",
    "CHANNEL_DESTROY",
    "CHANNEL_HOLD",
    "CHANNEL_UNHOLD",
    "CHANNEL_BRIDGE",
    "PARK_PARKED",
    "PARK_RETRIEVED",
    "PARK_ABANDONED",
)
#: ``object.<action>.<type>`` (bh_object)
DOC_ACTIONS = ("doc_created", "doc_edited", "doc_deleted")
DOC_TYPES = (
    "account",
    "callflow",
    "device",
    "faxbox",
    "media",
    "user",
    "vmbox",
    "fax",
    "mailbox_message",
    "call_recording",
)
#: document types kept in the monthly database (their object bindings name the MODB)
_MODB_TYPES = ("mailbox_message", "call_recording")
#: the families blackhole loads by default (bh_presence, master only, is not among them here)
FAMILIES = ("call", "object", "fax", "conference")
#: headers Kazoo strips from an event before it reaches a socket (kz_api:public_fields)
_INTERNAL_HEADERS = frozenset({"Server-ID", "Node"})

#: what replaces a secret in recorded frames and error messages
REDACTED = "<redacted>"


# -- client → server frames -------------------------------------------------------------------


def subscribe_frame(
    binding: str, *, account_id: str, auth_token: str | None, request_id: str
) -> dict[str, Any]:
    """``{"action":"subscribe", "data":{"account_id":…, "binding":…}, …}``: one binding per frame
    (the plural ``bindings`` of the README is ignored by 4.x/master)."""
    return _request("subscribe", auth_token, request_id, {"account_id": account_id, "binding": binding})


def unsubscribe_frame(
    binding: str, *, account_id: str, auth_token: str | None, request_id: str
) -> dict[str, Any]:
    """``{"action":"unsubscribe", …}`` for one binding (there is no "unsubscribe all")."""
    return _request("unsubscribe", auth_token, request_id, {"account_id": account_id, "binding": binding})


def ping_frame(*, auth_token: str | None, request_id: str) -> dict[str, Any]:
    """``{"action":"ping", "data":{}, …}`` (answered with ``pong`` only when bh_ping is loaded)."""
    return _request("ping", auth_token, request_id, {})


def _request(action: str, auth_token: str | None, request_id: str, data: dict[str, Any]) -> dict[str, Any]:
    frame: dict[str, Any] = {"action": action, "request_id": request_id}
    if auth_token is not None:
        frame["auth_token"] = auth_token
    frame["data"] = data
    return frame


def encode(frame: Mapping[str, Any]) -> str:
    """A frame as the compact JSON text sent on the socket."""
    return json.dumps(frame, separators=(",", ":"))


def redact(text: str, *secrets_: str | None) -> str:
    """``text`` with every given secret, and the token Kazoo echoes after "failed to authenticate
    token ", replaced by :data:`REDACTED`."""
    for secret in secrets_:
        if secret:
            text = text.replace(secret, REDACTED)
    return re.sub(r"(failed to authenticate token )(?!<redacted>$).+", r"\1" + REDACTED, text)


def redact_frame(frame: Any, *secrets_: str | None) -> Any:
    """A copy of a frame (any JSON value) with ``auth_token`` values and the given secrets redacted;
    for the event log."""
    if isinstance(frame, dict):
        return {
            k: (REDACTED if k == "auth_token" and v else redact_frame(v, *secrets_)) for k, v in frame.items()
        }
    if isinstance(frame, list):
        return [redact_frame(v, *secrets_) for v in frame]
    if isinstance(frame, str):
        return redact(frame, *secrets_)
    return frame


# -- server → client frames -------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A ``{"action":"reply", …}`` frame: the answer to the request with ``request_id``."""

    request_id: str | None
    status: str
    data: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @property
    def errors(self) -> list[str]:
        """Kazoo's error strings (empty on success)."""
        errors = self.data.get("errors")
        return [str(e) for e in errors] if isinstance(errors, list) else []


@dataclass(frozen=True)
class Event:
    """A ``{"action":"event", …}`` frame (it has no ``request_id``)."""

    name: str
    subscribed_key: str | None
    subscription_key: str | None
    routing_key: str | None
    data: dict[str, Any]

    @property
    def call_id(self) -> str | None:
        value = self.data.get("call_id")
        return value if isinstance(value, str) else None


def load_json(text: str | bytes) -> Any:
    """The JSON of one server frame; ``ValueError`` (one clear line) for a binary or non-JSON frame."""
    if isinstance(text, bytes):
        raise ValueError("blackhole sends text frames; got a binary frame")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at column {exc.colno}") from None


def parse_frame(text: str | bytes) -> Reply | Event:
    """One server frame; raises ``ValueError`` (one clear line) when it is not a blackhole frame."""
    return parse_obj(load_json(text))


def parse_obj(frame: Any) -> Reply | Event:
    """:func:`parse_frame` for a frame already decoded from JSON."""
    if not isinstance(frame, dict):
        raise ValueError(f"a blackhole frame is a JSON object, not {type(frame).__name__}")
    action = frame.get("action")
    data = frame.get("data", {})
    if not isinstance(data, dict):
        raise ValueError(f"'data' of a {action!r} frame is {type(data).__name__}, not an object")
    if action == "reply":
        rid = frame.get("request_id")
        status = frame.get("status")
        if not isinstance(status, str):
            raise ValueError("a reply frame without a 'status'")
        return Reply(rid if isinstance(rid, str) else None, status, data)
    if action == "event":
        name = frame.get("name")
        if not isinstance(name, str):
            raise ValueError("an event frame without a 'name'")
        return Event(
            name,
            _str(frame.get("subscribed_key")),
            _str(frame.get("subscription_key")),
            _str(frame.get("routing_key")),
            data,
        )
    raise ValueError(f"unknown blackhole action {action!r}")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def reply_frame(request_id: str, status: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """``{"action":"reply","request_id":…,"status":…,"data":…}`` (blackhole_data_emitter:reply)."""
    return {"action": "reply", "request_id": request_id, "status": status, "data": dict(data)}


def error_reply(request_id: str, errors: list[str]) -> dict[str, Any]:
    return reply_frame(request_id, "error", {"errors": list(errors)})


def event_frame(
    subscribed_key: str, subscription_key: str, name: str, routing_key: str, data: Mapping[str, Any]
) -> dict[str, Any]:
    """An event frame (blackhole_data_emitter:event): no ``request_id``."""
    return {
        "action": "event",
        "subscribed_key": subscribed_key,
        "subscription_key": subscription_key,
        "name": name,
        "routing_key": routing_key,
        "data": dict(data),
    }


# -- normalization and routing keys -----------------------------------------------------------


def normalize(obj: Any) -> Any:
    """Kazoo's ``normalize_jobj``: object keys lower-cased (recursively, inside lists too) with
    ``-`` → ``_``; keys whose value is ``None`` are dropped. Other values are kept as they are.

    >>> normalize({"Call-ID": "x", "Custom-Channel-Vars": {"Account-ID": "a", "Owner-ID": None}})
    {'call_id': 'x', 'custom_channel_vars': {'account_id': 'a'}}
    """
    if isinstance(obj, Mapping):
        return {str(k).lower().replace("-", "_"): normalize(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [normalize(v) for v in obj]
    return obj


def public_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The event without the internal headers Kazoo strips (``Node``, ``Server-ID``)."""
    return {k: v for k, v in raw.items() if k not in _INTERNAL_HEADERS}


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~")


def encode_routing_word(value: str) -> str:
    """One word of an AMQP routing key as Kazoo encodes it: ``.`` → ``%2E``, space → ``+``,
    letters, digits and ``-_~`` kept, every other UTF-8 byte → ``%XX``; ``*`` alone stays ``*``.

    >>> encode_routing_word("abc.def@host 1")
    'abc%2Edef%40host+1'
    """
    if value == "*":
        return value
    out = []
    for byte in value.encode():
        if byte == 0x2E:
            out.append("%2E")
        elif byte == 0x20:
            out.append("+")
        elif byte in _SAFE:
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def call_routing_key(account_id: str, event: str, call_id: str) -> str:
    """``call.<account>.<EVENT>.<call-id encoded>``: the routing key of a call event."""
    return f"call.{account_id}.{event}.{encode_routing_word(call_id)}"


def topic_match(pattern: str, key: str) -> bool:
    """AMQP topic matching: words split on ``.``, ``*`` is one word, ``#`` zero or more."""
    return _match(pattern.split("."), key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


# -- the server's pipeline (for the simulator) --------------------------------------------------


class Stage(enum.Enum):
    """The steps of blackhole's request pipeline, in order; a request stops at the first failure."""

    RATE = "rate"
    AUTHENTICATE = "authenticate"
    VALIDATE = "validate"
    AUTHORIZE = "authorize"
    LIMITS = "limits"
    COMMAND = "command"
    FINISH = "finish"  # the request succeeded


@dataclass
class TokenBucket:
    """kazoo_token_buckets: ``capacity`` tokens, ``refill`` tokens per second; one per request."""

    capacity: float = 100.0
    refill: float = 10.0
    tokens: float = 100.0
    last: float | None = None

    def take(self, now: float) -> bool:
        """Take one token at time ``now`` (seconds, any monotonic clock); False when empty."""
        if self.last is not None and now > self.last:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.refill)
        self.last = now if self.last is None else max(self.last, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class Directory:
    """The fake Crossbar side of authentication and authorization: tokens and the account tree.

    Attributes:
        tokens: token → account id.
        superadmins: account ids that are "super-duper admins" (may subscribe to account ``*``).
        parents: account id → its parent account id.
    """

    tokens: dict[str, str] = field(default_factory=dict)
    superadmins: set[str] = field(default_factory=set)
    parents: dict[str, str] = field(default_factory=dict)

    def add_token(self, token: str, account_id: str, *, superadmin: bool = False) -> None:
        self.tokens[token] = account_id
        if superadmin:
            self.superadmins.add(account_id)

    def add_account(self, account_id: str, parent: str | None = None) -> None:
        if parent is not None:
            self.parents[account_id] = parent

    def in_hierarchy(self, auth_account: str, account_id: str) -> bool:
        """True when ``account_id`` is ``auth_account`` or one of its descendants."""
        seen: set[str] = set()
        current: str | None = account_id
        while current is not None and current not in seen:
            if current == auth_account:
                return True
            seen.add(current)
            current = self.parents.get(current)
        return False


@dataclass
class BlackholeSession:
    """One socket's context (bh_context): who it is, what it is bound to, the last ``resp_data``.

    ``bindings`` holds (client binding, internal binding) pairs: ``call.*.*`` adds nine.
    """

    session_id: str  # the peer's IP:PORT
    auth_account_id: str | None = None
    auth_token: str | None = None
    bindings: list[tuple[str, str]] = field(default_factory=list)
    resp_data: dict[str, Any] = field(default_factory=dict)
    name: Any = None
    metadata: Any = None
    bucket: TokenBucket = field(default_factory=TokenBucket)

    @property
    def client_bindings(self) -> list[str]:
        return [client for client, _ in self.bindings]


@dataclass(frozen=True)
class Outcome:
    """What one request did: the reply frame to send and where the pipeline stopped."""

    action: str
    reply: dict[str, Any]
    stage: Stage

    @property
    def ok(self) -> bool:
        return self.stage is Stage.FINISH


class _Failed(Exception):
    def __init__(self, stage: Stage, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message


class Blackhole:
    """blackhole's request pipeline over :class:`BlackholeSession` objects; pure (pass ``now``).

    :meth:`handle` changes the session only when the request succeeds (an error leaves the
    previous context), except the rate-limit bucket, which every request drains.

    Args:
        directory: tokens and accounts.
        bh_ping: whether the optional bh_ping module is loaded (``ping`` → ``{"response":"pong"}``).
            When it is not, any unknown action (``ping``, ``noop``) succeeds with the session's
            last ``resp_data``.
        capacity, refill: the per-session token bucket (100 and 10 per second in Kazoo).
        new_id: makes a ``request_id`` when a request has none (32 hex characters).

    Example::

        bh = Blackhole(Directory(tokens={"T": "acct"}))
        s = BlackholeSession("127.0.0.1:5000")
        bh.handle(s, subscribe_frame("call.*.*", account_id="acct", auth_token="T", request_id="1"), now=0)
    """

    def __init__(
        self,
        directory: Directory,
        *,
        bh_ping: bool = True,
        capacity: float = 100.0,
        refill: float = 10.0,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self.directory = directory
        self.bh_ping = bh_ping
        self.capacity = capacity
        self.refill = refill
        self._new_id = new_id or (lambda: secrets.token_hex(16))

    def new_session(self, session_id: str) -> BlackholeSession:
        return BlackholeSession(session_id, bucket=TokenBucket(self.capacity, self.refill, self.capacity))

    def handle(self, session: BlackholeSession, frame: Mapping[str, Any], now: float) -> Outcome:
        """Run one decoded request frame through the pipeline and say what to reply.

        Raises ``ValueError`` for a frame Kazoo's socket process would crash on (not an object,
        a ``binding`` that is not a string): the socket should close with 1011.
        """
        if not isinstance(frame, Mapping):
            raise ValueError(f"a request frame must be a JSON object, not {type(frame).__name__}")
        action = frame.get("action")
        if not (isinstance(action, str) and action):
            action = "noop"
        ctx = copy.deepcopy(session.__dict__)
        ctx.pop("bucket")
        work = BlackholeSession(**ctx, bucket=session.bucket)
        token = frame.get("auth_token")
        work.auth_token = token if isinstance(token, str) and token else None
        rid = frame.get("request_id")
        request_id = rid if isinstance(rid, str) and rid else self._new_id()
        work.name = frame.get("name")
        work.metadata = frame.get("metadata")
        try:
            self._rate(work, now)
            self._authenticate(work, token)
            self._validate(action, frame)
            self._authorize(work, action, frame)
            self._command(work, action, frame)
        except _Failed as failed:
            return Outcome(action, error_reply(request_id, [failed.message]), failed.stage)
        session.__dict__.update(work.__dict__)
        return Outcome(action, reply_frame(request_id, "success", session.resp_data), Stage.FINISH)

    # -- steps --

    def _rate(self, work: BlackholeSession, now: float) -> None:
        if not work.bucket.take(now):
            raise _Failed(Stage.RATE, f"rate limiting threshold hit for {work.session_id}!")

    def _authenticate(self, work: BlackholeSession, token: Any) -> None:
        if work.auth_account_id is not None:
            return
        if token is None or token == "":
            raise _Failed(Stage.AUTHENTICATE, "authentication token required")
        if not isinstance(token, str):
            raise _Failed(Stage.AUTHENTICATE, "invalid authentication token format")
        account = self.directory.tokens.get(token)
        if account is None:
            raise _Failed(Stage.AUTHENTICATE, f"failed to authenticate token {token}")
        work.auth_account_id = account

    def _validate(self, action: str, frame: Mapping[str, Any]) -> None:
        if action not in ("subscribe", "unsubscribe"):
            return
        data = frame.get("data")
        if not isinstance(data, Mapping) or not data:
            raise _Failed(Stage.VALIDATE, "missing required keys in data object")
        missing = [k for k in ("account_id", "binding") if k not in data]
        if missing:
            raise _Failed(Stage.VALIDATE, f"missing required keys : {', '.join(missing)}")
        family, parts = _split(data)
        error = validate_binding(family, parts)
        if error is not None:
            raise _Failed(Stage.VALIDATE, error)

    def _authorize(self, work: BlackholeSession, action: str, frame: Mapping[str, Any]) -> None:
        if action != "subscribe":
            return
        account = frame["data"]["account_id"]
        if account == "*":
            if work.auth_account_id not in self.directory.superadmins:
                raise _Failed(Stage.AUTHORIZE, "unauthorized wildcard account id")
            return
        if work.auth_account_id is None:
            raise _Failed(Stage.AUTHORIZE, "auth_account_id not set")
        if not (isinstance(account, str) and self.directory.in_hierarchy(work.auth_account_id, account)):
            raise _Failed(Stage.AUTHORIZE, "unauthorized account id")

    def _command(self, work: BlackholeSession, action: str, frame: Mapping[str, Any]) -> None:
        if action == "ping" and self.bh_ping:
            work.resp_data = {"response": "pong"}
            return
        if action not in ("subscribe", "unsubscribe"):
            return  # no module answers: success with the last resp_data
        data = frame["data"]
        family, parts = _split(data)
        account = str(data["account_id"])
        pairs = internal_bindings(family, parts, account)
        if pairs is None:
            raise _Failed(Stage.COMMAND, "no available subscriptions to requested binding")
        client, internal = pairs
        if action == "subscribe":
            work.bindings += [(client, b) for b in internal if (client, b) not in work.bindings]
            work.resp_data = {"subscribed": work.client_bindings}
        else:
            removed = {(client, b) for b in internal}
            work.bindings = [pair for pair in work.bindings if pair not in removed]
            work.resp_data = {"unsubscribed": [client], "subscribed": work.client_bindings}

    # -- delivery --

    @staticmethod
    def deliveries(session: BlackholeSession, routing_key: str) -> list[tuple[str, str]]:
        """The session's (client, internal) binding pairs an event with ``routing_key`` reaches;
        one frame goes out per pair."""
        return [pair for pair in session.bindings if topic_match(pair[1], routing_key)]


def _split(data: Mapping[str, Any]) -> tuple[str, list[str]]:
    binding = data.get("binding")
    if not isinstance(binding, str):
        raise ValueError(f"binding must be a string, not {type(binding).__name__}")
    family, *parts = binding.split(".")
    return family, parts


def validate_binding(family: str, parts: list[str]) -> str | None:
    """Kazoo's per-family validation of ``<family>.<parts…>``: its error string, or ``None``.
    An unknown family passes (and later fails with "no available subscriptions …")."""
    joined = ", ".join(parts)
    if family == "call":
        if len(parts) != 2:
            return f"invalid format for call subscription : {joined}"
        event = parts[0]
        if event != "*" and event not in CALL_EVENTS:
            return f"event {event} not supported"
        return None
    if family == "object":
        if len(parts) != 2:
            return f"invalid format for object subscription : {joined}"
        act, typ = parts
        if act == "*" and typ == "*":
            return None
        if typ == "*":
            return None if act in DOC_ACTIONS else f"event {act}.* not supported"
        if act == "*":
            return None if typ in DOC_TYPES else f"event *.{typ} not supported"
        return None if act in DOC_ACTIONS and typ in DOC_TYPES else f"event {act}.{typ} not supported"
    if family == "fax":
        if len(parts) == 2 and parts[0] in ("status", "object"):
            return None
        return f"invalid format for fax subscription : {joined}"
    if family == "conference":
        if len(parts) == 2 and parts[0] == "command" or len(parts) == 3 and parts[0] == "event":
            return "ConferenceId required" if parts[1] == "*" else None
        return f"invalid format for conference subscription : {joined}"
    return None


def internal_bindings(family: str, parts: list[str], account_id: str) -> tuple[str, list[str]] | None:
    """(client binding, account-scoped internal bindings) for a valid binding; ``None`` for a
    family no module serves."""
    if family == "call":
        event, call_id = parts
        events = CALL_EVENTS if event == "*" else (event,)
        return f"call.{event}.{call_id}", [f"call.{account_id}.{e}.{call_id}" for e in events]
    if family == "object":
        act, typ = parts
        db, modb = _account_db(account_id), _account_db(account_id) + "-YYYYMM"
        if typ == "*":
            internal = [f"{act}.{db}.*.*", f"{act}.{modb}.*.*"]
        else:
            internal = [f"{act}.{modb if typ in _MODB_TYPES else db}.{typ}.*"]
        return f"object.{act}.{typ}", internal
    if family == "fax":
        kind, what = parts
        if kind == "status":
            return f"fax.status.{what}", [f"fax.status.{account_id}.{what}"]
        return f"fax.object.{what}", [f"{what}.{_account_db(account_id)}-YYYYMM.fax.*"]
    if family == "conference":
        if parts[0] == "command":
            return f"conference.command.{parts[1]}", [f"conference.command.{parts[1]}"]
        conf, call = parts[1], parts[2]
        return f"conference.event.{conf}.{call}", [f"conference.event.*.{account_id}.{conf}.{call}"]
    return None


def _account_db(account_id: str) -> str:
    """``account%2F4b%2F31%2Fdd1d…`` (the encoded account database name)."""
    if len(account_id) < 5:
        return f"account%2F{account_id}"
    return f"account%2F{account_id[:2]}%2F{account_id[2:4]}%2F{account_id[4:]}"


# -- channel events -----------------------------------------------------------------------------


def channel_event(
    name: str,
    *,
    call_id: str,
    account_id: str,
    timestamp: int,
    direction: str,
    caller_id_name: str,
    caller_id_number: str,
    callee_id_name: str | None = None,
    callee_id_number: str | None = None,
    dialed: str | None = None,
    other_leg_call_id: str | None = None,
    realm: str = "sip.example.com",
    msg_id: str | None = None,
    hangup_cause: str | None = None,
    hangup_code: str | None = None,
    billing_seconds: int | None = None,
    duration_seconds: int | None = None,
    ringing_seconds: int | None = None,
) -> dict[str, Any]:
    """The ``data`` of a CHANNEL_* event frame as it arrives: built with Kazoo's AMQP header
    names, stripped of internal headers, then :func:`normalize`-d (snake_case keys,
    ``custom_channel_vars.account_id``, ``timestamp`` in Gregorian seconds).

    CHANNEL_ANSWER adds the ``application_name`` / ``bridge_id`` / ``channel_authorized`` CCVs;
    CHANNEL_DESTROY adds ``hangup_cause``, ``hangup_code``, and ``billing_seconds`` /
    ``duration_seconds`` / ``ringing_seconds`` as *strings* (as in Kazoo's sample).
    ``dialed`` is the number in ``request`` / ``to`` (default: ``callee_id_number``): an inbound
    A leg's CHANNEL_CREATE has the dialed number there before any callee ID is known (Kazoo's
    blackhole sample: ``"request": "*97@acme.example.com"`` and no ``callee_id_*``).
    """
    user = f"user_{caller_id_number.lstrip('+')}"
    request = f"{dialed or callee_id_number or 'unknown'}@{realm}"
    ccv: dict[str, Any] = {
        "Account-ID": account_id,
        "Authorizing-ID": f"{call_id[:10]}device",
        "Authorizing-Type": "device",
        "Realm": realm,
        "Username": user,
    }
    if name in ("CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_DESTROY", "CHANNEL_HOLD", "CHANNEL_UNHOLD"):
        ccv |= {"Application-Name": "callflow", "Bridge-ID": other_leg_call_id, "Channel-Authorized": "true"}
    raw: dict[str, Any] = {
        "App-Name": "ecallmgr",
        "App-Version": "4.3.0",
        "Event-Category": "call_event",
        "Event-Name": name,
        "Msg-ID": msg_id,
        "Node": "ecallmgr@fs1.example.com",
        "Server-ID": "",
        "Call-ID": call_id,
        "Other-Leg-Call-ID": other_leg_call_id,
        "Call-Direction": direction,
        "Caller-ID-Name": caller_id_name,
        "Caller-ID-Number": caller_id_number,
        "Callee-ID-Name": callee_id_name,
        "Callee-ID-Number": callee_id_number,
        "Custom-Channel-Vars": ccv,
        "Custom-SIP-Headers": {"X-Auth-IP": "192.0.2.10"},
        "Disposition": "ANSWER" if name != "CHANNEL_CREATE" else "DELAYED NEGOTIATION",
        "From": f"{caller_id_number}@{realm}",
        "From-Tag": call_id[:10],
        "From-Uri": f"{user}@{realm}",
        "Media-Server": "fs1.example.com",
        "Presence-ID": f"{caller_id_number}@{realm}",
        "Request": request,
        "To": request,
        "To-Uri": request,
        "Switch-URI": "sip:192.0.2.20:11000",
        "Switch-URL": "sip:mod_sofia@192.0.2.20:11000",
        "Timestamp": timestamp,
    }
    if name == "CHANNEL_DESTROY":
        raw |= {
            "Hangup-Cause": hangup_cause or "NORMAL_CLEARING",
            "Hangup-Code": hangup_code,
            "Billing-Seconds": None if billing_seconds is None else str(billing_seconds),
            "Duration-Seconds": None if duration_seconds is None else str(duration_seconds),
            "Ringing-Seconds": None if ringing_seconds is None else str(ringing_seconds),
            "User-Agent": "jambonz_lab kazoo simulator",
            "To-Tag": call_id[-10:],
        }
    result: dict[str, Any] = normalize(public_fields(raw))
    return result


# -- DataFrame columns (platforms.md §4) -----------------------------------------------------------

#: the key columns of a blackhole row (the same names as the Kazoo webhook rows where they overlap)
FLAT_COLUMNS: tuple[str, ...] = (
    "event_ts",
    "name",
    "call_id",
    "other_leg_call_id",
    "call_direction",
    "caller_id_number",
    "callee_id_number",
    "account_id",
    "hangup_cause",
    "subscribed_key",
)


def flat(type: str, payload: Any) -> dict[str, Any]:
    """The §4 key columns of an "in" row's payload (a whole blackhole event frame); ``event_ts`` is
    the Gregorian ``data.timestamp`` as Unix seconds. Never raises: odd payloads give ``None``s."""
    out: dict[str, Any] = dict.fromkeys(FLAT_COLUMNS)
    if not isinstance(payload, Mapping):
        return out
    data = payload.get("data")
    data = data if isinstance(data, Mapping) else {}
    name = payload.get("name")
    out["name"] = name if isinstance(name, str) else (type if payload.get("action") == "event" else None)
    out["subscribed_key"] = _scalar(payload.get("subscribed_key"))
    for key in ("call_id", "other_leg_call_id", "call_direction", "caller_id_number", "callee_id_number",
                "hangup_cause"):  # fmt: skip
        out[key] = _scalar(data.get(key))
    ccv = data.get("custom_channel_vars")
    out["account_id"] = _scalar(ccv.get("account_id")) if isinstance(ccv, Mapping) else None
    ts = data.get("timestamp")
    try:
        out["event_ts"] = gregorian_to_unix(ts) if ts is not None and not isinstance(ts, bool) else None
    except (TypeError, ValueError):
        out["event_ts"] = None
    return out


def _scalar(value: Any) -> Any:
    return value if isinstance(value, str | int | float) and not isinstance(value, bool) else None
