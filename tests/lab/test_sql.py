"""SQL over the event log with DuckDB: ``lab.sql`` over the in-memory log, ``jl.sql`` and
``lab.sql(parquet=...)`` over a Parquet log directory (issue 17).

Lab behaviours with a real lab and simulated calls; jambonz's part is the ``call:status`` values
and the hooks it waits an ack for (lib/session/call-session.js, lib/utils/ws-requestor.js).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.lab.parquet import write_rows
from jambonz_lab.lab.queries import named


@pytest.fixture
def lab() -> Iterator[jl.Lab]:
    lab = jl.start(grace=0.3)

    @lab.service("/").on("session:new")
    def new(session: jl.Session) -> None:
        @session.on("/g")
        def heard(msg: jl.Message) -> None:
            if msg.transcript == "bye":
                session.say(text="bye").hangup().reply()
            else:
                session.gather(input=["speech"], actionHook="/g", say={"text": "more?"}).reply()

        session.gather(input=["speech"], actionHook="/g", say={"text": "hello"}).send()

    lab.call("/", sim.Caller.saying("bye"))
    lab.call("/", sim.Caller.saying("one", "two", "bye"))
    lab.call("/", sim.Caller.saying("one", "bye"))
    yield lab
    lab.stop()


def test_sql_over_the_in_memory_log(lab: jl.Lab) -> None:
    calls = lab.sql("select call_sid, final_status, hooks from calls order by hooks")
    assert isinstance(calls, pd.DataFrame)
    assert calls["final_status"].tolist() == ["completed"] * 3
    assert calls["hooks"].tolist() == sorted(lab.calls["hooks"].tolist())
    (n,) = lab.sql("select count(*) as n from events")["n"]
    assert n == len(lab.events)
    hooks = lab.sql("select type, count(*) as n from hooks group by type order by type")
    expected = lab.hooks.groupby("type").size()
    assert dict(zip(hooks["type"], hooks["n"], strict=True)) == expected.to_dict()
    p95 = lab.sql("select quantile_cont(ack_ms, 0.95) as p from hooks")["p"][0]
    assert p95 == pytest.approx(lab.hooks["ack_ms"].quantile(0.95))
    turns = lab.sql("select call_sid, count(*) as n from turns group by call_sid order by n")
    assert turns["n"].tolist() == sorted(lab.turns.groupby("call_sid").size().tolist())
    joined = lab.sql(
        "select c.call_sid, count(s.call_status) as n from calls c join statuses s using (call_sid) "
        "group by 1"
    )
    assert len(joined) == 3 and (joined["n"] > 0).all()
    assert jl.sql("select count(*) as n from calls")["n"][0] == 3  # the default lab


def test_sql_over_a_parquet_directory_equals_the_in_memory_answers(lab: jl.Lab, tmp_path: Path) -> None:
    lab.log.to_parquet(tmp_path)
    query = "select call_sid, final_status, hooks, errors from calls order by call_sid"
    _same(jl.sql(query, tmp_path), lab.sql(query))
    _same(lab.sql(query, parquet=tmp_path), lab.sql(query))
    per_type = "select type, direction, count(*) as n from events group by all order by all"
    _same(jl.sql(per_type, tmp_path), lab.sql(per_type))
    stored = jl.sql("select * from events limit 1", tmp_path)
    assert {"ts", "call_sid", "payload", "call_t", "source", "date"} <= set(stored.columns)
    assert isinstance(stored["ts"].dtype, pd.DatetimeTZDtype)  # epoch seconds shown as a timestamp
    (day,) = jl.sql("select distinct date from events", tmp_path)["date"]
    assert str(day)[:10] == lab.events["ts"].iloc[0].strftime("%Y-%m-%d")
    reasons = jl.sql(
        "select payload->>'$.data.speech.alternatives[0].transcript' as t from events "
        "where type = 'verb:hook' order by ts",
        tmp_path,
    )
    assert reasons["t"].tolist() == lab.events.query("type == 'verb:hook'")["transcript"].tolist()
    turns = "select call_sid, count(*) as n from turns group by 1 order by 1"
    _same(jl.sql(turns, tmp_path), lab.sql(turns))


def test_a_directory_that_grows_is_read_again(lab: jl.Lab, tmp_path: Path) -> None:
    lab.log.to_parquet(tmp_path)
    assert jl.sql("select count(*) as n from calls", tmp_path)["n"][0] == 3
    fourth = lab.call("/", sim.Caller.saying("bye")).call_sid
    write_rows(lab.log.select(fourth), tmp_path)  # the fourth call's rows, as a new part
    assert jl.sql("select count(*) as n from calls", tmp_path)["n"][0] == 4
    assert jl.sql("select count(distinct call_sid) as n from events", tmp_path)["n"][0] == 4


def test_an_empty_directory_has_empty_tables(tmp_path: Path) -> None:
    assert jl.sql("select count(*) as n from events", tmp_path)["n"][0] == 0
    assert jl.sql("select * from calls", tmp_path).empty


def test_a_bad_query_is_a_query_error_with_duckdbs_line(lab: jl.Lab, tmp_path: Path) -> None:
    with pytest.raises(jl.QueryError, match=r'^SQL query failed: Binder Error: .*"nope"') as caught:
        lab.sql("select nope from calls")
    assert isinstance(caught.value, ValueError)
    assert caught.value.query == "select nope from calls"
    assert "\n" not in str(caught.value)
    with pytest.raises(jl.QueryError, match="Parser Error"):
        lab.sql("selec * from calls")
    with pytest.raises(jl.QueryError, match="Catalog Error: .*nothere"):
        lab.sql("select * from nothere")
    with pytest.raises(jl.QueryError, match="the query is empty"):
        lab.sql("  ")
    with pytest.raises(FileNotFoundError, match="no Parquet log directory"):
        jl.sql("select 1", tmp_path / "missing")


def test_only_the_named_tables_are_built() -> None:
    assert named("select * from calls c join Hooks h using (call_sid)") == {"calls", "hooks"}
    assert named("select 1") == set()
    assert named("select count(*) from events_by_day") == set()  # a word match, not a prefix


def test_without_duckdb_sql_names_the_extra(lab: jl.Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "duckdb", None)
    with pytest.raises(ImportError, match=r"lab.sql needs duckdb: pip install 'jambonz-lab\[scale\]'"):
        lab.sql("select 1")


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
