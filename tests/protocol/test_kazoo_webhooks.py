"""Kazoo webhooks, pure (platforms.md §1.4, §4): flattening both ways, payloads, configs, the
disabler, flat columns."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jambonz_lab.protocol.kazoo import GREGORIAN_OFFSET
from jambonz_lab.protocol.kazoo_webhooks import (
    DISABLED_MESSAGE,
    FLAT_COLUMNS,
    HookDisabler,
    WebhookConfig,
    channel_payload,
    clamp_retries,
    flat,
    from_querystring,
    hook_event_for,
    matches,
    to_querystring,
)

ACCOUNT = "4b31dd1d32ce6d249897c06332375d65"

#: a CHANNEL_DESTROY as blackhole hands it over (normalized keys; durations as strings)
DESTROY: dict[str, Any] = {
    "app_name": "ecallmgr",
    "event_category": "call_event",
    "event_name": "CHANNEL_DESTROY",
    "msg_id": "1443672756993309",
    "call_id": "at6dmu4ffk97vnlp6qfq",
    "other_leg_call_id": "af1e",
    "call_direction": "inbound",
    "caller_id_name": "Test Man",
    "caller_id_number": "+15556783945",
    "callee_id_name": "Caller Test",
    "callee_id_number": "+15552345678",
    "custom_channel_vars": {
        "account_id": ACCOUNT,
        "authorizing_id": "d509",
        "authorizing_type": "device",
        "owner_id": "699e",
        "realm": "acme.example.com",
        "username": "user_wpxnx7am9w",
        "my_var": "kept",
    },
    "from": "+15556783945@acme.example.com",
    "to": "+15552345678@acme.example.com",
    "request": "+15552345678@acme.example.com",
    "timestamp": 63610891956,
    "hangup_cause": "NORMAL_CLEARING",
    "hangup_code": "sip:200",
    "duration_seconds": "6",
    "ringing_seconds": "0",
    "billing_seconds": "6",
    "undefined_thing": None,
}


class TestToQuerystring:
    def test_flat_values_and_order(self) -> None:
        assert to_querystring({"a": "1", "b": 2, "c": "x"}) == "a=1&b=2&c=x"

    def test_nested_object_uses_brackets(self) -> None:
        got = to_querystring({"custom_channel_vars": {"owner_id": "o1", "deep": {"k": "v"}}})
        assert got == "custom_channel_vars[owner_id]=o1&custom_channel_vars[deep][k]=v"

    def test_list_repeats_key_with_empty_brackets(self) -> None:
        assert to_querystring({"k": ["a", "b"], "n": {"l": [1]}}) == "k[]=a&k[]=b&n[l][]=1"

    def test_booleans_are_words(self) -> None:
        assert to_querystring({"t": True, "f": False, "l": [False]}) == "t=true&f=false&l[]=false"

    def test_values_are_url_encoded(self) -> None:
        got = to_querystring({"v": "a&b=c d", "u": "é€", "s": "-._~", "p": "+/?#%"})
        assert got == "v=a%26b%3Dc+d&u=%C3%A9%E2%82%AC&s=-._~&p=%2B%2F%3F%23%25"

    def test_kazoo_quirks_empty_object_and_list_leave_empty_parts(self) -> None:
        assert to_querystring({"a": "1", "ccv": {}, "l": [], "b": "2"}) == "a=1&&&b=2"
        assert to_querystring({"a": "1", "ccv": {}}) == "a=1&"

    def test_floats_keep_two_decimals_like_kazoo(self) -> None:
        assert to_querystring({"f": 1.5, "g": 2.0, "h": 0.125}) == "f=1.50&g=2.00&h=1.25"

    def test_none_is_left_out(self) -> None:
        assert to_querystring({"a": None, "b": "1", "l": [None, "x"]}) == "b=1&l[]=x"

    def test_unsafe_key_characters_are_escaped(self) -> None:
        assert to_querystring({"a b&c": "1", "k[x]": "2"}) == "a+b%26c=1&k%5Bx%5D=2"

    def test_empty_payload(self) -> None:
        assert to_querystring({}) == ""


class TestFromQuerystring:
    def test_nesting_lists_and_plus(self) -> None:
        got = from_querystring("a=x+y&ccv[owner_id]=o1&ccv[d][k]=v&l[]=1&l[]=true")
        assert got == {"a": "x y", "ccv": {"owner_id": "o1", "d": {"k": "v"}}, "l": ["1", "true"]}

    def test_types_are_lost_everything_is_a_string(self) -> None:
        back = from_querystring(to_querystring({"n": 6, "b": False, "f": 1.5}))
        assert back == {"n": "6", "b": "false", "f": "1.50"}

    def test_repeated_plain_key_becomes_a_list(self) -> None:
        assert from_querystring("a=1&a=2&a=3") == {"a": ["1", "2", "3"]}

    def test_question_marks_and_empty_parts_are_separators(self) -> None:
        assert from_querystring("?token=abc?hook_event=channel_create&&x=") == {
            "token": "abc",
            "hook_event": "channel_create",
            "x": "",
        }

    def test_percent_decoding(self) -> None:
        assert from_querystring("u=%C3%A9%E2%82%AC&v=a%26b%3Dc+d") == {"u": "é€", "v": "a&b=c d"}

    @pytest.mark.parametrize(
        "text",
        ["=", "&&&", "[a]=1", "a[=1", "a]=1", "a[b=1", "a=1&a[b]=2", "a[b]=2&a=1", "a[]=1&a[b]=2",
         "a[b]=1&a[]=2", "a[][b]=1", "%ZZ=%", "a=%E9", "a[b][]=1&a[b]=2", "k"],
    )  # fmt: skip
    def test_never_raises_on_odd_input(self, text: str) -> None:
        assert isinstance(from_querystring(text), dict)

    def test_conflicts_keep_both_values(self) -> None:
        assert from_querystring("a[b]=2&a=1") == {"a": {"b": "2", "": "1"}}
        assert from_querystring("a=1&a[]=2") == {"a": ["1", "2"]}


_keys = st.text(min_size=1, max_size=8)
_tree = st.recursive(
    st.text(max_size=10),
    lambda children: st.dictionaries(_keys, children, min_size=1, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(_keys, _tree, max_size=5))
def test_round_trip_of_nested_string_dicts(payload: dict[str, Any]) -> None:
    assert from_querystring(to_querystring(payload)) == payload


@given(st.dictionaries(_keys, st.lists(st.text(max_size=6), min_size=1, max_size=4), max_size=4))
def test_round_trip_of_string_lists(payload: dict[str, Any]) -> None:
    assert from_querystring(to_querystring(payload)) == payload


@given(st.text(max_size=60))
def test_from_querystring_never_raises(text: str) -> None:
    assert isinstance(from_querystring(text), dict)


class TestHookEvents:
    @pytest.mark.parametrize(
        ("event", "hook"),
        [
            ("CHANNEL_CREATE", "channel_create"),
            ("CHANNEL_ANSWER", "channel_answer"),
            ("CHANNEL_BRIDGE", "channel_bridge"),
            ("CHANNEL_DESTROY", "channel_destroy"),
            ("CHANNEL_DISCONNECTED", "channel_destroy"),
            ("PARK_PARKED", "parking"),
            ("PARK_RETRIEVED", "parking"),
            ("PARK_ABANDONED", "parking"),
            ("CHANNEL_HOLD", None),
            ("CHANNEL_UNHOLD", None),
            ("", None),
        ],
    )
    def test_hook_event_for(self, event: str, hook: str | None) -> None:
        assert hook_event_for(event) == hook

    def test_matches(self) -> None:
        assert matches("all", "channel_destroy")
        assert matches("channel_create", "channel_create")
        assert matches("CHANNEL_CREATE", "channel_create")
        assert not matches("channel_create", "channel_destroy")
        assert not matches("object", "channel_create")
        assert not matches("parking", "channel_answer")


class TestChannelPayload:
    def test_destroy_payload(self) -> None:
        got = channel_payload("channel_destroy", DESTROY, cluster_id="c1")
        assert got == {
            "hook_event": "channel_destroy",
            "account_id": ACCOUNT,
            "authorizing_id": "d509",
            "authorizing_type": "device",
            "call_direction": "inbound",
            "call_forwarded": False,
            "call_id": "at6dmu4ffk97vnlp6qfq",
            "callee_id_name": "Caller Test",
            "callee_id_number": "+15552345678",
            "caller_id_name": "Test Man",
            "caller_id_number": "+15556783945",
            "custom_channel_vars": {"my_var": "kept"},
            "emergency_resource_used": False,
            "from": "+15556783945@acme.example.com",
            "is_internal_leg": False,
            "local_resource_used": True,
            "other_leg_call_id": "af1e",
            "owner_id": "699e",
            "request": "+15552345678@acme.example.com",
            "timestamp": "63610891956",
            "to": "+15552345678@acme.example.com",
            "hangup_cause": "NORMAL_CLEARING",
            "hangup_code": "sip:200",
            "duration_seconds": 6,
            "ringing_seconds": 0,
            "billing_seconds": 6,
            "cluster_id": "c1",
        }

    def test_event_name_is_accepted_and_create_has_no_hangup_keys(self) -> None:
        got = channel_payload("CHANNEL_CREATE", DESTROY, cluster_id="c1")
        assert got["hook_event"] == "channel_create"
        assert "hangup_cause" not in got and "billing_seconds" not in got
        assert got["timestamp"] == "63610891956"
        assert got["cluster_id"] == "c1"

    def test_bridge_extras(self) -> None:
        event = {**DESTROY, "other_leg_destination_number": "2600"}
        event["custom_channel_vars"] = {**DESTROY["custom_channel_vars"], "original_number": "+1555"}
        got = channel_payload("channel_bridge", event, cluster_id="c1")
        assert got["original_number"] == "+1555"
        assert got["other_leg_destination_number"] == "2600"
        assert "original_number" not in got["custom_channel_vars"]
        assert "hangup_cause" not in got

    def test_undefined_values_are_left_out(self) -> None:
        got = channel_payload("channel_answer", {"call_id": "x"}, cluster_id="c")
        assert got == {
            "hook_event": "channel_answer",
            "call_forwarded": False,
            "call_id": "x",
            "custom_channel_vars": {},
            "emergency_resource_used": False,
            "is_internal_leg": False,
            "local_resource_used": True,
            "cluster_id": "c",
        }

    def test_custom_data_is_merged_without_type_and_action(self) -> None:
        custom = {"type": "t", "action": "a", "team": "blue", "call_id": "override"}
        got = channel_payload("channel_create", DESTROY, cluster_id="c", custom_data=custom)
        assert got["team"] == "blue"
        assert got["call_id"] == "override"  # kz_json:merge_jobjs: custom data wins
        assert "type" not in got and "action" not in got
        assert custom == {"type": "t", "action": "a", "team": "blue", "call_id": "override"}

    def test_cluster_id_is_set_last(self) -> None:
        got = channel_payload("channel_create", DESTROY, cluster_id="c", custom_data={"cluster_id": "x"})
        assert got["cluster_id"] == "c"

    def test_resources_and_loopback(self) -> None:
        event = {
            "call_id": "x",
            "channel_is_loopback": "true",
            "custom_channel_vars": {
                "global_resource": "true",
                "resource_id": "r1",
                "emergency_resource": True,
            },
        }
        got = channel_payload("channel_create", event, cluster_id="c")
        assert got["local_resource_used"] is False
        assert "local_resource_id" not in got
        assert got["is_internal_leg"] is True
        assert got["emergency_resource_used"] is True
        local = channel_payload(
            "channel_create", {"custom_channel_vars": {"resource_id": "r1"}}, cluster_id="c"
        )
        assert local["local_resource_id"] == "r1"

    def test_parking_keeps_the_event_without_internal_keys(self) -> None:
        event = {
            "event_name": "PARK_PARKED",
            "app_name": "callflow",
            "msg_id": "m",
            "event_category": "call_event",
            "call_id": "p1",
            "caller_id_Number": "+1",
            "custom_channel_vars": {"account_id": ACCOUNT},
            "parking_slot": "100",
        }
        got = channel_payload("parking", event, cluster_id="c")
        assert got == {
            "hook_event": "parking",
            "event_name": "PARK_PARKED",
            "call_id": "p1",
            "caller_id_Number": "+1",
            "parking_slot": "100",
            "account_id": ACCOUNT,
            "cluster_id": "c",
        }

    def test_odd_input_does_not_raise(self) -> None:
        got = channel_payload("channel_destroy", {"custom_channel_vars": "nope"}, cluster_id="c")
        assert got["hook_event"] == "channel_destroy"


class TestConfig:
    @pytest.mark.parametrize(
        ("given", "want"),
        [(None, 2), (0, 1), (-3, 1), (1, 1), (3, 3), (5, 5), (6, 5), (99, 5), ("4", 4), ("x", 2), (True, 2)],
    )
    def test_retries_clamp(self, given: Any, want: int) -> None:
        assert clamp_retries(given) == want

    def test_defaults(self) -> None:
        cfg = WebhookConfig("n", "http://127.0.0.1/h", "channel_create")
        assert (cfg.http_verb, cfg.format, cfg.retries, cfg.enabled, cfg.include_subaccounts) == (
            "post",
            "form-data",
            2,
            True,
            False,
        )
        assert len(cfg.id) == 32 and cfg.disable_reason is None

    def test_normalization_and_clamp(self) -> None:
        cfg = WebhookConfig("n", "http://h/", "CHANNEL_CREATE", http_verb="GET", format="JSON", retries=9)
        assert (cfg.hook, cfg.http_verb, cfg.format, cfg.retries) == ("channel_create", "get", "json", 5)

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("http_verb", "delete", "http_verb must be one of get, post, put, not 'delete'"),
            ("format", "xml", "format must be one of form-data, json, not 'xml'"),
            ("hook", "channel_hold", "hook must be one of"),
            ("uri", "ftp://x", "uri must be an http(s) URL"),
        ],
    )
    def test_bad_fields(self, field: str, value: str, message: str) -> None:
        fields: dict[str, Any] = {"name": "n", "uri": "http://h/", "hook": "all", field: value}
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            WebhookConfig(**fields)

    def test_listing(self) -> None:
        cfg = WebhookConfig("n", "http://h/", "all", id="h1")
        assert cfg.listing() == {
            "id": "h1",
            "name": "n",
            "uri": "http://h/",
            "hook": "all",
            "http_verb": "post",
            "format": "form-data",
            "retries": 2,
            "include_subaccounts": False,
            "enabled": True,
        }
        cfg.enabled, cfg.disable_reason = False, DISABLED_MESSAGE
        assert cfg.listing()["disable_reason"] == "too many failed attempts"


class TestDisabler:
    def test_six_failures_within_the_window_disable(self) -> None:
        d = HookDisabler()
        for t in range(6):
            d.failure("h", t * 1000)
        assert d.count("h", 6000) == 6
        assert d.check(6000) == ["h"]
        assert not d.pending  # forgotten once disabled
        assert d.check(6000) == []

    def test_five_failures_do_not(self) -> None:
        d = HookDisabler()
        for t in range(5):
            d.failure("h", t)
        assert d.check(10) == []
        assert d.count("h", 10) == 5

    def test_a_failure_exactly_window_old_has_expired(self) -> None:
        d = HookDisabler(window_ms=60_000, limit=6)
        d.failure("h", 0)
        for t in range(5):
            d.failure("h", 1000 + t)
        assert d.count("h", 60_000) == 5
        assert d.check(60_000) == []
        assert d.count("h", 59_999) == 5  # pruned at the check: the old one is gone for good

    def test_one_ms_inside_the_window_still_counts(self) -> None:
        d = HookDisabler(window_ms=60_000, limit=6)
        for t in range(6):
            d.failure("h", t)
        assert d.check(60_000 - 1 + 0) == ["h"]

    def test_expired_failures_are_dropped(self) -> None:
        d = HookDisabler(window_ms=100, limit=2)
        d.failure("a", 0)
        assert d.check(100) == []
        assert not d.pending

    def test_hooks_are_counted_apart_and_reset(self) -> None:
        d = HookDisabler(window_ms=1000, limit=2)
        d.failure("a", 0)
        d.failure("b", 0)
        d.failure("b", 1)
        assert d.check(2) == ["b"]
        d.failure("a", 3)
        d.reset("a")
        assert d.check(4) == []


class TestFlat:
    def test_columns_are_exact(self) -> None:
        assert FLAT_COLUMNS == (
            "event_ts",
            "name",
            "call_id",
            "other_leg_call_id",
            "call_direction",
            "caller_id_number",
            "callee_id_number",
            "account_id",
            "hangup_cause",
            "subscribed_key",
        )

    def test_destroy_payload(self) -> None:
        payload = channel_payload("channel_destroy", DESTROY, cluster_id="c")
        assert flat("channel_destroy", payload) == {
            "event_ts": 1443672756.0,
            "name": "CHANNEL_DESTROY",
            "call_id": "at6dmu4ffk97vnlp6qfq",
            "other_leg_call_id": "af1e",
            "call_direction": "inbound",
            "caller_id_number": "+15556783945",
            "callee_id_number": "+15552345678",
            "account_id": ACCOUNT,
            "hangup_cause": "NORMAL_CLEARING",
            "subscribed_key": None,
        }

    def test_form_data_strings(self) -> None:
        payload = from_querystring(to_querystring(channel_payload("channel_create", DESTROY, cluster_id="c")))
        row = flat("channel_create", payload)
        assert row["name"] == "CHANNEL_CREATE"
        assert row["event_ts"] == 63610891956 - GREGORIAN_OFFSET

    def test_parking_name_and_capital_n(self) -> None:
        row = flat(
            "parking", {"hook_event": "parking", "event_name": "PARK_RETRIEVED", "caller_id_Number": "+1"}
        )
        assert row["name"] == "PARK_RETRIEVED" and row["caller_id_number"] == "+1"
        assert flat("parking", {"hook_event": "parking"})["name"] == "PARKING"

    def test_other_hooks_upper_cased(self) -> None:
        assert flat("webhook", {"hook_event": "object"})["name"] == "OBJECT"
        assert flat("webhook", {})["name"] == "WEBHOOK"

    @pytest.mark.parametrize(
        "payload",
        [{}, {"timestamp": "abc"}, {"timestamp": None}, {"timestamp": float("nan")}, {"call_id": {"x": 1}},
         {"hook_event": 5, "timestamp": [1]}, {"account_id": None, "custom_channel_vars": "x"}],
    )  # fmt: skip
    def test_odd_payloads_give_nones(self, payload: dict[str, Any]) -> None:
        row = flat("x", payload)
        assert tuple(row) == FLAT_COLUMNS
        assert row["event_ts"] is None and row["subscribed_key"] is None

    def test_not_a_dict(self) -> None:
        row = flat("x", None)  # type: ignore[arg-type]
        assert tuple(row) == FLAT_COLUMNS and row["call_id"] is None and row["name"] == "X"
