"""The event log bounded in memory (spilling to disk, views still over every call), built
incrementally off the loop, big payloads truncated, and a JSON-lines log that survives a kill.

Lab behaviours; jambonz's part is only the frames (lib/utils/ws-requestor.js sends each one as a
text frame, which is what a row records).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.lab.events import BUILD_SWITCH_INTERVAL, EventLog, brisk
from jambonz_lab.lab.views import Chunk
from jambonz_lab.records import Row
from tests.fakejambonz import FakeJambonz, wait_until
from tests.lab.apps import heard_app, recorded_rows
from tests.lab.test_cli import ROOT, free_port, serve, stop


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)


def test_a_spilling_log_gives_the_views_of_the_whole_log(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    lab = jl.start(grace=0.3, log_path=path, memory_rows=25, spill_dir=tmp_path)
    try:
        heard_app(lab)
        sids = []
        for n in range(12):
            sids.append(lab.call("/", sim.Caller.saying(f"word {n}")).call_sid)
            if n % 4 == 0:
                assert len(lab.calls) == n + 1  # built part by part, between calls
        wait_until(lambda: len(lab.log) == len(path.read_text().splitlines()))
        lab.log.catch_up()
        assert lab.log.spilled_rows > 0 and len(lab.log._rows) <= 25 + 5_000
        whole = jl.read_log(path)  # the same rows, built at once, in memory
        calls = lab.calls
        assert calls["call_sid"].tolist() == sids
        assert calls["final_status"].tolist() == ["completed"] * 12
        _same(calls, whole.calls)
        _same(lab.hooks, whole.hooks)
        _same(lab.statuses, whole.statuses)
        _same(lab.events, whole.events)
        assert repr(lab.log) == repr(whole)  # the spilled parts count too: rows, 12 calls, the span
        assert repr(whole).startswith(f"<EventLog {len(whole):,} rows, 12 call(s), ")
        assert lab.events["payload"].dropna().map(lambda v: type(v) is str).all()
        first = lab.session(sids[0]) if sids[0] in {s.call_sid for s in lab.sessions} else None
        spilled_rows = lab.log.rows(sids[0])
        assert spilled_rows == whole.rows(sids[0])
        assert [r["type"] for r in spilled_rows][0] == "session:new"
        assert lab.log.events_of(sids[0])["transcript"].dropna().tolist() == ["word 0"]
        if first is not None:
            assert len(first.events) == len(spilled_rows)
        spill_dirs = list(tmp_path.glob("jambonz-lab-log-*"))
        assert len(spill_dirs) == 1 and any(spill_dirs[0].iterdir())
    finally:
        lab.stop()


def test_views_built_in_pieces_equal_one_build() -> None:
    rows = [r for r in recorded_rows(6)]
    pieces = EventLog(memory_rows=7)
    for n, row in enumerate(rows):
        pieces.record(row)
        if n % 5 == 0:
            pieces.catch_up()
    once = EventLog()
    for row in rows:
        once.record(row)
    for view in ("events", "calls", "hooks", "statuses"):
        _same(getattr(pieces, view), getattr(once, view))
    assert pieces.spilled_rows > 0


def test_a_new_session_for_an_ended_call_sid_is_a_new_call_across_chunks() -> None:
    log = EventLog(memory_rows=2)
    for n in (1, 2):
        new = json.dumps({"type": "session:new", "data": {"from": f"+{n}", "call_sid": "same"}})
        end = json.dumps({"type": "call:status", "data": {"call_status": "completed", "duration": n}})
        log.record((float(n), "same", "in", "session:new", f"m{n}", None, 0, new, None, "/", "jambonz"))
        log.catch_up()
        log.record((n + 0.5, "same", "in", "call:status", f"s{n}", None, 0, end, None, "/", "jambonz"))
        log.catch_up()
    calls = log.calls
    assert calls["from"].tolist() == ["+1", "+2"]
    assert calls["duration_s"].tolist() == [1.0, 2.0]


def test_big_payloads_are_logged_truncated_with_their_size() -> None:
    lab = jl.start(grace=0.2, max_logged_frame=4096)
    lab.service("/")
    try:
        with FakeJambonz(lab.url + "/", "big") as fj:
            fj.session_new()
            fj.recv()
            fj.hook("/x", reason="speechDetected", blob="y" * 100_000)
            wait_until(lambda: any(r["type"] == "verb:hook" for r in lab.log.rows("big")))
        (row,) = [r for r in lab.log.rows("big") if r["type"] == "verb:hook"]
        assert row["payload"]["truncated"] is True and row["payload"]["size"] > 100_000
        assert len(row["payload"]["head"]) == 1024 and "stored truncated" in row["note"]
        hooks = lab.hooks  # the row keeps its columns
        assert hooks["type"].tolist() == ["session:new", "verb:hook"] and hooks["hook"].iloc[1] == "/x"
    finally:
        lab.stop()


def test_read_log_skips_a_torn_last_line_and_refuses_a_bad_middle_one(tmp_path: Path) -> None:
    path = tmp_path / "torn.jsonl"
    good = json.dumps({"ts": 1.0, "call_sid": "c", "direction": "lab", "type": "close", "payload": None})
    path.write_text(good + "\n" + good + "\n" + good[:20])
    with pytest.warns(RuntimeWarning, match="torn last line"):
        assert len(jl.read_log(path)) == 2
    path.write_text(good + "\n" + good[:20] + "\n" + good + "\n")
    with pytest.raises(ValueError, match=":2: not a JSON line"):
        jl.read_log(path)


def test_start_cuts_a_torn_tail_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    good = json.dumps({"ts": 1.0, "call_sid": "c", "direction": "lab", "type": "close", "payload": None})
    path.write_text(good + "\n" + '{"ts": 2.0, "call_s')  # killed mid-line
    lab = jl.start(grace=0.2, log_path=path)
    heard_app(lab)
    try:
        lab.call("/", sim.Caller.saying("hi"))
    finally:
        lab.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = jl.read_log(path)  # no torn line left anywhere
    assert again.rows()[0]["type"] == "close" and again.calls["call_sid"].iloc[0] == "c"
    assert len(again.calls) == 2


def test_serve_log_writes_the_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "serve.jsonl"
    port = free_port()
    proc = serve("hello.py", port, "--log", str(path), "--memory-rows", "1000", "--keep-sessions", "10")
    try:
        with FakeJambonz(f"ws://127.0.0.1:{port}/hello", "logged") as fj:
            fj.session_new()
            fj.recv()
    finally:
        code, _ = stop(proc)
    assert code == 0
    assert jl.read_log(path).calls["call_sid"].tolist() == ["logged"]


def test_serve_refuses_bad_memory_rows() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jambonz_lab.lab.cli", "serve", str(ROOT / "examples" / "hello.py")]
        + ["--port", "0", "--memory-rows", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "memory_rows must be at least 1" in out.stderr


def _status_row(n: int) -> tuple[object, ...]:
    payload = json.dumps({"type": "call:status", "data": {"call_status": "ringing", "call_sid": f"c{n}"}})
    return (float(n), f"c{n}", "in", "call:status", None, None, 0, payload, None, "/", "jambonz")


def test_whole_chunks_leave_a_short_tail_for_later(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the keeper builds under load: only whole chunks (a small one costs more per row)."""
    monkeypatch.setattr("jambonz_lab.lab.events.CHUNK_ROWS", 4)
    log = EventLog()
    for n in range(10):
        log.record(_status_row(n))
    assert log.catch_up(whole_chunks=True) == 8
    assert log.catch_up(whole_chunks=True) == 0
    assert log.catch_up() == 2
    assert len(log.statuses) == 10


def test_the_keeper_builds_the_tail_once_the_log_is_quiet() -> None:
    log = EventLog()
    for n in range(3):
        log.record(_status_row(n))
    log.start_keeper(interval=0.05)
    try:
        wait_until(lambda: log._built == 3, timeout=5)  # nobody else builds here
    finally:
        log.stop_keeper()


def _call_rows(sid: str, t: float, *statuses: str) -> list[tuple[object, ...]]:
    new = json.dumps({"type": "session:new", "data": {"from": f"+{t:.0f}", "call_sid": sid}})
    out: list[tuple[object, ...]] = [
        (t, sid, "in", "session:new", f"{sid}-{t}", None, 0, new, None, "/", "jambonz")
    ]
    for k, status in enumerate(statuses, 1):
        data = {"call_status": status, "duration": 7} if status == "completed" else {"call_status": status}
        payload = json.dumps({"type": "call:status", "data": data})
        out.append((t + k / 10, sid, "in", "call:status", None, None, 0, payload, None, "/", "jambonz"))
    return out


def test_calls_folded_block_by_block_equal_one_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-call aggregate kept in blocks of 2 calls: a late row of an early call updates its
    row in an old block, a new session of an ended sid is a new call at the end, order stays."""
    monkeypatch.setattr("jambonz_lab.lab.views._BLOCK_CALLS", 2)
    rows = _call_rows("same", 1, "in-progress", "completed")
    for n in range(2, 8):
        rows += _call_rows(f"c{n}", n, "in-progress")
    rows += _call_rows("c2", 2.5, "completed")[1:]  # c2 ends late (its block is long full)
    rows += _call_rows("same", 9, "in-progress")  # the sid again: a new call
    rows += _call_rows("c3", 9.5, "failed")[1:]
    pieces = EventLog()
    for n, row in enumerate(rows):
        pieces.record(row)
        if n % 3 == 0:
            pieces.catch_up()
    assert len(pieces._views._blocks) > 2
    once = EventLog()
    for row in rows:
        once.record(row)
    calls = pieces.calls
    assert calls["call_sid"].tolist() == ["same", "c2", "c3", "c4", "c5", "c6", "c7", "same"]
    assert calls["final_status"].tolist()[:3] == ["completed", "completed", "failed"]
    assert calls["duration_s"].tolist()[:2] == [7.0, 7.0]
    _same(calls, once.calls)


def test_builds_lower_the_switch_interval_and_put_it_back() -> None:
    """While a view is built or read, a thread waiting for the GIL gets it within 0.5 ms."""
    before = sys.getswitchinterval()
    seen: list[float] = []
    log = EventLog()
    log.record(_status_row(0))
    original = log._views.add

    def spy(frame: pd.DataFrame) -> Chunk:
        seen.append(sys.getswitchinterval())
        return original(frame)

    log._views.add = spy  # type: ignore[method-assign]
    with brisk():
        with brisk():
            assert sys.getswitchinterval() == BUILD_SWITCH_INTERVAL
        assert sys.getswitchinterval() == BUILD_SWITCH_INTERVAL  # the outer one still runs
        assert len(log.statuses) == 1
    assert seen == [BUILD_SWITCH_INTERVAL] and sys.getswitchinterval() == before
    try:
        with brisk():
            sys.setswitchinterval(0.002)  # someone else's setting wins over ours
        assert sys.getswitchinterval() == 0.002
    finally:
        sys.setswitchinterval(before)


def test_kept_rows_leave_the_garbage_collectors_lists() -> None:
    """A full collection walked every kept row (a Row is a tuple subclass, which CPython never
    untracks): the log keeps plain tuples, untracked at their first collection, and hands Rows out."""
    import gc

    log = EventLog()
    row = Row(1.0, "sid-1", "in", "verb:hook", "m1", "/h", 0, '{"type":"verb:hook"}', None, "/", "jambonz")
    log.record(row)
    log.extend([row, row])
    gc.collect()
    assert not any(gc.is_tracked(r) for r in log._rows)
    assert gc.is_tracked(row)  # the same fields as a Row: tracked for good
    assert log.select() == [row, row, row] and all(type(r) is Row for r in log.select())
    assert log.select("sid-1")[0].call_sid == "sid-1" and log.select("other") == []
