"""The Wazo simulator driven by raw clients (``websockets``, aiohttp): wire facts of platforms.md §3 exactly.

Close codes and reasons, the v1/v2 ack rules over a socket, token expiry (4003) and renewal,
ACL and tenant filtering, wazo-auth and wazo-calld statuses. Each test starts its own simulator
on a free loopback port; coroutines run on the lab's loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from jambonz_lab import loop
from jambonz_lab.platforms.scenario import CallScenario
from jambonz_lab.platforms.wazo_sim import WazoSimulator
from jambonz_lab.protocol import wazo as w

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 10.0) -> T:
    async def wrapped() -> T:
        return await coro

    return loop.submit(wrapped()).result(timeout)


@pytest.fixture
def sim() -> Iterator[WazoSimulator]:
    with WazoSimulator(calld_ring=0.05) as server:
        yield server


async def opened(
    sim: WazoSimulator, query: str, path: str = "/api/websocketd/", **headers: str
) -> ClientConnection:
    return await connect(
        f"ws://127.0.0.1:{sim.port}{path}{'?' + query if query else ''}",
        additional_headers=headers or None,
        compression=None,
        open_timeout=5,
    )


async def close_of(ws: ClientConnection, timeout: float = 5.0) -> tuple[int | None, str | None, list[str]]:
    """Read until the server closes; (code, reason, frames read before)."""
    frames: list[str] = []
    try:
        while True:
            data = await asyncio.wait_for(ws.recv(), timeout)
            frames.append(data if isinstance(data, str) else data.hex())
    except ConnectionClosed:
        pass
    return ws.close_code, ws.close_reason, frames


async def frames(ws: ClientConnection, count: int, timeout: float = 5.0) -> list[Any]:
    out = []
    for _ in range(count):
        out.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
    return out


async def quiet(ws: ClientConnection, wait: float = 0.2) -> bool:
    """True when nothing arrives within ``wait`` seconds."""
    try:
        await asyncio.wait_for(ws.recv(), wait)
    except TimeoutError:
        return True
    return False


async def session(sim: WazoSimulator, username: str, *events: str, version: int = 2) -> ClientConnection:
    """A started socket of ``username`` subscribed to ``events``, every ack consumed."""
    token = sim._issue(sim.user(username), None, None).info.token
    ws = await opened(sim, f"token={token}&version={version}")
    assert json.loads(await ws.recv())["op"] == "init"
    for name in events:
        await ws.send(w.op_subscribe(name))
    await ws.send(w.op_start())
    for _ in range(len(events) + 1):
        await ws.recv()
    return ws


# -- handshake and close codes ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/api/websocketd/"])
def test_no_token_closes_4001(sim: WazoSimulator, path: str) -> None:
    async def go() -> Any:
        return await close_of(await opened(sim, "version=2", path))

    assert run(go()) == (4001, "no token", [])


def test_unknown_token_closes_4002(sim: WazoSimulator) -> None:
    async def go() -> Any:
        return await close_of(await opened(sim, "token=nope&version=2"))

    assert run(go()) == (4002, "authentication failed", [])


def test_token_without_the_websocketd_acl_closes_4002(sim: WazoSimulator) -> None:
    token = sim.issue_token("alice", acl=["events.calls.me"])

    async def go() -> Any:
        return await close_of(await opened(sim, f"token={token}&version=2"))

    assert run(go()) == (4002, "authentication failed", [])


def test_an_expired_token_cannot_open_a_socket(sim: WazoSimulator) -> None:
    token = sim.issue_token("alice", expiration=-1)

    async def go() -> Any:
        return await close_of(await opened(sim, f"token={token}"))

    assert run(go()) == (4002, "authentication failed", [])


@pytest.mark.parametrize(("version", "code"), [("3", 4004), ("0", 4004), ("two", 1011), ("", 4001)])
def test_bad_versions(sim: WazoSimulator, version: str, code: int) -> None:
    token = sim.issue_token("alice")
    query = f"version={version}" if version else ""

    async def go() -> Any:
        return await close_of(await opened(sim, query + f"&token={token}" if version else ""))

    got = run(go())
    assert got[0] == code
    assert got[1] == ("no token" if code == 4001 else "")


def test_header_token_and_default_version_1(sim: WazoSimulator) -> None:
    token = sim.issue_token("alice")

    async def go() -> str:
        ws = await opened(sim, "", path="/", **{"X-Auth-Token": token})
        first = await ws.recv()
        await ws.close()
        return str(first)

    assert run(go()) == '{"op": "init", "code": 0, "data": {"version": 1}}'


@pytest.mark.parametrize(
    "frame",
    [
        b"\x01\x02",
        "{not json",
        "[1]",
        '{"data": {}}',
        '{"op": 7}',
        '{"op": "unsubscribe", "data": {"event_name": "call_created"}}',
        '{"op": "subscribe", "data": {"event_name": 5}}',
        '{"op": "token", "data": "x"}',
        '{"op": "ping"}',
    ],
)
def test_protocol_violations_close_4004_with_an_empty_reason(sim: WazoSimulator, frame: str | bytes) -> None:
    async def go() -> Any:
        ws = await session(sim, "alice", "*")
        await ws.send(frame)
        return await close_of(ws)

    assert run(go()) == (4004, "", [])
    assert sim.closes[-1] == (4004, "")


# -- the v1 / v2 rules over a socket -----------------------------------------------------------------------


def test_v2_acks_pong_and_events_only_after_start(sim: WazoSimulator) -> None:
    async def go() -> tuple[list[Any], list[str]]:
        token = sim._issue(sim.user("alice"), None, None).info.token
        ws = await opened(sim, f"token={token}&version=2")
        got = await frames(ws, 1)
        await ws.send(w.op_subscribe("call_created"))
        got += await frames(ws, 1)
        await sim.aplay(CallScenario(seed=1), 0)  # before start: dropped, not queued
        assert await quiet(ws)
        await ws.send(w.op_start())
        await ws.send(w.op_subscribe("call_ended"))  # after start: acked in v2
        await ws.send(w.op_ping("hello"))
        got += await frames(ws, 3)
        await sim.aplay(CallScenario(seed=2), 0)
        events = [json.loads(await asyncio.wait_for(ws.recv(), 5))["data"]["name"] for _ in range(2)]
        assert await quiet(ws)
        await ws.close()
        return got, events

    got, events = run(go())
    assert got == [
        {"op": "init", "code": 0, "data": {"version": 2}},
        {"op": "subscribe", "code": 0, "data": None},
        {"op": "start", "code": 0, "data": None},
        {"op": "subscribe", "code": 0, "data": None},
        {"op": "pong", "code": 0, "data": {"payload": "hello"}},
    ]
    assert events == ["call_created", "call_ended"]  # alice's leg only, and only the subscribed names


def test_v1_raw_bodies_no_late_acks_no_pong(sim: WazoSimulator) -> None:
    async def go() -> tuple[list[Any], bool]:
        ws = await session(sim, "alice", "call_created", version=1)
        await ws.send(w.op_subscribe("call_ended"))  # no ack after start in v1
        await ws.send(w.op_ping("x"))  # ignored in v1
        silent = await quiet(ws)
        await sim.aplay(CallScenario(seed=3), 0)
        got = await frames(ws, 2)
        await ws.close()
        return got, silent

    got, silent = run(go())
    assert silent
    assert [g["name"] for g in got] == ["call_created", "call_ended"]
    assert "op" not in got[0] and got[0]["data"]["status"] == "Ring"


def test_v1_acks_before_start(sim: WazoSimulator) -> None:
    token = sim.issue_token("alice")
    renewal = sim.issue_token("alice")

    async def go() -> list[Any]:
        ws = await opened(sim, f"token={token}&version=1")
        await ws.send(w.op_subscribe("*"))
        await ws.send(w.op_token(renewal))
        await ws.send(w.op_start())
        got = await frames(ws, 4)
        await ws.close()
        return got

    assert [g["op"] for g in run(go())] == ["init", "subscribe", "token", "start"]


# -- tokens ------------------------------------------------------------------------------------------------


def test_expiry_closes_4003(sim: WazoSimulator) -> None:
    token = sim.issue_token("alice", expiration=0.6)

    async def go() -> Any:
        ws = await opened(sim, f"token={token}&version=2")
        started = asyncio.get_running_loop().time()
        result = await close_of(ws, 5)
        return result, asyncio.get_running_loop().time() - started

    (code, reason, got), took = run(go())
    assert (code, reason) == (4003, "authentication expired")
    assert got == ['{"op": "init", "code": 0, "data": {"version": 2}}']
    assert 0.5 < took < 2.0  # checked when the token runs out


def test_revoke_closes_4003(sim: WazoSimulator) -> None:
    token = sim.issue_token("alice")

    async def go() -> Any:
        ws = await opened(sim, f"token={token}&version=2")
        await ws.recv()

        def revoke() -> None:
            sim._tokens[token].revoked = True
            sim._recheck()

        loop.call_soon(revoke)
        return await close_of(ws, 3)

    assert run(go())[:2] == (4003, "authentication expired")


def test_renewal_keeps_the_socket_past_expiry(sim: WazoSimulator) -> None:
    first = sim.issue_token("alice", expiration=0.5)
    second = sim.issue_token("alice", expiration=30)

    async def go() -> list[Any]:
        ws = await opened(sim, f"token={first}&version=2")
        await ws.send(w.op_start())
        await ws.send(w.op_token(second))
        got = await frames(ws, 3)
        await asyncio.sleep(1.2)  # past the first token's expiry and a check
        await ws.send(w.op_ping("still"))
        got += await frames(ws, 1)
        await ws.close()
        return got

    assert [g["op"] for g in run(go())] == ["init", "start", "token", "pong"]


def test_bad_renewal_closes_4002(sim: WazoSimulator) -> None:
    async def go() -> Any:
        ws = await session(sim, "alice", "*")
        await ws.send(w.op_token("forged"))
        return await close_of(ws)

    assert run(go()) == (4002, "authentication failed", [])


def test_the_check_interval_scales(sim: WazoSimulator) -> None:
    """A revoked token is noticed at the next scheduled check: 0.75 × 7200 s × scale."""
    sim.auth_check_scale = 0.0002  # 5400 s → 1.08 s
    token = sim.issue_token("alice")

    async def go() -> Any:
        ws = await opened(sim, f"token={token}&version=2")
        await ws.recv()
        sim._tokens[token].revoked = True  # without the re-check shortcut
        started = asyncio.get_running_loop().time()
        result = await close_of(ws, 4)
        return result[0], asyncio.get_running_loop().time() - started

    code, took = run(go())
    assert code == 4003 and 0.6 < took < 2.0


# -- WS pings ------------------------------------------------------------------------------------------------


def test_the_server_sends_ws_pings() -> None:
    server = WazoSimulator(ws_ping_interval=0.2)
    server.start()
    token = server.issue_token("alice")

    async def go() -> list[aiohttp.WSMsgType]:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{server.ws_url}?token={token}&version=2", autoping=False) as ws,
        ):
            kinds = [(await ws.receive(2)).type, (await ws.receive(2)).type]
            await ws.pong()
            return kinds

    try:
        assert run(go()) == [aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING]
    finally:
        server.stop()


# -- filtering: who receives what ----------------------------------------------------------------------------


def test_each_socket_gets_what_its_token_may_see(sim: WazoSimulator) -> None:
    async def collect() -> dict[str, list[tuple[str, str | None]]]:
        names = ["alice", "bob", "admin", "carol", "root"]
        socks = {n: await session(sim, n, "*") for n in names}
        await sim.aplay(CallScenario(seed=4, caller="1001", callee="1002", direction="internal"), 0)
        await sim.apublish_body(
            sim.body(
                "chatd_presence_updated",
                {"uuid": "x"},
                user_uuids=("*",),
                required_acl="events.chatd.users.x.presences.updated",
            )
        )
        seen: dict[str, list[tuple[str, str | None]]] = {}
        for name, ws in socks.items():
            got: list[tuple[str, str | None]] = []
            while True:
                try:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                except TimeoutError:
                    break
                body = frame["data"]
                got.append((body["name"], body["data"].get("user_uuid")))
            await ws.close()
            seen[name] = got
        return seen

    seen = run(collect())
    alice, bob = sim.user("alice").uuid, sim.user("bob").uuid
    leg = ["call_created", "call_updated", "call_answered", "call_ended"]
    assert seen["alice"] == [(n, alice) for n in leg] + [("chatd_presence_updated", None)]
    assert seen["bob"] == [(n, bob) for n in leg] + [("chatd_presence_updated", None)]
    assert sorted(seen["admin"]) == sorted(seen["alice"] + seen["bob"][:-1])
    assert sorted(seen["root"]) == sorted(seen["admin"])
    assert seen["carol"] == []  # another tenant


def test_a_token_without_the_event_acl_gets_nothing(sim: WazoSimulator) -> None:
    token = sim.issue_token("alice", acl=["websocketd"])

    async def go() -> bool:
        ws = await opened(sim, f"token={token}&version=2")
        await ws.send(w.op_subscribe("*"))
        await ws.send(w.op_start())
        await frames(ws, 3)
        await sim.aplay(CallScenario(seed=5), 0)
        silent = await quiet(ws, 0.3)
        await ws.close()
        return silent

    assert run(go())


def test_call_event_shapes_and_hold(sim: WazoSimulator) -> None:
    scenario = CallScenario(
        seed=6, caller="1001", callee="1002", direction="internal", ring=1, talk=4, hold=1, start=1700000000.0
    )

    async def go() -> list[dict[str, Any]]:
        ws = await session(sim, "alice", "*")
        await sim.aplay(scenario, 0)
        got = [f["data"] for f in await frames(ws, 6)]
        await ws.close()
        return got

    bodies = run(go())
    alice, bob = sim.user("alice"), sim.user("bob")
    assert [b["name"] for b in bodies] == [
        "call_created", "call_updated", "call_answered", "call_held", "call_resumed", "call_ended",
    ]  # fmt: skip
    created, _, answered, held, _, ended = bodies
    call_id = created["data"]["call_id"]
    assert call_id.startswith("1700000000.")
    peer = f"1700000000.{int(call_id.split('.')[1]) + 1}"
    assert set(created) == {
        "name", "origin_uuid", "timestamp", "tenant_uuid", f"user_uuid:{alice.uuid}", "required_acl",
        "required_access", "data",
    }  # fmt: skip
    assert created["required_acl"] == f"events.calls.{alice.uuid}"
    assert created["required_access"] == "event.call_created"
    assert created["origin_uuid"] == sim.origin_uuid and created["tenant_uuid"] == alice.tenant_uuid
    assert w.parse_iso(created["timestamp"]) is not None and "+" not in created["timestamp"][10:]
    data = created["data"]
    assert (data["status"], data["is_caller"], data["direction"], data["line_id"]) == (
        "Ring",
        True,
        "internal",
        11,
    )
    assert (data["caller_id_number"], data["peer_caller_id_number"], data["dialed_extension"]) == (
        "1001",
        "1002",
        "1002",
    )
    assert w.parse_iso(data["creation_time"]) == pytest.approx(1700000000.0)
    assert data["answer_time"] is None and "reason_code" not in data
    assert answered["data"]["status"] == "Up"
    assert w.parse_iso(answered["data"]["answer_time"]) == pytest.approx(1700000001.0)
    assert answered["data"]["talking_to"] == {peer: bob.uuid}
    assert held["data"] == {"call_id": call_id, "user_uuid": alice.uuid}
    assert ended["data"]["reason_code"] == 16
    assert w.parse_iso(ended["data"]["hangup_time"]) == pytest.approx(1700000005.0)


def test_unanswered_call_statuses_and_cause(sim: WazoSimulator) -> None:
    scenario = CallScenario(seed=7, caller="1001", callee="1002", answered=False, ring=2)

    async def go() -> list[tuple[str, str, int | None]]:
        ws = await session(sim, "bob", "*")
        await sim.aplay(scenario, 0)
        got = [f["data"] for f in await frames(ws, 3)]
        await ws.close()
        return [(b["name"], b["data"]["status"], b["data"].get("reason_code")) for b in got]

    assert run(go()) == [
        ("call_created", "Ringing", None),
        ("call_updated", "Ringing", None),
        ("call_ended", "Ringing", 19),
    ]


# -- wazo-auth ----------------------------------------------------------------------------------------------


async def http(method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as client, client.request(method, url, **kwargs) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_post_token_shape_and_401(sim: WazoSimulator) -> None:
    url = f"{sim.http_url}/api/auth/0.1/token"
    status, body = run(
        http("POST", url, json={"expiration": 60, "backend": "wazo_user"}, headers=basic("alice", "alice-pw"))
    )
    assert status == 200
    data = body["data"]
    alice = sim.user("alice")
    assert {"token", "utc_expires_at", "expires_at", "session_uuid", "acl", "xivo_uuid", "metadata"} <= set(
        data
    )
    assert data["metadata"]["uuid"] == alice.uuid and data["metadata"]["tenant_uuid"] == alice.tenant_uuid
    assert data["metadata"]["pbx_user_uuid"] == alice.uuid and "websocketd" in data["acl"]
    lifetime = w.parse_utc(data["utc_expires_at"]) - w.parse_utc(data["utc_issued_at"])  # type: ignore[operator]
    assert lifetime == pytest.approx(60, abs=0.01)
    assert run(http("POST", url, headers=basic("alice", "wrong")))[0] == 401
    assert run(http("POST", url))[0] == 401
    assert run(http("POST", url, headers={"Authorization": "Basic !!!"}))[0] == 401
    assert run(http("POST", url, json={"expiration": "soon"}, headers=basic("alice", "alice-pw")))[0] == 400


def test_get_and_head_token(sim: WazoSimulator) -> None:
    token = sim.issue_token("alice")
    url = f"{sim.http_url}/api/auth/0.1/token/{token}"
    status, body = run(http("GET", url, params={"scope": "websocketd"}))
    assert status == 200 and body["data"]["token"] == token
    assert run(http("GET", url, params={"scope": "confd.users.read"}))[0] == 403
    assert run(http("HEAD", url))[0] == 200
    assert run(http("HEAD", f"{sim.http_url}/api/auth/0.1/token/nope"))[0] == 404
    sim.expire_in(token, -1)
    assert run(http("GET", url))[0] == 404


# -- wazo-calld ----------------------------------------------------------------------------------------------


def test_calld_places_lists_and_hangs_up(sim: WazoSimulator) -> None:
    alice, bob = sim.issue_token("alice"), sim.issue_token("bob")
    base = f"{sim.http_url}/api/calld/1.0/users/me/calls"

    async def go() -> Any:
        ws = await session(sim, "alice", "*")
        status, call = await http("POST", base, json={"extension": "1002"}, headers={"X-Auth-Token": alice})
        assert status == 201 and call["status"] == "Ring" and call["is_caller"] is True
        got = await frames(ws, 3)  # created, updated, answered (ring 0.05 s)
        _, mine = await http("GET", base, headers={"X-Auth-Token": alice})
        _, bobs = await http("GET", base, headers={"X-Auth-Token": bob})
        forbidden = await http("DELETE", f"{base}/{call['call_id']}", headers={"X-Auth-Token": bob})
        unknown = await http("DELETE", f"{base}/9.9", headers={"X-Auth-Token": alice})
        gone = await http("DELETE", f"{base}/{call['call_id']}", headers={"X-Auth-Token": alice})
        got += await frames(ws, 1)
        no_auth = await http("GET", base)
        bad = await http("POST", base, json={}, headers={"X-Auth-Token": alice})
        await ws.close()
        return call, got, mine, bobs, forbidden, unknown, gone, no_auth, bad

    call, got, mine, bobs, forbidden, unknown, gone, no_auth, bad = run(go())
    assert [(f["data"]["name"], f["data"]["data"]["status"]) for f in got] == [
        ("call_created", "Ring"),
        ("call_updated", "Ring"),
        ("call_answered", "Up"),
        ("call_ended", "Up"),
    ]
    assert got[-1]["data"]["data"]["call_id"] == call["call_id"]
    assert [c["call_id"] for c in mine["items"]] == [call["call_id"]]
    assert len(bobs["items"]) == 1 and bobs["items"][0]["is_caller"] is False
    assert forbidden[0] == 403 and forbidden[1]["error_id"] == "user-permission-denied"
    assert unknown[0] == 404
    assert gone == (204, None)
    assert no_auth[0] == 401 and bad[0] == 400


# -- test helpers --------------------------------------------------------------------------


def test_drop_all_and_send_raw(sim: WazoSimulator) -> None:
    async def go() -> Any:
        ws = await session(sim, "alice", "*")
        assert await sim.asend_raw("raw text") == 1
        first = await ws.recv()
        assert await sim.adrop_all() == 1
        return first, await close_of(ws)

    assert run(go()) == ("raw text", (1001, "going away", []))
    assert sim.open_sockets == 0
