"""A local Basix ws_cti server (platforms.md §2.7): BERT frames, tickets, limits, scripted calls.

:class:`BasixSimulator` serves ``/basix/api/ws_cti`` (binary frames only), the ticket and
``call_user`` REST calls, and plays :class:`~jambonz_lab.platforms.scenario.CallScenario` calls as
channel ``info_event`` terms written with only the tags the Basix JS parser reads.

Where the doc is silent, the simulator's choices (tested, and named in its docstring):

* HTTP statuses: 401 for bad Basic credentials or a bad/used/expired/mismatched ticket, 400 without
  ``app_name``, 403 for ``full_events=true`` with a ticket, 404 for a user selector matching nobody.
  JSON bodies ``{"result_code": N, "error": "..."}``.
* After ``{system_msg, connection_replaced | connection_limit_reached}`` the socket is closed with
  code 1000 and the message name as reason.
* A connection without ``full_events`` sees the channels whose ``user_id`` or
  ``last_bridged_user_id`` is its user (a ``removed`` only for channels it was shown).
* ``hold`` / ``unhold`` / ``bridge`` steps emit nothing (Basix has no known hold event; the answer
  already puts the channel in state ``bridged``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import secrets
import time
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import WSMsgType, web

from .. import loop
from ..protocol import basix as proto
from ..protocol.etf import Atom
from ._simserver import SimServer
from .scenario import CallScenario, Step

__all__ = ["DEFAULT_CATEGORIES", "BasixSimulator"]

log = logging.getLogger("jambonz_lab.platforms.basix")

#: the entities sent on open, in order (field_spec then initial_info each)
DEFAULT_CATEGORIES = ("channel", "channel_waiting", "user", "group", "group_member", "terminal")

_USER_FIELD = {
    "user_id": "id",
    "user_name": "name",
    "user_label": "label",
    "user_extension": "main_extension",
    "user_did": "did",
    "user_email": "email",
}

_DEFAULT_USERS: tuple[dict[str, Any], ...] = (
    {
        "id": 10001001,
        "name": "jessica",
        "main_extension": "1001",
        "presence": "available",
        "language": "ja",
        "email": "jessica@example.com",
        "did": "0312340001",
        "label": "Jessica",
        "mwi": "",
        "fwd_always_status": False,
        "do_not_disturb_status": False,
    },
    {
        "id": 10001002,
        "name": "bob",
        "main_extension": "1002",
        "presence": "available",
        "language": "en",
        "email": "bob@example.com",
        "did": "0312340002",
        "label": "Bob",
        "mwi": "",
        "fwd_always_status": False,
        "do_not_disturb_status": False,
    },
)
_DEFAULT_GROUPS: tuple[dict[str, Any], ...] = (
    {"id": 10001111, "name": "group1", "type": 0, "main_extension": "2000", "label": "Group 1", "mwi": ""},
)
_DEFAULT_MEMBERS: tuple[dict[str, Any], ...] = (
    {"id": 110001001, "group_id": 10001111, "user_id": 10001001, "priority": 0, "login_status": 1, "role": 0},
    {"id": 110001002, "group_id": 10001111, "user_id": 10001002, "priority": 0, "login_status": 1, "role": 0},
)
_DEFAULT_TERMINALS: tuple[dict[str, Any], ...] = (
    {"id": 20001001, "name": "jessica-desk", "assoc_user_id": 10001001, "type": "sip", "registered": True},
    {"id": 20001002, "name": "bob-desk", "assoc_user_id": 10001002, "type": "sip", "registered": True},
)


@dataclass(eq=False)
class _Conn:
    ws: web.WebSocketResponse
    key: tuple[str, str]
    user_id: int | None
    full_events: bool
    queue: asyncio.Queue[bytes | str | tuple[int, str]] = field(default_factory=asyncio.Queue)
    seen: set[str] = field(default_factory=set)
    writer: asyncio.Task[None] | None = None
    opened: float = field(default_factory=time.monotonic)


def _us(ts: float) -> int:
    return int(round(ts * 1_000_000))


def _json_error(status: int, error: str, code: int | None = None) -> web.Response:
    return web.json_response(
        {"result_code": code if code is not None else status, "error": error}, status=status
    )


class BasixSimulator(SimServer):
    """A Basix ws_cti server on loopback (see the module docstring for its choices).

    Example::

        from jambonz_lab.platforms import CallScenario
        from jambonz_lab.platforms.basix_sim import BasixSimulator
        sim = BasixSimulator(accounts={"acme": "s3cret"}).start()
        cti = BasixClient(sim.ws_url, app_name="lab", domain="acme", token="s3cret", full_events=True)
        cti.connect()
        sim.play(CallScenario(callee="2000", ring=1, talk=3), time_scale=0).result()

    Threads: ``start`` / ``stop`` / ``play`` and the plain helpers (``update``, ``set_presence``,
    ``set_login_status``, ``send_raw``, ``drop``, ``rows``) are for cells, scripts and tests; the rest
    runs on the lab's loop.

    Args:
        accounts: domain → API token accepted as Basic ``domain:token``.
        users, groups, group_members, terminals: the initial elements (dicts by field name; a user's
            ``did`` is only used by the ``user_did`` selector).
        field_specs: entity → field order to announce and encode with (default: the README order).
        categories: the entities sent on open.
        limit: connections per (user, app_name).
        ticket_ttl: seconds a ws ticket stays valid.
        call_user_options: CallScenario arguments for calls started by ``call_user``.
        call_user_time_scale: the pace of those calls (1: real time, 0: at once).
    """

    name: ClassVar[str] = "basix simulator"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        accounts: Mapping[str, str] | None = None,
        users: Sequence[Mapping[str, Any]] | None = None,
        groups: Sequence[Mapping[str, Any]] | None = None,
        group_members: Sequence[Mapping[str, Any]] | None = None,
        terminals: Sequence[Mapping[str, Any]] | None = None,
        field_specs: Mapping[str, Sequence[str]] | None = None,
        categories: Sequence[str] = DEFAULT_CATEGORIES,
        limit: int = 2,
        ticket_ttl: float = 5.0,
        call_user_options: Mapping[str, Any] | None = None,
        call_user_time_scale: float = 1.0,
    ) -> None:
        super().__init__(host, port)
        self.accounts = dict(accounts if accounts is not None else {"example": "secret"})
        self.specs: dict[str, tuple[str, ...]] = {e: tuple(f) for e, f in proto.DEFAULT_FIELDS.items()}
        for entity, fields in (field_specs or {}).items():
            self.specs[entity] = tuple(fields)
        self.categories = tuple(categories)
        self.limit = limit
        self.ticket_ttl = ticket_ttl
        self.call_user_options = dict(call_user_options or {"ring": 1.0, "talk": 5.0})
        self.call_user_time_scale = call_user_time_scale
        #: entity → key → element (dict by field name; text as str, enums as str)
        self.elements: dict[str, dict[Any, dict[str, Any]]] = {e: {} for e in proto.ENTITIES}
        for entity, items in (
            ("user", users if users is not None else _DEFAULT_USERS),
            ("group", groups if groups is not None else _DEFAULT_GROUPS),
            ("group_member", group_members if group_members is not None else _DEFAULT_MEMBERS),
            ("terminal", terminals if terminals is not None else _DEFAULT_TERMINALS),
        ):
            for item in items:
                self.elements[entity][item["id"]] = dict(item)
        #: JSON commands received (decoded; a bad one as ``{"_error": ...}``)
        self.commands: list[dict[str, Any]] = []
        self._conns: list[_Conn] = []
        self._tickets: dict[str, tuple[str, float, str]] = {}
        self._peer: dict[str, str] = {}
        self._gone: set[str] = set()
        self._seed = 1000

    # -- addresses ------------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT`` (the client adds ``/basix/api/ws_cti``)."""
        return f"ws://{self.host}:{self.port}"

    # -- routes (loop thread) -------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/basix/api/ws_cti", self._ws)
        app.router.add_post("/basix/api/gen_ws_ticket", self._gen_ticket)
        app.router.add_post("/basix/api/call_user", self._call_user)

    def _basic(self, request: web.Request) -> tuple[str, str] | None:
        header = request.headers.get("Authorization", "")
        scheme, _, blob = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(blob.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if sep else None

    def _domain(self, request: web.Request) -> str | None:
        """The domain whose ``domain:token`` is on the request, else None."""
        creds = self._basic(request)
        if creds is None or creds[0] == "ws_ticket":
            return None
        domain, token = creds
        expected = self.accounts.get(domain)
        return domain if expected is not None and secrets.compare_digest(expected, token) else None

    async def _gen_ticket(self, request: web.Request) -> web.Response:
        domain = self._domain(request)
        if domain is None:
            return _json_error(401, "authentication failed: Basic DOMAIN:API_TOKEN expected")
        try:
            body = await request.json()
        except ValueError:
            body = None
        uri = body.get("uri") if isinstance(body, dict) else None
        if not isinstance(uri, str) or not uri.startswith("/"):
            return _json_error(400, 'body must be {"uri": "/basix/api/ws_cti?..."}')
        ticket = secrets.token_urlsafe(18)
        self._tickets[ticket] = (uri, time.monotonic() + self.ticket_ttl, domain)
        return web.json_response({"result_code": 0, "ticket": ticket})

    def _find_user(self, selectors: Mapping[str, Any]) -> tuple[bool, dict[str, Any] | None]:
        """(a selector was given, the user it matches)."""
        for param, fieldname in _USER_FIELD.items():
            value = selectors.get(param)
            if value is None:
                continue
            for user in self.elements["user"].values():
                if user.get(fieldname) is not None and str(user[fieldname]) == str(value):
                    return True, user
            return True, None
        return False, None

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        creds = self._basic(request)
        via_ticket = creds is not None and creds[0] == "ws_ticket"
        if via_ticket:
            assert creds is not None
            held = self._tickets.pop(creds[1], None)  # single use: gone whatever happens next
            if held is None:
                return _json_error(401, "unknown or already used ws ticket")
            uri, expires, domain = held
            if time.monotonic() > expires:
                return _json_error(401, "ws ticket expired")
            if request.raw_path != uri:
                return _json_error(401, "ws ticket was issued for another URI")
        else:
            found = self._domain(request)
            if found is None:
                return _json_error(401, "authentication failed: Basic DOMAIN:API_TOKEN expected")
            domain = found
        query = request.query
        app_name = query.get("app_name", "")
        if not app_name:
            return _json_error(400, "app_name is required")
        full_events = query.get("full_events") == "true"
        if full_events and via_ticket:
            return _json_error(403, "full_events is not allowed with a ws ticket")
        given, user = self._find_user(query)
        if given and user is None:
            return _json_error(404, "user not found")
        user_id = int(user["id"]) if user is not None else None
        key = (f"user:{user_id}" if user_id is not None else f"domain:{domain}", app_name)
        forced = query.get("forced") == "true" or query.get("force") == "true"

        ws = web.WebSocketResponse(autoping=True, compress=False)
        await ws.prepare(request)
        conn = _Conn(ws, key, user_id, full_events)
        conn.writer = asyncio.get_running_loop().create_task(self._write(conn))
        same = sorted((c for c in self._conns if c.key == key), key=lambda c: c.opened)
        if len(same) >= self.limit:
            if forced:
                oldest = same[0]
                self._conns.remove(oldest)
                self._end(oldest, "connection_replaced")
            else:
                self._end(conn, "connection_limit_reached")
                await self._drain(conn)
                return ws
        # snapshot, register and queue the opening frames with no await in between: every later
        # event is queued after them
        for entity in self.categories:
            fields = self.specs.get(entity, ())
            conn.queue.put_nowait(proto.encode_field_spec(entity, fields))
            items = [e for e in self.elements.get(entity, {}).values() if self._visible(conn, entity, e)]
            if entity in proto.CHANNEL_ENTITIES:
                conn.seen.update(str(e["uuid"]) for e in items)
            rows = [proto.element_term(entity, e, fields) for e in items]
            conn.queue.put_nowait(proto.encode_initial_info(entity, rows))
        self._conns.append(conn)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._command(msg.data)
                # binary frames from clients mean nothing to ws_cti: ignored
        finally:
            if conn in self._conns:
                self._conns.remove(conn)
            if conn.writer is not None and not conn.writer.done():
                conn.writer.cancel()
        return ws

    async def _write(self, conn: _Conn) -> None:
        try:
            while True:
                item = await conn.queue.get()
                if isinstance(item, tuple):
                    await conn.ws.close(code=item[0], message=item[1].encode())
                    return
                if isinstance(item, bytes):
                    await conn.ws.send_bytes(item)
                else:
                    await conn.ws.send_str(item)
        except (ConnectionError, RuntimeError) as exc:  # the peer went away
            log.debug("basix sim: writer stopped: %s", exc)

    async def _drain(self, conn: _Conn) -> None:
        if conn.writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(conn.writer), 5.0)
            except (TimeoutError, asyncio.CancelledError):
                conn.writer.cancel()

    def _end(self, conn: _Conn, system_msg: str) -> None:
        conn.queue.put_nowait(proto.encode_system_msg(system_msg))
        conn.queue.put_nowait((1000, system_msg))

    def _visible(self, conn: _Conn, entity: str, element: Mapping[str, Any]) -> bool:
        if entity not in proto.CHANNEL_ENTITIES or conn.full_events:
            return True
        return conn.user_id is not None and conn.user_id in (
            element.get("user_id"),
            element.get("last_bridged_user_id"),
        )

    async def _on_stop(self) -> None:
        for conn in list(self._conns):
            conn.queue.put_nowait((1001, "simulator stopping"))
        for conn in list(self._conns):
            await self._drain(conn)
        self._conns.clear()

    # -- events (loop thread) -------------------------------------------------------------------

    def broadcast(self, entity: str, element: Mapping[str, Any], event: str) -> None:
        """Send ``{info_event, entity, element, event}`` to every connection that may see it."""
        frame = proto.encode_info_event(
            entity, proto.element_term(entity, element, self.specs[entity]), event
        )
        channel = entity in proto.CHANNEL_ENTITIES
        uuid = str(element.get("uuid")) if channel else ""
        for conn in self._conns:
            if channel:
                if event == "removed":
                    if uuid not in conn.seen:
                        continue
                    conn.seen.discard(uuid)
                elif self._visible(conn, entity, element) or uuid in conn.seen:
                    conn.seen.add(uuid)
                else:
                    continue
            conn.queue.put_nowait(frame)

    def upsert(self, entity: str, element: Mapping[str, Any], event: str = "updated") -> dict[str, Any]:
        """Store an element (merged into the one with the same key) and send ``event`` (loop thread)."""
        key = proto.key_of(entity, element)
        if key is None:
            raise ValueError(
                f"a {entity} element needs its key ({'uuid' if entity in proto.CHANNEL_ENTITIES else 'id'})"
            )
        table = self.elements.setdefault(entity, {})
        merged = {**table.get(key, {}), **element}
        table[key] = merged
        self.broadcast(entity, merged, event)
        return merged

    def remove(self, entity: str, key: Any) -> None:
        """Drop an element and send ``removed`` (loop thread); unknown keys are ignored."""
        item = self.elements.get(entity, {}).pop(key, None)
        if item is not None:
            self.broadcast(entity, item, "removed")

    def raw(self, data: bytes | str) -> None:
        """Send one frame as is to every connection (loop thread); a str goes as a text frame."""
        for conn in self._conns:
            conn.queue.put_nowait(data)

    # -- helpers for cells and tests -----------------------------------------------------------

    def update(self, entity: str, key: Any, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        """Change fields of an element and send ``updated``. Any thread."""
        return loop.run_sync(
            lambda: self.upsert(entity, {**self._key(entity, key), **fields}), timeout=timeout
        )

    def add(self, entity: str, element: Mapping[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Add an element and send ``added``. Any thread."""
        return loop.run_sync(lambda: self.upsert(entity, element, "added"), timeout=timeout)

    def delete(self, entity: str, key: Any, timeout: float = 10.0) -> None:
        """Remove an element and send ``removed``. Any thread."""
        loop.run_sync(self.remove, entity, key, timeout=timeout)

    def set_presence(self, user_id: int, presence: str) -> dict[str, Any]:
        """A user's presence changes (``user`` ``updated``). Any thread."""
        return self.update("user", user_id, presence=presence)

    def set_login_status(self, member_id: int, login_status: int) -> dict[str, Any]:
        """A group member logs in (1) or out (0) of its group (``group_member`` ``updated``). Any thread."""
        return self.update("group_member", member_id, login_status=login_status)

    def send_raw(self, data: bytes | str, timeout: float = 10.0) -> None:
        """Send one frame as is to every client (bytes: binary, str: text). Any thread."""
        loop.run_sync(self.raw, data, timeout=timeout)

    def drop(self, code: int = 1001, timeout: float = 10.0) -> None:
        """Close every client socket (clients should reconnect). Any thread."""

        def go() -> None:
            for conn in self._conns:
                conn.queue.put_nowait((code, "dropped by the simulator"))
            self._conns.clear()

        loop.run_sync(go, timeout=timeout)

    def rows(self, entity: str) -> list[dict[str, Any]]:
        """The simulator's current elements of ``entity`` (copies). Any thread."""
        return loop.run_sync(lambda: [dict(e) for e in self.elements.get(entity, {}).values()])

    @property
    def clients(self) -> int:
        """How many ws_cti connections are open. Any thread."""
        return loop.run_sync(lambda: len(self._conns))

    @staticmethod
    def _key(entity: str, key: Any) -> dict[str, Any]:
        return {"uuid": key} if entity in proto.CHANNEL_ENTITIES else {"id": key}

    # -- commands (loop thread) ----------------------------------------------------------------

    async def _command(self, text: str) -> None:
        try:
            body = json.loads(text)
        except ValueError as exc:
            self.commands.append({"_error": f"not JSON: {exc}"})
            return
        if not isinstance(body, dict):
            self.commands.append({"_error": "not a JSON object"})
            return
        self.commands.append(body)
        cmd, uuid = body.get("cmd"), body.get("uuid")
        if not isinstance(uuid, str) or uuid not in self.elements["channel"]:
            return
        now = _us(time.time())
        if cmd == "hangup":
            peer = self._peer.get(uuid)
            self._hangup(uuid, now, "send_bye" if self._answered(uuid) else "send_cancel", "NORMAL_CLEARING")
            if peer is not None and peer in self.elements["channel"]:
                self._hangup(
                    peer, now, "recv_bye" if self._answered(peer) else "recv_cancel", "NORMAL_CLEARING"
                )
        elif cmd == "park":
            slot = body.get("timeout")
            state = (now, Atom("park"), slot if isinstance(slot, int) else None, None, None, None)
            self.upsert("channel", {"uuid": uuid, "state": state, "last_event": "STATE_CHANGE"})

    def _answered(self, uuid: str) -> bool:
        return self.elements["channel"].get(uuid, {}).get("answer_timestamp") is not None

    def _hangup(self, uuid: str, ts: int, side: str, cause: str) -> None:
        self._gone.add(uuid)
        self.upsert(
            "channel",
            {
                "uuid": uuid,
                "hangup_timestamp": ts,
                "last_event": "CHANNEL_HANGUP",
                "last_event_data": f"{side},{cause}",
            },
        )
        self.remove("channel", uuid)

    # -- REST call_user (loop thread) ----------------------------------------------------------

    async def _call_user(self, request: web.Request) -> web.Response:
        if self._domain(request) is None:
            return _json_error(401, "authentication failed: Basic DOMAIN:API_TOKEN expected")
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _json_error(200, "the body must be a JSON object", code=400)
        destination = body.get("destination")
        if not isinstance(destination, str) or not destination:
            return _json_error(200, "destination is required", code=400)
        given, user = self._find_user(body)
        if user is None:
            return _json_error(
                200, "user not found" if given else "choose the user (user_id, user_name, ...)", 404
            )
        self._seed += 1
        options = {"ring": 1.0, "talk": 5.0, **self.call_user_options}
        scenario = CallScenario(
            caller=str(user.get("main_extension") or user["id"]),
            caller_name=str(user.get("label") or user.get("name") or ""),
            callee=destination,
            callee_name="",
            direction="outbound",
            seed=self._seed,
            **options,
        )
        self.spawn(self.aplay(scenario, self.call_user_time_scale))
        return web.json_response(
            {"result_code": 0, "uuids": [self.leg_uuid(scenario, "a"), self.leg_uuid(scenario, "b")]}
        )

    # -- scenarios (loop thread) ---------------------------------------------------------------

    @staticmethod
    def leg_uuid(scenario: CallScenario, leg: str) -> str:
        """The channel uuid of ``leg`` (``a``: the caller's channel, ``b``: the callee's). Any thread."""
        return str(uuidlib.UUID(int=scenario.rng(leg).getrandbits(128), version=4))

    def _user_by_ext(self, number: str) -> dict[str, Any] | None:
        for user in self.elements["user"].values():
            if str(user.get("main_extension")) == number or str(user.get("name")) == number:
                return user
        return None

    def _group_by_ext(self, number: str) -> dict[str, Any] | None:
        for group in self.elements["group"].values():
            if str(group.get("main_extension")) == number:
                return group
        return None

    def _over(self, scenario: CallScenario, t0: float) -> bool:
        return {self.leg_uuid(scenario, "a"), self.leg_uuid(scenario, "b")} <= self._gone

    async def _play_step(self, scenario: CallScenario, step: Step, t0: float) -> None:
        ts = _us(t0 + step.at)
        a, b = self.leg_uuid(scenario, "a"), self.leg_uuid(scenario, "b")
        me, other = (a, b) if step.leg == "a" else (b, a)
        if step.kind == "create" and step.leg == "a":  # a new play of this call (same seed, same uuids)
            self._gone.difference_update((a, b))
        if me in self._gone or (step.kind == "create" and other in self._gone):
            return  # hung up by a command
        channels = self.elements["channel"]
        callee_user = self._user_by_ext(scenario.callee)
        if step.kind == "create":
            self._peer[me] = other
            self.upsert("channel", self._created(scenario, step.leg, me, ts, callee_user), "added")
        elif me not in channels:
            return
        elif step.kind == "answer":
            fields: dict[str, Any] = {
                "uuid": me,
                "answer_timestamp": ts,
                "other_uuid": other,
                "state": proto.simple_state(ts, "bridged"),
                "last_event": "CHANNEL_ANSWER",
            }
            bridged_to = channels.get(other, {}).get("user_id")
            if step.leg == "a" and bridged_to is not None:
                fields["last_bridged_user_id"] = bridged_to
            self.upsert("channel", fields)
        elif step.kind == "destroy":
            first = step.leg == ("b" if scenario.hangup_by == "callee" else "a")
            self._gone.add(me)
            self.upsert(
                "channel",
                {
                    "uuid": me,
                    "hangup_timestamp": ts,
                    "last_event": "CHANNEL_HANGUP",
                    "last_event_data": f"{_side(scenario, step.leg, first)},{scenario.cause}",
                },
            )
            self.remove("channel", me)
        # bridge / hold / unhold: nothing on the wire (see the module docstring)

    def _created(
        self, scenario: CallScenario, leg: str, uuid: str, ts: int, callee_user: dict[str, Any] | None
    ) -> dict[str, Any]:
        rng = scenario.rng(leg)
        rng.getrandbits(128)  # the uuid's draw
        call_id = f"{rng.getrandbits(64):016x}@127.0.0.1"
        group = self._group_by_ext(scenario.callee)
        caller_user = self._user_by_ext(scenario.caller)
        base: dict[str, Any] = {
            "uuid": uuid,
            "calling_name": scenario.caller_name,
            "calling_number": scenario.caller,
            "called_number": scenario.callee,
            "offer_timestamp": ts,
            "last_event": "STATE_CHANGE",
            "call_id": call_id,
        }
        if leg == "a":
            inbound = scenario.direction == "inbound"
            base["direction"] = "inbound" if inbound else "outbound"
            base["peer_location"] = "external" if inbound else "internal"
            base["user_id"] = caller_user["id"] if caller_user is not None and not inbound else None
            if group is not None:
                base["group_id"] = group["id"]
                base["state"] = proto.calling_group_state(ts, group["id"], queue=str(group.get("name") or ""))
                base["target"] = (Atom("group"), group["id"], group.get("name"), scenario.callee)
            elif callee_user is not None:
                base["state"] = proto.calling_user_state(ts, callee_user["id"])
                base["target"] = (Atom("user"), callee_user["id"], callee_user.get("name"), scenario.callee)
            else:
                base["state"] = proto.calling_pstn_state(ts, scenario.callee)
                base["target"] = (Atom("pstn"), None, None, scenario.callee)
            return base
        # leg b: the PBX's channel towards the callee (a user's terminal, or the PSTN)
        target_user = callee_user
        if target_user is None and group is not None:
            target_user = self._first_member(group["id"])
        base["direction"] = "outbound"
        base["peer_location"] = "internal" if target_user is not None else "external"
        base["user_id"] = target_user["id"] if target_user is not None else None
        base["group_id"] = group["id"] if group is not None else None
        if target_user is not None:
            base["state"] = proto.calling_user_state(ts, target_user["id"])
        else:
            base["state"] = proto.calling_pstn_state(ts, scenario.callee)
        base["other_info"] = (
            Atom("end_user") if scenario.direction == "inbound" else Atom("user"),
            "*****" if scenario.direction == "inbound" else (caller_user or {}).get("id"),
            Atom("inbound" if scenario.direction == "inbound" else "outbound"),
            Atom("external" if scenario.direction == "inbound" else "internal"),
            scenario.caller,
            ts,
            base["group_id"],
            None,
        )
        return base

    def _first_member(self, group_id: int) -> dict[str, Any] | None:
        for member in self.elements["group_member"].values():
            if member.get("group_id") == group_id and member.get("login_status") == 1:
                return self.elements["user"].get(member.get("user_id"))
        return None


def _side(scenario: CallScenario, leg: str, first: bool) -> str:
    """The ``last_event_data`` side of a hangup (``recv_bye``, ``send_cancel``, ``recv_refuse``, ...)."""
    if scenario.answered:
        return "recv_bye" if first else "send_bye"
    cause = scenario.cause
    if cause == "ORIGINATOR_CANCEL":
        return "recv_cancel" if leg == "a" else "send_cancel"
    if cause in ("USER_BUSY", "CALL_REJECTED"):
        return "recv_refuse" if leg == "b" else "send_refuse"
    return "send_cancel" if leg == "b" else "send_refuse"
