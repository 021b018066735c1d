"""Bad frames from jambonz never kill a socket: each is recorded as a ``bad-frame`` row, the socket
stays open and every valid hook around them is acked (a real app server, a real ``websockets``
client on loopback)."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.protocol import State

import jambonz_lab as jl
from jambonz_lab.exceptions import InvalidFrame
from jambonz_lab.protocol.messages import parse
from tests.fakejambonz import FakeJambonz, lab_rows

HOOK_5000_DIGITS = '{"type":"verb:hook","msgid":"x","data":{"n":' + "1" * 5000 + "}}"

#: (frame, what its bad-frame row says)
BAD_FRAMES: list[tuple[str | bytes, str]] = [
    ("[" * 100_000, "frame nests deeper than"),
    (HOOK_5000_DIGITS, f"frame has an integer of more than {sys.get_int_max_str_digits()} digits"),
    ("{" + '"a":{' * 50_000, "frame nests deeper than"),
    ('{"type":"verb:hook","msgid":"x","hook":"/h","data":{"a":' + "[" * 100_000, "frame nests deeper than"),
    (b"\x00\x01binary", "binary frame refused"),
    (json.dumps({"type": "verb:hook", "msgid": "b", "hook": "/h"}).encode(), "binary frame refused"),
    ("not json", "frame is not JSON"),
    ("", "frame is not JSON"),
    (json.dumps({"type": "agent:unknown", "msgid": "y"}), "unknown message type 'agent:unknown'"),
    (json.dumps({"type": "verb:hook", "msgid": 7, "hook": "/h"}), "verb:hook 'msgid' is int, not a string"),
    (json.dumps({"type": "verb:hook", "msgid": "z", "data": [1]}), "verb:hook 'data' is list, not an object"),
    ("[1, 2]", "frame is JSON list, not an object"),
]


def _open(lab: jl.Lab, call_sid: str) -> FakeJambonz:
    """A socket with its session:new acked."""
    lab.service("/").on("session:new", lambda s: s.answer().send())
    fj = FakeJambonz(lab.url, call_sid)
    assert fj.ws.subprotocol == "ws.jambonz.org"
    msgid = fj.session_new()
    assert fj.recv() == {"type": "ack", "msgid": msgid, "data": [{"verb": "answer"}]}
    return fj


def _probe(fj: FakeJambonz, **data: Any) -> None:
    """Send a valid verb:hook and wait for its ack (other frames the server writes are skipped)."""
    msgid = fj.send("verb:hook", {"call_sid": fj.call_sid, **data}, hook="/probe", msgid=f"p-{uuid.uuid4()}")
    for _ in range(50):
        got = fj.recv()
        if got.get("msgid") == msgid:
            assert got == {"type": "ack", "msgid": msgid}
            return
    raise AssertionError(f"no ack for {msgid}")


def test_bad_frames_between_valid_hooks_leave_the_socket_working(lab: jl.Lab) -> None:
    """Every valid hook is acked, the socket stays open, each bad frame is one bad-frame row."""
    with _open(lab, "fuzz-1") as fj:
        for raw, _ in BAD_FRAMES:
            fj.ws.send(raw)
            _probe(fj)
        # odd but valid frames are messages, not bad frames
        fj.ws.send('{"type":"verb:hook","msgid":"s1","hook":"/h","data":{"s":"\\ud800","f":1e999,"n":NaN}}')
        assert fj.recv() == {"type": "ack", "msgid": "s1"}
        fj.ws.send('{"type":"verb:hook","msgid":"d1","hook":"/h","data":{"a":' + "[" * 300 + "]" * 300 + "}}")
        assert fj.recv() == {"type": "ack", "msgid": "d1"}
        _probe(fj, big=10**4000)
        assert fj.ws.state is State.OPEN
    rows = lab_rows(lab, "bad-frame")
    assert len(rows) == len(BAD_FRAMES)
    for row, (raw, reason) in zip(rows, BAD_FRAMES, strict=True):
        assert str(row["note"]).startswith(reason), (row["note"], reason)
        assert row["call_sid"] == "fuzz-1"
        assert row["payload"] == {"raw": raw[:500] if isinstance(raw, str) else repr(raw[:100])}
    assert not lab_rows(lab, "protocol-error")


# -- random frames on one live socket (hypothesis) -------------------------------------------------

TYPES = sorted(t.value for t in jl.MessageType)
# JSON text a WebSocket client can send (UTF-8 encodable: lone surrogates only as \ud800 escapes)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(TYPES) | st.text(max_size=10) | values,
        "msgid": st.text(min_size=1, max_size=8) | values,
        "call_sid": st.just("fuzz-2") | values,
        "hook": st.text(max_size=8) | values,
        "data": st.dictionaries(st.text(max_size=6), values, max_size=4) | values,
    },
)
#: messages parse() takes, with random payloads: they go on to dispatch (sessions, acks, handlers)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES), "msgid": st.text(min_size=1, max_size=8)},
    optional={
        "call_sid": st.sampled_from(["fuzz-2", "other"]) | values,
        "hook": st.sampled_from(["/probe", "/x"]) | values,
        "data": st.dictionaries(st.sampled_from(["call_sid", "call_status", "reason", "id", "x"]), values),
    },
)
frames = st.one_of(
    st.builds(json.dumps, messages),
    st.builds(json.dumps, envelopes | values),
    st.text(max_size=40),
    st.binary(max_size=40),
    # nesting far from the decoder's limit either way, so the server's verdict matches a local parse()
    st.builds(lambda n, o: o * n, st.integers(100_000, 150_000), st.sampled_from(["[", '{"a":', "[{"])),
    st.builds(
        lambda n: '{"type":"verb:hook","msgid":"x","data":{"n":' + "7" * n + "}}", st.integers(4_301, 9_000)
    ),
    st.builds(
        lambda text: text.replace('"', "", 1),  # one quote less: usually not JSON any more
        st.builds(json.dumps, envelopes),
    ),
)


def _is_bad(raw: str | bytes) -> bool:
    try:
        parse(raw)
    except InvalidFrame:
        return True
    return False


def test_random_frames_on_one_live_socket(lab: jl.Lab) -> None:
    """Random frames (good, bad, binary, deep, huge) on one socket: a probe hook is acked after each
    batch, the socket stays open, and the bad-frame rows are exactly the frames parse() refuses."""
    sent: list[str | bytes] = []
    with _open(lab, "fuzz-2") as fj:

        @settings(
            max_examples=30,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(st.lists(frames, min_size=1, max_size=6))
        def batch(raws: list[str | bytes]) -> None:
            for raw in raws:
                fj.ws.send(raw)
                sent.append(raw)
            _probe(fj)

        batch()
        assert len(sent) >= 30  # hypothesis ran its examples, each with a batch of at least one frame
        assert fj.ws.state is State.OPEN
        _probe(fj)
    assert len(lab_rows(lab, "bad-frame")) == sum(map(_is_bad, sent))
