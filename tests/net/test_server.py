"""The app server over real loopback sockets: routing, handshake, acks, robustness."""

from __future__ import annotations

import json
import threading
import time

import pytest
from websockets.exceptions import InvalidStatus

import jambonz_lab as jl
from tests.fakejambonz import FakeJambonz, call_data, http, lab_rows, wait_until


class TestRouting:
    def test_selects_the_jambonz_subprotocol(self, lab: jl.Lab) -> None:
        """The server echoes ws.jambonz.org, which jambonz requires."""
        lab.service("/")
        with FakeJambonz(lab.url + "/") as fj:
            assert fj.ws.subprotocol == "ws.jambonz.org"

    def test_unknown_path_is_404_for_http_and_websocket(self, lab: jl.Lab) -> None:
        """Paths no service covers are answered 404, also for an upgrade."""
        lab.service("/echo")
        assert http("GET", lab.url + "/nothing")[0] == 404
        assert http("GET", lab.url + "/echoes")[0] == 404
        with pytest.raises(InvalidStatus) as info:
            FakeJambonz(lab.url + "/nothing")
        assert info.value.response.status_code == 404

    def test_longest_prefix_wins(self, lab: jl.Lab) -> None:
        """/a/b/adulting goes to /a/b, not to / or /a."""
        hits: list[str] = []
        for path in ("/", "/a", "/a/b"):
            lab.service(path).on("session:new", lambda s, p=path: hits.append(p))
        with FakeJambonz(lab.url + "/a/b/adulting") as fj:
            fj.session_new()
            wait_until(lambda: hits)
        assert hits == ["/a/b"]

    def test_options_answers_the_env_var_schema(self, lab: jl.Lab) -> None:
        """The portal's OPTIONS discovery gets the schema as a JSON object."""
        schema = {"GREETING": {"type": "string", "description": "What to say", "required": True}}
        lab.service("/app", env_vars=schema)
        status, body = http("OPTIONS", lab.url + "/app")
        assert status == 200
        assert json.loads(body) == schema

    def test_plain_get_on_a_service_asks_for_an_upgrade(self, lab: jl.Lab) -> None:
        lab.service("/app")
        status, body = http("GET", lab.url + "/app")
        assert status == 426
        assert "ws.jambonz.org" in body

    def test_bad_env_schema_is_refused_at_declaration(self, lab: jl.Lab) -> None:
        with pytest.raises(ValueError, match="description"):
            lab.service("/x", env_vars={"KEY": {"type": "string"}})


class TestSessionNew:
    def test_first_send_acks_session_new_then_sends_become_redirects(self, lab: jl.Lab) -> None:
        """send() #1 is the ack; later ones are redirect commands (queueCommand = not exec_immediate)."""
        sessions: list[jl.Session] = []

        @lab.service("/").on("session:new")
        def new(session: jl.Session) -> None:
            sessions.append(session)
            session.say(text="hello").send()

        with FakeJambonz(lab.url) as fj:
            msgid = fj.session_new()
            assert fj.recv() == {"type": "ack", "msgid": msgid, "data": [{"verb": "say", "text": "hello"}]}
            session = sessions[0]
            session.pause(length=1).send()
            assert fj.recv() == {
                "type": "command",
                "command": "redirect",
                "queueCommand": False,
                "data": [{"verb": "pause", "length": 1}],
            }
            session.hangup().send(exec_immediate=False)
            assert fj.recv()["queueCommand"] is True
            session.send()  # nothing queued: nothing sent
            fj.recv_none()

    def test_session_attributes_come_from_the_payload(self, lab: jl.Lab) -> None:
        got: list[jl.Session] = []
        lab.service("/").on("session:new", got.append)
        with FakeJambonz(lab.url, "sid-7") as fj:
            fj.session_new(env_vars={"GREETING": "hi"})
            wait_until(lambda: got)
        s = got[0]
        assert (s.call_sid, s.direction, s.from_, s.to, s.caller_name) == (
            "sid-7",
            "inbound",
            "+14155550100",
            "+16175550199",
            "Alice",
        )
        assert s.env_vars == {"GREETING": "hi"}
        assert s.data["sip"]["headers"]["X-Caller"] == "<b>Mallory</b>"

    def test_no_send_within_grace_acks_with_default_verbs(self, lab: jl.Lab) -> None:
        """A person typing cannot beat jambonz's 5 s: the lab acks with `answer` and says so."""
        lab.service("/")
        with FakeJambonz(lab.url) as fj:
            msgid = fj.session_new()
            ack = fj.recv()
        assert ack == {"type": "ack", "msgid": msgid, "data": [{"verb": "answer"}]}
        (row,) = lab_rows(lab, "auto-ack")
        assert row["note"] == "no send() within 0.3 s; acked session:new with 1 default verb(s)"

    def test_send_after_the_auto_ack_is_a_redirect(self, lab: jl.Lab) -> None:
        lab.service("/")
        with FakeJambonz(lab.url, "late") as fj:
            fj.session_new()
            fj.recv()
            lab.session("late").say(text="now").send()
            assert fj.recv()["command"] == "redirect"

    def test_coroutine_handlers_run_on_the_loop(self, lab: jl.Lab) -> None:
        names: list[str] = []

        @lab.service("/").on("session:new")
        async def new(session: jl.Session) -> None:
            names.append(threading.current_thread().name)
            session.answer().send()

        with FakeJambonz(lab.url) as fj:
            fj.session_new()
            assert fj.recv()["data"] == [{"verb": "answer"}]
        assert names == ["jambonz-lab-loop"]


class TestHooks:
    def test_two_hooks_in_flight_are_each_acked_with_their_own_msgid(self, lab: jl.Lab) -> None:
        """reply() in a handler acks that handler's hook, even when a later hook is in flight."""

        @lab.service("/").on("session:new")
        def new(session: jl.Session) -> None:
            def slow(msg: jl.Message) -> None:
                time.sleep(0.4)
                session.say(text="slow").reply()

            def fast(msg: jl.Message) -> None:
                session.say(text="fast").reply()

            session.on("/slow", slow)
            session.on("/fast", fast)
            session.answer().send()

        with FakeJambonz(lab.url) as fj:
            fj.session_new()
            fj.recv()
            m_slow = fj.hook("/slow")
            m_fast = fj.hook("/fast")
            first, second = fj.recv(), fj.recv()
        assert first == {"type": "ack", "msgid": m_fast, "data": [{"verb": "say", "text": "fast"}]}
        assert second == {"type": "ack", "msgid": m_slow, "data": [{"verb": "say", "text": "slow"}]}

    def test_hook_without_handler_is_acked_empty_at_once(self, lab: jl.Lab) -> None:
        lab.service("/").on("session:new", lambda s: s.answer().send())
        with FakeJambonz(lab.url) as fj:
            fj.session_new()
            fj.recv()
            msgid = fj.hook("/nobody")
            assert fj.recv() == {"type": "ack", "msgid": msgid}
        (row,) = [r for r in lab.log.rows() if r["direction"] == "out" and r["msgid"] == msgid]
        assert row["note"] == "auto"

    def test_handler_returning_without_reply_is_acked_empty(self, lab: jl.Lab) -> None:
        seen: list[str | None] = []

        @lab.service("/").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/quiet", lambda msg: seen.append(msg.digits))
            session.answer().send()

        with FakeJambonz(lab.url) as fj:
            fj.session_new()
            fj.recv()
            msgid = fj.hook("/quiet", reason="dtmfDetected", digits="42")
            assert fj.recv() == {"type": "ack", "msgid": msgid}
        assert seen == ["42"]

    def test_notifications_are_never_acked(self, lab: jl.Lab) -> None:
        """call:status, verb:status, jambonz:error, llm:*, tts:* get no ack."""
        lab.service("/").on("session:new", lambda s: s.answer().send())
        with FakeJambonz(lab.url) as fj:
            fj.session_new()
            fj.recv()
            for kind in (
                "call:status",
                "verb:status",
                "jambonz:error",
                "llm:event",
                "llm:tool-call",
                "tts:streaming-event",
                "tts:tokens-result",
            ):
                fj.send(kind, {"call_sid": fj.call_sid, "call_status": "in-progress"})
            msgid = fj.hook("/after")
            assert fj.recv()["msgid"] == msgid

    def test_second_reply_raises_already_replied(self, lab: jl.Lab) -> None:
        errors: list[jl.AlreadyReplied] = []

        @lab.service("/").on("session:new")
        def new(session: jl.Session) -> None:
            def twice(msg: jl.Message) -> None:
                session.reply()
                try:
                    session.reply()
                except jl.AlreadyReplied as exc:
                    errors.append(exc)

            session.on("/h", twice)
            session.answer().send()

        with FakeJambonz(lab.url) as fj:
            fj.session_new()
            fj.recv()
            msgid = fj.hook("/h")
            assert fj.recv() == {"type": "ack", "msgid": msgid}
            fj.recv_none()
        assert len(errors) == 1 and errors[0].msgid == msgid

    def test_reply_from_a_cell_after_the_auto_ack_says_what_happened(self, lab: jl.Lab) -> None:
        lab.service("/").on("session:new", lambda s: s.answer().send())
        with FakeJambonz(lab.url, "cell") as fj:
            fj.session_new()
            fj.recv()
            fj.hook("/gather")
            fj.recv()
            with pytest.raises(jl.AlreadyReplied, match="automatically acked; use send"):
                lab.session("cell").say(text="too late").reply()
            assert lab.session("cell").queued == [{"verb": "say", "text": "too late"}]

    def test_blocked_handler_does_not_delay_another_calls_ack(self, lab: jl.Lab) -> None:
        """A plain handler blocked (time.sleep-like) runs on a worker thread; call B is acked meanwhile."""
        release = threading.Event()

        @lab.service("/").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/block", lambda msg: release.wait(10))
            session.answer().send()

        with FakeJambonz(lab.url, "A") as a, FakeJambonz(lab.url, "B") as b:
            a.session_new()
            a.recv()
            blocked = a.hook("/block")
            wait_until(lambda: lab.session("A").pending() == [blocked])
            b.session_new()
            assert b.recv()["type"] == "ack"
            assert lab.session("A").pending() == [blocked]  # A's handler is still blocked
            release.set()
            assert a.recv() == {"type": "ack", "msgid": blocked}

    def test_a_hook_not_acked_in_time_is_reported_before_jambonz_gives_up(self) -> None:
        lab = jl.start(ack_warning=0.3)
        try:

            @lab.service("/").on("session:new")
            def new(session: jl.Session) -> None:
                session.on("/slow", lambda msg: time.sleep(1.0))
                session.answer().send()

            with FakeJambonz(lab.url) as fj:
                fj.session_new()
                fj.recv()
                msgid = fj.hook("/slow")
                wait_until(lambda: lab_rows(lab, "ack-late"))
                assert fj.recv()["msgid"] == msgid  # still acked, after the handler
            row = lab_rows(lab, "ack-late")[0]
            assert row["msgid"] == msgid and "jambonz gives up at 5 s" in str(row["note"])
        finally:
            lab.stop()


class TestRobustness:
    def test_bad_frames_are_recorded_and_the_socket_keeps_working(self, lab: jl.Lab) -> None:
        lab.service("/").on("session:new", lambda s: s.answer().send())
        with FakeJambonz(lab.url) as fj:
            fj.session_new()
            fj.recv()
            fj.ws.send("not json")
            fj.ws.send(b"\x00\x01binary")
            fj.ws.send(json.dumps({"msgid": "x", "data": {}}))
            fj.ws.send(json.dumps({"type": "agent:unknown", "msgid": "y"}))
            fj.ws.send(json.dumps({"type": "verb:hook", "hook": "/h", "data": {}}))
            fj.ws.send("[1, 2]")
            msgid = fj.hook("/still-alive")
            assert fj.recv() == {"type": "ack", "msgid": msgid}
        notes = [r["note"] for r in lab_rows(lab, "bad-frame")]
        assert len(notes) == 6
        assert "not JSON" in str(notes[0]) and "binary" in str(notes[1])
        assert "unknown message type 'agent:unknown'" in str(notes[3])

    def test_a_raising_handler_is_recorded_and_the_call_goes_on(
        self, lab: jl.Lab, capfd: pytest.CaptureFixture[str]
    ) -> None:
        """The error is logged and recorded, the hook acked, nothing printed."""

        @lab.service("/").on("session:new")
        def new(session: jl.Session) -> None:
            def boom(msg: jl.Message) -> None:
                raise RuntimeError("kaput")

            session.on("/boom", boom)
            session.answer().send()

        with FakeJambonz(lab.url) as fj:
            fj.session_new()
            fj.recv()
            msgid = fj.hook("/boom")
            assert fj.recv() == {"type": "ack", "msgid": msgid}
            msgid = fj.hook("/boom")
            assert fj.recv() == {"type": "ack", "msgid": msgid}
        rows = lab_rows(lab, "handler-error")
        assert len(rows) == 2 and "RuntimeError: kaput" in str(rows[0]["note"])
        out, err = capfd.readouterr()
        assert "kaput" not in out + err

    def test_frames_over_24_kib_are_refused_before_sending(self, lab: jl.Lab) -> None:
        lab.service("/").on("session:new", lambda s: s.answer().send())
        with FakeJambonz(lab.url, "big") as fj:
            fj.session_new()
            fj.recv()
            session = lab.session("big")
            session.say(text="x" * 25_000)
            with pytest.raises(jl.FrameTooLarge, match="over jambonz's 24576-byte limit") as info:
                session.send()
            fj.recv_none()
            assert session.queued == []  # nothing stays queued: the refused verbs are on the exception
            assert [v["verb"] for v in info.value.verbs] == ["say"]
            session.say(text="short").send()
            assert fj.recv()["data"] == [{"verb": "say", "text": "short"}]
        assert lab_rows(lab, "refused-frame")

    def test_large_incoming_frames_are_accepted(self, lab: jl.Lab) -> None:
        """session:new carries the whole INVITE; 200 KB must pass."""
        got: list[jl.Session] = []
        lab.service("/").on("session:new", got.append)
        with FakeJambonz(lab.url) as fj:
            fj.send("session:new", call_data("c", sip={"raw": "v=0\r\n" * 40_000}))
            fj.recv()
        assert len(got[0].data["sip"]["raw"]) == 200_000

    def test_invalid_verbs_raise_one_line_verb_errors(self, lab: jl.Lab) -> None:
        lab.service("/")
        with FakeJambonz(lab.url, "v") as fj:
            fj.session_new()
            fj.recv()
            session = lab.session("v")
            with pytest.raises(jl.VerbError) as info:
                session.say(txt="hi")
            assert str(info.value) == "say: unknown property 'txt' (did you mean 'text'?)"
            assert isinstance(info.value, ValueError)
            assert session.queued == []

    def test_messages_before_session_new_are_kept(self, lab: jl.Lab) -> None:
        """REST calls send call:status before session:new, without call_sid."""
        got: list[jl.Session] = []
        lab.service("/").on("session:new", got.append)
        with FakeJambonz(lab.url, "rest") as fj:
            fj.send("call:status", {"call_sid": "rest", "call_status": "ringing"}, call_sid=None)
            fj.session_new()
            fj.recv()
        assert [m.type.value for m in got[0].messages] == ["call:status", "session:new"]

    def test_jambonz_closing_1000_ends_the_session(self, lab: jl.Lab) -> None:
        closes: list[jl.SocketClose] = []

        @lab.service("/").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("close", closes.append)
            session.answer().send()

        with FakeJambonz(lab.url, "end") as fj:
            fj.session_new()
            fj.recv()
        wait_until(lambda: closes)
        assert closes == [jl.SocketClose(1000, True)]
        with pytest.raises(jl.SessionClosed):
            lab.session("end").say(text="gone").send()


class TestRedirectOnTheSameSocket:
    """A REST ``call_hook`` update sends ``session:redirect`` on the call's own socket, with the new
    URL as ``hook`` (call-session.js ``_lccCallHook`` ~1597; ws-requestor.js hands over only to
    http URLs, ~95): its ack's verbs replace the call's (``replaceApplication``, ~1642)."""

    def test_the_service_at_the_hooks_path_takes_the_session(self, lab: jl.Lab) -> None:
        lab.service("/first").on("session:new", lambda s: s.pause(length=60).send())
        taken: list[jl.Session] = []

        @lab.service("/after").on("session:redirect")
        def after(session: jl.Session) -> None:
            taken.append(session)
            session.say(text="after").send()  # acks the redirect

        with FakeJambonz(lab.url + "/first", call_sid="r-1") as fj:
            fj.session_new()
            fj.recv()
            msgid = fj.send("session:redirect", call_data("r-1"), hook=lab.url + "/after")
            assert fj.recv() == {"type": "ack", "msgid": msgid, "data": [{"verb": "say", "text": "after"}]}
        assert taken[0].call_sid == "r-1"
        assert "goes to service /after" in lab_rows(lab, "redirect")[0]["note"]

    def test_a_session_handler_for_the_redirect_wins_and_send_acks_it(self, lab: jl.Lab) -> None:
        lab.service("/after").on("session:new", lambda s: s.say(text="service").send())

        @lab.service("/first").on("session:new")
        def first(session: jl.Session) -> None:
            session.on("session:redirect", lambda msg: session.say(text="mine").send())
            session.pause(length=60).send()

        with FakeJambonz(lab.url + "/first", call_sid="r-2") as fj:
            fj.session_new()
            fj.recv()
            msgid = fj.send("session:redirect", call_data("r-2"), hook=lab.url + "/after")
            assert fj.recv() == {"type": "ack", "msgid": msgid, "data": [{"verb": "say", "text": "mine"}]}

    def test_a_redirect_to_a_path_no_service_serves_is_acked_empty(self, lab: jl.Lab) -> None:
        lab.service("/first").on("session:new", lambda s: s.pause(length=60).send())
        with FakeJambonz(lab.url + "/first", call_sid="r-3") as fj:
            fj.session_new()
            fj.recv()
            msgid = fj.send("session:redirect", call_data("r-3"), hook="ws://elsewhere.example/x")
            assert fj.recv() == {"type": "ack", "msgid": msgid}


def test_a_closed_socket_lets_go_of_aiohttps_objects(lab: jl.Lab) -> None:
    """A kept session (up to keep_sessions of them, for an hour) held its socket's aiohttp request,
    response and handler alive; once the socket is gone its connection holds a closed stand-in."""
    from aiohttp import web

    lab.service("/").on("session:new", lambda s: s.say(text="hi").send())
    with FakeJambonz(lab.url + "/", call_sid="let-go") as fj:
        fj.session_new()
        fj.recv()
        session = lab.session("let-go")
        assert isinstance(session._conn.ws, web.WebSocketResponse)  # type: ignore[attr-defined]
    wait_until(lambda: session.closed)
    wait_until(lambda: not isinstance(session._conn.ws, web.WebSocketResponse))  # type: ignore[attr-defined]
    assert session._conn.ws.closed  # type: ignore[attr-defined]
    with pytest.raises(jl.SessionClosed):
        session.say(text="too late").send()
