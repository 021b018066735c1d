"""WazoClient and WazoCalld against the Wazo simulator over loopback sockets.

Covers the token POST, the setup sequence (init, subscribe, start, acks), events of a played call
in order, token renewal past the first token's expiry (timer and ``auth_session_expire_soon``),
close codes (4002 from ``connect()``, 4003 reconnect or not, 4001/4004 fatal), reconnect with
re-subscription after a drop, duplicate deliveries, malformed frames, and calld-driven calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jambonz_lab.exceptions import PlatformError, WazoClosed
from jambonz_lab.platforms import SourceState
from jambonz_lab.platforms.scenario import CallScenario
from jambonz_lab.platforms.wazo import WazoCalld, WazoClient
from jambonz_lab.platforms.wazo_sim import WazoSimulator
from jambonz_lab.protocol import wazo as w

Row = tuple[Any, ...]


@pytest.fixture
def sim() -> Iterator[WazoSimulator]:
    with WazoSimulator(calld_ring=0.05) as server:
        yield server


@pytest.fixture
def clients() -> Iterator[list[WazoClient]]:
    made: list[WazoClient] = []
    try:
        yield made
    finally:
        for client in made:
            client.close()


def until(check: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def kinds(rows: list[Row], direction: str | None = None) -> list[str]:
    return [r[3] for r in rows if direction is None or r[2] == direction]


def events(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r[2] == "in" and not r[3].startswith("op:")]


def make(
    sim: WazoSimulator, clients: list[WazoClient], username: str = "alice", **options: Any
) -> tuple[WazoClient, list[Row]]:
    rows: list[Row] = []
    if "token" not in options:
        options.setdefault("username", username)
        options.setdefault("password", f"{username}-pw")
    client = WazoClient(sim.http_url, record=rows.append, backoff=(0.05, 0.2), **options)
    clients.append(client)
    return client, rows


# -- construction ----------------------------------------------------------------------------------


def test_urls_and_arguments() -> None:
    client = WazoClient("https://wazo.example", token="T")
    assert (client.http_url, client.ws_url) == ("https://wazo.example", "wss://wazo.example/api/websocketd/")
    assert client.url_for_log == "wss://wazo.example/api/websocketd/?version=2"
    ws = WazoClient("ws://127.0.0.1:9502/", token="T", version=1)
    assert (ws.http_url, ws.ws_url, ws.url_for_log) == (
        "http://127.0.0.1:9502",
        "ws://127.0.0.1:9502/",
        "ws://127.0.0.1:9502/?version=1",
    )
    with pytest.raises(ValueError, match="give token="):
        WazoClient("https://wazo.example")
    with pytest.raises(ValueError, match="version must be 1 or 2"):
        WazoClient("https://wazo.example", token="T", version=3)
    with pytest.raises(ValueError, match="base URL"):
        WazoClient("ftp://wazo.example", token="T")


# -- setup and events --------------------------------------------------------------------------------


def test_connect_sequence_and_no_token_in_rows(sim: WazoSimulator, clients: list[WazoClient]) -> None:
    client, rows = make(sim, clients, events=("call_created", "call_ended"))
    client.connect(5)
    assert client.state is SourceState.OPEN
    assert [(r[2], r[3]) for r in rows] == [
        ("lab", "token"),
        ("in", "op:init"),
        ("out", "op:subscribe"),
        ("out", "op:subscribe"),
        ("out", "op:start"),
        ("in", "op:subscribe"),
        ("in", "op:subscribe"),
        ("in", "op:start"),
        ("lab", "open"),
    ]
    assert json.loads(rows[2][7]) == {"op": "subscribe", "data": {"event_name": "call_created"}}
    assert json.loads(rows[1][7]) == {"op": "init", "code": 0, "data": {"version": 2}}
    assert client.token is not None and client.token in sim._tokens
    assert all(r[9] == f"ws://127.0.0.1:{sim.port}/api/websocketd/?version=2" for r in rows)
    assert not any(client.token in repr(r) for r in rows)
    assert client.ping("are-you-there") == "are-you-there"
    assert kinds(rows)[-2:] == ["op:ping", "op:pong"]


def test_played_call_events_in_order(sim: WazoSimulator, clients: list[WazoClient]) -> None:
    client, rows = make(sim, clients)
    client.connect(5)
    ended = client.wait_for("call_ended", 5)
    sim.play(CallScenario(seed=11, caller="1001", callee="1002", direction="internal"), 0).result()
    event = ended.result()
    mine = events(rows)
    call_id = mine[0][1]
    assert [(r[3], json.loads(r[7])["data"]["status"]) for r in mine] == [
        ("call_created", "Ring"),
        ("call_updated", "Ring"),
        ("call_answered", "Up"),
        ("call_ended", "Up"),
    ]
    assert all(r[1] == call_id and r[10] == "wazo" for r in mine)
    assert event.call_id == call_id and event.data["reason_code"] == 16 and event.source == "wazo"
    assert event.data["user_uuid"] == sim.user("alice").uuid
    flat = w.flat("call_ended", json.loads(mine[-1][7]))
    assert flat["call_id"] == call_id and flat["reason_code"] == 16 and flat["event_ts"] is not None


def test_admin_sees_both_legs_and_extras(sim: WazoSimulator, clients: list[WazoClient]) -> None:
    client, rows = make(sim, clients, "admin")
    client.connect(5)
    sim.play(CallScenario(seed=12, caller="1001", callee="1002"), 0).result()
    sim.publish_presence("bob", "away")
    sim.publish_line_status("alice", registered=False)
    until(lambda: len(events(rows)) == 10, what="10 events")
    calls = events(rows)[:8]
    assert all(r[1] == json.loads(r[7])["data"]["call_id"] for r in calls)
    users = {json.loads(r[7])["data"]["user_uuid"] for r in calls}
    assert users == {sim.user("alice").uuid, sim.user("bob").uuid}
    assert len({r[1] for r in events(rows)[:8]}) == 2
    assert kinds(events(rows))[-2:] == ["chatd_presence_updated", "line_status_updated"]
    assert events(rows)[-2][1] is None


# -- tokens ----------------------------------------------------------------------------------------------


def test_renewal_keeps_the_socket_open_past_the_first_expiry(
    sim: WazoSimulator, clients: list[WazoClient]
) -> None:
    client, rows = make(sim, clients, expiration=1, renew_at=0.5)
    client.connect(5)
    first = client.token
    time.sleep(1.8)  # the first token is long dead; the server checked at least once
    assert client.state is SourceState.OPEN and client.connections == 1
    assert client.renewals >= 2 and client.token != first
    assert sim._valid(first or "") is None
    assert client.ping("alive") == "alive"
    sent = [json.loads(r[7]) for r in rows if r[3] == "op:token" and r[2] == "out"]
    assert sent and all(s == {"op": "token", "data": {"token": "<redacted>"}} for s in sent)
    assert "op:token" in kinds(rows, "in")
    assert "dropped" not in kinds(rows)


def test_expire_soon_event_renews_now(sim: WazoSimulator, clients: list[WazoClient]) -> None:
    client, rows = make(sim, clients)
    client.connect(5)
    old = client.token or ""
    sim.publish_expire_soon(old)
    until(lambda: client.renewals == 1, what="a renewal")
    until(lambda: "op:token" in kinds(rows, "in"), what="the token ack")
    assert client.token != old and kinds(events(rows)) == ["auth_session_expire_soon"]


def test_unknown_token_raises_wazo_closed_4002_from_connect(
    sim: WazoSimulator, clients: list[WazoClient]
) -> None:
    client, rows = make(sim, clients, token="not-a-token")
    with pytest.raises(WazoClosed) as info:
        client.connect(5)
    assert (info.value.code, info.value.reason) == (4002, "authentication failed")
    assert str(info.value) == (
        "wazo-websocketd closed the socket: 4002 authentication failed — the token is unknown or lacks "
        "the websocketd ACL (or a renewal token was refused)"
    )
    assert client.state is SourceState.CLOSED
    assert kinds(rows) == ["connect-failed"] and "4002" in rows[0][8]


def test_token_without_websocketd_acl_is_4002(sim: WazoSimulator, clients: list[WazoClient]) -> None:
    token = sim.issue_token("alice", acl=["events.calls.me"])
    client, _ = make(sim, clients, token=token)
    with pytest.raises(WazoClosed, match="4002 authentication failed"):
        client.connect(5)


def test_bad_credentials_are_a_clear_error(sim: WazoSimulator, clients: list[WazoClient]) -> None:
    client, _ = make(sim, clients, password="wrong")
    with pytest.raises(PlatformError, match=r"wazo-auth refused the credentials of 'alice' \(HTTP 401\)"):
        client.connect(5)


def test_4003_reconnects_with_a_fresh_token(sim: WazoSimulator, clients: list[WazoClient]) -> None:
    client, rows = make(sim, clients)
    client.connect(5)
    first = client.token or ""
    sim.expire_in(first, 0)
    until(lambda: client.connections == 2 and client.state is SourceState.OPEN, what="the reconnect")
    dropped = [r for r in rows if r[3] == "dropped"]
    assert len(dropped) == 1 and "4003 authentication expired" in dropped[0][8]
    assert client.token != first and kinds(rows).count("token") == 2
    assert kinds(rows, "out").count("op:subscribe") == 2  # subscribed again


def test_4003_without_credentials_is_fatal(sim: WazoSimulator, clients: list[WazoClient]) -> None:
    token = sim.issue_token("alice")
    client, rows = make(sim, clients, token=token)
    client.connect(5)
    waiting = client.wait_for("call_created", 5)
    sim.expire_in(token, 0)
    with pytest.raises(WazoClosed) as info:
        waiting.result()
    assert info.value.code == 4003
    until(lambda: client.state is SourceState.CLOSED, what="closed")
    assert isinstance(client.error, WazoClosed) and "reconnect" not in kinds(rows)


@pytest.mark.parametrize("code", [4001, 4004])
def test_4001_and_4004_are_fatal(sim: WazoSimulator, clients: list[WazoClient], code: int) -> None:
    client, rows = make(sim, clients)
    client.connect(5)
    sim.drop_all(code, "no token" if code == 4001 else "")
    until(lambda: client.state is SourceState.CLOSED, what="closed")
    assert isinstance(client.error, WazoClosed) and client.error.code == code
    assert "reconnect" not in kinds(rows) and client.connections == 1


# -- reconnect, duplicates, bad frames -------------------------------------------------------------------


def test_reconnect_after_a_drop_resubscribes(sim: WazoSimulator, clients: list[WazoClient]) -> None:
    client, rows = make(sim, clients, events=("call_created",))
    client.connect(5)
    first = client.token
    assert sim.drop_all() == 1
    until(lambda: client.connections == 2 and client.state is SourceState.OPEN, what="the reconnect")
    assert client.token != first  # a fresh token in the URL
    assert kinds(rows, "out") == ["op:subscribe", "op:start"] * 2
    assert "reconnect" in kinds(rows)
    sim.play(CallScenario(seed=13, caller="1001"), 0).result()
    until(lambda: len(events(rows)) == 1, what="the event after the reconnect")
    assert kinds(events(rows)) == ["call_created"]


def test_duplicate_deliveries_are_dropped(clients: list[WazoClient]) -> None:
    server = WazoSimulator(deliver_twice=True)
    server.start()
    try:
        client, rows = make(server, clients)
        client.connect(5)
        server.play(CallScenario(seed=14, caller="1001"), 0).result()
        until(lambda: client.duplicates == 4, what="4 duplicates")
        assert kinds(events(rows)) == ["call_created", "call_updated", "call_answered", "call_ended"]
        assert kinds(rows).count("duplicate") == 4
        assert client.received == len([r for r in rows if r[2] == "in"])
    finally:
        client.close()
        server.stop()


def test_malformed_frames_are_recorded_and_the_socket_survives(
    sim: WazoSimulator, clients: list[WazoClient]
) -> None:
    client, rows = make(sim, clients)
    client.connect(5)
    sim.send_raw("{not json")
    sim.send_raw(b"\x00\x01")
    sim.send_raw('{"op": "event", "code": 0, "data": {"no": "name"}}')
    until(lambda: kinds(rows).count("bad-frame") == 3, what="3 bad frames")
    notes = [r[8] for r in rows if r[3] == "bad-frame"]
    assert notes[0].startswith("ValueError: not JSON")
    assert notes[1] == "ValueError: wazo-websocketd sends text frames; got a binary frame of 2 bytes"
    assert "string 'name'" in notes[2]
    assert json.loads(rows[-3][7]) == {"raw": "{not json"}
    assert client.state is SourceState.OPEN and client.ping("ok") == "ok"


def test_dedup_needs_the_header_timestamp(sim: WazoSimulator, clients: list[WazoClient]) -> None:
    client, rows = make(sim, clients)
    client.connect(5)
    body = {"name": "custom", "data": {"call_id": "1.1"}, "timestamp": "2026-05-04T10:12:33.120394"}
    for _ in range(2):
        sim.send_raw(w.server_frame("event", body))
        sim.send_raw(w.server_frame("event", {"name": "custom", "data": {"call_id": "1.1"}}))
    sim.send_raw(w.server_frame("event", {"name": "last", "data": {}, "timestamp": "t"}))
    until(lambda: "last" in kinds(rows), what="the last event")  # frames arrive in order
    assert kinds(events(rows)) == ["custom"] * 3 + ["last"] and client.duplicates == 1


def test_v1_client(sim: WazoSimulator, clients: list[WazoClient]) -> None:
    client, rows = make(sim, clients, version=1)
    client.connect(5)
    sim.play(CallScenario(seed=15, caller="1001"), 0).result()
    until(lambda: len(events(rows)) == 4, what="4 raw events")
    assert kinds(events(rows))[0] == "call_created"
    with pytest.raises(PlatformError, match="only in version 2"):
        client.ping()


# -- wazo-calld ------------------------------------------------------------------------------------------


def test_calld_make_call_and_hangup_drive_events(sim: WazoSimulator, clients: list[WazoClient]) -> None:
    client, rows = make(sim, clients)
    client.connect(5)
    bob, _ = make(sim, clients, "bob")
    bob.connect(5)
    answered = client.wait_for("call_answered", 5)
    calld = WazoCalld(sim.http_url, client)
    call = calld.make_call("1002")
    assert call["status"] == "Ring" and call["dialed_extension"] == "1002"
    assert answered.result().call_id == call["call_id"]
    assert [c["call_id"] for c in calld.calls()] == [call["call_id"]]
    with pytest.raises(PlatformError, match="wazo-calld DELETE /users/me/calls/.* answered HTTP 403"):
        WazoCalld(sim.http_url, bob).hangup(call["call_id"])
    ended = client.wait_for("call_ended", 5)
    calld.hangup(call["call_id"])
    assert ended.result().data["reason_code"] == 16
    assert calld.calls() == []
    assert kinds(events(rows)) == ["call_created", "call_updated", "call_answered", "call_ended"]
    with pytest.raises(PlatformError, match="404"):
        calld.hangup(call["call_id"])
