"""``lab.turns``, ``lab.transcript()`` and the per-call and per-group summaries, on real calls.

Apps are lab services on loopback, called by the simulator on its virtual clock, so the turns'
times are call times; the latencies come from deliberate sleeps in handlers (lower bounds only).
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.lab.turns import TURN_COLUMNS, Transcript
from tests.fakejambonz import FakeJambonz, call_data, wait_until


def menu_app(lab: jl.Lab, path: str = "/menu", delay: float = 0.0, notify: bool = False) -> None:
    """Greets, gathers speech or one digit, answers what it got, twice, then hangs up on silence."""

    @lab.service(path).on("session:new")
    def new(session: jl.Session) -> None:
        @session.on("/heard")
        def heard(msg: jl.Message) -> None:
            if msg.data.get("reason") == "timeout":
                session.say(text="Goodbye").hangup().reply()
                return
            time.sleep(delay)
            what = msg.transcript or f"key {msg.data.get('digits')}"
            prompt = {"text": f"You chose {what}. Anything else?"}
            session.gather(
                input=["speech", "digits"], numDigits=1, actionHook="/heard", bargein=True, say=prompt
            )
            session.reply()

        if notify:
            session.config(notifyEvents=True)
        prompt = {"text": "Say sales, or press a key"}
        session.gather(input=["speech", "digits"], numDigits=1, actionHook="/heard", say=prompt).send()


def test_each_caller_input_is_a_turn_with_what_the_app_said_next(lab: jl.Lab) -> None:
    menu_app(lab, delay=0.2)
    result = lab.call("/menu", sim.Caller(inputs=[sim.Speech("sales"), sim.Digits("2")]))
    turns = lab.turns
    assert list(turns.columns) == list(TURN_COLUMNS)
    mine = turns[turns["call_sid"] == result.call_sid]
    assert list(mine["turn"]) == [1, 2, 3]
    assert list(mine["input"]) == ["speech", "digits", "timeout"]
    assert mine["transcript"].iloc[0] == "sales" and mine["digits"].iloc[1] == "2"
    assert list(mine["reply_text"]) == [
        "You chose sales. Anything else?",
        "You chose key 2. Anything else?",
        "Goodbye",
    ]
    assert set(mine["reply_verb"]) == {"say"} and set(mine["hook"]) == {"/heard"}
    # the handler slept 0.2 s before answering the first two turns: their latency includes it
    assert (mine["response_ms"].iloc[:2] >= 200).all()
    assert (mine["first_audio_ms"].iloc[:2] >= mine["response_ms"].iloc[:2] - 1).all()
    assert mine["input_at"].is_monotonic_increasing
    assert mine["gap_s"].iloc[:2].notna().all() and pd.isna(mine["gap_s"].iloc[2])
    assert mine["barge_in"].isna().all()  # no verb:status events: nothing to tell


def test_input_times_are_the_calls_own_clock_for_simulated_calls(lab: jl.Lab) -> None:
    """On the virtual clock a 10 s gather timeout takes no real time; the turn is still at ≥ 10 s."""
    menu_app(lab)
    result = lab.call("/menu", sim.Caller(inputs=[sim.Speech("sales")]))
    mine = lab.turns[lambda t: t["call_sid"] == result.call_sid]
    timeout_turn = mine[mine["input"] == "timeout"]
    assert float(timeout_turn["input_at"].iloc[0]) - float(mine["input_at"].iloc[0]) >= 5


def test_a_reply_sent_later_as_a_redirect_is_the_turns_reply(lab: jl.Lab) -> None:
    """The hook is acked empty and the app speaks with a redirect command from a cell. The call runs
    on the real clock, as a call driven from cells does: on the virtual clock its 30 s could pass
    (and the call end) before this thread, on a busy machine, starts waiting for the hook."""

    @lab.service("/late").on("session:new")
    def new(session: jl.Session) -> None:
        session.gather(input=["speech"], actionHook="/later", say={"text": "Go ahead"}).send()

    caller = sim.Caller(inputs=[sim.Speech("hello")], time_limit=30)
    sessions = lab.wait_for_session("/late")
    import threading

    done: list[Any] = []
    threading.Thread(target=lambda: done.append(lab.call("/late", caller, clock="real")), daemon=True).start()
    session = sessions.result(timeout=10)
    session.wait_for("/later").result(timeout=10)
    session.say(text="Thanks for waiting").hangup().send()
    wait_until(lambda: done, timeout=20)
    mine = lab.turns[lambda t: t["call_sid"] == session.call_sid]
    assert mine["reply_text"].iloc[0] == "Thanks for waiting"
    assert mine["first_audio_ms"].iloc[0] >= mine["response_ms"].iloc[0]


def test_barge_ins_are_seen_when_the_call_reports_verb_status(lab: jl.Lab) -> None:
    """The caller talks 0.2 s into the second prompt (a gather with bargein): speech-bargein-detected
    (gather.js ~1096) marks that turn; the first input came after its prompt ended."""
    menu_app(lab, notify=True)
    caller = sim.Caller(inputs=[sim.Speech("sales", after=3), sim.Speech("support please", after=0.2)])
    result = lab.call("/menu", caller)
    mine = lab.turns[lambda t: t["call_sid"] == result.call_sid]
    assert list(mine["barge_in"].iloc[:2]) == [False, True]


def test_llm_turns_with_tool_calls_and_their_latency(lab: jl.Lab) -> None:
    @lab.service("/agent").on("session:new")
    def new(session: jl.Session) -> None:
        def tool(msg: jl.Message) -> None:
            time.sleep(0.15)
            call_id = msg.data["tool_call_id"]
            output = {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": call_id, "output": "21C"},
            }
            session.send_tool_output(call_id, output)

        session.on("/tools", tool)
        session.openai_s2s(llmOptions={}, toolHook="/tools", eventHook="/events", actionHook="/done")
        session.hangup().send()

    caller = sim.Caller(
        inputs=[sim.Speech("weather in Paris?"), sim.Speech("thanks")],
        tool_calls=[sim.ToolCall("get_weather", {"city": "Paris"})],
    )
    result = lab.call("/agent", caller)
    mine = lab.turns[lambda t: t["call_sid"] == result.call_sid]
    assert list(mine["input"]) == ["llm", "llm"]
    assert list(mine["transcript"]) == ["weather in Paris?", "thanks"]
    assert list(mine["reply_text"]) == ["tool result: 21C", "reply to: thanks"]
    assert list(mine["tool_calls"]) == [1, 0]
    assert mine["tool_ms"].iloc[0] >= 150 and mine["response_ms"].iloc[0] >= mine["tool_ms"].iloc[0] - 1


def test_summary_compare_and_the_picture(lab: jl.Lab) -> None:
    menu_app(lab, "/fast")
    menu_app(lab, "/slow", delay=0.1)
    caller = sim.Caller(inputs=[sim.Speech("sales")])
    fast = [lab.call("/fast", caller) for _ in range(2)]
    slow = [lab.call("/slow", caller) for _ in range(2)]
    per_call = lab.turn_summary()
    assert set(per_call["call_sid"]) == {r.call_sid for r in fast + slow}
    assert (per_call["turns"] == 2).all()
    table = lab.compare_turns({"fast": fast, "slow": slow})
    assert list(table.index) == ["fast", "slow"] and list(table["calls"]) == [2, 2]
    assert table["max_ms"].loc["slow"] >= 100
    groups: dict[str, list[Any]] = {"fast": fast, "$5 plan": [r.call_sid for r in slow], "hung up": []}
    fig = lab.plot_response_times(groups)
    assert isinstance(fig, Figure) and fig.axes[0].get_ylabel() == "response time (ms)"
    # notebook 06's "hangs up" group drew an empty slot, unexplained: each name says what it holds
    ticks = fig.axes[0].get_xticklabels()
    assert [t.get_text() for t in ticks] == ["fast\n4 turns", "$5 plan\n4 turns", "hung up\n(no turns)"]
    assert not any(t.get_parse_math() for t in ticks)  # a name is text, never mathtext


def test_transcript_is_both_sides_in_order_and_escapes_caller_text(lab: jl.Lab) -> None:
    menu_app(lab)
    result = lab.call("/menu", sim.Caller(inputs=[sim.Speech("<b>sales</b>")]))
    text = lab.transcript(result.call_sid)
    assert isinstance(text, Transcript)
    lines = list(zip(text.frame["speaker"], text.frame["text"], strict=True))
    assert lines[:3] == [
        ("app", "Say sales, or press a key"),
        ("caller", "<b>sales</b>"),
        ("app", "You chose <b>sales</b>. Anything else?"),
    ]
    assert text.frame["t"].is_monotonic_increasing
    page = text._repr_html_()
    assert "&lt;b&gt;sales&lt;/b&gt;" in page and "<b>sales</b>" not in page
    assert "caller" in repr(text)


def test_a_real_jambonz_call_is_on_wall_time(lab: jl.Lab) -> None:
    """No simulator in the process: turns are measured on wall time from the call's first row."""

    @lab.service("/wall").on("session:new")
    def new(session: jl.Session) -> None:
        session.on("/g", lambda msg: session.say(text="ok").reply())
        session.gather(input=["speech"], actionHook="/g").send()

    with FakeJambonz(lab.url + "/wall", call_sid="wall-1") as fj:
        fj.send("session:new", call_data("wall-1"))
        fj.recv()
        time.sleep(0.3)
        speech = {"alternatives": [{"transcript": "yes", "confidence": 0.9}], "is_final": True}
        fj.hook("/g", reason="speechDetected", speech=speech)
        fj.recv()
    turn = lab.turns.set_index("call_sid").loc["wall-1"]
    assert turn["transcript"] == "yes" and turn["reply_text"] == "ok"
    assert turn["input_at"] >= 0.3


def test_no_calls_no_turns(lab: jl.Lab) -> None:
    assert list(lab.turns.columns) == list(TURN_COLUMNS) and len(lab.turns) == 0


def test_a_session_has_its_own_turns_and_transcript(lab: jl.Lab) -> None:
    menu_app(lab)
    result = lab.call("/menu", sim.Caller(inputs=[sim.Speech("sales")]))
    session = lab.session(result.call_sid)
    turns = lab.turns
    mine = turns[turns["call_sid"] == result.call_sid].reset_index(drop=True)
    pd.testing.assert_frame_equal(session.turns, mine)
    assert list(session.transcript().frame["text"]) == list(lab.transcript(result.call_sid).frame["text"])
