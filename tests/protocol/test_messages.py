"""Tests for jambonz_lab.protocol.messages: parse(), encode(), MessageType, Message."""

from __future__ import annotations

import json

import pytest

from jambonz_lab.exceptions import FrameTooLarge, InvalidFrame, ProtocolError
from jambonz_lab.protocol.messages import MAX_APP_FRAME, SUBPROTOCOL, MessageType, encode, parse

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
