"""Basix PBX ws_cti (Brastel) wire facts, pure: terms → messages → element tables, and back.

Every server frame is one Erlang term (:mod:`.etf`) shaped as in platforms.md §2.3::

    {field_spec, "ENTITY", [field, ...]}          column order of ENTITY's positional tuples
    {initial_info, "ENTITY", [Tuple, ...] | {bert, nil}}
    {info_event, "ENTITY", Tuple, "added" | "updated" | "removed"}
    {system_msg, Msg}                             connection_replaced, connection_limit_reached, ...
    {msg, Msg}

:func:`normalize` applies the Basix value rules, :func:`parse_message` checks the shape,
:class:`Decoder` maps positional tuples through the latest ``field_spec`` and decodes the nested
channel fields (``state``, ``target``, ``other_info``, ``end_user``, ``origination``, ``tags``), and
:class:`ElementTables` keeps the live tables the way the JS library does. The ``encode_*`` functions
write terms with only the tags the Basix JS parser reads (§2.2), for the simulator.

Choices where the doc is silent (documented here, tested):

* An element tuple with fewer values than its field_spec has fields gets ``None`` for the missing
  ones; extra values are kept, in order, under ``"_extra"``. Either way :meth:`Decoder.mismatch`
  says so and the client puts that note on the row. An entity with no field_spec yet is read with
  the README order (:data:`DEFAULT_FIELDS`), or ``field_0, field_1, ...`` for an unknown entity.
* Decoded string fields keep the original text: ``end_user_raw``, ``origination_raw``, ``tags_raw``.
  ``state`` decodes to a dict that keeps the whole tuple under ``"raw"``.
* ``origination`` parts are percent-decoded without turning ``+`` into a space (the doc states
  ``+`` for space only for ``end_user``).

No I/O, no clock. Any thread.

>>> from jambonz_lab.protocol import etf
>>> frame = encode_info_event("group_member", (110001001, 10001111, 10001001, 0, 1, 0), "updated")
>>> msg = parse_message(etf.decode(frame))
>>> (msg.kind, msg.entity, msg.event)
('info_event', 'group_member', 'updated')
>>> Decoder().element("group_member", msg.element)["login_status"]
1
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, unquote_plus

from ..exceptions import PlatformError
from .etf import Atom, Charlist, encode

__all__ = [
    "ALLOWED_TAGS",
    "CHANNEL_ENTITIES",
    "DEFAULT_FIELDS",
    "ENTITIES",
    "ENUM_FIELDS",
    "FLAT_COLUMNS",
    "FATAL_SYSTEM_MSGS",
    "BasixMessage",
    "Change",
    "Decoder",
    "ElementTables",
    "calling_group_state",
    "calling_pstn_state",
    "calling_user_state",
    "command",
    "decode_end_user",
    "decode_origination",
    "decode_other_info",
    "decode_state",
    "decode_tags",
    "decode_target",
    "element_term",
    "encode_field_spec",
    "encode_info_event",
    "encode_initial_info",
    "encode_msg",
    "encode_system_msg",
    "flat",
    "key_of",
    "normalize",
    "parse_message",
    "simple_state",
    "us_to_unix",
    "wire_term",
]

#: every entity the server is known to send (§2.3)
ENTITIES = (
    "channel",
    "channel_waiting",
    "user",
    "group",
    "group_member",
    "terminal",
    "domain",
    "queued_channel",
    "parked_channel",
)

#: entities whose elements are channels: keyed by ``uuid``, nested fields decoded
CHANNEL_ENTITIES = frozenset({"channel", "channel_waiting", "queued_channel", "parked_channel"})

_CHANNEL_FIELDS = (
    "uuid",
    "direction",
    "peer_location",
    "calling_name",
    "calling_number",
    "called_number",
    "offer_timestamp",
    "answer_timestamp",
    "hangup_timestamp",
    "other_uuid",
    "user_id",
    "state",
    "group_id",
    "target",
    "origination",
    "end_user",
    "tags",
    "last_bridged_user_id",
    "last_event",
    "last_event_data",
    "other_info",
    "call_id",
)

#: the README's field order per entity: used until the server's field_spec arrives, and by the
#: simulator by default (channel_waiting / queued / parked channels are assumed to share the
#: channel's fields; domain's fields are not documented: ``id, name`` is a guess)
DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "channel": _CHANNEL_FIELDS,
    "channel_waiting": _CHANNEL_FIELDS,
    "queued_channel": _CHANNEL_FIELDS,
    "parked_channel": _CHANNEL_FIELDS,
    "user": (
        "id",
        "name",
        "fwd_always_status",
        "do_not_disturb_status",
        "language",
        "main_extension",
        "presence",
        "role",
        "park_group",
        "mwi_target",
        "flags",
        "followme",
        "email",
        "avatar",
        "label",
        "mwi",
    ),
    "group": (
        "id",
        "name",
        "type",
        "language",
        "main_extension",
        "queue",
        "label",
        "flags",
        "check_login_status",
        "mwi",
    ),
    "group_member": ("id", "group_id", "user_id", "priority", "login_status", "role"),
    "terminal": ("id", "name", "assoc_user_id", "type", "user_agent", "registered"),
    "domain": ("id", "name"),
}

#: fields whose text values go on the wire as atoms (enum-like, §2.2); everything else is a binary.
#: Channel ones are from the doc; ``user.presence`` is an inference.
ENUM_FIELDS: dict[str, frozenset[str]] = {
    **{e: frozenset({"direction", "peer_location", "last_event"}) for e in CHANNEL_ENTITIES},
    "user": frozenset({"presence"}),
}

#: system messages after which the server closes the socket: reconnecting would fight another client
FATAL_SYSTEM_MSGS = frozenset({"connection_replaced", "connection_limit_reached"})

#: the tags :func:`encode_field_spec` and friends may write (version byte included)
ALLOWED_TAGS = frozenset({131, 97, 98, 110, 111, 100, 104, 106, 107, 108, 109})

_KINDS = ("field_spec", "initial_info", "info_event", "system_msg", "msg")


def _err(message: str) -> PlatformError:
    return PlatformError(message, source="basix")


# -- values ------------------------------------------------------------------------------------


def normalize(term: Any) -> Any:
    """A decoded term as Basix means it: atom → str (``undefined`` → None, ``true``/``false`` → bool),
    charlist → str, binary → UTF-8 str (bad bytes replaced), ``{bert, nil}`` → ``[]``, tuples and lists
    element-wise (tuples stay tuples), maps with normalized keys.

    >>> nil = (Atom("bert"), Atom("nil"))
    >>> normalize((Atom("calling"), Atom("undefined"), b"\\xe5\\xb1\\xb1", Charlist("x"), nil))
    ('calling', None, '山', 'x', [])
    """
    if isinstance(term, Atom):
        if term == "undefined":
            return None
        if term == "true":
            return True
        if term == "false":
            return False
        return str.__str__(term)
    if isinstance(term, str):  # Charlist, or plain text
        return str.__str__(term)
    if isinstance(term, bytes | bytearray):
        return bytes(term).decode("utf-8", errors="replace")
    if isinstance(term, tuple):
        if _is_bert_nil(term):
            return []
        return tuple(normalize(x) for x in term)
    if isinstance(term, list):
        return [normalize(x) for x in term]
    if isinstance(term, dict):
        out: dict[Any, Any] = {}
        for k, v in term.items():
            key = normalize(k)
            if not isinstance(key, str | int | float | bool) and key is not None:
                key = repr(key)
            out[key] = normalize(v)
        return out
    return term


def _is_bert_nil(term: Any) -> bool:
    return (
        isinstance(term, tuple)
        and len(term) == 2
        and isinstance(term[0], Atom)
        and isinstance(term[1], Atom)
        and term[0] == "bert"
        and term[1] == "nil"
    )


def us_to_unix(value: Any) -> float | None:
    """Basix µs since the epoch → Unix seconds (``None`` for anything that is not a positive int)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value / 1_000_000
    return None


# -- messages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BasixMessage:
    """One server message, values normalized (see :func:`normalize`).

    Attributes:
        kind: ``field_spec``, ``initial_info``, ``info_event``, ``system_msg`` or ``msg``.
        entity: the entity name (``channel``, ``user``, ...) for the first three kinds.
        fields: ``field_spec``'s field names.
        elements: ``initial_info``'s positional tuples (empty for ``{bert, nil}`` or ``[]``).
        element: ``info_event``'s positional tuple.
        event: ``info_event``'s event (``added``, ``updated``, ``removed``).
        msg: ``system_msg``'s / ``msg``'s content (a str for system_msg).
    """

    kind: str
    entity: str | None = None
    fields: tuple[str, ...] = ()
    elements: tuple[tuple[Any, ...], ...] = ()
    element: tuple[Any, ...] | None = None
    event: str | None = None
    msg: Any = None


def _unwrap(term: Any) -> Any:
    # before 2018-11 the message was wrapped once more (a 1-element list or tuple)
    for _ in range(2):
        if isinstance(term, list | tuple) and len(term) == 1 and isinstance(term[0], tuple):
            term = term[0]
    return term


def _short(term: Any) -> str:
    text = repr(term)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_message(term: Any) -> BasixMessage:
    """A decoded frame (the :func:`.etf.decode` result) → :class:`BasixMessage`.

    Raises :exc:`PlatformError` (``source="basix"``) with a one-line message for an unknown kind or a
    malformed shape. A pre-2018 extra wrapper (a 1-element list or tuple) is removed first.
    """
    term = _unwrap(term)
    if not isinstance(term, tuple) or not term:
        raise _err(f"basix message is not a tuple: {_short(term)}")
    head = term[0]
    kind = normalize(head) if isinstance(head, str | bytes) else None
    if kind not in _KINDS:
        raise _err(f"unknown basix message kind {_short(head)} (known: {', '.join(_KINDS)})")
    arity = {"field_spec": 3, "initial_info": 3, "info_event": 4, "system_msg": 2, "msg": 2}[kind]
    if len(term) != arity:
        raise _err(f"basix {kind} has {len(term)} elements, expected {arity}: {_short(term)}")
    if kind in ("system_msg", "msg"):
        msg = normalize(term[1])
        if kind == "system_msg" and not isinstance(msg, str):
            msg = json.dumps(msg, default=str)
        return BasixMessage(kind, msg=msg)
    entity = normalize(term[1])
    if not isinstance(entity, str) or not entity:
        raise _err(f"basix {kind} entity name is not text: {_short(term[1])}")
    body = term[2]
    if kind == "field_spec":
        names = normalize(body)
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise _err(f"basix field_spec of {entity} is not a list of field names: {_short(body)}")
        return BasixMessage(kind, entity, fields=tuple(names))
    if kind == "initial_info":
        items = [] if _is_bert_nil(body) else body
        if not isinstance(items, list) or not all(isinstance(x, tuple) for x in items):
            raise _err(
                f"basix initial_info of {entity} is not a list of tuples or {{bert,nil}}: {_short(body)}"
            )
        return BasixMessage(kind, entity, elements=tuple(normalize(x) for x in items))
    element, event = body, normalize(term[3])
    if not isinstance(element, tuple) or _is_bert_nil(element):
        raise _err(f"basix info_event element of {entity} is not a tuple: {_short(element)}")
    if not isinstance(event, str) or not event:
        raise _err(f"basix info_event event name is not text: {_short(term[3])}")
    return BasixMessage(kind, entity, element=normalize(element), event=event)


# -- nested channel fields ---------------------------------------------------------------------


def _at(items: Sequence[Any], i: int) -> Any:
    return items[i] if i < len(items) else None


_STATE_EXTRA: dict[str, tuple[str, ...]] = {
    "voicemail": ("target_type", "target_id", "target_name"),
    "checking_voicemail": ("voicemail_name",),
    "calling_siptermination": ("url",),
    "ivr": ("ivr_id",),
    "system_operation": ("op",),
    "conference": ("room_id",),
    "park": ("slot", "_3", "parker_id", "parker_name"),
    "eavesdrop": ("eavesdrop_uuid", "eavesdrop_state"),
    "bridged": (),
    "xml_ivr": (),
}


def decode_state(state: Any) -> dict[str, Any] | None:
    """``{Ts, Name, ...}`` → ``{"ts", "name", ..., "raw"}`` (§2.3). None stays None; a value that is not
    a tuple comes back as ``{"ts": None, "name": None, "raw": value}``.

    ``calling`` adds ``direction`` (``int``/``ext``), ``target_type`` and ``target``: user →
    ``{"user_id"}``, group → ``{"mode", "group_id", "queue"}``, pstn → ``{"address"}``, bridged_endpoint
    → ``{"user", "host"}``.
    """
    if state is None:
        return None
    if not isinstance(state, tuple | list):
        return {"ts": None, "name": None, "raw": state}
    items = list(state)
    name = _at(items, 1)
    out: dict[str, Any] = {"ts": _at(items, 0), "name": name}
    if name == "calling":
        ttype, data = _at(items, 3), _at(items, 4)
        data = list(data) if isinstance(data, tuple | list) else [data]
        out["direction"] = _at(items, 2)
        out["target_type"] = ttype
        if ttype == "user":
            target: dict[str, Any] = {"user_id": _at(data, 0)}
        elif ttype == "group":
            target = {"mode": _at(data, 0), "group_id": _at(data, 1), "queue": _at(data, 4)}
        elif ttype == "pstn":
            target = {"address": _at(data, 0)}
        elif ttype == "bridged_endpoint":
            target = {"user": _at(data, 0), "host": _at(data, 1)}
        else:
            target = {"data": data}
        out["target"] = target
    elif isinstance(name, str) and name in _STATE_EXTRA:
        for i, key in enumerate(_STATE_EXTRA[name]):
            if not key.startswith("_"):
                out[key] = _at(items, 2 + i)
    out["raw"] = items
    return out


def decode_target(target: Any) -> dict[str, Any] | None:
    """``{Type, Id, Name, Address}`` → dict (None stays None)."""
    if not isinstance(target, tuple | list):
        return None if target is None else {"type": None, "id": None, "name": None, "address": target}
    return {k: _at(target, i) for i, k in enumerate(("type", "id", "name", "address"))}


def decode_other_info(info: Any) -> dict[str, Any] | None:
    """``{Type(user|end_user), UserIdOrEndUser, Direction, PeerLocation, Address, OfferTs, GroupId,
    Whoscall}`` → dict; the second element becomes ``user_id``, or ``end_user`` (decoded) and
    ``end_user_raw``."""
    if not isinstance(info, tuple | list):
        return None
    kind, who = _at(info, 0), _at(info, 1)
    out: dict[str, Any] = {"type": kind}
    if kind == "end_user":
        out["user_id"] = None
        out["end_user"] = decode_end_user(who)
        out["end_user_raw"] = who
    else:
        out["user_id"] = who
        out["end_user"] = None
        out["end_user_raw"] = None
    for i, key in enumerate(
        ("direction", "peer_location", "address", "offer_timestamp", "group_id", "whoscall"), start=2
    ):
        out[key] = _at(info, i)
    return out


_END_USER_KEYS = ("id", "name", "organization", "avatar", "prefecture")


def _one_end_user(text: str) -> dict[str, Any] | None:
    parts = text.split("*")
    if all(p == "" for p in parts):
        return None
    parts += [""] * (len(_END_USER_KEYS) - len(parts))
    values = [unquote_plus(p) or None for p in parts]
    out: dict[str, Any] = dict(zip(_END_USER_KEYS, values, strict=False))
    if len(values) > len(_END_USER_KEYS):
        out["_extra"] = values[len(_END_USER_KEYS) :]
    return out


def decode_end_user(value: Any) -> dict[str, Any] | None:
    """``id*name*organization*avatar*prefecture`` (each part URL-encoded, ``+`` = space) → dict.

    All-``*`` or empty → None. ``_MANY_:N|item|item`` → ``{"many": N, "candidates": [dict, ...]}``.

    >>> decode_end_user("42*Taro+Yamada*ACME%2A*av*Tokyo")["organization"]
    'ACME*'
    """
    if not isinstance(value, str) or not value.strip("*"):
        return None
    if value.startswith("_MANY_:"):
        count_text, _, rest = value[len("_MANY_:") :].partition("|")
        count = int(count_text) if count_text.isdigit() else None
        candidates = [c for c in (_one_end_user(x) for x in rest.split("|")) if c is not None] if rest else []
        return {"many": count, "candidates": candidates}
    return _one_end_user(value)


def decode_origination(value: Any) -> list[str]:
    """``*``-separated, URL-encoded → list of parts (``[]`` for none)."""
    if not isinstance(value, str) or not value:
        return []
    return [unquote(p) for p in value.split("*")]


def decode_tags(value: Any) -> list[str]:
    """``;``-separated → list of tags, empty items dropped."""
    if not isinstance(value, str):
        return []
    return [t for t in value.split(";") if t]


# -- elements ----------------------------------------------------------------------------------


def key_of(entity: str, element: Mapping[str, Any]) -> Any:
    """An element's table key: ``uuid`` for channels, ``id`` for the rest."""
    return element.get("uuid" if entity in CHANNEL_ENTITIES else "id")


@dataclass
class Decoder:
    """The latest field_spec per entity; maps positional tuples to dicts (see the module docstring)."""

    specs: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def learn(self, entity: str, fields: Iterable[str]) -> None:
        self.specs[entity] = tuple(fields)

    def fields(self, entity: str) -> tuple[str, ...] | None:
        """The entity's columns: its field_spec, else the README order, else None."""
        return self.specs.get(entity, DEFAULT_FIELDS.get(entity))

    def mismatch(self, entity: str, values: Sequence[Any]) -> str | None:
        """A one-line note when ``values`` does not fit the entity's field_spec, else None."""
        spec = self.specs.get(entity)
        if spec is None:
            if entity in DEFAULT_FIELDS:
                return f"no field_spec for {entity} yet: read in the README order"
            return f"no field_spec for {entity}: fields named field_0..field_{len(values) - 1}"
        if len(values) != len(spec):
            return (
                f"{entity} element has {len(values)} values but its field_spec lists {len(spec)} fields"
                + (": missing ones set to None" if len(values) < len(spec) else ": extras kept in _extra")
            )
        return None

    def element(self, entity: str, values: Sequence[Any]) -> dict[str, Any]:
        """A positional (normalized) tuple → dict, nested channel fields decoded."""
        names = self.fields(entity) or tuple(f"field_{i}" for i in range(len(values)))
        out: dict[str, Any] = {name: _at(values, i) for i, name in enumerate(names)}
        if len(values) > len(names):
            out["_extra"] = list(values[len(names) :])
        if entity in CHANNEL_ENTITIES:
            _decode_channel(out)
        return out


def _decode_channel(out: dict[str, Any]) -> None:
    if "state" in out:
        out["state"] = decode_state(out["state"])
    if "target" in out:
        out["target"] = decode_target(out["target"])
    if "other_info" in out:
        out["other_info"] = decode_other_info(out["other_info"])
    if "end_user" in out:
        out["end_user_raw"] = out["end_user"]
        out["end_user"] = decode_end_user(out["end_user"])
    if "origination" in out:
        out["origination_raw"] = out["origination"]
        out["origination"] = decode_origination(out["origination"])
    if "tags" in out:
        out["tags_raw"] = out["tags"]
        out["tags"] = decode_tags(out["tags"])


@dataclass(frozen=True)
class Change:
    """What :meth:`ElementTables.apply` did.

    Attributes:
        kind: the message kind.
        entity: the entity (None for system_msg / msg).
        event: ``initial`` for initial_info, the info_event's event, else None.
        key: the element's key (info_event).
        element: the decoded element (info_event; for ``removed`` the element as sent).
        elements: the decoded elements (initial_info).
        note: a one-line remark (field count mismatch, missing key), else None.
    """

    kind: str
    entity: str | None = None
    event: str | None = None
    key: Any = None
    element: dict[str, Any] | None = None
    elements: tuple[dict[str, Any], ...] = ()
    note: str | None = None


@dataclass
class ElementTables:
    """Live element tables per entity, kept as the JS library keeps them.

    ``initial_info`` replaces the entity's table; ``info_event`` ``removed`` deletes the element,
    any other event upserts it. Keys: ``uuid`` for channels, ``id`` for the rest.

    >>> tables = ElementTables()
    >>> _ = tables.apply(BasixMessage("field_spec", "terminal", fields=("id", "name")))
    >>> tables.apply(BasixMessage("info_event", "terminal", element=(7, "desk"), event="added")).key
    7
    >>> tables.rows("terminal")
    [{'id': 7, 'name': 'desk'}]
    """

    decoder: Decoder = field(default_factory=Decoder)
    tables: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)

    def apply(self, msg: BasixMessage) -> Change:
        entity = msg.entity
        if msg.kind == "field_spec" and entity is not None:
            self.decoder.learn(entity, msg.fields)
            return Change(msg.kind, entity)
        if msg.kind == "initial_info" and entity is not None:
            notes = {n for n in (self.decoder.mismatch(entity, e) for e in msg.elements) if n}
            decoded = tuple(self.decoder.element(entity, e) for e in msg.elements)
            table: dict[Any, dict[str, Any]] = {}
            missing = 0
            for item in decoded:
                key = key_of(entity, item)
                if key is None:
                    missing += 1
                else:
                    table[key] = item
            if missing:
                notes.add(f"{missing} {entity} element(s) without a key left out of the table")
            self.tables[entity] = table
            return Change(
                msg.kind, entity, "initial", elements=decoded, note="; ".join(sorted(notes)) or None
            )
        if msg.kind == "info_event" and entity is not None and msg.element is not None:
            note = self.decoder.mismatch(entity, msg.element)
            item = self.decoder.element(entity, msg.element)
            key = key_of(entity, item)
            table = self.tables.setdefault(entity, {})
            if key is None:
                extra = f"{entity} element without a key: table unchanged"
                note = f"{note}; {extra}" if note else extra
            elif msg.event == "removed":
                table.pop(key, None)
            else:
                table[key] = item
            return Change(msg.kind, entity, msg.event, key, item, note=note)
        return Change(msg.kind)

    def rows(self, entity: str) -> list[dict[str, Any]]:
        """The entity's current elements (shallow copies), in arrival order."""
        return [dict(e) for e in self.tables.get(entity, {}).values()]

    def get(self, entity: str, key: Any) -> dict[str, Any] | None:
        item = self.tables.get(entity, {}).get(key)
        return None if item is None else dict(item)

    def columns(self, entity: str) -> list[str]:
        """Column names for a DataFrame of the entity: its fields, then any extra keys seen."""
        cols = list(self.decoder.fields(entity) or ())
        for item in self.tables.get(entity, {}).values():
            for k in item:
                if k not in cols:
                    cols.append(k)
        return cols

    def clear(self) -> None:
        """Forget every table and field_spec (a new connection sends them again)."""
        self.tables.clear()
        self.decoder.specs.clear()


# -- flat columns (§4) -------------------------------------------------------------------------

#: the key columns of an ``in`` row (platforms.md §4), plus ``event_ts``
FLAT_COLUMNS: tuple[str, ...] = (
    "entity",
    "event",
    "uuid",
    "other_uuid",
    "direction",
    "calling_number",
    "called_number",
    "state",
    "last_event",
    "last_event_data",
    "call_id",
    "event_ts",
)


def flat(type: str, payload: Mapping[str, Any] | Any) -> dict[str, Any]:
    """The §4 key columns of an ``in`` row's payload. Never raises: odd input gives Nones.

    ``event_ts`` is the latest of the element's state ts and offer/answer/hangup timestamps (µs),
    as Unix seconds; None when the element has none (users, groups, ...).
    """
    out: dict[str, Any] = dict.fromkeys(FLAT_COLUMNS)
    try:
        if not isinstance(payload, Mapping):
            return out
        entity = payload.get("entity")
        out["entity"] = entity if isinstance(entity, str) else None
        event = payload.get("event")
        if event is None and isinstance(type, str) and type.endswith(".initial"):
            event = "initial"
        out["event"] = event if isinstance(event, str) else None
        element = payload.get("element")
        if not isinstance(element, Mapping):
            return out
        for key in ("uuid", "other_uuid", "direction", "calling_number", "called_number", "last_event"):
            value = element.get(key)
            out[key] = value if isinstance(value, str | int) and not isinstance(value, bool) else None
        for key in ("last_event_data", "call_id"):
            value = element.get(key)
            out[key] = value if isinstance(value, str) else None
        state = element.get("state")
        ts_values = [element.get(k) for k in ("offer_timestamp", "answer_timestamp", "hangup_timestamp")]
        if isinstance(state, Mapping):
            name = state.get("name")
            out["state"] = name if isinstance(name, str) else None
            ts_values.append(state.get("ts"))
        elif isinstance(state, list | tuple) and len(state) >= 2:
            out["state"] = state[1] if isinstance(state[1], str) else None
            ts_values.append(state[0])
        times = [t for t in (us_to_unix(v) for v in ts_values) if t is not None]
        out["event_ts"] = max(times) if times else None
    except Exception:  # odd payloads give Nones, never an error
        return out
    return out


# -- encoding (for the simulator) --------------------------------------------------------------

_UNDEFINED = Atom("undefined")
_BERT_NIL = (Atom("bert"), Atom("nil"))


def wire_term(value: Any) -> Any:
    """A Python value → the term Basix would send: None → ``undefined``, str → binary (an
    :class:`.etf.Atom` stays an atom), tuples element-wise. Floats, maps and other types are
    refused (the JS parser reads none of them)."""
    if value is None:
        return _UNDEFINED
    if isinstance(value, bool | Atom | Charlist | bytes):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return value  # etf writes a plain str as a UTF-8 BINARY_EXT
    if isinstance(value, tuple):
        return tuple(wire_term(v) for v in value)
    if isinstance(value, list):
        return [wire_term(v) for v in value]
    raise ValueError(f"Basix never sends {type(value).__name__} values: {value!r:.60}")


def element_term(entity: str, values: Mapping[str, Any], fields: Sequence[str]) -> tuple[Any, ...]:
    """An element (a dict by field name) → its positional tuple in ``fields`` order: enum fields
    (:data:`ENUM_FIELDS`) as atoms, text as binaries, missing as ``undefined``."""
    enums = ENUM_FIELDS.get(entity, frozenset())
    out = []
    for name in fields:
        value = values.get(name)
        if name in enums and isinstance(value, str) and not isinstance(value, Atom):
            value = Atom(value)
        out.append(wire_term(value))
    return tuple(out)


def encode_field_spec(entity: str, fields: Sequence[str]) -> bytes:
    """``{field_spec, "ENTITY", [field, ...]}`` (entity a STRING_EXT, fields atoms)."""
    return encode((Atom("field_spec"), Charlist(entity), [Atom(f) for f in fields]))


def encode_initial_info(entity: str, elements: Sequence[tuple[Any, ...]]) -> bytes:
    """``{initial_info, "ENTITY", [Tuple, ...]}``, or ``{bert, nil}`` when there are none."""
    body: Any = [wire_term(e) for e in elements] if elements else _BERT_NIL
    return encode((Atom("initial_info"), Charlist(entity), body))


def encode_info_event(entity: str, element: tuple[Any, ...], event: str) -> bytes:
    """``{info_event, "ENTITY", Tuple, "EVENT"}`` (entity and event STRING_EXT)."""
    return encode((Atom("info_event"), Charlist(entity), wire_term(element), Charlist(event)))


def encode_system_msg(msg: str) -> bytes:
    """``{system_msg, Msg}`` with Msg an atom (``connection_replaced``, ...)."""
    return encode((Atom("system_msg"), Atom(msg)))


def encode_msg(msg: Any) -> bytes:
    """``{msg, Msg}``; text is sent as a binary."""
    return encode((Atom("msg"), wire_term(msg)))


def simple_state(ts: int, name: str) -> tuple[Any, ...]:
    """``{Ts, Name}`` (``bridged``, ``xml_ivr``)."""
    return (ts, Atom(name))


def calling_user_state(ts: int, user_id: int, direction: str = "int") -> tuple[Any, ...]:
    """``{Ts, calling, int|ext, user, {UserId}}``."""
    return (ts, Atom("calling"), Atom(direction), Atom("user"), (user_id,))


def calling_group_state(
    ts: int, group_id: int, mode: str = "ring", queue: str | None = None, direction: str = "int"
) -> tuple[Any, ...]:
    """``{Ts, calling, int|ext, group, {ring|hunt, GroupId, _, _, QueueId}}``."""
    return (ts, Atom("calling"), Atom(direction), Atom("group"), (Atom(mode), group_id, None, None, queue))


def calling_pstn_state(ts: int, address: str, direction: str = "ext") -> tuple[Any, ...]:
    """``{Ts, calling, int|ext, pstn, {Address}}``."""
    return (ts, Atom("calling"), Atom(direction), Atom("pstn"), (address,))


def command(cmd: str, uuid: str, **fields: Any) -> dict[str, Any]:
    """A §2.5 client command as a dict (send it as JSON text): ``{"cmd": cmd, "uuid": uuid, ...}``;
    ``None`` fields are left out."""
    return {"cmd": cmd, "uuid": uuid, **{k: v for k, v in fields.items() if v is not None}}
