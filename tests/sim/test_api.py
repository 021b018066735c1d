"""The simulator's API: call/acall/load, lab.call, caller scripts, clocks, results."""

from __future__ import annotations

import asyncio
import time

import pytest

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.sim.api import LoadResults
from jambonz_lab.sim.result import CallResult
from jambonz_lab.sim.shards import ShardFailure


def echo_app(lab: jl.Lab, path: str = "/echo") -> None:
    @lab.service(path).on("session:new")
    def new(session: jl.Session) -> None:
        @session.on("/echo")
        def echo(msg: jl.Message) -> None:
            if msg.reason == "speechDetected" and msg.transcript == "bye":
                session.say(text="bye").hangup().reply()
            else:
                said = msg.transcript or msg.digits or "nothing"
                session.say(text=f"heard {said}").gather(
                    input=["speech", "digits"], finishOnKey="#", actionHook="/echo"
                ).reply()

        # finishOnKey: without it (or numDigits) keys end as a timeout (gather.js ~749)
        session.gather(
            input=["speech", "digits"], finishOnKey="#", actionHook="/echo", say={"text": "hi"}
        ).send()


def test_call_plays_a_scripted_caller_against_the_lab(lab: jl.Lab) -> None:
    echo_app(lab)
    caller = sim.Caller(inputs=[sim.Speech("one two"), sim.Digits("12#"), sim.Speech("bye")])
    result = sim.call(lab.url + "/echo", caller)
    assert result.said == ["hi", "heard one two", "heard 12", "bye"]
    assert result.statuses() == ["trying", "in-progress", "completed"]
    assert (result.final_status, result.sip_status, result.termination_by) == ("completed", 200, "jambonz")
    assert result.ok and not result.errors


def test_virtual_clock_runs_a_long_call_in_little_real_time(lab: jl.Lab) -> None:
    """A caller who stays silent through gathers for 120 s: milliseconds of real time."""
    echo_app(lab)
    t0 = time.monotonic()
    result = lab.call("/echo", sim.Caller(hangup_after=120))
    assert time.monotonic() - t0 < 3
    assert result.trace[-1].t == pytest.approx(120, abs=0.5)
    assert result.termination_by == "caller" and result.final_status == "completed"


def test_real_clock_takes_real_time(lab: jl.Lab) -> None:
    echo_app(lab)
    t0 = time.monotonic()
    result = lab.call("/echo", sim.Caller(hangup_after=0.6), clock="real")
    assert time.monotonic() - t0 >= 0.55  # the caller really waited
    assert result.termination_by == "caller"


def test_acall_is_awaitable_from_another_loop(lab: jl.Lab) -> None:
    echo_app(lab)

    async def main() -> sim.CallResult:
        return await sim.acall(lab.url + "/echo", sim.Caller.saying("bye"))

    assert asyncio.run(main()).said == ["hi", "bye"]


def test_same_seed_same_behaviour_new_call(lab: jl.Lab) -> None:
    """A seed fixes what the caller does, never the call's identity (issue 12 item 4)."""
    echo_app(lab)
    a = sim.call(lab.url + "/echo", sim.Caller.saying("bye"), options=sim.SimOptions(seed=7))
    b = sim.call(lab.url + "/echo", sim.Caller.saying("bye"), options=sim.SimOptions(seed=7))
    c = lab.call("/echo", sim.Caller.saying("bye"))
    d = lab.call("/echo", sim.Caller.saying("bye"))
    assert a.call_sid != b.call_sid and c.call_sid != d.call_sid
    assert [e.type for e in a.trace] == [e.type for e in b.trace] and a.heard == b.heard


def test_load_runs_many_calls_with_distinct_sids(lab: jl.Lab) -> None:
    echo_app(lab)
    results = sim.load(
        lab.url + "/echo", calls=20, concurrency=5, caller=sim.Caller.saying("x", "bye"), progress=False
    )
    assert len(results) == 20 and all(r.ok for r in results)
    assert len({r.call_sid for r in results}) == 20
    assert len(lab.sessions) >= 20
    assert repr(results) == "<LoadResults 20 call(s): completed 20>"  # one line, not 20


def test_result_dataframe_and_jsonl(lab: jl.Lab) -> None:
    echo_app(lab)
    result = lab.call("/echo", sim.Caller.saying("bye"))
    df = result.to_dataframe()
    assert list(df.columns) == ["t", "ts", "direction", "type", "msgid", "hook", "note", "payload"]
    assert df["type"].iloc[0] == "session:new" and df["hook"].dropna().tolist() == ["/echo"]
    assert len(result.to_jsonl().splitlines()) == len(result.trace)


def test_unreachable_app_is_a_rejected_call() -> None:
    result = sim.call("ws://127.0.0.1:9/none#rc=1", sim.Caller())
    assert (result.final_status, result.sip_status) == ("failed", 480)
    assert "cannot connect" in result.errors[0]


def test_caller_steps_from_the_cli_shape() -> None:
    caller = sim.Caller.from_steps([("speech", "hi"), ("dtmf", "1#"), ("silence", "")])
    assert caller.inputs == [sim.Speech("hi"), sim.Digits("1#"), sim.Silence()]
    with pytest.raises(ValueError, match="unknown caller step"):
        sim.Caller.from_steps([("shout", "x")])


def test_session_new_payload_is_realistic(lab: jl.Lab) -> None:
    got: list[jl.Session] = []

    @lab.service("/p").on("session:new")
    def new(s: jl.Session) -> None:
        got.append(s)
        s.hangup().send()

    lab.call(
        "/p",
        sim.Caller(name="Bob", number="+15550001"),
        env_vars={"KEY": "v"},
        sip_headers={"X-Customer-Ref": "ORD-1"},
    )
    s = got[0]
    assert (s.from_, s.caller_name, s.direction, s.env_vars) == ("+15550001", "Bob", "inbound", {"KEY": "v"})
    assert s.data["sip"]["headers"]["X-Customer-Ref"] == "ORD-1"
    assert s.data["defaults"]["synthesizer"]["vendor"] == "google"
    assert s.data["call_status"] == "trying" and s.data["sip_status"] == 100


def test_load_results_repr_counts_statuses_and_failed_shards() -> None:
    failure = ShardFailure(shard=1, calls=(2, 3), what="process died")
    results = LoadResults(
        [CallResult(call_sid="a", final_status="failed"), CallResult(call_sid="b")], [failure]
    )
    assert repr(results) == "<LoadResults 2 call(s): failed 1, no status 1; 1 shard(s) failed>"
    assert repr(LoadResults()) == "<LoadResults 0 call(s)>"
