"""Messages of the jambonz WebSocket protocol (``ws.jambonz.org``), sans I/O.

:func:`parse` turns one frame from jambonz into a :class:`Message`, or raises
:exc:`~jambonz_lab.exceptions.InvalidFrame` with a one-line reason.
:func:`encode` turns an outgoing dict into text and enforces jambonz's limit
on frames from the app (24 KiB; the feature server closes the socket with 1009
on a larger one).

Which types want an ack is fixed by the feature server (protocol doc §2.0):
``session:new``, ``session:reconnect``, ``session:redirect``,
``session:adulting``, ``verb:hook`` and ``dial:confirm``. Everything else is
fire-and-forget and must never be acked.
"""

from __future__ import annotations

import enum
import itertools
import json
import reprlib
import sys
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import FrameTooLarge, InvalidFrame

__all__ = [
    "FINAL_STATUSES",
    "MAX_APP_FRAME",
    "SUBPROTOCOL",
    "Message",
    "best_alternative",
    "MessageType",
    "encode",
    "parse",
]

SUBPROTOCOL = "ws.jambonz.org"
MAX_APP_FRAME = 24 * 1024  # JAMBONES_WS_MAX_PAYLOAD default, bytes
#: call statuses after which jambonz sends nothing more for the call (the final ones of
#: feature-server's CallStatus, lib/utils/constants.json)
FINAL_STATUSES = frozenset({"completed", "failed", "busy", "no-answer"})


class MessageType(enum.StrEnum):
    """Every message type jambonz sends to an app."""

    SESSION_NEW = "session:new"
    SESSION_RECONNECT = "session:reconnect"
    SESSION_REDIRECT = "session:redirect"
    SESSION_ADULTING = "session:adulting"
    VERB_HOOK = "verb:hook"
    DIAL_CONFIRM = "dial:confirm"
    CALL_STATUS = "call:status"
    VERB_STATUS = "verb:status"
    JAMBONZ_ERROR = "jambonz:error"
    LLM_EVENT = "llm:event"
    LLM_TOOL_CALL = "llm:tool-call"
    TTS_STREAMING_EVENT = "tts:streaming-event"
    TTS_TOKENS_RESULT = "tts:tokens-result"

    @property
    def needs_ack(self) -> bool:
        """True for the types the feature server waits an ack for."""
        return self in _NEEDS_ACK

    @property
    def opens_session(self) -> bool:
        """True for the types that may open a socket (the first message)."""
        return self in _OPENERS


_NEEDS_ACK = frozenset(
    {
        MessageType.SESSION_NEW,
        MessageType.SESSION_RECONNECT,
        MessageType.SESSION_REDIRECT,
        MessageType.SESSION_ADULTING,
        MessageType.VERB_HOOK,
        MessageType.DIAL_CONFIRM,
    }
)
_OPENERS = frozenset(
    {
        MessageType.SESSION_NEW,
        MessageType.SESSION_RECONNECT,
        MessageType.SESSION_REDIRECT,
        MessageType.SESSION_ADULTING,
    }
)


@dataclass(frozen=True, slots=True, repr=False)
class Message(Mapping[str, Any]):
    """One message from jambonz, as handed to handlers.

    A message reads like the dict of its payload: ``msg["digits"]``,
    ``msg.get("speech")``, ``"digits" in msg``, ``dict(msg)``, ``len(msg)`` and
    iteration all go to :attr:`data` (read-only), as in the jambonz Python SDK
    and in Node apps. The envelope (``type``, ``msgid``, ``hook``, …) stays on
    attributes. A message is always true, even with an empty payload: it is
    there (``if msg:`` never tests ``data``; use ``if msg.data:`` for that).
    Equality is the dataclass's (every field), never a comparison with a
    dict; ``dict(msg)`` is a plain copy of the payload (for ``json.dumps``).
    The ``repr`` is one short line: type, ids, hook, a few payload keys.

    Attributes:
        type: the message type.
        msgid: jambonz's id for the message (what an ack names).
        call_sid: the top-level ``call_sid`` (the socket's call; missing on
            adulting and redirect sockets and on pre-answer REST statuses).
        hook: the hook URL string for hooks, ``dial:confirm``,
            ``session:redirect`` and ``llm:*``; else ``None``.
        data: the payload (snake-cased by jambonz).
        b3: the tracing header, when jambonz sends one.
        size: the frame size in bytes.

    What a hook carries (jambonz 0.9.8; the payload's fields, also as properties):

    * a ``gather``'s actionHook: :attr:`reason` is ``"dtmfDetected"`` (with
      :attr:`digits`), ``"speechDetected"`` (with ``speech``: :attr:`transcript`,
      :attr:`confidence`), ``"timeout"`` (nothing heard), ``"stt-low-confidence"``
      (``speech`` below ``minConfidence``) or ``"error"`` (``details``: the recognizer's
      error) — ``lib/tasks/gather.js`` ~1389–1424;
    * a ``dial``'s actionHook: :attr:`dial_call_status` (``"completed"``, ``"busy"``,
      ``"no-answer"``, ``"failed"``, …), :attr:`dial_sip_status` (200, 486, 487, …),
      :attr:`dial_call_sid` and ``dial_sbc_callid`` of the leg that answered or failed
      last — ``lib/tasks/dial.js`` ~700–710, ~905–910;
    * a ``call:status``: :attr:`call_status` (``trying``, ``ringing``, ``early-media``,
      ``in-progress``, ``completed``, ``busy``, ``no-answer``, ``failed``) and
      ``sip_status``; :attr:`leg_sid` says which leg.

    Example::

        @session.on("/echo")
        def echo(evt):
            if evt["reason"] == "dtmfDetected":
                heard = evt["digits"]
            elif evt.get("speech"):
                heard = evt.transcript  # speech.alternatives[0].transcript
            else:
                heard = "nothing"
            session.say(text=f"You said {heard}").reply()
    """

    type: MessageType
    msgid: str
    call_sid: str | None
    hook: str | None
    data: dict[str, Any] = field(default_factory=dict)
    b3: str | None = None
    size: int = 0

    # -- the payload, read like a dict ----------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None, /) -> Any:
        return self.data.get(key, default)

    def keys(self) -> KeysView[str]:
        return self.data.keys()

    def items(self) -> ItemsView[str, Any]:
        return self.data.items()

    def values(self) -> ValuesView[Any]:
        return self.data.values()

    def __bool__(self) -> bool:
        return True  # a message exists even when its payload is empty (Mapping would say len() > 0)

    def __repr__(self) -> str:
        parts = [f"{self.type.value} msgid={_short.repr(self.msgid)}"]
        if self.call_sid is not None:
            parts.append(f"call_sid={_short.repr(self.call_sid)}")
        if self.hook is not None:
            parts.append(f"hook={_short.repr(self.hook)}")
        parts.append(f"data={_short.repr(self.data)}")
        return f"<Message {' '.join(parts)}>"

    # -- facts ----------------------------------------------------------------------------

    @property
    def needs_ack(self) -> bool:
        return self.type.needs_ack

    @property
    def leg_sid(self) -> str | None:
        """The sid of the leg the payload is about (``data.call_sid``, else the top one)."""
        sid = self.data.get("call_sid")
        return sid if isinstance(sid, str) else self.call_sid

    @property
    def reason(self) -> str | None:
        """Why a gather's actionHook came: ``dtmfDetected``, ``speechDetected``, ``timeout``,
        ``stt-low-confidence`` or ``error``."""
        return _str(self.data.get("reason"))

    @property
    def call_status(self) -> str | None:
        """A ``call:status``'s status: ``trying`` … ``in-progress`` … ``completed`` (or ``busy``,
        ``no-answer``, ``failed``)."""
        return _str(self.data.get("call_status"))

    @property
    def digits(self) -> str | None:
        """The keys a gather heard (``reason == "dtmfDetected"``)."""
        return _str(self.data.get("digits"))

    @property
    def dial_call_status(self) -> str | None:
        """A dial's outcome in its actionHook: ``completed``, ``busy``, ``no-answer``, ``failed``…"""
        return _str(self.data.get("dial_call_status"))

    @property
    def dial_sip_status(self) -> int | None:
        """The SIP status of a dial's outcome in its actionHook (200, 486, 487, …)."""
        value = self.data.get("dial_sip_status")
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    @property
    def dial_call_sid(self) -> str | None:
        """The call sid of the dialled leg, in a dial's actionHook."""
        return _str(self.data.get("dial_call_sid"))

    @property
    def transcript(self) -> str | None:
        """The best transcript of a speech result (``speech.alternatives[0]``)."""
        alt = best_alternative(self.data)
        return _str(alt.get("transcript")) if alt else None

    @property
    def confidence(self) -> float | None:
        alt = best_alternative(self.data)
        value = alt.get("confidence") if alt else None
        return float(value) if isinstance(value, int | float) else None


class _ShortRepr(reprlib.Repr):
    """reprlib's abbreviations, with dicts in their own order (reprlib sorts the keys)."""

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        shown = itertools.islice(x.items(), self.maxdict)
        pieces = [f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}" for k, v in shown]
        if len(x) > self.maxdict:
            pieces.append("...")
        return "{" + ", ".join(pieces) + "}"


#: how Message.__repr__ shows its fields: a few keys, short strings, two levels
_short = _ShortRepr()
_short.maxlevel = 2
_short.maxdict = 5
_short.maxlist = 3
_short.maxstring = 60
_short.maxother = 40


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def best_alternative(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``speech.alternatives[0]`` of a hook payload (``transcript``, ``confidence``), if there is one."""
    speech = data.get("speech")
    if not isinstance(speech, Mapping):
        return None
    alternatives = speech.get("alternatives")
    if isinstance(alternatives, list) and alternatives and isinstance(alternatives[0], Mapping):
        return alternatives[0]
    return None


def parse(frame: str | bytes) -> Message:
    """Parse one frame from jambonz.

    Args:
        frame: the text of a WebSocket message. Bytes are refused: jambonz
            only sends text frames.

    Returns:
        The parsed :class:`Message`.

    Raises:
        InvalidFrame: not JSON (or JSON Python cannot decode: nested too
            deeply, an integer over Python's digit limit), not an object,
            unknown ``type``, missing or non-string ``msgid``, a non-object
            ``data`` — with a one-line reason and the frame as ``raw``. Nothing
            else escapes, whatever the input.
    """
    if type(frame) is not str:  # one identity test on the hot path; the odd cases go the slow way
        frame = _text(frame)
    try:
        obj = json.loads(frame)
    except json.JSONDecodeError as exc:
        raise InvalidFrame(f"frame is not JSON ({exc.msg} at char {exc.pos})", raw=frame) from None
    except RecursionError:
        depth = _decodable_depth(min(len(frame), 1 << 16))
        raise InvalidFrame(f"frame nests deeper than {depth} levels", raw=frame) from None
    except ValueError as exc:  # an integer literal over sys.get_int_max_str_digits()
        raise InvalidFrame(_undecodable(exc), raw=frame) from None
    if type(obj) is not dict:
        raise InvalidFrame(f"frame is JSON {type(obj).__name__}, not an object", raw=frame)
    call_sid = obj.get("call_sid")
    if type(call_sid) is not str:
        call_sid = None
    raw_type = obj.get("type")
    if type(raw_type) is not str:
        raise InvalidFrame("frame has no 'type'", raw=frame, call_sid=call_sid)
    mtype = _TYPES.get(raw_type)
    if mtype is None:
        raise InvalidFrame(f"unknown message type {_clip(raw_type)}", raw=frame, call_sid=call_sid)
    msgid = obj.get("msgid")
    if type(msgid) is not str or not msgid:
        if msgid is None or msgid == "":
            raise InvalidFrame(f"{raw_type} frame has no 'msgid'", raw=frame, call_sid=call_sid)
        raise InvalidFrame(
            f"{raw_type} 'msgid' is {type(msgid).__name__}, not a string", raw=frame, call_sid=call_sid
        )
    data = obj.get("data")
    if data is None:
        data = {}
    elif type(data) is not dict:
        raise InvalidFrame(
            f"{raw_type} 'data' is {type(data).__name__}, not an object", raw=frame, call_sid=call_sid
        )
    hook = obj.get("hook")
    if type(hook) is not str:  # object hooks: jambonz sends the url string, be lenient
        hook = hook.get("url") if type(hook) is dict else None
        if type(hook) is not str:
            hook = None
    b3 = obj.get("b3")
    size = len(frame) if frame.isascii() else _non_ascii_size(frame)
    # positional, in field order: a quarter cheaper than keywords on the hot path
    return Message(mtype, msgid, call_sid, hook, data, b3 if type(b3) is str else None, size)


_TYPES: dict[str, MessageType] = {t.value: t for t in MessageType}


def _text(frame: object) -> str:
    """The frame as text, or InvalidFrame (``parse`` on anything but an exact ``str``)."""
    if isinstance(frame, str):
        return frame
    if isinstance(frame, bytes | bytearray | memoryview):
        raise InvalidFrame("binary frame refused: jambonz sends JSON text frames", raw=bytes(frame))
    raise InvalidFrame(f"frame is {type(frame).__name__}, not text", raw=repr(frame)[:500])


def _utf8_len(text: str) -> int:
    """UTF-8 size without encoding when the text is ASCII (nearly always)."""
    return len(text) if text.isascii() else len(text.encode())


def _non_ascii_size(frame: str) -> int:
    try:
        return len(frame.encode())
    except UnicodeEncodeError as exc:  # only a str built in Python: a WebSocket text frame is valid UTF-8
        raise InvalidFrame(
            f"frame is not valid UTF-8 text (lone surrogate at char {exc.start})", raw=frame
        ) from None


def _decodable_depth(most: int) -> int:
    """How deep the JSON decoder can nest from here, up to ``most`` (called once it refused a frame).

    It depends on the recursion limit, the Python version and the caller's
    stack, so it is measured with ``[[…]]`` probes: doubling from 64, then
    bisecting (about 15 small probes, under a millisecond). The answer
    is a lower bound of the refused frame's depth.
    """
    low, high = 0, 64
    while high <= most and _decodes(high):
        low, high = high, high * 2
    high = min(high, most + 1)  # the smallest depth known not to decode (or past ``most``)
    while high - low > 1:
        mid = (low + high) // 2
        if _decodes(mid):
            low = mid
        else:
            high = mid
    return low


def _decodes(depth: int) -> bool:
    try:
        json.loads("[" * depth + "]" * depth)
    except RecursionError:
        return False
    return True


def _undecodable(exc: ValueError) -> str:
    if "integer string conversion" in str(exc):
        return f"frame has an integer of more than {sys.get_int_max_str_digits()} digits"
    reason = str(exc).partition("\n")[0][:100] or type(exc).__name__
    return f"frame cannot be decoded as JSON ({reason})"


def _clip(text: str, limit: int = 60) -> str:
    """``repr(text)``, cut to about ``limit`` characters: error messages stay one short line."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "…"


def encode(message: Mapping[str, Any], *, limit: int = MAX_APP_FRAME, call_sid: str | None = None) -> str:
    """Encode an outgoing message, refusing frames jambonz would reject.

    Raises:
        FrameTooLarge: the UTF-8 encoding is larger than ``limit`` bytes.
    """
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    try:
        size = _utf8_len(text)
    except UnicodeEncodeError:  # a lone surrogate (echoed from a payload): send it escaped, as JSON allows
        text = json.dumps(message, separators=(",", ":"))
        size = len(text)
    if size > limit:
        what = message.get("command") or message.get("type")
        raise FrameTooLarge(
            f"{what} frame is {size} bytes, over jambonz's {limit}-byte limit "
            "(jambonz would close the socket with 1009); send fewer or shorter verbs",
            size=size,
            limit=limit,
            call_sid=call_sid,
        )
    return text
