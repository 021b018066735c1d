"""The Kazoo simulator driven by raw ``websockets`` / aiohttp clients (platforms.md §1.6): handshake
statuses, exact reply and event frames, idle timeout, crash close, and the Crossbar channel calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Iterator
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from jambonz_lab import loop
from jambonz_lab.platforms.kazoo_sim import DEFAULT_ACCOUNT_ID as ACCT
from jambonz_lab.platforms.kazoo_sim import DEFAULT_AUTH_TOKEN as TOKEN
from jambonz_lab.platforms.kazoo_sim import KazooSimulator
from jambonz_lab.platforms.scenario import CallScenario
from jambonz_lab.protocol import kazoo as k

CHILD = "c0ffee00000000000000000000000001"


def run(coro: Awaitable[Any], timeout: float = 15.0) -> Any:
    async def wrap() -> Any:
        return await coro

    return loop.submit(wrap()).result(timeout)


@pytest.fixture
def sim() -> Iterator[KazooSimulator]:
    with KazooSimulator() as sim:
        yield sim


async def ws_connect(sim: KazooSimulator, path: str = "/", **kw: Any) -> ClientConnection:
    return await connect(sim.ws_url.rstrip("/") + path, compression=None, open_timeout=5, **kw)


async def ask(ws: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(frame))
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return reply


async def frames(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    return [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(n)]


def sub(binding: str, rid: str = "r-1", account: str = ACCT, token: str | None = TOKEN) -> dict[str, Any]:
    return k.subscribe_frame(binding, account_id=account, auth_token=token, request_id=rid)


class TestHandshake:
    def test_subprotocol_gets_400(self, sim: KazooSimulator) -> None:
        async def go() -> int:
            try:
                await ws_connect(sim, subprotocols=["ws.kazoo"])
            except InvalidStatus as exc:
                return exc.response.status_code
            raise AssertionError("handshake accepted")

        assert run(go()) == 400

    def test_any_path_is_accepted(self, sim: KazooSimulator) -> None:
        async def go() -> dict[str, Any]:
            async with await ws_connect(sim, "/socket.io/whatever?x=1") as ws:
                return await ask(ws, sub("call.*.*"))

        assert run(go())["status"] == "success"

    def test_connection_cap_per_ip_gets_429(self) -> None:
        sim = KazooSimulator(max_connections_per_ip=1)
        sim.start()
        try:

            async def go() -> int:
                async with await ws_connect(sim) as first:
                    await ask(first, sub("call.*.*"))
                    try:
                        await ws_connect(sim)
                    except InvalidStatus as exc:
                        return exc.response.status_code
                raise AssertionError("second connection accepted")

            assert run(go()) == 429
        finally:
            sim.stop()


class TestRequests:
    def test_subscribe_reply_is_exact(self, sim: KazooSimulator) -> None:
        async def go() -> list[dict[str, Any]]:
            async with await ws_connect(sim) as ws:
                return [
                    await ask(ws, sub("call.*.*")),
                    await ask(ws, sub("call.CHANNEL_CREATE.*", "r-2", token=None)),
                ]

        first, second = run(go())
        assert first == {
            "action": "reply",
            "request_id": "r-1",
            "status": "success",
            "data": {"subscribed": ["call.*.*"] * 9},
        }
        assert second["data"]["subscribed"] == ["call.*.*"] * 9 + ["call.CHANNEL_CREATE.*"]

    def test_error_strings_and_generated_request_id(self, sim: KazooSimulator) -> None:
        async def go() -> list[dict[str, Any]]:
            async with await ws_connect(sim) as ws:
                return [
                    await ask(ws, sub("call.*.*", token="WRONG")),
                    await ask(ws, {"action": "subscribe", "auth_token": TOKEN, "data": {"account_id": ACCT}}),
                    await ask(ws, sub("call.*.*", account=CHILD, rid="r-3")),
                    await ask(ws, sub("call.*.*", account="*", rid="r-4")),
                ]

        bad_token, missing, other_account, wildcard = run(go())
        assert bad_token == {
            "action": "reply",
            "request_id": "r-1",
            "status": "error",
            "data": {"errors": ["failed to authenticate token WRONG"]},
        }
        assert missing["data"] == {"errors": ["missing required keys : binding"]}
        rid = missing["request_id"]
        assert len(rid) == 32 and all(c in "0123456789abcdef" for c in rid)
        assert other_account["data"] == {"errors": ["unauthorized account id"]}
        assert wildcard["data"] == {"errors": ["unauthorized wildcard account id"]}

    def test_account_tree_and_superadmin(self, sim: KazooSimulator) -> None:
        sim.add_account(CHILD, ACCT)
        sim.add_token("ADMIN", "aaaa", superadmin=True)

        async def go() -> list[str]:
            async with await ws_connect(sim) as ws, await ws_connect(sim) as admin:
                a = await ask(ws, sub("call.*.*", account=CHILD))
                b = await ask(admin, sub("call.CHANNEL_CREATE.*", account="*", token="ADMIN"))
                return [a["status"], b["status"]]

        assert run(go()) == ["success", "success"]

    def test_ping_with_and_without_bh_ping(self, sim: KazooSimulator) -> None:
        plain = KazooSimulator(bh_ping=False)
        plain.start()
        try:

            async def go() -> list[dict[str, Any]]:
                async with await ws_connect(sim) as ws, await ws_connect(plain) as ws2:
                    pong = await ask(ws, k.ping_frame(auth_token=TOKEN, request_id="p"))
                    await ask(ws2, sub("call.CHANNEL_CREATE.*"))
                    last = await ask(ws2, k.ping_frame(auth_token=None, request_id="p2"))
                    return [pong, last]

            pong, last = run(go())
            assert pong == {
                "action": "reply",
                "request_id": "p",
                "status": "success",
                "data": {"response": "pong"},
            }
            assert last == {
                "action": "reply",
                "request_id": "p2",
                "status": "success",
                "data": {"subscribed": ["call.CHANNEL_CREATE.*"]},
            }
        finally:
            plain.stop()

    def test_rate_limit(self) -> None:
        sim = KazooSimulator(rate_capacity=3, rate_refill=0.001)
        sim.start()
        try:

            async def go() -> list[Any]:
                async with await ws_connect(sim) as ws:
                    port = ws.local_address[1]
                    out = [await ask(ws, k.ping_frame(auth_token=TOKEN, request_id=str(i))) for i in range(4)]
                    return [port, out]

            port, out = run(go())
            assert [r["status"] for r in out] == ["success"] * 3 + ["error"]
            assert out[3]["data"] == {"errors": [f"rate limiting threshold hit for 127.0.0.1:{port}!"]}
        finally:
            sim.stop()

    def test_not_json_closes_with_1011(self, sim: KazooSimulator) -> None:
        async def go() -> int | None:
            async with await ws_connect(sim) as ws:
                await ws.send("{not json")
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                return ws.close_code

        assert run(go()) == 1011


class TestEvents:
    def test_two_leg_call_frames(self, sim: KazooSimulator) -> None:
        call = CallScenario(seed=7, start=1443672756.0, ring=2, talk=5)

        async def go() -> list[dict[str, Any]]:
            async with await ws_connect(sim) as ws:
                await ask(ws, sub("call.*.*"))
                await sim.aplay(call, 0)
                return await frames(ws, 7)

        got = run(go())
        names = [(f["name"], f["data"]["call_id"]) for f in got]
        a, b = got[0]["data"]["call_id"], got[1]["data"]["call_id"]
        assert names == [
            ("CHANNEL_CREATE", a),
            ("CHANNEL_CREATE", b),
            ("CHANNEL_ANSWER", b),
            ("CHANNEL_ANSWER", a),
            ("CHANNEL_BRIDGE", a),
            ("CHANNEL_DESTROY", b),
            ("CHANNEL_DESTROY", a),
        ]
        assert a != b and len(a) == len(b) == 20 and a.isalnum() and a == a.lower()
        first = got[0]
        assert set(first) == {"action", "subscribed_key", "subscription_key", "name", "routing_key", "data"}
        assert first["action"] == "event" and first["subscribed_key"] == "call.*.*"
        assert first["subscription_key"] == f"call.{ACCT}.CHANNEL_CREATE.*"
        assert first["routing_key"] == f"call.{ACCT}.CHANNEL_CREATE.{a}"
        assert first["data"]["timestamp"] == 63610891956
        assert got[1]["data"]["timestamp"] == 63610891956  # + 0.1 s: whole seconds
        assert got[6]["data"]["timestamp"] == 63610891956 + 7
        assert "other_leg_call_id" not in first["data"]
        # the A leg's callee is not known yet; the number it dialed is (request / to), as in Kazoo
        assert "callee_id_number" not in first["data"]
        assert first["data"]["request"] == first["data"]["to"] == f"{call.callee}@{sim.realm}"
        assert all(f["data"]["other_leg_call_id"] == (a if f["data"]["call_id"] == b else b) for f in got[1:])
        assert first["data"]["custom_channel_vars"]["account_id"] == ACCT
        assert [f["data"]["call_direction"] for f in got[:2]] == ["inbound", "outbound"]
        destroy = got[5]["data"]
        assert destroy["hangup_cause"] == "NORMAL_CLEARING"
        assert (destroy["ringing_seconds"], destroy["billing_seconds"], destroy["duration_seconds"]) == (
            "2",
            "5",
            "7",
        )
        assert run(sim.aplay(call, 0)) is None  # ids repeat with the seed
        assert [d["call_id"] for _, d in sim.published[7:9]] == [a, b]

    def test_hold_and_unanswered(self, sim: KazooSimulator) -> None:
        async def go() -> list[dict[str, Any]]:
            async with await ws_connect(sim) as ws:
                await ask(ws, sub("call.*.*"))
                await sim.aplay(CallScenario(seed=1, hold=1.0, talk=5), 0)
                held = await frames(ws, 9)
                await sim.aplay(CallScenario(seed=2, answered=False, hangup_cause="USER_BUSY"), 0)
                return held + await frames(ws, 4)

        got = run(go())
        assert [f["name"] for f in got[5:7]] == ["CHANNEL_HOLD", "CHANNEL_UNHOLD"]
        assert [f["name"] for f in got[9:]] == [
            "CHANNEL_CREATE",
            "CHANNEL_CREATE",
            "CHANNEL_DESTROY",
            "CHANNEL_DESTROY",
        ]
        assert got[-1]["data"]["hangup_cause"] == "USER_BUSY" and got[-1]["data"]["billing_seconds"] == "0"

    def test_only_matching_bindings_get_events_one_frame_per_binding(self, sim: KazooSimulator) -> None:
        async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            async with await ws_connect(sim) as ws, await ws_connect(sim) as other:
                await ask(ws, sub("call.CHANNEL_DESTROY.*"))
                await ask(ws, sub("call.*.*", "r-2"))
                await ask(other, sub("call.CHANNEL_ANSWER.*"))
                await sim.aplay(CallScenario(seed=3), 0)
                return await frames(ws, 9), await frames(other, 2)

        mine, theirs = run(go())
        assert [(f["name"], f["subscribed_key"]) for f in mine[-4:]] == [
            ("CHANNEL_DESTROY", "call.CHANNEL_DESTROY.*"),
            ("CHANNEL_DESTROY", "call.*.*"),
            ("CHANNEL_DESTROY", "call.CHANNEL_DESTROY.*"),
            ("CHANNEL_DESTROY", "call.*.*"),
        ]
        assert [f["name"] for f in theirs] == ["CHANNEL_ANSWER", "CHANNEL_ANSWER"]

    def test_close_drops_the_bindings(self, sim: KazooSimulator) -> None:
        async def go() -> None:
            async with await ws_connect(sim) as ws:
                await ask(ws, sub("call.*.*"))
                assert sim.session_count == 1

        run(go())
        run(asyncio.sleep(0.1))
        assert sim.session_count == 0 and sim.bindings() == []

    def test_webhooks_get_every_event(self, sim: KazooSimulator) -> None:
        class Recorder:
            def __init__(self) -> None:
                self.got: list[tuple[str, dict[str, Any]]] = []

            async def publish(self, event_name: str, data: dict[str, Any]) -> None:
                self.got.append((event_name, data))

        hooks = Recorder()
        sim.webhooks = hooks  # type: ignore[assignment]
        run(sim.aplay(CallScenario(seed=4), 0))
        assert [n for n, _ in hooks.got] == [n for n, _ in sim.published] and len(hooks.got) == 7
        assert hooks.got[0][1]["custom_channel_vars"]["account_id"] == ACCT


class TestIdle:
    def test_listener_without_pings_is_dropped_one_with_pings_survives(self) -> None:
        sim = KazooSimulator(idle_timeout=0.4)
        sim.start()
        try:

            async def go() -> tuple[int | None, bool]:
                quiet = await ws_connect(sim, ping_interval=None)
                chatty = await ws_connect(sim, ping_interval=0.1)
                await ask(quiet, sub("call.*.*"))
                await ask(chatty, sub("call.*.*"))
                for _ in range(4):  # events flow, but only incoming frames count
                    await asyncio.sleep(0.2)
                    await sim.aplay(CallScenario(seed=5, answered=False), 0)
                try:
                    await quiet.wait_closed()
                    code = quiet.close_code
                finally:
                    alive = chatty.state.name == "OPEN"
                    await chatty.close()
                return code, alive

            code, alive = run(go())
            assert code == 1000 and alive
        finally:
            sim.stop()


class TestCrossbar:
    def test_401_without_a_valid_token(self, sim: KazooSimulator) -> None:
        async def go() -> tuple[int, Any]:
            async with aiohttp.ClientSession() as http:
                async with http.get(
                    f"{sim.http_url}/v2/accounts/{ACCT}/channels", headers={"X-Auth-Token": "bad"}
                ) as r:
                    return r.status, await r.json()

        status, body = run(go())
        assert status == 401
        assert (body["status"], body["error"], body["message"]) == ("error", "401", "invalid_credentials")

    def test_list_and_hang_up_with_metaflow_and_action_forms(self, sim: KazooSimulator) -> None:
        async def go() -> tuple[list[Any], list[str], list[dict[str, Any]], int]:
            headers = {"X-Auth-Token": TOKEN}
            async with aiohttp.ClientSession(headers=headers) as http, await ws_connect(sim) as ws:
                await ask(ws, sub("call.CHANNEL_DESTROY.*"))
                base = f"{sim.http_url}/v2/accounts/{ACCT}/channels"
                task = sim.spawn(sim.aplay(CallScenario(seed=6, ring=0.05, talk=30), 1))
                await asyncio.sleep(0.3)  # answered and bridged, talking
                async with http.get(base) as r:
                    listing = (await r.json())["data"]
                uuid = next(c["uuid"] for c in listing if c["direction"] == "inbound")
                body = {"action": "metaflow", "data": {"data": {"module": "hangup"}}}
                async with http.put(f"{base}/{uuid}", json=body) as r:
                    status = r.status
                got = await frames(ws, 2)
                task.cancel()
                async with http.get(base) as r:
                    after = (await r.json())["data"]
                async with http.post(f"{base}/{uuid}", json={"data": {"action": "hangup"}}) as r:
                    gone = r.status
                return listing, [uuid, str(len(after)), str(gone)], got, status

        listing, (uuid, left, gone), got, status = run(go())
        assert len(listing) == 2 and {c["answered"] for c in listing} == {True}
        assert status == 202 and left == "0" and gone == "404"
        assert [f["data"]["call_id"] for f in got][0] == uuid
        assert {f["name"] for f in got} == {"CHANNEL_DESTROY"} and len(
            {f["data"]["call_id"] for f in got}
        ) == 2
        assert sim.commands[0] == (
            "PUT",
            uuid,
            {"action": "metaflow", "data": {"data": {"module": "hangup"}}},
        )

    def test_bad_command_body(self, sim: KazooSimulator) -> None:
        async def go() -> list[int]:
            async with aiohttp.ClientSession(headers={"X-Auth-Token": TOKEN}) as http:
                url = f"{sim.http_url}/v2/accounts/{ACCT}/channels/nope"
                out = []
                for method, body in (("PUT", {"data": {"module": "hangup"}}), ("POST", {"data": {}})):
                    async with http.request(method, url, json=body) as r:
                        out.append(r.status)
                async with http.post(url, json={"data": {"action": "hangup"}}) as r:
                    out.append(r.status)
                return out

        assert run(go()) == [400, 400, 404]
