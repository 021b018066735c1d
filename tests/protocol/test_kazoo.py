"""Kazoo blackhole wire facts, pure (platforms.md §1.1-§1.3): frames, normalization, routing keys,
the server pipeline with its exact error strings, channel event data and the flat columns."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jambonz_lab.protocol import kazoo as k

ACCT = "4b31dd1d32ce6d249897c06332375d65"
CHILD = "c0ffee00000000000000000000000001"
GRANDCHILD = "c0ffee00000000000000000000000002"
OTHER = "deadbeef000000000000000000000000"
ADMIN = "aaaa0000000000000000000000000000"


JSONISH = st.recursive(
    st.none() | st.integers() | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
)


def directory() -> k.Directory:
    d = k.Directory()
    d.add_token("TOK", ACCT)
    d.add_token("ADMIN-TOK", ADMIN, superadmin=True)
    d.add_account(CHILD, ACCT)
    d.add_account(GRANDCHILD, CHILD)
    return d


def sub(binding: str, account: str = ACCT, token: str | None = "TOK", rid: str = "r-1") -> dict[str, Any]:
    return k.subscribe_frame(binding, account_id=account, auth_token=token, request_id=rid)


def run(bh: k.Blackhole, s: k.BlackholeSession, frame: dict[str, Any], now: float = 0.0) -> k.Outcome:
    return bh.handle(s, frame, now)


def errors(outcome: k.Outcome) -> list[str]:
    assert outcome.reply["status"] == "error", outcome.reply
    return list(outcome.reply["data"]["errors"])


@pytest.fixture
def bh() -> k.Blackhole:
    return k.Blackhole(directory(), new_id=lambda: "f" * 32)


@pytest.fixture
def s(bh: k.Blackhole) -> k.BlackholeSession:
    return bh.new_session("127.0.0.1:40000")


class TestGregorian:
    def test_sample_timestamp_is_2015_10_01_04_12_36_utc(self) -> None:
        assert k.gregorian_to_unix(63610891956) == 1443672756.0
        assert datetime.fromtimestamp(k.gregorian_to_unix("63610891956"), UTC) == datetime(
            2015, 10, 1, 4, 12, 36, tzinfo=UTC
        )
        assert k.unix_to_gregorian(1443672756.9) == 63610891956


class TestFrames:
    def test_subscribe_frame_has_one_binding_inside_data(self) -> None:
        assert sub("call.CHANNEL_CREATE.*") == {
            "action": "subscribe",
            "request_id": "r-1",
            "auth_token": "TOK",
            "data": {"account_id": ACCT, "binding": "call.CHANNEL_CREATE.*"},
        }
        frame = k.unsubscribe_frame("call.*.*", account_id=ACCT, auth_token=None, request_id="r-2")
        assert frame == {
            "action": "unsubscribe",
            "request_id": "r-2",
            "data": {"account_id": ACCT, "binding": "call.*.*"},
        }
        assert k.ping_frame(auth_token="T", request_id="r-3") == {
            "action": "ping",
            "request_id": "r-3",
            "auth_token": "T",
            "data": {},
        }
        assert k.encode({"a": 1, "b": [1]}) == '{"a":1,"b":[1]}'

    def test_parse_reply_success_and_error(self) -> None:
        ok = k.parse_frame(
            '{"action":"reply","request_id":"r-1","status":"success","data":{"subscribed":["x"]}}'
        )
        assert ok == k.Reply("r-1", "success", {"subscribed": ["x"]}) and ok.ok and ok.errors == []
        err = k.parse_frame(
            json.dumps(
                {"action": "reply", "request_id": "r-2", "status": "error", "data": {"errors": ["e1"]}}
            )
        )
        assert isinstance(err, k.Reply) and not err.ok and err.errors == ["e1"]

    def test_parse_event_has_no_request_id(self) -> None:
        frame = k.event_frame(
            "call.*.*",
            "call.A.CHANNEL_CREATE.*",
            "CHANNEL_CREATE",
            "call.A.CHANNEL_CREATE.x",
            {"call_id": "x"},
        )
        assert "request_id" not in frame
        ev = k.parse_frame(json.dumps(frame))
        assert ev == k.Event(
            "CHANNEL_CREATE",
            "call.*.*",
            "call.A.CHANNEL_CREATE.*",
            "call.A.CHANNEL_CREATE.x",
            {"call_id": "x"},
        )
        assert isinstance(ev, k.Event) and ev.call_id == "x"

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("{nope", "not JSON"),
            ("[1]", "a blackhole frame is a JSON object, not list"),
            ('{"action":"what"}', "unknown blackhole action 'what'"),
            ('{"action":"reply","data":{}}', "a reply frame without a 'status'"),
            ('{"action":"event","data":{}}', "an event frame without a 'name'"),
            ('{"action":"event","name":"X","data":[]}', "'data' of a 'event' frame is list, not an object"),
        ],
    )
    def test_bad_frames_raise_value_error(self, text: str, message: str) -> None:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
            k.parse_frame(text)
        with pytest.raises(ValueError, match="binary"):
            k.parse_frame(b"{}")

    def test_redaction(self) -> None:
        assert k.redact("failed to authenticate token SECRET") == "failed to authenticate token <redacted>"
        assert k.redact("x SECRET y", "SECRET") == "x <redacted> y"
        frame = {"auth_token": "SECRET", "data": {"errors": ["failed to authenticate token SECRET"]}}
        assert k.redact_frame(frame, "SECRET") == {
            "auth_token": "<redacted>",
            "data": {"errors": ["failed to authenticate token <redacted>"]},
        }


class TestNormalize:
    def test_keys_lowercased_dashes_to_underscores_none_dropped(self) -> None:
        raw = {
            "Call-ID": "abc",
            "Custom-Channel-Vars": {"Account-ID": ACCT, "Owner-ID": None},
            "Other-Leg-Call-ID": None,
            "List": [{"Inner-Key": 1}, "Str-Value"],
        }
        assert k.normalize(raw) == {
            "call_id": "abc",
            "custom_channel_vars": {"account_id": ACCT},
            "list": [{"inner_key": 1}, "Str-Value"],
        }

    @given(JSONISH)
    def test_normalized_keys_have_no_upper_case_or_dash(self, value: Any) -> None:
        def keys(v: Any) -> list[str]:
            if isinstance(v, dict):
                return [*v, *(x for item in v.values() for x in keys(item))]
            if isinstance(v, list):
                return [x for item in v for x in keys(item)]
            return []

        out = k.normalize(value)
        assert all("-" not in key and key == key.lower() for key in keys(out))
        assert k.normalize(out) == out

    def test_public_fields_strip_node_and_server_id(self) -> None:
        assert k.public_fields({"Node": "n", "Server-ID": "s", "Msg-ID": "m", "App-Name": "a"}) == {
            "Msg-ID": "m",
            "App-Name": "a",
        }


class TestRoutingKeys:
    @pytest.mark.parametrize(
        ("word", "encoded"),
        [
            ("at6dmu4ffk97vnlp6qfq", "at6dmu4ffk97vnlp6qfq"),
            ("a.b", "a%2Eb"),
            ("a b", "a+b"),
            ("abc@host", "abc%40host"),
            ("x/y:z", "x%2Fy%3Az"),
            ("é", "%C3%A9"),
            ("-_~", "-_~"),
            ("*", "*"),
        ],
    )
    def test_encode_routing_word(self, word: str, encoded: str) -> None:
        assert k.encode_routing_word(word) == encoded

    def test_call_routing_key_and_topic_match(self) -> None:
        rk = k.call_routing_key(ACCT, "CHANNEL_CREATE", "id.with.dots")
        assert rk == f"call.{ACCT}.CHANNEL_CREATE.id%2Ewith%2Edots"
        assert k.topic_match(f"call.{ACCT}.CHANNEL_CREATE.*", rk)
        assert k.topic_match("call.*.CHANNEL_CREATE.*", rk)
        assert k.topic_match("call.#", rk)
        assert not k.topic_match(f"call.{ACCT}.CHANNEL_ANSWER.*", rk)
        assert not k.topic_match(f"call.{OTHER}.CHANNEL_CREATE.*", rk)
        assert not k.topic_match(f"call.{ACCT}.CHANNEL_CREATE.other", rk)
        assert not k.topic_match(f"call.{ACCT}.*", rk)


class TestPipeline:
    def test_subscribe_success_reply(self, bh: k.Blackhole, s: k.BlackholeSession) -> None:
        out = run(bh, s, sub("call.CHANNEL_CREATE.*"))
        assert out.ok and out.stage is k.Stage.FINISH and out.action == "subscribe"
        assert out.reply == {
            "action": "reply",
            "request_id": "r-1",
            "status": "success",
            "data": {"subscribed": ["call.CHANNEL_CREATE.*"]},
        }
        assert s.auth_account_id == ACCT
        assert s.bindings == [("call.CHANNEL_CREATE.*", f"call.{ACCT}.CHANNEL_CREATE.*")]

    def test_call_star_star_appears_nine_times(self, bh: k.Blackhole, s: k.BlackholeSession) -> None:
        out = run(bh, s, sub("call.*.*"))
        assert out.reply["data"]["subscribed"] == ["call.*.*"] * 9
        assert [internal for _, internal in s.bindings] == [f"call.{ACCT}.{e}.*" for e in k.CALL_EVENTS]
        again = run(bh, s, sub("call.*.*", rid="r-2"))  # a second time adds nothing
        assert again.reply["data"]["subscribed"] == ["call.*.*"] * 9
        more = run(bh, s, sub("call.CHANNEL_CREATE.*", rid="r-3"))
        assert more.reply["data"]["subscribed"] == ["call.*.*"] * 9 + ["call.CHANNEL_CREATE.*"]

    def test_unsubscribe_reply_shape(self, bh: k.Blackhole, s: k.BlackholeSession) -> None:
        run(bh, s, sub("call.*.*"))
        run(bh, s, sub("call.CHANNEL_DESTROY.*", rid="r-2"))
        frame = k.unsubscribe_frame("call.*.*", account_id=ACCT, auth_token=None, request_id="r-3")
        out = run(bh, s, frame)
        assert out.reply == {
            "action": "reply",
            "request_id": "r-3",
            "status": "success",
            "data": {"unsubscribed": ["call.*.*"], "subscribed": ["call.CHANNEL_DESTROY.*"]},
        }

    def test_unsubscribe_without_data_is_not_unsubscribe_all(
        self, bh: k.Blackhole, s: k.BlackholeSession
    ) -> None:
        run(bh, s, sub("call.*.*"))
        out = run(bh, s, {"action": "unsubscribe", "request_id": "u"})
        assert errors(out) == ["missing required keys in data object"] and out.stage is k.Stage.VALIDATE
        assert len(s.bindings) == 9

    def test_missing_request_id_gets_32_hex(self, s: k.BlackholeSession) -> None:
        bh = k.Blackhole(directory())
        out = bh.handle(
            s,
            {"action": "subscribe", "auth_token": "TOK", "data": {"account_id": ACCT, "binding": "call.*.*"}},
            0,
        )
        rid = out.reply["request_id"]
        assert len(rid) == 32 and int(rid, 16) >= 0

    # -- authenticate --

    @pytest.mark.parametrize(
        ("token", "message"),
        [
            (None, "authentication token required"),
            ("", "authentication token required"),
            (12, "invalid authentication token format"),
            ("NOPE", "failed to authenticate token NOPE"),
        ],
    )
    def test_authentication_errors(
        self, bh: k.Blackhole, s: k.BlackholeSession, token: Any, message: str
    ) -> None:
        frame = {
            "action": "subscribe",
            "request_id": "r",
            "data": {"account_id": ACCT, "binding": "call.*.*"},
        }
        if token is not None:
            frame["auth_token"] = token
        out = run(bh, s, frame)
        assert out.reply == {
            "action": "reply",
            "request_id": "r",
            "status": "error",
            "data": {"errors": [message]},
        }
        assert out.stage is k.Stage.AUTHENTICATE and s.auth_account_id is None

    def test_authenticated_session_needs_no_token(self, bh: k.Blackhole, s: k.BlackholeSession) -> None:
        run(bh, s, sub("call.CHANNEL_CREATE.*"))
        assert run(bh, s, sub("call.CHANNEL_ANSWER.*", token=None, rid="r-2")).ok
        assert run(bh, s, sub("call.CHANNEL_HOLD.*", token="BOGUS", rid="r-3")).ok  # not checked again

    def test_failed_request_does_not_authenticate(self, bh: k.Blackhole, s: k.BlackholeSession) -> None:
        out = run(bh, s, sub("call.NOPE.*"))
        assert errors(out) == ["event NOPE not supported"]
        assert s.auth_account_id is None  # the error left the context as it was
        assert errors(run(bh, s, sub("call.*.*", token=None, rid="r-2"))) == ["authentication token required"]

    def test_ping_is_authenticated_too(self, bh: k.Blackhole, s: k.BlackholeSession) -> None:
        assert errors(run(bh, s, k.ping_frame(auth_token=None, request_id="p"))) == [
            "authentication token required"
        ]
        assert run(bh, s, k.ping_frame(auth_token="TOK", request_id="p")).reply["data"] == {
            "response": "pong"
        }

    # -- validate --

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (None, "missing required keys in data object"),
            ({}, "missing required keys in data object"),
            ({"account_id": ACCT}, "missing required keys : binding"),
            ({"binding": "call.*.*"}, "missing required keys : account_id"),
            ({"bindings": ["call.*.*"]}, "missing required keys : account_id, binding"),
            ({"account_id": ACCT, "bindings": ["call.*.*"]}, "missing required keys : binding"),
        ],
    )
    def test_data_validation(self, bh: k.Blackhole, s: k.BlackholeSession, data: Any, message: str) -> None:
        frame: dict[str, Any] = {"action": "subscribe", "auth_token": "TOK", "request_id": "r"}
        if data is not None:
            frame["data"] = data
        out = run(bh, s, frame)
        assert errors(out) == [message] and out.stage is k.Stage.VALIDATE

    def test_flat_frame_of_the_old_readme_fails(self, bh: k.Blackhole, s: k.BlackholeSession) -> None:
        frame = {"action": "subscribe", "auth_token": "TOK", "account_id": ACCT, "binding": "call.*.*"}
        assert errors(run(bh, s, frame)) == ["missing required keys in data object"]

    @pytest.mark.parametrize(
        ("binding", "message"),
        [
            ("call.CHANNEL_CREATE.*", None),
            ("call.*.*", None),
            ("call.*.somecallid", None),
            *((f"call.{e}.*", None) for e in k.CALL_EVENTS),
            ("call.CHANNEL_PARK.*", "event CHANNEL_PARK not supported"),
            ("call.CHANNEL_CREATE", "invalid format for call subscription : CHANNEL_CREATE"),
            ("call.a.b.c", "invalid format for call subscription : a, b, c"),
            ("call", "invalid format for call subscription : "),
            ("object.doc_created.user", None),
            ("object.*.*", None),
            ("object.doc_edited.*", None),
            ("object.*.callflow", None),
            ("object.doc_moved.*", "event doc_moved.* not supported"),
            ("object.*.widget", "event *.widget not supported"),
            ("object.doc_created.widget", "event doc_created.widget not supported"),
            ("object.doc_created", "invalid format for object subscription : doc_created"),
            ("fax.status.*", None),
            ("fax.object.doc_created", None),
            ("fax.status", "invalid format for fax subscription : status"),
            ("fax.other.x", "invalid format for fax subscription : other, x"),
            ("conference.event.conf1.*", None),
            ("conference.command.conf1", None),
            ("conference.event.*.*", "ConferenceId required"),
            ("conference.command.*", "ConferenceId required"),
            ("conference.event.x", "invalid format for conference subscription : event, x"),
        ],
    )
    def test_family_validation(
        self, bh: k.Blackhole, s: k.BlackholeSession, binding: str, message: str | None
    ) -> None:
        family, *parts = binding.split(".")
        assert k.validate_binding(family, parts) == message
        out = run(bh, s, sub(binding))
        if message is None:
            assert out.ok, out.reply
            assert binding in out.reply["data"]["subscribed"]
        else:
            assert errors(out) == [message] and out.stage is k.Stage.VALIDATE

    @pytest.mark.parametrize("binding", ["doc_created.*.user.*", "weird", "dialog.abc"])
    def test_unknown_family_passes_validation_then_has_no_subscription(
        self, bh: k.Blackhole, s: k.BlackholeSession, binding: str
    ) -> None:
        out = run(bh, s, sub(binding))
        assert (
            errors(out) == ["no available subscriptions to requested binding"]
            and out.stage is k.Stage.COMMAND
        )

    def test_non_string_binding_crashes(self, bh: k.Blackhole, s: k.BlackholeSession) -> None:
        with pytest.raises(ValueError, match="binding must be a string"):
            bh.handle(
                s, {"action": "subscribe", "auth_token": "TOK", "data": {"account_id": ACCT, "binding": 1}}, 0
            )
        with pytest.raises(ValueError, match="JSON object"):
            bh.handle(s, [1], 0)  # type: ignore[arg-type]

    # -- authorize --

    @pytest.mark.parametrize(
        ("token", "account", "message"),
        [
            ("TOK", ACCT, None),
            ("TOK", CHILD, None),
            ("TOK", GRANDCHILD, None),
            ("TOK", OTHER, "unauthorized account id"),
            ("TOK", "*", "unauthorized wildcard account id"),
            ("ADMIN-TOK", "*", None),
            ("ADMIN-TOK", OTHER, "unauthorized account id"),
        ],
    )
    def test_authorization(
        self, bh: k.Blackhole, s: k.BlackholeSession, token: str, account: str, message: str | None
    ) -> None:
        out = run(bh, s, sub("call.CHANNEL_CREATE.*", account=account, token=token))
        if message is None:
            assert out.ok
            assert s.bindings == [("call.CHANNEL_CREATE.*", f"call.{account}.CHANNEL_CREATE.*")]
        else:
            assert errors(out) == [message] and out.stage is k.Stage.AUTHORIZE

    def test_child_cannot_reach_parent(self, s: k.BlackholeSession) -> None:
        d = directory()
        d.add_token("CHILD-TOK", CHILD)
        bh = k.Blackhole(d)
        assert errors(bh.handle(s, sub("call.*.*", account=ACCT, token="CHILD-TOK"), 0)) == [
            "unauthorized account id"
        ]

    def test_unsubscribe_is_not_authorized(self, bh: k.Blackhole, s: k.BlackholeSession) -> None:
        frame = k.unsubscribe_frame("call.*.*", account_id=OTHER, auth_token="TOK", request_id="u")
        assert run(bh, s, frame).reply["data"] == {"unsubscribed": ["call.*.*"], "subscribed": []}

    # -- ping / resp_data --

    def test_ping_without_bh_ping_returns_the_last_resp_data(self, s: k.BlackholeSession) -> None:
        bh = k.Blackhole(directory(), bh_ping=False)
        first = bh.handle(s, k.ping_frame(auth_token="TOK", request_id="p1"), 0)
        assert first.reply == {"action": "reply", "request_id": "p1", "status": "success", "data": {}}
        bh.handle(s, sub("call.CHANNEL_CREATE.*", token=None), 0)
        again = bh.handle(s, k.ping_frame(auth_token=None, request_id="p2"), 0)
        assert again.reply["data"] == {"subscribed": ["call.CHANNEL_CREATE.*"]}
        noop = bh.handle(s, {"request_id": "n"}, 0)  # action defaults to noop
        assert noop.action == "noop" and noop.reply["data"] == {"subscribed": ["call.CHANNEL_CREATE.*"]}

    def test_pong_persists_as_resp_data(self, bh: k.Blackhole, s: k.BlackholeSession) -> None:
        run(bh, s, k.ping_frame(auth_token="TOK", request_id="p"))
        assert run(bh, s, {"action": "noop", "request_id": "n"}).reply["data"] == {"response": "pong"}

    def test_error_leaves_resp_data(self, bh: k.Blackhole, s: k.BlackholeSession) -> None:
        run(bh, s, sub("call.*.*"))
        run(bh, s, sub("call.BAD.*", rid="r-2"))
        assert s.resp_data == {"subscribed": ["call.*.*"] * 9}

    # -- rate --

    def test_rate_limit_100_then_10_per_second(self, bh: k.Blackhole, s: k.BlackholeSession) -> None:
        ping = k.ping_frame(auth_token="TOK", request_id="p")
        assert all(run(bh, s, ping, now=0.0).ok for _ in range(100))
        out = run(bh, s, ping, now=0.0)
        assert (
            errors(out) == ["rate limiting threshold hit for 127.0.0.1:40000!"] and out.stage is k.Stage.RATE
        )
        assert sum(run(bh, s, ping, now=1.0).ok for _ in range(15)) == 10
        assert sum(run(bh, s, ping, now=100.0).ok for _ in range(150)) == 100

    def test_token_bucket(self) -> None:
        b = k.TokenBucket(2, 1, 2)
        assert [b.take(0), b.take(0), b.take(0), b.take(0.5), b.take(1.0), b.take(1.0)] == [
            True,
            True,
            False,
            False,
            True,
            False,
        ]

    def test_deliveries(self, bh: k.Blackhole, s: k.BlackholeSession) -> None:
        run(bh, s, sub("call.*.*"))
        run(bh, s, sub("call.CHANNEL_CREATE.*", rid="2"))
        run(bh, s, sub("call.CHANNEL_CREATE.onlythis", rid="3"))
        rk = k.call_routing_key(ACCT, "CHANNEL_CREATE", "abc")
        assert k.Blackhole.deliveries(s, rk) == [
            ("call.*.*", f"call.{ACCT}.CHANNEL_CREATE.*"),
            ("call.CHANNEL_CREATE.*", f"call.{ACCT}.CHANNEL_CREATE.*"),
        ]
        assert len(k.Blackhole.deliveries(s, k.call_routing_key(ACCT, "CHANNEL_CREATE", "onlythis"))) == 3
        assert k.Blackhole.deliveries(s, k.call_routing_key(OTHER, "CHANNEL_CREATE", "abc")) == []


class TestChannelEvents:
    def test_create_data_is_normalized(self) -> None:
        data = k.channel_event(
            "CHANNEL_CREATE",
            call_id="at6dmu4ffk97vnlp6qfq",
            account_id=ACCT,
            timestamp=63610891956,
            msg_id="1443672756993309",
            direction="inbound",
            caller_id_name="Alice",
            caller_id_number="+15550100",
        )
        assert data["call_id"] == "at6dmu4ffk97vnlp6qfq"
        assert data["event_name"] == "CHANNEL_CREATE" and data["event_category"] == "call_event"
        assert data["custom_channel_vars"]["account_id"] == ACCT
        assert data["timestamp"] == 63610891956 and data["msg_id"] == "1443672756993309"
        assert data["call_direction"] == "inbound"
        assert "node" not in data and "server_id" not in data
        assert "other_leg_call_id" not in data and "callee_id_number" not in data  # None values dropped
        assert "hangup_cause" not in data
        assert all(key == key.lower() and "-" not in key for key in data)

    def test_destroy_adds_cause_and_string_seconds(self) -> None:
        data = k.channel_event(
            "CHANNEL_DESTROY",
            call_id="x" * 20,
            account_id=ACCT,
            timestamp=1,
            direction="outbound",
            caller_id_name="A",
            caller_id_number="1",
            callee_id_number="2",
            other_leg_call_id="y" * 20,
            hangup_cause="USER_BUSY",
            hangup_code="sip:486",
            billing_seconds=0,
            duration_seconds=3,
            ringing_seconds=3,
        )
        assert (data["hangup_cause"], data["hangup_code"]) == ("USER_BUSY", "sip:486")
        assert (data["billing_seconds"], data["duration_seconds"], data["ringing_seconds"]) == ("0", "3", "3")
        assert data["other_leg_call_id"] == "y" * 20 and data["callee_id_number"] == "2"
        assert data["custom_channel_vars"]["bridge_id"] == "y" * 20


class TestFlat:
    def test_event_frame(self) -> None:
        data = {
            "call_id": "c1",
            "other_leg_call_id": "c2",
            "call_direction": "inbound",
            "caller_id_number": "+1555",
            "callee_id_number": "1002",
            "custom_channel_vars": {"account_id": ACCT},
            "hangup_cause": "NORMAL_CLEARING",
            "timestamp": 63610891956,
        }
        frame = k.event_frame("call.*.*", "i", "CHANNEL_DESTROY", "rk", data)
        assert k.flat("CHANNEL_DESTROY", frame) == {
            "event_ts": 1443672756.0,
            "name": "CHANNEL_DESTROY",
            "call_id": "c1",
            "other_leg_call_id": "c2",
            "call_direction": "inbound",
            "caller_id_number": "+1555",
            "callee_id_number": "1002",
            "account_id": ACCT,
            "hangup_cause": "NORMAL_CLEARING",
            "subscribed_key": "call.*.*",
        }
        assert tuple(k.flat("x", frame)) == k.FLAT_COLUMNS

    @pytest.mark.parametrize(
        "payload",
        [
            None,
            1,
            "x",
            [],
            {},
            {"data": 5},
            {"data": {"timestamp": "soon", "custom_channel_vars": 3}},
            {"data": {"timestamp": True, "call_id": {"a": 1}}},
        ],  # fmt: skip
    )
    def test_odd_payloads_give_nones(self, payload: Any) -> None:
        out = k.flat("reply", payload)
        assert tuple(out) == k.FLAT_COLUMNS and all(v is None for v in out.values())
