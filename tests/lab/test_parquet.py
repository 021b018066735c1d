"""The event log as a Parquet directory: ``EventLog.to_parquet``, the live sink of
``start(parquet_dir=...)`` / ``serve --parquet``, and ``read_log`` of a directory (issue 17).

Lab behaviours with real files in tmp_path and real simulated calls; jambonz's part is only the
frames a row records (lib/utils/ws-requestor.js sends each message as one text frame).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.lab.parquet import SCHEMA_VERSION, VERSION_KEY, ParquetSink, part_files, write_rows
from jambonz_lab.records import RECORD_FIELDS, Row, make_row
from tests.fakejambonz import FakeJambonz, wait_until
from tests.lab.apps import heard_app
from tests.lab.test_cli import free_port, serve, stop


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def test_to_parquet_then_read_log_gives_the_same_log(tmp_path: Path) -> None:
    lab = jl.start(grace=0.3)
    try:
        heard_app(lab)
        sids = [lab.call("/", sim.Caller.saying(f"word {n}")).call_sid for n in range(4)]
        parts = lab.log.to_parquet(tmp_path / "log")
        back = jl.read_log(tmp_path / "log")
        assert parts == part_files(tmp_path / "log")
        assert back.select() == lab.log.select()  # every field of every row, ts to the last bit
        _same(back.events, lab.events)
        _same(back.calls, lab.calls)
        _same(back.hooks, lab.hooks)
        _same(back.statuses, lab.statuses)
        _same(jl.read_log(parts[0]).events, lab.events)  # one part alone reads too
        assert back.calls["call_sid"].tolist() == sids
        assert back.events["call_t"].notna().any()  # the simulated calls' own clock came along
        assert back.events_of(sids[2])["transcript"].dropna().tolist() == ["word 2"]
    finally:
        lab.stop()


def test_parts_are_partitioned_by_date_and_source_and_come_back_in_order(tmp_path: Path) -> None:
    day1, day2 = 1_767_225_000.0, 1_767_225_000.0 + 86_400  # 2025-12-31 23:50 UTC, a day later
    rows = [
        make_row("jambonz", "in", "session:new", call_sid="a", payload={"data": {}}, ts=day1),
        make_row("kazoo", "in", "CHANNEL_CREATE", call_sid="k", payload={"call_id": "k"}, ts=day1 + 1),
        make_row("jambonz", "out", "ack", call_sid="a", msgid="m1", ts=day1 + 2, transport="ws"),
        make_row("wazo", "in", "call_created", payload={"n": 1}, ts=day2),
        make_row("jambonz", "lab", "reconnect", note="a note", ts=day2 + 1, call_t=1.25),
    ]
    write_rows(rows, tmp_path)
    folders = sorted(str(p.parent.relative_to(tmp_path)) for p in part_files(tmp_path))
    assert folders == [
        f"date={_day(day1)}/source=jambonz",
        f"date={_day(day1)}/source=kazoo",
        f"date={_day(day2)}/source=jambonz",
        f"date={_day(day2)}/source=wazo",
    ]
    assert _day(day1) == "2025-12-31" and _day(day2) == "2026-01-01"
    assert jl.read_log(tmp_path).select() == rows
    later = [make_row("basix", "in", "CHANNEL_ANSWER", ts=day1 + 5)]  # older ts, newer batch
    write_rows(later, tmp_path)
    assert jl.read_log(tmp_path).select() == rows + later  # batches in the order written
    assert not list(tmp_path.glob("**/.*"))  # no temp file left


def test_each_part_carries_the_schema_and_its_version(tmp_path: Path) -> None:
    rows = [make_row("jambonz", "in", "verb:hook", call_sid="c", msgid="m", hook="/h", payload={"x": [1]})]
    (part,) = write_rows(rows, tmp_path)
    schema = pq.read_schema(part)
    assert schema.metadata[VERSION_KEY] == str(SCHEMA_VERSION).encode() == b"1"
    assert schema.names == list(RECORD_FIELDS)
    types = {f.name: str(f.type) for f in schema}
    assert types["ts"] == types["call_t"] == "double"
    assert types["verbs"] == "int32"
    assert types["payload"] == types["call_sid"] == types["transport"] == "string"
    table = pq.read_table(part)
    assert json.loads(table.column("payload")[0].as_py()) == {"x": [1]}


def test_a_part_of_a_newer_schema_or_of_no_lab_is_refused_in_one_line(tmp_path: Path) -> None:
    (part,) = write_rows([make_row("jambonz", "lab", "x")], tmp_path / "new")
    table = pq.read_table(part)
    pq.write_table(table.replace_schema_metadata({VERSION_KEY: b"99"}), part)
    with pytest.raises(ValueError, match=r"schema version 99 is newer than this jambonz_lab reads \(1\)"):
        jl.read_log(tmp_path / "new")
    pq.write_table(table.replace_schema_metadata({}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="is this a jambonz_lab log"):
        jl.read_log(tmp_path / "other.parquet")


def test_the_live_sink_writes_while_a_reader_reads(tmp_path: Path) -> None:
    """A reader in a loop while calls run: every read succeeds and sees whole parts, a prefix of
    the log (parts are renamed into place and never rewritten)."""
    folder = tmp_path / "live"
    lab = jl.start(grace=0.3, parquet_dir=folder)
    assert lab.parquet is not None
    lab.parquet.batch_rows = 3  # many small parts
    reads: list[list[Row]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                reads.append(jl.read_log(folder).select())
            except BaseException as exc:  # noqa: BLE001 - every failure is the test's failure
                errors.append(exc)

    thread = threading.Thread(target=reader)
    try:
        heard_app(lab)
        thread.start()
        for n in range(6):
            lab.call("/", sim.Caller.saying(f"word {n}"))
            assert lab.parquet.flush()
            assert jl.read_log(folder).select() == lab.log.select()  # all so far, after a flush
    finally:
        done.set()
        thread.join(30)
        final = lab.log.select()
        lab.stop()
    assert not errors
    assert reads and all(r == final[: len(r)] for r in reads)
    assert jl.read_log(folder).select() == final
    assert len(part_files(folder)) >= len(final) // 3


def test_stop_writes_the_rows_still_waiting(tmp_path: Path) -> None:
    lab = jl.start(grace=0.3, parquet_dir=tmp_path)
    try:
        heard_app(lab)
        lab.call("/", sim.Caller.saying("hello"))
        rows = lab.log.select()
    finally:
        lab.stop()
    assert lab.parquet is None
    assert jl.read_log(tmp_path).select() == rows  # fewer than a batch, within the interval: at stop


def test_a_failed_write_is_logged_and_its_rows_written_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ts = 1_767_225_000.0
    blocker = tmp_path / f"date={_day(ts)}"
    blocker.write_text("not a folder")  # the partition folder cannot be made
    sink = ParquetSink(tmp_path, batch_rows=2, interval=0.05)
    rows = [make_row("jambonz", "lab", f"e{n}", ts=ts + n) for n in range(3)]
    with caplog.at_level(logging.ERROR, logger="jambonz_lab.lab"):
        for row in rows:
            sink.add(row)
        assert not sink.flush(timeout=0.5)
    assert sink.error is not None and "cannot write the Parquet log" in sink.error
    assert "its rows are kept and written again later" in caplog.text
    blocker.unlink()
    assert sink.flush()
    sink.close()
    assert sink.error is None and sink.rows_written == 3
    assert jl.read_log(tmp_path).select() == rows


def test_without_pyarrow_the_sink_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"needs pyarrow: pip install 'jambonz-lab\[scale\]'"):
        jl.start(parquet_dir=tmp_path)
    with pytest.raises(ImportError, match=r"\[scale\]"):
        jl.EventLog().to_parquet(tmp_path)


def test_serve_parquet_writes_the_served_calls(tmp_path: Path) -> None:
    port = free_port()
    folder = tmp_path / "served"
    proc = serve("hello.py", port, "--parquet", str(folder))
    try:
        with FakeJambonz(f"ws://127.0.0.1:{port}/hello", "cli-parquet") as fj:
            msgid = fj.session_new()
            assert fj.recv()["msgid"] == msgid
    finally:
        code, _ = stop(proc)
    assert code == 0
    wait_until(lambda: bool(part_files(folder)))
    rows = jl.read_log(folder).select()
    assert [(r.direction, r.type) for r in rows if r.call_sid == "cli-parquet"][:2] == [
        ("in", "session:new"),
        ("out", "ack"),
    ]
