"""Record a call against an app, change the app, replay: the exact divergences."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.net.server import RECORD_FIELDS
from jambonz_lab.sim.replay import Divergence

HANG_ON = ["hello", "bye"]
SAY_SOMETHING = [
    {"verb": "gather", "actionHook": "/echo", "input": ["speech"], "say": {"text": "Say something"}}
]
RECORDING = {
    "command": "record",
    "queueCommand": False,
    "data": {"action": "startCallRecording", "type": "cloud"},
}


def said(text: str) -> list[dict[str, Any]]:
    return [{"verb": "say", "text": text}, {"verb": "gather", "actionHook": "/echo", "input": ["speech"]}]


GOODBYE = [{"verb": "say", "text": "Goodbye"}, {"verb": "hangup"}]


@pytest.fixture
def lab() -> Iterator[jl.Lab]:
    """A lab whose grace outlasts any cold start: the recording never holds an automatic ack."""
    lab = jl.start(grace=3.0)
    try:
        yield lab
    finally:
        lab.stop()


def echo(lab: jl.Lab, *, words: str = "You said", record: bool = True, silent: bool = False) -> None:
    """Version 1 of the app (the keyword arguments make the changed versions)."""

    @lab.service("/echo").on("session:new")
    def new(session: jl.Session) -> None:
        @session.on("/echo")
        async def heard(msg: jl.Message) -> None:
            if silent and msg.transcript != "bye":
                await asyncio.Event().wait()  # never replies (the lab's stop cancels it)
            if msg.transcript == "bye":
                session.say(text="Goodbye").hangup().reply()
                return
            if record:
                session.inject_record("startCallRecording", type="cloud")
            session.say(text=f"{words} {msg.transcript}").gather(input=["speech"], actionHook="/echo").reply()

        session.gather(input=["speech"], actionHook="/echo", say={"text": "Say something"}).send()


def record_call(lab: jl.Lab, path: Path) -> list[dict[str, Any]]:
    """Record the call against version 1; returns the saved rows."""
    echo(lab)
    result = lab.call("/echo", sim.Caller.saying(*HANG_ON))
    assert result.said == ["Say something", "You said hello", "Goodbye"]
    assert lab.session(result.call_sid).save(path) == len(lab.session(result.call_sid).events)
    return [json.loads(line) for line in path.read_text().splitlines()]


def step_of(rows: list[dict[str, Any]], hook: str, nth: int = 0) -> tuple[int, str]:
    """(step, msgid) of the ``nth`` recorded message with ``hook`` (or type)."""
    ins = [r for r in rows if r["direction"] == "in"]
    found = [(i + 1, r["msgid"]) for i, r in enumerate(ins) if (r["hook"] or r["type"]) == hook]
    return found[nth]


def test_save_writes_the_calls_rows_in_record_order(lab: jl.Lab, tmp_path: Path) -> None:
    rows = record_call(lab, tmp_path / "v1.jsonl")
    assert all(list(row) == list(RECORD_FIELDS) for row in rows)
    assert all(isinstance(row["payload"], str) for row in rows if row["direction"] != "lab")
    assert [r["type"] for r in rows if r["direction"] == "in"] == [
        "session:new",
        "call:status",
        "call:status",
        "verb:hook",
        "verb:hook",
        "call:status",
    ]
    assert len({row["call_sid"] for row in rows}) == 1
    restored = jl.read_log(tmp_path / "v1.jsonl")
    assert restored.calls["final_status"].tolist() == ["completed"]


def test_replay_against_the_same_app_finds_nothing(lab: jl.Lab, tmp_path: Path) -> None:
    path = tmp_path / "v1.jsonl"
    rows = record_call(lab, path)
    report = sim.replay(path, lab.url + "/echo")
    assert report.ok and report.divergences == [], str(report)
    assert "ok: every reply matches" in str(report)
    assert report.to_dataframe().empty
    assert [s.sent for s in report.steps] == [True] * 6
    recorded = [r["msgid"] for r in rows if r["direction"] == "in"]
    assert [s.msgid for s in report.steps] == recorded
    assert not {s.new_msgid for s in report.steps} & set(recorded)  # fresh msgids
    # the replay was a call of its own, under a fresh call_sid, and the app saw the same things
    replayed = lab.session(report.replay_call_sid)
    assert report.replay_call_sid != report.call_sid
    assert [m.transcript for m in replayed.messages if m.hook == "/echo"] == HANG_ON


def test_an_app_that_says_something_else(lab: jl.Lab, tmp_path: Path) -> None:
    path = tmp_path / "v1.jsonl"
    rows = record_call(lab, path)
    echo(lab, words="I heard")
    report = sim.replay(path, lab.url)  # no path in the URL: the recorded one
    step, msgid = step_of(rows, "/echo")
    assert report.divergences == [
        Divergence(step, msgid, "/echo", "verbs differ", said("You said hello"), said("I heard hello"))
    ]
    assert not report.ok
    text = str(report)
    assert "1 divergence:" in text and "You said hello" in text and "I heard hello" in text
    frame = report.to_dataframe()
    assert frame[["step", "hook", "reply", "what"]].values.tolist() == [
        [step, "/echo", "ack", "verbs differ"]
    ]


def test_an_app_that_hangs_up_earlier(lab: jl.Lab, tmp_path: Path) -> None:
    path = tmp_path / "v1.jsonl"
    rows = record_call(lab, path)

    @lab.service("/echo").on("session:new")
    def rude(session: jl.Session) -> None:
        session.say(text="Goodbye").hangup().send()

    report = sim.replay(path, lab.url + "/echo", options=sim.SimOptions(ack_timeout=0.5))
    hello, hello_id = step_of(rows, "/echo")
    bye, bye_id = step_of(rows, "/echo", 1)
    # the recorded hooks still come (a replay sends what was recorded): nobody answers them now
    assert report.divergences == [
        Divergence(1, rows[0]["msgid"], "session:new", "verbs differ", SAY_SOMETHING, GOODBYE),
        Divergence(hello, hello_id, "/echo", "missing reply", RECORDING, None, "record"),
        Divergence(hello, hello_id, "/echo", "verbs differ", said("You said hello"), []),
        Divergence(bye, bye_id, "/echo", "verbs differ", GOODBYE, []),
    ]


def test_an_app_that_misses_a_reply(lab: jl.Lab, tmp_path: Path) -> None:
    path = tmp_path / "v1.jsonl"
    rows = record_call(lab, path)
    echo(lab, silent=True)
    report = sim.replay(path, lab.url + "/echo", options=sim.SimOptions(ack_timeout=0.5))
    hello, hello_id = step_of(rows, "/echo")
    assert report.divergences == [
        Divergence(hello, hello_id, "/echo", "missing reply", RECORDING, None, "record"),
        Divergence(hello, hello_id, "/echo", "missing reply", said("You said hello"), None),
    ]
    assert all(s.sent for s in report.steps)  # the replay went on after the ack timeout


def test_an_app_that_sends_a_different_or_extra_command(lab: jl.Lab, tmp_path: Path) -> None:
    path = tmp_path / "v1.jsonl"
    rows = record_call(lab, path)

    @lab.service("/echo").on("session:new")
    def v2(session: jl.Session) -> None:
        @session.on("/echo")
        def heard(msg: jl.Message) -> None:
            if msg.transcript == "bye":
                session.inject_mute()  # new in v2
                session.say(text="Goodbye").hangup().reply()
                return
            session.inject_record("startCallRecording", type="siprec", siprec_server_url="sip:rec@example")
            session.say(text=f"You said {msg.transcript}").gather(
                input=["speech"], actionHook="/echo"
            ).reply()

        session.gather(input=["speech"], actionHook="/echo", say={"text": "Say something"}).send()

    report = sim.replay(path, lab.url + "/echo")
    hello, hello_id = step_of(rows, "/echo")
    bye, bye_id = step_of(rows, "/echo", 1)
    siprec = {
        "command": "record",
        "queueCommand": False,
        "data": {"action": "startCallRecording", "type": "siprec", "siprecServerURL": "sip:rec@example"},
    }
    mute = {"command": "mute:status", "queueCommand": False, "data": {"mute_status": "mute"}}
    assert report.divergences == [
        Divergence(hello, hello_id, "/echo", "command differs", RECORDING, siprec, "record"),
        Divergence(bye, bye_id, "/echo", "extra reply", None, mute, "mute:status"),
    ]


def test_an_app_that_closes_the_socket(lab: jl.Lab, tmp_path: Path) -> None:
    path = tmp_path / "v1.jsonl"
    rows = record_call(lab, path)
    lab.service("/echo").on("session:new", lambda session: session.close())
    report = sim.replay(path, lab.url + "/echo", options=sim.SimOptions(ack_timeout=0.5))
    assert [s.sent for s in report.steps] == [True] + [False] * 5
    whats = [(d.step, d.what) for d in report.divergences]
    assert whats[:2] == [(1, "missing reply"), (2, "closed early")]
    assert report.divergences[1].actual == "app closed the socket (1000)"
    assert rows[0]["type"] == "session:new"


def test_a_log_with_several_calls_needs_a_call_sid(tmp_path: Path) -> None:
    log = tmp_path / "all.jsonl"
    lab = jl.start(grace=3.0, log_path=log)
    try:
        echo(lab)
        first = lab.call("/echo", sim.Caller.saying(*HANG_ON))
        lab.call("/echo", sim.Caller.saying("other", "bye"))
        with pytest.raises(ValueError, match="holds 2 calls"):
            sim.replay(log, lab.url + "/echo")
        report = sim.replay(log, lab.url + "/echo", call_sid=first.call_sid)
        assert report.ok, str(report)
    finally:
        lab.stop()
    (tmp_path / "junk.jsonl").write_text("not json\n")
    with pytest.raises(ValueError, match="not a JSON line"):
        sim.replay(tmp_path / "junk.jsonl", "ws://127.0.0.1:9")
