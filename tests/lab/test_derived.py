"""``calls``, ``hooks`` and ``statuses`` of a Parquet log built by DuckDB (jambonz_lab.lab.derived)
are the very frames the lab builds in pandas from the same rows (``read_log(DIR).calls``, …).

The log is a real lab's (gather menus, a dial whose B-leg reports its own ``call:status``, a webhook
call, a handler that raises), plus rows a real log can hold that those calls do not make: a second
``session:new`` for a sid that ended (a new call), rows before a call's ``session:new``, a payload
that is not JSON, a hook never acked, a ``duration`` on the final status (jambonz sends one:
lib/session/call-session.js, the ``call:status`` of a completed call), platform rows sharing a
jambonz sid, rows of no call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.lab import derived
from jambonz_lab.lab.parquet import VERSION_KEY, part_files, write_rows
from jambonz_lab.records import Row, make_row

AGENT = "+15550100"


@pytest.fixture(scope="module")
def lab() -> Iterator[jl.Lab]:
    lab = jl.start(grace=0.3)

    @lab.service("/menu").on("session:new")
    def menu(session: jl.Session) -> None:
        @session.on("/g")
        def heard(msg: jl.Message) -> None:
            if msg.transcript == "agent":
                session.dial(target=[{"type": "phone", "number": AGENT}], actionHook="/dialed").reply()
            elif msg.transcript == "crash":
                raise RuntimeError("the app fails on this input")
            else:
                session.say(text="bye").hangup().reply()

        @session.on("/dialed")
        def dialed(msg: jl.Message) -> None:
            session.hangup().reply()

        session.gather(input=["speech"], actionHook="/g", say={"text": "hello"}).send()

    lab.call("/menu", sim.Caller.saying("bye"))
    agent = sim.Caller(inputs=[sim.Speech("agent")], dial={AGENT: sim.DialOutcome("answer", talk=5)})
    lab.call("/menu", agent)
    lab.call("/menu", sim.Caller.saying("crash"), clock="virtual")
    sim.call(lab.http_url + "/menu", sim.Caller.saying("bye"), status_hook=lab.http_url + "/menu/status")
    yield lab
    lab.stop()


def odd_rows(log_rows: list[Row]) -> list[Row]:
    """Rows a log can hold that the calls above do not make, timed after them."""
    sid = next(r.call_sid for r in log_rows if r.type == "session:new" and r.call_sid)
    t = max(r.ts for r in log_rows) + 1

    def status(call_sid: str, value: str, **data: object) -> Row:
        body = {
            "type": "call:status",
            "call_sid": call_sid,
            "data": {"call_sid": call_sid, "call_status": value, **data},
        }
        return make_row("jambonz", "in", "call:status", call_sid=call_sid, payload=body)

    again = [  # the same sid's second call: a status before its session:new, then a whole call
        status(sid, "trying"),
        make_row(
            "jambonz", "in", "session:new", call_sid=sid, msgid="m-again",
            payload={"data": {"call_sid": sid, "from": "+1555", "to": "+1666", "direction": "inbound"}},
        ),
        status(sid, "in-progress", sip_status="200"),
        make_row("jambonz", "in", "verb:hook", call_sid=sid, msgid="m-hook", hook="/never-acked",
                 payload={"data": {"call_sid": sid, "reason": "timeout"}}),
        make_row("jambonz", "in", "call:status", call_sid=sid, payload="{not json"),
        make_row("jambonz", "out", "ack", call_sid=sid, msgid="m-again", note="auto"),
        make_row("jambonz", "out", "ack", call_sid=sid, msgid="m-orphan"),
        make_row("jambonz", "lab", "bad-frame", call_sid=sid, note="not JSON"),
        status(sid, "completed", duration=42),
        make_row("kazoo", "in", "CHANNEL_DESTROY", call_sid=sid, payload={"data": {"call_status": "failed"}}),
        make_row("jambonz", "lab", "refused-frame", note="before any call"),
    ]  # fmt: skip
    return [row._replace(ts=t + i * 0.001) for i, row in enumerate(again)]


def built_and_read(directory: Path) -> tuple[dict[str, pd.DataFrame], jl.EventLog]:
    parts = part_files(directory)
    return derived.build(parts, {"calls", "hooks", "statuses"}), jl.read_log(directory)


def test_the_tables_built_by_duckdb_are_the_labs(lab: jl.Lab, tmp_path: Path) -> None:
    rows = lab.log.select()
    write_rows(rows, tmp_path, part_rows=7)  # many batches: the read order crosses parts
    write_rows(odd_rows(rows), tmp_path)
    built, back = built_and_read(tmp_path)
    pd.testing.assert_frame_equal(built["calls"], back.calls)
    pd.testing.assert_frame_equal(built["hooks"], back.hooks)
    pd.testing.assert_frame_equal(built["statuses"], back.statuses)
    calls = built["calls"]
    assert len(calls) == 5  # four calls, and the first sid's second one
    assert set(calls["clock"]) == {"call", "wall"}  # the simulated calls, and the rows written here
    again = calls.iloc[-1]
    facts = (again["from"], again["final_status"], again["duration_s"], again["errors"])
    assert facts == ("+1555", "completed", 42.0, 1)
    assert built["hooks"]["ack_ms"].isna().sum() == 1  # the hook never acked
    assert (built["hooks"]["verbs"] >= 0).sum() == len(built["hooks"]) - 1


def test_the_b_leg_status_is_not_the_calls_own(lab: jl.Lab, tmp_path: Path) -> None:
    """A dial's B-leg reports ``call:status`` with its own ``call_sid`` in the data (the leg): it is
    in ``statuses`` but does not end the A-leg's call."""
    write_rows(lab.log.select(), tmp_path)
    built, back = built_and_read(tmp_path)
    legs = built["statuses"]
    b_legs = legs[legs["leg"].notna() & legs["leg"].ne(legs["call_sid"])]
    assert len(b_legs) > 0
    pd.testing.assert_frame_equal(built["calls"], back.calls)


def test_jl_sql_over_a_directory_uses_the_built_tables(lab: jl.Lab, tmp_path: Path) -> None:
    lab.log.to_parquet(tmp_path)
    query = "select call_sid, final_status, hooks, errors, duration_s, clock from calls order by call_sid"
    pd.testing.assert_frame_equal(jl.sql(query, tmp_path), lab.sql(query))
    both = jl.sql("select (select count(*) from hooks) as h, (select count(*) from statuses) as s", tmp_path)
    assert (both["h"][0], both["s"][0]) == (len(lab.hooks), len(lab.statuses))


def test_payloads_are_read_as_the_lab_reads_them(tmp_path: Path) -> None:
    """A payload that is JSON but not an object, or whose ``data`` is not one, has no fields."""
    rows = [
        make_row("jambonz", "in", "session:new", call_sid="s1", msgid="a", payload={"data": ["x"]}),
        make_row("jambonz", "in", "call:status", call_sid="s1", payload=json.dumps([1, 2])),
        make_row("jambonz", "in", "call:status", call_sid="s1", payload={"data": {"call_status": "busy"}}),
    ]
    write_rows(rows, tmp_path)
    built, back = built_and_read(tmp_path)
    for name in ("calls", "hooks", "statuses"):
        pd.testing.assert_frame_equal(built[name], getattr(back, name))
    assert built["calls"]["final_status"].tolist() == ["busy"]


def test_a_part_of_a_newer_schema_is_refused_as_read_log_refuses_it(lab: jl.Lab, tmp_path: Path) -> None:
    (part,) = write_rows(lab.log.select(), tmp_path)
    table = pq.read_table(part)
    pq.write_table(table.replace_schema_metadata({VERSION_KEY: b"99"}), part)
    with pytest.raises(ValueError, match=r"schema version 99 is newer than this jambonz_lab reads \(1\)"):
        jl.sql("select count(*) from calls", tmp_path)
