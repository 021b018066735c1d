"""The event log's views (events, calls, hooks, statuses) and its persistence."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.lab.views import _hooks_of, _keyed, hooks_table


def echo(lab: jl.Lab) -> None:
    @lab.service("/").on("session:new")
    def new(session: jl.Session) -> None:
        @session.on("/g")
        def heard(msg: jl.Message) -> None:
            session.say(text=f"heard {msg.transcript or msg.digits}").hangup().reply()

        session.gather(input=["speech", "digits"], actionHook="/g", finishOnKey="#").send()


def test_views_after_simulated_calls(lab: jl.Lab) -> None:
    echo(lab)
    lab.call("/", sim.Caller.saying("a blue car"))
    lab.call("/", sim.Caller(inputs=[sim.Digits("42#")]))
    ev = lab.events
    spoken = ev[(ev["type"] == "verb:hook")].iloc[0]
    assert (spoken["reason"], spoken["transcript"], spoken["confidence"]) == (
        "speechDetected",
        "a blue car",
        0.92,
    )
    assert ev[(ev["type"] == "verb:hook")].iloc[1]["digits"] == "42"
    acks = ev[(ev["direction"] == "out") & (ev["type"] == "ack")]
    assert acks["ack_ms"].notna().all() and (acks["ack_ms"] >= 0).all()

    calls = lab.calls
    assert len(calls) == 2
    assert calls["final_status"].tolist() == ["completed", "completed"]
    assert calls["hooks"].tolist() == [1, 1] and calls["errors"].tolist() == [0, 0]
    assert calls["from"].tolist() == ["+14155550100", "+14155550100"]
    assert calls["duration_s"].notna().all()

    hooks = lab.hooks
    assert hooks["type"].tolist() == ["session:new", "verb:hook", "session:new", "verb:hook"]
    assert hooks["auto"].tolist() == [False, False, False, False]
    assert hooks["hook"].tolist()[1] == "/g"
    assert hooks["ack_ms"].notna().all() and (hooks["ack_ms"] >= 0).all()

    statuses = lab.statuses
    assert statuses["call_status"].tolist() == ["trying", "in-progress", "completed"] * 2
    # SIP codes as whole numbers (200, not 200.0), in lab.events too
    assert statuses["sip_status"].dtype == "Int64" and statuses["sip_status"].tolist() == [100, 200, 200] * 2
    assert ev["sip_status"].dtype == "Int64"


def test_whole_numbers_are_sip_codes_and_the_rest_is_na() -> None:
    from jambonz_lab.lab.views import whole_numbers

    got = whole_numbers(pd.Series([486, "200", 180.0, 1.5, "busy", None], dtype=object))
    assert got.dtype == "Int64" and got.tolist() == [486, 200, 180, pd.NA, pd.NA, pd.NA]


def test_session_events_are_that_calls_rows(lab: jl.Lab) -> None:
    echo(lab)
    result = lab.call("/", sim.Caller.saying("x"))
    df = lab.session(result.call_sid).events
    assert set(df["call_sid"]) == {result.call_sid}
    assert df["type"].iloc[0] == "session:new"
    assert "transcript" in df.columns and df["transcript"].dropna().tolist() == ["x"]


def test_log_path_persists_and_read_log_restores_the_views(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    lab = jl.start(log_path=path)
    try:
        echo(lab)
        lab.call("/", sim.Caller.saying("persist me"))
    finally:
        lab.stop()
    restored = jl.read_log(path)
    assert restored.calls["final_status"].tolist() == ["completed"]
    assert "persist me" in restored.events["transcript"].dropna().tolist()
    assert len(restored.events) == len(path.read_text().splitlines())
    shown = repr(restored)  # what it holds and how to get the tables (before: <EventLog object at 0x…>)
    assert shown.startswith(f"<EventLog {len(restored)} rows, 1 call(s), ") and " UTC (" in shown
    assert ".events .calls .hooks .statuses" in shown
    assert repr(jl.lab.events.EventLog()).startswith("<EventLog empty; tables: .events")


def test_subscribers_see_rows_on_the_loop_thread(lab: jl.Lab) -> None:
    import threading

    seen: list[tuple[str, str]] = []
    unsubscribe = lab.subscribe(lambda row: seen.append((threading.current_thread().name, row[3])))
    echo(lab)
    lab.call("/", sim.Caller.saying("x"))
    unsubscribe()
    n = len(seen)
    lab.call("/", sim.Caller.saying("y"))
    assert seen[0] == ("jambonz-lab-loop", "session:new") and len(seen) == n


def _hook_inputs(acked: list[str | None]) -> tuple[pd.DataFrame, pd.DataFrame]:
    ts = pd.to_datetime([1.0, 2.0, 3.0, 4.0], unit="s", utc=True)
    ins = pd.DataFrame(
        {
            "call_sid": ["a", "a", "b", "b"],
            "type": ["session:new", "verb:hook", "session:new", "verb:hook"],
            "hook": [None, "/g", None, "/g"],
            "msgid": ["m1", "m2", "m3", None],
            "ts": ts,
            "reason": [None, "speechDetected", None, None],
        }
    ).astype({c: object for c in ("call_sid", "type", "hook", "msgid", "reason")})
    acks = pd.DataFrame(
        {
            "call_sid": ["b" if m in ("m3", None) else "a" for m in acked],
            "msgid": acked,
            "ts": pd.to_datetime([5.0 + n for n in range(len(acked))], unit="s", utc=True),
            "note": ["auto" if m == "m2" else None for m in acked],
            "verbs": [2] * len(acked),
            "ack_ms": [10.0 * (n + 1) for n in range(len(acked))],
        }
    ).astype({c: object for c in ("call_sid", "msgid", "note")})
    return ins, acks


def test_hooks_joined_by_hashed_keys_equal_the_merge_on_the_text_keys() -> None:
    """One ack per message (m1 unacked, a hook without msgid acked as such) takes the int64 path,
    a repeated ack falls back to the merge; both give what the merge on (call_sid, msgid) gives."""
    cases: list[list[str | None]] = [["m3", None, "m2"], ["m2", "m3", "m2"]]
    for acked in cases:
        ins, acks = _hook_inputs(acked)
        merged = ins.merge(acks, on=["call_sid", "msgid"], how="left", suffixes=("", "_ack"))
        got = hooks_table(ins, acks)
        pd.testing.assert_frame_equal(got, _hooks_of(merged))
        assert got["received"].tolist() == merged["ts"].tolist()
    got = hooks_table(*_hook_inputs(["m3", None, "m2"]))
    assert got["ack_ms"].tolist()[1:] == [30.0, 10.0, 20.0] and pd.isna(got["ack_ms"].iloc[0])
    assert got["auto"].tolist() == [False, True, False, False]
    assert len(hooks_table(*_hook_inputs(["m2", "m3", "m2"]))) == 5  # m2 twice: two rows


def test_a_hash_collision_falls_back_to_the_text_keys() -> None:
    ins, acks = _hook_inputs(["m2"])
    ins, acks = _keyed(ins), _keyed(acks)
    acks["_key"] = ins["_key"].iloc[0]  # m2's ack claims m1's key
    got = hooks_table(ins, acks)
    assert got["ack_ms"].notna().tolist() == [False, True, False, False]
