"""The shape of an event-log row, shared by every source that writes one.

A row is a plain tuple in :data:`RECORD_FIELDS` order, appended on the lab's
loop thread. ``source`` says who produced it: ``"jambonz"`` for the app
server's frames and lab events, ``"kazoo"``, ``"basix"`` or ``"wazo"`` for the
platform event sources of :mod:`jambonz_lab.platforms`.

Example::

    from jambonz_lab.records import make_row
    make_row("kazoo", "in", "CHANNEL_CREATE", call_sid="abc", payload={"call_id": "abc"})
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

__all__ = ["RECORD_FIELDS", "SOURCES", "Record", "make_row"]

#: every row's fields, in order (rows are positional tuples)
RECORD_FIELDS = (
    "ts",
    "call_sid",
    "direction",
    "type",
    "msgid",
    "hook",
    "verbs",
    "payload",
    "note",
    "path",
    "source",
)

#: the sources jambonz_lab knows; ``source`` column values
SOURCES = ("jambonz", "kazoo", "basix", "wazo")

#: the callback a row is handed to (the lab's event log); called on the loop thread
Record = Callable[[tuple[Any, ...]], None]


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
) -> tuple[Any, ...]:
    """One row. ``direction`` is ``"in"`` (from the platform), ``"out"`` (sent to it) or ``"lab"``
    (something the lab noticed: a reconnect, a decode error); ``payload`` is JSON text or a
    JSON-able value (encoded here; anything else becomes its ``str``)."""
    text = payload if payload is None or isinstance(payload, str) else json.dumps(payload, default=str)
    return (
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
    )
