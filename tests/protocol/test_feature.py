"""Tests for jambonz_lab.protocol.feature: jambonz's side of the socket, sans I/O.

Each test name ends with the ``lib/utils/ws-requestor.js`` line (feature-server 0.9.8,
approximate) whose rule it pins.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from jambonz_lab.protocol import MAX_APP_FRAME, MessageType
from jambonz_lab.protocol.feature import (
    Acked,
    Command,
    FeatureProtocol,
    Frame,
    Invalid,
    LinkState,
    Request,
    StrayAck,
    TooLarge,
    hook_params,
    invalid_message_data,
    new_msgid,
)

INFO = {"call_sid": "c1", "callStatus": "trying", "from": "+1415"}


def core(**kw: Any) -> FeatureProtocol:
    """A core with msgids m0, m1, … and its first socket open."""
    ids = itertools.count()
    p = FeatureProtocol(msgids=lambda: f"m{next(ids)}", **kw)
    p.connected()
    return p


def opened(**kw: Any) -> FeatureProtocol:
    """session:new (m0) sent and acked."""
    p = core(**kw)
    p.request("session:new", INFO)
    p.receive(ack("m0", [{"verb": "say", "text": "hi"}]))
    p.frames_to_send()
    return p


def ack(msgid: Any, data: Any = None) -> str:
    frame: dict[str, Any] = {"type": "ack", "msgid": msgid}
    if data is not None:
        frame["data"] = data
    return json.dumps(frame)


def wire(frames: list[Frame]) -> list[tuple[str, str]]:
    return [(f.message["type"], f.msgid) for f in frames]


# -- requests out ---------------------------------------------------------------------


def test_envelope_call_sid_only_once_session_new_was_sent_ws_requestor_86() -> None:
    """Before session:new (a REST call's first call:status) the envelope has no call_sid."""
    p = core()
    status = p.request("call:status", {"call_sid": "c1", "call_status": "trying"})
    new = p.request("session:new", INFO)
    assert status is not None and new is not None
    assert "call_sid" not in status.message
    assert new.message["call_sid"] == "c1" and p.call_sid == "c1"
    assert list(new.message) == ["type", "msgid", "call_sid", "data"]


def test_data_is_snake_cased_except_verbatim_subtrees_ws_requestor_190() -> None:
    p = core()
    frame = p.request("verb:hook", {"callSid": "c1", "customerData": {"myKey": 1}}, "/h")
    assert frame is not None
    assert frame.message["data"] == {"call_sid": "c1", "customerData": {"myKey": 1}}


@pytest.mark.parametrize(
    ("kind", "has_hook"),
    [
        ("verb:hook", True),
        ("dial:confirm", True),
        ("session:redirect", True),
        ("llm:event", True),
        ("llm:tool-call", True),
        ("call:status", False),
        ("verb:status", False),
        ("jambonz:error", False),
    ],
)
def test_hook_only_on_the_five_hooked_types_ws_requestor_204(kind: str, has_hook: bool) -> None:
    frame = core().request(kind, {}, "/h")
    assert frame is not None
    assert ("hook" in frame.message) is has_hook
    assert frame.request.hook == ("/h" if has_hook else None)


def test_object_hook_sends_its_url_ws_requestor_74() -> None:
    frame = core().request("verb:hook", {}, {"url": "/obj", "method": "POST"})
    assert frame is not None and frame.message["hook"] == "/obj"


def test_b3_and_empty_data_ws_requestor_199_207() -> None:
    frame = core().request("verb:status", None, b3="t-s-1")
    assert frame is not None
    assert frame.message["data"] == {} and frame.message["b3"] == "t-s-1"


def test_frame_text_is_compact_json_ws_requestor_256() -> None:
    frame = core().request("call:status", {"call_status": "trying", "note": "é"})
    assert frame is not None
    assert frame.text == json.dumps(frame.message, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    ("kind", "wants"),
    [(t.value, t.needs_ack) for t in MessageType],
)
def test_which_types_want_an_ack_ws_requestor_16_75(kind: str, wants: bool) -> None:
    p = core()
    frame = p.request(kind, {})
    assert frame is not None and frame.wants_ack is wants
    assert p.is_pending(frame.msgid) is wants


def test_unknown_type_is_refused_ws_requestor_73() -> None:
    with pytest.raises(ValueError, match="'nope' is not a message type jambonz sends"):
        core().request("nope")


def test_default_msgids_look_like_short_uuids_ws_requestor_195() -> None:
    ids = {new_msgid() for _ in range(200)}
    assert len(ids) == 200 and all(len(i) == 22 and i.isalnum() for i in ids)
    frame = FeatureProtocol().request("call:status", {})
    assert frame is not None and len(frame.msgid) == 22


# -- queueing -------------------------------------------------------------------------


def test_requests_before_the_first_socket_wait_for_it_ws_requestor_109_125() -> None:
    p = FeatureProtocol(msgids=iter(["a", "b"]).__next__)
    p.request("call:status", {})
    p.request("call:status", {})
    assert p.frames_to_send() == [] and len(p.queued) == 2
    assert p.connected() is None and p.state is LinkState.OPEN
    assert [f.msgid for f in p.frames_to_send()] == ["a", "b"]


def test_frames_to_send_returns_each_frame_once() -> None:
    p = core()
    p.request("call:status", {})
    assert len(p.frames_to_send()) == 1 and p.frames_to_send() == []


def test_reconnect_goes_first_the_rest_waits_for_its_ack_ws_requestor_184_296() -> None:
    p = opened()
    p.request("verb:hook", {}, "/h")  # m1, in flight
    assert wire(p.frames_to_send()) == [("verb:hook", "m1")]
    dropped = p.connection_lost(1006)
    assert dropped.reconnect and [r.msgid for r in dropped.abandoned] == ["m1"]
    p.request("call:status", {"call_status": "in-progress"})  # m2, waits
    reconnect = p.connected()
    assert reconnect is not None and p.state is LinkState.RESYNC
    assert wire(p.frames_to_send()) == [("session:reconnect", "m3")]
    p.request("verb:status", {})  # m4 waits too
    assert p.frames_to_send() == []
    (event,) = p.receive(ack("m3"))
    assert isinstance(event, Acked) and event.request.type is MessageType.SESSION_RECONNECT
    assert p.state is LinkState.OPEN
    assert wire(p.frames_to_send()) == [("call:status", "m2"), ("verb:status", "m4")]


def test_reconnect_carries_the_cached_session_payload_ws_requestor_191_192() -> None:
    p = opened()
    p.connection_lost(1011)
    frame = p.connected()
    assert frame is not None
    assert frame.message["data"] == {"call_sid": "c1", "call_status": "trying", "from": "+1415"}
    assert frame.message["call_sid"] == "c1" and "hook" not in frame.message


def test_reconnect_without_session_data_sends_empty_data_ws_requestor_192() -> None:
    """A REST call dropped before session:new: the cached payload is undefined → ``data: {}``."""
    p = core()
    p.request("call:status", {"call_status": "trying"})
    p.connection_lost(1006)
    frame = p.connected()
    assert frame is not None and frame.message["data"] == {} and "call_sid" not in frame.message


def test_adulting_payload_is_cached_for_reconnect_ws_requestor_191() -> None:
    p = core()
    p.request("session:adulting", {"callSid": "b1"})
    p.receive(ack("m0"))
    p.connection_lost(1006)
    frame = p.connected()
    assert frame is not None and frame.message["data"] == {"call_sid": "b1"}


def test_any_ack_ends_the_reconnect_wait_ws_requestor_282() -> None:
    """The reconnect wait is resolved by the success of any request, not only its own."""
    p = opened()
    p.connection_lost(1006)
    p.connected()  # m1: session:reconnect
    p.request("call:status", {})  # m2 waits
    p.frames_to_send()
    assert isinstance(p.receive(ack("m1"))[0], Acked)
    assert wire(p.frames_to_send()) == [("call:status", "m2")]


def test_a_timeout_while_resyncing_fails_the_reconnect_ws_requestor_286_304() -> None:
    p = opened()
    p.connection_lost(1006)
    reconnect = p.connected()
    assert reconnect is not None
    p.request("call:status", {})
    expired = p.expire(reconnect.msgid)
    assert expired is not None and expired.reconnect_failed
    assert [f.type for f in expired.dropped] == [MessageType.CALL_STATUS]
    assert p.queued == [] and p.frames_to_send() == [reconnect]


# -- the unacked session:new --------------------------------------------------------------


def test_reconnect_takes_over_an_unacked_session_new_ws_requestor_245_252() -> None:
    p = core()
    new = p.request("session:new", INFO)
    dropped = p.connection_lost(1006)
    assert dropped.reconnect and dropped.abandoned == () and p.opening_unacked
    reconnect = p.connected()
    assert reconnect is not None and reconnect.stands_in_for == "m0"
    assert not p.is_pending("m0") and p.is_pending(reconnect.msgid)
    verbs = [{"verb": "say", "text": "hi"}]
    (event,) = p.receive(ack(reconnect.msgid, verbs))
    assert event == Acked(reconnect.msgid, verbs, Request("m0", MessageType.SESSION_NEW, None))
    assert new is not None and not p.opening_unacked


def test_an_ack_to_the_old_session_new_msgid_is_stray_after_rekeying_ws_requestor_250() -> None:
    p = core()
    p.request("session:new", INFO)
    p.connection_lost(1006)
    p.connected()
    (event,) = p.receive(ack("m0", [{"verb": "say", "text": "late"}]))
    assert isinstance(event, StrayAck) and event.why == "unknown"


def test_the_old_timer_finds_nothing_after_rekeying_ws_requestor_266() -> None:
    """The session:new timer looks up its own msgid, which the reconnect took over."""
    p = core()
    p.request("session:new", INFO)
    p.connection_lost(1006)
    reconnect = p.connected()
    assert reconnect is not None
    assert p.expire("m0") is None and p.is_pending(reconnect.msgid)


def test_timed_out_session_new_leaves_nothing_to_rekey_ws_requestor_248() -> None:
    p = core()
    p.request("session:new", INFO)
    p.expire("m0")
    p.connection_lost(1006)
    reconnect = p.connected()
    assert reconnect is not None and reconnect.stands_in_for == "m0"
    (event,) = p.receive(ack(reconnect.msgid))
    assert isinstance(event, StrayAck) and event.why == "unknown"


def test_any_ack_clears_the_unacked_session_new_mark_ws_requestor_538() -> None:
    """Even a stray ack: a drop then abandons the session:new instead of re-keying it."""
    p = core()
    p.request("session:new", INFO)
    assert isinstance(p.receive(ack("nope"))[0], StrayAck)
    assert not p.opening_unacked
    dropped = p.connection_lost(1006)
    assert [r.msgid for r in dropped.abandoned] == ["m0"]
    reconnect = p.connected()
    assert reconnect is not None and reconnect.stands_in_for is None


# -- acks in --------------------------------------------------------------------------------


def test_ack_answers_its_request_ws_requestor_545() -> None:
    p = opened()
    hook = p.request("verb:hook", {"digits": "1"}, "/g")
    assert hook is not None
    (event,) = p.receive(ack(hook.msgid, []))
    assert event == Acked("m1", [], Request("m1", MessageType.VERB_HOOK, "/g"))
    assert p.pending() == []


def test_concurrent_requests_each_wait_for_their_own_ack_ws_requestor_274() -> None:
    p = opened()
    p.request("verb:hook", {}, "/a")
    p.request("verb:hook", {}, "/b")
    assert [r.hook for r in p.pending()] == ["/a", "/b"]
    p.receive(ack("m2"))
    assert [r.hook for r in p.pending()] == ["/a"]


@pytest.mark.parametrize(
    ("setup", "why"),
    [
        ("expire", "late"),
        ("twice", "duplicate"),
        ("drop", "abandoned"),
        ("never", "unknown"),
    ],
)
def test_stray_acks_are_discarded_with_their_story_ws_requestor_540(setup: str, why: str) -> None:
    p = opened()
    p.request("verb:hook", {}, "/h")  # m1
    if setup == "expire":
        expired = p.expire("m1")
        assert expired is not None and not expired.reconnect_failed
    elif setup == "twice":
        p.receive(ack("m1"))
    elif setup == "drop":
        p.connection_lost(1006)
    msgid = "m9" if setup == "never" else "m1"
    (event,) = p.receive(ack(msgid, [{"verb": "hangup"}]))
    assert isinstance(event, StrayAck) and event.why == why and event.data == [{"verb": "hangup"}]
    assert (event.request is None) is (why == "unknown")


def test_expire_unknown_msgid_is_none_ws_requestor_267() -> None:
    assert opened().expire("zzz") is None


def test_non_string_msgid_is_an_unknown_ack_ws_requestor_539() -> None:
    (event,) = opened().receive(ack(5))
    assert event == StrayAck("5", None, "unknown")


# -- commands in ---------------------------------------------------------------------------


def test_command_fields_ws_requestor_495_496() -> None:
    p = opened()
    frame = {"type": "command", "command": "redirect", "data": [{"verb": "hangup"}], "msgid": "x"}
    (event,) = p.receive(json.dumps(frame))
    assert isinstance(event, Command)
    assert (event.name, event.data, event.call_sid, event.leg, event.queue) == (
        "redirect",
        [{"verb": "hangup"}],
        "c1",
        None,
        False,
    )
    assert event.msgid == "x" and event.message == frame


def test_command_leg_and_queue_and_tool_call_id_ws_requestor_495_496() -> None:
    p = opened()
    frame = {
        "type": "command",
        "command": "llm:tool-output",
        "callSid": "b1",
        "queueCommand": True,
        "tool_call_id": "t1",
    }
    (event,) = p.receive(json.dumps(frame))
    assert isinstance(event, Command)
    assert (event.call_sid, event.leg, event.queue, event.tool_call_id) == ("b1", "b1", True, "t1")


@pytest.mark.parametrize("name", ["llm:tool-output", "tts:flush", "tts:clear"])
def test_commands_without_data_ws_requestor_25_509(name: str) -> None:
    (event,) = opened().receive(json.dumps({"type": "command", "command": name}))
    assert isinstance(event, Command) and event.data is None


@pytest.mark.parametrize(
    ("frame", "details"),
    [
        ("[1, 2]", "type property not supplied"),
        ('"text"', "type property not supplied"),
        ("null", "Cannot destructure the frame: it is null"),
        ('{"type": ""}', "type property not supplied"),
        ('{"type": "hello"}', "invalid type property: hello"),
        ('{"type": 7}', "invalid type property: 7"),
        ('{"type": "ack"}', "msgid not supplied"),
        ('{"type": "ack", "msgid": ""}', "msgid not supplied"),
        ('{"type": "command", "data": []}', "command property not supplied"),
        ('{"type": "command", "command": "redirect"}', "data property not supplied"),
        ('{"type": "command", "command": "redirect", "data": null}', "data property not supplied"),
        ('{"type": "command", "command": "redirect", "data": 0}', "data property not supplied"),
        ('{"type": "command", "command": "redirect", "data": ""}', "data property not supplied"),
    ],
)
def test_invalid_frames_ws_requestor_499_514(frame: str, details: str) -> None:
    p = opened()
    (event,) = p.receive(frame)
    assert event == Invalid(details, frame)
    assert invalid_message_data(event) == {"msg": "InvalidMessage", "details": details, "content": frame}
    assert p.state is LinkState.OPEN  # the socket stays up


def test_not_json_is_invalid_ws_requestor_492() -> None:
    (event,) = opened().receive("{not json")
    assert isinstance(event, Invalid) and event.details.startswith("frame is not JSON")


def test_deep_nesting_is_invalid_not_a_crash_ws_requestor_492() -> None:
    frame = "[" * 100_000 + "]" * 100_000
    (event,) = FeatureProtocol(limit=10**6).receive(frame)
    assert isinstance(event, Invalid) and "cannot be decoded" in event.details


def test_empty_data_array_is_data_ws_requestor_509() -> None:
    """JavaScript truthiness: ``[]`` and ``{}`` are data."""
    empty: tuple[list[Any], dict[str, Any]] = ([], {})
    for data in empty:
        frame = json.dumps({"type": "command", "command": "redirect", "data": data})
        assert isinstance(opened().receive(frame)[0], Command)


def test_invalid_message_content_can_be_cut() -> None:
    data = invalid_message_data(Invalid("d", "x" * 5000), content_limit=2000)
    assert len(data["content"]) == 2000


def test_binary_frames_are_parsed_as_text_ws_requestor_483() -> None:
    """The binary guard tests ``this.isBinary`` (never set), so binary frames are parsed."""
    (event,) = opened().receive(ack("m9").encode())
    assert isinstance(event, StrayAck)


# -- the payload limit ------------------------------------------------------------------------


def test_frame_over_24_kib_ends_the_socket_ws_requestor_352() -> None:
    p = opened()
    big = json.dumps(
        {"type": "command", "command": "redirect", "data": [{"verb": "say", "text": "x" * 30000}]}
    )
    (event,) = p.receive(big)
    assert event == TooLarge(len(big), MAX_APP_FRAME)


def test_frame_at_the_limit_passes_and_size_counts_utf8_bytes_ws_requestor_352() -> None:
    p = opened()
    pad = MAX_APP_FRAME - len(ack("m9", ""))
    exact = ack("m9", "x" * pad)
    assert len(exact) == MAX_APP_FRAME and isinstance(p.receive(exact)[0], StrayAck)
    wide = json.dumps({"type": "ack", "msgid": "m9", "data": "é" * (MAX_APP_FRAME // 2)}, ensure_ascii=False)
    (event,) = p.receive(wide)
    assert isinstance(event, TooLarge) and event.size == len(wide.encode())


# -- drops and closes -----------------------------------------------------------------------


def test_1000_close_discards_later_requests_ws_requestor_81_429() -> None:
    p = opened()
    p.request("verb:hook", {}, "/h")
    dropped = p.connection_lost(1000)
    assert dropped.graceful and not dropped.reconnect and dropped.abandoned == ()
    assert [r.msgid for r in dropped.in_flight] == ["m1"]  # they fail when their timer fires
    assert p.request("call:status", {}) is None and p.state is LinkState.CLOSED
    assert p.connected() is None


def test_no_reconnect_once_max_reconnects_connections_were_made_ws_requestor_455() -> None:
    p = opened(max_reconnects=2)
    p.request("verb:hook", {}, "/h")
    assert p.connection_lost(1006).reconnect  # 1 < 2
    p.connected()
    p.receive(ack("m2"))
    p.request("verb:hook", {}, "/h2")  # m3
    dropped = p.connection_lost(1006)  # 2 connections made
    assert not dropped.reconnect and dropped.abandoned == ()
    assert [r.msgid for r in dropped.in_flight] == ["m3"]


def test_jambonz_close_abandons_in_flight_and_stops_everything_ws_requestor_325_393() -> None:
    p = opened()
    p.request("verb:hook", {}, "/h")
    assert [r.msgid for r in p.close()] == ["m1"]
    assert p.request("call:status", {}) is None and p.close() == ()
    assert p.connection_lost(1006).graceful


def test_jambonz_close_with_session_new_unacked_fails_nothing_ws_requestor_393() -> None:
    p = core()
    p.request("session:new", INFO)
    assert p.close() == () and p.pending() == []


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("", (5, frozenset({"ct"}))),
        ("rc=2", (2, frozenset({"ct"}))),
        ("rc=9&rp=4xx, 5xx", (5, frozenset({"4xx", "5xx"}))),
        ("rc=0", (5, frozenset({"ct"}))),
        ("rc=-3&rp=all", (3, frozenset({"all"}))),
        ("rc=x", (5, frozenset({"ct"}))),
    ],
)
def test_hook_params_ws_requestor_52_56(fragment: str, expected: tuple[int, frozenset[str]]) -> None:
    assert hook_params(fragment) == expected


def test_backoff_doubles_to_2_s_then_grows_by_2_s_and_is_never_reset_ws_requestor_38_160_479() -> None:
    p = opened()
    assert [p.next_backoff() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    p.connection_lost(1006)
    p.connected()
    p.receive(ack("m1"))
    assert p.next_backoff() == 12.0  # a successful reconnect does not reset it
