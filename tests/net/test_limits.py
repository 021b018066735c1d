"""Limits of a long-running server (issue 11 items 3–4): handshakes, pings, caps, blocked handlers, auth.

Real sockets on loopback: raw TCP for half-open connections, ``websockets`` clients
standing in for jambonz.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.protocol import State
from websockets.sync.client import connect
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.net.handlers import Workers
from jambonz_lab.net.limits import (
    AcceptFloodFilter,
    HandshakeGuard,
    basic_auth_ok,
    connection_cap,
    raise_descriptor_limit,
)
from jambonz_lab.sim import SimOptions
from tests.fakejambonz import FakeJambonz, call_data, lab_rows, wait_until
from tests.net.test_audio import AudioFork


def start(**options: object) -> jl.Lab:
    return jl.start(**{"grace": 0.3, **options})  # type: ignore[arg-type]


@pytest.fixture
def labs() -> Iterator[list[jl.Lab]]:
    started: list[jl.Lab] = []
    yield started
    for lab in started:
        lab.stop()


def deaf_client(url: str, port: int, first: dict[str, object]) -> socket.socket:
    """A WebSocket client that sends one frame and then never reads (so never answers a ping)."""
    proto = ClientProtocol(parse_uri(url), subprotocols=[Subprotocol("ws.jambonz.org")])
    proto.send_request(proto.connect())
    sock = socket.create_connection(("127.0.0.1", port), timeout=3)
    sock.sendall(b"".join(proto.data_to_send()))
    while proto.state is State.CONNECTING and proto.handshake_exc is None:
        data = sock.recv(65536)
        if not data:
            break
        proto.receive_data(data)
    assert proto.state is State.OPEN, proto.handshake_exc
    proto.send_text(json.dumps(first).encode())
    sock.sendall(b"".join(proto.data_to_send()))
    return sock


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class TestHandshakeTimeout:
    def test_a_silent_connection_is_closed_and_a_real_call_is_served(self, labs: list[jl.Lab]) -> None:
        lab = start(handshake_timeout=0.3)
        labs.append(lab)
        lab.service("/").on("session:new", lambda s: s.answer().send())
        silent = [socket.create_connection(("127.0.0.1", lab.port)) for _ in range(20)]
        half = socket.create_connection(("127.0.0.1", lab.port))
        half.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        try:
            with FakeJambonz(lab.url, "served") as fj:
                fj.session_new()
                assert fj.recv()["type"] == "ack"
            for sock in [*silent, half]:
                sock.settimeout(3)
                assert sock.recv(1) == b""  # closed by the server
            assert lab_rows(lab, "handshake-timeout")
        finally:
            for sock in [*silent, half]:
                sock.close()

    def test_the_guard_spares_greeted_handlers(self) -> None:
        class H:
            def __init__(self) -> None:
                self.aborted = False
                self.transport = self

            def abort(self) -> None:
                self.aborted = True

        guard = HandshakeGuard(1.0)
        quiet, talking = H(), H()
        assert guard.sweep([quiet, talking], now=0.0) == 0
        guard.greeted(talking)
        assert guard.sweep([quiet, talking], now=1.5) == 1
        assert quiet.aborted and not talking.aborted
        assert guard.sweep([talking], now=9.0) == 0  # the closed one is forgotten


class TestPings:
    def test_a_peer_that_never_answers_pings_is_dropped(self, labs: list[jl.Lab]) -> None:
        lab = start(ping_interval=0.2)
        labs.append(lab)
        lab.service("/").on("session:new", lambda s: s.answer().send())
        sock = deaf_client(
            lab.url,
            lab.port,
            {"type": "session:new", "msgid": "m1", "call_sid": "deaf", "data": call_data("deaf")},
        )
        try:
            wait_until(lambda: "deaf" in lab.server.sessions)
            session = lab.server.sessions["deaf"]
            wait_until(lambda: session.state is jl.CallState.DETACHED, timeout=5)  # no pong: dropped
            assert not session.closed  # a drop, not the end: jambonz would reconnect
        finally:
            sock.close()

    def test_a_peer_that_answers_pings_stays(self, labs: list[jl.Lab]) -> None:
        lab = start(ping_interval=0.1)
        labs.append(lab)
        lab.service("/").on("session:new", lambda s: s.answer().send())
        with FakeJambonz(lab.url, "pongs") as fj:
            fj.session_new()
            fj.recv()
            time.sleep(0.6)  # several pings answered by the websockets client
            session = lab.server.sessions["pongs"]
            assert session.state is not jl.CallState.DETACHED
            fj.hook("/h")
            assert fj.recv()["type"] == "ack"


class TestConnectionCap:
    def test_beyond_the_cap_upgrades_get_503_and_the_rest_go_on(self, labs: list[jl.Lab]) -> None:
        lab = start(max_connections=2)
        labs.append(lab)
        lab.service("/").on("session:new", lambda s: s.answer().send())
        with FakeJambonz(lab.url, "a") as a, FakeJambonz(lab.url, "b") as b:
            with pytest.raises(InvalidStatus) as info:
                FakeJambonz(lab.url, "c")
            assert info.value.response.status_code == 503
            for fj in (a, b):
                fj.session_new()
                assert fj.recv()["type"] == "ack"
        assert lab_rows(lab, "refused")
        wait_until(lambda: len(lab.server._connections) == 0)
        with FakeJambonz(lab.url, "d") as d:  # room again once the others closed
            d.session_new()
            assert d.recv()["type"] == "ack"

    def test_audio_sockets_count_toward_the_cap_and_free_their_slot_when_closed(
        self, labs: list[jl.Lab]
    ) -> None:
        """A listen/stream socket (mod_audio_fork's, as in tests/net/test_audio.py) takes a slot like a
        call socket: beyond the cap either kind gets 503; once the audio socket closed, one fits again."""
        lab = start(max_connections=2)
        labs.append(lab)
        lab.service("/").on("session:new", lambda s: s.answer().send())
        service = lab.audio("/audio")
        with FakeJambonz(lab.url, "call-a") as fj:
            fj.session_new()
            assert fj.recv()["type"] == "ack"
            first = AudioFork(f"{lab.url}/audio")
            try:
                waiter = service.wait_for_stream(timeout=5)
                first.metadata("call-a")
                stream = waiter.result()
                assert lab.server.open_sockets == 2
                with pytest.raises(InvalidStatus) as audio_refused:
                    AudioFork(f"{lab.url}/audio")
                assert audio_refused.value.response.status_code == 503
                with pytest.raises(InvalidStatus) as call_refused:
                    FakeJambonz(lab.url, "call-b")
                assert call_refused.value.response.status_code == 503
                notes = [r["note"] for r in lab_rows(lab, "refused")]
                assert len(notes) == 2 and "upgrade to /audio refused (503)" in notes[0]
                assert notes[0].startswith("2 sockets open, the cap is 2")
            finally:
                first.close()
            stream.wait_for("close", timeout=5).result()
            wait_until(lambda: lab.server.open_sockets == 1)
            second = AudioFork(f"{lab.url}/audio")  # the closed audio socket's slot is free again
            try:
                waiter = service.wait_for_stream(timeout=5)
                second.metadata("call-a")
                assert waiter.result().call_sid == "call-a"
            finally:
                second.close()

    def test_the_default_cap_leaves_headroom_under_the_descriptor_limit(self) -> None:
        soft = raise_descriptor_limit()
        assert soft is None or soft >= 1024
        assert connection_cap(None, 1024) == 1024 - 128
        assert connection_cap(50, 1024) == 50
        assert connection_cap(None, None) is None


class TestAcceptFlood:
    def test_out_of_descriptors_is_one_warning_per_interval(self, caplog: pytest.LogCaptureFixture) -> None:
        flt = AcceptFloodFilter(interval=60)
        loop = asyncio.new_event_loop()
        try:
            with caplog.at_level(logging.WARNING, logger="jambonz_lab.server"):
                for _ in range(10_000):
                    flt(loop, {"message": AcceptFloodFilter.MESSAGE, "exception": OSError(24, "EMFILE")})
            assert flt.count == 10_000
            assert len([r for r in caplog.records if "file descriptors" in r.getMessage()]) == 1
        finally:
            loop.close()


class TestBlockedHandlers:
    def test_forty_blocked_handlers_do_not_hold_up_the_forty_first_call(self, labs: list[jl.Lab]) -> None:
        lab = start(handler_threads=32, grace=2.0)
        labs.append(lab)
        release = threading.Event()

        def new(session: jl.Session) -> None:
            if session.call_sid.startswith("slow"):
                release.wait(30)
            session.say(text="hi").send()

        lab.service("/").on("session:new", new)
        slow = [FakeJambonz(lab.url, f"slow-{i}") for i in range(40)]
        try:
            for fj in slow:
                fj.session_new()
            wait_until(lambda: lab.server._workers.busy >= 40)
            with FakeJambonz(lab.url, "quick") as quick:
                sent = time.monotonic()
                quick.session_new()
                ack = quick.recv(3)
                waited = time.monotonic() - sent
            assert ack["data"] == [{"verb": "say", "text": "hi"}]  # its handler ran, not the grace ack
            assert waited < 0.5, waited  # stall 50 ms + a thread start; generous for a loaded CI machine
            assert lab_rows(lab, "handlers-blocked")
        finally:
            release.set()
            for fj in slow:
                fj.ws.close()

    def test_extra_threads_leave_when_idle(self) -> None:
        workers = Workers(1, max_size=4, stall=0.02, linger=0.1, name="t-grow")
        grew: list[tuple[int, int]] = []
        workers.on_grow = lambda threads, waiting: grew.append((threads, waiting))
        gate = threading.Event()
        done = threading.Semaphore(0)

        def blocked() -> None:
            gate.wait(5)
            done.release()

        def quick() -> None:
            done.release()

        workers.submit(blocked)
        workers.submit(quick)
        assert done.acquire(timeout=2)  # the quick job ran while the first one blocks
        wait_until(lambda: grew)  # reported after the thread started
        assert grew == [(2, 1)]
        gate.set()
        assert done.acquire(timeout=2)
        wait_until(lambda: workers.threads == 1, timeout=3)
        workers.shutdown()


class TestBasicAuth:
    def test_the_header_check(self) -> None:
        good = basic("jambonz", "s3cret")["Authorization"]
        assert basic_auth_ok(good, "jambonz", "s3cret")
        assert not basic_auth_ok(good, "jambonz", "other")
        assert not basic_auth_ok(None, "jambonz", "s3cret")
        assert not basic_auth_ok("Bearer abc", "jambonz", "s3cret")
        assert not basic_auth_ok("Basic !!notbase64", "jambonz", "s3cret")
        assert basic_auth_ok(good.replace("Basic", "basic"), "jambonz", "s3cret")

    def test_an_upgrade_without_credentials_gets_401(self, labs: list[jl.Lab]) -> None:
        lab = start(auth=("jambonz", "s3cret"))
        labs.append(lab)
        lab.service("/").on("session:new", lambda s: s.answer().send())
        for headers in ({}, basic("jambonz", "wrong")):
            with (
                pytest.raises(InvalidStatus) as info,
                connect(
                    lab.url,
                    subprotocols=["ws.jambonz.org"],  # type: ignore[list-item]
                    additional_headers=headers,
                ),
            ):
                pass
            assert info.value.response.status_code == 401
            assert "Basic" in info.value.response.headers["WWW-Authenticate"]
        assert len(lab_rows(lab, "auth-refused")) == 2
        ws = connect(
            lab.url,
            subprotocols=["ws.jambonz.org"],  # type: ignore[list-item]
            additional_headers=basic("jambonz", "s3cret"),
        )
        with ws:
            ws.send('{"type":"session:new","msgid":"m1","call_sid":"ok","data":{"call_sid":"ok"}}')
            assert '"ack"' in str(ws.recv(3))

    def test_the_simulator_sends_the_credentials_it_is_given(self, labs: list[jl.Lab]) -> None:
        lab = start(auth=("jambonz", "s3cret"))
        labs.append(lab)
        lab.service("/").on("session:new", lambda s: s.say(text="welcome").hangup().send())
        good = sim.call(lab.url + "/", options=SimOptions(username="jambonz", password="s3cret"))
        assert good.said == ["welcome"] and good.ok
        refused = sim.call(lab.url + "/", options=SimOptions(username="jambonz", password="nope"))
        assert not refused.ok and refused.said == []

    @pytest.mark.parametrize("bad", [("only",), ("", "x"), ("u", 5)])
    def test_bad_auth_option(self, bad: tuple[object, ...]) -> None:
        with pytest.raises(ValueError, match="auth"):
            jl.ServerOptions(auth=bad)  # type: ignore[arg-type]
