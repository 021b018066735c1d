"""KazooClient and KazooRest against the Kazoo simulator over loopback sockets: subscribing, event
order and linking, error replies (token redacted), reconnects with re-subscription and a fresh
token, malformed frames, keep-alive against the idle timeout, and a REST hangup."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from jambonz_lab import loop
from jambonz_lab.exceptions import KazooError, PlatformError
from jambonz_lab.platforms import SourceState
from jambonz_lab.platforms.kazoo import KazooClient, KazooRest
from jambonz_lab.platforms.kazoo_sim import DEFAULT_ACCOUNT_ID as ACCT
from jambonz_lab.platforms.kazoo_sim import DEFAULT_AUTH_TOKEN as TOKEN
from jambonz_lab.platforms.kazoo_sim import KazooSimulator
from jambonz_lab.platforms.scenario import CallScenario
from jambonz_lab.protocol import kazoo as k
from jambonz_lab.records import RECORD_FIELDS
from tests.fakejambonz import wait_until

Row = tuple[Any, ...]
F = {name: i for i, name in enumerate(RECORD_FIELDS)}


def field(row: Row, name: str) -> Any:
    return row[F[name]]


def of(rows: list[Row], direction: str, type: str | None = None) -> list[Row]:
    return [
        r for r in rows if field(r, "direction") == direction and (type is None or field(r, "type") == type)
    ]


def events(rows: list[Row]) -> list[Row]:
    return [r for r in of(rows, "in") if field(r, "type") != "reply"]


@pytest.fixture
def sim() -> Iterator[KazooSimulator]:
    with KazooSimulator() as sim:
        yield sim


@pytest.fixture
def rows() -> list[Row]:
    return []


def client(sim: KazooSimulator, rows: list[Row], **kw: Any) -> KazooClient:
    options: dict[str, Any] = {
        "auth_token": TOKEN,
        "account_id": ACCT,
        "record": rows.append,
        "backoff": (0.05, 0.2),
    }
    options.update(kw)
    return KazooClient(sim.ws_url, **options)


def test_subscribe_and_receive_a_two_leg_call(sim: KazooSimulator, rows: list[Row]) -> None:
    kazoo = client(sim, rows, bindings=["call.*.*"]).connect()
    try:
        assert kazoo.state is SourceState.OPEN
        ended = kazoo.wait_for(
            lambda e: e.type == "CHANNEL_DESTROY" and e.data.get("call_direction") == "inbound", 5
        )
        sim.play(CallScenario(seed=11, caller="+15550100", callee="1002"), 0).result()
        last = ended.result()
        assert last.source == "kazoo" and last.data["hangup_cause"] == "NORMAL_CLEARING"

        got = events(rows)
        a, b = field(got[0], "call_sid"), field(got[1], "call_sid")
        assert [(field(r, "type"), field(r, "call_sid")) for r in got] == [
            ("CHANNEL_CREATE", a),
            ("CHANNEL_CREATE", b),
            ("CHANNEL_ANSWER", b),
            ("CHANNEL_ANSWER", a),
            ("CHANNEL_BRIDGE", a),
            ("CHANNEL_DESTROY", b),
            ("CHANNEL_DESTROY", a),
        ]
        assert last.call_id == a
        payloads = [json.loads(field(r, "payload")) for r in got]
        assert all(field(r, "hook") == "call.*.*" and field(r, "source") == "kazoo" for r in got)
        assert [p["data"].get("other_leg_call_id") for p in payloads] == [None, a, a, b, b, a, b]
        assert payloads[0]["data"]["caller_id_number"] == "+15550100"
        assert k.flat("CHANNEL_CREATE", payloads[1])["callee_id_number"] == "1002"

        (out,) = of(rows, "out", "subscribe")
        sent = json.loads(field(out, "payload"))
        assert sent["auth_token"] == "<redacted>" and sent["data"] == {
            "account_id": ACCT,
            "binding": "call.*.*",
        }
        (reply,) = of(rows, "in", "reply")
        assert field(reply, "msgid") == field(out, "msgid") == sent["request_id"]
        assert json.loads(field(reply, "payload"))["data"]["subscribed"] == ["call.*.*"] * 9
        assert field(out, "path") == sim.ws_url
        assert not any(TOKEN in str(r) for r in rows)
    finally:
        kazoo.close()
    assert kazoo.state is SourceState.CLOSED


def test_subscribe_unsubscribe_ping(sim: KazooSimulator, rows: list[Row]) -> None:
    kazoo = client(sim, rows, bindings=["call.CHANNEL_CREATE.*"]).connect()
    try:
        assert kazoo.subscribe("call.*.*") == ["call.CHANNEL_CREATE.*"] + ["call.*.*"] * 9
        assert kazoo.bindings == ["call.CHANNEL_CREATE.*", "call.*.*"]
        assert kazoo.unsubscribe("call.*.*") == {
            "unsubscribed": ["call.*.*"],
            "subscribed": ["call.CHANNEL_CREATE.*"],
        }
        assert kazoo.bindings == ["call.CHANNEL_CREATE.*"]
        assert kazoo.ping() == {"response": "pong"}
        assert [field(r, "type") for r in of(rows, "out")] == [
            "subscribe",
            "subscribe",
            "unsubscribe",
            "ping",
        ]
    finally:
        kazoo.close()


def test_error_reply_raises_kazoo_error_with_the_token_redacted(sim: KazooSimulator, rows: list[Row]) -> None:
    secret = "expired-secret-token-1234"
    kazoo = client(sim, rows, auth_token=secret).connect()  # no bindings: nothing checked yet
    try:
        with pytest.raises(KazooError) as info:
            kazoo.subscribe("call.*.*")
        err = info.value
        assert err.errors == ["failed to authenticate token <redacted>"]
        assert str(err) == "Kazoo refused subscribe 'call.*.*': failed to authenticate token <redacted>"
        assert err.request_id == json.loads(field(of(rows, "out")[0], "payload"))["request_id"]
        assert err.source == "kazoo"
        kazoo.auth_token = TOKEN
        with pytest.raises(KazooError, match=r"event CHANNEL_NOPE not supported") as bad:
            kazoo.subscribe("call.CHANNEL_NOPE.*")
        assert bad.value.errors == ["event CHANNEL_NOPE not supported"]
        assert kazoo.bindings == []
        assert not any(secret in str(r) for r in rows)
        assert kazoo.state is SourceState.OPEN
    finally:
        kazoo.close()


def test_bad_token_at_connect_fails_and_closes(sim: KazooSimulator, rows: list[Row]) -> None:
    kazoo = client(sim, rows, auth_token="nope-secret", bindings=["call.*.*"])
    with pytest.raises(KazooError, match="failed to authenticate token <redacted>"):
        kazoo.connect()
    assert kazoo.state is SourceState.CLOSED
    assert [field(r, "type") for r in of(rows, "lab")] == ["connect-failed"]
    wait_until(lambda: sim.session_count == 0)
    assert not any("nope-secret" in str(r) for r in rows)


def test_reconnect_resubscribes_and_events_flow_again(sim: KazooSimulator, rows: list[Row]) -> None:
    kazoo = client(sim, rows, bindings=["call.CHANNEL_CREATE.*", "call.CHANNEL_DESTROY.*"]).connect()
    try:
        assert sim.drop_all() == 1
        wait_until(lambda: kazoo.connections == 2 and kazoo.state is SourceState.OPEN, 5)
        assert sim.bindings() == [["call.CHANNEL_CREATE.*", "call.CHANNEL_DESTROY.*"]]
        lab = [field(r, "type") for r in of(rows, "lab")]
        assert lab == ["open", "dropped", "open", "reconnect"]
        assert "code 1001" in field(of(rows, "lab", "dropped")[0], "note")
        assert [field(r, "type") for r in of(rows, "out")] == ["subscribe"] * 4

        sim.play(CallScenario(seed=12), 0).result()
        wait_until(lambda: len(events(rows)) == 4)
        assert [field(r, "type") for r in events(rows)] == ["CHANNEL_CREATE"] * 2 + ["CHANNEL_DESTROY"] * 2
    finally:
        kazoo.close()


def test_reconnect_uses_a_fresh_token(sim: KazooSimulator, rows: list[Row]) -> None:
    fresh = iter(["fresh-token-1", "fresh-token-2"])
    sim.add_token("fresh-token-1", ACCT)

    kazoo = client(sim, rows, bindings=["call.*.*"], token_provider=lambda: next(fresh)).connect()
    try:
        sim.revoke_token(TOKEN)  # it expired while the socket was up: the session stays authenticated
        assert kazoo.ping() == {"response": "pong"}
        sim.drop_all()
        wait_until(lambda: kazoo.connections == 2 and kazoo.state is SourceState.OPEN, 5)
        assert kazoo.auth_token == "fresh-token-1"
        assert sim.requests[-1]["auth_token"] == "fresh-token-1"
        assert "token-refreshed" in [field(r, "type") for r in of(rows, "lab")]
        assert not any(t in str(r) for r in rows for t in (TOKEN, "fresh-token-1"))
    finally:
        kazoo.close()


def test_reconnect_with_an_expired_token_and_no_provider_gives_up(
    sim: KazooSimulator, rows: list[Row]
) -> None:
    kazoo = client(sim, rows, bindings=["call.*.*"]).connect()
    try:
        sim.revoke_token(TOKEN)
        sim.drop_all()
        wait_until(lambda: kazoo.state is SourceState.CLOSED, 5)
        assert isinstance(kazoo.error, KazooError)
        assert kazoo.error.errors == ["failed to authenticate token <redacted>"]
        assert [field(r, "type") for r in of(rows, "lab")] == ["open", "dropped", "reconnect-failed"]
    finally:
        kazoo.close()


def test_malformed_frame_is_a_bad_frame_row_and_the_socket_survives(
    sim: KazooSimulator, rows: list[Row]
) -> None:
    kazoo = client(sim, rows, bindings=["call.CHANNEL_CREATE.*"]).connect()
    try:
        assert sim.send_raw("{not json") == 1
        assert sim.send_raw('{"action":"event","data":{}}') == 1
        wait_until(lambda: len(of(rows, "lab", "bad-frame")) == 2)
        notes = [field(r, "note") for r in of(rows, "lab", "bad-frame")]
        assert notes[0].startswith("ValueError: not JSON")
        assert notes[1] == "ValueError: an event frame without a 'name'"
        assert json.loads(field(of(rows, "lab", "bad-frame")[0], "payload")) == {"raw": "{not json"}
        sim.play(CallScenario(seed=13), 0).result()
        wait_until(lambda: len(events(rows)) == 2)
        assert kazoo.connections == 1 and kazoo.state is SourceState.OPEN
    finally:
        kazoo.close()


def test_keep_alive_pings_beat_the_idle_timeout() -> None:
    sim = KazooSimulator(idle_timeout=1.2)  # pings every 0.1 s: a 12x margin for a loaded machine
    sim.start()
    quiet_rows: list[Row] = []
    chatty_rows: list[Row] = []
    quiet = client(sim, quiet_rows, bindings=["call.*.*"], ping_interval=None, reconnect=False).connect()
    chatty = client(sim, chatty_rows, bindings=["call.*.*"], ping_interval=0.1).connect()
    try:
        for seed in range(4):  # events keep flowing to both; only incoming frames count
            sim.play(CallScenario(seed=seed, answered=False), 0).result()
            loop.submit(_sleep(0.2)).result(5)
        wait_until(lambda: quiet.state is SourceState.CLOSED, 8)
        assert "code 1000" in field(of(quiet_rows, "lab", "dropped")[0], "note")
        assert chatty.state is SourceState.OPEN and chatty.connections == 1
        assert of(chatty_rows, "lab", "dropped") == []
        assert len(events(chatty_rows)) == 16
    finally:
        quiet.close()
        chatty.close()
        sim.stop()


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def test_handshake_refused_is_a_platform_error() -> None:
    sim = KazooSimulator(max_connections_per_ip=0)
    sim.start()
    try:
        kazoo = KazooClient(sim.ws_url, auth_token=TOKEN, account_id=ACCT)
        with pytest.raises(PlatformError, match="HTTP 429"):
            kazoo.connect()
    finally:
        sim.stop()


def test_rest_hangup_ends_both_legs(sim: KazooSimulator, rows: list[Row]) -> None:
    kazoo = client(sim, rows, bindings=["call.CHANNEL_ANSWER.*", "call.CHANNEL_DESTROY.*"]).connect()
    rest = KazooRest(sim.http_url, TOKEN)
    try:
        answered = kazoo.wait_for("CHANNEL_ANSWER", 5)
        playing = sim.play(CallScenario(seed=14, ring=0.05, talk=60), 1.0, timeout=10)
        answered.result()
        channels = rest.channels(ACCT)
        assert sorted(c["direction"] for c in channels) == ["inbound", "outbound"]
        uuid = next(c["uuid"] for c in channels if c["direction"] == "inbound")
        destroyed = kazoo.wait_for("CHANNEL_DESTROY", 5)
        reply = rest.channel_command(ACCT, uuid, "hangup")
        assert reply["status"] == "success"
        assert destroyed.result().call_id == uuid
        wait_until(lambda: len(of(rows, "in", "CHANNEL_DESTROY")) == 2)
        assert rest.channels(ACCT) == []
        assert sim.commands == [("POST", uuid, {"data": {"action": "hangup"}})]
        with pytest.raises(PlatformError, match="404 bad identifier"):
            rest.channel_command(ACCT, uuid, "hangup", metaflow=True)
        assert sim.commands[-1] == (
            "PUT",
            uuid,
            {"action": "metaflow", "data": {"data": {"module": "hangup"}}},
        )
        wrong = KazooRest(sim.http_url, "wrong")
        try:
            with pytest.raises(PlatformError, match="401 invalid_credentials"):
                wrong.channels(ACCT)
        finally:
            wrong.close()
        playing.cancel()
    finally:
        rest.close()
        kazoo.close()
