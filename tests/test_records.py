"""Event-log rows: one typed constructor, read by field name, still plain tuples underneath."""

from __future__ import annotations

import json
import pickle

from jambonz_lab.lab.events import EventLog, truncate
from jambonz_lab.records import RECORD_FIELDS, Row, as_row, make_row


def test_make_row_gives_a_typed_tuple() -> None:
    row = make_row("kazoo", "in", "CHANNEL_CREATE", call_sid="abc", payload={"call_id": "abc"}, ts=1.5)
    assert isinstance(row, Row) and isinstance(row, tuple)
    assert (row.ts, row.call_sid, row.direction, row.type, row.source) == (
        1.5,
        "abc",
        "in",
        "CHANNEL_CREATE",
        "kazoo",
    )
    assert json.loads(row.payload or "") == {"call_id": "abc"}
    assert RECORD_FIELDS == Row._fields and len(row) == len(RECORD_FIELDS)
    assert pickle.loads(pickle.dumps(row)) == row


def test_a_plain_tuple_becomes_a_row_in_the_log() -> None:
    values = (2.0, "c1", "in", "call:status", None, None, 0, '{"data": {}}', None, "/", "jambonz")
    assert as_row(values) == (*values, None, None) and as_row(values).path == "/"  # an old row: no transport
    assert as_row((*values, "http")).transport == "http"
    assert as_row((*values, "ws")).call_t is None  # a row from before call times
    assert as_row((*values, "ws", 3.25)).call_t == 3.25
    row = make_row("jambonz", "lab", "close")
    assert as_row(row) is row
    log = EventLog()
    log.record(values)
    assert log.select() == [Row(*values)] and log.select()[0].call_sid == "c1"


def test_truncate_keeps_the_other_fields() -> None:
    row = make_row("jambonz", "in", "verb:hook", call_sid="c", payload="x" * 5000, note="first")
    cut = truncate(row, 100)
    assert isinstance(cut, Row)
    assert cut._replace(payload=None, note=None) == row._replace(payload=None, note=None)
    assert json.loads(cut.payload or "")["size"] == 5000
    assert cut.note is not None and cut.note.startswith("first; payload of 5000 characters")
