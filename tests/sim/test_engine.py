"""The simulator's transport and session rules (protocol doc §6), against our lab and misbehaving apps.

The misbehaving apps are small aiohttp servers written in each test (``FakeApp``): a script
per socket, run on the lab's loop next to the simulator. Raw TCP listeners stand in for
ports that refuse, drop, or never answer the upgrade.

Which behaviour each test class pins, with its feature-server source, is listed in
``docs/simulator-fidelity.md`` (the table that used to stand here).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import WSMsgType, web

import jambonz_lab as jl
from jambonz_lab import loop, sim
from jambonz_lab.sim import Caller, CallResult, Digits, SimOptions, Speech
from tests.fakejambonz import wait_until
from tests.simtrace import notes, sent

SUBPROTOCOL = "ws.jambonz.org"
FAST = SimOptions(ack_timeout=0.5, idle_wait=0.2)
IDLE_HALF = SimOptions(ack_timeout=0.5, idle_wait=0.5)  # commands sent while idle arrive in time


def run(coro: Awaitable[Any], timeout: float = 20.0) -> Any:
    """Run a coroutine on the lab's loop (where the simulator runs) and wait for it."""

    async def wrap() -> Any:
        return await coro

    return loop.submit(wrap()).result(timeout)


# -- a misbehaving app -------------------------------------------------------------------


class Gone(Exception):
    """The simulator closed the socket."""


class Conn:
    """One socket the simulator opened to a :class:`FakeApp`, seen from the app."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, index: int) -> None:
        self.ws = ws
        self.index = index
        self.headers = dict(request.headers)
        self.got: list[tuple[float, dict[str, Any]]] = []  # (monotonic time, message)
        self.wrote: list[tuple[float, Any]] = []
        self.close_code: int | None = None

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        frame = await self.ws.receive(timeout)
        if frame.type is not WSMsgType.TEXT:
            raise Gone(str(frame.type))
        msg: dict[str, Any] = json.loads(frame.data)
        self.got.append((time.monotonic(), msg))
        return msg

    async def until(self, type: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """Read until a message of ``type`` (and ``data`` fields equal to ``match``) arrives."""
        while True:
            msg = await self.recv(timeout)
            data = msg.get("data") or {}
            if msg["type"] == type and all(data.get(k) == v for k, v in match.items()):
                return msg

    async def write(self, obj: Any) -> None:
        text = obj if isinstance(obj, str) else json.dumps(obj)
        self.wrote.append((time.monotonic(), obj))
        await self.ws.send_str(text)

    async def ack(self, msg: dict[str, Any], data: Any = None, *, msgid: str | None = None) -> None:
        out: dict[str, Any] = {"type": "ack", "msgid": msgid or msg["msgid"]}
        if data is not None:
            out["data"] = data
        await self.write(out)

    async def command(self, name: str, data: Any = None, **extra: Any) -> None:
        await self.write({"type": "command", "command": name, "queueCommand": False, "data": data, **extra})

    async def close(self, code: int) -> None:
        await self.ws.close(code=code)

    async def drain(self) -> None:
        """Record every message until the simulator closes the socket."""
        while not self.ws.closed:
            try:
                await self.recv(30)
            except Gone:
                return

    def types(self) -> list[str]:
        return [m["type"] for _, m in self.got]


Script = Callable[[Conn], Awaitable[None]]


class FakeApp:
    """A jambonz app that misbehaves on purpose: ``script(conn)`` runs for each socket."""

    def __init__(self, script: Script, *, protocols: tuple[str, ...] = (SUBPROTOCOL,), status: int = 0):
        self.script = script
        self.protocols = protocols
        self.status = status
        self.conns: list[Conn] = []
        self.errors: list[BaseException] = []
        self.refuse_from: int | None = None  # upgrades from this socket index on: the TCP link is cut
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"ws://127.0.0.1:{self._runner.addresses[0][1]}/app"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.status:
            return web.Response(status=self.status, text="no\n")
        if self.refuse_from is not None and len(self.conns) >= self.refuse_from:
            if request.transport is not None:
                request.transport.abort()  # like a port that resets: no HTTP answer
            return web.Response(status=503)
        ws = web.WebSocketResponse(protocols=self.protocols, max_msg_size=0, autoping=True)
        await ws.prepare(request)
        conn = Conn(ws, request, len(self.conns))
        self.conns.append(conn)
        try:
            await self.script(conn)
            await conn.drain()
        except Gone:
            pass
        except Exception as exc:  # reported by the fixture
            self.errors.append(exc)
        finally:
            conn.close_code = ws.close_code
        return ws


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeApp]]:
    """Start FakeApps on the lab's loop; stop them and report script errors afterwards."""
    apps: list[FakeApp] = []

    def start(script: Script, **kw: Any) -> FakeApp:
        app = FakeApp(script, **kw)
        run(app.start())
        apps.append(app)
        return app

    yield start
    for app in apps:
        run(app.stop())
    errors = [e for app in apps for e in app.errors]
    assert not errors, f"fake app script failed: {errors!r}"


async def greet(conn: Conn, verbs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Read session:new and ack it (default: say hi); returns the session:new message."""
    new = await conn.until("session:new")
    await conn.ack(new, verbs if verbs is not None else [{"verb": "say", "text": "hi"}])
    return new


class Tcp:
    """A raw TCP listener: ``close`` drops each connection at once, ``mute`` never answers."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.accepted: list[float] = []
        self.dropped: list[float] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _on(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(time.monotonic())
        if self.mode == "mute":
            while await reader.read(4096):
                pass
            self.dropped.append(time.monotonic())
        writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
def tcp() -> Iterator[Callable[[str], Tcp]]:
    listeners: list[Tcp] = []

    def start(mode: str) -> Tcp:
        listener = Tcp(mode)
        run(listener.start())
        listeners.append(listener)
        return listener

    yield start
    for listener in listeners:
        run(listener.stop())


# -- reading a result ----------------------------------------------------------------------


def sim_kinds(result: CallResult) -> list[str]:
    return [e.type for e in result.messages("sim")]


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rejected(result: CallResult, reason: str) -> None:
    assert (result.final_status, result.sip_status, result.termination_by) == ("failed", 480, "jambonz")
    assert notes(result, "rejected") == [f"call rejected with 480 (X-Reason: {reason})"]


# -- §1 ------------------------------------------------------------------------------------


class TestHandshake:
    def test_refuses_an_app_that_selects_no_subprotocol(self, fake: Callable[..., FakeApp]) -> None:
        """The handshake fails unless the app echoes ws.jambonz.org: no session:new is sent."""
        app = fake(greet, protocols=())
        result = sim.call(app.url, options=FAST)
        assert result.errors == ["cannot connect: ConnectionError: Server sent no subprotocol"]
        rejected(result, "cannot connect: ConnectionError: Server sent no subprotocol")
        assert sent(result) == []
        assert [c.got for c in app.conns] == [[]]

    def test_offers_the_subprotocol_and_sends_basic_auth_when_configured(
        self, fake: Callable[..., FakeApp]
    ) -> None:
        """Authorization: Basic base64(user:pass) only when a username is configured."""
        app = fake(greet)
        sim.call(app.url, options=SimOptions(ack_timeout=0.5, idle_wait=0.2, username="ann", password="p:w"))
        sim.call(app.url, options=FAST)
        with_auth, without = app.conns[0].headers, app.conns[1].headers
        assert with_auth["Authorization"] == "Basic " + base64.b64encode(b"ann:p:w").decode()
        assert "Authorization" not in without
        assert with_auth["Sec-WebSocket-Protocol"] == SUBPROTOCOL
        assert with_auth["User-Agent"] == "jambonz"

    def test_rc2_against_a_refused_port_makes_three_attempts(self) -> None:
        """Connection refused is retried (rp=ct) rc times with the 0.5 s, 1 s backoff."""
        result = sim.call(f"ws://127.0.0.1:{refused_port()}/app#rc=2", options=FAST)
        retries = notes(result, "connect-retry")
        assert len(retries) == 2
        assert retries[0].endswith("retry in 0.5 s") and retries[1].endswith("retry in 1 s")
        assert result.errors[0].startswith("cannot connect: ConnectionRefusedError")
        assert result.trace[-1].t == pytest.approx(1.5)
        assert result.sip_status == 480

    @pytest.mark.parametrize(
        ("fragment", "attempts"),
        [("#rc=2", 3), ("#rc=1&rp=ct", 2), ("", 6), ("#rc=0", 6), ("#rc=9", 6), ("#rc=-1", 2), ("#rc=x", 6)],
    )
    def test_rc_counts_attempts_against_a_port_that_drops_the_connection(
        self, tcp: Callable[[str], Tcp], fragment: str, attempts: int
    ) -> None:
        """1 + min(|rc| or 5, 5) attempts against a port that drops the upgrade (ECONNRESET)."""
        port = tcp("close")
        result = sim.call(f"ws://127.0.0.1:{port.port}/app{fragment}", options=FAST)
        assert len(port.accepted) == attempts
        assert len(notes(result, "connect-retry")) == attempts - 1
        assert result.sip_status == 480

    def test_rp_without_ct_does_not_retry_a_dropped_connection(self, tcp: Callable[[str], Tcp]) -> None:
        """A policy list without ct leaves a dropped connection unretried."""
        port = tcp("close")
        sim.call(f"ws://127.0.0.1:{port.port}/app#rc=3&rp=5xx", options=FAST)
        assert len(port.accepted) == 1

    def test_handshake_times_out_after_1_5_s_and_is_not_retried_by_default(
        self, tcp: Callable[[str], Tcp]
    ) -> None:
        """A server that never answers the upgrade is dropped after 1.5 s; rp=ct does not retry it."""
        mute = tcp("mute")
        result = sim.call(f"ws://127.0.0.1:{mute.port}/app#rc=3", options=FAST)
        wait_until(lambda: mute.dropped)
        assert len(mute.accepted) == 1
        assert 1.4 <= mute.dropped[0] - mute.accepted[0] < 2.5
        assert result.errors[0].startswith("cannot connect: TimeoutError")
        assert result.sip_status == 480

    def test_handshake_timeout_is_retried_with_rp_all(self, tcp: Callable[[str], Tcp]) -> None:
        """rp=all retries the handshake timeout too (rc=1: two attempts)."""
        mute = tcp("mute")
        options = SimOptions(ack_timeout=0.5, idle_wait=0.2, handshake_timeout=0.3)
        result = sim.call(f"ws://127.0.0.1:{mute.port}/app#rc=1&rp=all", options=options)
        assert len(mute.accepted) == 2
        assert len(notes(result, "connect-retry")) == 1

    @pytest.mark.parametrize(
        ("fragment", "attempts"), [("#rc=1&rp=5xx", 2), ("#rc=1", 1), ("#rc=1&rp=4xx", 1)]
    )
    def test_http_status_on_the_upgrade_is_retried_only_with_its_policy(
        self, fake: Callable[..., FakeApp], fragment: str, attempts: int
    ) -> None:
        """A 503 on the upgrade is retried only under rp=5xx."""
        hits: list[int] = []

        async def never(conn: Conn) -> None:
            hits.append(1)

        app = fake(never, status=503)
        result = sim.call(app.url + fragment, options=FAST)
        assert len(notes(result, "connect-retry")) == attempts - 1
        assert result.errors[0].startswith("cannot connect: InvalidStatus")
        assert hits == []


# -- §2, §13 ---------------------------------------------------------------------------------


def seq(result: CallResult) -> list[tuple[str, str]]:
    """Messages both ways as (type, detail): call_status / verb:status event+name / command."""
    out = []
    for e in result.trace:
        if e.direction == "sim":
            continue
        p = e.payload
        data: Any = p.get("data") if isinstance(p, dict) else None
        if e.type == "call:status":
            detail = data["call_status"] if e.direction == "sent" else "command"
        elif e.type == "verb:status":
            if "name" not in data:  # a task's own events (start-playback, …) name it by "verb"
                continue
            detail = f"{data['event']} {data['name']}"
        elif e.type in ("session:new", "verb:hook"):
            detail = p.get("hook") or ""
        else:
            detail = ""
        out.append((f"{'>' if e.direction == 'sent' else '<'}{e.type}", detail))
    return out


class TestSequence:
    def test_canonical_inbound_sequence(self, lab: jl.Lab) -> None:
        """session:new → ack → trying → [verb:status] → in-progress → … → idle → completed → close 1000."""
        closes: list[jl.SocketClose] = []

        @lab.service("/app").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("close", closes.append)
            session.config(notifyEvents=True).say(text="Hello there").send()

        result = sim.call(lab.url + "/app", Caller(hangup_after=10), options=FAST)
        assert seq(result) == [
            (">session:new", ""),
            ("<ack", ""),
            (">call:status", "trying"),
            (">verb:status", "finished config"),
            (">verb:status", "starting say"),
            (">call:status", "in-progress"),
            (">verb:status", "finished say"),
            (">call:status", "completed"),
        ]
        completed = sent(result, "call:status")[-1]
        assert completed["call_sid"] == result.call_sid
        assert {
            k: completed["data"][k] for k in ("call_termination_by", "duration", "sip_status", "headers")
        } == {
            "call_termination_by": "caller",
            "duration": 10,
            "sip_status": 200,
            "headers": {"reason": "Q.850;cause=16"},
        }
        assert all(len(m["msgid"]) == 22 and "hook" not in m for m in sent(result))
        assert result.heard == [("say", "Hello there")]
        wait_until(lambda: closes)
        assert closes[0].code == 1000

    def test_verb_status_starting_precedes_in_progress(self, lab: jl.Lab) -> None:
        """verb:status starting is sent before the answer's call:status in-progress (a gather here)."""

        @lab.service("/app").on("session:new")
        def new(session: jl.Session) -> None:
            session.config(notifyEvents=True).gather(id="g1", input=["digits"], say={"text": "Press"}).send()

        result = sim.call(lab.url + "/app", Caller(inputs=[Digits("1")], hangup_after=30), options=FAST)
        kinds = seq(result)
        assert kinds.index((">verb:status", "starting gather")) + 1 == kinds.index(
            (">call:status", "in-progress")
        )
        starting = [m["data"] for m in sent(result, "verb:status") if m["data"]["event"] == "starting"]
        assert starting == [{"event": "starting", "name": "gather", "id": "g1"}]

    def test_no_ack_messages_interleave_with_a_pending_hook(self, fake: Callable[..., FakeApp]) -> None:
        """A jambonz:error (no ack) goes out while the gather hook still waits for its ack."""

        async def script(conn: Conn) -> None:
            await greet(conn, [{"verb": "gather", "input": ["digits"], "actionHook": "/g"}])
            hook = await conn.until("verb:hook")
            await conn.write("oops")
            await conn.until("jambonz:error")
            await conn.ack(hook, [{"verb": "say", "text": "got it"}])

        app = fake(script)
        result = sim.call(app.url, Caller(inputs=[Digits("1")], hangup_after=30), options=FAST)
        assert app.conns[0].types()[-3:] == ["verb:hook", "jambonz:error", "call:status"]
        assert result.heard == [("say", "got it")]
        assert notes(result, "ack-timeout") == []

    def test_idle_empty_stack_keeps_the_call_up(self, lab: jl.Lab) -> None:
        """An empty stack idles silently until the caller hangs up (42 s on the virtual clock)."""

        @lab.service("/app").on("session:new")
        def new(session: jl.Session) -> None:
            session.say(text="Hi").send()

        result = sim.call(lab.url + "/app", Caller(hangup_after=42), options=FAST)
        assert (result.final_status, result.termination_by, result.duration) == ("completed", "caller", 42)
        assert result.statuses() == ["trying", "in-progress", "completed"]
        assert sim_kinds(result).count("idle") == 1
        last = result.messages("sent", "call:status")[-1]
        assert last.t == 42.0
        assert last.payload["data"]["duration"] == 42

    def test_idle_unanswered_call_keeps_ringing(self, lab: jl.Lab) -> None:
        """A stack without media verbs never answers; the caller gives up: no-answer 487."""

        @lab.service("/app").on("session:new")
        def new(session: jl.Session) -> None:
            session.pause(length=2).send()

        result = sim.call(lab.url + "/app", Caller(hangup_after=30), options=FAST)
        assert result.statuses() == ["trying", "no-answer"]
        last = sent(result, "call:status")[-1]["data"]
        assert (last["sip_status"], last["sip_reason"], last["call_termination_by"]) == (
            487,
            "Request Terminated",
            "caller",
        )
        assert result.messages("sent", "call:status")[-1].t == 30.0

    def test_call_status_completed_command_ends_the_call(self, lab: jl.Lab) -> None:
        """The call:status {call_status: completed} command hangs up at once."""

        @lab.service("/app").on("session:new")
        def new(session: jl.Session) -> None:
            def status(msg: jl.Message) -> None:
                if msg.call_status == "in-progress":
                    session.inject_call_status("completed")

            session.on("call:status", status)
            session.say(text="Hi").send()

        result = sim.call(lab.url + "/app", Caller(hangup_after=100), options=SimOptions(idle_wait=2.0))
        assert (result.final_status, result.termination_by) == ("completed", "jambonz")
        assert result.duration < 5
        assert ("<call:status", "command") in seq(result)


# -- §3 ---------------------------------------------------------------------------------------


def acks_only_session_new(verbs: list[dict[str, Any]]) -> Script:
    async def script(conn: Conn) -> None:
        await greet(conn, verbs)

    return script


class TestForgottenReply:
    def test_unacked_gather_hook_sends_error_and_error_status(self, fake: Callable[..., FakeApp]) -> None:
        """After the ack timeout: jambonz:error + a call:status with error; the next verb runs."""
        gather = {"verb": "gather", "id": "g1", "input": ["digits"], "numDigits": 1, "actionHook": "/g"}
        app = fake(acks_only_session_new([gather, {"verb": "say", "text": "after"}]))
        result = sim.call(app.url, Caller(inputs=[Digits("7")], hangup_after=60), options=FAST)
        hook = result.messages("sent", "verb:hook")[0]
        error = result.messages("sent", "jambonz:error")[0]
        assert error.payload["data"] == {"msg": "invalid actionHook response", "verb": "gather", "id": "g1"}
        assert error.t - hook.t >= 0.5
        status = sent(result, "call:status")[2]["data"]
        # gather.js ~1437: reason is err.message; the ack timeout rejects with a string, so no reason
        assert (status["error"], status["call_status"]) == ("invalid actionHook response", "in-progress")
        assert "reason" not in status
        assert result.heard == [("say", "after")]
        assert len(notes(result, "ack-timeout")) == 1

    def test_unacked_redirect_verb_hangs_up_the_call(self, fake: Callable[..., FakeApp]) -> None:
        """An unacked session:redirect from the redirect verb ends the call."""
        verbs = [
            {"verb": "say", "text": "one"},
            {"verb": "redirect", "actionHook": "/r"},
            {"verb": "say", "text": "x"},
        ]
        app = fake(acks_only_session_new(verbs))
        result = sim.call(app.url, Caller(hangup_after=60), options=FAST)
        assert [m["hook"] for m in sent(result, "session:redirect")] == ["/r"]
        assert result.heard == [("say", "one")]
        assert (result.final_status, result.termination_by) == ("completed", "jambonz")
        assert "session:redirect not acked: the call is hung up" in result.errors

    def test_unacked_play_action_hook_stalls_then_continues(self, fake: Callable[..., FakeApp]) -> None:
        """An unacked play actionHook stalls for the timeout, then the stack goes on."""
        verbs = [
            {"verb": "play", "url": "https://x.test/a.wav", "actionHook": "/p"},
            {"verb": "say", "text": "after"},
        ]
        app = fake(acks_only_session_new(verbs))
        result = sim.call(app.url, Caller(hangup_after=60), options=FAST)
        assert result.heard == [("play", "https://x.test/a.wav"), ("say", "after")]
        assert sent(result, "jambonz:error") == []
        assert len(notes(result, "ack-timeout")) == 1
        hook = result.messages("sent", "verb:hook")[0]
        assert hook.payload["data"]["reason"] == "playCompleted"


# -- §4 ---------------------------------------------------------------------------------------


class TestAckSemantics:
    def test_non_empty_ack_replaces_the_stack(self, lab: jl.Lab) -> None:
        """Verbs in a hook's ack replace what was left of the stack."""

        @lab.service("/app").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/g", lambda msg: session.say(text="replaced").reply())
            session.gather(input=["speech"], actionHook="/g").say(text="skipped").send()

        result = sim.call(lab.url + "/app", Caller.saying("hello", hangup_after=60), options=FAST)
        assert result.heard == [("say", "replaced")]

    def test_empty_ack_continues_the_stack(self, lab: jl.Lab) -> None:
        """An empty ack carries on with the stack."""

        @lab.service("/app").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/g", lambda msg: session.reply())
            session.gather(input=["speech"], actionHook="/g").say(text="next").send()

        result = sim.call(lab.url + "/app", Caller.saying("hello", hangup_after=60), options=FAST)
        assert result.heard == [("say", "next")]
        assert notes(result, "ack-timeout") == []

    def test_empty_ack_to_the_redirect_verb_continues_the_stack(self, lab: jl.Lab) -> None:
        """An empty session:redirect ack leaves the stack as it was."""

        @lab.service("/app").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/r", lambda msg: session.reply())
            session.say(text="one").redirect(actionHook="/r").say(text="two").send()

        result = sim.call(lab.url + "/app", Caller(hangup_after=60), options=FAST)
        assert result.heard == [("say", "one"), ("say", "two")]

    def test_late_ack_is_discarded(self, fake: Callable[..., FakeApp]) -> None:
        """An ack after the timeout is logged 'ack to unknown msgid' and its verbs are lost."""

        async def script(conn: Conn) -> None:
            gathers = [
                {"verb": "gather", "input": ["digits"], "actionHook": "/g1"},
                {"verb": "gather", "input": ["digits"], "actionHook": "/g2"},
            ]
            await greet(conn, gathers)
            first = await conn.until("verb:hook")
            await asyncio.sleep(0.7)
            await conn.ack(first, [{"verb": "say", "text": "late"}])
            second = await conn.until("verb:hook")
            await conn.ack(second, [{"verb": "say", "text": "on time"}])

        app = fake(script)
        result = sim.call(app.url, Caller(inputs=[Digits("1"), Digits("2")], hangup_after=60), options=FAST)
        first = sent(result, "verb:hook")[0]["msgid"]
        assert notes(result, "ack-discarded") == [f"ack to unknown msgid {first}, discarding"]
        assert result.heard == [("say", "on time")]

    def test_ack_with_a_wrong_msgid_is_discarded(self, fake: Callable[..., FakeApp]) -> None:
        """An ack to session:new with another msgid is discarded: session:new times out (480, close 1001)."""

        async def script(conn: Conn) -> None:
            new = await conn.until("session:new")
            await conn.ack(new, [{"verb": "say", "text": "hi"}], msgid="not-" + new["msgid"])

        app = fake(script)
        result = sim.call(app.url, options=FAST)
        wrong = "not-" + sent(result, "session:new")[0]["msgid"]
        assert notes(result, "ack-discarded") == [f"ack to unknown msgid {wrong}, discarding"]
        rejected(result, "session:new not acked in time")
        assert result.heard == []
        assert app.conns[0].close_code == 1001

    def test_command_instead_of_ack_still_times_out(self, fake: Callable[..., FakeApp]) -> None:
        """A queued redirect sent in place of the gather ack: the hook times out, then the verbs run."""

        async def script(conn: Conn) -> None:
            await greet(conn, [{"verb": "gather", "input": ["digits"], "actionHook": "/g"}])
            await conn.until("verb:hook")
            await conn.write(
                {
                    "type": "command",
                    "command": "redirect",
                    "queueCommand": True,
                    "data": [{"verb": "say", "text": "queued"}],
                }
            )

        app = fake(script)
        result = sim.call(app.url, Caller(inputs=[Digits("1")], hangup_after=60), options=FAST)
        hook = result.messages("sent", "verb:hook")[0]
        error = result.messages("sent", "jambonz:error")[0]
        assert error.payload["data"]["msg"] == "invalid actionHook response"
        assert error.t - hook.t >= 0.5
        assert notes(result, "ack-timeout") == [f"timeout from far end for msgid {hook.msgid}"]
        assert result.heard == [("say", "queued")]


# -- §5 ---------------------------------------------------------------------------------------


GATHER_PARTIAL = {
    "verb": "gather",
    "input": ["speech"],
    "actionHook": "/final",
    "partialResultHook": "/partial",
}


class TestConcurrentHooks:
    def test_acking_only_the_latest_hook_times_out_the_earlier_one(
        self, fake: Callable[..., FakeApp]
    ) -> None:
        """NCW-style: one msgid remembered; the partialResultHook never gets its ack."""

        async def script(conn: Conn) -> None:
            await greet(conn, [GATHER_PARTIAL])
            latest: dict[str, Any] = {}
            while latest.get("hook") != "/final":
                latest = await conn.until("verb:hook")
            await conn.ack(latest, [{"verb": "say", "text": "ok"}])

        app = fake(script)
        options = SimOptions(ack_timeout=0.5, idle_wait=1.0)
        result = sim.call(app.url, Caller.saying("book a car", hangup_after=60), options=options)
        hooks = {m["hook"]: m["msgid"] for m in sent(result, "verb:hook")}
        assert list(hooks) == ["/partial", "/final"]
        assert notes(result, "ack-timeout") == [f"timeout from far end for msgid {hooks['/partial']}"]
        assert result.heard == [("say", "ok")]

    def test_acking_each_hook_leaves_nothing_pending(self, lab: jl.Lab) -> None:
        """Our lab acks every in-flight hook on its own."""

        @lab.service("/app").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/partial", lambda msg: None)
            session.on("/final", lambda msg: session.say(text=f"you said {msg.transcript}").reply())
            session.extend([GATHER_PARTIAL]).send()

        options = SimOptions(ack_timeout=0.5, idle_wait=1.0)
        result = sim.call(lab.url + "/app", Caller.saying("book a car", hangup_after=60), options=options)
        assert [m["hook"] for m in sent(result, "verb:hook")] == ["/partial", "/final"]
        assert len(result.messages("received", "ack")) == 3
        assert notes(result, "ack-timeout") == []
        assert result.heard == [("say", "you said book a car")]


# -- §6 ---------------------------------------------------------------------------------------


class TestReconnect:
    def test_close_1011_reconnects_with_the_original_payload_and_holds_messages(
        self, fake: Callable[..., FakeApp]
    ) -> None:
        """Drop with 1011 mid-hook: the hook is abandoned; session:reconnect comes first; the rest waits."""
        acked_at: list[float] = []

        async def script(conn: Conn) -> None:
            if conn.index == 0:
                await greet(conn, [{"verb": "gather", "id": "g", "input": ["digits"], "actionHook": "/g"}])
                await conn.until("verb:hook")
                await conn.close(1011)
                return
            again = await conn.recv()
            await asyncio.sleep(0.2)
            acked_at.append(time.monotonic())
            await conn.ack(again, [{"verb": "say", "text": "ignored"}])
            await conn.until("call:status", error="invalid actionHook response")
            await conn.command("redirect", [{"verb": "say", "text": "back"}, {"verb": "hangup"}])

        app = fake(script)
        options = SimOptions(ack_timeout=0.5, idle_wait=1.0)
        result = sim.call(app.url, Caller(inputs=[Digits("1")], hangup_after=60), options=options)
        first, second = app.conns
        assert first.close_code == 1011
        new = first.got[0][1]
        assert second.got[0][1]["type"] == "session:reconnect"
        assert second.got[0][1]["data"] == new["data"]
        assert second.got[0][1]["call_sid"] == new["call_sid"]
        assert all(t >= acked_at[0] for t, _ in second.got[1:])
        assert second.types()[1:3] == ["jambonz:error", "call:status"]
        assert any(n.startswith("abandoning msgid") for n in notes(result, "abandoned"))
        assert result.heard == [("say", "back")]
        assert (result.final_status, result.termination_by) == ("completed", "jambonz")

    def test_unacked_session_reconnect_hangs_up(self, fake: Callable[..., FakeApp]) -> None:
        """No ack to session:reconnect within the timeout: jambonz hangs up (call-session.js ~2258–2274,
        ws-requestor.js ~286, ~304); the final call:status still goes out on the new socket."""

        async def script(conn: Conn) -> None:
            if conn.index == 0:
                await greet(conn)
                await conn.until("call:status", call_status="in-progress")
                await conn.close(1011)

        app = fake(script)
        options = SimOptions(ack_timeout=0.5, idle_wait=3.0)
        t0 = time.monotonic()
        result = sim.call(app.url, Caller(hangup_after=600), options=options)
        assert time.monotonic() - t0 < 2.5
        assert [c.got[0][1]["type"] for c in app.conns] == ["session:new", "session:reconnect"]
        assert app.conns[1].types() == ["session:reconnect", "call:status"]
        assert app.conns[1].got[1][1]["data"]["call_status"] == "completed"
        assert "session:reconnect not acked; call hung up" in result.errors
        assert (result.final_status, result.termination_by) == ("completed", "jambonz")

    def test_close_1000_stops_sending_and_ends_when_the_stack_empties(
        self, fake: Callable[..., FakeApp]
    ) -> None:
        """After a 1000 close nothing more is sent, there is no reconnect, and the stack runs out."""

        async def script(conn: Conn) -> None:
            await greet(
                conn,
                [{"verb": "gather", "input": ["digits"], "actionHook": "/g"}, {"verb": "say", "text": "z"}],
            )
            await conn.until("verb:hook")
            await conn.close(1000)

        app = fake(script)
        result = sim.call(app.url, Caller(inputs=[Digits("1")], hangup_after=60), options=FAST)
        closed_at = result.trace.index(result.messages("sim", "app-closed")[0])
        assert [e for e in result.trace[closed_at:] if e.direction == "sent"] == []
        assert len(app.conns) == 1
        assert notes(result, "socket-closed") == []
        assert result.heard == [("say", "z")]
        assert (result.final_status, result.termination_by) == ("completed", "jambonz")

    def test_close_1000_with_a_hook_pending_fails_it_after_the_timeout(
        self, fake: Callable[..., FakeApp]
    ) -> None:
        """A 1000 close leaves the hooks in flight: each fails when its 5 s pass, it is not resolved
        empty (ws-requestor.js ~422–432 keeps messagesInFlight, ~266–270 the timer fails it)."""

        async def script(conn: Conn) -> None:
            await greet(conn, [{"verb": "gather", "input": ["digits"], "actionHook": "/g"}])
            hook = await conn.until("verb:hook")
            conn.hook_msgid = hook["msgid"]  # type: ignore[attr-defined]
            await conn.close(1000)

        app = fake(script)
        result = sim.call(app.url, Caller(inputs=[Digits("1")], hangup_after=60), options=FAST)
        kinds = sim_kinds(result)
        assert kinds.index("app-closed") < kinds.index("ack-timeout")
        msgid = app.conns[0].hook_msgid  # type: ignore[attr-defined]
        assert notes(result, "ack-timeout") == [f"timeout from far end for msgid {msgid}"]

    def test_reconnect_backoff_grows_by_2_s_and_never_gives_up(self, fake: Callable[..., FakeApp]) -> None:
        """Each failed reconnect is another drop: the wait doubles to 2 s, then grows by 2 s, with no
        give-up count; the call lasts until the caller hangs up (ws-requestor.js ~38, ~450–459, ~479)."""

        async def script(conn: Conn) -> None:
            await greet(conn)
            await conn.until("call:status", call_status="in-progress")
            app.refuse_from = 1
            await conn.close(1011)

        app = fake(script)
        result = sim.call(
            app.url, Caller(hangup_after=300), options=SimOptions(ack_timeout=0.5, idle_wait=3.0)
        )
        waits = [n.rsplit("retry in ", 1)[1] for n in notes(result, "reconnect-failed")]
        assert waits[:7] == ["1 s", "2 s", "4 s", "6 s", "8 s", "10 s", "12 s"]
        assert len(app.conns) == 1
        assert (result.termination_by, result.duration) == ("caller", 300)

    def test_close_1000_while_idle_leaves_dead_air_until_the_caller_hangs_up(
        self, fake: Callable[..., FakeApp]
    ) -> None:
        """Nothing wakes an idle call after a graceful close: it lasts until hangup_after (virtual)."""

        async def script(conn: Conn) -> None:
            await greet(conn)
            await conn.until("call:status", call_status="in-progress")
            await asyncio.sleep(0.1)
            await conn.close(1000)

        app = fake(script)
        result = sim.call(
            app.url, Caller(hangup_after=25), options=SimOptions(ack_timeout=0.5, idle_wait=1.0)
        )
        assert notes(result, "app-closed") == ["app closed with 1000; jambonz stops sending for this call"]
        assert (result.final_status, result.termination_by, result.duration) == ("completed", "caller", 25)
        assert result.statuses() == ["trying", "in-progress"]


# -- §7 ---------------------------------------------------------------------------------------


def say_frame(msgid: str, size: int) -> str:
    """An ack frame with one say verb, padded to exactly ``size`` bytes."""
    head = json.dumps({"type": "ack", "msgid": msgid, "data": [{"verb": "say", "text": ""}]})
    return head.replace('"text": ""', '"text": "' + "a" * (size - len(head)) + '"')


class TestPayloadLimit:
    def test_frame_over_24_kib_closes_1009_and_reconnects(self, fake: Callable[..., FakeApp]) -> None:
        """The oversized session:new ack is a drop: reconnect, and the reconnect ack gives the verbs."""

        async def script(conn: Conn) -> None:
            msg = await conn.recv()
            if conn.index == 0:
                await conn.write(say_frame(msg["msgid"], 24 * 1024 + 1))
            else:
                await conn.ack(msg, [{"verb": "say", "text": "short"}])

        app = fake(script)
        result = sim.call(app.url, Caller(hangup_after=30), options=FAST)
        assert app.conns[0].close_code == 1009
        assert [c.got[0][1]["type"] for c in app.conns] == ["session:new", "session:reconnect"]
        assert result.heard == [("say", "short")]
        assert "app sent a frame over 24 KiB (closed 1009)" in result.errors
        assert result.final_status == "completed"

    def test_frame_of_exactly_24_kib_is_accepted(self, fake: Callable[..., FakeApp]) -> None:
        """A frame of exactly 24 576 bytes is still accepted."""

        async def script(conn: Conn) -> None:
            msg = await conn.recv()
            await conn.write(say_frame(msg["msgid"], 24 * 1024))

        app = fake(script)
        result = sim.call(app.url, Caller(hangup_after=30), options=FAST)
        frame = app.conns[0].wrote[0][1]
        assert len(frame.encode()) == 24 * 1024
        assert result.heard == [("say", json.loads(frame)["data"][0]["text"])]
        assert len(app.conns) == 1
        assert result.errors == []


# -- §8 ---------------------------------------------------------------------------------------


class TestInvalidInput:
    @pytest.mark.parametrize(
        ("frame", "details"),
        [
            ("{not json", None),
            ("[1, 2]", "type property not supplied"),  # ws-requestor.js ~499-514: its assert texts
            ('{"type": "hello"}', "invalid type property: hello"),
            ('{"type": "ack"}', "msgid not supplied"),
            ('{"type": "command", "command": "redirect"}', "data property not supplied"),
            ('{"type": "command", "data": []}', "command property not supplied"),
        ],
    )
    def test_invalid_message_gets_jambonz_error_and_the_socket_stays_open(
        self, fake: Callable[..., FakeApp], frame: str, details: str | None
    ) -> None:
        """Bad JSON or missing fields: jambonz:error InvalidMessage, the socket stays up."""

        async def script(conn: Conn) -> None:
            new = await conn.recv()
            await conn.write(frame)
            await conn.until("jambonz:error")
            await conn.ack(new, [{"verb": "say", "text": "fine"}])

        app = fake(script)
        result = sim.call(app.url, Caller(hangup_after=5), options=FAST)
        error = sent(result, "jambonz:error")[0]["data"]
        assert (error["msg"], error["content"]) == ("InvalidMessage", frame)
        if details is not None:
            assert error["details"] == details
        assert result.heard == [("say", "fine")]
        assert len(app.conns) == 1

    def test_invalid_verbs_in_a_command_are_dropped_silently(self, fake: Callable[..., FakeApp]) -> None:
        """No jambonz:error for a redirect with bad verbs; the next valid one works."""

        async def script(conn: Conn) -> None:
            await greet(conn)
            await conn.until("call:status", call_status="in-progress")
            await conn.command("redirect", [{"verb": "say", "txt": "typo"}])
            await conn.command("redirect", [{"verb": "say", "text": "valid"}, {"verb": "hangup"}])

        app = fake(script)
        result = sim.call(app.url, Caller(hangup_after=30), options=FAST)
        assert sent(result, "jambonz:error") == []
        assert result.heard == [("say", "hi"), ("say", "valid")]
        assert result.termination_by == "jambonz"
        assert len(notes(result, "invalid-verbs")) == 1

    @pytest.mark.parametrize(
        ("ack", "reason"),
        [
            (None, "must be array"),
            ({"verb": "say", "text": "hi"}, "must be array"),
            ([], "no application provided"),
            ([{"verb": "say", "txt": "typo"}], "invalid verbs in the session:new ack"),
            ([{"verb": "pipeline", "llm": {}}], "invalid verbs in the session:new ack"),
        ],
    )
    def test_bad_session_new_ack_rejects_the_call_480_and_closes_1001(
        self, fake: Callable[..., FakeApp], ack: Any, reason: str
    ) -> None:
        """Absent, non-array, empty or invalid ack data: 480 and close 1001."""

        async def script(conn: Conn) -> None:
            new = await conn.recv()
            await conn.ack(new, ack)

        app = fake(script)
        result = sim.call(app.url, options=FAST)
        rejected(result, reason)
        assert result.statuses() == []
        assert app.conns[0].close_code == 1001

    def test_never_acked_session_new_rejects_the_call(self, fake: Callable[..., FakeApp]) -> None:
        """No ack to session:new within the timeout: 480 and close 1001."""
        app = fake(lambda conn: conn.recv())
        t0 = time.monotonic()
        result = sim.call(app.url, options=FAST)
        assert 0.5 <= time.monotonic() - t0 < 2.0
        rejected(result, "session:new not acked in time")
        assert app.conns[0].close_code == 1001


# -- §9, §10 -----------------------------------------------------------------------------------


class TestCommands:
    def test_commands_before_the_session_new_ack_are_lost(self, fake: Callable[..., FakeApp]) -> None:
        """A command that arrives before the session:new ack has no listener."""

        async def script(conn: Conn) -> None:
            new = await conn.recv()
            await conn.command("redirect", [{"verb": "say", "text": "lost"}])
            await conn.ack(new, [{"verb": "say", "text": "kept"}])

        app = fake(script)
        result = sim.call(app.url, Caller(hangup_after=10), options=FAST)
        assert notes(result, "command-lost") == [
            "redirect before the session:new ack; lost (no listener yet)"
        ]
        assert result.heard == [("say", "kept")]

    def test_read_delay_loses_a_command_written_right_after_the_ack(
        self, fake: Callable[..., FakeApp]
    ) -> None:
        """``read_delay``: the ack and a command written 10 ms later come in one read; it is lost.

        jambonz handles every frame of one read before ``CallSession`` attaches its
        ``command`` listener (``ws-requestor.js`` ~553, ``call-session.js`` ~130).
        """

        async def script(conn: Conn) -> None:
            new = await conn.recv()
            await conn.ack(new, [{"verb": "say", "text": "kept"}])
            await asyncio.sleep(0.01)  # a separate write: without read_delay, a separate read
            await conn.command("redirect", [{"verb": "say", "text": "lost"}])

        app = fake(script)
        options = SimOptions(ack_timeout=0.5, idle_wait=0.2, read_delay=0.05)
        result = sim.call(app.url, Caller(hangup_after=10), options=options)
        assert notes(result, "command-lost") == [
            "redirect in the same read as the session:new ack; lost (no listener yet)"
        ]
        assert result.heard == [("say", "kept")]

    def test_read_delay_keeps_a_command_sent_after_jambonz_listens(
        self, fake: Callable[..., FakeApp]
    ) -> None:
        """A command sent once jambonz's next frame (``trying``) arrived is handled."""

        async def script(conn: Conn) -> None:
            new = await conn.recv()
            await conn.ack(new, [{"verb": "pause", "length": 5}])
            trying = await conn.recv()
            assert trying["data"]["call_status"] == "trying"
            await conn.command("redirect", [{"verb": "say", "text": "handled"}])

        app = fake(script)
        options = SimOptions(ack_timeout=0.5, idle_wait=0.2, read_delay=0.05)
        result = sim.call(app.url, Caller(hangup_after=10), options=options)
        assert notes(result, "command-lost") == []
        assert ("say", "handled") in result.heard

    def test_read_delay_the_lab_keeps_its_commands(self, lab: jl.Lab) -> None:
        """A lab app that sends right after its first send loses nothing on a late reader."""

        @lab.service("/app").on("session:new")
        def new(session: jl.Session) -> None:
            session.pause(length=5).send()
            session.say(text="second").send()

        options = SimOptions(ack_timeout=0.5, idle_wait=0.2, read_delay=0.05)
        result = sim.call(lab.url + "/app", Caller(hangup_after=10), options=options)
        assert notes(result, "command-lost") == []
        assert ("say", "second") in result.heard

    def test_non_redirect_commands_do_not_wake_an_idle_call(self, fake: Callable[..., FakeApp]) -> None:
        """config and mute:status act but leave the idle wait running."""

        async def script(conn: Conn) -> None:
            await greet(conn)
            await conn.until("call:status", call_status="in-progress")
            await conn.command("config", {"notifyEvents": True})
            await conn.command("mute:status", {"mute_status": "mute"})

        app = fake(script)
        result = sim.call(app.url, Caller(hangup_after=20), options=IDLE_HALF)
        assert sim_kinds(result).count("idle") == 1
        assert notes(result, "command") == ["mute:status mute"]
        assert (result.termination_by, result.duration) == ("caller", 20)

    def test_redirect_command_wakes_an_idle_call(self, fake: Callable[..., FakeApp]) -> None:
        """A redirect command ends the idle wait and its verbs run."""

        async def script(conn: Conn) -> None:
            await greet(conn)
            await conn.until("call:status", call_status="in-progress")
            await conn.command("redirect", [{"verb": "say", "text": "woken"}])

        app = fake(script)
        result = sim.call(app.url, Caller(hangup_after=20), options=IDLE_HALF)
        assert result.heard == [("say", "hi"), ("say", "woken")]
        assert sim_kinds(result).count("idle") == 2

    def test_tag_command_flat_shapes_and_string_forms_are_noops(self, fake: Callable[..., FakeApp]) -> None:
        """tag, flat dtmf / sip:request, string call:status / listen:status: noted, nothing happens."""

        async def script(conn: Conn) -> None:
            await greet(conn)
            await conn.until("call:status", call_status="in-progress")
            await conn.command("tag", {"orderId": 7})
            await conn.command("dtmf", {"digit": "1", "duration": 250})
            await conn.command("sip:request", {"method": "INFO"})
            await conn.command("call:status", "completed")
            await conn.command("listen:status", "pause")

        app = fake(script)
        result = sim.call(app.url, Caller(hangup_after=20), options=IDLE_HALF)
        assert notes(result, "invalid-command") == [
            "tag is not a WebSocket command in jambonz 0.9.8; use the tag verb"
        ]
        assert notes(result, "error") == [
            "dtmf: jambonz 0.9.8 reads {dtmf: {digit, duration}}; this throws (logged only)",
            "sip:request: jambonz 0.9.8 reads {sip_request: {...}}; this throws (logged only)",
        ]
        assert len(notes(result, "no-op")) == 2
        assert (result.termination_by, result.duration) == ("caller", 20)
        assert "customerData" not in sent(result, "call:status")[-1]["data"]

    def test_call_status_completed_needs_an_answered_call(self, fake: Callable[..., FakeApp]) -> None:
        """``_lccCallStatus`` hangs up on completed only with a dialog (call-session.js ~1493)."""

        async def script(conn: Conn) -> None:
            await greet(conn, [{"verb": "tag", "data": {"a": 1}}])
            await conn.until("call:status", call_status="trying")
            await conn.command("call:status", {"call_status": "completed"})

        app = fake(script)
        result = sim.call(app.url, Caller(hangup_after=20), options=IDLE_HALF)
        assert "call:status 'completed' has no effect now" in notes(result, "no-op")
        assert (result.termination_by, result.final_status) == ("caller", "no-answer")

    def test_call_hook_acked_without_data_kills_the_current_verb(self, fake: Callable[..., FakeApp]) -> None:
        """redirect {call_hook}: the session:redirect ack replaces the stack; an ack without data
        still kills the current verb (``_lccCallHook``, call-session.js ~1589–1651)."""

        async def script(conn: Conn) -> None:
            await greet(conn, [{"verb": "pause", "length": 3}, {"verb": "say", "text": "after"}])
            await conn.until("call:status", call_status="trying")
            await conn.command("redirect", {"call_hook": "/new"})
            await conn.ack(await conn.until("session:redirect"))

        app = fake(script)
        result = sim.call(app.url, Caller(hangup_after=4), "real", options=IDLE_HALF)
        assert notes(result, "killed") == ["pause killed (replaced)"]
        assert result.heard == [("say", "after")]

    def test_whisper_only_inside_dial_or_listen(self, fake: Callable[..., FakeApp]) -> None:
        """``_lccWhisper`` ignores the command unless a dial or listen runs (call-session.js ~1813)."""

        async def script(conn: Conn) -> None:
            await greet(conn)
            await conn.until("call:status", call_status="in-progress")
            await conn.command("whisper", {"whisper": {"verb": "say", "text": "psst"}})

        app = fake(script)
        result = sim.call(app.url, Caller(hangup_after=20), options=IDLE_HALF)
        assert ("whisper", "psst") not in result.heard
        assert "whisper: only while a dial or listen verb runs (jambonz logs it)" in notes(result, "no-op")

    def test_redirect_to_a_ws_url_opens_a_new_socket(self, fake: Callable[..., FakeApp]) -> None:
        """redirect to an absolute ws(s) URL hands over to a new requestor (redirect.js ~22–33,
        call-session.js ~125): session:redirect and all later messages go on a new socket, without
        call_sid (that requestor sent no session:new); the old socket is no longer heard."""

        async def there(conn: Conn) -> None:
            redirect = await conn.until("session:redirect")
            await conn.ack(redirect, [{"verb": "say", "text": "there"}])

        b = fake(there)

        async def here(conn: Conn) -> None:
            await greet(conn, [{"verb": "redirect", "actionHook": b.url + "#rc=2"}])
            await asyncio.sleep(0.3)
            await conn.command("redirect", [{"verb": "say", "text": "not heard"}])

        a = fake(here)
        result = sim.call(a.url, Caller(hangup_after=20), options=IDLE_HALF)
        assert result.heard == [("say", "there")]
        [conn_b] = b.conns
        assert conn_b.types()[0] == "session:redirect" and "call_sid" not in conn_b.got[0][1]
        assert conn_b.got[0][1]["data"]["call_sid"] == result.call_sid
        assert "session:redirect" not in a.conns[0].types()
        assert notes(result, "command-ignored") == ["redirect on a socket handed over by a redirect; ignored"]
        assert conn_b.got[-1][1]["data"]["call_status"] == "completed"

    def test_commands_address_a_leg(self, fake: Callable[..., FakeApp]) -> None:
        """The top-level camelCase callSid picks the leg a command acts on."""

        async def script(conn: Conn) -> None:
            await greet(conn)
            await conn.until("call:status", call_status="in-progress")
            await conn.command("dtmf", {"dtmf": {"digit": "5", "duration": 250}}, callSid="leg-b")
            await conn.command("mute:status", {"mute_status": "unmute"}, callSid="leg-b")

        app = fake(script)
        result = sim.call(app.url, Caller(hangup_after=20), options=IDLE_HALF)
        assert [e.payload.get("callSid") for e in result.messages("received") if e.type != "ack"] == [
            "leg-b",
            "leg-b",
        ]
        assert notes(result, "command") == ["dtmf 5 sent as SIP INFO", "mute:status unmute on leg-b"]


# -- §12 ----------------------------------------------------------------------------------------


class TestSnakeCase:
    def test_keys_are_snake_cased_except_verbatim_subtrees(self, lab: jl.Lab) -> None:
        """customerData (from a tag verb), sip, env_vars keep their keys; other keys are snake-cased."""
        hooks: list[dict[str, Any]] = []
        sessions: list[jl.Session] = []

        @lab.service("/app").on("session:new")
        def new(session: jl.Session) -> None:
            sessions.append(session)
            session.on("/g", lambda msg: hooks.append(msg.data))
            tag = {"orderId": 7, "deliveryInfo": {"zipCode": "02139"}}
            session.tag(data=tag).gather(input=["digits"], numDigits=1, actionHook="/g").send()

        result = sim.call(
            lab.url + "/app",
            Caller(inputs=[Digits("5")], hangup_after=10),
            options=FAST,
            env_vars={"apiKey": "k"},
            sip_headers={"X-Customer-Ref": "ORD-1"},
            extraInfo={"camelKey": {"innerKey": 1}},
        )
        opening = sessions[0].data
        assert opening["env_vars"] == {"apiKey": "k"}
        assert opening["sip"]["headers"]["X-Customer-Ref"] == "ORD-1"
        assert opening["extra_info"] == {"camel_key": {"inner_key": 1}}
        assert "extraInfo" not in opening
        verbatim = {"orderId": 7, "deliveryInfo": {"zipCode": "02139"}}
        assert hooks[0]["customerData"] == verbatim
        assert (hooks[0]["reason"], hooks[0]["digits"]) == ("dtmfDetected", "5")
        assert sent(result, "call:status")[-1]["data"]["customerData"] == verbatim
        assert sent(result, "call:status")[0]["data"].get("customerData") is None

    def test_speech_payload_keys_are_snake_case(self, fake: Callable[..., FakeApp]) -> None:
        """The gather speech result arrives with snake_case keys."""

        async def script(conn: Conn) -> None:
            await greet(conn, [{"verb": "gather", "input": ["speech"], "actionHook": "/g"}])
            hook = await conn.until("verb:hook")
            await conn.ack(hook)

        app = fake(script)
        sim.call(app.url, Caller([Speech("hi there")], hangup_after=10), options=FAST)
        hook = [m for _, m in app.conns[0].got if m["type"] == "verb:hook"][0]
        assert set(hook["data"]["speech"]) == {
            "language_code",
            "channel_tag",
            "is_final",
            "alternatives",
            "vendor",
        }
        assert hook["data"]["speech"]["alternatives"][0]["transcript"] == "hi there"
        assert "callSid" not in hook["data"] and hook["data"]["call_sid"] == hook["call_sid"]


# -- issue 12 item 4: a seed fixes what a caller does, never who the call is ----------------------


class TestDistinctCalls:
    @staticmethod
    def say_app(lab: jl.Lab) -> None:
        @lab.service("/same").on("session:new")
        def new(session: jl.Session) -> None:
            session.say(text="hi").send()

    def test_a_fixed_seed_gives_every_call_its_own_identity(self, lab: jl.Lab) -> None:
        """Re-running with one seed: new call_sid, Call-ID, trace id and msgids; the same behaviour.

        jambonz gives each call a fresh uuid call_sid and short-uuid msgids (ws-requestor.js ~195).
        """
        self.say_app(lab)
        runs = [
            sim.call(lab.url + "/same", Caller(hangup_after=3), options=SimOptions(seed=7)) for _ in range(2)
        ]
        a, b = (sent(r, "session:new")[0] for r in runs)
        assert a["call_sid"] != b["call_sid"] and a["msgid"] != b["msgid"]
        for key in ("call_id", "sbc_callid", "trace_id"):
            assert a["data"][key] != b["data"][key], key
        assert [e.type for e in runs[0].trace] == [e.type for e in runs[1].trace]
        assert runs[0].heard == runs[1].heard == [("say", "hi")]
        msgids = [e.msgid for r in runs for e in r.trace if e.direction == "sent"]
        assert len(msgids) == len(set(msgids))

    def test_same_seed_calls_stay_apart_in_the_lab(self, lab: jl.Lab) -> None:
        """Two same-seed calls are two rows of lab.calls; each ack's ack_ms is its own hook's."""
        self.say_app(lab)
        for _ in range(2):
            lab.call("/same", Caller(hangup_after=3), options=SimOptions(seed=3))
        wait_until(lambda: len(lab.calls) == 2 and lab.calls["final_status"].notna().all())
        assert lab.calls["call_sid"].nunique() == 2
        assert (lab.hooks["ack_ms"] < 1000).all() and len(lab.hooks) == 2

    def test_a_session_new_for_an_ended_call_sid_is_a_new_call(self, lab: jl.Lab) -> None:
        """The app server takes a second session:new for a finished call sid as a new call:
        lab.calls shows two rows, hooks are not cross-matched between them."""
        self.say_app(lab)
        for _ in range(2):
            result = lab.call("/same", Caller(hangup_after=3), call_sid="reused-sid")
            assert result.call_sid == "reused-sid"
        wait_until(lambda: len(lab.calls) == 2 and lab.calls["final_status"].notna().all())
        calls = lab.calls
        assert calls["call_sid"].tolist() == ["reused-sid", "reused-sid"]
        assert calls["final_status"].tolist() == ["completed", "completed"]
        assert len(lab.hooks) == 2 and lab.hooks["acked"].notna().all()
