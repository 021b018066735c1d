"""Waiting from cells: Session.wait_for and Lab.wait_for_session, awaited or blocking."""

from __future__ import annotations

import asyncio
import threading

import pytest

import jambonz_lab as jl
from jambonz_lab import loop
from tests.fakejambonz import FakeJambonz


def test_wait_for_session_then_a_hook_blocking_style(lab: jl.Lab) -> None:
    lab.service("/w")
    waiter = lab.wait_for_session("/w", timeout=5)
    with FakeJambonz(lab.url + "/w", "w1") as fj:
        fj.session_new()
        session = waiter.result()
        assert session.call_sid == "w1"
        fj.recv()  # the grace auto-ack
        hook = session.wait_for("/echo", timeout=5)
        msgid = fj.hook("/echo", reason="dtmfDetected", digits="5")
        msg = hook.result()
        assert (msg.msgid, msg.digits) == (msgid, "5")
        assert fj.recv() == {"type": "ack", "msgid": msgid}  # nobody replied: acked for jambonz


def test_await_style_from_another_event_loop(lab: jl.Lab) -> None:
    """What an async notebook cell does: the kernel's loop awaits, the lab's loop matches."""
    lab.service("/")

    async def cell() -> jl.Message:
        waiter = lab.wait_for_session(timeout=5)
        with FakeJambonz(lab.url, "aw") as fj:
            await asyncio.to_thread(fj.session_new)
            session = await waiter
            status = session.wait_for("call:status", timeout=5)
            await asyncio.to_thread(fj.send, "call:status", {"call_sid": "aw", "call_status": "in-progress"})
            msg: jl.Message = await status
            return msg

    assert asyncio.run(cell()).call_status == "in-progress"


def test_timeout_says_what_was_awaited(lab: jl.Lab) -> None:
    lab.service("/")
    with FakeJambonz(lab.url, "t") as fj:
        fj.session_new()
        fj.recv()
        with pytest.raises(jl.WaitTimeout, match=r"waited 0.2 s for /never on call t") as info:
            lab.session("t").wait_for("/never", timeout=0.2).result()
        assert isinstance(info.value, TimeoutError) and info.value.call_sid == "t"


def test_wait_for_close_and_waiters_failing_when_the_call_ends(lab: jl.Lab) -> None:
    lab.service("/")
    with FakeJambonz(lab.url, "c") as fj:
        fj.session_new()
        fj.recv()
        session = lab.session("c")
        closed = session.wait_for("close", timeout=5)
        hook = session.wait_for("/late", timeout=5)
    assert closed.result() == jl.SocketClose(1000, True)
    with pytest.raises(jl.SessionClosed, match="ended while waiting for /late"):
        hook.result()
    with pytest.raises(jl.SessionClosed):
        session.wait_for("/after", timeout=1).result()


def test_blocking_wait_on_the_loop_thread_is_refused(lab: jl.Lab) -> None:
    waiter = lab.wait_for_session(timeout=1)
    with pytest.raises(RuntimeError, match="would deadlock; await it"):
        loop.run_sync(waiter.result)


def test_cancel_ends_the_wait(lab: jl.Lab) -> None:
    waiter = lab.wait_for_session(timeout=30)
    threading.Timer(0.1, waiter.cancel).start()
    with pytest.raises(asyncio.CancelledError, match="cancelled"):
        waiter.result()
    assert "Waiter" in repr(waiter) and "a call" in waiter._repr_html_()
