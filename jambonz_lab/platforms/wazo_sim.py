"""A Wazo stack in miniature: wazo-websocketd, wazo-auth tokens and wazo-calld calls (platforms.md §3.5).

:class:`WazoSimulator` listens on loopback and serves, on one port:

* the websocket at ``/`` and ``/api/websocketd/`` (token from ``?token=`` or ``X-Auth-Token``,
  ``version`` 1 or 2), driven by the pure :class:`~jambonz_lab.protocol.wazo.ServerSession`:
  ``init``, the v1/v2 ack rules, 4001/4002/4003/4004/1011 closes, the periodic token re-check
  (:func:`~jambonz_lab.protocol.wazo.next_auth_check`, scalable with ``auth_check_scale``) and
  WS pings;
* ``POST /api/auth/0.1/token`` (Basic; 401 on bad credentials) and ``GET``/``HEAD
  /api/auth/0.1/token/{token}?scope=…`` (200, 404 unknown or expired, 403 scope not granted);
* ``POST`` / ``GET /api/calld/1.0/users/me/calls`` and ``DELETE …/users/me/calls/{call_id}``
  (204; 403 for someone else's call; 404 unknown).

Calls come from :class:`~jambonz_lab.platforms.scenario.CallScenario`: each leg is a channel of a
user (by extension, else the first two users), and plays ``call_created`` → ``call_updated`` →
``call_answered`` → ``call_ended`` (``call_held`` / ``call_resumed`` for a hold), published as
bus bodies through each socket's subscriptions and ACL filter, only after ``start``.

Example::

    sim = WazoSimulator().start()
    wazo = WazoClient(sim.http_url, username="alice", password="alice-pw").connect()
    sim.play(CallScenario(seed=1), time_scale=0).result()
    sim.stop()

Threads: ``start`` / ``stop`` / ``play`` and the plain helpers (``issue_token``, ``publish``,
``drop_all`` …) from cells, scripts and tests; everything else on the lab's loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from aiohttp import WSMsgType, web

from .. import loop
from ..protocol import wazo as proto
from ._simserver import KEEP_PUBLISHED, SimServer
from .scenario import CallScenario, Step

__all__ = ["DEFAULT_ADMIN_ACL", "DEFAULT_USER_ACL", "WazoSimulator", "WazoUser"]

log = logging.getLogger("jambonz_lab.platforms.wazo")

#: what a plain user's token carries: the websocketd ACL and their own events
DEFAULT_USER_ACL: tuple[str, ...] = (
    "websocketd",
    "events.calls.me",
    "events.chatd.users.*.presences.updated",
    "events.lines.*.status.updated",
    "events.auth.users.me.sessions.*.expire_soon",
    "calld.users.me.calls.*",
)
#: what an admin's token carries
DEFAULT_ADMIN_ACL: tuple[str, ...] = ("websocketd", "events.#", "calld.#")


def _uuid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"jambonz-lab-wazo:{name}"))


@dataclass(frozen=True)
class WazoUser:
    """A wazo-auth user of the simulator (``username`` / ``password`` caller-controlled: data)."""

    username: str
    password: str
    uuid: str
    tenant_uuid: str
    extension: str = ""
    name: str = ""
    line_id: int = 1
    acl: tuple[str, ...] = DEFAULT_USER_ACL
    admin: bool = False
    purpose: str = "user"


TENANT = _uuid("tenant")
OTHER_TENANT = _uuid("other-tenant")
MASTER_TENANT = _uuid("master-tenant")


def default_users() -> list[WazoUser]:
    """alice (1001) and bob (1002), a tenant admin, carol (1003) in another tenant, root (master)."""
    return [
        WazoUser("alice", "alice-pw", _uuid("alice"), TENANT, "1001", "Alice", 11),
        WazoUser("bob", "bob-pw", _uuid("bob"), TENANT, "1002", "Bob", 12),
        WazoUser("admin", "admin-pw", _uuid("admin"), TENANT, "", "Admin", 0, DEFAULT_ADMIN_ACL, admin=True),
        WazoUser("carol", "carol-pw", _uuid("carol"), OTHER_TENANT, "1003", "Carol", 13),
        WazoUser("root", "root-pw", _uuid("root"), MASTER_TENANT, "", "Root", 0, DEFAULT_ADMIN_ACL),
    ]


@dataclass
class _Token:
    info: proto.TokenInfo
    user: WazoUser
    issued_at: float
    revoked: bool = False

    def data(self, xivo_uuid: str) -> dict[str, Any]:
        """wazo-auth's token ``data`` (§3.1 shape)."""
        info = self.info
        return {
            "token": info.token,
            "session_uuid": info.session_uuid,
            "auth_id": info.user_uuid,
            "xivo_user_uuid": info.user_uuid,
            "xivo_uuid": xivo_uuid,
            "acl": list(info.acl),
            "issued_at": proto.local_iso(self.issued_at),
            "expires_at": proto.local_iso(info.expires_at),
            "utc_issued_at": proto.utc_iso(self.issued_at),
            "utc_expires_at": proto.utc_iso(info.expires_at),
            "metadata": {
                "uuid": info.user_uuid,
                "tenant_uuid": info.tenant_uuid,
                "auth_id": info.user_uuid,
                "pbx_user_uuid": info.user_uuid,
                "xivo_uuid": xivo_uuid,
                "admin": info.admin,
                "purpose": info.purpose,
            },
        }


@dataclass(eq=False)
class _Conn:
    ws: web.WebSocketResponse
    session: proto.ServerSession
    checker: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Leg:
    call_id: str
    user: WazoUser
    is_caller: bool
    scenario: CallScenario
    created: float
    sip_call_id: str
    conversation_id: str
    status: str
    answered: float | None = None
    hungup: float | None = None
    on_hold: bool = False
    peer: _Leg | None = None
    reason_code: int | None = None

    def call(self) -> dict[str, Any]:
        s = self.scenario
        talking = {self.peer.call_id: self.peer.user.uuid} if self.peer and self.answered is not None else {}
        return proto.call_payload(
            call_id=self.call_id,
            conversation_id=self.conversation_id,
            sip_call_id=self.sip_call_id,
            user_uuid=self.user.uuid,
            line_id=self.user.line_id,
            status=self.status,
            direction=s.direction,
            is_caller=self.is_caller,
            caller_id_name=s.caller_name,
            caller_id_number=s.caller,
            peer_caller_id_name=s.callee_name,
            peer_caller_id_number=s.callee,
            dialed_extension=s.callee,
            on_hold=self.on_hold,
            talking_to=talking if self.hungup is None else {},
            bridges=[f"bridge-{self.conversation_id}"] if talking and self.hungup is None else [],
            creation_time=proto.asterisk_time(self.created),
            answer_time=proto.asterisk_time(self.answered) if self.answered is not None else None,
            hangup_time=proto.asterisk_time(self.hungup) if self.hungup is not None else None,
            reason_code=self.reason_code,
        )


@dataclass(eq=False)
class _Call:
    legs: dict[str, _Leg] = field(default_factory=dict)
    task: asyncio.Task[Any] | None = None
    owner: str | None = None  # the user uuid that placed it through calld


class WazoSimulator(SimServer):
    """A local wazo-websocketd + wazo-auth + wazo-calld (see the module docstring).

    Args:
        users: the wazo-auth users (default: :func:`default_users`).
        expiration: default token lifetime in seconds (wazo-auth's default is 7200);
            :meth:`expire_in` and :meth:`revoke` change one token and re-check its sockets at once.
        origin_uuid: this stack's uuid (``origin_uuid`` header, ``xivo_uuid``).
        master_tenant: the master tenant's uuid (its tokens see every tenant).
        ws_ping_interval: seconds between WS pings (the server's 60 s).
        auth_check_scale: multiplies every token re-check delay (0.1: ten times more often).
        deliver_twice: send every event twice (the JS SDK's double-socket bug, for dedup tests).
        calld_ring, calld_talk, calld_time_scale: how a call placed through calld plays (it
            talks until hung up or ``calld_talk`` runs out).

    Example::

        sim = WazoSimulator().start()
        token = sim.issue_token("alice")
        sim.expire_in(token, 2)           # 4003 about two seconds from now
        sim.publish_presence("bob", "away")

    Threads: the plain methods from cells, scripts and tests; the ``a*`` ones on the lab's loop.
    """

    name: ClassVar[str] = "wazo simulator"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        users: Sequence[WazoUser] | None = None,
        expiration: float = 7200.0,
        origin_uuid: str | None = None,
        master_tenant: str = MASTER_TENANT,
        ws_ping_interval: float = 60.0,
        auth_check_scale: float = 1.0,
        deliver_twice: bool = False,
        calld_ring: float = 1.0,
        calld_talk: float = 3600.0,
        calld_time_scale: float = 1.0,
    ) -> None:
        super().__init__(host, port)
        self.users = list(users) if users is not None else default_users()
        self.expiration = expiration
        self.origin_uuid = origin_uuid or _uuid("stack")
        self.master_tenant = master_tenant
        self.ws_ping_interval = ws_ping_interval
        self.auth_check_scale = auth_check_scale
        self.deliver_twice = deliver_twice
        self.calld_ring = calld_ring
        self.calld_talk = calld_talk
        self.calld_time_scale = calld_time_scale
        #: the bus bodies published (delivered or not), in order (at most KEEP_PUBLISHED)
        self.published: list[dict[str, Any]] = []
        #: sockets opened, and the close codes the simulator sent
        self.connections = 0
        self.closes: list[tuple[int, str]] = []
        self._tokens: dict[str, _Token] = {}
        self._conns: set[_Conn] = set()
        self._calls: dict[tuple[int, float], _Call] = {}
        self._seq = itertools.count(1)

    # -- users and tokens ---------------------------------------------------------------------

    def user(self, username: str) -> WazoUser:
        for user in self.users:
            if user.username == username:
                return user
        raise KeyError(
            f"no user {username!r} in the Wazo simulator: {', '.join(u.username for u in self.users)}"
        )

    def _issue(self, user: WazoUser, expiration: float | None, acl: Sequence[str] | None) -> _Token:
        now = time.time()
        token = str(uuid.uuid4())
        info = proto.TokenInfo(
            token=token,
            user_uuid=user.uuid,
            tenant_uuid=user.tenant_uuid,
            acl=tuple(acl if acl is not None else user.acl),
            expires_at=now + (self.expiration if expiration is None else expiration),
            session_uuid=str(uuid.uuid4()),
            admin=user.admin,
            purpose=user.purpose,
        )
        record = _Token(info, user, now)
        self._tokens[token] = record
        return record

    def issue_token(
        self, username: str, expiration: float | None = None, acl: Sequence[str] | None = None
    ) -> str:
        """A token for ``username`` (``acl`` overrides the user's ACL: omit ``websocketd`` to test 4002)."""
        return loop.run_sync(lambda: self._issue(self.user(username), expiration, acl).info.token)

    def expire_in(self, token: str, seconds: float) -> None:
        """Make ``token`` expire ``seconds`` from now (≤ 0: already expired)."""

        def shrink() -> None:
            record = self._tokens[token]
            record.info = replace(record.info, expires_at=time.time() + seconds)
            self._recheck()

        loop.run_sync(shrink)

    def revoke(self, token: str) -> None:
        """Revoke ``token``: its sockets close with 4003."""

        def revoke() -> None:
            self._tokens[token].revoked = True
            self._recheck()

        loop.run_sync(revoke)

    def _recheck(self) -> None:
        """Check every socket's token now (a test shortcut: the server would wait for its next check)."""
        for conn in self._conns:
            conn.wake.set()

    def _valid(self, token: str, scope: str | None = proto.WEBSOCKETD_ACL) -> proto.TokenInfo | None:
        record = self._tokens.get(token)
        if record is None or record.revoked or record.info.expires_at <= time.time():
            return None
        if scope is not None and not proto.token_allows(record.info, scope):
            return None
        return record.info

    # -- routes -------------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._ws)
        app.router.add_get("/api/websocketd/", self._ws)
        app.router.add_post("/api/auth/0.1/token", self._post_token)
        app.router.add_get("/api/auth/0.1/token/{token}", self._get_token)
        app.router.add_post("/api/calld/1.0/users/me/calls", self._post_call)
        app.router.add_get("/api/calld/1.0/users/me/calls", self._get_calls)
        app.router.add_delete("/api/calld/1.0/users/me/calls/{call_id}", self._delete_call)

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/api/websocketd/"

    # -- wazo-auth ----------------------------------------------------------------------------

    @staticmethod
    def _auth_error(status: int, reason: str) -> web.Response:
        return web.json_response(
            {"reason": [reason], "timestamp": [proto.local_iso(time.time())], "status_code": status},
            status=status,
        )

    async def _post_token(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        user = None
        if header.startswith("Basic "):
            try:
                username, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                username, password = "", ""
            user = next((u for u in self.users if u.username == username and u.password == password), None)
        if user is None:
            return self._auth_error(401, "Authentication Failed")
        expiration: float | None = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return self._auth_error(400, "Invalid JSON body")
            value = body.get("expiration") if isinstance(body, dict) else None
            if value is not None:
                if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                    return self._auth_error(400, "expiration must be a positive number of seconds")
                expiration = float(value)
        record = self._issue(user, expiration, None)
        return web.json_response({"data": record.data(self.origin_uuid)})

    async def _get_token(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        record = self._tokens.get(token)
        if record is None or self._valid(token, None) is None:
            return self._auth_error(404, "No such token")
        scope = request.query.get("scope")
        if scope and self._valid(token, scope) is None:
            return self._auth_error(403, f"Unauthorized for {scope}")
        return web.json_response({"data": record.data(self.origin_uuid)})

    # -- websocketd ---------------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=self.ws_ping_interval, max_msg_size=2**20)
        await ws.prepare(request)
        self.connections += 1
        handshake = proto.parse_handshake(request.query_string, request.headers.items())
        if isinstance(handshake, proto.Close):
            await self._close(ws, handshake)
            return ws
        conn = _Conn(ws, proto.ServerSession(version=handshake.version))
        self._conns.add(conn)
        try:
            if await self._apply(conn, conn.session.authenticated(self._valid(handshake.token))):
                return ws
            conn.checker = self.spawn(self._check_loop(conn))
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                outcome = conn.session.receive(msg.data)
                if outcome.close is not None and conn.session.last_violation:
                    log.info("wazo sim: protocol error: %s", conn.session.last_violation)
                if await self._apply(conn, outcome):
                    break
                if outcome.check_token is not None:
                    checked = conn.session.token_checked(self._valid(outcome.check_token))
                    if await self._apply(conn, checked):
                        break
        finally:
            self._conns.discard(conn)
            if conn.checker is not None:
                conn.checker.cancel()
        return ws

    async def _close(self, ws: web.WebSocketResponse, close: proto.Close) -> None:
        self.closes.append((close.code, close.reason))
        await ws.close(code=close.code, message=close.reason.encode())

    async def _apply(self, conn: _Conn, outcome: proto.Outcome) -> bool:
        """Send the outcome's frames, then close if asked; True when closed."""
        for text in outcome.send:
            if conn.ws.closed:
                return True
            await conn.ws.send_str(text)
        if outcome.close is not None:
            self._conns.discard(conn)
            await self._close(conn.ws, outcome.close)
            return True
        return False

    async def _check_loop(self, conn: _Conn) -> None:
        """wazo-websocketd's dynamic token re-check: close with 4003 once the token no longer holds."""
        while not conn.ws.closed:
            token = conn.session.token
            assert token is not None
            record = self._tokens.get(token.token)
            remaining = (record.info.expires_at if record else 0.0) - time.time()
            conn.wake.clear()
            try:
                await asyncio.wait_for(
                    conn.wake.wait(), proto.next_auth_check(remaining) * self.auth_check_scale
                )
            except TimeoutError:
                pass
            current = conn.session.token
            assert current is not None
            if self._valid(current.token) is None:
                await self._apply(conn, conn.session.expired())
                return

    # -- publishing -----------------------------------------------------------------------------

    async def apublish_body(self, body: dict[str, Any]) -> int:
        """Offer one bus body to every socket; returns how many sockets got it (loop thread)."""
        self.published.append(body)
        if len(self.published) > KEEP_PUBLISHED:  # a long demo must not grow without end
            del self.published[: KEEP_PUBLISHED // 2]
        sent = 0
        for conn in list(self._conns):
            frame = conn.session.event(body, origin_uuid=self.origin_uuid, master_tenant=self.master_tenant)
            if frame is None or conn.ws.closed:
                continue
            for _ in range(2 if self.deliver_twice else 1):
                try:
                    await conn.ws.send_str(frame)
                except (ConnectionError, RuntimeError):
                    break
            sent += 1
        return sent

    def body(
        self,
        name: str,
        data: Any,
        *,
        user_uuids: Sequence[str] = (),
        tenant_uuid: str = TENANT,
        required_acl: str | None = None,
    ) -> dict[str, Any]:
        """A bus body from this stack, stamped now."""
        return proto.bus_body(
            name,
            data,
            origin_uuid=self.origin_uuid,
            tenant_uuid=tenant_uuid,
            timestamp=proto.local_iso(time.time()),
            user_uuids=user_uuids,
            required_acl=required_acl,
        )

    async def apublish(self, name: str, data: Any, **headers: Any) -> int:
        """Build (see :meth:`body`) and publish one event (loop thread)."""
        return await self.apublish_body(self.body(name, data, **headers))

    def publish(self, name: str, data: Any, **headers: Any) -> int:
        """:meth:`apublish` from a cell, a script or a test."""
        return loop.submit(self.apublish(name, data, **headers)).result(10.0)

    def publish_presence(self, username: str, state: str = "available", status: str = "") -> int:
        """``chatd_presence_updated`` for ``username`` (tenant-wide)."""
        user = self.user(username)
        data = {
            "uuid": user.uuid,
            "tenant_uuid": user.tenant_uuid,
            "state": state,
            "status": status,
            "last_activity": proto.utc_iso(time.time()),
            "line_state": "available",
            "mobile": False,
            "do_not_disturb": False,
            "connected": True,
            "lines": [{"id": user.line_id, "state": "available"}],
        }
        acl = f"events.chatd.users.{user.uuid}.presences.updated"
        return self.publish(
            "chatd_presence_updated", data, user_uuids=("*",), tenant_uuid=user.tenant_uuid, required_acl=acl
        )

    def publish_line_status(self, username: str, registered: bool = True, current_call_count: int = 0) -> int:
        """``line_status_updated`` for ``username``'s line (tenant-wide)."""
        user = self.user(username)
        data = {
            "id": user.line_id,
            "technology": "sip",
            "name": f"{user.username}-line",
            "registered": registered,
            "current_call_count": current_call_count,
        }
        acl = f"events.lines.{user.line_id}.status.updated"
        return self.publish(
            "line_status_updated", data, user_uuids=("*",), tenant_uuid=user.tenant_uuid, required_acl=acl
        )

    def publish_expire_soon(self, token: str) -> int:
        """``auth_session_expire_soon`` for ``token``'s session (a client should renew)."""
        info = loop.run_sync(lambda: self._tokens[token].info)
        acl = f"events.auth.users.{info.user_uuid}.sessions.{info.session_uuid}.expire_soon"
        data = {"uuid": info.session_uuid, "user_uuid": info.user_uuid, "tenant_uuid": info.tenant_uuid}
        return self.publish(
            "auth_session_expire_soon",
            data,
            user_uuids=(info.user_uuid,),
            tenant_uuid=info.tenant_uuid,
            required_acl=acl,
        )

    async def asend_raw(self, text: str | bytes) -> int:
        """Send ``text`` as is to every open socket (loop thread); returns how many."""
        count = 0
        for conn in list(self._conns):
            if conn.ws.closed:
                continue
            if isinstance(text, bytes):
                await conn.ws.send_bytes(text)
            else:
                await conn.ws.send_str(text)
            count += 1
        return count

    def send_raw(self, text: str | bytes) -> int:
        """:meth:`asend_raw` from a cell, a script or a test."""
        return loop.submit(self.asend_raw(text)).result(10.0)

    async def adrop_all(self, code: int = 1001, reason: str = "going away") -> int:
        """Close every socket (a restart, a proxy timeout); returns how many (loop thread)."""
        conns = list(self._conns)
        self._conns.clear()
        for conn in conns:
            await self._close(conn.ws, proto.Close(code, reason))
        return len(conns)

    def drop_all(self, code: int = 1001, reason: str = "going away") -> int:
        """:meth:`adrop_all` from a cell, a script or a test."""
        return loop.submit(self.adrop_all(code, reason)).result(10.0)

    @property
    def open_sockets(self) -> int:
        return len(self._conns)

    async def _on_stop(self) -> None:
        await self.adrop_all(1001, "server shutdown")

    # -- scenarios -------------------------------------------------------------------------------

    def _leg_users(self, scenario: CallScenario) -> tuple[WazoUser, WazoUser]:
        by_ext = {u.extension: u for u in self.users if u.extension}
        plain = [u for u in self.users if u.extension] or self.users
        a = by_ext.get(scenario.caller) or plain[0]
        b = by_ext.get(scenario.callee) or next((u for u in plain if u is not a), plain[-1])
        return a, b

    def _new_call(
        self, scenario: CallScenario, t0: float, users: tuple[WazoUser, WazoUser] | None = None
    ) -> _Call:
        a_user, b_user = users or self._leg_users(scenario)
        rng = scenario.rng("a")
        seq = rng.randint(1, 9999)
        a_id, b_id = f"{int(t0)}.{seq}", f"{int(t0)}.{seq + 1}"
        legs = {}
        for leg, call_id, user in (("a", a_id, a_user), ("b", b_id, b_user)):
            r = scenario.rng(leg)
            legs[leg] = _Leg(
                call_id=call_id,
                user=user,
                is_caller=leg == "a",
                scenario=scenario,
                created=t0,
                sip_call_id=f"{r.getrandbits(64):016x}@127.0.0.1",
                conversation_id=a_id,
                status="Ring" if leg == "a" else "Ringing",
            )
        legs["a"].peer, legs["b"].peer = legs["b"], legs["a"]
        return _Call(legs)

    def _call_for(self, scenario: CallScenario, t0: float) -> _Call:
        key = (id(scenario), t0)
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = self._new_call(scenario, t0)
        return call

    async def _emit_call(self, name: str, leg: _Leg, data: dict[str, Any] | None = None) -> None:
        await self.apublish_body(
            self.body(
                name,
                data if data is not None else leg.call(),
                user_uuids=(leg.user.uuid,),
                tenant_uuid=leg.user.tenant_uuid,
                required_acl=f"events.calls.{leg.user.uuid}",
            )
        )

    def _over(self, scenario: CallScenario, t0: float) -> bool:
        call = self._calls.get((id(scenario), t0))  # gone once both legs ended by the script
        return call is None or all(leg.hungup is not None for leg in call.legs.values())

    async def _play_step(self, scenario: CallScenario, step: Step, t0: float) -> None:
        call = self._call_for(scenario, t0)
        leg = call.legs[step.leg]
        at = t0 + step.at
        if leg.hungup is not None:
            return  # hung up early through calld
        if step.kind == "create":
            leg.created = at
            await self._emit_call("call_created", leg)
            await self._emit_call("call_updated", leg)
        elif step.kind == "answer":
            leg.answered, leg.status = at, "Up"
            await self._emit_call("call_answered", leg)
        elif step.kind == "hold":
            leg.on_hold = True
            await self._emit_call("call_held", leg, {"call_id": leg.call_id, "user_uuid": leg.user.uuid})
        elif step.kind == "unhold":
            leg.on_hold = False
            await self._emit_call("call_resumed", leg, {"call_id": leg.call_id, "user_uuid": leg.user.uuid})
        elif step.kind == "destroy":
            await self._hangup_leg(leg, at, scenario.cause_code)
            if all(x.hungup is not None for x in call.legs.values()):
                self._calls = {k: v for k, v in self._calls.items() if v is not call}
        # "bridge": the answer events already carry talking_to and bridges

    async def _hangup_leg(self, leg: _Leg, at: float, cause: int) -> None:
        leg.hungup, leg.reason_code = at, cause
        await self._emit_call("call_ended", leg)

    # -- wazo-calld ------------------------------------------------------------------------------

    def _calld_user(self, request: web.Request) -> WazoUser | web.Response:
        token = request.headers.get("X-Auth-Token", "")
        info = self._valid(token, None) if token else None
        if info is None:
            return web.json_response(
                {"message": "Unauthorized", "error_id": "unauthorized", "details": {}}, status=401
            )
        return self._tokens[token].user

    def _live_legs(self) -> list[tuple[_Call, _Leg]]:
        return [(c, leg) for c in self._calls.values() for leg in c.legs.values() if leg.hungup is None]

    async def _post_call(self, request: web.Request) -> web.Response:
        user = self._calld_user(request)
        if isinstance(user, web.Response):
            return user
        try:
            body = await request.json()
        except ValueError:
            body = None
        extension = body.get("extension") if isinstance(body, dict) else None
        if not isinstance(extension, str) or not extension:
            return web.json_response(
                {
                    "message": "Invalid request: extension is required",
                    "error_id": "invalid-data",
                    "details": {},
                },
                status=400,
            )
        callee = next((u for u in self.users if u.extension == extension), None)
        if callee is None or callee.tenant_uuid != user.tenant_uuid:
            callee = None
        t0 = time.time()
        scenario = CallScenario(
            caller=user.extension or user.username,
            caller_name=user.name or user.username,
            callee=extension,
            callee_name=callee.name if callee else extension,
            direction="internal",
            ring=self.calld_ring,
            talk=self.calld_talk,
            seed=1_000_000 + next(self._seq),  # clear of the seeds scripts pick
            start=t0,
        )
        others = [
            u for u in self.users if u is not user and u.tenant_uuid == user.tenant_uuid and u.extension
        ]
        b_user = callee or (others[0] if others else user)
        call = self._new_call(scenario, t0, (user, b_user))
        call.owner = user.uuid
        self._calls[(id(scenario), t0)] = call
        call.task = self.spawn(self._play_one(scenario, t0, self.calld_time_scale))
        return web.json_response(call.legs["a"].call(), status=201)

    async def _get_calls(self, request: web.Request) -> web.Response:
        user = self._calld_user(request)
        if isinstance(user, web.Response):
            return user
        items = [leg.call() for _, leg in self._live_legs() if leg.user.uuid == user.uuid]
        return web.json_response({"items": items})

    async def _delete_call(self, request: web.Request) -> web.Response:
        user = self._calld_user(request)
        if isinstance(user, web.Response):
            return user
        call_id = request.match_info["call_id"]
        found = next(((c, leg) for c, leg in self._live_legs() if leg.call_id == call_id), None)
        if found is None:
            return web.json_response(
                {"message": f"No such call: {call_id}", "error_id": "no-such-call", "details": {}}, status=404
            )
        call, leg = found
        if leg.user.uuid != user.uuid:
            return web.json_response(
                {
                    "message": "User does not own this call",
                    "error_id": "user-permission-denied",
                    "details": {},
                },
                status=403,
            )
        if call.task is not None:
            call.task.cancel()
        now = time.time()
        first, second = (leg, leg.peer)
        for each in (first, second):
            if each is not None and each.hungup is None:
                await self._hangup_leg(each, now, 16)
        self._calls = {k: v for k, v in self._calls.items() if v is not call}
        return web.Response(status=204)

    def __repr__(self) -> str:
        base = super().__repr__()
        return base[:-1] + f", {len(self._conns)} socket(s)>"
