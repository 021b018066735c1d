"""The Basix simulator (platforms.md §2.7) driven by raw ``websockets`` / aiohttp clients on loopback:
auth, tickets, the connection limit, opening frames, scenarios, commands and call_user."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from jambonz_lab import loop
from jambonz_lab.platforms import CallScenario
from jambonz_lab.platforms.basix_sim import DEFAULT_CATEGORIES, BasixSimulator
from jambonz_lab.protocol import basix as b
from jambonz_lab.protocol.etf import decode

WS = "/basix/api/ws_cti"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


AUTH = basic("example", "secret")


@pytest.fixture
def sim() -> Iterator[BasixSimulator]:
    s = BasixSimulator(accounts={"example": "secret"}, ticket_ttl=2.0)
    s.start()
    try:
        yield s
    finally:
        s.stop()


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
    return loop.submit(coro).result(timeout)


async def open_ws(sim: BasixSimulator, query: str, headers: dict[str, str] | None = None) -> ClientConnection:
    return await connect(
        f"ws://127.0.0.1:{sim.port}{WS}?{query}",
        additional_headers=AUTH if headers is None else headers,
        compression=None,
        open_timeout=5,
    )


async def recv(ws: ClientConnection, timeout: float = 5.0) -> b.BasixMessage:
    data = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(data, bytes), f"expected a binary frame, got text {data!r}"
    return b.parse_message(decode(data))


async def opening(ws: ClientConnection) -> list[b.BasixMessage]:
    return [await recv(ws) for _ in range(2 * len(DEFAULT_CATEGORIES))]


async def status_of(
    sim: BasixSimulator, query: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    try:
        ws = await open_ws(sim, query, headers)
    except InvalidStatus as exc:
        return exc.response.status_code, json.loads(exc.response.body or b"null")
    await ws.close()
    return 101, None


async def post(
    sim: BasixSimulator, path: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            sim.http_url + path, json=body, headers=AUTH if headers is None else headers
        ) as r:
            return r.status, await r.json()


class TestAuth:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            basic("example", "wrong"),
            basic("nobody", "secret"),
            {"Authorization": "Basic !!!"},
            {"Authorization": "Bearer x"},
        ],
    )
    def test_bad_credentials_get_401(self, sim: BasixSimulator, headers: dict[str, str]) -> None:
        assert run(status_of(sim, "app_name=lab", headers)) == (
            401,
            {"result_code": 401, "error": "authentication failed: Basic DOMAIN:API_TOKEN expected"},
        )

    def test_missing_app_name_gets_400(self, sim: BasixSimulator) -> None:
        assert run(status_of(sim, "user_name=bob")) == (
            400,
            {"result_code": 400, "error": "app_name is required"},
        )
        assert run(status_of(sim, "app_name=")) == (
            400,
            {"result_code": 400, "error": "app_name is required"},
        )

    def test_unknown_user_gets_404(self, sim: BasixSimulator) -> None:
        assert run(status_of(sim, "app_name=lab&user_name=nobody")) == (
            404,
            {"result_code": 404, "error": "user not found"},
        )

    @pytest.mark.parametrize(
        "selector",
        [
            "user_id=10001002",
            "user_name=bob",
            "user_label=Bob",
            "user_extension=1002",
            "user_did=0312340002",
            "user_email=bob%40example.com",
        ],
    )
    def test_every_selector_finds_the_user(self, sim: BasixSimulator, selector: str) -> None:
        assert run(status_of(sim, f"app_name=lab&{selector}")) == (101, None)


class TestTickets:
    def test_ticket_is_single_use_and_bound_to_the_exact_uri(self, sim: BasixSimulator) -> None:
        uri = f"{WS}?app_name=lab&user_name=bob&forced=true"

        async def go() -> list[Any]:
            status, body = await post(sim, "/basix/api/gen_ws_ticket", {"uri": uri})
            assert status == 200 and body["result_code"] == 0
            ticket = body["ticket"]
            ws = await open_ws(sim, uri.split("?", 1)[1], basic("ws_ticket", ticket))
            first = await recv(ws)
            await ws.close()
            again = await status_of(sim, uri.split("?", 1)[1], basic("ws_ticket", ticket))
            _, body = await post(sim, "/basix/api/gen_ws_ticket", {"uri": uri})
            other = await status_of(sim, "app_name=lab&user_name=bob", basic("ws_ticket", body["ticket"]))
            # the mismatch used the ticket up too
            used = await status_of(sim, uri.split("?", 1)[1], basic("ws_ticket", body["ticket"]))
            return [first.kind, again, other, used]

        first, again, other, used = run(go())
        assert first == "field_spec"
        assert again == (401, {"result_code": 401, "error": "unknown or already used ws ticket"})
        assert other == (401, {"result_code": 401, "error": "ws ticket was issued for another URI"})
        assert used == (401, {"result_code": 401, "error": "unknown or already used ws ticket"})

    def test_ticket_expires(self) -> None:
        sim = BasixSimulator(ticket_ttl=0.05)
        sim.start()
        try:

            async def go() -> tuple[int, Any]:
                _, body = await post(sim, "/basix/api/gen_ws_ticket", {"uri": f"{WS}?app_name=lab"})
                await asyncio.sleep(0.15)
                return await status_of(sim, "app_name=lab", basic("ws_ticket", body["ticket"]))

            assert run(go()) == (401, {"result_code": 401, "error": "ws ticket expired"})
        finally:
            sim.stop()

    def test_full_events_refused_with_a_ticket(self, sim: BasixSimulator) -> None:
        async def go() -> tuple[int, Any]:
            query = "app_name=lab&full_events=true"
            _, body = await post(sim, "/basix/api/gen_ws_ticket", {"uri": f"{WS}?{query}"})
            return await status_of(sim, query, basic("ws_ticket", body["ticket"]))

        assert run(go()) == (
            403,
            {"result_code": 403, "error": "full_events is not allowed with a ws ticket"},
        )

    def test_gen_ws_ticket_errors(self, sim: BasixSimulator) -> None:
        assert run(post(sim, "/basix/api/gen_ws_ticket", {"uri": "/x"}, basic("example", "no"))) == (
            401,
            {"result_code": 401, "error": "authentication failed: Basic DOMAIN:API_TOKEN expected"},
        )
        assert run(post(sim, "/basix/api/gen_ws_ticket", {"url": "/x"})) == (
            400,
            {"result_code": 400, "error": 'body must be {"uri": "/basix/api/ws_cti?..."}'},
        )


class TestOpening:
    def test_field_spec_then_initial_info_per_category_all_binary(self, sim: BasixSimulator) -> None:
        async def go() -> tuple[list[str | bytes], list[b.BasixMessage]]:
            ws = await open_ws(sim, "app_name=lab&full_events=true")
            raw = [await asyncio.wait_for(ws.recv(), 5) for _ in range(2 * len(DEFAULT_CATEGORIES))]
            await ws.close()
            return raw, [b.parse_message(decode(r)) for r in raw]  # type: ignore[arg-type]

        raw, msgs = run(go())
        assert all(isinstance(r, bytes) for r in raw)
        assert [(m.kind, m.entity) for m in msgs] == [
            (kind, entity) for entity in DEFAULT_CATEGORIES for kind in ("field_spec", "initial_info")
        ]
        assert raw[1] == b.encode_initial_info("channel", [])  # {bert, nil}
        assert msgs[0].fields == b.DEFAULT_FIELDS["channel"]
        users = msgs[5]
        assert [e[0] for e in users.elements] == [10001001, 10001002]
        for frame in raw:
            assert frame[0] == 131
        members = msgs[9]
        assert members.elements == (
            (110001001, 10001111, 10001001, 0, 1, 0),
            (110001002, 10001111, 10001002, 0, 1, 0),
        )

    def test_configured_field_order(self) -> None:
        fields = list(b.DEFAULT_FIELDS["user"])
        random.Random(5).shuffle(fields)
        sim = BasixSimulator(field_specs={"user": fields}, categories=("user",))
        sim.start()
        try:

            async def go() -> list[b.BasixMessage]:
                ws = await open_ws(sim, "app_name=lab")
                out = [await recv(ws), await recv(ws)]
                await ws.close()
                return out

            spec, initial = run(go())
            assert spec.fields == tuple(fields)
            jessica = dict(zip(fields, initial.elements[0], strict=True))
            assert (
                jessica["name"] == "jessica"
                and jessica["id"] == 10001001
                and jessica["presence"] == "available"
            )
        finally:
            sim.stop()


class TestLimit:
    def test_third_connection_is_refused_with_connection_limit_reached(self, sim: BasixSimulator) -> None:
        async def go() -> tuple[b.BasixMessage, int | None, str | None, int]:
            one = await open_ws(sim, "app_name=lab&user_name=bob")
            two = await open_ws(sim, "app_name=lab&user_name=bob")
            other_app = await open_ws(sim, "app_name=other&user_name=bob")
            third = await open_ws(sim, "app_name=lab&user_name=bob")
            msg = await recv(third)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(third.recv(), 5)
            code, reason = third.close_code, third.close_reason
            count = sim.clients
            for ws in (one, two, other_app):
                await ws.close()
            return msg, code, reason, count

        msg, code, reason, count = run(go())
        assert msg == b.BasixMessage("system_msg", msg="connection_limit_reached")
        assert (code, reason) == (1000, "connection_limit_reached")
        assert count == 3

    @pytest.mark.parametrize("flag", ["forced=true", "force=true"])
    def test_forced_replaces_the_oldest(self, sim: BasixSimulator, flag: str) -> None:
        async def go() -> tuple[list[str], int | None, list[str | None]]:
            one = await open_ws(sim, "app_name=lab&user_name=bob")
            await opening(one)
            two = await open_ws(sim, "app_name=lab&user_name=bob")
            third = await open_ws(sim, f"app_name=lab&user_name=bob&{flag}")
            msg = await recv(one)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(one.recv(), 5)
            kinds = [m.kind for m in await opening(third)]
            await two.close()
            await third.close()
            return kinds, one.close_code, [msg.msg, one.close_reason]

        kinds, code, texts = run(go())
        assert texts == ["connection_replaced", "connection_replaced"]
        assert code == 1000
        assert kinds[:2] == ["field_spec", "initial_info"]


async def frames_until_quiet(ws: ClientConnection, quiet: float = 0.3) -> list[b.BasixMessage]:
    out = []
    while True:
        try:
            out.append(await recv(ws, quiet))
        except TimeoutError:
            return out


def channel_events(msgs: list[b.BasixMessage]) -> list[tuple[str, str, str | None, str | None]]:
    """(event, uuid, last_event, last_event_data) per channel info_event (README order)."""
    d = b.Decoder()
    out = []
    for m in msgs:
        if m.kind == "info_event" and m.entity == "channel" and m.element is not None:
            e = d.element("channel", m.element)
            out.append((str(m.event), e["uuid"], e["last_event"], e["last_event_data"]))
    return out


class TestScenarios:
    def play(
        self, sim: BasixSimulator, scenario: CallScenario, query: str = "app_name=lab&full_events=true"
    ) -> list[b.BasixMessage]:
        async def go() -> list[b.BasixMessage]:
            ws = await open_ws(sim, query)
            await opening(ws)
            await sim.aplay(scenario, 0)
            msgs = await frames_until_quiet(ws)
            await ws.close()
            return msgs

        return run(go())

    def test_answered_call(self, sim: BasixSimulator) -> None:
        call = CallScenario(caller="0312341234", callee="1002", ring=1, talk=2, seed=4)
        a, bb = sim.leg_uuid(call, "a"), sim.leg_uuid(call, "b")
        msgs = self.play(sim, call)
        assert channel_events(msgs) == [
            ("added", a, "STATE_CHANGE", None),
            ("added", bb, "STATE_CHANGE", None),
            ("updated", bb, "CHANNEL_ANSWER", None),
            ("updated", a, "CHANNEL_ANSWER", None),
            ("updated", bb, "CHANNEL_HANGUP", "recv_bye,NORMAL_CLEARING"),
            ("removed", bb, "CHANNEL_HANGUP", "recv_bye,NORMAL_CLEARING"),
            ("updated", a, "CHANNEL_HANGUP", "send_bye,NORMAL_CLEARING"),
            ("removed", a, "CHANNEL_HANGUP", "send_bye,NORMAL_CLEARING"),
        ]
        d = b.Decoder()
        added_a = d.element("channel", msgs[0].element or ())
        assert added_a["state"]["name"] == "calling" and added_a["state"]["target"] == {"user_id": 10001002}
        assert added_a["direction"] == "inbound" and added_a["peer_location"] == "external"
        answered_a = d.element("channel", msgs[3].element or ())
        assert answered_a["other_uuid"] == bb and answered_a["state"]["name"] == "bridged"
        assert answered_a["last_bridged_user_id"] == 10001002
        assert answered_a["answer_timestamp"] - answered_a["offer_timestamp"] == 1_000_000
        hung_a = d.element("channel", msgs[6].element or ())
        assert hung_a["hangup_timestamp"] - hung_a["answer_timestamp"] == 2_000_000
        leg_b = d.element("channel", msgs[1].element or ())
        assert leg_b["user_id"] == 10001002 and leg_b["other_info"]["type"] == "end_user"

    def test_group_call_rings_the_group(self, sim: BasixSimulator) -> None:
        msgs = self.play(sim, CallScenario(callee="2000", ring=1, talk=1, seed=2))
        added = b.Decoder().element("channel", msgs[0].element or ())
        assert added["group_id"] == 10001111
        assert added["state"]["target_type"] == "group"
        assert added["state"]["target"] == {"mode": "ring", "group_id": 10001111, "queue": "group1"}
        assert added["target"] == {"type": "group", "id": 10001111, "name": "group1", "address": "2000"}

    @pytest.mark.parametrize(
        ("cause", "b_side", "a_side"),
        [
            (None, "send_cancel,NO_ANSWER", "send_refuse,NO_ANSWER"),
            ("USER_BUSY", "recv_refuse,USER_BUSY", "send_refuse,USER_BUSY"),
            ("ORIGINATOR_CANCEL", "send_cancel,ORIGINATOR_CANCEL", "recv_cancel,ORIGINATOR_CANCEL"),
        ],
    )
    def test_unanswered_calls(self, sim: BasixSimulator, cause: str | None, b_side: str, a_side: str) -> None:
        call = CallScenario(answered=False, hangup_cause=cause, ring=1, seed=9)
        events = channel_events(self.play(sim, call))
        assert [(e[0], e[3]) for e in events] == [
            ("added", None),
            ("added", None),
            ("updated", b_side),
            ("removed", b_side),
            ("updated", a_side),
            ("removed", a_side),
        ]

    def test_without_full_events_only_the_users_channels(self, sim: BasixSimulator) -> None:
        call = CallScenario(callee="1002", ring=1, talk=1, seed=4)
        a, bb = sim.leg_uuid(call, "a"), sim.leg_uuid(call, "b")
        bob = [(e[0], e[1]) for e in channel_events(self.play(sim, call, "app_name=lab&user_name=bob"))]
        # leg a (the caller's, user_id undefined) shows up once bridged to bob
        assert bob == [
            ("added", bb),
            ("updated", bb),
            ("updated", a),
            ("updated", bb),
            ("removed", bb),
            ("updated", a),
            ("removed", a),
        ]
        jessica = channel_events(
            self.play(
                sim, CallScenario(callee="1002", seed=5, ring=1, talk=1), "app_name=lab&user_name=jessica"
            )
        )
        assert jessica == []

    def test_hold_steps_send_nothing(self, sim: BasixSimulator) -> None:
        with_hold = channel_events(self.play(sim, CallScenario(ring=1, talk=3, hold=1, seed=1)))
        without = channel_events(self.play(sim, CallScenario(ring=1, talk=3, seed=1)))
        assert with_hold == without


class TestElementsAndRaw:
    def test_presence_login_status_and_raw_frames(self, sim: BasixSimulator) -> None:
        async def go() -> list[Any]:
            ws = await open_ws(sim, "app_name=lab")
            await opening(ws)
            await asyncio.to_thread(sim.set_presence, 10001002, "busy")
            await asyncio.to_thread(sim.set_login_status, 110001001, 0)
            await asyncio.to_thread(sim.send_raw, b"\x83\xc8")
            await asyncio.to_thread(sim.send_raw, "text")
            out = [await recv(ws), await recv(ws), await ws.recv(), await ws.recv()]
            await ws.close()
            return out

        user, member, raw, text = run(go())
        assert (user.entity, user.event) == ("user", "updated")
        assert dict(zip(b.DEFAULT_FIELDS["user"], user.element or (), strict=True))["presence"] == "busy"
        assert (member.entity, member.event, member.element) == (
            "group_member",
            "updated",
            (110001001, 10001111, 10001001, 0, 0, 0),
        )
        assert raw == b"\x83\xc8" and text == "text"
        assert sim.rows("user")[1]["presence"] == "busy"

    def test_drop_closes_every_socket(self, sim: BasixSimulator) -> None:
        async def go() -> int | None:
            ws = await open_ws(sim, "app_name=lab")
            await opening(ws)
            await asyncio.to_thread(sim.drop)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            return ws.close_code

        assert run(go()) == 1001
        assert sim.clients == 0


class TestCommands:
    def test_hangup_command_ends_both_legs(self, sim: BasixSimulator) -> None:
        call = CallScenario(ring=0.2, talk=60, seed=11)
        a, bb = sim.leg_uuid(call, "a"), sim.leg_uuid(call, "b")

        async def go() -> list[b.BasixMessage]:
            ws = await open_ws(sim, "app_name=lab&full_events=true")
            await opening(ws)
            task = asyncio.get_running_loop().create_task(sim.aplay(call, 1.0))
            for _ in range(4):  # added a, added b, answered b, answered a
                await recv(ws)
            await ws.send(json.dumps({"cmd": "hangup", "uuid": a}))
            msgs = await frames_until_quiet(ws)
            task.cancel()
            await ws.close()
            return msgs

        events = channel_events(run(go()))
        assert events == [
            ("updated", a, "CHANNEL_HANGUP", "send_bye,NORMAL_CLEARING"),
            ("removed", a, "CHANNEL_HANGUP", "send_bye,NORMAL_CLEARING"),
            ("updated", bb, "CHANNEL_HANGUP", "recv_bye,NORMAL_CLEARING"),
            ("removed", bb, "CHANNEL_HANGUP", "recv_bye,NORMAL_CLEARING"),
        ]
        assert sim.rows("channel") == []
        assert sim.commands == [{"cmd": "hangup", "uuid": a}]

    def test_bad_and_unknown_commands_are_kept_and_ignored(self, sim: BasixSimulator) -> None:
        async def go() -> list[b.BasixMessage]:
            ws = await open_ws(sim, "app_name=lab&full_events=true")
            await opening(ws)
            await ws.send("{nope")
            await ws.send("[1]")
            await ws.send(json.dumps({"cmd": "hangup", "uuid": "no-such"}))
            await ws.send(b"\x83\x6a")
            msgs = await frames_until_quiet(ws)
            await ws.close()
            return msgs

        assert run(go()) == []
        assert sim.commands[0]["_error"].startswith("not JSON: ")
        assert sim.commands[1:] == [{"_error": "not a JSON object"}, {"cmd": "hangup", "uuid": "no-such"}]


class TestCallUser:
    def test_call_user_starts_a_call(self) -> None:
        sim = BasixSimulator(call_user_time_scale=0, call_user_options={"ring": 1, "talk": 1})
        sim.start()
        try:

            async def go() -> tuple[Any, list[b.BasixMessage]]:
                ws = await open_ws(sim, "app_name=lab&user_name=jessica")
                await opening(ws)
                reply = await post(
                    sim, "/basix/api/call_user", {"user_name": "jessica", "destination": "0312341234"}
                )
                msgs = await frames_until_quiet(ws)
                await ws.close()
                return reply, msgs

            (status, body), msgs = run(go())
            assert status == 200 and body["result_code"] == 0 and len(body["uuids"]) == 2
            events = channel_events(msgs)
            assert [e[1] for e in events if e[0] == "added"] == [body["uuids"][0]]  # jessica's own leg
            first = b.Decoder().element("channel", msgs[0].element or ())
            assert first["user_id"] == 10001001 and first["calling_number"] == "1001"
            assert first["called_number"] == "0312341234" and first["direction"] == "outbound"
            assert events[-1][0] == "removed"
        finally:
            sim.stop()

    @pytest.mark.parametrize(
        ("body", "headers", "expected"),
        [
            (
                {"user_name": "jessica", "destination": "03"},
                basic("example", "x"),
                (
                    401,
                    {"result_code": 401, "error": "authentication failed: Basic DOMAIN:API_TOKEN expected"},
                ),
            ),
            (
                {"user_name": "nobody", "destination": "03"},
                None,
                (200, {"result_code": 404, "error": "user not found"}),
            ),
            (
                {"destination": "03"},
                None,
                (200, {"result_code": 404, "error": "choose the user (user_id, user_name, ...)"}),
            ),
            ({"user_name": "jessica"}, None, (200, {"result_code": 400, "error": "destination is required"})),
            ([1], None, (200, {"result_code": 400, "error": "the body must be a JSON object"})),
        ],
    )
    def test_call_user_errors(
        self, sim: BasixSimulator, body: Any, headers: dict[str, str] | None, expected: tuple[int, Any]
    ) -> None:
        assert run(post(sim, "/basix/api/call_user", body, headers)) == expected


def test_stop_closes_clients_with_1001() -> None:
    sim = BasixSimulator()
    sim.start()

    async def go() -> ClientConnection:
        ws = await open_ws(sim, "app_name=lab")
        await opening(ws)
        return ws

    ws = run(go())
    t0 = time.monotonic()
    sim.stop()

    async def closed() -> int | None:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        return ws.close_code

    assert run(closed()) == 1001
    assert time.monotonic() - t0 < 5
