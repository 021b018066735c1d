"""A local Kazoo for tests and offline demos: the blackhole websocket and Crossbar's channel calls.

:class:`KazooSimulator` listens on loopback (aiohttp) and behaves like platforms.md §1.6:

* the WebSocket is served on any path; a handshake offering ``Sec-WebSocket-Protocol`` gets
  HTTP 400, and with ``max_connections_per_ip`` set, one connection too many gets HTTP 429;
* each text frame runs blackhole's pipeline (:class:`jambonz_lab.protocol.kazoo.Blackhole`:
  rate → authenticate → validate → authorize → limits → command) with Kazoo's error strings,
  a fake token table and account tree, ``request_id`` echoed or made up (32 hex);
  a frame that is not a JSON object closes the socket with 1011 (Kazoo's socket process crashes);
* WebSocket pings are answered; ``idle_timeout`` (3600 s like Cowboy, shrink it in tests)
  counts *incoming* frames only, so a listener that never sends is closed (code 1000);
* :meth:`~KazooSimulator.play` turns :class:`~jambonz_lab.platforms.scenario.CallScenario`
  calls into CHANNEL_CREATE(a) → CREATE(b) → ANSWER(b) → ANSWER(a) → BRIDGE(a) → DESTROY(b) →
  DESTROY(a) (HOLD/UNHOLD for a hold) and sends one event frame per matching binding of
  every session; the same events go to :attr:`~KazooSimulator.webhooks` when it is set;
* Crossbar: ``GET /v2/accounts/{id}/channels`` and ``PUT``/``POST
  /v2/accounts/{id}/channels/{uuid}`` (``X-Auth-Token``; 401 ``invalid_credentials``); a hangup
  ends both legs (CHANNEL_DESTROY events).

Threads: ``start`` / ``stop`` / ``play`` / ``drop_all`` / ``send_raw`` / ``add_token`` /
``add_account`` / ``revoke_token`` from cells, scripts and tests; the rest runs on the lab's loop.
"""

from __future__ import annotations

import collections
import json
import logging
import secrets
import string
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import WSCloseCode, WSMsgType, web

from .. import loop
from ..protocol import kazoo as proto
from ._simserver import KEEP_PUBLISHED, SimServer
from .scenario import CallScenario, Step

if TYPE_CHECKING:
    from .kazoo_webhooks import WebhookSender

__all__ = ["DEFAULT_ACCOUNT_ID", "DEFAULT_AUTH_TOKEN", "KazooSimulator"]

log = logging.getLogger("jambonz_lab.platforms.kazoo")

#: the simulator's account and token unless told otherwise (the account id of Kazoo's sample)
DEFAULT_ACCOUNT_ID = "4b31dd1d32ce6d249897c06332375d65"
DEFAULT_AUTH_TOKEN = "kazoo-sim-token-0123456789abcdef"

_STEP_EVENTS = {
    "create": "CHANNEL_CREATE",
    "answer": "CHANNEL_ANSWER",
    "bridge": "CHANNEL_BRIDGE",
    "hold": "CHANNEL_HOLD",
    "unhold": "CHANNEL_UNHOLD",
    "destroy": "CHANNEL_DESTROY",
}
_SIP_CODES = {
    "NORMAL_CLEARING": "sip:200",
    "USER_BUSY": "sip:486",
    "NO_USER_RESPONSE": "sip:408",
    "NO_ANSWER": "sip:480",
    "CALL_REJECTED": "sip:603",
    "UNALLOCATED_NUMBER": "sip:404",
    "ORIGINATOR_CANCEL": "sip:487",
}
_ID_CHARS = string.ascii_lowercase + string.digits


@dataclass
class _Channel:
    """One leg as the simulator tracks it (what ``GET .../channels`` lists)."""

    uuid: str
    leg: str
    account_id: str
    scenario: CallScenario
    t0: float
    other: str = ""
    created: bool = False
    answered_at: float | None = None  # scenario seconds
    destroyed: bool = False

    @property
    def direction(self) -> str:
        # relative to Kazoo: the caller's leg comes in, the callee's leg goes out
        return "inbound" if self.leg == "a" else "outbound"


class KazooSimulator(SimServer):
    """A Kazoo blackhole websocket plus Crossbar channel calls on 127.0.0.1 (see the module docstring).

    Args:
        account_id, auth_token: the account and a token for it (more with :meth:`add_token`).
        bh_ping: whether bh_ping is "loaded" (``ping`` → ``{"response":"pong"}``); without it a
            ping gets ``success`` with the session's last reply data.
        idle_timeout: seconds without an incoming frame (WS pings count) before the socket is
            closed; Kazoo's is 3600.
        max_connections_per_ip: refuse more sockets from one IP with HTTP 429 (``None``: no cap).
        rate_capacity, rate_refill: the per-session token bucket (100, 10/s).

    Example::

        sim = KazooSimulator().start()
        client = KazooClient(sim.ws_url, auth_token=sim.auth_token, account_id=sim.account_id,
                             bindings=["call.*.*"]).connect()
        sim.play(CallScenario(seed=1), time_scale=0).result()
        sim.stop()

    Threads: see the module docstring.
    """

    name: ClassVar[str] = "kazoo simulator"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        account_id: str = DEFAULT_ACCOUNT_ID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        bh_ping: bool = True,
        idle_timeout: float = 3600.0,
        max_connections_per_ip: int | None = None,
        rate_capacity: float = 100.0,
        rate_refill: float = 10.0,
        realm: str = "sip.example.com",
    ) -> None:
        super().__init__(host, port)
        self.account_id = account_id
        self.auth_token = auth_token
        self.idle_timeout = idle_timeout
        self.max_connections_per_ip = max_connections_per_ip
        self.realm = realm
        self.directory = proto.Directory()
        self.directory.add_token(auth_token, account_id)
        self.blackhole = proto.Blackhole(
            self.directory, bh_ping=bh_ping, capacity=rate_capacity, refill=rate_refill
        )
        #: Kazoo's webhook side; every channel event is also published there when set
        self.webhooks: WebhookSender | None = None
        #: live channels by uuid (what ``GET .../channels`` lists)
        self.channels: dict[str, _Channel] = {}
        #: the last 1000 request frames received (decoded), for tests
        self.requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        #: the channel events generated, (name, data), newest last (at most KEEP_PUBLISHED)
        self.published: list[tuple[str, dict[str, Any]]] = []
        #: channel commands received over REST: (method, uuid, body)
        self.commands: list[tuple[str, str, Any]] = []
        self._sessions: dict[web.WebSocketResponse, proto.BlackholeSession] = {}
        self._calls: dict[tuple[CallScenario, float], tuple[_Channel, _Channel]] = {}

    # -- configuration (any thread) ----------------------------------------------------------

    def add_token(self, token: str, account_id: str, *, superadmin: bool = False) -> None:
        """Accept ``token`` for ``account_id`` (``superadmin``: may subscribe to account ``*``)."""
        loop.run_sync(lambda: self.directory.add_token(token, account_id, superadmin=superadmin))

    def add_account(self, account_id: str, parent: str | None = None) -> None:
        """Put ``account_id`` under ``parent`` in the account tree."""
        loop.run_sync(self.directory.add_account, account_id, parent)

    def revoke_token(self, token: str) -> None:
        """Forget a token (as if it expired): new sockets can no longer authenticate with it."""
        loop.run_sync(lambda: self.directory.tokens.pop(token, None))

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT/`` (any path works)."""
        return f"ws://{self.host}:{self.port}/"

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def bindings(self) -> list[list[str]]:
        """The client bindings of every open session (any thread)."""
        return loop.run_sync(lambda: [s.client_bindings for s in self._sessions.values()])

    # -- server ----------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/v2/accounts/{account_id}/channels", self._list_channels)
        app.router.add_route("PUT", "/v2/accounts/{account_id}/channels/{uuid}", self._channel_command)
        app.router.add_route("POST", "/v2/accounts/{account_id}/channels/{uuid}", self._channel_command)
        app.router.add_get("/{tail:.*}", self._websocket)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if "Sec-WebSocket-Protocol" in request.headers:
            return web.Response(status=400)  # blackhole supports no sub-protocol
        peer = request.transport.get_extra_info("peername") if request.transport else None
        ip, port = (str(peer[0]), int(peer[1])) if peer else ("0.0.0.0", 0)
        cap = self.max_connections_per_ip
        if (
            cap is not None
            and sum(s.session_id.rsplit(":", 1)[0] == ip for s in self._sessions.values()) >= cap
        ):
            return web.Response(status=429)
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1024 * 1024)
        await ws.prepare(request)
        session = self.blackhole.new_session(f"{ip}:{port}")
        self._sessions[ws] = session
        try:
            while not ws.closed:
                try:
                    msg = await ws.receive(timeout=self.idle_timeout)
                except TimeoutError:  # Cowboy's idle_timeout: a normal close
                    await ws.close(code=WSCloseCode.OK)
                    break
                if msg.type is WSMsgType.TEXT:
                    await self._request(ws, session, msg.data)
                elif msg.type is WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type in (WSMsgType.PONG, WSMsgType.BINARY):
                    continue  # counted as activity, otherwise ignored
                else:
                    break
        finally:
            self._sessions.pop(ws, None)  # the session's bindings go with it
        return ws

    async def _request(self, ws: web.WebSocketResponse, session: proto.BlackholeSession, text: str) -> None:
        try:
            frame = json.loads(text)
            self.requests.append(frame if isinstance(frame, dict) else {"raw": frame})
            outcome = self.blackhole.handle(session, frame, time.monotonic())
        except ValueError as exc:  # Kazoo's socket process crashes: Cowboy closes with 1011
            log.info("kazoo simulator: closing %s on a bad frame: %s", session.session_id, exc)
            await ws.close(code=WSCloseCode.INTERNAL_ERROR)
            return
        await self._send(ws, outcome.reply)

    async def _send(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        if ws.closed:
            return
        try:
            await ws.send_str(proto.encode(frame))
        except (ConnectionError, RuntimeError):  # closing under us: the frame is lost, as on Kazoo
            pass

    async def _on_stop(self) -> None:
        await self.adrop_all()

    # -- test helpers ------------------------------------------------------------------------

    async def adrop_all(self, code: int = WSCloseCode.GOING_AWAY) -> int:
        """Close every socket (loop thread); returns how many."""
        sockets = list(self._sessions)
        for ws in sockets:
            await ws.close(code=code, message=b"simulator dropped the socket")
        return len(sockets)

    def drop_all(self, code: int = WSCloseCode.GOING_AWAY) -> int:
        """Close every socket, as a Kazoo restart would (cells, tests)."""
        return loop.submit(self.adrop_all(code)).result(10)

    async def asend_raw(self, text: str) -> int:
        """Send ``text`` as it is to every socket (loop thread); returns how many."""
        sockets = [ws for ws in self._sessions if not ws.closed]
        for ws in sockets:
            await ws.send_str(text)
        return len(sockets)

    def send_raw(self, text: str) -> int:
        """Send ``text`` as it is to every socket, e.g. a malformed frame (cells, tests)."""
        return loop.submit(self.asend_raw(text)).result(10)

    # -- calls -------------------------------------------------------------------------------

    def _legs(self, scenario: CallScenario, t0: float) -> tuple[_Channel, _Channel]:
        key = (scenario, t0)
        legs = self._calls.get(key)
        if legs is None:
            a_id, b_id = (_call_id(scenario, "a"), _call_id(scenario, "b"))
            a = _Channel(a_id, "a", self.account_id, scenario, t0, other=b_id)
            b = _Channel(b_id, "b", self.account_id, scenario, t0, other=a_id)
            legs = self._calls[key] = (a, b)
        return legs

    def _over(self, scenario: CallScenario, t0: float) -> bool:
        legs = self._calls.get((scenario, t0))  # dropped once both legs are destroyed
        return legs is None or all(chan.destroyed for chan in legs)

    async def _play_step(self, scenario: CallScenario, step: Step, t0: float) -> None:
        a, b = self._legs(scenario, t0)
        chan = a if step.leg == "a" else b
        if chan.destroyed:
            return  # hung up over REST already
        name = _STEP_EVENTS[step.kind]
        if step.kind == "create":
            chan.created = True
            self.channels[chan.uuid] = chan
        elif step.kind == "answer":
            chan.answered_at = step.at
        data = self._event_data(name, chan, step.at)
        if step.kind == "destroy":
            self._end(chan)
        await self._publish(name, chan, data)

    def _end(self, chan: _Channel) -> None:
        chan.destroyed = True
        self.channels.pop(chan.uuid, None)
        a, b = self._legs(chan.scenario, chan.t0)
        if a.destroyed and b.destroyed:
            self._calls.pop((chan.scenario, chan.t0), None)

    def _event_data(self, name: str, chan: _Channel, at: float) -> dict[str, Any]:
        s = chan.scenario
        ts = chan.t0 + at
        known_callee = chan.leg == "b" or chan.answered_at is not None
        first_event = name == "CHANNEL_CREATE" and chan.leg == "a"
        extra: dict[str, Any] = {}
        if name == "CHANNEL_DESTROY":
            answered = chan.answered_at
            ring_end = answered if answered is not None else at
            extra = {
                "hangup_cause": s.cause,
                "hangup_code": _SIP_CODES.get(s.cause, "sip:200"),
                "ringing_seconds": round(ring_end),
                "billing_seconds": round(at - answered) if answered is not None else 0,
                "duration_seconds": round(at),
            }
        return proto.channel_event(
            name,
            call_id=chan.uuid,
            account_id=chan.account_id,
            timestamp=proto.unix_to_gregorian(ts),
            msg_id=str(int(ts * 1_000_000)),
            direction=chan.direction,
            caller_id_name=s.caller_name,
            caller_id_number=s.caller,
            callee_id_name=s.callee_name if known_callee else None,
            callee_id_number=s.callee if known_callee else None,
            dialed=s.callee,
            other_leg_call_id=None if first_event else chan.other,
            realm=self.realm,
            **extra,
        )

    async def _publish(self, name: str, chan: _Channel, data: dict[str, Any]) -> None:
        """Send one event to every session binding it matches, and to the webhooks."""
        self.published.append((name, data))
        if len(self.published) > KEEP_PUBLISHED:  # a long demo must not grow without end
            del self.published[: KEEP_PUBLISHED // 2]
        routing_key = proto.call_routing_key(chan.account_id, name, chan.uuid)
        for ws, session in list(self._sessions.items()):
            for client, internal in proto.Blackhole.deliveries(session, routing_key):
                await self._send(ws, proto.event_frame(client, internal, name, routing_key, data))
        if self.webhooks is not None:
            await self.webhooks.publish(name, data)

    async def _hangup(self, chan: _Channel) -> None:
        """End a channel and its other leg now (a REST hangup)."""
        a, b = self._legs(chan.scenario, chan.t0)
        now_at = max(time.time() - chan.t0, 0.0)
        for leg in (chan, b if chan is a else a):
            if leg.destroyed:
                continue
            if not leg.created:  # never rang: it will not be created any more
                leg.destroyed = True
                continue
            data = self._event_data("CHANNEL_DESTROY", leg, now_at)
            data["hangup_cause"] = "NORMAL_CLEARING"
            data["hangup_code"] = "sip:200"
            self._end(leg)
            await self._publish("CHANNEL_DESTROY", leg, data)

    # -- Crossbar ----------------------------------------------------------------------------

    def _auth(self, request: web.Request) -> web.Response | None:
        token = request.headers.get("X-Auth-Token", "")
        auth_account = self.directory.tokens.get(token)
        if auth_account is None:
            return _envelope_error(401, "invalid_credentials", {"message": "invalid credentials"})
        account = request.match_info["account_id"]
        if not (
            auth_account in self.directory.superadmins or self.directory.in_hierarchy(auth_account, account)
        ):
            return _envelope_error(403, "forbidden", {"message": "access denied"}, auth_token=token)
        return None

    async def _list_channels(self, request: web.Request) -> web.Response:
        refused = self._auth(request)
        if refused is not None:
            return refused
        account = request.match_info["account_id"]
        listing = [
            {
                "uuid": c.uuid,
                "direction": c.direction,
                "answered": c.answered_at is not None,
                "timestamp": proto.unix_to_gregorian(
                    c.t0 + (0.0 if c.leg == "a" else min(0.1, c.scenario.ring))
                ),
                "account_id": c.account_id,
                "other_leg": c.other,
                "caller_id_number": c.scenario.caller,
                "callee_id_number": c.scenario.callee,
                "presence_id": f"{c.scenario.caller}@{self.realm}",
            }
            for c in self.channels.values()
            if c.account_id == account
        ]
        return _envelope(200, listing, request.headers.get("X-Auth-Token", ""))

    async def _channel_command(self, request: web.Request) -> web.Response:
        refused = self._auth(request)
        if refused is not None:
            return refused
        token = request.headers.get("X-Auth-Token", "")
        uuid = request.match_info["uuid"]
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _envelope_error(
                400, "invalid request", {"message": "malformed JSON body"}, auth_token=token
            )
        self.commands.append((request.method, uuid, body))
        data = body.get("data") if isinstance(body, dict) else None
        if request.method == "PUT":
            inner = data.get("data") if isinstance(data, dict) else None
            ok = isinstance(body, dict) and body.get("action") == "metaflow" and isinstance(inner, dict)
            command = inner.get("module") if ok and isinstance(inner, dict) else None
        else:
            command = data.get("action") if isinstance(data, dict) else None
        if not isinstance(command, str) or not command:
            return _envelope_error(
                400, "invalid request", {"message": "action (POST) or metaflow module (PUT) required"}, token
            )
        chan = self.channels.get(uuid)
        if chan is None or chan.account_id != request.match_info["account_id"]:
            return _envelope_error(404, "bad identifier", {"message": f"channel {uuid} not found"}, token)
        if command == "hangup":
            await self._hangup(chan)
        return _envelope(202, {}, token)


def _call_id(scenario: CallScenario, leg: str) -> str:
    rng = scenario.rng(leg)
    return "".join(rng.choice(_ID_CHARS) for _ in range(20))


def _envelope(status: int, data: Any, auth_token: str) -> web.Response:
    body = {
        "auth_token": auth_token,
        "data": data,
        "request_id": secrets.token_hex(16),
        "revision": "undefined",
        "status": "success",
    }
    return web.json_response(body, status=status)


def _envelope_error(status: int, message: str, data: dict[str, Any], auth_token: str = "") -> web.Response:
    body = {
        "auth_token": auth_token,
        "data": data,
        "error": str(status),
        "message": message,
        "request_id": secrets.token_hex(16),
        "status": "error",
    }
    return web.json_response(body, status=status)
