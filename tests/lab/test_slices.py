"""Frames joined, spilled and read back in bounded steps (``lab/slices.py``) give the same views as
whole-frame pandas calls, and a frame handed to a reader is freed once the reader drops it.

Lab behaviour only; jambonz's part is the frames (lib/utils/ws-requestor.js sends each message as one
text frame, and waits for the ack of a ``session:new`` or a ``verb:hook`` by its msgid: a row each).
"""

from __future__ import annotations

import gc
import io
import json
import weakref

import numpy as np
import pandas as pd
import pytest

from jambonz_lab.lab import slices
from jambonz_lab.lab.events import EventLog
from jambonz_lab.records import Row
from tests.fakejambonz import wait_until
from tests.lab.apps import recorded_rows


@pytest.fixture
def tiny_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps of 3 rows and spilled slices of 2, so every join and every file has many pieces."""
    monkeypatch.setattr(slices, "STEP", 3)
    monkeypatch.setattr(slices, "SLICE_ROWS", 2)


def _frames() -> list[pd.DataFrame]:
    """Frames alike in columns, with text (and None), numbers, UTC datetimes, Arrow-less text and a
    column that is int64 in one frame and float64 in the other (upcast as pandas does)."""
    ts = pd.to_datetime([1.7e9, 1.7e9 + 1, 1.7e9 + 2, 1.7e9 + 3, 1.7e9 + 4], unit="s", utc=True)
    first = pd.DataFrame(
        {
            "text": pd.Series(["a", None, "c", "d", "e"], dtype=object),
            "n": np.arange(5, dtype="int64"),
            "x": np.linspace(0, 1, 5),
            "ts": ts,
            "flag": [True, False, True, True, False],
        }
    )
    second = pd.DataFrame(
        {
            "text": pd.Series(["f", "g", None, "i"], dtype=object),
            "n": [1.5, float("nan"), 3.0, 4.0],
            "x": np.linspace(1, 2, 4),
            "ts": ts[:4],
            "flag": [False, True, False, True],
        }
    )
    return [first, second.iloc[:0], second, first.iloc[2:4]]


@pytest.mark.usefixtures("tiny_steps")
def test_concat_in_steps_is_pandas_concat_dtypes_and_all() -> None:
    frames = _frames()
    joined = slices.concat(frames)
    pd.testing.assert_frame_equal(joined, pd.concat(frames, ignore_index=True))
    assert joined["text"].tolist()[:6] == ["a", None, "c", "d", "e", "f"]
    joined.loc[0, "text"] = "changed"  # a copy: the frames it came from are untouched
    assert frames[0]["text"].iloc[0] == "a"


@pytest.mark.usefixtures("tiny_steps")
def test_a_frame_dumped_in_slices_reads_back_the_same() -> None:
    frame = pd.concat(_frames(), ignore_index=True)
    for data in (frame, frame.iloc[:0], frame.iloc[:1]):
        buffer = io.BytesIO()
        slices.dump(data, buffer)
        slices.dump(data.iloc[::-1], buffer)  # two frames one after the other in one file
        buffer.seek(0)
        pd.testing.assert_frame_equal(slices.load(buffer), data.reset_index(drop=True))
        pd.testing.assert_frame_equal(slices.load(buffer), data.iloc[::-1].reset_index(drop=True))


@pytest.mark.usefixtures("tiny_steps")
def test_by_steps_applies_a_row_wise_step_to_slices() -> None:
    series = pd.Series(["a", None, "b", float("nan"), "c", None, "d"], dtype=object, name="s")
    out = slices.by_steps(series, lambda s: s.where(s.notna(), None))
    assert out.tolist() == ["a", None, "b", None, "c", None, "d"] and out.name == "s"


class _Text(str):
    """A str a weak reference can watch."""


def test_a_handed_out_frame_is_freed_once_its_reader_drops_it() -> None:
    values = [_Text(f"v{n}") for n in range(20_000)]
    watch = weakref.ref(values[0])
    halves = [pd.DataFrame({"t": pd.Series(values[a : a + 10_000], dtype=object)}) for a in (0, 10_000)]
    del values
    frame = slices.concat(halves, hand_out=True)
    del halves
    column = frame["t"]
    del frame
    slices.sweep()  # (the sweeper thread may sweep too: either keeps what a column still reads)
    assert watch() is not None and column.iloc[0] == "v0"
    del column
    wait_until(lambda: slices.sweep() >= 0 and watch() is None)  # sweeps until freed
    again = [_Text(f"w{n}") for n in range(10_000)]
    watch = weakref.ref(again[0])
    frame = slices.concat([pd.DataFrame({"t": pd.Series(again, dtype=object)})], hand_out=True)
    del again
    del frame  # nothing else holds it: freed soon after, a step at a time, by the sweeper thread
    wait_until(lambda: watch() is None)


def _unacked_hook(sid: str, ts: float) -> Row:
    """A verb:hook that never got its ack (the app died): a hooks row without ``acked``."""
    payload = json.dumps({"type": "verb:hook", "msgid": f"{sid}-late", "data": {"reason": "timeout"}})
    return Row(ts, sid, "in", "verb:hook", f"{sid}-late", "/g", 0, payload, None, "/", "jambonz")


def _built_in_pieces(rows: list[Row]) -> EventLog:
    log = EventLog(memory_rows=7)
    for n, row in enumerate(rows):
        log.record(row)
        if n % 4 == 0:
            log.catch_up()
    assert log.spilled_rows > 0
    return log


def test_a_spilled_log_read_in_tiny_steps_gives_the_same_views(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same log built in the same chunks, read in whole steps and in steps of 3 rows (spilled
    in slices of 2): the same frames, dtypes and all; and the views of one build (dtypes aside: a
    chunk whose calls have no ``from`` keeps it as objects, as before)."""
    views = ("events", "calls", "hooks", "statuses")
    rows = recorded_rows(5)
    rows.append(_unacked_hook(rows[0].call_sid or "", rows[-1].ts + 1))
    whole = _built_in_pieces(rows)
    expected = {view: getattr(whole, view) for view in views}
    once = EventLog()
    once.extend(rows)
    monkeypatch.setattr(slices, "STEP", 3)
    monkeypatch.setattr(slices, "SLICE_ROWS", 2)
    pieces = _built_in_pieces(rows)
    for view in views:
        frame = getattr(pieces, view)
        pd.testing.assert_frame_equal(frame, expected[view])
        pd.testing.assert_frame_equal(frame, getattr(once, view), check_dtype=False)
    hooks = pieces.hooks
    assert hooks["acked"].isna().sum() == 1 and hooks["reason"].iloc[-1] == "timeout"


def test_a_kept_builder_backs_off_but_never_on_an_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """``pause`` sleeps ``BACK_OFF`` when its thread was kept waiting (here: always, the bound set
    below zero), and never sleeps on a thread that runs an asyncio loop (the lab's loop)."""
    import asyncio
    import threading
    import time

    slept: list[float] = []
    me, real_sleep = threading.get_ident(), time.sleep

    def sleep(seconds: float) -> None:  # this thread's sleeps counted; other threads (a lab's
        if threading.get_ident() == me:  # keeper, the sweeper) still really sleep
            slept.append(seconds)
        else:
            real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    monkeypatch.setattr(slices, "CONTENDED", -1.0)
    slices.pause(10 * slices.STEP)
    assert slept == [slices.BACK_OFF]

    async def on_the_loop() -> None:
        slices.pause(10 * slices.STEP)

    asyncio.run(on_the_loop())
    assert slept == [slices.BACK_OFF]


def _weak_refs() -> int:
    gc.collect()
    return sum(type(o) is weakref.ref for o in gc.get_objects())


def _record_in_chunks(log: EventLog, rows: list[Row]) -> None:
    """Record ``rows``, building them every 10 rows: several in-memory chunks."""
    for n, row in enumerate(rows):
        log.record(row)
        if n % 10 == 0:
            log.catch_up()
    log.catch_up()


def test_columns_are_taken_once_per_frame_while_it_lives() -> None:
    data = _frames()[0]
    taken = slices.columns_of(data)
    assert slices.columns_of(data) is taken
    assert [list(a) for a in taken] == [data[c].tolist() for c in data.columns]
    key = id(data)
    del data, taken
    gc.collect()
    assert key not in slices._taken


def test_reading_views_again_and_again_leaves_no_weak_references_behind() -> None:
    """pandas keeps a weak reference to each view of a frame's index and blocks (each column
    taken), dead ones too, until hundreds pile up; every garbage collection walks them. The log's
    chunks are built once and read at every view read: neither may leave them behind."""
    log = EventLog(memory_rows=10_000)
    _record_in_chunks(log, recorded_rows(6))
    assert len(log._parts) > 3
    for _ in range(2):
        _ = log.calls, log.hooks, log.statuses, log.events
    before = _weak_refs()
    for _ in range(30):
        _ = log.calls, log.hooks, log.statuses, log.events
    del _
    assert _weak_refs() - before < 20


def test_a_built_chunk_keeps_few_weak_references() -> None:
    """Building a chunk takes each column many times; the chunk kept must not carry the dead
    references pandas keeps for those views (about 575 a chunk before, 135 after)."""
    rows = recorded_rows(6)
    warm = EventLog()
    for row in rows:
        warm.record(row)
    warm.catch_up()  # imports and first-build caches outside the count
    log = EventLog(memory_rows=10_000)
    before = _weak_refs()
    _record_in_chunks(log, rows * 3)
    assert (_weak_refs() - before) / len(log._parts) < 250
