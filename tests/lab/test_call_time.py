"""Call time on every row (issue 15 item 1): a simulated call's rows carry its own clock.

On the virtual clock a simulated call's waits (a say, a gather timeout) take no real time, so its
wall times span a few milliseconds; ``call_t`` is the call's clock (virtual time plus the app's real
processing time where the caller waits for it). The views draw simulated calls on it and real
jambonz calls (here FakeJambonz) on wall time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

import jambonz_lab as jl
from jambonz_lab import callclocks, sim
from jambonz_lab.lab.events import EventLog
from jambonz_lab.lab.timeline import draw
from jambonz_lab.records import make_row
from jambonz_lab.sim.clock import Clock
from jambonz_lab.sim.verbs.basic import speech_seconds
from tests.fakejambonz import FakeJambonz, call_data, wait_until

GREETING = "Welcome to the call time test line, please enter your account number now"


def menu(lab: jl.Lab) -> None:
    """Say the greeting, then a digits gather that times out after 10 s; the timeout hangs up."""

    @lab.service("/menu").on("session:new")
    def new(session: jl.Session) -> None:
        @session.on("/menu/done")
        def done(msg: jl.Message) -> None:
            session.say(text="Goodbye").hangup().reply()

        session.say(text=GREETING).gather(input=["digits"], timeout=10, actionHook="/menu/done").send()


def rows_of(lab: jl.Lab, sid: str) -> list[dict[str, Any]]:
    return [r for r in lab.log.rows(sid) if r["direction"] in ("in", "out")]


def test_a_simulated_calls_rows_carry_its_call_time(lab: jl.Lab) -> None:
    menu(lab)
    result = lab.call("/menu")
    rows = rows_of(lab, result.call_sid)
    times = [r["call_t"] for r in rows]
    assert all(isinstance(t, float) for t in times), rows
    assert times == sorted(times) and times[0] == 0.0  # session:new opens the call's clock
    # each frame the simulator sent has the call time of its trace entry
    sent = {e.msgid: e.t for e in result.messages("sent")}
    ins = [r for r in rows if r["direction"] == "in"]
    assert len(ins) == len(sent)
    assert all(r["call_t"] == sent[r["msgid"]] for r in ins)
    # the app's acks: the call's clock when the lab wrote them, at or after their message
    acked = {r["msgid"]: r["call_t"] for r in ins}
    acks = [r for r in rows if r["type"] == "ack"]
    assert len(acks) == 2 and all(a["call_t"] >= acked[a["msgid"]] for a in acks)


def test_a_say_and_a_gather_timeout_are_call_time_not_wall_time(lab: jl.Lab) -> None:
    menu(lab)
    result = lab.call("/menu")
    ev = lab.events
    ev = ev[ev["call_sid"] == result.call_sid]
    ack = ev[(ev["type"] == "ack")].iloc[0]  # the session:new ack: say, gather
    hook = ev[(ev["type"] == "verb:hook")].iloc[0]
    assert json.loads(hook["payload"])["data"]["reason"] == "timeout"
    waited = hook["call_t"] - ack["call_t"]
    assert waited >= speech_seconds(GREETING) + 10  # the say, then the whole gather timeout
    # the same rows are a few real milliseconds apart: the virtual clock did not wait
    assert (hook["ts"] - ack["ts"]).total_seconds() < waited
    assert ev["call_t"].dtype == "float64" and ev["call_t"].notna().all()


def test_lab_calls_are_on_the_call_clock_for_simulated_calls(lab: jl.Lab) -> None:
    menu(lab)
    result = lab.call("/menu")
    call = lab.calls.set_index("call_sid").loc[result.call_sid]
    assert call["clock"] == "call"
    rows = lab.events[lab.events["call_sid"] == result.call_sid]
    status = rows[rows["type"] == "call:status"]
    answered = status[status["call_status"] == "in-progress"]["call_t"].iloc[0]
    ended = status[status["call_status"] == "completed"]["call_t"].iloc[0]
    assert call["start"] == rows["ts"].iloc[0]  # the wall time the call came in
    # answer and end: the call's clock from its start
    assert (call["answer"] - call["start"]).total_seconds() == pytest.approx(answered, abs=1e-6)
    assert (call["end"] - call["start"]).total_seconds() == pytest.approx(ended, abs=1e-6)
    assert (call["end"] - call["answer"]).total_seconds() > speech_seconds(GREETING) + 10
    assert call["duration_s"] == result.duration and call["duration_s"] >= 13


def test_a_real_jambonz_call_stays_on_wall_time(lab: jl.Lab) -> None:
    svc = lab.service("/real")
    svc.on("session:new")(lambda session: session.say(text="hi").send())
    with FakeJambonz(lab.url + "/real", "real-call-1") as fj:
        fj.session_new()
        fj.recv()
        fj.send("call:status", call_data("real-call-1", call_status="in-progress", sip_status=200))
        fj.send("call:status", call_data("real-call-1", call_status="completed", sip_status=200))
        wait_until(lambda: len(lab.log.rows("real-call-1")) >= 4)
    assert callclocks.lookup("real-call-1") is None
    assert all(r["call_t"] is None for r in lab.log.rows("real-call-1"))
    ev = lab.events
    assert ev[ev["call_sid"] == "real-call-1"]["call_t"].isna().all()
    call = lab.calls.set_index("call_sid").loc["real-call-1"]
    assert call["clock"] == "wall"
    status = ev[(ev["call_sid"] == "real-call-1") & (ev["type"] == "call:status")]
    assert call["answer"] == status["ts"].iloc[0] and call["end"] == status["ts"].iloc[1]
    card = jl.card(lab.session("real-call-1"))
    wait_until(lambda: len(card.events) >= 4)
    assert card.clock == "wall"
    label = lab.timeline("real-call-1").axes[0].get_xlabel()
    assert label.startswith("wall time (") and "since the first event" in label  # s or ms: readable units


def test_the_card_shows_call_times(lab: jl.Lab) -> None:
    menu(lab)
    result = lab.call("/menu")
    card = jl.card(lab.session(result.call_sid))
    wait_until(lambda: len(card.events) == len(lab.log.rows(result.call_sid)))
    assert card.clock == "call"
    assert [e["t"] for e in card.events] == [round(r["call_t"], 6) for r in lab.log.rows(result.call_sid)]
    assert max(e["t"] for e in card.events) > 13  # the call's seconds, not its milliseconds
    html = card._repr_mimebundle_()[0]["text/html"]
    assert "0.00s" not in html and " s " in html


def test_the_timelines_x_axis_says_which_clock(lab: jl.Lab) -> None:
    menu(lab)
    result = lab.call("/menu")
    fig = lab.session(result.call_sid).timeline()
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("call time (s)")
    assert ax.get_xlim()[1] > 13  # the call's 13+ s are drawn, not its wall milliseconds
    arrows = [p.get_path().vertices[0][0] for p in ax.patches]
    assert max(arrows) >= speech_seconds(GREETING) + 10
    with FakeJambonz(lab.url + "/menu", "real-call-2") as fj:
        fj.session_new()
        fj.recv()
    wait_until(lambda: len(lab.log.rows("real-call-2")) >= 2)
    assert lab.timeline().axes[0].get_xlabel().startswith("call time (s) for simulated calls")


def test_call_t_survives_the_jsonl_log_and_the_spill_files(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    lab = jl.start(log_path=path)
    try:
        menu(lab)
        result = lab.call("/menu")
        live = lab.events["call_t"].tolist()
    finally:
        lab.stop()
    restored = jl.read_log(path)
    assert restored.events["call_t"].tolist() == live
    assert restored.calls["clock"].tolist() == ["call"]
    assert all("call_t" in json.loads(line) for line in path.read_text().splitlines())

    log = EventLog(memory_rows=1)
    sid = result.call_sid
    rows = [make_row("jambonz", "in", "verb:hook", call_sid=sid, call_t=float(i)) for i in range(3)]
    rows.append(make_row("jambonz", "lab", "close", call_sid="wall"))
    for row in rows:
        log.record(row)
    log.catch_up()
    assert log.spilled_rows > 0
    assert [r.call_t for r in log.select()] == [0.0, 1.0, 2.0, None]


def test_an_old_log_without_call_t_reads_as_wall_time(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    item = {"ts": 1.0, "call_sid": "c", "direction": "in", "type": "session:new", "msgid": "m", "hook": None}
    item |= {"verbs": 0, "payload": json.dumps({"data": call_data("c")}), "note": None, "path": "/"}
    path.write_text(json.dumps(item) + "\n")
    log = jl.read_log(path)
    assert log.select()[0].call_t is None and math.isnan(log.events["call_t"].iloc[0])
    assert log.calls["clock"].tolist() == ["wall"]
    assert draw(log.events).axes[0].get_xlabel().startswith("wall time")


def test_the_live_clock_counts_an_app_wait_under_way() -> None:
    clock = Clock("virtual")
    clock.advance(5.0)
    clock.waiting(True)
    during = clock.live()
    assert during >= 5.0 and clock.now() == 5.0
    clock.advance(0.25)  # the wait's end adds its real time
    clock.waiting(False)
    assert clock.live() == clock.now() == 5.25
    entry = callclocks.register("registered-sid", clock)
    entry.sent["m1"] = 1.5
    assert callclocks.call_time("registered-sid", "in", "m1") == 1.5  # the time it was sent
    assert callclocks.call_time("registered-sid", "in", "m1") == 5.25  # looked up once
    assert callclocks.call_time("registered-sid", "out", None) == 5.25
    assert callclocks.call_time("unknown-sid", "in", None) is None
    row = make_row("jambonz", "lab", "close", call_sid="registered-sid", note="n", transport="ws")
    stamped = callclocks.stamp(row)
    assert stamped == row._replace(call_t=5.25) and type(stamped) is type(row)
    assert callclocks.stamp(stamped) is stamped  # a row with a call time keeps it


def test_simulator_trace_and_rows_agree_on_a_load(lab: jl.Lab) -> None:
    menu(lab)
    results = sim.load(lab.url + "/menu", calls=4, concurrency=4, progress=False)
    for result in results:
        sent = {e.msgid: e.t for e in result.messages("sent")}
        ins = [r for r in rows_of(lab, result.call_sid) if r["direction"] == "in"]
        assert ins and all(r["call_t"] == sent[r["msgid"]] for r in ins)
    assert lab.calls["clock"].tolist() == ["call"] * 4


def test_a_webhook_apps_requests_carry_the_call_time_they_were_sent_at(lab: jl.Lab) -> None:
    """HTTP requests have no msgid on the wire (the lab's server makes one up): each row type's
    requests are matched in the order the simulator sent them. The status hook's POSTs go out in
    the background (a queue drained after the call's clock ran on), yet keep their own call time."""
    menu(lab)
    result = sim.call(lab.http_url + "/menu", status_hook=lab.http_url + "/menu/status")
    assert result.ok
    sent: dict[str, list[float]] = {}
    for e in result.messages("sent"):
        sent.setdefault(callclocks.webhook_type(e.type), []).append(e.t)
    ins = [r for r in rows_of(lab, result.call_sid) if r["direction"] == "in"]
    assert {r["transport"] for r in ins} == {"http"}
    got: dict[str, list[float]] = {}
    for r in ins:
        got.setdefault(r["type"], []).append(r["call_t"])
    assert got == sent
    trying, answered, completed = got["call:status"]
    assert trying <= answered < got["verb:hook"][0] < completed  # on the call's clock, whenever read
    assert lab.calls["clock"].tolist() == ["call"]


def test_views_of_a_frame_without_call_t_are_on_wall_time(lab: jl.Lab) -> None:
    from jambonz_lab.lab import views

    menu(lab)
    lab.call("/menu")
    older = lab.events.drop(columns=["call_t", "ack_ms"])  # a frame saved before call times
    table = views.calls(older)
    assert table["clock"].tolist() == ["wall"]
    assert table["end"].iloc[0] == older[older["call_status"] == "completed"]["ts"].iloc[0]
