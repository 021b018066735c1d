"""Session behaviour over real sockets: reconnects, openers, commands, TTS streaming."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import ConnectionClosed

import jambonz_lab as jl
from tests.fakejambonz import FakeJambonz, call_data, lab_rows, wait_until


def answered(lab: jl.Lab, fj: FakeJambonz) -> jl.Session:
    """Open a call on ``fj`` and return its session after the first ack."""
    fj.session_new()
    assert fj.recv()["type"] == "ack"
    return lab.session(fj.call_sid)


class TestReconnect:
    def test_a_second_socket_for_the_call_keeps_the_session_and_its_locals(self, lab: jl.Lab) -> None:
        """After a non-1000 close, session:reconnect rebinds the same Session, acked at once."""
        reconnected: list[jl.Session] = []
        svc = lab.service("/")

        @svc.on("session:new")
        def new(session: jl.Session) -> None:
            session.locals["step"] = "menu"
            session.answer().send()

        svc.on("session:reconnect", reconnected.append)
        first = FakeJambonz(lab.url, "rc")
        session = answered(lab, first)
        first.close(4000)
        wait_until(lambda: session.state is jl.CallState.DETACHED)
        with FakeJambonz(lab.url, "rc") as second:
            msgid = second.send("session:reconnect", call_data("rc"))
            assert second.recv() == {"type": "ack", "msgid": msgid}
            assert lab.session("rc") is session
            assert session.locals == {"step": "menu"} and session.reconnects == 1
            wait_until(lambda: reconnected)
            assert reconnected == [session]
            session.say(text="back").send()
            assert second.recv()["command"] == "redirect"

    def test_commands_sent_while_the_socket_is_down_follow_the_reconnect_ack(self, lab: jl.Lab) -> None:
        lab.service("/").on("session:new", lambda s: s.answer().send())
        first = FakeJambonz(lab.url, "held")
        session = answered(lab, first)
        first.close(1011)
        wait_until(lambda: session.state is jl.CallState.DETACHED)
        session.say(text="queued while down").send()
        session.inject_mute("mute")
        with FakeJambonz(lab.url, "held") as second:
            msgid = second.send("session:reconnect", call_data("held"))
            assert second.recv() == {"type": "ack", "msgid": msgid}
            assert second.recv()["data"] == [{"verb": "say", "text": "queued while down"}]
            assert second.recv()["command"] == "mute:status"

    def test_reconnect_before_the_session_new_ack_carries_the_first_verbs(self) -> None:
        """jambonz re-keys an unacked session:new to the reconnect msgid (protocol doc §1.5)."""
        lab = jl.start(grace=2.0)
        try:
            lab.service("/")
            first = FakeJambonz(lab.url, "early")
            first.session_new()
            wait_until(lambda: lab.server.sessions.get("early"))
            first.close(1011)  # dropped before any ack (a 1001 from jambonz would end the call)
            session = lab.session("early")
            wait_until(lambda: session.state is jl.CallState.DETACHED)
            with FakeJambonz(lab.url, "early") as second:
                msgid = second.send("session:reconnect", call_data("early"))
                session.say(text="first verbs").send()
                assert second.recv() == {
                    "type": "ack",
                    "msgid": msgid,
                    "data": [{"verb": "say", "text": "first verbs"}],
                }
        finally:
            lab.stop()

    def test_reconnect_for_an_unknown_call_goes_to_reconnect_handlers_only(self, lab: jl.Lab) -> None:
        """The app restarted: jambonz only waits for the reconnect's ack; the greeting must not replay."""
        new: list[jl.Session] = []
        back: list[jl.Session] = []
        svc = lab.service("/")

        @svc.on("session:new")
        def greet(s: jl.Session) -> None:
            new.append(s)
            s.say(text="welcome").send()

        svc.on("session:reconnect", back.append)
        with FakeJambonz(lab.url, "stranger") as fj:
            msgid = fj.send("session:reconnect", call_data("stranger"))
            assert fj.recv() == {"type": "ack", "msgid": msgid}
            wait_until(lambda: back)
            fj.recv_none()
            assert back[0].call_sid == "stranger" and new == []
            back[0].say(text="where were we").send()  # the session takes commands at once
            assert fj.recv()["command"] == "redirect"
        assert lab_rows(lab, "reconnect")

    def test_a_second_socket_cannot_take_over_a_live_call(self, lab: jl.Lab) -> None:
        """A session:reconnect while the call's socket is open is refused (1008): no hijack."""
        svc = lab.service("/")

        @svc.on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/h", lambda msg: session.say(text="for the real socket").reply())
            session.answer().send()

        real = FakeJambonz(lab.url, "live")
        try:
            session = answered(lab, real)
            with FakeJambonz(lab.url, "live") as intruder:
                intruder.send("session:reconnect", call_data("live"))
                with pytest.raises(ConnectionClosed) as info:
                    intruder.recv()
                assert info.value.rcvd is not None and info.value.rcvd.code == 1008
            assert session.reconnects == 0 and session.state is not jl.CallState.DETACHED
            msgid = real.hook("/h")
            assert real.recv() == {
                "type": "ack",
                "msgid": msgid,
                "data": [{"verb": "say", "text": "for the real socket"}],
            }
            assert any("still open" in str(r["note"]) for r in lab_rows(lab, "protocol-error"))
        finally:
            real.close(1000)


class TestOpeners:
    def test_session_redirect_as_first_message_is_delivered_and_acked(self, lab: jl.Lab) -> None:
        svc = lab.service("/")
        got: list[jl.Session] = []

        @svc.on("session:redirect")
        def redirected(session: jl.Session) -> None:
            got.append(session)
            session.say(text="new app").send()

        with FakeJambonz(lab.url, "redir") as fj:
            msgid = fj.send("session:redirect", {"call_sid": "redir"}, hook="/next", call_sid=None)
            assert fj.recv() == {"type": "ack", "msgid": msgid, "data": [{"verb": "say", "text": "new app"}]}
        assert got[0].opened_by is jl.MessageType.SESSION_REDIRECT

    def test_unhandled_redirect_opener_is_acked_empty_after_grace(self, lab: jl.Lab) -> None:
        """Empty means 'carry on with the stack'; default verbs would replace it."""
        lab.service("/")
        with FakeJambonz(lab.url, "r2") as fj:
            msgid = fj.send("session:redirect", {"call_sid": "r2"}, hook="/next", call_sid=None)
            assert fj.recv() == {"type": "ack", "msgid": msgid}

    def test_adulting_is_acked_at_once_and_opens_a_session(self, lab: jl.Lab) -> None:
        got: list[jl.Session] = []
        lab.service("/").on("session:new", got.append)
        with FakeJambonz(lab.url + "/adulting", "b-leg") as fj:
            data = {"call_sid": "b-leg", "direction": "outbound", "parent_call_info": {"call_sid": "a"}}
            msgid = fj.send("session:adulting", data, call_sid=None)
            assert fj.recv() == {"type": "ack", "msgid": msgid}
            wait_until(lambda: got)
            got[0].say(text="hi b").send()
            assert fj.recv()["command"] == "redirect"
        assert got[0].call_sid == "b-leg"


class TestCommands:
    def test_inject_helpers_emit_the_shapes_the_feature_server_reads(self, lab: jl.Lab) -> None:
        lab.service("/").on("session:new", lambda s: s.answer().send())
        with FakeJambonz(lab.url, "cmd") as fj:
            session = answered(lab, fj)
            session.inject_dtmf("12#", call_sid="b-leg")
            assert fj.recv() == {
                "type": "command",
                "command": "dtmf",
                "queueCommand": False,
                "callSid": "b-leg",
                "data": {"dtmf": {"digit": "12#", "duration": 250}},
            }
            session.inject_sip_request("INFO", content_type="text/plain", content="hi")
            assert fj.recv()["data"] == {
                "sip_request": {"method": "INFO", "content_type": "text/plain", "content": "hi"}
            }
            session.inject_conf_participant_action("kick")
            assert fj.recv()["data"] == {"action": "kick"}
            session.inject_call_status("completed")
            assert fj.recv()["data"] == {"call_status": "completed"}
            session.send_tool_output("tc-1", {"type": "conversation.item.create"})
            assert fj.recv() == {
                "type": "command",
                "command": "llm:tool-output",
                "queueCommand": False,
                "tool_call_id": "tc-1",
                "data": {"type": "conversation.item.create"},
            }
            with pytest.raises(jl.CommandError, match="mute:status: status must be one of"):
                session.inject_mute("loud")
            fj.recv_none()

    def test_commands_before_the_first_send_wait_for_the_ack(self, lab: jl.Lab) -> None:
        """jambonz loses commands that arrive before the session:new ack: hold them."""

        @lab.service("/").on("session:new")
        def new(session: jl.Session) -> None:
            session.inject_record("startCallRecording", type="siprec")
            session.answer().send()

        with FakeJambonz(lab.url) as fj:
            fj.session_new()
            assert fj.recv()["type"] == "ack"
            assert fj.recv() == {
                "type": "command",
                "command": "record",
                "queueCommand": False,
                "data": {"action": "startCallRecording", "type": "siprec"},
            }

    def test_close_sends_1000_and_ends_the_session(self, lab: jl.Lab) -> None:
        lab.service("/").on("session:new", lambda s: s.answer().send())
        with FakeJambonz(lab.url, "bye") as fj:
            session = answered(lab, fj)
            session.close()
            with pytest.raises(ConnectionClosed):
                fj.recv(1)
            assert fj.ws.close_code == 1000
        assert session.closed
        with pytest.raises(jl.SessionClosed):
            session.inject_mute()


class TestTtsStreaming:
    def test_backpressure_sequence(self, lab: jl.Lab) -> None:
        """One tts:tokens in flight; full pauses, stream_resumed resends, ok releases the next."""
        lab.service("/").on("session:new", lambda s: s.answer().send())
        with FakeJambonz(lab.url, "tts") as fj:
            session = answered(lab, fj)
            session.tts_tokens("Hello ")
            assert fj.recv()["data"] == {"id": 1, "tokens": "Hello "}
            session.tts_tokens("world")
            session.tts_flush()
            fj.recv_none()
            fj.send("tts:tokens-result", {"id": 1, "status": "failed", "reason": "full"})
            fj.recv_none()
            fj.send("tts:streaming-event", {"event_type": "stream_resumed"})
            assert fj.recv()["data"] == {"id": 1, "tokens": "Hello "}
            fj.send("tts:tokens-result", {"id": 1, "status": "ok"})
            assert fj.recv()["data"] == {"id": 2, "tokens": "world"}
            fj.send("tts:tokens-result", {"id": 2, "status": "ok"})
            assert fj.recv() == {"type": "command", "command": "tts:flush", "queueCommand": False}
            session.tts_tokens("more")
            assert fj.recv()["data"] == {"id": 3, "tokens": "more"}
            session.tts_tokens("dropped")
            fj.send("tts:streaming-event", {"event_type": "user_interruption"})
            time.sleep(0.1)
            assert session.tts_pending == 0
            fj.recv_none()


def test_a_server_without_history_says_so_and_serves_on() -> None:
    """AppServer(history=None) keeps nothing: events/timeline/save raise one clear error."""
    from jambonz_lab import loop
    from jambonz_lab.net import AppServer

    server = AppServer()
    sessions: list[jl.Session] = []

    @server.service("/").on("session:new")
    def greet(s: jl.Session) -> None:
        sessions.append(s)
        s.say(text="hi").send()

    port = loop.submit(server.start("127.0.0.1", 0)).result(5)
    try:
        with FakeJambonz(f"ws://127.0.0.1:{port}/", "nohist") as fj:
            fj.session_new()
            assert fj.recv()["data"] == [{"verb": "say", "text": "hi"}]
            session = sessions[0]
            for read in (lambda: session.events, session.timeline, lambda: session.save("x.jsonl")):
                with pytest.raises(RuntimeError, match="keeps no event log"):
                    read()
            assert not session.closed
    finally:
        loop.submit(server.stop()).result(5)
