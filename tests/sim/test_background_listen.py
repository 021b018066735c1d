"""``config.listen``: the background listen beside the verb stack, against a real audio server on
loopback (feature-server 0.9.8 ``lib/tasks/config.js`` ~272–280,
``lib/utils/background-task-manager.js`` ~29–34, ~62–71, ~82–100, ``lib/tasks/listen.js`` ~92–121)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.protocol.audio import decode_l16, disconnect
from jambonz_lab.sim.audio import render
from jambonz_lab.sim.caller import Audio, Tone
from jambonz_lab.sim.verbs.basic import speech_seconds
from tests.audioserver import AudioServer, Script
from tests.fakejambonz import wait_until
from tests.simtrace import notes

TONE = Tone(600, 1.0)

App = Callable[[jl.Session, str, list[dict[str, Any]]], None]


def run(
    lab: jl.Lab, app: App, caller: sim.Caller, script: Script | None = None
) -> tuple[sim.CallResult, AudioServer, list[dict[str, Any]]]:
    """A call to ``app(session, audio_url, hooks)``; the background listen's hooks land in ``hooks``."""
    hooks: list[dict[str, Any]] = []
    with AudioServer(script) as server:

        @lab.service("/bg").on("session:new")
        def new(session: jl.Session) -> None:
            app(session, server.url, hooks)

        result = sim.call(lab.url + "/bg", caller)
    return result, server, hooks


def record(session: jl.Session, hooks: list[dict[str, Any]], msg: jl.Message) -> None:
    hooks.append(msg.data)
    session.reply()


def first_sample(result: sim.CallResult) -> int:
    [entry] = [e for e in result.trace if e.type == "listen" and isinstance(e.payload, dict)]
    return int(entry.payload["first_sample"])


def test_enable_streams_beside_the_stack_and_disable_stops_it(lab: jl.Lab) -> None:
    """enable: a listen task with the other keys beside the stack (config.js ~272–276); the stack's
    pause runs meanwhile; enable: false stops it (~277–279, manager stop ~62–71) and its actionHook
    still goes with dial_call_duration (listen.js ~92–94, ~117–120); no frame after the stop."""

    def app(session: jl.Session, url: str, hooks: list[dict[str, Any]]) -> None:
        session.on("/bg-done", lambda msg: record(session, hooks, msg))
        session.config(listen={"enable": True, "url": url, "actionHook": "/bg-done"})
        session.pause(length=3).config(listen={"enable": False}).pause(length=2).hangup().send()

    caller = sim.Caller(inputs=[Audio(TONE, after=0.5)], hangup_after=30)
    result, server, hooks = run(lab, app, caller)
    [conn] = server.connections
    assert conn.metadata is not None and conn.metadata["callSid"] == result.call_sid
    assert 149 <= len(conn.frames) <= 151  # the 3 s pause, at 20 ms a frame
    pcm = decode_l16(b"".join(conn.frames), 1)[0]
    expected = render(TONE, 8000)
    assert np.array_equal(pcm[4000 : 4000 + expected.size], expected)
    assert [h["dial_call_duration"] for h in hooks] == [3]
    assert "background listen stopped" in notes(result, "listen")
    assert result.final_status == "completed"


def test_stereo_has_what_the_stack_says_on_the_right(lab: jl.Lab) -> None:
    """The background stream carries the call's audio while other verbs run: a say's placeholder is
    what the caller hears, the right channel of a stereo stream; maxLength ends it (listen.js ~186–192)."""
    text = "one two three four"

    def app(session: jl.Session, url: str, hooks: list[dict[str, Any]]) -> None:
        session.config(listen={"enable": True, "url": url, "mixType": "stereo", "maxLength": 4})
        session.say(text=text).pause(length=5).hangup().send()

    result, server, _ = run(lab, app, sim.Caller(hangup_after=30))
    [conn] = server.connections
    assert len(conn.frames) == 200
    left, right = decode_l16(b"".join(conn.frames), 2)
    voiced = np.flatnonzero(right)
    assert not left.any() and voiced.size
    assert abs((voiced[-1] - voiced[0] + 1) / 8000 - speech_seconds(text)) < 0.03
    rec = result.recording()
    first = first_sample(result)
    assert np.array_equal(rec[1, first : first + right.size], right)
    assert "stream ended (maxLength)" in notes(result, "listen")


def test_a_second_enable_while_it_runs_is_skipped(lab: jl.Lab) -> None:
    """newTask: a background listen is running, skipped (background-task-manager.js ~29–34)."""

    def app(session: jl.Session, url: str, hooks: list[dict[str, Any]]) -> None:
        session.config(listen={"enable": True, "url": url, "maxLength": 2})
        session.pause(length=1).config(listen={"enable": True, "url": url + "?again"})
        session.pause(length=2).config(listen={"enable": True, "url": url, "maxLength": 1})
        session.pause(length=2).hangup().send()

    result, server, _ = run(lab, app, sim.Caller(hangup_after=30))
    assert [c.path for c in server.connections] == ["/audio", "/audio"]  # the third starts after maxLength
    assert [len(c.frames) for c in server.connections] == [100, 50]
    assert "background listen is running; skipped" in notes(result, "listen")


def test_the_hooks_ack_replaces_the_stack(lab: jl.Lab) -> None:
    """performAction(results, true) for a non-nested listen: the ack's verbs replace the application,
    the running verb killed (task.js ~254–257); here the app's disconnect ends the stream."""

    def app(session: jl.Session, url: str, hooks: list[dict[str, Any]]) -> None:
        @session.on("/bg-done")
        def done(msg: jl.Message) -> None:
            hooks.append(msg.data)
            session.say(text="the stream is over").hangup().reply()

        session.config(listen={"enable": True, "url": url, "actionHook": "/bg-done"})
        session.pause(length=20).say(text="never heard").send()

    result, server, hooks = run(lab, app, sim.Caller(hangup_after=60), [(25, disconnect())])
    assert len(hooks) == 1 and hooks[0]["dial_call_duration"] == 0
    assert [w for k, w in result.heard if k == "say"] == ["the stream is over"]
    assert result.duration < 5


def test_the_calls_end_stops_it_without_a_hook(lab: jl.Lab) -> None:
    def app(session: jl.Session, url: str, hooks: list[dict[str, Any]]) -> None:
        session.on("/bg-done", lambda msg: record(session, hooks, msg))
        session.config(listen={"enable": True, "url": url, "actionHook": "/bg-done"})
        session.pause(length=2).hangup().send()

    result, server, hooks = run(lab, app, sim.Caller(hangup_after=30))
    [conn] = server.connections
    assert 99 <= len(conn.frames) <= 101
    assert hooks == []
    assert any("closed" in n for n in notes(result, "listen"))


def test_an_empty_stack_streams_the_callers_audio_on_the_virtual_clock(lab: jl.Lab) -> None:
    """Only a config with listen, then nothing: the stack idles, waiting for the app's commands, while
    the background listen streams the caller's tone; each frame is an eager moment (sim/alarms.py), so
    the idle call moves frame by frame without waiting ``idle_wait`` for each (one idle note in all)."""
    with AudioServer() as server:

        @lab.service("/bg").on("session:new")
        def new(session: jl.Session) -> None:
            session.config(listen={"enable": True, "url": server.url}).send()

        caller = sim.Caller(inputs=[Audio(TONE, after=0.2)], hangup_after=5)
        result = sim.call(lab.url + "/bg", caller, options=sim.SimOptions(idle_wait=0.2))
    [conn] = server.connections
    pcm = decode_l16(b"".join(conn.frames), 1)[0]
    expected = render(TONE, 8000)
    assert np.array_equal(pcm[1600 : 1600 + expected.size], expected)
    assert len([e for e in result.trace if e.type == "idle"]) == 1
    assert result.final_status == "completed"


def test_on_the_real_clock_it_streams_in_real_time_and_stops(lab: jl.Lab) -> None:
    """The real clock: the background listen sleeps to each frame's time itself (the stack's waits do
    not carry it); enable: false stops it and its hook goes (during the next pause)."""

    def app(session: jl.Session, url: str, hooks: list[dict[str, Any]]) -> None:
        session.on("/bg-done", lambda msg: record(session, hooks, msg))
        session.config(listen={"enable": True, "url": url, "actionHook": "/bg-done"})
        session.pause(length=1).config(listen={"enable": False}).pause(length=0.5).hangup().send()

    hooks: list[dict[str, Any]] = []
    with AudioServer() as server:

        @lab.service("/bg").on("session:new")
        def new(session: jl.Session) -> None:
            app(session, server.url, hooks)

        caller = sim.Caller(inputs=[Audio(Tone(500, 0.5), after=0.1)], hangup_after=10)
        result = sim.call(lab.url + "/bg", caller, clock="real")
    [conn] = server.connections
    assert 40 <= len(conn.frames) <= 52  # about 1 s of 20 ms frames
    pcm = decode_l16(b"".join(conn.frames), 1)[0]
    expected = render(Tone(500, 0.5), 8000)
    assert np.array_equal(pcm[800 : 800 + expected.size], expected)
    wait_until(lambda: bool(hooks), timeout=5)
    assert hooks[0]["dial_call_duration"] in (0, 1)
    assert "background listen stopped" in notes(result, "listen")
