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
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import FrameTooLarge, InvalidFrame

__all__ = [
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


@dataclass(frozen=True, slots=True)
class Message:
    """One message from jambonz, as handed to handlers.

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

    Example::

        @session.on("/echo")
        def echo(msg):
            heard = msg.transcript if msg.reason == "speechDetected" else msg.digits
            session.say(text=f"You said {heard}").reply()
    """

    type: MessageType
    msgid: str
    call_sid: str | None
    hook: str | None
    data: dict[str, Any] = field(default_factory=dict)
    b3: str | None = None
    size: int = 0

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
        return _str(self.data.get("reason"))

    @property
    def call_status(self) -> str | None:
        return _str(self.data.get("call_status"))

    @property
    def digits(self) -> str | None:
        return _str(self.data.get("digits"))

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
        InvalidFrame: not JSON, not an object, unknown ``type``, missing
            ``msgid``, a non-object ``data`` — with a one-line reason.
    """
    if isinstance(frame, bytes | bytearray):
        raise InvalidFrame("binary frame refused: jambonz sends JSON text frames", raw=bytes(frame))
    try:
        obj = json.loads(frame)
    except json.JSONDecodeError as exc:
        raise InvalidFrame(f"frame is not JSON ({exc.msg} at char {exc.pos})", raw=frame) from None
    except UnicodeDecodeError as exc:
        raise InvalidFrame(f"frame is not UTF-8 text ({exc.reason})", raw=frame) from None
    if not isinstance(obj, dict):
        raise InvalidFrame(f"frame is JSON {type(obj).__name__}, not an object", raw=frame)
    call_sid = obj.get("call_sid") if isinstance(obj.get("call_sid"), str) else None
    raw_type = obj.get("type")
    if not isinstance(raw_type, str):
        raise InvalidFrame("frame has no 'type'", raw=frame, call_sid=call_sid)
    try:
        mtype = MessageType(raw_type)
    except ValueError:
        raise InvalidFrame(f"unknown message type {raw_type!r}", raw=frame, call_sid=call_sid) from None
    msgid = obj.get("msgid")
    if not isinstance(msgid, str) or not msgid:
        raise InvalidFrame(f"{raw_type} frame has no 'msgid'", raw=frame, call_sid=call_sid)
    data = obj.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidFrame(
            f"{raw_type} 'data' is {type(data).__name__}, not an object", raw=frame, call_sid=call_sid
        )
    hook = obj.get("hook")
    if isinstance(hook, dict):  # object hooks: jambonz sends the url string, be lenient
        hook = hook.get("url")
    b3 = obj.get("b3")
    return Message(
        type=mtype,
        msgid=msgid,
        call_sid=call_sid,
        hook=hook if isinstance(hook, str) else None,
        data=data,
        b3=b3 if isinstance(b3, str) else None,
        size=_utf8_len(frame),
    )


def _utf8_len(text: str) -> int:
    """UTF-8 size without encoding when the text is ASCII (nearly always)."""
    return len(text) if text.isascii() else len(text.encode())


def encode(message: Mapping[str, Any], *, limit: int = MAX_APP_FRAME, call_sid: str | None = None) -> str:
    """Encode an outgoing message, refusing frames jambonz would reject.

    Raises:
        FrameTooLarge: the UTF-8 encoding is larger than ``limit`` bytes.
    """
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    size = _utf8_len(text)
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
