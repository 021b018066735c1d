"""Tests for jambonz_lab.protocol.etf: our Erlang external term format (BERT) codec (platforms.md §2.2, §2.4).

Wire bytes are built by hand here (from the doc's notation or from the ETF layout), never by the encoder
under test. The last part cross-checks against the independent ``erlang`` module (erlang-py).
"""

from __future__ import annotations

import functools
import math
import re
import struct
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from jambonz_lab.exceptions import TermDecodeError
from jambonz_lab.protocol import etf
from jambonz_lab.protocol.etf import MAX_DEPTH, Atom, Charlist, decode, encode


def doc(notation: str) -> bytes:
    """Bytes from the doc's notation: hex pairs and "quoted ASCII"."""
    out = bytearray()
    for quoted, hexpair in re.findall(r'"([^"]*)"|([0-9a-f]{2})', notation):
        out += quoted.encode("ascii") if quoted else bytes.fromhex(hexpair)
    return bytes(out)


def same(a: Any, b: Any) -> bool:
    """Equality that also checks types (Atom('a') == Charlist('a') == 'a' in plain Python)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


def fails(data: bytes) -> TermDecodeError:
    with pytest.raises(TermDecodeError) as info:
        decode(data)
    assert "\n" not in str(info.value)
    assert info.value.source == "basix"
    return info.value


# --- the doc's examples (§2.4), byte-exact -----------------------------------------------------------

EX1 = doc(
    '83 68 03 64 00 0a "field_spec" 6b 00 0c "group_member" 6c 00 00 00 06 64 00 02 "id" 64 00 08 "group_id" '
    '64 00 07 "user_id" 64 00 08 "priority" 64 00 0c "login_status" 64 00 04 "role" 6a'
)
EX2 = bytes.fromhex(
    "83"
    "6804"
    "64000a696e666f5f6576656e74"
    "6b000c67726f75705f6d656d626572"
    "6806"
    "62068e7b69"
    "6200989ad7"
    "6200989a69"
    "610061016100"
    "6b000775706461746564"
)
EX4 = doc('83 68 02 64 00 0a "system_msg" 64 00 13 "connection_replaced"')


def test_example1_field_spec_is_96_bytes() -> None:
    assert len(EX1) == 96
    fields = ["id", "group_id", "user_id", "priority", "login_status", "role"]
    value = (Atom("field_spec"), Charlist("group_member"), [Atom(f) for f in fields])
    assert same(decode(EX1), value)
    assert encode(value) == EX1


def test_example2_info_event_is_64_bytes() -> None:
    assert len(EX2) == 64
    value = (
        Atom("info_event"),
        Charlist("group_member"),
        (110001001, 10001111, 10001001, 0, 1, 0),
        Charlist("updated"),
    )
    assert same(decode(EX2), value)
    assert encode(value) == EX2


def test_example3_small_big_bert_nil_undefined() -> None:
    big = bytes.fromhex("83 6e 07 00 07 5e 81 87 d7 7e 05")
    assert same(decode(big), 1546839040024071)
    assert encode(1546839040024071) == big
    bert_nil = b"\x83" + doc('68 02 64 00 04 "bert" 64 00 03 "nil"')
    assert same(decode(bert_nil), (Atom("bert"), Atom("nil")))
    assert encode((Atom("bert"), Atom("nil"))) == bert_nil
    undefined = b"\x83" + doc('64 00 09 "undefined"')
    assert same(decode(undefined), Atom("undefined"))
    assert encode(Atom("undefined")) == undefined


def test_example4_system_msg_is_38_bytes() -> None:
    assert len(EX4) == 38
    assert same(decode(EX4), (Atom("system_msg"), Atom("connection_replaced")))
    assert encode((Atom("system_msg"), Atom("connection_replaced"))) == EX4


# --- every tag, decoded ------------------------------------------------------------------------------

BIG256 = 2 ** (8 * 255)  # the smallest int needing 256 digit bytes
FLOAT_TEXT = b"-1.50000000000000000000e+00".ljust(31, b"\0")

DECODED: list[tuple[str, bytes, Any]] = [
    ("97 small int", bytes.fromhex("83 61 ff"), 255),
    ("98 int -1", bytes.fromhex("83 62 ff ff ff ff"), -1),
    ("98 int min", bytes.fromhex("83 62 80 00 00 00"), -(2**31)),
    ("110 positive", bytes.fromhex("83 6e 04 00 00 00 00 80"), 2**31),
    ("110 negative", bytes.fromhex("83 6e 04 01 01 00 00 80"), -(2**31) - 1),
    ("110 zero digits", bytes.fromhex("83 6e 00 00"), 0),
    ("111 positive", b"\x83\x6f\x00\x00\x01\x00\x00" + bytes(255) + b"\x01", BIG256),
    ("111 negative", b"\x83\x6f\x00\x00\x01\x00\x01" + bytes(255) + b"\x01", -BIG256),
    ("99 float", b"\x83\x63" + FLOAT_TEXT, -1.5),
    ("70 float", b"\x83\x46" + struct.pack(">d", 0.1), 0.1),
    ("100 atom latin-1", b"\x83\x64\x00\x02\xe9t", Atom("ét")),
    ("115 small atom", b"\x83\x73\x02ok", Atom("ok")),
    ("118 utf8 atom", b"\x83\x76\x00\x05" + "ü€".encode(), Atom("ü€")),
    ("119 small utf8 atom", b"\x83\x77\x02" + "ü".encode(), Atom("ü")),
    ("109 binary", b"\x83\x6d\x00\x00\x00\x03a\x00\xff", b"a\x00\xff"),
    ("109 empty binary", b"\x83\x6d\x00\x00\x00\x00", b""),
    ("107 string", b"\x83\x6b\x00\x03a\x00\xff", Charlist("a\x00\xff")),
    ("108 list", bytes.fromhex("83 6c 00 00 00 02 61 01 6a 6a"), [1, []]),
    ("106 nil", b"\x83\x6a", []),
    ("104 tuple", bytes.fromhex("83 68 02 61 01 68 00"), (1, ())),
    ("105 large tuple", b"\x83\x69\x00\x00\x01\x2c" + b"\x61\x07" * 300, (7,) * 300),
    ("116 map", b"\x83\x74\x00\x00\x00\x02\x73\x01k\x61\x01\x68\x01\x61\x02\x6a", {Atom("k"): 1, (2,): []}),
    ("116 empty map", b"\x83\x74\x00\x00\x00\x00", {}),
    ("77 bit binary", b"\x83\x4d\x00\x00\x00\x02\x08ab", b"ab"),
    ("77 empty bit binary", b"\x83\x4d\x00\x00\x00\x00\x00", b""),
    ("80 compressed", b"\x83\x50\x00\x00\x00\x04" + zlib.compress(b"\x68\x01\x61\x05"), (5,)),
]


@pytest.mark.parametrize(("name", "data", "value"), DECODED, ids=[d[0] for d in DECODED])
def test_decode_every_tag(name: str, data: bytes, value: Any) -> None:
    assert same(decode(data), value)


def test_decode_accepts_bytearray_and_memoryview() -> None:
    assert same(decode(bytearray(EX4)), decode(EX4))  # type: ignore[arg-type]
    assert same(decode(memoryview(EX4)), decode(EX4))  # type: ignore[arg-type]


def test_reprs() -> None:
    assert repr(Atom("ok")) == "Atom('ok')"
    assert repr(Charlist("updated")) == "Charlist('updated')"
    assert repr(decode(EX4)) == "(Atom('system_msg'), Atom('connection_replaced'))"


# --- decode errors: exact messages, tags, offsets ----------------------------------------------------

ERRORS: list[tuple[str, bytes, int | None, int, str]] = [
    ("empty", b"", None, 0, "empty input: expected Erlang external term format (first byte 131)"),
    ("json", b'{"a":1}', None, 0, "not Erlang external term format: first byte is 0x7b, expected 131 (0x83)"),
    ("version only", b"\x83", None, 1, "input ends at offset 1 where a term tag was expected"),
    (
        "pid",
        bytes.fromhex("83 68 02 64 00 01 61 67 00"),
        103,
        7,
        "unsupported term tag 103 (PID_EXT) at offset 7",
    ),
    ("unknown tag", b"\x83\xc8", 200, 1, "unsupported term tag 200 at offset 1"),
    ("new ref", b"\x83\x5a", 90, 1, "unsupported term tag 90 (NEWER_REFERENCE_EXT) at offset 1"),
    (
        "truncated binary",
        bytes.fromhex("83 6d 00 00 00 0c"),
        109,
        1,
        "input ends at offset 6 inside a BINARY_EXT at offset 1 (needs 12 more bytes)",
    ),
    (
        "truncated int",
        bytes.fromhex("83 68 01 62 00 01"),
        98,
        3,
        "input ends at offset 6 inside a INTEGER_EXT at offset 3 (needs 2 more bytes)",
    ),
    (
        "trailing",
        bytes.fromhex("83 6a 6a"),
        None,
        2,
        "trailing bytes: the term ends at offset 2 but the input is 3 bytes",
    ),
    (
        "improper list",
        bytes.fromhex("83 6c 00 00 00 01 61 01 61 02"),
        108,
        1,
        "improper list at offset 1: tail at offset 8 is tag 97 (SMALL_INTEGER_EXT), not NIL (106)",
    ),
    (
        "list without tail",
        bytes.fromhex("83 6c 00 00 00 01 61 01"),
        108,
        1,
        "improper list at offset 1: tail at offset 8 is missing, not NIL (106)",
    ),
    (
        "huge list count",
        bytes.fromhex("83 6c ff ff ff ff 6a"),
        108,
        1,
        "LIST_EXT at offset 1 claims 4294967295 items but only 1 bytes remain",
    ),
    (
        "huge tuple arity",
        bytes.fromhex("83 69 00 01 00 00 61 01"),
        105,
        1,
        "LARGE_TUPLE_EXT at offset 1 claims 65536 items but only 2 bytes remain",
    ),
    (
        "huge map",
        bytes.fromhex("83 74 00 00 00 03 61 01 61 02"),
        116,
        1,
        "MAP_EXT at offset 1 claims 3 items but only 4 bytes remain",
    ),
    (
        "huge big",
        bytes.fromhex("83 6f 7f ff ff ff 00"),
        111,
        1,
        "LARGE_BIG_EXT at offset 1 has 2147483647 digit bytes, over the cap of 1000",
    ),
    (
        "unhashable key",
        bytes.fromhex("83 74 00 00 00 01 6c 00 00 00 01 61 01 6a 61 02"),
        116,
        1,
        "MAP_EXT key at offset 6 is unhashable (list)",
    ),
    (
        "partial bit binary",
        bytes.fromhex("83 4d 00 00 00 01 03 e0"),
        77,
        1,
        "BIT_BINARY_EXT at offset 1 ends in a partial byte (3 bits)",
    ),
    (
        "bad sign",
        bytes.fromhex("83 6e 01 02 05"),
        110,
        1,
        "SMALL_BIG_EXT at offset 1 has sign byte 2, expected 0 or 1",
    ),
    (
        "float text",
        b"\x83\x63" + b"one".ljust(31, b"\0"),
        99,
        1,
        "FLOAT_EXT at offset 1 is not a number: " + repr(b"one".ljust(31, b"\0")),
    ),
    (
        "float text non-ascii",
        b"\x83\x63" + b"\xff".ljust(31, b"\0"),
        99,
        1,
        "FLOAT_EXT at offset 1 is not a number: " + repr(b"\xff".ljust(31, b"\0")),
    ),
    (
        "float nan",
        b"\x83\x46" + struct.pack(">d", math.nan),
        70,
        1,
        "NEW_FLOAT_EXT at offset 1 is nan, which Erlang cannot hold",
    ),
    (
        "float text inf",
        b"\x83\x63" + b"inf".ljust(31, b"\0"),
        99,
        1,
        "FLOAT_EXT at offset 1 is inf, which Erlang cannot hold",
    ),
    ("bad utf8 atom", b"\x83\x77\x01\xff", 119, 1, "SMALL_ATOM_UTF8_EXT at offset 1 is not valid UTF-8"),
    (
        "nested compressed",
        b"\x83\x68\x01\x50\x00\x00\x00\x01" + zlib.compress(b"\x6a"),
        80,
        3,
        "COMPRESSED (80) at offset 3 is only allowed right after the version byte",
    ),
    (
        "compressed size",
        b"\x83\x50\x00\x00\x00\x05" + zlib.compress(b"\x6a"),
        80,
        1,
        "COMPRESSED at offset 1 declares 5 bytes but inflates to 1",
    ),
    (
        "compressed short",
        b"\x83\x50\x00\x00\x00\x01" + zlib.compress(b"\x6a\x6a"),
        80,
        1,
        "COMPRESSED at offset 1 declares 1 bytes but inflates to 2",
    ),
    (
        "compressed cut",
        b"\x83\x50\x00\x00\x00\x01" + zlib.compress(b"\x6a")[:-2],
        80,
        1,
        "COMPRESSED at offset 1 declares 1 bytes but inflates to 1 (zlib stream incomplete)",
    ),
    (
        "compressed trailing",
        b"\x83\x50\x00\x00\x00\x01" + zlib.compress(b"\x6a") + b"\x00",
        80,
        1,
        "COMPRESSED at offset 1 declares 1 bytes but inflates to 1 with trailing bytes",
    ),
    (
        "compressed not zlib",
        b"\x83\x50\x00\x00\x00\x01\x00\x00",
        80,
        1,
        "COMPRESSED at offset 1 is not valid zlib data: "
        "Error -3 while decompressing data: unknown compression method",
    ),
    (
        "compressed huge",
        b"\x83\x50\xff\xff\xff\xff",
        80,
        1,
        f"COMPRESSED at offset 1 declares 4294967295 bytes, over {etf.MAX_INFLATED}",
    ),
    (
        "compressed no size",
        b"\x83\x50\x00",
        80,
        1,
        "input ends at offset 3 inside a COMPRESSED at offset 1 (needs 3 more bytes)",
    ),
    (
        "inside compressed",
        b"\x83\x50\x00\x00\x00\x02" + zlib.compress(b"\x68\x01"),
        104,
        0,
        "SMALL_TUPLE_EXT at offset 0 claims 1 items but only 0 bytes remain "
        "(offsets count from the start of the inflated COMPRESSED term)",
    ),
]


@pytest.mark.parametrize(("name", "data", "tag", "offset", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_decode_errors(name: str, data: bytes, tag: int | None, offset: int, message: str) -> None:
    error = fails(data)
    assert str(error) == message
    assert (error.tag, error.offset) == (tag, offset)
    assert isinstance(error, ValueError)


def nested(levels: int, open_: bytes, inner: bytes = b"\x6a", close: bytes = b"") -> bytes:
    return b"\x83" + open_ * levels + inner + close * levels


def test_nesting_limit_boundary() -> None:
    value = decode(nested(MAX_DEPTH, b"\x68\x01"))
    for _ in range(MAX_DEPTH):
        assert type(value) is tuple and len(value) == 1
        value = value[0]
    assert value == []
    error = fails(nested(MAX_DEPTH + 1, b"\x68\x01"))
    assert str(error) == f"terms nested deeper than {MAX_DEPTH} levels at offset {1 + 2 * MAX_DEPTH}"
    assert (error.tag, error.offset) == (104, 1 + 2 * MAX_DEPTH)


@pytest.mark.parametrize(
    ("open_", "close"),
    [(b"\x68\x01", b""), (b"\x6c\x00\x00\x00\x01", b"\x6a"), (b"\x74\x00\x00\x00\x01\x61\x01", b"")],
    ids=["tuple", "list", "map"],
)
def test_deep_nesting_is_a_decode_error(open_: bytes, close: bytes) -> None:
    assert "nested deeper" in str(fails(nested(100_000, open_, close=close)))


# --- caps: no frame is a bomb (issue 11 item 6) ------------------------------------------------------


def nils(n: int) -> bytes:
    """A LIST_EXT of ``n`` NILs (n + 1 terms), without the version byte."""
    return b"\x6c" + n.to_bytes(4, "big") + b"\x6a" * n + b"\x6a"


def compressed(inner: bytes) -> bytes:
    return b"\x83\x50" + len(inner).to_bytes(4, "big") + zlib.compress(inner, 9)


def test_items_cap_boundary() -> None:
    assert len(decode(b"\x83" + nils(etf.MAX_ITEMS - 1))) == etf.MAX_ITEMS - 1
    error = fails(b"\x83" + nils(etf.MAX_ITEMS))
    assert str(error) == (
        f"more than {etf.MAX_ITEMS} terms in one frame (at the LIST_EXT at offset 1); "
        "refused as a decoding bomb"
    )
    assert (error.tag, error.offset) == (108, 1)


def test_items_cap_counts_nested_terms() -> None:
    """Many small containers, none over the cap alone, are counted together: refused mid-way."""
    pair = b"\x68\x02\x61\x01\x61\x02"  # {1, 2}: 3 terms
    n = etf.MAX_ITEMS // 3 + 1
    error = fails(compressed(b"\x6c" + n.to_bytes(4, "big") + pair * n + b"\x6a"))
    assert "more than 100000 terms in one frame" in str(error)
    assert "offsets count from the start of the inflated" in str(error)


def test_map_entries_count_twice() -> None:
    entry = b"\x61\x01\x6a"
    n = etf.MAX_ITEMS // 2
    error = fails(compressed(b"\x74" + n.to_bytes(4, "big") + entry * n))
    assert "more than 100000 terms" in str(error)
    assert decode(compressed(b"\x74" + (n - 1).to_bytes(4, "big") + entry * (n - 1))) == {1: []}


def test_pause_is_called_every_pause_every_terms() -> None:
    calls: list[int] = []
    n = 3 * etf.PAUSE_EVERY  # n + 1 terms: three pauses
    assert len(decode(b"\x83" + nils(n), pause=lambda: calls.append(1))) == n
    assert len(calls) == 3
    assert len(decode(compressed(nils(n)), pause=lambda: calls.append(1))) == n
    assert len(calls) == 6
    assert decode(b"\x83\x6a", pause=lambda: calls.append(1)) == [] and len(calls) == 6


def test_big_integer_cap() -> None:
    at_cap = b"\x83\x6f" + etf.MAX_BIG_BYTES.to_bytes(4, "big") + b"\x00" + b"\xff" * etf.MAX_BIG_BYTES
    value = decode(at_cap)
    assert value == 256**etf.MAX_BIG_BYTES - 1
    assert len(str(value)) == 2409  # prints: under Python's int/str digit limit
    over = b"\x83\x6f" + (etf.MAX_BIG_BYTES + 1).to_bytes(4, "big") + b"\x00" + b"\xff" * 1001
    assert str(fails(over)) == "LARGE_BIG_EXT at offset 1 has 1001 digit bytes, over the cap of 1000"


@pytest.mark.parametrize(
    "inner",
    [
        nils(4 * 1024 * 1024 - 6),  # declares exactly MAX_INFLATED: the items cap refuses it
        b"\x6c\x00\x00\xff\xff" + b"\x6c\x00\x00\x00\x01\x6a\x6a" * 0xFFFF + b"\x6a",  # nested lists
        b"\x6d" + (4 * 1024 * 1024 - 5).to_bytes(4, "big") + b"\x00" * (4 * 1024 * 1024 - 5),  # one binary
    ],
    ids=["nils", "nested", "binary"],
)
def test_bombs_stay_small(inner: bytes) -> None:
    """A frame of a few KiB inflating to MAX_INFLATED decodes or is refused within 64 MiB of memory
    (time: ``benchmarks/bench_bert.py``)."""
    import tracemalloc

    frame = compressed(inner)
    assert len(frame) < 64 * 1024
    tracemalloc.start()
    try:
        try:
            decode(frame)
        except TermDecodeError as exc:
            assert "more than" in str(exc)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024


# --- every encoder branch ----------------------------------------------------------------------------

ENCODED: list[tuple[str, Any, bytes]] = [
    ("true", True, b"\x83\x64\x00\x04true"),
    ("false", False, b"\x83\x64\x00\x05false"),
    ("atom latin-1", Atom("é"), b"\x83\x64\x00\x01\xe9"),
    ("atom empty", Atom(""), b"\x83\x64\x00\x00"),
    ("atom 255", Atom("a" * 255), b"\x83\x64\x00\xff" + b"a" * 255),
    ("charlist", Charlist("a\xff"), b"\x83\x6b\x00\x02a\xff"),
    ("charlist 65535", Charlist("x" * 65535), b"\x83\x6b\xff\xff" + b"x" * 65535),
    ("str utf-8", "é€", b"\x83\x6d\x00\x00\x00\x05\xc3\xa9\xe2\x82\xac"),
    ("str empty", "", b"\x83\x6d\x00\x00\x00\x00"),
    ("bytes", b"\x00\xff", b"\x83\x6d\x00\x00\x00\x02\x00\xff"),
    ("bytearray", bytearray(b"ab"), b"\x83\x6d\x00\x00\x00\x02ab"),
    ("int 0", 0, b"\x83\x61\x00"),
    ("int 255", 255, b"\x83\x61\xff"),
    ("int 256", 256, b"\x83\x62\x00\x00\x01\x00"),
    ("int -1", -1, b"\x83\x62\xff\xff\xff\xff"),
    ("int32 max", 2**31 - 1, b"\x83\x62\x7f\xff\xff\xff"),
    ("int32 min", -(2**31), b"\x83\x62\x80\x00\x00\x00"),
    ("int32 max + 1", 2**31, b"\x83\x6e\x04\x00\x00\x00\x00\x80"),
    ("int32 min - 1", -(2**31) - 1, b"\x83\x6e\x04\x01\x01\x00\x00\x80"),
    ("big negative", -(2**64), b"\x83\x6e\x09\x01" + bytes(8) + b"\x01"),
    ("small big max", BIG256 - 1, b"\x83\x6e\xff\x00" + b"\xff" * 255),
    ("large big", BIG256, b"\x83\x6f\x00\x00\x01\x00\x00" + bytes(255) + b"\x01"),
    ("large big negative", -BIG256, b"\x83\x6f\x00\x00\x01\x00\x01" + bytes(255) + b"\x01"),
    ("float", 1.5, b"\x83\x46\x3f\xf8" + bytes(6)),
    ("float negative zero", -0.0, b"\x83\x46\x80" + bytes(7)),
    ("tuple empty", (), b"\x83\x68\x00"),
    ("tuple 255", (0,) * 255, b"\x83\x68\xff" + b"\x61\x00" * 255),
    ("tuple 256", (0,) * 256, b"\x83\x69\x00\x00\x01\x00" + b"\x61\x00" * 256),
    ("list empty", [], b"\x83\x6a"),
    ("list", [1, [True]], b"\x83\x6c\x00\x00\x00\x02\x61\x01\x6c\x00\x00\x00\x01\x64\x00\x04true\x6a\x6a"),
    ("map", {Atom("a"): "b"}, b"\x83\x74\x00\x00\x00\x01\x64\x00\x01a\x6d\x00\x00\x00\x01b"),
    ("map empty", {}, b"\x83\x74\x00\x00\x00\x00"),
]


@pytest.mark.parametrize(("name", "value", "data"), ENCODED, ids=[e[0] for e in ENCODED])
def test_encode_every_branch(name: str, value: Any, data: bytes) -> None:
    assert encode(value) == data


ENCODE_ERRORS: list[tuple[str, Any, type[Exception], str]] = [
    ("None", None, ValueError, "None has no Erlang term: encode Atom('undefined') or Atom('nil') explicitly"),
    ("atom not latin-1", Atom("€"), ValueError, "atom '€' is not latin-1; ATOM_EXT (100) cannot carry it"),
    ("atom 256", Atom("a" * 256), ValueError, "atom of 256 characters is over Erlang's limit of 255: "),
    ("charlist 65536", Charlist("x" * 65536), ValueError, "Charlist of 65536 characters is over STRING_EXT"),
    (
        "charlist wide",
        Charlist("Ā"),
        ValueError,
        "Charlist 'Ā' has characters over 255; STRING_EXT holds bytes",
    ),
    ("nan", math.nan, ValueError, "float nan has no Erlang representation"),
    ("inf", -math.inf, ValueError, "float -inf has no Erlang representation"),
    ("object", object(), TypeError, "cannot encode object as an Erlang term"),
    ("set", {1}, TypeError, "cannot encode set as an Erlang term"),
    ("nested set", (1, [frozenset()]), TypeError, "cannot encode frozenset as an Erlang term"),
]


@pytest.mark.parametrize(
    ("name", "value", "kind", "message"), ENCODE_ERRORS, ids=[e[0] for e in ENCODE_ERRORS]
)
def test_encode_errors(name: str, value: Any, kind: type[Exception], message: str) -> None:
    with pytest.raises(kind) as info:
        encode(value)
    assert type(info.value) is kind
    assert str(info.value).startswith(message)


def test_encode_nesting_limit() -> None:
    value: Any = 1
    for _ in range(MAX_DEPTH):
        value = [value]
    assert decode(encode(value)) == value
    with pytest.raises(ValueError, match=f"^term nested deeper than {MAX_DEPTH} levels$"):
        encode([value])


def test_length_field_limit() -> None:
    assert etf._u32(2**32 - 1, "x") == b"\xff\xff\xff\xff"
    with pytest.raises(
        ValueError, match="^binary length of 4294967296 does not fit Erlang's 4-byte length field$"
    ):
        etf._u32(2**32, "binary length")


# --- round trips (hypothesis) ------------------------------------------------------------------------

latin1 = st.characters(max_codepoint=255)
# ints up to 270 bytes (both big tags); built from bytes so the strategy's repr stays short
huge_ints = st.tuples(st.binary(min_size=1, max_size=270), st.booleans()).map(
    lambda t: -int.from_bytes(t[0], "little") if t[1] else int.from_bytes(t[0], "little")
)
hashable_leaves: st.SearchStrategy[Any] = st.one_of(
    st.integers(),
    huge_ints,
    st.sampled_from([0, 255, 256, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1]),
    st.booleans(),
    st.text(latin1, max_size=255).map(Atom),
    st.text(latin1, max_size=40).map(Charlist),
    st.binary(max_size=40),
    st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False),
)
leaves = hashable_leaves | st.binary(max_size=10).map(bytearray)
terms: st.SearchStrategy[Any] = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=6).map(tuple),
        st.lists(children, max_size=6),
        st.dictionaries(hashable_leaves, children, max_size=4),
    ),
    max_leaves=25,
)


def expect(value: Any) -> Any:
    """What decode(encode(value)) must return: str and bytearray come back as bytes, bools as atoms."""
    if isinstance(value, bool):
        return Atom(str(value).lower())
    if isinstance(value, Atom | Charlist | bytes | int | float):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, tuple):
        return tuple(map(expect, value))
    if isinstance(value, list):
        return list(map(expect, value))
    # keys that collide once mapped ('a' and b'a') merge here exactly as decode merges them
    return {expect(k): expect(v) for k, v in value.items()}


def test_expect_merges_like_decode() -> None:
    value = {"a": 1, b"a": 2, True: 3, Atom("true"): 4}
    assert same(decode(encode(value)), expect(value))
    assert same(expect(value), {b"a": 2, Atom("true"): 4})


@given(terms)
def test_round_trip(value: Any) -> None:
    data = encode(value)
    assert data[0] == 131
    assert same(decode(data), expect(value))


@given(terms)
def test_round_trip_compressed(value: Any) -> None:
    inner = encode(value)[1:]
    data = b"\x83\x50" + len(inner).to_bytes(4, "big") + zlib.compress(inner)
    assert same(decode(data), expect(value))


# --- malformed input (hypothesis): TermDecodeError or success, nothing else --------------------------


def decodes_or_fails(data: bytes) -> None:
    try:
        decode(data)
    except TermDecodeError as error:
        assert "\n" not in str(error)
        assert 0 <= error.offset <= max(len(data), 1) or "inflated" in str(error)


@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    decodes_or_fails(data)
    decodes_or_fails(b"\x83" + data)


@given(terms)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_every_truncation_fails(value: Any) -> None:
    data = encode(value)
    for end in range(len(data)):
        fails(data[:end])
    fails(data + b"\x6a")


@given(terms, st.data())
def test_single_byte_mutations(value: Any, draw: st.DataObject) -> None:
    data = bytearray(encode(value))
    for _ in range(10):
        mutated = bytearray(data)
        mutated[draw.draw(st.integers(0, len(data) - 1))] = draw.draw(st.integers(0, 255))
        decodes_or_fails(bytes(mutated))


# --- cross-check against the independent erlang-py -----------------------------------------------------


def to_erlang_py(expected: Any, erlang: Any) -> Any:
    """Our decoded value → what erlang.binary_to_term gives for the same bytes."""
    if isinstance(expected, Atom):
        special = {"undefined": None, "true": True, "false": False}
        return special[expected] if expected in special else erlang.OtpErlangAtom(expected.encode("latin-1"))
    if isinstance(expected, Charlist):
        return expected.encode("latin-1")
    if isinstance(expected, bytes):
        return erlang.OtpErlangBinary(expected)
    if isinstance(expected, tuple):
        return tuple(to_erlang_py(x, erlang) for x in expected)
    if isinstance(expected, list):
        return [to_erlang_py(x, erlang) for x in expected]
    if isinstance(expected, dict):
        return {to_erlang_py(k, erlang): to_erlang_py(v, erlang) for k, v in expected.items()}
    return expected


@given(terms)
def test_erlang_py_reads_our_encoding(value: Any) -> None:
    erlang = pytest.importorskip("erlang")
    expected = expect(value)
    assume(_erlang_py_keys_distinct(expected))
    assert erlang.binary_to_term(encode(value)) == to_erlang_py(expected, erlang)


def _erlang_py_keys_distinct(expected: Any) -> bool:
    """erlang-py maps atoms true/false/undefined to Python values, which may collide with other dict keys."""
    if isinstance(expected, dict):
        keys = [to_erlang_py(k, pytest.importorskip("erlang")) for k in expected]
        return len(set(map(repr, keys))) == len(keys) and all(
            map(_erlang_py_keys_distinct, expected.values())
        )
    if isinstance(expected, list | tuple):
        return all(map(_erlang_py_keys_distinct, expected))
    return True


@functools.cache
def erlang_py_terms(erlang: Any) -> st.SearchStrategy[tuple[Any, Any]]:
    """(erlang-py value, what our decode must return for erlang.term_to_binary(value))."""
    base: st.SearchStrategy[tuple[Any, Any]] = st.one_of(
        huge_ints.map(lambda i: (i, i)),
        st.floats(allow_nan=False, allow_infinity=False).map(lambda f: (f, f)),
        st.text(latin1, min_size=1, max_size=30).map(lambda s: (erlang.OtpErlangAtom(s), Atom(s))),
        st.text(latin1, max_size=30).map(lambda s: (erlang.OtpErlangAtom(s.encode("latin-1")), Atom(s))),
        st.binary(max_size=30).map(lambda b: (erlang.OtpErlangBinary(b), b)),
        st.binary(min_size=1, max_size=30).map(lambda b: (b, Charlist(b.decode("latin-1")))),
        st.just((b"", [])),  # erlang-py writes an empty byte string as NIL
        st.just((None, Atom("undefined"))),
        st.booleans().map(lambda b: (b, Atom(str(b).lower()))),
    )

    def containers(children: st.SearchStrategy[tuple[Any, Any]]) -> st.SearchStrategy[tuple[Any, Any]]:
        items = st.lists(children, max_size=5)
        return st.one_of(
            items.map(lambda ps: (tuple(v for v, _ in ps), tuple(e for _, e in ps))),
            items.map(lambda ps: ([v for v, _ in ps], [e for _, e in ps])),
            st.lists(st.tuples(st.integers(), children), max_size=4).map(
                lambda kvs: ({k: v[0] for k, v in kvs}, {k: v[1] for k, v in kvs})
            ),
        )

    return st.recursive(base, containers, max_leaves=20)


@given(st.data())
def test_we_read_erlang_py_encoding(draw: st.DataObject) -> None:
    erlang = pytest.importorskip("erlang")
    value, expected = draw.draw(erlang_py_terms(erlang))
    assert same(decode(erlang.term_to_binary(value)), expected)
    assert same(decode(erlang.term_to_binary(value, compressed=6)), expected)


def test_erlang_py_reads_the_doc_examples() -> None:
    erlang = pytest.importorskip("erlang")
    for data in (EX1, EX2, EX4):
        assert erlang.binary_to_term(data) == to_erlang_py(decode(data), erlang)
