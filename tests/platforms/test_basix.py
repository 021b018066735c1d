"""BasixClient against the Basix simulator over real loopback sockets: tables, scenarios, reconnect,
bad frames, fatal system messages, tickets, commands and call_user."""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jambonz_lab.exceptions import PlatformError
from jambonz_lab.loop import in_loop_thread
from jambonz_lab.platforms import CallScenario, SourceState
from jambonz_lab.platforms.basix import BasixClient, call_user
from jambonz_lab.platforms.basix_sim import BasixSimulator
from jambonz_lab.protocol import basix as b
from jambonz_lab.protocol.etf import Atom, Charlist, encode
from jambonz_lab.records import RECORD_FIELDS
from tests.fakejambonz import wait_until

TYPE, CALL, DIR, PAYLOAD, NOTE, PATH, SOURCE = (
    RECORD_FIELDS.index(k) for k in ("type", "call_sid", "direction", "payload", "note", "path", "source")
)


@pytest.fixture
def sim() -> Iterator[BasixSimulator]:
    s = BasixSimulator(accounts={"acme": "s3cr/t:x"})
    s.start()
    try:
        yield s
    finally:
        s.stop()


class Rows(list[tuple[Any, ...]]):
    def types(self, direction: str | None = None) -> list[str]:
        return [r[TYPE] for r in self if direction is None or r[DIR] == direction]

    def of(self, type_: str) -> list[tuple[Any, ...]]:
        return [r for r in self if r[TYPE] == type_]


def client(sim: BasixSimulator, rows: Rows, **kw: Any) -> BasixClient:
    options: dict[str, Any] = {"domain": "acme", "token": "s3cr/t:x", "full_events": True, **kw}
    return BasixClient(sim.ws_url, app_name="lab", record=rows.append, backoff=(0.05, 0.2), **options)


@pytest.fixture
def rows() -> Rows:
    return Rows()


@pytest.fixture
def cti(sim: BasixSimulator, rows: Rows) -> Iterator[BasixClient]:
    c = client(sim, rows)
    c.connect()
    wait_until(lambda: "terminal.initial" in rows.types())
    try:
        yield c
    finally:
        c.close()


class TestConnect:
    def test_opening_rows_and_tables(self, cti: BasixClient, rows: Rows) -> None:
        assert rows.types()[:13] == [
            "open",
            "field_spec",
            "channel.initial",
            "field_spec",
            "channel_waiting.initial",
            "field_spec",
            "user.initial",
            "field_spec",
            "group.initial",
            "field_spec",
            "group_member.initial",
            "field_spec",
            "terminal.initial",
        ]
        assert {r[SOURCE] for r in rows} == {"basix"}
        users = cti.users
        assert list(users.columns) == list(b.DEFAULT_FIELDS["user"])
        assert users["name"].tolist() == ["jessica", "bob"]
        assert users["presence"].tolist() == ["available", "available"]
        assert cti.groups["main_extension"].tolist() == ["2000"]
        assert cti.group_members["login_status"].tolist() == [1, 1]
        assert cti.terminals["registered"].tolist() == [True, True]
        channels = cti.channels
        assert len(channels) == 0 and list(channels.columns) == list(b.DEFAULT_FIELDS["channel"])
        assert (
            len(cti.waiting_channels) == 0 and len(cti.queued_channels) == 0 and len(cti.parked_channels) == 0
        )
        spec = json.loads(rows.of("field_spec")[2][PAYLOAD])
        assert spec == {"entity": "user", "fields": list(b.DEFAULT_FIELDS["user"])}
        initial = json.loads(rows.of("user.initial")[0][PAYLOAD])
        assert initial["entity"] == "user" and [e["id"] for e in initial["elements"]] == [10001001, 10001002]

    def test_url_query_and_no_secrets_recorded(self, sim: BasixSimulator, rows: Rows) -> None:
        c = BasixClient(
            f"ws://acme:s3cr%2Ft%3Ax@127.0.0.1:{sim.port}",
            app_name="my lab",
            forced=True,
            user_email="bob@example.com",
            record=rows.append,
        )
        assert c.domain == "acme"
        assert (
            c.url
            == f"ws://127.0.0.1:{sim.port}/basix/api/ws_cti?app_name=my%20lab&forced=true&force=true&user_email=bob%40example.com"
        )
        assert (
            c.uri == "/basix/api/ws_cti?app_name=my%20lab&forced=true&force=true&user_email=bob%40example.com"
        )
        c.connect()
        try:
            wait_until(lambda: "terminal.initial" in rows.types())
        finally:
            c.close()
        assert all("s3cr" not in json.dumps(r, default=str) for r in rows)
        assert {r[PATH] for r in rows} == {c.url}

    def test_bad_token_is_fatal_at_connect(self, sim: BasixSimulator, rows: Rows) -> None:
        c = client(sim, rows, token="nope")
        with pytest.raises(PlatformError) as info:
            c.connect()
        assert str(info.value) == (
            "basix ws_cti authentication failed (domain:token or ticket): HTTP 401 "
            '{"result_code": 401, "error": "authentication failed: Basic DOMAIN:API_TOKEN expected"}'
        )
        assert c.state is SourceState.CLOSED
        assert rows.types() == ["connect-failed"]

    def test_unknown_user_is_refused(self, sim: BasixSimulator, rows: Rows) -> None:
        c = client(sim, rows, full_events=False, user_name="nobody")
        with pytest.raises(
            PlatformError, match=r"^basix ws_cti refused the upgrade: HTTP 404 .*user not found"
        ):
            c.connect()

    @pytest.mark.parametrize(
        ("kw", "message"),
        [
            ({"app_name": ""}, "app_name is required"),
            ({"domain": None, "token": None}, "give domain= and token="),
            ({"ticket": True, "full_events": True}, "Basix refuses full_events=true with a ws ticket"),
        ],
    )
    def test_bad_options(self, sim: BasixSimulator, kw: dict[str, Any], message: str) -> None:
        options: dict[str, Any] = {"app_name": "lab", "domain": "acme", "token": "t", **kw}
        with pytest.raises(ValueError, match=message):
            BasixClient(sim.ws_url, **options)
        with pytest.raises(ValueError, match="starts with ws:// or wss://"):
            BasixClient(sim.http_url, app_name="lab", domain="a", token="b")


class TestScenario:
    def test_tables_track_a_call_and_rows_follow_it(
        self, sim: BasixSimulator, cti: BasixClient, rows: Rows
    ) -> None:
        call = CallScenario(caller="0312341234", callee="1002", ring=1, talk=2, seed=3)
        a, bb = sim.leg_uuid(call, "a"), sim.leg_uuid(call, "b")
        snapshots: list[tuple[str, int]] = []
        cti.listen(lambda e: snapshots.append((e.type, len(cti.state_tables.rows("channel")))))
        rows.clear()
        done = cti.wait_for("channel.removed")
        sim.play(call, 0).result(10)
        assert done.result().call_id == bb
        wait_until(lambda: len(rows.of("channel.removed")) == 2)
        assert [(r[TYPE], r[CALL]) for r in rows] == [
            ("channel.added", a),
            ("channel.added", bb),
            ("channel.updated", bb),
            ("channel.updated", a),
            ("channel.updated", bb),
            ("channel.removed", bb),
            ("channel.updated", a),
            ("channel.removed", a),
        ]
        assert [n for _, n in snapshots] == [1, 2, 2, 2, 2, 1, 1, 0]
        assert len(cti.channels) == 0
        answered = json.loads(rows[3][PAYLOAD])
        assert answered["entity"] == "channel" and answered["event"] == "updated"
        element = answered["element"]
        assert element["state"]["name"] == "bridged" and element["other_uuid"] == bb
        assert element["last_event"] == "CHANNEL_ANSWER"
        flat = b.flat(rows[6][TYPE], json.loads(rows[6][PAYLOAD]))
        assert (
            flat["last_event"] == "CHANNEL_HANGUP" and flat["last_event_data"] == "send_bye,NORMAL_CLEARING"
        )
        assert flat["uuid"] == a and flat["calling_number"] == "0312341234" and flat["state"] == "bridged"

    def test_shuffled_field_spec_still_maps(self, rows: Rows) -> None:
        fields = list(b.DEFAULT_FIELDS["channel"])
        random.Random(11).shuffle(fields)
        assert fields[0] != "uuid"
        sim = BasixSimulator(accounts={"acme": "s3cr/t:x"}, field_specs={"channel": fields})
        sim.start()
        c = client(sim, rows)
        try:
            c.connect()
            added = c.wait_for("channel.added")
            call = CallScenario(caller="0312341234", callee="1001", ring=5, talk=1, seed=8)
            sim.play(call, 0).result(10)
            element = added.result().data["element"]
            assert element["uuid"] == sim.leg_uuid(call, "a")
            assert element["calling_number"] == "0312341234" and element["called_number"] == "1001"
            assert element["direction"] == "inbound" and element["state"]["target"] == {"user_id": 10001001}
            assert json.loads(rows.of("field_spec")[0][PAYLOAD])["fields"] == fields
        finally:
            c.close()
            sim.stop()

    def test_user_filter_and_element_updates(self, sim: BasixSimulator, rows: Rows) -> None:
        c = client(sim, rows, full_events=False, user_name="jessica")
        c.connect()
        try:
            presence = c.wait_for("user.updated")
            sim.set_presence(10001002, "busy")
            assert presence.result().data["element"]["presence"] == "busy"
            wait_until(lambda: c.users["presence"].tolist() == ["available", "busy"])
            login = c.wait_for("group_member.updated")
            sim.set_login_status(110001002, 0)
            assert login.result().data["element"] == {
                "id": 110001002,
                "group_id": 10001111,
                "user_id": 10001002,
                "priority": 0,
                "login_status": 0,
                "role": 0,
            }
            sim.play(CallScenario(callee="1002", ring=1, talk=1, seed=6), 0).result(10)  # bob's call
            mine = CallScenario(callee="1001", ring=1, talk=1, seed=7)
            ended = c.wait_for(lambda e: e.type == "channel.removed" and e.call_id == sim.leg_uuid(mine, "a"))
            sim.play(mine, 0).result(10)
            ended.result()
            seen = {r[CALL] for r in rows if r[TYPE].startswith("channel.") and r[TYPE] != "channel.initial"}
            assert seen == {sim.leg_uuid(mine, "a"), sim.leg_uuid(mine, "b")}
        finally:
            c.close()


class TestReconnect:
    def test_drop_reconnects_and_rebuilds_from_initial_info(
        self, sim: BasixSimulator, cti: BasixClient, rows: Rows
    ) -> None:
        call = CallScenario(caller="0312341234", callee="1002", ring=0.2, talk=60, seed=21)
        a, bb = sim.leg_uuid(call, "a"), sim.leg_uuid(call, "b")
        bridged = cti.wait_for(
            lambda e: e.call_id == a and e.data["element"]["last_event"] == "CHANNEL_ANSWER"
        )
        playing = sim.play(call, 1.0, timeout=90)
        bridged.result(10)
        assert sorted(cti.channels["uuid"]) == sorted([a, bb])
        rows.clear()
        sim.drop()
        sim.set_presence(10001001, "away")  # while the client is away
        wait_until(lambda: "reconnect" in rows.types() and len(rows.of("channel.initial")) == 1, 10)
        wait_until(lambda: "terminal.initial" in rows.types(), 5)
        assert rows.types("lab")[:2] == ["dropped", "open"]
        assert rows.of("dropped")[0][NOTE] == "socket closed (code 1001)"
        assert cti.connections == 2 and cti.state is SourceState.OPEN
        initial = json.loads(rows.of("channel.initial")[0][PAYLOAD])
        assert sorted(e["uuid"] for e in initial["elements"]) == sorted([a, bb])
        channels = cti.channels
        assert sorted(channels["uuid"]) == sorted([a, bb])
        assert set(s["name"] for s in channels["state"]) == {"bridged"}
        assert cti.users["presence"].tolist() == ["away", "available"]
        # the command ends the call on the simulator, which reports both legs gone
        gone = cti.wait_for(lambda e: e.type == "channel.removed" and e.call_id == bb)
        cti.hangup(a)
        gone.result(10)
        wait_until(lambda: len(cti.channels) == 0)
        out = rows.of("hangup")
        assert [(r[DIR], r[CALL], json.loads(r[PAYLOAD])) for r in out] == [
            ("out", a, {"cmd": "hangup", "uuid": a})
        ]
        last = [json.loads(r[PAYLOAD])["element"]["last_event_data"] for r in rows.of("channel.updated")[-2:]]
        assert last == ["send_bye,NORMAL_CLEARING", "recv_bye,NORMAL_CLEARING"]
        playing.result(5)  # the hangup ended the call: its play ends early (SimServer._over), not after 60 s
        assert sim.commands == [{"cmd": "hangup", "uuid": a}]


class TestBadInput:
    def test_unknown_tag_is_a_bad_frame_and_the_socket_survives(
        self, sim: BasixSimulator, cti: BasixClient, rows: Rows
    ) -> None:
        rows.clear()
        sim.send_raw(b"\x83\x68\x02\x64\x00\x03msg\xc8")
        sim.send_raw("plain text")
        sim.send_raw(encode((Atom("bogus"), Charlist("x"))))
        sim.send_raw(encode((Atom("info_event"), Charlist("user"), 5, Charlist("added"))))
        after = cti.wait_for("user.updated")
        sim.set_presence(10001001, "busy")
        assert after.result(5).data["element"]["presence"] == "busy"
        bad = rows.of("bad-frame")
        assert [r[NOTE] for r in bad] == [
            "TermDecodeError: undecodable BERT frame: unsupported term tag 200 at offset 9",
            "PlatformError: basix sent a text frame (10 chars); ws_cti frames are binary BERT terms",
            "PlatformError: unknown basix message kind Atom('bogus') (known: field_spec, initial_info, "
            "info_event, system_msg, msg)",
            "PlatformError: basix info_event element of user is not a tuple: 5",
        ]
        assert json.loads(bad[0][PAYLOAD]) == {"raw": "83 68 02 64 00 03 6d 73 67 c8"}
        assert cti.connections == 1 and cti.state is SourceState.OPEN

    def test_msg_and_system_msg_rows(self, sim: BasixSimulator, cti: BasixClient, rows: Rows) -> None:
        rows.clear()
        sim.send_raw(b.encode_msg("maintenance at 5"))
        sim.send_raw(b.encode_system_msg("logout"))
        wait_until(lambda: "system_msg" in rows.types())
        assert [(r[TYPE], json.loads(r[PAYLOAD]), r[NOTE]) for r in rows] == [
            ("msg", {"msg": "maintenance at 5"}, None),
            ("system_msg", {"msg": "logout"}, None),
        ]
        assert cti.state is SourceState.OPEN


class Recording(BasixClient):
    """Notes on which thread each frame was parsed (a test seam: the real _parse runs)."""

    parsed_on_loop: list[tuple[int, bool]]

    def _parse(self, data: str | bytes, pause: Callable[[], None] | None = None) -> b.BasixMessage:
        self.parsed_on_loop.append((len(data), in_loop_thread()))
        assert (pause is None) == in_loop_thread()  # off the loop, the decoder lets the loop have the GIL
        return super()._parse(data, pause)


def compressed(frame: bytes) -> bytes:
    inner = frame[1:]
    return b"\x83\x50" + len(inner).to_bytes(4, "big") + zlib.compress(inner, 9)


class TestBombs:
    """Issue 11 item 6: a frame that would cost seconds and GiB is refused by the caps, big and
    COMPRESSED frames are decoded off the loop thread, and frames stay in order."""

    def test_bomb_is_refused_big_frames_decode_off_loop_in_order(
        self, sim: BasixSimulator, rows: Rows
    ) -> None:
        cti = Recording(sim.ws_url, app_name="lab", record=rows.append, domain="acme", token="s3cr/t:x")
        cti.parsed_on_loop = []
        cti.connect()
        try:
            wait_until(lambda: "terminal.initial" in rows.types())
            rows.clear()
            cti.parsed_on_loop.clear()
            n = 4 * 1024 * 1024 - 6  # a LIST_EXT of n NILs inflates to MAX_INFLATED bytes
            bomb = b"\x83\x50" + (n + 6).to_bytes(4, "big")
            bomb += zlib.compress(b"\x6c" + n.to_bytes(4, "big") + b"\x6a" * (n + 1), 9)
            big = b.encode_msg("x" * 20_000)
            sim.send_raw(bomb)
            sim.send_raw(compressed(b.encode_msg("zipped")))
            sim.send_raw(big)
            sim.send_raw(b.encode_msg("small"))
            wait_until(lambda: len(rows.of("msg")) == 3)
            assert [r[TYPE] for r in rows] == ["bad-frame", "msg", "msg", "msg"]
            assert rows[0][NOTE] == (
                "TermDecodeError: undecodable BERT frame: more than 100000 terms in one frame "
                "(at the LIST_EXT at offset 0); refused as a decoding bomb "
                "(offsets count from the start of the inflated COMPRESSED term)"
            )
            assert [json.loads(r[PAYLOAD])["msg"][:6] for r in rows[1:]] == ["zipped", "xxxxxx", "small"]
            assert [on_loop for _, on_loop in cti.parsed_on_loop] == [False, False, False, True]
            assert len(bomb) < 8 * 1024  # small on the wire: only the compressed flag sends it off the loop
            assert cti.state is SourceState.OPEN and cti.connections == 1
        finally:
            cti.close()


class TestFatalSystemMsgs:
    def test_connection_replaced_stops_the_older_client(self, rows: Rows) -> None:
        sim = BasixSimulator(accounts={"acme": "s3cr/t:x"}, limit=1)
        sim.start()
        first = client(sim, rows)
        other_rows = Rows()
        second = client(sim, other_rows, forced=True)
        try:
            first.connect()
            second.connect()
            wait_until(lambda: first.state is SourceState.CLOSED, 5)
            assert [(r[TYPE], r[NOTE]) for r in rows if r[TYPE] in ("system_msg", "dropped")] == [
                (
                    "system_msg",
                    "connection_replaced: another client took this connection's place (forced); "
                    "not reconnecting",
                ),
                (
                    "dropped",
                    "PlatformError: basix connection_replaced: another client took this connection's place "
                    "(forced); not reconnecting",
                ),
            ]
            assert isinstance(first.error, PlatformError) and first.connections == 1
            assert "reconnect" not in rows.types() and second.state is SourceState.OPEN
        finally:
            first.close()
            second.close()
            sim.stop()

    def test_connection_limit_reached_stops_the_new_client(self, rows: Rows) -> None:
        sim = BasixSimulator(accounts={"acme": "s3cr/t:x"}, limit=1)
        sim.start()
        first = client(sim, Rows())
        second = client(sim, rows)
        try:
            first.connect()
            failed = second.wait_for("never", timeout=10)
            second.connect()
            wait_until(lambda: second.state is SourceState.CLOSED, 5)
            assert json.loads(rows.of("system_msg")[0][PAYLOAD]) == {"msg": "connection_limit_reached"}
            with pytest.raises(PlatformError, match="connection_limit_reached: the limit of 2 connections"):
                failed.result(5)
            assert first.state is SourceState.OPEN and sim.clients == 1
        finally:
            first.close()
            second.close()
            sim.stop()


class TestTicket:
    def test_ticket_auth_gets_a_new_ticket_on_reconnect(self, sim: BasixSimulator, rows: Rows) -> None:
        c = client(sim, rows, ticket=True, full_events=False, user_name="bob")
        c.connect()
        try:
            wait_until(lambda: "terminal.initial" in rows.types())
            sim.drop()
            wait_until(lambda: "reconnect" in rows.types(), 10)
            assert c.connections == 2 and "reconnect-failed" not in rows.types()
        finally:
            c.close()

    def test_ticket_with_bad_token_is_fatal(self, sim: BasixSimulator, rows: Rows) -> None:
        c = client(sim, rows, ticket=True, full_events=False, token="bad")
        with pytest.raises(PlatformError) as info:
            c.connect()
        assert str(info.value) == (
            "basix /basix/api/gen_ws_ticket failed: HTTP 401, result_code 401: "
            "authentication failed: Basic DOMAIN:API_TOKEN expected"
        )
        assert c._fatal(info.value)


class TestCommandsAndRest:
    def test_park_and_transfer_frames(self, sim: BasixSimulator, cti: BasixClient, rows: Rows) -> None:
        call = CallScenario(ring=0.1, talk=60, seed=30)
        a = sim.leg_uuid(call, "a")
        added = cti.wait_for("channel.added")
        playing = sim.play(call, 1.0, timeout=90)
        added.result(5)
        parked = cti.wait_for(
            lambda e: e.call_id == a and (e.data["element"]["state"] or {}).get("name") == "park"
        )
        cti.park(a, 701)
        assert parked.result(5).data["element"]["state"]["slot"] == 701
        cti.transfer(a, user_name="bob")
        cti.eavesdrop("plug-1", target_uuid=a, subcommand="listen")
        wait_until(lambda: len(sim.commands) == 3)
        assert sim.commands == [
            {"cmd": "park", "uuid": a, "timeout": 701},
            {"cmd": "transfer", "uuid": a, "user_name": "bob"},
            {"cmd": "eavesdrop", "uuid": "plug-1", "target_uuid": a, "subcommand": "listen"},
        ]
        assert rows.types("out") == ["park", "transfer", "eavesdrop"]
        cti.hangup(a)
        wait_until(lambda: sim.rows("channel") == [])
        assert not playing.done

    def test_call_user(self, sim: BasixSimulator, rows: Rows) -> None:
        sim.call_user_time_scale = 0
        c = client(sim, rows, full_events=False, user_name="jessica")
        c.connect()
        try:
            removed = c.wait_for("channel.removed")
            uuids = c.call_user(user_name="jessica", destination="0312341234")
            assert len(uuids) == 2
            assert removed.result(10).call_id == uuids[0]
            out = rows.of("call_user")[0]
            assert out[DIR] == "out" and json.loads(out[PAYLOAD]) == {
                "user_name": "jessica",
                "destination": "0312341234",
            }
            assert out[NOTE] == "uuids " + ", ".join(uuids)
        finally:
            c.close()

    def test_call_user_errors(self, sim: BasixSimulator) -> None:
        with pytest.raises(PlatformError) as info:
            call_user(sim.http_url, "acme", "s3cr/t:x", user_name="nobody", destination="03")
        assert (
            str(info.value) == "basix /basix/api/call_user failed: HTTP 200, result_code 404: user not found"
        )
        with pytest.raises(PlatformError, match="HTTP 401, result_code 401: authentication failed"):
            call_user(sim.http_url, "acme", "wrong", user_name="bob", destination="03")
