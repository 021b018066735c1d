"""Tests for jambonz_lab.protocol.wazo: wazo-websocketd's wire rules (platforms.md §3), without sockets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jambonz_lab.exceptions import PlatformError, WazoClosed
from jambonz_lab.protocol import wazo as w

USER = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"
TENANT = "tttttttt-0000-0000-0000-000000000001"
ELSEWHERE = "tttttttt-0000-0000-0000-000000000002"
MASTER = "mmmmmmmm-0000-0000-0000-000000000000"
ORIGIN = "oooooooo-0000-0000-0000-000000000000"


def token(
    acl: tuple[str, ...] = ("websocketd", "events.calls.me"),
    *,
    user: str = USER,
    tenant: str = TENANT,
    admin: bool = False,
    purpose: str | None = "user",
) -> w.TokenInfo:
    return w.TokenInfo("tok", user, tenant, acl, 2e9, "sess", admin, purpose)


def started(version: int = 2, tok: w.TokenInfo | None = None, *events: str) -> w.ServerSession:
    session = w.ServerSession(version=version)
    session.authenticated(tok or token())
    for name in events:
        session.receive(w.op_subscribe(name))
    session.receive(w.op_start())
    return session


def call_body(name: str = "call_created", user: str = USER, tenant: str = TENANT) -> dict[str, Any]:
    return w.bus_body(
        name,
        {"call_id": "1700000000.42", "user_uuid": user},
        origin_uuid=ORIGIN,
        tenant_uuid=tenant,
        timestamp="2026-05-04T10:12:33.120394",
        user_uuids=(user,),
    )


# -- client ops ----------------------------------------------------------------------------------


def test_client_ops_are_exact() -> None:
    assert w.op_subscribe("call_created") == '{"op": "subscribe", "data": {"event_name": "call_created"}}'
    assert w.op_subscribe("*") == '{"op": "subscribe", "data": {"event_name": "*"}}'
    assert w.op_start() == '{"op": "start"}'
    assert w.op_token("T") == '{"op": "token", "data": {"token": "T"}}'
    assert w.op_ping("p") == '{"op": "ping", "data": {"payload": "p"}}'


def test_server_frames_match_the_servers_json_dumps() -> None:
    assert w.server_frame("init", {"version": 2}) == '{"op": "init", "code": 0, "data": {"version": 2}}'
    assert w.server_frame("subscribe") == '{"op": "subscribe", "code": 0, "data": null}'
    assert w.server_frame("pong", {"payload": "x"}) == '{"op": "pong", "code": 0, "data": {"payload": "x"}}'


# -- parsing server frames -----------------------------------------------------------------------


def test_parse_v2_control_and_event() -> None:
    init = w.parse_server_frame('{"op": "init", "code": 0, "data": {"version": 2}}')
    assert (init.op, init.code, init.data, init.body) == ("init", 0, {"version": 2}, {})
    body = call_body()
    event = w.parse_server_frame(w.server_frame("event", body))
    assert event.op == "event" and event.code == 0 and event.body == body


def test_parse_v1_raw_body_and_acks() -> None:
    body = call_body()
    event = w.parse_server_frame(json.dumps(body), version=1)
    assert (event.op, event.code, event.body) == ("event", None, body)
    ack = w.parse_server_frame('{"op": "subscribe", "code": 0}', version=1)
    assert (ack.op, ack.code, ack.data) == ("subscribe", 0, None)


@pytest.mark.parametrize(
    ("text", "version", "message"),
    [
        (b'{"op": "init"}', 2, "binary frame of 14 bytes"),
        ("{nope", 2, "not JSON"),
        ("[1, 2]", 2, "root is a JSON list"),
        ('{"code": 0}', 2, "no string 'op'"),
        ('{"op": 3, "code": 0}', 2, "no string 'op'"),
        ('{"op": "init"}', 2, "no integer 'code'"),
        ('{"op": "init", "code": true}', 2, "no integer 'code'"),
        ('{"op": "event", "code": 0, "data": {"x": 1}}', 2, "string 'name'"),
        ('{"op": "event", "code": 0, "data": []}', 2, "string 'name'"),
        ('{"op": "bogus", "code": 0, "data": null}', 2, "unknown op 'bogus'"),
        ('{"data": {}}', 1, "v1 event body needs a string 'name'"),
    ],
)
def test_parse_rejects_with_one_line(text: str | bytes, version: int, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        w.parse_server_frame(text, version)
    assert "\n" not in str(info.value)


# -- close codes ----------------------------------------------------------------------------------


def test_close_message_for_each_code() -> None:
    assert w.close_message(4002, "authentication failed") == (
        "wazo-websocketd closed the socket: 4002 authentication failed — the token is unknown or "
        "lacks the websocketd ACL (or a renewal token was refused)"
    )
    assert w.close_message(4001, "no token").startswith("wazo-websocketd closed the socket: 4001 no token — ")
    assert "4003 authentication expired — the token expired" in w.close_message(
        4003, "authentication expired"
    )
    assert w.close_message(4004).startswith("wazo-websocketd closed the socket: 4004 — protocol error")
    assert "1011 bus connection lost — " in w.close_message(1011, "bus connection lost")
    assert w.close_message(1001, "going away") == "wazo-websocketd closed the socket: 1001 going away"
    assert set(w.CLOSE_CODES) == {4001, 4002, 4003, 4004, 1011}


def test_closed_error_is_a_wazo_closed() -> None:
    error = w.closed_error(4002, "authentication failed")
    assert isinstance(error, WazoClosed) and isinstance(error, PlatformError)
    assert (error.code, error.reason, error.source) == (4002, "authentication failed", "wazo")
    assert str(error) == w.close_message(4002, "authentication failed")


# -- handshake ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "headers", "expected"),
    [
        ("token=T&version=2", [], w.Handshake("T", 2)),
        ("token=T", [], w.Handshake("T", 1)),
        ("version=1&token=T", [], w.Handshake("T", 1)),
        ("version=2", [("x-auth-token", "H")], w.Handshake("H", 2)),
        ("version=2", [("X-Auth-Token", "H")], w.Handshake("H", 2)),
        ("token=Q", [("X-Auth-Token", "H")], w.Handshake("Q", 1)),  # the query wins
        ("token=&version=2", [("X-Auth-Token", "H")], w.Handshake("H", 2)),  # blank counts as absent
        ("token=a%2Bb", [], w.Handshake("a+b", 1)),
        ("", [], w.Close(4001, "no token")),
        ("version=2", [], w.Close(4001, "no token")),
        ("token=T&version=3", [], w.Close(4004)),
        ("token=T&version=0", [], w.Close(4004)),
        ("token=T&version=two", [], w.Close(1011)),
        ("version=3", [], w.Close(4004)),  # the version is read before the token
        ("version=x", [], w.Close(1011)),
    ],
)
def test_parse_handshake(query: str, headers: list[tuple[str, str]], expected: object) -> None:
    assert w.parse_handshake(query, headers) == expected


# -- ACL -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "required", "hit"),
    [
        ("events.calls.me", f"events.calls.{USER}", True),
        ("events.calls.me", f"events.calls.{OTHER}", False),
        ("events.me.calls", f"events.{USER}.calls", True),
        ("events.calls.*", f"events.calls.{OTHER}", True),
        ("events.calls.*", "events.calls.a.b", False),  # * is one word
        ("events.*.updated", "events.lines.updated", True),
        ("events.*.updated", "events.lines.7.updated", False),
        ("events.#", "events.lines.7.status.updated", True),
        ("events.#", "events", False),
        ("#", "anything.at.all", True),
        ("events.lines.*.status.updated", "events.lines.12.status.updated", True),
        ("websocketd", "websocketd", True),
        ("websocketd", "websocketd.x", False),
        ("events.calls.me", "events.calls.me", False),  # me is the user, not the word
        ("events.c+lls.x", "events.cclls.x", False),  # regex characters are literal
        ("events.calls.(.*)", "events.calls.abc", False),
    ],
)
def test_acl_matches(pattern: str, required: str, hit: bool) -> None:
    assert w.acl_matches(pattern, required, USER) is hit


def test_token_allows_none_and_any() -> None:
    tok = token(("websocketd", "events.lines.*.status.updated"))
    assert w.token_allows(tok, None)
    assert w.token_allows(tok, "events.lines.3.status.updated")
    assert not w.token_allows(tok, f"events.calls.{USER}")


# -- delivery filtering ---------------------------------------------------------------------------------

ALL = ("websocketd", "events.#")


@pytest.mark.parametrize(
    ("who", "body", "delivered"),
    [
        # a plain user: only events flagged for them (or for every user), in their tenant, with the ACL
        (token(), call_body(), True),
        (token(), call_body(user=OTHER), False),  # flagged for someone else (and ACL for someone else)
        (token(ALL), call_body(user=OTHER), False),  # the ACL is not enough: the flag is missing
        (token(("websocketd",)), call_body(), False),  # no per-event ACL: silently nothing
        (token(), call_body(tenant=ELSEWHERE), False),
        # a tenant admin / an internal or external_api purpose: the whole tenant
        (token(ALL, admin=True), call_body(user=OTHER), True),
        (token(ALL, purpose="internal"), call_body(user=OTHER), True),
        (token(ALL, purpose="external_api"), call_body(user=OTHER), True),
        (token(ALL, admin=True), call_body(user=OTHER, tenant=ELSEWHERE), False),
        (token(("websocketd",), admin=True), call_body(user=OTHER), False),  # admins still need the ACL
        # the master tenant: every tenant
        (token(ALL, tenant=MASTER), call_body(user=OTHER, tenant=ELSEWHERE), True),
    ],
)
def test_may_deliver_matrix(who: w.TokenInfo, body: dict[str, Any], delivered: bool) -> None:
    assert w.may_deliver(who, body, origin_uuid=ORIGIN, master_tenant=MASTER) is delivered


def test_may_deliver_star_flag_acl_null_missing_and_origin() -> None:
    tok = token(("websocketd", "events.lines.*.status.updated"))
    line = w.bus_body(
        "line_status_updated",
        {"id": 7},
        origin_uuid=ORIGIN,
        tenant_uuid=TENANT,
        timestamp="t",
        user_uuids=("*",),
        required_acl="events.lines.7.status.updated",
    )
    assert w.may_deliver(tok, line, origin_uuid=ORIGIN)
    assert not w.may_deliver(tok, line, origin_uuid="another-stack")
    assert not w.may_deliver(tok, {k: v for k, v in line.items() if k != "required_acl"})
    assert w.may_deliver(tok, {**line, "required_acl": None})
    assert not w.may_deliver(tok, {**line, "required_acl": 5})


# -- token re-check interval ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remaining", "delay"),
    [
        (-100.0, 15.0),
        (0.0, 15.0),
        (0.5, 0.5),
        (14.9, 14.9),
        (15.0, 15.0),
        (60.0, 60.0),
        (61.0, 60.0),
        (79.9, 60.0),
        (80.0, 60.0),
        (80.5, 60.0),  # int(0.75 * 80.5)
        (81.0, 60.0),
        (100.0, 75.0),
        (3600.0, 2700.0),
        (57600.0, 43200.0),
        (57601.0, 43200.0),
        (10**7, 43200.0),
    ],
)
def test_next_auth_check_edges(remaining: float, delay: float) -> None:
    assert w.next_auth_check(remaining) == delay


@given(st.floats(min_value=-1e6, max_value=1e8, allow_nan=False))
def test_next_auth_check_bounds(remaining: float) -> None:
    delay = w.next_auth_check(remaining)
    assert 0 < delay <= 43200
    if remaining > 0:
        assert delay <= remaining  # never later than expiry while still valid
    else:
        assert delay == 15


# -- the server session ------------------------------------------------------------------------------------


def test_init_then_v2_acks_always() -> None:
    session = w.ServerSession(version=2)
    assert session.state is w.SessionState.WAITING_AUTH
    assert session.receive(w.op_start()) == w.Outcome()  # nothing is read before authentication
    assert session.authenticated(token()).send == ('{"op": "init", "code": 0, "data": {"version": 2}}',)
    assert session.state is w.SessionState.OPEN
    assert session.receive(w.op_subscribe("call_created")).send == (w.server_frame("subscribe"),)
    assert session.receive(w.op_start()).send == (w.server_frame("start"),)
    assert session.state is w.SessionState.STARTED
    assert session.receive(w.op_subscribe("call_ended")).send == (w.server_frame("subscribe"),)
    assert session.subscriptions == {"call_created", "call_ended"}
    assert session.receive(w.op_ping("abc")).send == (
        '{"op": "pong", "code": 0, "data": {"payload": "abc"}}',
    )
    renew = session.receive(w.op_token("NEW"))
    assert renew == w.Outcome(check_token="NEW")
    assert session.token_checked(token()).send == (w.server_frame("token"),)
    assert session.receive(w.op_start()).send == (w.server_frame("start"),)


def test_v1_acks_only_before_start_and_no_pong() -> None:
    session = w.ServerSession(version=1)
    assert session.authenticated(token()).send == ('{"op": "init", "code": 0, "data": {"version": 1}}',)
    assert session.receive(w.op_ping("x")) == w.Outcome()  # ignored, not an error
    assert session.receive(w.op_subscribe("a")).send == (w.server_frame("subscribe"),)
    assert session.receive(w.op_token("T1")).check_token == "T1"
    assert session.token_checked(token()).send == (w.server_frame("token"),)
    assert session.receive(w.op_start()).send == (w.server_frame("start"),)
    assert session.receive(w.op_subscribe("b")) == w.Outcome()  # subscribed, but no ack
    assert "b" in session.subscriptions
    assert session.receive(w.op_token("T2")).check_token == "T2"
    assert session.token_checked(token()) == w.Outcome()
    assert session.receive(w.op_start()).send == (w.server_frame("start"),)  # start is always acked
    assert session.receive(w.op_ping("x")) == w.Outcome()
    assert session.state is w.SessionState.STARTED


def test_refused_tokens_close_4002() -> None:
    session = w.ServerSession(version=2)
    assert session.authenticated(None) == w.Outcome(close=w.Close(4002, "authentication failed"))
    assert session.state is w.SessionState.CLOSED
    session = started()
    session.receive(w.op_token("BAD"))
    assert session.token_checked(None) == w.Outcome(close=w.Close(4002, "authentication failed"))
    assert session.receive(w.op_ping("x")) == w.Outcome()  # closed: ignored


def test_expired_closes_4003_once() -> None:
    session = started()
    assert session.expired() == w.Outcome(close=w.Close(4003, "authentication expired"))
    assert session.expired() == w.Outcome()


VIOLATIONS: list[str | bytes] = [
    b'{"op": "start"}',
    "{not json",
    "",
    "[]",
    '"start"',
    "42",
    "null",
    "{}",
    '{"data": {}}',
    '{"op": 1}',
    '{"op": null}',
    '{"op": ["start"]}',
    '{"op": "unsubscribe", "data": {"event_name": "call_created"}}',
    '{"op": "bogus"}',
    '{"op": "init"}',
    '{"op": "event"}',
    '{"op": "subscribe"}',
    '{"op": "subscribe", "data": null}',
    '{"op": "subscribe", "data": "call_created"}',
    '{"op": "subscribe", "data": {}}',
    '{"op": "subscribe", "data": {"event_name": 5}}',
    '{"op": "subscribe", "data": {"event_name": null}}',
    '{"op": "subscribe", "data": {"event_name": ["a"]}}',
    '{"op": "token"}',
    '{"op": "token", "data": []}',
    '{"op": "token", "data": {"token": 1}}',
    '{"op": "token", "data": {"other": "x"}}',
    '{"op": "ping"}',
    '{"op": "ping", "data": {"payload": {"a": 1}}}',
    '{"op": "ping", "data": {"payload": 3}}',
]


@pytest.mark.parametrize("version", [1, 2])
def test_every_violation_closes_4004_with_an_empty_reason(version: int) -> None:
    """Before and after start, in both versions (one test: the cases are cheap, the fixtures are not)."""
    for frame in VIOLATIONS:
        for session in (w.ServerSession(version=version), started(version)):
            if session.state is w.SessionState.WAITING_AUTH:
                session.authenticated(token())
            assert session.receive(frame) == w.Outcome(close=w.Close(4004, "")), frame
            assert session.state is w.SessionState.CLOSED, frame
            assert session.last_violation, frame


def test_start_ignores_its_data_and_extra_keys_are_fine() -> None:
    session = w.ServerSession(version=2)
    session.authenticated(token())
    assert session.receive('{"op": "start", "data": 7, "extra": true}').send == (w.server_frame("start"),)
    assert session.receive('{"op": "ping", "data": {"payload": "", "x": 1}}').send == (
        w.server_frame("pong", {"payload": ""}),
    )


def test_events_before_start_are_dropped_then_flow() -> None:
    session = w.ServerSession(version=2)
    session.authenticated(token())
    session.receive(w.op_subscribe("call_created"))
    body = call_body()
    assert session.event(body) is None  # not started: dropped, not queued
    session.receive(w.op_start())
    assert session.event(body) == w.server_frame("event", body)
    assert session.event(call_body("call_ended")) is None  # not subscribed
    session.receive(w.op_subscribe("call_ended"))  # subscribing after start works
    assert session.event(call_body("call_ended")) == w.server_frame("event", call_body("call_ended"))


def test_star_and_v1_raw_bodies_and_filtering() -> None:
    v1 = started(1, token(), "*")
    body = call_body("call_answered")
    assert v1.event(body) == json.dumps(body)
    assert v1.event(call_body(user=OTHER)) is None  # filtered by flag and ACL
    assert v1.event({"no": "name"}) is None
    v2 = started(2, token(), "*")
    assert v2.event(body, origin_uuid=ORIGIN) == w.server_frame("event", body)
    assert v2.event(body, origin_uuid="elsewhere") is None


# -- builders --------------------------------------------------------------------------------


def test_bus_body_headers_merged_with_data() -> None:
    body = call_body()
    assert body == {
        "name": "call_created",
        "origin_uuid": ORIGIN,
        "timestamp": "2026-05-04T10:12:33.120394",
        "tenant_uuid": TENANT,
        f"user_uuid:{USER}": True,
        "required_acl": f"events.calls.{USER}",
        "required_access": "event.call_created",
        "data": {"call_id": "1700000000.42", "user_uuid": USER},
    }
    presence = w.bus_body("chatd_presence_updated", {}, origin_uuid="o", tenant_uuid="t", timestamp="x")
    assert presence["required_acl"] == "events.chatd_presence_updated"
    assert "user_uuid:*" not in presence


def test_times() -> None:
    minus5 = timezone(timedelta(hours=-5))
    ts = datetime(2015, 12, 16, 15, 13, 59, 526000, tzinfo=minus5).timestamp()
    assert w.asterisk_time(ts, minus5) == "2015-12-16T15:13:59.526-0500"
    assert w.asterisk_time(ts, UTC) == "2015-12-16T20:13:59.526+0000"
    assert w.parse_iso("2015-12-16T15:13:59.526-0500") == pytest.approx(ts)
    assert w.parse_iso("2015-12-16T15:13:59.526-05:00") == pytest.approx(ts)
    assert w.parse_iso("2015-12-16T20:13:59.526Z") == pytest.approx(ts)
    assert w.parse_iso(w.local_iso(ts)) == pytest.approx(ts)  # naive: read as local time
    assert w.parse_iso("nope") is None and w.parse_iso(None) is None and w.parse_iso("") is None
    for edge in ("0001-01-01T00:00:00", "0001-01-01T00:00:00+0100", "9999-12-31T23:59:59-2359"):
        assert isinstance(w.parse_iso(edge), float | None)  # never raises at the calendar's ends
        assert isinstance(w.parse_utc(edge), float | None)
    assert w.utc_iso(ts) == "2015-12-16T20:13:59.526000"
    assert w.parse_utc("2015-12-16T20:13:59.526000") == pytest.approx(ts)
    assert w.parse_utc("2015-12-16T15:13:59.526-0500") == pytest.approx(ts)
    assert w.parse_utc(3) is None and w.parse_utc("x") is None


def test_call_payload_fields() -> None:
    call = w.call_payload(
        call_id="1700000000.42",
        user_uuid=USER,
        status="Ringing",
        direction="internal",
        is_caller=False,
        caller_id_name="Alice",
        caller_id_number="1001",
        peer_caller_id_name="Bob",
        peer_caller_id_number="",
        dialed_extension="1002",
        creation_time="2015-12-16T15:13:59.526-0500",
    )
    assert list(call) == [
        "call_id", "conversation_id", "sip_call_id", "user_uuid", "line_id", "caller_id_name",
        "caller_id_number", "peer_caller_id_name", "peer_caller_id_number", "dialed_extension", "status",
        "direction", "is_caller", "is_video", "on_hold", "muted", "parked", "record_state", "talking_to",
        "bridges", "creation_time", "answer_time", "hangup_time",
    ]  # fmt: skip
    assert call["peer_caller_id_number"] == "1002"  # falls back to the dialed extension
    assert call["conversation_id"] == "1700000000.42"
    assert call["record_state"] == "inactive" and call["talking_to"] == {} and call["bridges"] == []
    ended = w.call_payload(**{**call_args(), "reason_code": 16})
    assert ended["reason_code"] == 16


def call_args() -> dict[str, Any]:
    return {
        "call_id": "1.2",
        "user_uuid": USER,
        "status": "Up",
        "direction": "inbound",
        "is_caller": True,
        "caller_id_name": "A",
        "caller_id_number": "+1555",
        "peer_caller_id_name": "B",
        "peer_caller_id_number": "1002",
        "dialed_extension": "1002",
        "creation_time": "2015-12-16T15:13:59.526-0500",
    }


def test_dedup_key() -> None:
    body = call_body()
    assert w.dedup_key(body) == ("1700000000.42", "call_created", "2026-05-04T10:12:33.120394")
    assert w.dedup_key({"name": "x", "data": [1]}) == (None, "x", None)
    assert w.dedup_key({}) == (None, None, None)


# -- flat ------------------------------------------------------------------------------------


def test_flat_call_ended() -> None:
    data = w.call_payload(
        **{
            **call_args(),
            "talking_to": {"1.3": OTHER},
            "answer_time": "2015-12-16T15:14:01.000-0500",
            "hangup_time": "2015-12-16T15:14:09.250-0500",
            "reason_code": 16,
        }
    )
    body = w.bus_body("call_ended", data, origin_uuid="o", tenant_uuid="t", timestamp="x", user_uuids=(USER,))
    row = w.flat("call_ended", body)
    assert tuple(row) == w.FLAT_COLUMNS
    minus5 = timezone(timedelta(hours=-5))
    assert row == {
        "name": "call_ended",
        "call_id": "1.2",
        "user_uuid": USER,
        "status": "Up",
        "direction": "inbound",
        "caller_id_number": "+1555",
        "peer_caller_id_number": "1002",
        "is_caller": True,
        "talking_to": "1.3",
        "reason_code": 16,
        "event_ts": datetime(2015, 12, 16, 15, 14, 9, 250000, tzinfo=minus5).timestamp(),
    }


def test_flat_event_ts_falls_back() -> None:
    created = w.flat("call_created", {"name": "call_created", "data": call_args()})
    assert created["event_ts"] == pytest.approx(w.parse_iso("2015-12-16T15:13:59.526-0500"))
    assert created["talking_to"] is None and created["reason_code"] is None
    held = w.flat("call_held", {"name": "call_held", "timestamp": "2026-05-04T10:12:33.120394", "data": {}})
    assert held["event_ts"] == pytest.approx(datetime(2026, 5, 4, 10, 12, 33, 120394).timestamp())


@pytest.mark.parametrize(
    "payload",
    [None, 3, "text", [], {}, {"data": None}, {"data": [1, 2]}, {"name": 5, "data": {"call_id": {"x": 1}}}],
)
def test_flat_never_raises(payload: Any) -> None:
    row = w.flat("odd", payload)
    assert tuple(row) == w.FLAT_COLUMNS
    assert row["event_ts"] is None


def test_flat_odd_values_become_scalars_or_none() -> None:
    row = w.flat(
        "x",
        {
            "name": "x",
            "data": {"call_id": {"a": 1}, "is_caller": "yes", "reason_code": True, "hangup_time": "garbage"},
        },
    )
    assert row["call_id"] == "{'a': 1}" and row["is_caller"] is None and row["reason_code"] is None
    assert row["event_ts"] is None


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_flat_total(payload: Any) -> None:
    assert tuple(w.flat("t", {"name": "n", "data": payload})) == w.FLAT_COLUMNS
