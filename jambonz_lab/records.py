"""The shape of an event-log row, shared by every source that writes one.

A row is a :class:`Row` (a named tuple in :data:`RECORD_FIELDS` order), appended
on the lab's loop thread. ``source`` says who produced it: ``"jambonz"`` for the app
server's frames and lab events, ``"kazoo"``, ``"basix"`` or ``"wazo"`` for the
platform event sources of :mod:`jambonz_lab.platforms`.

Example::

    from jambonz_lab.records import make_row
    make_row("kazoo", "in", "CHANNEL_CREATE", call_sid="abc", payload={"call_id": "abc"})
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

__all__ = ["ERROR_KINDS", "RECORD_FIELDS", "SOURCES", "Record", "Row", "as_row", "make_row"]


class Row(NamedTuple):
    """One event-log row: still a tuple (cheap to append, to pickle and to hand to pandas), read by
    field name. Build it with :func:`make_row` (or ``Row(...)`` in field order)."""

    #: wall clock, UTC epoch seconds
    ts: float
    call_sid: str | None
    #: ``"in"`` (from the platform), ``"out"`` (sent to it) or ``"lab"`` (the lab noticed it)
    direction: str
    #: the message type, or the lab event's kind
    type: str
    msgid: str | None
    hook: str | None
    #: how many verbs an outgoing ack or command carried (0 otherwise)
    verbs: int
    #: the frame or payload as JSON text
    payload: str | None
    note: str | None
    #: the service path the socket came in on
    path: str | None
    #: ``"jambonz"``, ``"kazoo"``, ``"basix"`` or ``"wazo"``
    source: str
    #: how a jambonz frame travelled: ``"ws"`` (a WebSocket app) or ``"http"`` (a webhook
    #: request and its response); ``None`` for lab events and platform rows
    transport: str | None = None
    #: seconds on the call's own clock since the call started: a simulated call's virtual time
    #: (see :mod:`jambonz_lab.sim.callclock`); ``None`` when unknown (a real jambonz call, rows
    #: with no call)
    call_t: float | None = None


#: every row's fields, in order
RECORD_FIELDS: tuple[str, ...] = Row._fields

#: the sources jambonz_lab knows; ``source`` column values
SOURCES = ("jambonz", "kazoo", "basix", "wazo")
#: the lab rows (``direction == "lab"``) that count as errors, in ``lab.calls``' ``errors``
#: column and on the cards: a handler raised, a frame was bad or broke the protocol, a send
#: was refused (too large, or on an ended call)
ERROR_KINDS = frozenset({"handler-error", "bad-frame", "protocol-error", "refused-frame"})

#: the callback a row is handed to (the lab's event log); called on the loop thread
Record = Callable[[Row], None]


def as_row(values: Sequence[Any]) -> Row:
    """``values`` (a row read back from a file, a plain tuple in field order; a
    missing trailing field, ``transport`` or ``call_t``, is None) as a :class:`Row`."""
    return values if type(values) is Row else Row(*values)


def make_row(
    source: str,
    direction: str,
    type: str,
    *,
    call_sid: str | None = None,
    msgid: str | None = None,
    hook: str | None = None,
    payload: Any = None,
    note: str | None = None,
    path: str | None = None,
    ts: float | None = None,
    transport: str | None = None,
    call_t: float | None = None,
) -> Row:
    """One row. ``direction`` is ``"in"`` (from the platform), ``"out"`` (sent to it) or ``"lab"``
    (something the lab noticed: a reconnect, a decode error); ``payload`` is JSON text or a
    JSON-able value (encoded here; anything else becomes its ``str``)."""
    text = payload if payload is None or isinstance(payload, str) else json.dumps(payload, default=str)
    return Row(
        time.time() if ts is None else ts,
        call_sid,
        direction,
        type,
        msgid,
        hook,
        0,
        text,
        note,
        path,
        source,
        transport,
        call_t,
    )
