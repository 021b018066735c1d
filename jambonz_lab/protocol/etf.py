"""Erlang external term format (BERT), pure: bytes in, Python values out, and back. No I/O.

Basix ws_cti sends each event as one term in a binary WebSocket frame (platforms.md §2.2).

Read: 97/98 (int), 110/111 (big int, exact), 99 FLOAT_EXT and 70 NEW_FLOAT_EXT (float), 100/115 atoms
(latin-1) and 118/119 atoms (UTF-8) → :class:`Atom`, 109 BINARY_EXT → bytes, 107 STRING_EXT →
:class:`Charlist`, 108 LIST_EXT (proper lists only) and 106 NIL → list, 104/105 → tuple, 116 MAP_EXT →
dict (a key that is unhashable, such as a list, is an error), 77 BIT_BINARY_EXT → bytes when it holds
whole bytes (a partial last byte is an error, never dropped silently), and 80 COMPRESSED right after the
version byte (offsets inside it count from the start of the inflated term). Anything else, truncated
input, trailing bytes or nesting deeper than :data:`MAX_DEPTH` raise :exc:`TermDecodeError`, and only it.

Caps, so that no frame can be a bomb: a frame holds at most :data:`MAX_ITEMS` terms, a COMPRESSED
term inflates to at most :data:`MAX_INFLATED` bytes, and a big integer has at most :data:`MAX_BIG_BYTES`
digit bytes (it still prints in decimal). Within them any frame of 64 KiB decodes, or is refused, in
well under 50 ms and 64 MiB (``tests/protocol/test_etf.py``, ``test_bombs_are_cheap``).

Written: exactly the tags the Basix JS parser reads, plus 116 and 70: bool and :class:`Atom` → ATOM_EXT
(100), :class:`Charlist` → STRING_EXT (107), str (UTF-8) / bytes / bytearray → BINARY_EXT (109), int →
97, 98, 110 or 111, float → NEW_FLOAT_EXT (70; Basix itself never sends floats), tuple → 104 or 105,
list → 108 (empty → 106), dict → 116. ``None`` is a ValueError: the caller picks ``undefined`` or ``nil``.

>>> decode(encode((Atom("ok"), Charlist("hi"), [1, 2**70], b"x")))
(Atom('ok'), Charlist('hi'), [1, 1180591620717411303424], b'x')
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable
from typing import Any

from jambonz_lab.exceptions import TermDecodeError

__all__ = [
    "MAX_BIG_BYTES",
    "MAX_DEPTH",
    "MAX_INFLATED",
    "MAX_ITEMS",
    "TAG_NAMES",
    "Atom",
    "Charlist",
    "decode",
    "encode",
]

#: deepest nesting of tuples/lists/maps accepted (decoding and encoding)
MAX_DEPTH = 512
#: largest uncompressed size a COMPRESSED (80) term may declare (Basix itself never compresses)
MAX_INFLATED = 4 * 1024 * 1024
#: most terms (atoms, numbers, binaries, containers: every tag read) one frame may hold
MAX_ITEMS = 100_000
#: most digit bytes of a SMALL_BIG/LARGE_BIG integer (2,408 decimal digits: under Python's 4,300)
MAX_BIG_BYTES = 1000
#: ``decode(..., pause=f)`` calls ``f()`` after every this many terms
PAUSE_EVERY = 2048
VERSION = 131

#: ETF tag byte → its name (used in error messages)
TAG_NAMES: dict[int, str] = {
    70: "NEW_FLOAT_EXT", 77: "BIT_BINARY_EXT", 80: "COMPRESSED", 82: "ATOM_CACHE_REF",
    88: "NEW_PID_EXT", 89: "NEW_PORT_EXT", 90: "NEWER_REFERENCE_EXT", 97: "SMALL_INTEGER_EXT",
    98: "INTEGER_EXT", 99: "FLOAT_EXT", 100: "ATOM_EXT", 101: "REFERENCE_EXT", 102: "PORT_EXT",
    103: "PID_EXT", 104: "SMALL_TUPLE_EXT", 105: "LARGE_TUPLE_EXT", 106: "NIL_EXT", 107: "STRING_EXT",
    108: "LIST_EXT", 109: "BINARY_EXT", 110: "SMALL_BIG_EXT", 111: "LARGE_BIG_EXT", 112: "NEW_FUN_EXT",
    113: "EXPORT_EXT", 114: "NEW_REFERENCE_EXT", 115: "SMALL_ATOM_EXT", 116: "MAP_EXT", 117: "FUN_EXT",
    118: "ATOM_UTF8_EXT", 119: "SMALL_ATOM_UTF8_EXT", 120: "V4_PORT_EXT", 121: "LOCAL_EXT",
}  # fmt: skip


class Atom(str):
    """An Erlang atom (a str subclass). ``Atom('ok') == 'ok'``; check ``type()`` to tell it from text."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


class Charlist(str):
    """An Erlang STRING_EXT (a list of bytes 0..255) as latin-1 text (a str subclass): ``Charlist('abc')``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Charlist({str.__repr__(self)})"


def _name(tag: int) -> str:
    return f"{tag} ({TAG_NAMES[tag]})" if tag in TAG_NAMES else str(tag)


class _Reader:
    """Cursor over one term's bytes; every failure is a TermDecodeError."""

    def __init__(
        self, data: bytes, pos: int, where: str = "", pause: Callable[[], None] | None = None
    ) -> None:
        self.data, self.pos, self.where, self.pause = data, pos, where, pause
        self.items = 0  # terms read so far (the MAX_ITEMS cap)

    def fail(self, message: str, tag: int | None, offset: int) -> TermDecodeError:
        return TermDecodeError(message + self.where, tag=tag, offset=offset)

    def take(self, n: int, tag: int, at: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            need = end - len(self.data)
            raise self.fail(
                f"input ends at offset {len(self.data)} inside a {TAG_NAMES[tag]} at offset {at} "
                f"(needs {need} more bytes)",
                tag,
                at,
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def uint(self, n: int, tag: int, at: int) -> int:
        return int.from_bytes(self.take(n, tag, at), "big")

    def count(self, n: int, per: int, tag: int, at: int) -> int:
        """A length/arity field; fails fast when the rest of the input cannot hold that many items."""
        value = self.uint(n, tag, at)
        left = len(self.data) - self.pos
        if value * per > left:
            raise self.fail(
                f"{TAG_NAMES[tag]} at offset {at} claims {value} items but only {left} bytes remain", tag, at
            )
        if self.items + value * per > MAX_ITEMS:
            raise self.too_many(tag, at)
        return value

    def too_many(self, tag: int, at: int) -> TermDecodeError:
        return self.fail(
            f"more than {MAX_ITEMS} terms in one frame (at the {TAG_NAMES[tag]} at offset {at}); "
            "refused as a decoding bomb",
            tag,
            at,
        )

    def term(self, depth: int) -> Any:
        at = self.pos
        data = self.data
        if at >= len(data):
            raise self.fail(f"input ends at offset {at} where a term tag was expected", None, at)
        tag = data[at]
        self.pos = at + 1
        seen = self.items = self.items + 1
        if seen > MAX_ITEMS:
            raise self.too_many(tag, at)
        if not seen % PAUSE_EVERY and self.pause is not None:
            self.pause()
        if tag == 106:  # the commonest tags first: NIL, SMALL_INTEGER, BINARY
            return []
        if tag == 97:
            if at + 1 >= len(data):
                self.take(1, tag, at)  # raises: input ends inside it
            self.pos = at + 2
            return data[at + 1]
        if tag == 98:
            return int.from_bytes(self.take(4, tag, at), "big", signed=True)
        if tag in (110, 111):
            n = self.uint(1 if tag == 110 else 4, tag, at)
            if n > MAX_BIG_BYTES:
                raise self.fail(
                    f"{TAG_NAMES[tag]} at offset {at} has {n} digit bytes, over the cap of {MAX_BIG_BYTES}",
                    tag,
                    at,
                )
            sign = self.uint(1, tag, at)
            if sign > 1:
                raise self.fail(
                    f"{TAG_NAMES[tag]} at offset {at} has sign byte {sign}, expected 0 or 1", tag, at
                )
            value = int.from_bytes(self.take(n, tag, at), "little")
            return -value if sign else value
        if tag in (99, 70):
            raw = self.take(31 if tag == 99 else 8, tag, at)
            try:
                number = (
                    float(raw.rstrip(b"\0").decode("ascii")) if tag == 99 else struct.unpack(">d", raw)[0]
                )
            except (UnicodeDecodeError, ValueError):
                raise self.fail(f"FLOAT_EXT at offset {at} is not a number: {raw!r}", tag, at) from None
            if not math.isfinite(number):
                raise self.fail(
                    f"{TAG_NAMES[tag]} at offset {at} is {number}, which Erlang cannot hold", tag, at
                )
            return number
        if tag in (100, 115, 118, 119):
            raw = self.take(self.uint(2 if tag in (100, 118) else 1, tag, at), tag, at)
            try:
                return Atom(raw.decode("latin-1" if tag in (100, 115) else "utf-8"))
            except UnicodeDecodeError:
                raise self.fail(f"{TAG_NAMES[tag]} at offset {at} is not valid UTF-8", tag, at) from None
        if tag == 109:
            return self.take(self.uint(4, tag, at), tag, at)
        if tag == 77:
            size, bits = self.uint(4, tag, at), self.uint(1, tag, at)
            if bits != 8 and (size, bits) != (0, 0):
                raise self.fail(
                    f"BIT_BINARY_EXT at offset {at} ends in a partial byte ({bits} bits)", tag, at
                )
            return self.take(size, tag, at)
        if tag == 107:
            return Charlist(self.take(self.uint(2, tag, at), tag, at).decode("latin-1"))
        if tag in (104, 105, 108, 116):
            if depth >= MAX_DEPTH:
                raise self.fail(f"terms nested deeper than {MAX_DEPTH} levels at offset {at}", tag, at)
            if tag == 116:  # inline (not a helper method): one Python frame per nesting level
                result: dict[Any, Any] = {}
                for _ in range(self.count(4, 2, tag, at)):
                    key_at = self.pos
                    key = self.term(depth + 1)
                    try:
                        hash(key)
                    except TypeError:
                        what = type(key).__name__
                        raise self.fail(
                            f"MAP_EXT key at offset {key_at} is unhashable ({what})", tag, at
                        ) from None
                    result[key] = self.term(depth + 1)
                return result
            n = self.count(1 if tag == 104 else 4, 1, tag, at)
            items = []
            for _ in range(n):
                items.append(self.term(depth + 1))
            if tag != 108:
                return tuple(items)
            tail_at = self.pos
            if self.data[tail_at : tail_at + 1] != b"\x6a":
                tail = self.data[tail_at] if tail_at < len(self.data) else None
                what = "missing" if tail is None else f"tag {_name(tail)}"
                raise self.fail(
                    f"improper list at offset {at}: tail at offset {tail_at} is {what}, not NIL (106)",
                    108,
                    at,
                )
            self.pos += 1
            return items
        if tag == 80:
            raise self.fail(
                f"COMPRESSED (80) at offset {at} is only allowed right after the version byte", tag, at
            )
        raise self.fail(f"unsupported term tag {_name(tag)} at offset {at}", tag, at)


def _inflate(data: bytes) -> bytes:
    reader = _Reader(data, 2)
    size = reader.uint(4, 80, 1)
    if size > MAX_INFLATED:
        raise TermDecodeError(
            f"COMPRESSED at offset 1 declares {size} bytes, over {MAX_INFLATED}", tag=80, offset=1
        )
    inflater = zlib.decompressobj()
    try:
        inner = inflater.decompress(data[6:], size + 1)
    except zlib.error as exc:
        raise TermDecodeError(
            f"COMPRESSED at offset 1 is not valid zlib data: {exc}", tag=80, offset=1
        ) from None
    if len(inner) != size or not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
        raise TermDecodeError(
            f"COMPRESSED at offset 1 declares {size} bytes but inflates to {len(inner)}"
            + ("" if inflater.eof else " (zlib stream incomplete)")
            + (" with trailing bytes" if inflater.unused_data or inflater.unconsumed_tail else ""),
            tag=80,
            offset=1,
        )
    return inner


def decode(data: bytes, *, pause: Callable[[], None] | None = None) -> Any:
    """One term from ``data``: version byte 131, exactly one term, no trailing bytes.

    >>> decode(bytes([131, 104, 2, 100, 0, 2]) + b"ok" + bytes([97, 7]))
    (Atom('ok'), 7)

    Raises :exc:`TermDecodeError` (with ``tag`` and ``offset``) on anything else, never another exception.
    ``pause`` is called after every :data:`PAUSE_EVERY` terms: a worker thread passes ``time.sleep(0)``
    so that a thread waiting for the GIL (the lab's loop) gets it within a millisecond or so.
    """
    if not isinstance(data, bytes):
        data = bytes(memoryview(data))
    if not data:
        raise TermDecodeError(
            "empty input: expected Erlang external term format (first byte 131)", tag=None, offset=0
        )
    if data[0] != VERSION:
        raise TermDecodeError(
            f"not Erlang external term format: first byte is 0x{data[0]:02x}, expected 131 (0x83)",
            tag=None,
            offset=0,
        )
    reader = _Reader(data, 1, pause=pause)
    if data[1:2] == b"\x50":
        where = " (offsets count from the start of the inflated COMPRESSED term)"
        reader = _Reader(_inflate(data), 0, where, pause)
    value = reader.term(0)
    if reader.pos != len(reader.data):
        raise reader.fail(
            f"trailing bytes: the term ends at offset {reader.pos} but the input is {len(reader.data)} bytes",
            None,
            reader.pos,
        )
    return value


def encode(term: Any) -> bytes:
    """Version byte 131 + ``term``, using only the tags listed in the module docstring.

    >>> encode((Atom("system_msg"), Charlist("x"))).hex(" ")
    '83 68 02 64 00 0a 73 79 73 74 65 6d 5f 6d 73 67 6b 00 01 78'
    """
    out = bytearray([VERSION])
    _encode(term, out, 0)
    return bytes(out)


def _u32(n: int, what: str) -> bytes:
    if n >= 2**32:
        raise ValueError(f"{what} of {n} does not fit Erlang's 4-byte length field")
    return n.to_bytes(4, "big")


def _encode(term: Any, out: bytearray, depth: int) -> None:
    if isinstance(term, bool):
        term = Atom("true" if term else "false")
    if isinstance(term, Atom):
        if len(term) > 255:
            raise ValueError(
                f"atom of {len(term)} characters is over Erlang's limit of 255: {term[:20]!r}..."
            )
        try:
            raw = term.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"atom {str(term)!r} is not latin-1; ATOM_EXT (100) cannot carry it") from None
        out += b"\x64" + len(raw).to_bytes(2, "big") + raw
    elif isinstance(term, Charlist):
        if len(term) >= 65536:
            raise ValueError(f"Charlist of {len(term)} characters is over STRING_EXT's limit of 65535")
        try:
            raw = term.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(
                f"Charlist {str(term)[:20]!r} has characters over 255; STRING_EXT holds bytes"
            ) from None
        out += b"\x6b" + len(raw).to_bytes(2, "big") + raw
    elif isinstance(term, str | bytes | bytearray):
        raw = term.encode("utf-8") if isinstance(term, str) else bytes(term)
        out += b"\x6d" + _u32(len(raw), "binary length") + raw
    elif isinstance(term, int):
        if 0 <= term <= 255:
            out += bytes([97, term])
        elif -(2**31) <= term < 2**31:
            out += b"\x62" + term.to_bytes(4, "big", signed=True)
        else:
            digits = abs(term).to_bytes((abs(term).bit_length() + 7) // 8, "little")
            head = (
                bytes([110, len(digits)])
                if len(digits) <= 255
                else b"\x6f" + _u32(len(digits), "big int size")
            )
            out += head + bytes([term < 0]) + digits
    elif isinstance(term, float):
        if not math.isfinite(term):
            raise ValueError(f"float {term} has no Erlang representation")
        out += b"\x46" + struct.pack(">d", term)
    elif isinstance(term, tuple | list | dict):
        if depth >= MAX_DEPTH:
            raise ValueError(f"term nested deeper than {MAX_DEPTH} levels")
        if isinstance(term, dict):
            out += b"\x74" + _u32(len(term), "map size")
            for key, value in term.items():
                _encode(key, out, depth + 1)
                _encode(value, out, depth + 1)
            return
        if isinstance(term, tuple):
            out += bytes([104, len(term)]) if len(term) < 256 else b"\x69" + _u32(len(term), "tuple arity")
        elif term:
            out += b"\x6c" + _u32(len(term), "list length")
        for item in term:
            _encode(item, out, depth + 1)
        if isinstance(term, list):
            out += b"\x6a"
    elif term is None:
        raise ValueError("None has no Erlang term: encode Atom('undefined') or Atom('nil') explicitly")
    else:
        raise TypeError(f"cannot encode {type(term).__name__} as an Erlang term")
