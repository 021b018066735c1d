"""Bounded memory in the app server: ended sessions, per-session messages, frames before a session.

These are lab behaviours with no feature-server counterpart; the event log keeps every row
(jambonz's own call:status per leg, lib/session/call-session.js, still shows in ``lab.statuses``).
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from aiohttp import web

import jambonz_lab as jl
from jambonz_lab import sim
from tests.fakejambonz import FakeJambonz, call_data, lab_rows, wait_until
from tests.net.test_webhooks import post


@pytest.fixture
def small() -> Iterator[jl.Lab]:
    lab = jl.start(grace=0.2, keep_sessions=3, keep_messages=5, early_frames=4)
    lab.service("/")  # no handlers: session:new is acked with the default verbs after grace
    try:
        yield lab
    finally:
        lab.stop()


def _one_call(lab: jl.Lab, sid: str) -> None:
    with FakeJambonz(lab.url + "/", sid) as fj:
        fj.session_new()
        fj.recv()
        fj.send("call:status", {"call_sid": sid, "call_status": "completed"})
        fj.close(1000)
    wait_until(lambda: any(r["call_sid"] == sid for r in lab_rows(lab, "close")))


def test_ended_sessions_leave_memory_but_their_rows_stay(small: jl.Lab) -> None:
    for n in range(6):
        _one_call(small, f"c{n}")
    wait_until(lambda: len(small.sessions) == 3)
    assert [s.call_sid for s in small.sessions] == ["c3", "c4", "c5"]
    with pytest.raises(KeyError):
        small.session("c0")
    assert small.calls["call_sid"].tolist() == [f"c{n}" for n in range(6)]
    assert small.calls["final_status"].tolist() == ["completed"] * 6


def test_ended_sessions_leave_after_their_age() -> None:
    lab = jl.start(grace=0.2, keep_sessions_for=0.0)
    lab.service("/")
    try:
        _one_call(lab, "a")
        _one_call(lab, "b")
        wait_until(lambda: len(lab.sessions) == 0)
        assert len(lab.calls) == 2
    finally:
        lab.stop()


def test_the_last_ended_session_leaves_after_its_age_too() -> None:
    """No later session ends to trigger the check: the ack sweeper drops it (every 0.5 s at most)."""
    lab = jl.start(grace=0.2, keep_sessions_for=1.5)
    lab.service("/")
    try:
        _one_call(lab, "only")
        assert [s.call_sid for s in lab.sessions] == ["only"]  # kept while younger than 1.5 s
        wait_until(lambda: len(lab.sessions) == 0, timeout=8)
        assert lab.calls["call_sid"].tolist() == ["only"]
    finally:
        lab.stop()


def test_session_messages_keep_the_newest(small: jl.Lab) -> None:
    with FakeJambonz(small.url + "/", "long") as fj:
        fj.session_new()
        fj.recv()
        for n in range(30):
            fj.send("call:status", {"call_sid": "long", "call_status": "in-progress", "n": n})
        wait_until(lambda: len(small.statuses) == 30)
        messages = small.session("long").messages
        assert 5 <= len(messages) <= 11
        assert messages[-1].data["n"] == 29
        assert [m.data["n"] for m in messages] == list(range(30 - len(messages), 30))


def test_frames_before_session_new_are_capped(small: jl.Lab) -> None:
    with FakeJambonz(small.url + "/", "early") as fj:
        for n in range(50):
            fj.send("call:status", {"call_sid": "early", "call_status": "trying", "n": n})
        fj.session_new()
        fj.recv()
        session = small.session("early")
    notes = [r["note"] for r in lab_rows(small, "early")]
    assert len(notes) == 5 and "later ones are dropped" in notes[-1]
    assert [m.type.value for m in session.messages] == ["call:status"] * 4 + ["session:new"]
    assert len([r for r in small.log.rows() if r["type"] == "call:status"]) == 50  # every frame logged


def test_bad_retention_options_are_refused() -> None:
    with pytest.raises(ValueError, match="keep_sessions"):
        jl.ServerOptions(keep_sessions=-1)


@contextmanager
def no_collector() -> Iterator[None]:
    """The cyclic garbage collector off for the block: what is freed there, reference counting freed."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_an_ended_session_is_freed_without_the_garbage_collector() -> None:
    """A session that left ``sessions`` is no reference cycle: reference counting frees it.

    A full collection walks every tracked object of the process with the GIL held (hundreds of
    ms with many calls kept), so ended sessions must not wait for one. Plain and coroutine
    handlers that close over their session, ``wait_for``, a webhook call: none may keep a cycle.
    """
    lab = jl.start(grace=0.2, keep_sessions=0)  # the ack watch (4 s) links weakly
    refs: list[weakref.ref[jl.Session]] = []

    @lab.service("/plain").on("session:new")
    def plain(session: jl.Session) -> None:
        refs.append(weakref.ref(session))

        @session.on("/g")
        def heard(msg: jl.Message) -> None:
            session.say(text=f"heard {msg.transcript}").hangup().reply()

        session.gather(input=["speech"], actionHook="/g").send()

    @lab.service("/async").on("session:new")
    async def stepped(session: jl.Session) -> None:
        refs.append(weakref.ref(session))
        session.gather(input=["speech"], actionHook="/g2").send()
        msg = await session.wait_for("/g2")
        session.say(text=f"heard {msg.transcript}").hangup().send()

    try:
        with no_collector():
            for path in ("/plain", "/async", "/plain"):
                assert lab.call(path, sim.Caller.saying("hello")).heard[-1] == ("say", "heard hello")
            status, _ = post(lab.url + "/plain", call_data("hook-1"))
            assert status == 200
            post(lab.url + "/plain/status", call_data("hook-1", call_status="completed"))
            wait_until(lambda: len(refs) == 4 and not lab.sessions)
            wait_until(lambda: [r() for r in refs] == [None] * 4, timeout=2)
    finally:
        lab.stop()


def test_a_session_the_app_kept_still_reads_after_it_left(small: jl.Lab) -> None:
    """Leaving ``sessions`` drops the session's own links, not what the app reads from it."""
    kept: list[jl.Session] = []
    small.service("/").on("session:new", kept.append)
    for n in range(5):
        _one_call(small, f"k{n}")
    wait_until(lambda: len(small.sessions) == 3)
    first = kept[0]
    with pytest.raises(KeyError):
        small.session("k0")
    assert first.closed and first.status == "completed"
    assert [m.type.value for m in first.messages] == ["session:new", "call:status"]
    assert first.events["call_sid"].unique().tolist() == ["k0"]
    with pytest.raises(jl.SessionClosed, match="k0"):
        first.say(text="too late").send()


def test_a_closed_socket_is_freed_without_the_garbage_collector() -> None:
    """aiohttp leaves a cycle behind each WebSocket with a heartbeat (its protocol keeps a bound
    method of the response); the server breaks it, so a call's socket, request and response go
    by reference counting, not at the next full collection."""
    lab = jl.start(grace=0.2, keep_sessions=0)
    lab.service("/").on("session:new", lambda s: s.say(text="hi").hangup().send())

    def responses() -> int:
        return sum(type(o) is web.WebSocketResponse for o in gc.get_objects())

    try:
        with no_collector():
            before = responses()
            for n in range(5):
                with FakeJambonz(lab.url + "/", f"sock-{n}") as fake:
                    fake.session_new()
                    assert fake.recv()["type"] == "ack"
            wait_until(lambda: not lab.sessions and lab.server.open_sockets == 0)
            wait_until(lambda: responses() == before, timeout=2)
    finally:
        lab.stop()


def test_a_call_that_ended_within_the_grace_leaves_memory_before_its_timer() -> None:
    """The grace timer (auto-ack after ``grace`` s without a send) links its call weakly."""
    lab = jl.start(grace=4.5, keep_sessions=0)
    refs: list[weakref.ref[jl.Session]] = []
    lab.service("/").on("session:new", lambda s: refs.append(weakref.ref(s)))
    try:
        with no_collector():
            with FakeJambonz(lab.url + "/", "brief") as fake:
                fake.session_new()  # no send(): the opening stays owed, its grace timer armed
            wait_until(lambda: len(refs) == 1 and not lab.sessions)
            wait_until(lambda: refs[0]() is None, timeout=2)
    finally:
        lab.stop()


def test_close_handlers_run_when_the_session_leaves_at_once() -> None:
    """With ``keep_sessions=0`` a session leaves (and drops its handlers) as its socket closes;
    its close handlers still run."""
    lab = jl.start(grace=0.2, keep_sessions=0)
    closes: list[tuple[str, int | None]] = []

    @lab.service("/").on("session:new")
    def new(session: jl.Session) -> None:
        session.on("close", lambda c: closes.append((session.call_sid, c.code)))
        session.say(text="hi").hangup().send()

    try:
        for n in range(3):
            with FakeJambonz(lab.url + "/", f"bye-{n}") as fake:
                fake.session_new()
                assert fake.recv()["type"] == "ack"
        wait_until(lambda: len(closes) == 3 and not lab.sessions)
        assert sorted(closes) == [(f"bye-{n}", 1000) for n in range(3)]
    finally:
        lab.stop()
