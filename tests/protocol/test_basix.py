"""Basix ws_cti, pure (platforms.md §2.2–2.4, §4): normalization, message shapes, nested channel
fields, element tables, the simulator's encoders and the flat columns. No sockets."""

from __future__ import annotations

import random
import struct
from typing import Any

import erlang
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jambonz_lab.exceptions import PlatformError
from jambonz_lab.protocol import basix as b
from jambonz_lab.protocol.etf import Atom, Charlist, decode, encode

UNDEF = Atom("undefined")
NIL = (Atom("bert"), Atom("nil"))


def h(text: str) -> bytes:
    """Hex with quoted ASCII runs, as the doc writes examples: ``83 68 03 "abc" 6a``."""
    out = bytearray()
    for i, part in enumerate(text.split('"')):
        out += part.encode() if i % 2 else bytes.fromhex(part)
    return bytes(out)


def tags(frame: bytes) -> list[int]:
    """Every tag byte of an ETF frame, walked independently of etf.decode (only the §2.2 set)."""
    assert frame[0] == 131
    seen = [131]

    def walk(pos: int) -> int:
        tag = frame[pos]
        seen.append(tag)
        pos += 1
        if tag == 97:
            return pos + 1
        if tag == 98:
            return pos + 4
        if tag == 110:
            return pos + 2 + frame[pos]
        if tag == 111:
            return pos + 5 + int.from_bytes(frame[pos : pos + 4], "big")
        if tag in (100, 107):
            return pos + 2 + int.from_bytes(frame[pos : pos + 2], "big")
        if tag == 109:
            return pos + 4 + int.from_bytes(frame[pos : pos + 4], "big")
        if tag == 106:
            return pos
        if tag == 104:
            n, pos = frame[pos], pos + 1
        elif tag == 108:
            n, pos = int.from_bytes(frame[pos : pos + 4], "big"), pos + 4
        else:
            raise AssertionError(f"tag {tag} at offset {pos - 1} is outside the Basix set")
        for _ in range(n):
            pos = walk(pos)
        if tag == 108:
            assert frame[pos] == 106, "list tail must be NIL"
            pos = walk(pos)
        return pos

    assert walk(1) == len(frame)
    return seen


# -- §2.4 examples, byte-exact ----------------------------------------------------------------------

EXAMPLE_1 = h(
    '83 68 03 64 00 0a "field_spec" 6b 00 0c "group_member" 6c 00 00 00 06 64 00 02 "id" 64 00 08 "group_id" '
    '64 00 07 "user_id" 64 00 08 "priority" 64 00 0c "login_status" 64 00 04 "role" 6a'
)
EXAMPLE_2 = bytes.fromhex(
    "83 68 04 64 00 0a 69 6e 66 6f 5f 65 76 65 6e 74 6b 00 0c 67 72 6f 75 70 5f 6d 65 6d 62 65 72"
    " 68 06 62 06 8e 7b 69 62 00 98 9a d7 62 00 98 9a 69 61 00 61 01 61 00 6b 00 07 75 70 64 61 74 65 64"
)
EXAMPLE_4 = h('83 68 02 64 00 0a "system_msg" 64 00 13 "connection_replaced"')
GM_FIELDS = ["id", "group_id", "user_id", "priority", "login_status", "role"]

#: example 3's channel, as the server sends it (atoms for enums, binaries for text)
EXAMPLE_3_TERM = (
    Atom("info_event"),
    Charlist("channel"),
    (
        b"5714495a-b8a1-4fff-8420-78648863ecd1",
        Atom("inbound"),
        Atom("external"),
        b"0312341234",
        b"0312341234",
        b"10001111",
        1546839040024071,
        UNDEF,
        UNDEF,
        UNDEF,
        UNDEF,
        (
            1546839040035125,
            Atom("calling"),
            Atom("int"),
            Atom("group"),
            (Atom("ring"), 10001111, UNDEF, UNDEF, b"group1"),
        ),
        UNDEF,
        UNDEF,
        UNDEF,
        UNDEF,
        UNDEF,
        UNDEF,
        Atom("STATE_CHANGE"),
        UNDEF,
        UNDEF,
        b"abc123@10.0.0.1",
    ),
    Charlist("added"),
)


class TestExamples:
    def test_example_1_field_spec_is_96_bytes_and_parses(self) -> None:
        assert len(EXAMPLE_1) == 96
        assert b.encode_field_spec("group_member", GM_FIELDS) == EXAMPLE_1
        msg = b.parse_message(decode(EXAMPLE_1))
        assert msg == b.BasixMessage("field_spec", "group_member", fields=tuple(GM_FIELDS))

    def test_example_2_info_event_exact_64_bytes(self) -> None:
        assert len(EXAMPLE_2) == 64
        frame = b.encode_info_event("group_member", (110001001, 10001111, 10001001, 0, 1, 0), "updated")
        assert frame == EXAMPLE_2
        msg = b.parse_message(decode(EXAMPLE_2))
        assert (msg.kind, msg.entity, msg.event) == ("info_event", "group_member", "updated")
        decoder = b.Decoder()
        decoder.learn("group_member", GM_FIELDS)
        assert msg.element is not None
        assert decoder.element("group_member", msg.element) == {
            "id": 110001001,
            "group_id": 10001111,
            "user_id": 10001001,
            "priority": 0,
            "login_status": 1,
            "role": 0,
        }
        assert decoder.mismatch("group_member", msg.element) is None

    def test_example_3_channel_decodes_through_the_readme_order(self) -> None:
        frame = encode(EXAMPLE_3_TERM)
        assert bytes.fromhex("6e 07 00 07 5e 81 87 d7 7e 05") in frame  # 1546839040024071, SMALL_BIG
        assert h('68 02 64 00 04 "bert" 64 00 03 "nil"') == encode(NIL)[1:]
        assert h('64 00 09 "undefined"') in frame
        msg = b.parse_message(decode(frame))
        assert (msg.kind, msg.entity, msg.event) == ("info_event", "channel", "added")
        assert msg.element is not None
        tables = b.ElementTables()
        tables.apply(b.BasixMessage("field_spec", "channel", fields=b.DEFAULT_FIELDS["channel"]))
        change = tables.apply(msg)
        assert change.note is None
        ch = change.element
        assert ch is not None
        assert change.key == ch["uuid"] == "5714495a-b8a1-4fff-8420-78648863ecd1"
        assert ch["direction"] == "inbound" and ch["peer_location"] == "external"
        assert ch["calling_number"] == "0312341234" and ch["called_number"] == "10001111"
        assert ch["offer_timestamp"] == 1546839040024071
        assert ch["answer_timestamp"] is None and ch["user_id"] is None
        assert ch["state"] == {
            "ts": 1546839040035125,
            "name": "calling",
            "direction": "int",
            "target_type": "group",
            "target": {"mode": "ring", "group_id": 10001111, "queue": "group1"},
            "raw": [1546839040035125, "calling", "int", "group", ("ring", 10001111, None, None, "group1")],
        }
        assert ch["last_event"] == "STATE_CHANGE" and ch["call_id"] == "abc123@10.0.0.1"
        assert ch["end_user"] is None and ch["origination"] == [] and ch["tags"] == []
        assert tables.rows("channel") == [ch]
        flat = b.flat("channel.added", {"entity": "channel", "event": "added", "element": ch})
        assert flat == {
            "entity": "channel",
            "event": "added",
            "uuid": "5714495a-b8a1-4fff-8420-78648863ecd1",
            "other_uuid": None,
            "direction": "inbound",
            "calling_number": "0312341234",
            "called_number": "10001111",
            "state": "calling",
            "last_event": "STATE_CHANGE",
            "last_event_data": None,
            "call_id": "abc123@10.0.0.1",
            "event_ts": 1546839040.035125,
        }

    def test_example_3_as_the_simulator_writes_it(self) -> None:
        row = {
            "uuid": "5714495a-b8a1-4fff-8420-78648863ecd1",
            "direction": "inbound",
            "peer_location": "external",
            "calling_name": "0312341234",
            "calling_number": "0312341234",
            "called_number": "10001111",
            "offer_timestamp": 1546839040024071,
            "state": b.calling_group_state(1546839040035125, 10001111, queue="group1"),
            "last_event": "STATE_CHANGE",
            "call_id": "abc123@10.0.0.1",
        }
        element = b.element_term("channel", row, b.DEFAULT_FIELDS["channel"])
        assert b.encode_info_event("channel", element, "added") == encode(EXAMPLE_3_TERM)

    def test_example_4_system_msg_atom_or_binary(self) -> None:
        assert len(EXAMPLE_4) == 38
        assert b.encode_system_msg("connection_replaced") == EXAMPLE_4
        assert b.parse_message(decode(EXAMPLE_4)) == b.BasixMessage("system_msg", msg="connection_replaced")
        binary = encode((Atom("system_msg"), b"connection_limit_reached"))
        assert b.parse_message(decode(binary)).msg == "connection_limit_reached"

    def test_erlang_py_reads_our_frames_the_same_way(self) -> None:
        term = erlang.binary_to_term(EXAMPLE_2)
        assert term[1] == b"group_member" and term[3] == b"updated"  # STRING_EXT → bytes in erlang-py
        assert term[2] == (110001001, 10001111, 10001001, 0, 1, 0)


# -- normalization -----------------------------------------------------------------------------------


class TestNormalize:
    @pytest.mark.parametrize(
        ("term", "value"),
        [
            (Atom("undefined"), None),
            (Atom("true"), True),
            (Atom("false"), False),
            (Atom("calling"), "calling"),
            (Charlist("channel"), "channel"),
            (b"\xe5\xb1\xb1\xe7\x94\xb0", "山田"),
            (b"bad\xff", "bad\ufffd"),
            (NIL, []),
            ([], []),
            (42, 42),
            (2**60, 2**60),
            ((Atom("a"), (b"x", UNDEF)), ("a", ("x", None))),
            ([Atom("a"), NIL], ["a", []]),
            ({Atom("k"): b"v", (1, 2): 3}, {"k": "v", "(1, 2)": 3}),
        ],
    )
    def test_values(self, term: Any, value: Any) -> None:
        out = b.normalize(term)
        assert out == value
        assert type(out) is type(value)

    def test_atoms_and_charlists_become_plain_str(self) -> None:
        assert type(b.normalize(Atom("x"))) is str
        assert type(b.normalize(Charlist("x"))) is str

    def test_us_to_unix(self) -> None:
        assert b.us_to_unix(1546839040024071) == 1546839040.024071
        assert b.us_to_unix(None) is None
        assert b.us_to_unix(True) is None
        assert b.us_to_unix("1") is None
        assert b.us_to_unix(0) is None


# -- messages ------------------------------------------------------------------------------------------


class TestParseMessage:
    def test_initial_info_empty_forms(self) -> None:
        empty: tuple[Any, ...] = (NIL, [])
        for body in empty:
            msg = b.parse_message((Atom("initial_info"), Charlist("channel"), body))
            assert msg == b.BasixMessage("initial_info", "channel")

    def test_initial_info_elements_are_normalized_tuples(self) -> None:
        msg = b.parse_message((Atom("initial_info"), Charlist("terminal"), [(1, b"desk", UNDEF)]))
        assert msg.elements == ((1, "desk", None),)

    @pytest.mark.parametrize("wrap", [lambda t: [t], lambda t: (t,), lambda t: [(t,)]])
    def test_pre_2018_wrapper_is_removed(self, wrap: Any) -> None:
        term = (Atom("system_msg"), Atom("logout"))
        assert b.parse_message(wrap(term)) == b.BasixMessage("system_msg", msg="logout")

    def test_msg_kind(self) -> None:
        assert b.parse_message((Atom("msg"), b"hello")) == b.BasixMessage("msg", msg="hello")

    @pytest.mark.parametrize(
        ("term", "message"),
        [
            ((Atom("bogus"), 1), "unknown basix message kind Atom('bogus')"),
            ((1, 2), "unknown basix message kind 1"),
            ([1, 2], "basix message is not a tuple: [1, 2]"),
            ((), "basix message is not a tuple: ()"),
            ((Atom("field_spec"), Charlist("x")), "basix field_spec has 2 elements, expected 3"),
            ((Atom("info_event"), Charlist("x"), 5, Charlist("added")), "basix info_event element of x"),
            ((Atom("info_event"), Charlist("x"), (1,), 7), "basix info_event event name is not text"),
            ((Atom("initial_info"), Charlist("x"), [1]), "basix initial_info of x is not a list of tuples"),
            ((Atom("field_spec"), Charlist("x"), [1]), "basix field_spec of x is not a list of field names"),
            ((Atom("field_spec"), UNDEF, []), "basix field_spec entity name is not text"),
        ],
    )
    def test_errors_are_one_line_platform_errors(self, term: Any, message: str) -> None:
        with pytest.raises(PlatformError) as info:
            b.parse_message(term)
        assert str(info.value).startswith(message)
        assert info.value.source == "basix"
        assert "\n" not in str(info.value)


# -- nested fields ------------------------------------------------------------------------------------


class TestNested:
    @pytest.mark.parametrize(
        ("state", "expected"),
        [
            (
                (1, "calling", "int", "user", (10001001,)),
                {"direction": "int", "target_type": "user", "target": {"user_id": 10001001}},
            ),
            (
                (1, "calling", "ext", "pstn", ("0312341234",)),
                {"direction": "ext", "target_type": "pstn", "target": {"address": "0312341234"}},
            ),
            (
                (1, "calling", "int", "bridged_endpoint", ("u", "h.example")),
                {
                    "direction": "int",
                    "target_type": "bridged_endpoint",
                    "target": {"user": "u", "host": "h.example"},
                },
            ),
            (
                (1, "calling", "int", "group", ("hunt", 7, None, None, "q1")),
                {
                    "direction": "int",
                    "target_type": "group",
                    "target": {"mode": "hunt", "group_id": 7, "queue": "q1"},
                },
            ),
            (
                (1, "voicemail", "user", 5, "Jess"),
                {"target_type": "user", "target_id": 5, "target_name": "Jess"},
            ),
            ((1, "checking_voicemail", "box"), {"voicemail_name": "box"}),
            ((1, "calling_siptermination", "sip:x@y"), {"url": "sip:x@y"}),
            ((1, "ivr", 12), {"ivr_id": 12}),
            ((1, "system_operation", "op"), {"op": "op"}),
            ((1, "conference", 3), {"room_id": 3}),
            ((1, "park", 701, None, 5, "Jess"), {"slot": 701, "parker_id": 5, "parker_name": "Jess"}),
            ((1, "eavesdrop", "u-1", "listen"), {"eavesdrop_uuid": "u-1", "eavesdrop_state": "listen"}),
            ((1, "bridged"), {}),
            ((1, "xml_ivr"), {}),
            ((1, "brand_new", "x"), {}),
            ((1, "calling", "int"), {"direction": "int", "target_type": None, "target": {"data": [None]}}),
        ],
    )
    def test_state(self, state: tuple[Any, ...], expected: dict[str, Any]) -> None:
        assert b.decode_state(state) == {"ts": 1, "name": state[1], **expected, "raw": list(state)}

    def test_state_odd_values(self) -> None:
        assert b.decode_state(None) is None
        assert b.decode_state("x") == {"ts": None, "name": None, "raw": "x"}
        assert b.decode_state(()) == {"ts": None, "name": None, "raw": []}

    def test_target(self) -> None:
        assert b.decode_target(("user", 5, "Jess", "1001")) == {
            "type": "user",
            "id": 5,
            "name": "Jess",
            "address": "1001",
        }
        assert b.decode_target(None) is None
        assert b.decode_target(("pstn",)) == {"type": "pstn", "id": None, "name": None, "address": None}

    def test_other_info_user_and_end_user(self) -> None:
        user = b.decode_other_info(("user", 5, "outbound", "internal", "1001", 17, 9, None))
        assert user == {
            "type": "user",
            "user_id": 5,
            "end_user": None,
            "end_user_raw": None,
            "direction": "outbound",
            "peer_location": "internal",
            "address": "1001",
            "offer_timestamp": 17,
            "group_id": 9,
            "whoscall": None,
        }
        end = b.decode_other_info(("end_user", "7*Taro+Y**", "inbound", "external", "03", 1, None, "spam"))
        assert end is not None
        assert end["end_user"] == {
            "id": "7",
            "name": "Taro Y",
            "organization": None,
            "avatar": None,
            "prefecture": None,
        }
        assert end["end_user_raw"] == "7*Taro+Y**" and end["whoscall"] == "spam"
        assert b.decode_other_info(None) is None

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (
                "42*Taro+Yamada*ACME%2A+Inc*https%3A%2F%2Fx%2Fa.png*%E6%9D%B1%E4%BA%AC",
                {
                    "id": "42",
                    "name": "Taro Yamada",
                    "organization": "ACME* Inc",
                    "avatar": "https://x/a.png",
                    "prefecture": "東京",
                },
            ),
            ("****", None),
            ("", None),
            (None, None),
            ("9", {"id": "9", "name": None, "organization": None, "avatar": None, "prefecture": None}),
            (
                "_MANY_:3|1*A***|2*B***",
                {
                    "many": 3,
                    "candidates": [
                        {"id": "1", "name": "A", "organization": None, "avatar": None, "prefecture": None},
                        {"id": "2", "name": "B", "organization": None, "avatar": None, "prefecture": None},
                    ],
                },
            ),
            ("_MANY_:2", {"many": 2, "candidates": []}),
        ],
    )
    def test_end_user(self, text: str | None, expected: Any) -> None:
        assert b.decode_end_user(text) == expected

    def test_origination_and_tags(self) -> None:
        assert b.decode_origination("api*call%20user*%2B8131234") == ["api", "call user", "+8131234"]
        assert b.decode_origination(None) == [] and b.decode_origination("") == []
        assert b.decode_tags("vip;;sales;") == ["vip", "sales"]
        assert b.decode_tags(None) == []

    def test_channel_keeps_the_raw_strings(self) -> None:
        decoder = b.Decoder()
        decoder.learn("channel", ["uuid", "end_user", "origination", "tags"])
        ch = decoder.element("channel", ("u", "1*A***", "x*y", "a;b"))
        assert ch == {
            "uuid": "u",
            "end_user": {"id": "1", "name": "A", "organization": None, "avatar": None, "prefecture": None},
            "end_user_raw": "1*A***",
            "origination": ["x", "y"],
            "origination_raw": "x*y",
            "tags": ["a", "b"],
            "tags_raw": "a;b",
        }


# -- decoder and tables ---------------------------------------------------------------------------------


class TestDecoder:
    def test_shuffled_field_spec_maps_by_name(self) -> None:
        fields = list(b.DEFAULT_FIELDS["group_member"])
        random.Random(3).shuffle(fields)
        values = {"id": 1, "group_id": 2, "user_id": 3, "priority": 4, "login_status": 5, "role": 6}
        decoder = b.Decoder()
        decoder.learn("group_member", fields)
        assert decoder.element("group_member", tuple(values[f] for f in fields)) == values

    def test_fewer_values_pad_with_none_and_say_so(self) -> None:
        decoder = b.Decoder()
        decoder.learn("terminal", ["id", "name", "registered"])
        assert decoder.element("terminal", (1, "desk")) == {"id": 1, "name": "desk", "registered": None}
        assert decoder.mismatch("terminal", (1, "desk")) == (
            "terminal element has 2 values but its field_spec lists 3 fields: missing ones set to None"
        )

    def test_more_values_kept_in_extra(self) -> None:
        decoder = b.Decoder()
        decoder.learn("terminal", ["id"])
        assert decoder.element("terminal", (1, "a", "b")) == {"id": 1, "_extra": ["a", "b"]}
        assert decoder.mismatch("terminal", (1, "a", "b")) == (
            "terminal element has 3 values but its field_spec lists 1 fields: extras kept in _extra"
        )

    def test_without_field_spec(self) -> None:
        decoder = b.Decoder()
        assert decoder.element("group_member", (1, 2, 3, 4, 5, 6))["login_status"] == 5
        assert (
            decoder.mismatch("group_member", ())
            == "no field_spec for group_member yet: read in the README order"
        )
        assert decoder.element("widget", (1, "x")) == {"field_0": 1, "field_1": "x"}
        assert (
            decoder.mismatch("widget", (1, "x")) == "no field_spec for widget: fields named field_0..field_1"
        )


def ev(entity: str, element: tuple[Any, ...], event: str) -> b.BasixMessage:
    return b.BasixMessage("info_event", entity, element=element, event=event)


class TestElementTables:
    def make(self) -> b.ElementTables:
        tables = b.ElementTables()
        tables.apply(b.BasixMessage("field_spec", "channel", fields=("uuid", "last_event")))
        tables.apply(b.BasixMessage("field_spec", "user", fields=("id", "presence")))
        return tables

    def test_initial_replaces_and_events_upsert_and_remove(self) -> None:
        t = self.make()
        t.apply(b.BasixMessage("initial_info", "user", elements=((1, "available"), (2, "away"))))
        assert [r["id"] for r in t.rows("user")] == [1, 2]
        change = t.apply(ev("user", (2, "busy"), "updated"))
        assert (change.kind, change.entity, change.event, change.key) == ("info_event", "user", "updated", 2)
        assert t.get("user", 2) == {"id": 2, "presence": "busy"}
        t.apply(ev("user", (3, "available"), "added"))
        t.apply(ev("user", (1, "available"), "removed"))
        assert t.rows("user") == [{"id": 2, "presence": "busy"}, {"id": 3, "presence": "available"}]
        change = t.apply(b.BasixMessage("initial_info", "user", elements=((9, None),)))
        assert change.event == "initial" and change.elements == ({"id": 9, "presence": None},)
        assert t.rows("user") == [{"id": 9, "presence": None}]

    def test_channels_keyed_by_uuid(self) -> None:
        t = self.make()
        t.apply(ev("channel", ("u1", "STATE_CHANGE"), "added"))
        t.apply(ev("channel", ("u1", "CHANNEL_ANSWER"), "updated"))
        assert t.rows("channel") == [{"uuid": "u1", "last_event": "CHANNEL_ANSWER"}]
        change = t.apply(ev("channel", ("u1", "CHANNEL_HANGUP"), "removed"))
        assert change.element == {"uuid": "u1", "last_event": "CHANNEL_HANGUP"}
        assert t.rows("channel") == []
        t.apply(ev("channel", ("u9", None), "removed"))  # unknown: nothing to delete
        assert t.rows("channel") == []

    def test_missing_key_noted_table_unchanged(self) -> None:
        t = self.make()
        change = t.apply(ev("user", (None, "x"), "added"))
        assert change.note == "user element without a key: table unchanged"
        change = t.apply(b.BasixMessage("initial_info", "user", elements=((None, "x"), (4, "y"))))
        assert change.note == "1 user element(s) without a key left out of the table"
        assert t.rows("user") == [{"id": 4, "presence": "y"}]

    def test_rows_are_copies_and_columns_follow_the_spec(self) -> None:
        t = self.make()
        t.apply(ev("user", (1, "x"), "added"))
        t.rows("user")[0]["presence"] = "changed"
        assert t.get("user", 1) == {"id": 1, "presence": "x"}
        t.apply(ev("user", (2, "x", "extra"), "added"))
        assert t.columns("user") == ["id", "presence", "_extra"]
        assert t.columns("group") == list(b.DEFAULT_FIELDS["group"])
        assert t.columns("widget") == []

    def test_system_msgs_change_nothing(self) -> None:
        t = self.make()
        assert t.apply(b.BasixMessage("system_msg", msg="logout")) == b.Change("system_msg")
        t.clear()
        assert t.decoder.specs == {} and t.tables == {}


# -- encoders --------------------------------------------------------------------------------------------

FULL_CHANNEL: dict[str, Any] = {
    "uuid": "u-1",
    "direction": "outbound",
    "peer_location": "internal",
    "calling_name": "山田",
    "calling_number": "1001",
    "called_number": "+81312341234",
    "offer_timestamp": 1546839040024071,
    "answer_timestamp": 1546839041000000,
    "hangup_timestamp": None,
    "other_uuid": "u-2",
    "user_id": 10001001,
    "state": b.simple_state(1546839041000000, "bridged"),
    "group_id": -5,
    "target": (Atom("user"), 10001001, "jessica", "1001"),
    "origination": "api*x",
    "end_user": "1*A***",
    "tags": "a;b",
    "last_bridged_user_id": 2**40,
    "last_event": "CHANNEL_ANSWER",
    "last_event_data": None,
    "other_info": (Atom("user"), 5, Atom("outbound"), Atom("internal"), "1001", 1, None, None),
    "call_id": "c@h",
}


class TestEncoders:
    def test_every_frame_uses_only_the_basix_tags(self) -> None:
        fields = b.DEFAULT_FIELDS["channel"]
        user = {"id": 1, "name": "j", "fwd_always_status": True, "presence": "available", "mwi": ""}
        frames = [
            b.encode_field_spec("channel", fields),
            b.encode_field_spec("x", []),
            b.encode_initial_info("channel", [b.element_term("channel", FULL_CHANNEL, fields)]),
            b.encode_initial_info("user", [b.element_term("user", user, b.DEFAULT_FIELDS["user"])]),
            b.encode_initial_info("terminal", []),
            b.encode_info_event("channel", b.element_term("channel", FULL_CHANNEL, fields), "updated"),
            b.encode_info_event("channel", b.element_term("channel", {"uuid": "u"}, fields), "removed"),
            b.encode_system_msg("connection_limit_reached"),
            b.encode_msg("hello"),
            b.encode_msg(None),
            encode(b.wire_term((2**64, -(2**40), b.calling_pstn_state(1, "03"), b.calling_user_state(1, 2)))),
        ]
        for frame in frames:
            assert set(tags(frame)) <= b.ALLOWED_TAGS, frame.hex(" ")
        assert 110 in tags(frames[2]) and 109 in tags(frames[2]) and 98 in tags(frames[2])

    def test_entity_and_event_names_are_string_ext_kind_and_fields_atoms(self) -> None:
        frame = b.encode_info_event("user", (1,), "removed")
        assert frame.startswith(h('83 68 04 64 00 0a "info_event" 6b 00 04 "user"'))
        assert frame.endswith(h('6b 00 07 "removed"'))
        spec = b.encode_field_spec("user", ["id"])
        assert spec == h('83 68 03 64 00 0a "field_spec" 6b 00 04 "user" 6c 00 00 00 01 64 00 02 "id" 6a')

    def test_empty_initial_info_is_bert_nil(self) -> None:
        frame = b.encode_initial_info("channel", [])
        assert frame == h(
            '83 68 03 64 00 0c "initial_info" 6b 00 07 "channel" 68 02 64 00 04 "bert" 64 00 03 "nil"'
        )

    def test_enum_fields_are_atoms_text_is_binary_missing_is_undefined(self) -> None:
        fields = ("uuid", "direction", "last_event", "calling_name", "hangup_timestamp")
        row = b.element_term("channel", FULL_CHANNEL, fields)
        assert [type(x) for x in row] == [str, Atom, Atom, str, Atom]
        assert row[4] == "undefined"
        frame = b.encode_info_event("channel", row, "added")
        assert h('6d 00 00 00 03 "u-1"') in frame
        assert h('64 00 08 "outbound"') in frame
        assert bytes.fromhex("6d 00 00 00 06") + "山田".encode() in frame
        user = b.element_term(
            "user", {"id": 1, "presence": "away", "name": "away"}, ("id", "presence", "name")
        )
        assert [type(x) for x in user] == [int, Atom, str]

    @pytest.mark.parametrize("value", [1.5, {"a": 1}, object()])
    def test_wire_term_refuses_what_basix_never_sends(self, value: Any) -> None:
        with pytest.raises(ValueError, match="Basix never sends"):
            b.wire_term(value)

    def test_full_channel_round_trip(self) -> None:
        fields = list(b.DEFAULT_FIELDS["channel"])
        random.Random(7).shuffle(fields)
        frame = b.encode_info_event("channel", b.element_term("channel", FULL_CHANNEL, fields), "updated")
        tables = b.ElementTables()
        tables.apply(b.parse_message(decode(b.encode_field_spec("channel", fields))))
        change = tables.apply(b.parse_message(decode(frame)))
        ch = change.element
        assert ch is not None and change.note is None
        for key in ("uuid", "direction", "calling_name", "called_number", "offer_timestamp", "group_id"):
            assert ch[key] == FULL_CHANNEL[key]
        assert ch["last_bridged_user_id"] == 2**40
        assert ch["hangup_timestamp"] is None
        assert ch["state"]["name"] == "bridged" and ch["state"]["ts"] == 1546839041000000
        assert ch["target"] == {"type": "user", "id": 10001001, "name": "jessica", "address": "1001"}
        assert ch["other_info"]["user_id"] == 5 and ch["other_info"]["direction"] == "outbound"
        assert ch["tags"] == ["a", "b"] and ch["origination"] == ["api", "x"]

    def test_command(self) -> None:
        assert b.command("hangup", "u") == {"cmd": "hangup", "uuid": "u"}
        assert b.command("transfer", "u", user_id=5, user_name=None, destination="03") == {
            "cmd": "transfer",
            "uuid": "u",
            "user_id": 5,
            "destination": "03",
        }

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(min_value=-(2**70), max_value=2**70),
                st.text(max_size=20),
            ),
            max_size=30,
        ),
        st.sampled_from(["added", "updated", "removed"]),
    )
    def test_any_row_round_trips(self, values: list[Any], event: str) -> None:
        fields = [f"f{i}" for i in range(len(values))]
        row = dict(zip(fields, values, strict=True))
        frame = b.encode_info_event("terminal", b.element_term("terminal", row, fields), event)
        assert set(tags(frame)) <= b.ALLOWED_TAGS
        decoder = b.Decoder()
        decoder.learn("terminal", fields)
        msg = b.parse_message(decode(frame))
        assert msg.event == event and msg.element is not None
        assert decoder.element("terminal", msg.element) == row


# -- flat columns ------------------------------------------------------------------------------------


class TestFlat:
    def test_hangup_row(self) -> None:
        element = {
            "uuid": "u",
            "other_uuid": "v",
            "direction": "inbound",
            "calling_number": "03",
            "called_number": "1001",
            "offer_timestamp": 1_000_000_000_000_000,
            "answer_timestamp": 1_000_000_002_000_000,
            "hangup_timestamp": 1_000_000_009_500_000,
            "state": {"ts": 1_000_000_002_000_000, "name": "bridged", "raw": []},
            "last_event": "CHANNEL_HANGUP",
            "last_event_data": "recv_bye,NORMAL_CLEARING",
            "call_id": "c@h",
        }
        out = b.flat("channel.updated", {"entity": "channel", "event": "updated", "element": element})
        assert tuple(out) == b.FLAT_COLUMNS
        assert out["state"] == "bridged" and out["event_ts"] == 1_000_000_009.5
        assert out["last_event_data"] == "recv_bye,NORMAL_CLEARING" and out["other_uuid"] == "v"

    def test_raw_state_tuple_and_non_channel(self) -> None:
        out = b.flat(
            "channel.added",
            {"entity": "channel", "event": "added", "element": {"state": [5_000_000, "park"]}},
        )
        assert out["state"] == "park" and out["event_ts"] == 5.0
        user = b.flat(
            "user.updated", {"entity": "user", "event": "updated", "element": {"id": 1, "presence": "x"}}
        )
        assert user == {**dict.fromkeys(b.FLAT_COLUMNS), "entity": "user", "event": "updated"}
        initial = b.flat("channel.initial", {"entity": "channel", "elements": []})
        assert initial["event"] == "initial" and initial["uuid"] is None

    @settings(max_examples=300, deadline=None)
    @given(
        st.text(max_size=10),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
            lambda children: (
                st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=5)
            ),
            max_leaves=20,
        ),
    )
    def test_never_raises(self, type_: str, payload: Any) -> None:
        out = b.flat(type_, payload)
        assert tuple(out) == b.FLAT_COLUMNS

    @settings(max_examples=200, deadline=None)
    @given(
        st.dictionaries(
            st.sampled_from(
                ["uuid", "state", "offer_timestamp", "hangup_timestamp", "last_event", "call_id"]
            ),
            st.none()
            | st.booleans()
            | st.integers()
            | st.text(max_size=4)
            | st.lists(st.integers(), max_size=3),
        )
    )
    def test_odd_elements_never_raise(self, element: dict[str, Any]) -> None:
        out = b.flat("channel.updated", {"entity": "channel", "event": "updated", "element": element})
        assert tuple(out) == b.FLAT_COLUMNS


def test_struct_sanity() -> None:
    # the SMALL_BIG of example 3 is little-endian digits after a sign byte
    assert struct.unpack("<Q", bytes.fromhex("07 5e 81 87 d7 7e 05 00"))[0] == 1546839040024071
