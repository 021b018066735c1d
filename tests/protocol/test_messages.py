"""Tests for jambonz_lab.protocol.messages: parse(), encode(), MessageType, Message."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jambonz_lab.exceptions import FrameTooLarge, InvalidFrame, ProtocolError
from jambonz_lab.protocol.messages import MAX_APP_FRAME, SUBPROTOCOL, Message, MessageType, encode, parse

ACKED = {
    "session:new",
    "session:reconnect",
    "session:redirect",
    "session:adulting",
    "verb:hook",
    "dial:confirm",
}
NOT_ACKED = {
    "call:status",
    "verb:status",
    "jambonz:error",
    "llm:event",
    "llm:tool-call",
    "tts:streaming-event",
    "tts:tokens-result",
}


def frame(**fields: object) -> str:
    """A JSON frame as jambonz would send it."""
    return json.dumps(fields)


# -- MessageType ------------------------------------------------------------------------


def test_message_types_are_exactly_the_documented_ones() -> None:
    """MessageType lists exactly the 13 types of protocol doc §2.0."""
    assert {t.value for t in MessageType} == ACKED | NOT_ACKED


@pytest.mark.parametrize("mtype", sorted(ACKED))
def test_needs_ack_true(mtype: str) -> None:
    """The six types FS waits an ack for report needs_ack."""
    assert MessageType(mtype).needs_ack is True


@pytest.mark.parametrize("mtype", sorted(NOT_ACKED))
def test_needs_ack_false(mtype: str) -> None:
    """Fire-and-forget types never need an ack."""
    assert MessageType(mtype).needs_ack is False


def test_openers() -> None:
    """Only the session:* types may open a socket."""
    assert {t.value for t in MessageType if t.opens_session} == {
        "session:new",
        "session:reconnect",
        "session:redirect",
        "session:adulting",
    }


def test_constants() -> None:
    """Subprotocol and frame limit match protocol doc §8."""
    assert SUBPROTOCOL == "ws.jambonz.org"
    assert MAX_APP_FRAME == 24576


# -- parse: valid frames ----------------------------------------------------------------


def test_parse_session_new() -> None:
    """A session:new frame parses into every Message field."""
    text = frame(type="session:new", msgid="m1", call_sid="c1", b3="t-s-1", data={"call_sid": "c1"})
    msg = parse(text)
    assert msg.type is MessageType.SESSION_NEW
    assert (msg.msgid, msg.call_sid, msg.hook, msg.b3) == ("m1", "c1", None, "t-s-1")
    assert msg.data == {"call_sid": "c1"}
    assert msg.size == len(text.encode())
    assert msg.needs_ack is True


def test_parse_hook_string() -> None:
    """A verb:hook keeps its hook string."""
    msg = parse(frame(type="verb:hook", msgid="m2", call_sid="c1", hook="/echo", data={}))
    assert msg.hook == "/echo"


def test_parse_hook_object() -> None:
    """An object hook is reduced to its url."""
    msg = parse(frame(type="verb:hook", msgid="m2", call_sid="c1", hook={"url": "/x", "method": "GET"}))
    assert msg.hook == "/x"


def test_parse_missing_call_sid() -> None:
    """session:adulting has no top-level call_sid; leg_sid falls back to data.call_sid."""
    msg = parse(frame(type="session:adulting", msgid="m3", data={"call_sid": "b-leg"}))
    assert msg.call_sid is None
    assert msg.leg_sid == "b-leg"


def test_parse_data_null() -> None:
    """data: null becomes an empty dict."""
    assert parse(frame(type="call:status", msgid="m4", call_sid="c1", data=None)).data == {}


def test_parse_data_absent() -> None:
    """A frame without data gets an empty dict."""
    assert parse(frame(type="call:status", msgid="m4", call_sid="c1")).data == {}


def test_parse_size_counts_utf8_bytes() -> None:
    """Message.size is the UTF-8 byte size of the frame."""
    text = json.dumps({"type": "call:status", "msgid": "m", "data": {"x": "é"}}, ensure_ascii=False)
    assert parse(text).size == len(text) + 1


# -- parse: invalid frames --------------------------------------------------------------


def _invalid(raw: str | bytes) -> str:
    with pytest.raises(InvalidFrame) as info:
        parse(raw)
    return str(info.value)


def test_invalid_not_json() -> None:
    """Non-JSON text is refused with the decoder's reason and position."""
    assert (
        _invalid("{nope") == "frame is not JSON (Expecting property name enclosed in double quotes at char 1)"
    )


def test_invalid_empty() -> None:
    """An empty frame is not JSON."""
    assert _invalid("") == "frame is not JSON (Expecting value at char 0)"


def test_invalid_json_array() -> None:
    """A JSON array is not a message."""
    assert _invalid("[1, 2]") == "frame is JSON list, not an object"


def test_invalid_binary() -> None:
    """Binary frames are refused even when they hold valid JSON."""
    raw = frame(type="call:status", msgid="m").encode()
    with pytest.raises(InvalidFrame) as info:
        parse(raw)
    assert str(info.value) == "binary frame refused: jambonz sends JSON text frames"
    assert info.value.raw == raw


def test_invalid_missing_type() -> None:
    """A frame without type is refused."""
    assert _invalid(frame(msgid="m", call_sid="c1")) == "frame has no 'type'"


def test_invalid_unknown_type() -> None:
    """An unknown type is refused and named; the call_sid is kept on the error."""
    with pytest.raises(InvalidFrame) as info:
        parse(frame(type="ack", msgid="m", call_sid="c1"))
    assert str(info.value) == "unknown message type 'ack'"
    assert info.value.call_sid == "c1"


def test_invalid_missing_msgid() -> None:
    """A frame without msgid is refused, naming its type."""
    assert _invalid(frame(type="verb:hook", call_sid="c1")) == "verb:hook frame has no 'msgid'"


def test_invalid_empty_msgid() -> None:
    """An empty msgid counts as missing."""
    assert _invalid(frame(type="verb:hook", msgid="")) == "verb:hook frame has no 'msgid'"


@pytest.mark.parametrize(("data", "name"), [([1], "list"), ("x", "str"), (3, "int")])
def test_invalid_non_object_data(data: object, name: str) -> None:
    """Non-object data is refused, naming the type."""
    assert (
        _invalid(frame(type="verb:hook", msgid="m", data=data))
        == f"verb:hook 'data' is {name}, not an object"
    )


def test_invalid_frame_is_protocol_error_and_keeps_raw() -> None:
    """InvalidFrame is a ProtocolError and carries the raw text."""
    with pytest.raises(ProtocolError) as info:
        parse("[]")
    assert isinstance(info.value, InvalidFrame)
    assert info.value.raw == "[]"


# -- Message properties -----------------------------------------------------------------


def test_speech_properties() -> None:
    """transcript and confidence come from speech.alternatives[0]."""
    speech = {"is_final": True, "alternatives": [{"transcript": "book a car", "confidence": 0.92}, {}]}
    msg = parse(
        frame(type="verb:hook", msgid="m", hook="/g", data={"speech": speech, "reason": "speechDetected"})
    )
    assert msg.transcript == "book a car"
    assert msg.confidence == 0.92
    assert msg.reason == "speechDetected"


def test_confidence_int_is_float() -> None:
    """An integer confidence is returned as a float."""
    speech = {"alternatives": [{"transcript": "x", "confidence": 1}]}
    conf = parse(frame(type="verb:hook", msgid="m", data={"speech": speech})).confidence
    assert conf == 1.0 and isinstance(conf, float)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"speech": "x"},
        {"speech": {}},
        {"speech": {"alternatives": []}},
        {"speech": {"alternatives": ["x"]}},
    ],
)
def test_speech_properties_absent(data: dict[str, object]) -> None:
    """Missing or malformed speech gives None, never an exception."""
    msg = parse(frame(type="verb:hook", msgid="m", data=data))
    assert (msg.transcript, msg.confidence) == (None, None)


def test_digits_and_reason() -> None:
    """digits and reason read a dtmf gather result."""
    msg = parse(frame(type="verb:hook", msgid="m", data={"reason": "dtmfDetected", "digits": "123"}))
    assert (msg.reason, msg.digits) == ("dtmfDetected", "123")


def test_non_string_values_are_none() -> None:
    """Non-string digits/reason/call_status are reported as None."""
    msg = parse(frame(type="verb:hook", msgid="m", data={"digits": 123, "reason": None, "call_status": 1}))
    assert (msg.digits, msg.reason, msg.call_status) == (None, None, None)


def test_call_status_and_leg_sid_of_b_leg() -> None:
    """A B-leg status: call_sid is the parent, leg_sid the B-leg."""
    data = {"call_sid": "child", "call_status": "ringing", "parent_call_sid": "parent"}
    msg = parse(frame(type="call:status", msgid="m", call_sid="parent", data=data))
    assert (msg.call_sid, msg.leg_sid, msg.call_status) == ("parent", "child", "ringing")


def test_leg_sid_defaults_to_top_call_sid() -> None:
    """Without data.call_sid, leg_sid is the top-level call_sid."""
    assert parse(frame(type="verb:status", msgid="m", call_sid="c1", data={})).leg_sid == "c1"


# -- Message reads like a dict ---------------------------------------------------------

HOOK = frame(
    type="verb:hook",
    msgid="m9",
    call_sid="c1",
    hook="/gather",
    data={"reason": "dtmfDetected", "digits": "42", "call_sid": "c1"},
)


def test_message_is_a_read_only_mapping_of_its_data() -> None:
    """msg["digits"], get, in, len, iteration, dict(), ** all read data, in its order."""
    msg = parse(HOOK)
    assert isinstance(msg, Mapping)
    assert msg["digits"] == "42"
    assert msg.get("speech") is None and msg.get("speech", {}) == {}
    not_a_key: object = 42
    assert "digits" in msg and "speech" not in msg and not_a_key not in msg
    assert len(msg) == 3
    assert list(msg) == ["reason", "digits", "call_sid"]
    assert dict(msg) == msg.data and dict(msg) is not msg.data
    assert list(msg.keys()) == list(msg.data) and list(msg.values()) == ["dtmfDetected", "42", "c1"]
    assert dict(msg.items()) == msg.data
    assert {**msg} == msg.data
    with pytest.raises(KeyError):
        msg["speech"]


def test_message_cannot_be_changed() -> None:
    """No item assignment, and the dataclass stays frozen."""
    msg = parse(HOOK)
    with pytest.raises(TypeError):
        msg["digits"] = "1"  # type: ignore[index]
    with pytest.raises(TypeError):
        del msg["digits"]  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.msgid = "other"  # type: ignore[misc]


def test_message_keeps_its_attributes_and_dataclass_shape() -> None:
    """The envelope stays on attributes; still a frozen slots dataclass with the same fields."""
    msg = parse(HOOK)
    assert (msg.type, msg.msgid, msg.call_sid, msg.hook, msg.b3) == (
        MessageType.VERB_HOOK,
        "m9",
        "c1",
        "/gather",
        None,
    )
    assert (msg.reason, msg.digits, msg.leg_sid, msg.needs_ack, msg.size) == (
        "dtmfDetected",
        "42",
        "c1",
        True,
        len(HOOK),
    )
    assert [f.name for f in dataclasses.fields(Message)] == [
        "type",
        "msgid",
        "call_sid",
        "hook",
        "data",
        "b3",
        "size",
    ]
    assert not hasattr(msg, "__dict__")


def test_message_is_true_even_with_an_empty_payload() -> None:
    """bool() is not len(): a message with no data is still a message."""
    msg = parse(frame(type="call:status", msgid="m", data={}))
    assert len(msg) == 0
    assert bool(msg) is True


def test_message_equality_is_field_equality() -> None:
    """Equal frames give equal messages; a message never equals its payload dict."""
    assert parse(HOOK) == parse(HOOK)
    assert parse(HOOK) != parse(HOOK.replace('"m9"', '"m10"'))
    assert parse(HOOK) != parse(HOOK).data
    assert parse(HOOK).data != parse(HOOK)


def test_message_repr_is_one_short_line() -> None:
    """repr names type, ids and hook and abbreviates the payload, in its own key order."""
    assert repr(parse(HOOK)) == (
        "<Message verb:hook msgid='m9' call_sid='c1' hook='/gather' "
        "data={'reason': 'dtmfDetected', 'digits': '42', 'call_sid': 'c1'}>"
    )
    huge = {"sip": {"raw": "v=0\r\n" * 40_000}, **{f"k{i}": [i] * 100 for i in range(50)}}
    text = repr(parse(frame(type="session:new", msgid="m", call_sid="c", data=huge)))
    assert len(text) < 300 and "\n" not in text
    assert text.startswith("<Message session:new msgid='m' call_sid='c' data={'sip': {'raw': 'v=0")
    deep: Any = "x"
    for _ in range(500):
        deep = [deep]
    assert len(repr(parse(frame(type="call:status", msgid="m", data={"deep": deep})))) < 100


# -- parse: input Python's json cannot decode ----------------------------------------------


def _refused(raw: object) -> InvalidFrame:
    """parse(raw) raises InvalidFrame, one line, no exception chain."""
    with pytest.raises(InvalidFrame) as info:
        parse(raw)  # type: ignore[arg-type]
    exc = info.value
    assert "\n" not in str(exc) and len(str(exc)) < 200
    assert _no_chain(exc)
    return exc


def _no_chain(exc: BaseException) -> bool:
    """No "during handling … another exception occurred" chain shows in a traceback."""
    return exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "{" + '"a":{' * 50_000,
        '{"type":"verb:hook","msgid":"x","data":{"a":' + "[" * 100_000 + "]" * 100_000 + "}}",
        "[" * 100_000 + "]" * 100_000,
    ],
    ids=["arrays", "objects", "inside-a-hook", "balanced"],
)
def test_deep_nesting_is_refused_with_the_depth(text: str) -> None:
    """Nesting past the decoder's depth (RecursionError in json) is an InvalidFrame naming the limit."""
    exc = _refused(text)
    assert exc.raw is text
    words = str(exc).split()
    assert words[:4] == ["frame", "nests", "deeper", "than"] and words[5] == "levels"
    assert 100 < int(words[4]) < 100_000


def test_nesting_the_decoder_manages_is_accepted() -> None:
    """A few hundred levels decode (far past any jambonz payload)."""
    value = parse('{"type":"verb:hook","msgid":"x","data":{"a":' + "[" * 300 + "]" * 300 + "}}")["a"]
    depth = 0
    while value:
        value, depth = value[0], depth + 1
    assert depth == 299


@pytest.mark.parametrize("sign", ["", "-"])
def test_integers_over_the_digit_limit_are_refused(sign: str) -> None:
    """An integer literal over sys.get_int_max_str_digits() is refused, naming the limit."""
    limit = sys.get_int_max_str_digits()
    text = '{"type":"verb:hook","msgid":"x","data":{"n":' + sign + "1" * (limit + 700) + "}}"
    exc = _refused(text)
    assert str(exc) == f"frame has an integer of more than {limit} digits"
    assert exc.raw is text


def test_integers_at_the_digit_limit_are_accepted() -> None:
    n = parse('{"type":"verb:hook","msgid":"x","data":{"n":' + "7" * sys.get_int_max_str_digits() + "}}")["n"]
    assert n == int("7" * sys.get_int_max_str_digits())


def test_huge_floats_nan_and_infinity_are_accepted() -> None:
    """Python's json (like Node's) reads 1e999 as inf and takes NaN/Infinity; they are data."""
    msg = parse('{"type":"verb:hook","msgid":"x","data":{"a":1e999,"b":-1e999,"c":NaN,"d":Infinity}}')
    assert msg["a"] == math.inf and msg["b"] == -math.inf and math.isnan(msg["c"]) and msg["d"] == math.inf
    assert parse('{"type":"verb:hook","msgid":"x","data":{"f":' + "9" * 5000 + ".5}}")["f"] == math.inf


def test_escaped_lone_surrogates_are_data() -> None:
    """JSON may escape a lone surrogate (\\ud800); json and JSON.parse accept it, so do we."""
    msg = parse('{"type":"verb:hook","msgid":"x","data":{"s":"\\ud800"}}')
    assert msg["s"] == "\ud800"


def test_a_raw_lone_surrogate_in_a_str_is_refused() -> None:
    """Only a str built in Python can hold one (a text frame is valid UTF-8): refused, not UnicodeError."""
    text = '{"type":"verb:hook","msgid":"x","data":{"s":"\ud800"}}'
    exc = _refused(text)
    assert str(exc) == f"frame is not valid UTF-8 text (lone surrogate at char {text.index(chr(0xD800))})"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (bytearray(b"{}"), "binary frame refused: jambonz sends JSON text frames"),
        (memoryview(b"{}"), "binary frame refused: jambonz sends JSON text frames"),
        (None, "frame is NoneType, not text"),
        (42, "frame is int, not text"),
    ],
)
def test_frames_that_are_not_text_are_refused(raw: object, reason: str) -> None:
    assert str(_refused(raw)) == reason


@pytest.mark.parametrize(
    ("msgid", "reason"),
    [
        (7, "verb:hook 'msgid' is int, not a string"),
        (True, "verb:hook 'msgid' is bool, not a string"),
        (["m"], "verb:hook 'msgid' is list, not a string"),
        ({"id": "m"}, "verb:hook 'msgid' is dict, not a string"),
        (None, "verb:hook frame has no 'msgid'"),
    ],
)
def test_non_string_msgids_are_refused(msgid: object, reason: str) -> None:
    """An ack must echo the msgid exactly, so only jambonz's own (a string) is taken."""
    assert str(_refused(frame(type="verb:hook", msgid=msgid))) == reason


@pytest.mark.parametrize("hook", [{"method": "POST"}, {"url": 5}, {"url": None}, 5, ["/x"], True])
def test_odd_hooks_become_none(hook: object) -> None:
    """A hook that is neither a string nor an object with a url string is no hook."""
    assert parse(frame(type="verb:hook", msgid="m", hook=hook)).hook is None


@pytest.mark.parametrize("call_sid", [5, None, ["c"], {"c": 1}])
def test_odd_call_sids_and_b3_become_none(call_sid: object) -> None:
    msg = parse(frame(type="verb:hook", msgid="m", call_sid=call_sid, b3=call_sid))
    assert (msg.call_sid, msg.b3) == (None, None)


def test_a_long_unknown_type_is_clipped_in_the_reason() -> None:
    exc = _refused(frame(type="x" * 100_000, msgid="m"))
    assert str(exc).startswith("unknown message type 'xxx") and str(exc).endswith("'…")


@pytest.mark.parametrize("mtype", [7, None, ["verb:hook"], {"type": "verb:hook"}])
def test_non_string_types_are_refused(mtype: object) -> None:
    assert str(_refused(frame(type=mtype, msgid="m"))) == "frame has no 'type'"


# -- parse: fuzzing (hypothesis) -------------------------------------------------------------

#: any code point, lone surrogates included
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | any_text
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=15,
)
TYPES = sorted(ACKED | NOT_ACKED)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(TYPES) | json_values,
        "msgid": st.text(max_size=8) | json_values,
        "call_sid": st.text(max_size=8) | json_values,
        "hook": st.text(max_size=8) | st.fixed_dictionaries({}, optional={"url": json_values}) | json_values,
        "data": st.dictionaries(any_text, json_values, max_size=5) | json_values,
        "b3": json_values,
    },
)


def _dumps(value: object, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)


json_frames = st.builds(_dumps, envelopes | json_values, st.booleans())
deep_frames = st.builds(
    lambda n, opener, closed: opener * n + ("]" * n if closed and opener == "[" else ""),
    st.integers(0, 120_000),
    st.sampled_from(["[", '{"a":', '[{"b":', '{"type":"verb:hook","msgid":"x","data":{"a":[']),
    st.booleans(),
)
big_int_frames = st.builds(
    lambda digits, sign, where: where.replace("N", sign + digits),
    st.integers(1, 9000).map(lambda n: "9" * n),
    st.sampled_from(["", "-"]),
    st.sampled_from(["N", "[N]", '{"type":"verb:hook","msgid":"x","data":{"n":N}}', '{"msgid":N}']),
)


@st.composite
def mutated_frames(draw: st.DrawFn) -> str:
    """A valid-looking frame with a few characters inserted, deleted or the tail cut."""
    text = draw(json_frames)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "delete", "cut"]))
        if how == "insert":
            text = (
                text[:at]
                + draw(st.sampled_from(list('[]{}",:\\0-e.') + ["\ud800", "é", "NaN", "1e999"]))
                + text[at:]
            )
        elif how == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at]
    return text


any_frames = st.one_of(
    any_text, st.text(), json_frames, deep_frames, big_int_frames, mutated_frames(), st.binary(max_size=50)
)


def _check(raw: str | bytes) -> None:
    """parse() returns a sane Message or raises a sane InvalidFrame; anything else fails the test."""
    try:
        msg = parse(raw)
    except InvalidFrame as exc:
        assert str(exc) and "\n" not in str(exc) and len(str(exc)) < 200
        assert exc.raw == raw
        assert _no_chain(exc)
        return
    assert isinstance(raw, str)
    assert isinstance(msg, Message) and isinstance(msg.type, MessageType)
    assert isinstance(msg.msgid, str) and msg.msgid
    assert isinstance(msg.data, dict) and dict(msg) == msg.data and len(msg) == len(msg.data)
    assert all(v is None or isinstance(v, str) for v in (msg.call_sid, msg.hook, msg.b3))
    assert msg.size == len(raw.encode()) and bool(msg)
    text = repr(msg)
    assert "\n" not in text and len(text) < 1000


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_frames)
@example("[" * 100_000)
@example('{"type":"verb:hook","msgid":"x","data":{"n":' + "1" * 5000 + "}}")
@example('{"type":"verb:hook","msgid":"x","data":{"s":"\ud800"}}')
def test_fuzz_parse_returns_a_message_or_raises_invalid_frame(raw: str | bytes) -> None:
    """Whatever arrives, parse() gives a Message or an InvalidFrame: nothing else can reach the server."""
    _check(raw)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(TYPES),
    st.text(min_size=1, max_size=12),
    st.none() | st.dictionaries(any_text, json_values, max_size=5),
    st.booleans(),
)
def test_fuzz_well_formed_frames_always_parse(mtype: str, msgid: str, data: Any, ascii_only: bool) -> None:
    """A known type, a string msgid and object data always parse, whatever the payload holds."""
    text = _dumps({"type": mtype, "msgid": msgid, "data": data}, ascii_only)
    try:
        text.encode()
    except UnicodeEncodeError:  # ensure_ascii=False left a lone surrogate raw: not a WebSocket text frame
        _check(text)
        return
    msg = parse(text)
    assert (msg.type.value, msg.msgid) == (mtype, msgid)
    assert dict(msg).keys() == (data or {}).keys()


# -- encode -----------------------------------------------------------------------------


def _ack_of_size(size: int, char: str = "a") -> dict[str, object]:
    """An ack whose compact JSON encoding is exactly ``size`` bytes (``char`` then ASCII padding)."""
    base = {"type": "ack", "msgid": "m1", "data": [{"verb": "say", "text": ""}]}
    room = size - len(encode(base).encode())
    count, pad = divmod(room, len(char.encode()))
    return {"type": "ack", "msgid": "m1", "data": [{"verb": "say", "text": char * count + "a" * pad}]}


def test_encode_compact_and_unicode() -> None:
    """encode() writes compact JSON without escaping non-ASCII."""
    assert encode({"type": "ack", "msgid": "m", "data": [{"text": "é"}]}) == (
        '{"type":"ack","msgid":"m","data":[{"text":"é"}]}'
    )


def test_encode_accepts_exactly_the_limit() -> None:
    """A frame of exactly 24576 bytes is accepted."""
    assert len(encode(_ack_of_size(MAX_APP_FRAME)).encode()) == MAX_APP_FRAME


def test_encode_refuses_one_byte_over() -> None:
    """A frame of 24577 bytes raises FrameTooLarge with size and limit."""
    with pytest.raises(FrameTooLarge) as info:
        encode(_ack_of_size(MAX_APP_FRAME + 1), call_sid="c1")
    exc = info.value
    assert (exc.size, exc.limit, exc.call_sid) == (MAX_APP_FRAME + 1, MAX_APP_FRAME, "c1")
    assert str(exc) == (
        "ack frame is 24577 bytes, over jambonz's 24576-byte limit "
        "(jambonz would close the socket with 1009); send fewer or shorter verbs"
    )


def test_encode_multibyte_exactly_at_limit() -> None:
    """Multi-byte characters count as bytes: exactly 24576 bytes is accepted, one more is not."""
    text = encode(_ack_of_size(MAX_APP_FRAME, "é"))
    assert len(text.encode()) == MAX_APP_FRAME
    assert len(text) < 13000
    with pytest.raises(FrameTooLarge):
        encode(_ack_of_size(MAX_APP_FRAME + 1, "é"))


def test_encode_multibyte_counts_bytes_not_chars() -> None:
    """A frame under the limit in characters but over it in bytes is refused."""
    msg = {"type": "ack", "msgid": "m1", "data": [{"verb": "say", "text": "€" * 9000}]}
    assert len(json.dumps(msg, separators=(",", ":"), ensure_ascii=False)) < MAX_APP_FRAME
    with pytest.raises(FrameTooLarge) as info:
        encode(msg)
    assert info.value.size == len(json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode())


def test_encode_names_the_command() -> None:
    """For a command frame the error names the command, and a custom limit is honoured."""
    with pytest.raises(FrameTooLarge) as info:
        encode({"type": "command", "command": "redirect", "data": []}, limit=10)
    assert str(info.value).startswith("redirect frame is 49 bytes, over jambonz's 10-byte limit")
    assert info.value.limit == 10


def test_encode_escapes_a_lone_surrogate() -> None:
    """A handler echoing an escaped lone surrogate from a payload still gets a valid frame."""
    text = encode({"type": "ack", "msgid": "m1", "data": [{"verb": "say", "text": "a\ud800"}]})
    assert "\\ud800" in text and json.loads(text)["data"][0]["text"] == "a\ud800"


def test_dial_outcome_properties() -> None:
    """A dial's actionHook (lib/tasks/dial.js ~700–710): status, SIP status and leg as properties."""
    data = {"dial_call_status": "busy", "dial_sip_status": 486, "dial_call_sid": "b-1"}
    msg = parse(frame(type="verb:hook", msgid="m", hook="/dialed", data=data))
    assert (msg.dial_call_status, msg.dial_sip_status, msg.dial_call_sid) == ("busy", 486, "b-1")
    empty = parse(frame(type="verb:hook", msgid="m", hook="/dialed", data={"dial_sip_status": True}))
    assert (empty.dial_call_status, empty.dial_sip_status, empty.dial_call_sid) == (None, None, None)


def test_the_message_docstring_lists_the_hook_reasons_and_dial_fields() -> None:
    """help(Message) says what a hook can carry (before: only the notebooks did)."""
    doc = Message.__doc__ or ""
    for word in ("dtmfDetected", "speechDetected", "timeout", "stt-low-confidence", "dial_call_status"):
        assert word in doc, word
    for name in ("reason", "digits", "transcript", "dial_call_status", "dial_sip_status", "dial_call_sid"):
        assert name in dir(Message) and getattr(Message, name).__doc__, name
