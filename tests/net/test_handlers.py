"""Handler runs over real sockets: per-hook verbs, implicit replies, errors, workers."""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from typing import Any

import pytest

import jambonz_lab as jl
from jambonz_lab.net.handlers import Workers
from tests.fakejambonz import FakeJambonz, lab_rows, wait_until


def answered(lab: jl.Lab, fj: FakeJambonz) -> jl.Session:
    fj.session_new()
    assert fj.recv()["type"] == "ack"
    return lab.session(fj.call_sid)


def acks_by_msgid(fj: FakeJambonz, count: int) -> dict[str, Any]:
    got: dict[str, Any] = {}
    while len(got) < count:
        frame = fj.recv()
        if frame["type"] == "ack":
            got[frame["msgid"]] = frame.get("data", [])
    return got


def say(text: str) -> dict[str, str]:
    return {"verb": "say", "text": text}


class TestVerbsBelongToTheirHook:
    @pytest.mark.parametrize("rounds", range(8))
    def test_two_plain_hooks_in_flight_never_mix(self, lab: jl.Lab, rounds: int) -> None:
        """Hook A's handler is slow; B's answers at once. Each ack carries its own verbs only."""
        svc = lab.service("/")
        b_done = threading.Event()

        @svc.on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/a")
            def slow(msg: jl.Message) -> None:
                session.say(text="A1")
                b_done.wait(2)  # B composes and replies while A's verb is composed, not sent
                session.say(text="A2").reply()

            @session.on("/b")
            def fast(msg: jl.Message) -> None:
                session.say(text="B").reply()
                b_done.set()

            session.answer().send()

        with FakeJambonz(lab.url, f"mix{rounds}") as fj:
            answered(lab, fj)
            a = fj.hook("/a")
            b = fj.hook("/b")
            acks = acks_by_msgid(fj, 2)
        assert acks == {a: [say("A1"), say("A2")], b: [say("B")]}

    def test_two_coroutine_hooks_in_flight_never_mix(self, lab: jl.Lab) -> None:
        svc = lab.service("/")

        @svc.on("session:new")
        def new(session: jl.Session) -> None:
            async def slow(msg: jl.Message) -> None:
                session.say(text="A1")
                await asyncio.sleep(0.2)
                session.say(text="A2").reply()

            async def fast(msg: jl.Message) -> None:
                session.say(text="B").reply()

            session.on("/a", slow)
            session.on("/b", fast)
            session.answer().send()

        with FakeJambonz(lab.url, "cmix") as fj:
            answered(lab, fj)
            a = fj.hook("/a")
            b = fj.hook("/b")
            acks = acks_by_msgid(fj, 2)
        assert acks == {a: [say("A1"), say("A2")], b: [say("B")]}

    def test_a_cell_composes_into_the_session_queue_while_a_hook_runs(self, lab: jl.Lab) -> None:
        svc = lab.service("/")
        started, release = threading.Event(), threading.Event()

        @svc.on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/a")
            def slow(msg: jl.Message) -> None:
                started.set()
                release.wait(2)
                session.say(text="hook").reply()

            session.answer().send()

        with FakeJambonz(lab.url, "cell") as fj:
            session = answered(lab, fj)
            a = fj.hook("/a")
            assert started.wait(2)
            session.say(text="from the cell")  # this test thread plays a cell
            assert session.queued == [say("from the cell")]
            release.set()
            assert fj.recv() == {"type": "ack", "msgid": a, "data": [say("hook")]}
            session.send()
            frame = fj.recv()
            assert (frame["command"], frame["data"]) == ("redirect", [say("from the cell")])


class TestImplicitReply:
    def test_verbs_composed_without_reply_are_sent_as_the_reply_with_a_warning(
        self, lab: jl.Lab, caplog: pytest.LogCaptureFixture
    ) -> None:
        svc = lab.service("/")

        @svc.on("session:new")
        def new(session: jl.Session) -> None:
            def forgetful(msg: jl.Message) -> None:
                session.say(text=f"you pressed {msg['digits']}")

            session.on("/menu", forgetful)
            session.answer().send()

        with FakeJambonz(lab.url, "forgot") as fj:
            answered(lab, fj)
            msgid = fj.hook("/menu", digits="7")
            assert fj.recv() == {"type": "ack", "msgid": msgid, "data": [say("you pressed 7")]}
            fj.recv_none()
        rows = lab_rows(lab, "implicit-reply")
        assert len(rows) == 1 and "forgetful" in str(rows[0]["note"]) and rows[0]["msgid"] == msgid
        assert any("forgetful" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")

    def test_error_mode_drops_them_loudly_and_acks_empty(self) -> None:
        lab = jl.start(unreplied="error")
        try:
            svc = lab.service("/")

            @svc.on("session:new")
            def new(session: jl.Session) -> None:
                session.on("/menu", lambda msg: session.say(text="lost"))
                session.answer().send()

            with FakeJambonz(lab.url, "strict") as fj:
                answered(lab, fj)
                msgid = fj.hook("/menu")
                assert fj.recv() == {"type": "ack", "msgid": msgid}
                fj.recv_none()
            errors = lab_rows(lab, "handler-error")
            assert len(errors) == 1 and "without reply()" in str(errors[0]["note"])
            assert lab.session("strict").queued == []
        finally:
            lab.stop()

    def test_unreplied_must_be_reply_or_error(self) -> None:
        with pytest.raises(ValueError, match="unreplied"):
            jl.ServerOptions(unreplied="ignore")

    def test_verbs_composed_after_the_reply_are_appended_to_the_stack(self, lab: jl.Lab) -> None:
        svc = lab.service("/")

        @svc.on("session:new")
        def new(session: jl.Session) -> None:
            def answer_then_more(msg: jl.Message) -> None:
                session.say(text="first").reply()
                session.hangup()

            session.on("/h", answer_then_more)
            session.answer().send()

        with FakeJambonz(lab.url, "after") as fj:
            answered(lab, fj)
            msgid = fj.hook("/h")
            assert fj.recv() == {"type": "ack", "msgid": msgid, "data": [say("first")]}
            frame = fj.recv()
            assert frame == {
                "type": "command",
                "command": "redirect",
                "queueCommand": True,
                "data": [{"verb": "hangup"}],
            }
        assert lab_rows(lab, "implicit-send")

    def test_a_session_new_handler_that_forgets_send(self, lab: jl.Lab) -> None:
        lab.service("/").on("session:new", lambda s: s.say(text="hello"))
        with FakeJambonz(lab.url, "nosend") as fj:
            msgid = fj.session_new()
            assert fj.recv() == {"type": "ack", "msgid": msgid, "data": [say("hello")]}
        assert lab_rows(lab, "implicit-reply")

    def test_an_event_handler_that_composes_sends_as_a_queued_redirect(self, lab: jl.Lab) -> None:
        svc = lab.service("/")

        @svc.on("session:new")
        def new(session: jl.Session) -> None:
            session.on("call:status", lambda msg: session.say(text="status seen"))
            session.answer().send()

        with FakeJambonz(lab.url, "evt") as fj:
            answered(lab, fj)
            fj.send("call:status", {"call_sid": "evt", "call_status": "in-progress"})
            frame = fj.recv()
            assert (frame["command"], frame["queueCommand"], frame["data"]) == (
                "redirect",
                True,
                [say("status seen")],
            )


class TestErrorsFromHandlers:
    def test_a_second_reply_from_a_worker_raises_already_replied(self, lab: jl.Lab) -> None:
        svc = lab.service("/")
        seen: list[jl.AlreadyReplied] = []

        @svc.on("session:new")
        def new(session: jl.Session) -> None:
            def twice(msg: jl.Message) -> None:
                session.say(text="one").reply()
                try:
                    session.say(text="two").reply()
                except jl.AlreadyReplied as exc:
                    seen.append(exc)
                    session.clear()

            session.on("/h", twice)
            session.answer().send()

        with FakeJambonz(lab.url, "twice") as fj:
            answered(lab, fj)
            msgid = fj.hook("/h")
            assert fj.recv() == {"type": "ack", "msgid": msgid, "data": [say("one")]}
            fj.recv_none()
        wait_until(lambda: seen)
        assert seen[0].msgid == msgid and "already acked" in str(seen[0])

    def test_too_large_reply_from_a_worker_raises_and_queues_nothing(self, lab: jl.Lab) -> None:
        svc = lab.service("/")
        seen: list[jl.FrameTooLarge] = []

        @svc.on("session:new")
        def new(session: jl.Session) -> None:
            def big(msg: jl.Message) -> None:
                session.say(text="x" * 30_000)
                try:
                    session.reply()
                except jl.FrameTooLarge as exc:
                    seen.append(exc)
                    session.say(text="short").reply()

            session.on("/h", big)
            session.answer().send()

        with FakeJambonz(lab.url, "bigreply") as fj:
            answered(lab, fj)
            msgid = fj.hook("/h")
            assert fj.recv() == {"type": "ack", "msgid": msgid, "data": [say("short")]}
        assert seen and [v["verb"] for v in seen[0].verbs] == ["say"]
        assert seen[0].__traceback__ is not None
        frames = traceback.extract_tb(seen[0].__traceback__)
        assert all("loop.py" not in f.filename and "concurrent" not in f.filename for f in frames)

    def test_a_raising_handler_is_reported_and_the_hook_still_acked(self, lab: jl.Lab) -> None:
        svc = lab.service("/")

        @svc.on("session:new")
        def new(session: jl.Session) -> None:
            def broken(msg: jl.Message) -> None:
                raise KeyError("nope")

            session.on("/h", broken)
            session.answer().send()

        with FakeJambonz(lab.url, "raise") as fj:
            answered(lab, fj)
            msgid = fj.hook("/h")
            assert fj.recv() == {"type": "ack", "msgid": msgid}
            second = fj.hook("/h")
            assert fj.recv() == {"type": "ack", "msgid": second}
        rows = lab_rows(lab, "handler-error")
        assert len(rows) == 2 and "broken: KeyError" in str(rows[0]["note"])

    def test_a_blocked_plain_handler_does_not_delay_another_call(self, lab: jl.Lab) -> None:
        svc = lab.service("/")
        release = threading.Event()

        @svc.on("session:new")
        def new(session: jl.Session) -> None:
            def maybe_block(msg: jl.Message) -> None:
                if msg.get("block"):
                    release.wait(3)
                session.say(text="ok").reply()

            session.on("/h", maybe_block)
            session.answer().send()

        try:
            with FakeJambonz(lab.url, "stuck") as stuck, FakeJambonz(lab.url, "free") as free:
                answered(lab, stuck)
                answered(lab, free)
                stuck.hook("/h", block=True)
                t0 = time.monotonic()
                msgid = free.hook("/h")
                assert free.recv() == {"type": "ack", "msgid": msgid, "data": [say("ok")]}
                assert time.monotonic() - t0 < 1.0
                release.set()
                assert stuck.recv()["data"] == [say("ok")]
        finally:
            release.set()


class TestClosesAsJambonzMeansThem:
    def test_a_1001_from_jambonz_ends_the_call_and_fails_waiters(self, lab: jl.Lab) -> None:
        """jambonz closes with 1001 when it rejects a call and never reconnects after its own close."""
        lab.service("/").on("session:new", lambda s: s.answer().send())
        fj = FakeJambonz(lab.url, "rejected")
        session = answered(lab, fj)
        waiter = session.wait_for("/never", timeout=5)
        fj.close(1001)
        with pytest.raises(jl.SessionClosed):
            waiter.result(timeout=3)
        assert session.closed
        with pytest.raises(jl.SessionClosed):
            session.say(text="too late").send()
        assert session.queued == [say("too late")]

    def test_a_drop_still_waits_for_the_reconnect(self, lab: jl.Lab) -> None:
        lab.service("/").on("session:new", lambda s: s.answer().send())
        fj = FakeJambonz(lab.url, "dropped")
        session = answered(lab, fj)
        fj.close(1011)
        wait_until(lambda: session.state is jl.CallState.DETACHED)
        assert not session.closed


class TestWorkers:
    def test_jobs_run_on_up_to_size_threads(self) -> None:
        workers = Workers(2, name="t-workers")
        names: set[str] = set()
        gate = threading.Barrier(2, timeout=2)
        done = threading.Semaphore(0)

        def job() -> None:
            names.add(threading.current_thread().name)
            gate.wait()
            done.release()

        workers.submit(job)
        workers.submit(job)
        assert done.acquire(timeout=2) and done.acquire(timeout=2)
        assert names == {"t-workers-0", "t-workers-1"}
        workers.shutdown()
        with pytest.raises(RuntimeError):
            workers.submit(job)

    def test_size_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            Workers(0)


class TestErrorsEndAtTheUsersLine:
    def test_a_cell_send_too_large_has_no_internal_frames(self, lab: jl.Lab) -> None:
        lab.service("/").on("session:new", lambda s: s.answer().send())
        with FakeJambonz(lab.url, "tb") as fj:
            session = answered(lab, fj)
            session.say(text="x" * 30_000)
            with pytest.raises(jl.FrameTooLarge) as info:
                session.send()
        files = [f.filename for f in traceback.extract_tb(info.tb)]
        assert not any(f.endswith(("loop.py", "_base.py", "call.py", "messages.py")) for f in files), files
        assert info.value.__cause__ is None and info.value.__suppress_context__

    def test_an_invalid_verb_points_at_the_call_not_the_validator(self, lab: jl.Lab) -> None:
        lab.service("/").on("session:new", lambda s: s.answer().send())
        with FakeJambonz(lab.url, "tbv") as fj:
            session = answered(lab, fj)
            with pytest.raises(jl.VerbError) as info:
                session.extend([{"verb": "say", "text": 5, "bogus": 1}])
        files = [f.filename for f in traceback.extract_tb(info.tb)]
        assert not any(f.endswith("verbs.py") for f in files), files
        assert len(info.value.problems) == 2
