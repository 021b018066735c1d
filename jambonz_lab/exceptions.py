"""Every exception jambonz_lab raises, in one tree.

* :exc:`JambonzLabError` — base of everything below.

  * :exc:`VerbError` (also a :exc:`ValueError`) — a verb failed validation
    when it was composed (``say(txt=...)``).
  * :exc:`CommandError` (also a :exc:`ValueError`) — an inject command was
    given a value jambonz does not read.
  * :exc:`ProtocolError` — a message could not be sent as jambonz expects.

    * :exc:`FrameTooLarge` — the frame would exceed jambonz's 24 KiB limit
      (jambonz would close the socket with 1009); nothing was sent.
    * :exc:`AlreadyReplied` — the hook's msgid was already acked.
    * :exc:`NoPendingHook` — there is no hook waiting for a reply.
    * :exc:`InvalidFrame` — a frame from jambonz was malformed. It is
      recorded and logged, never raised into user code.
    * :exc:`SignatureError` — an HTTP webhook's ``Jambonz-Signature`` is
      missing, malformed, stale or wrong (``reason``).
    * :exc:`NoSocket` — a command, or a send with no hook waiting, on a call
      served over HTTP webhooks: only a hook's answer reaches jambonz there.

  * :exc:`SessionClosed` — the call's socket is gone for good.
  * :exc:`RestError` — a request to jambonz's REST API failed (``status``:
    the HTTP status jambonz answered, ``None`` when it could not be reached).
  * :exc:`ServerError` — the app server could not start (port in use, …).
  * :exc:`WaitTimeout` (also a :exc:`TimeoutError`) — a wait ran out of time.
  * :exc:`QueryError` (also a :exc:`ValueError`) — a SQL query over the event log
    failed (``query``; the message is DuckDB's first line).
  * :exc:`PlatformError` — a Kazoo, Basix or Wazo event source failed
    (``source`` says which).

    * :exc:`KazooError` — blackhole answered a request with an error reply
      (``errors``: Kazoo's messages; ``request_id``).
    * :exc:`WazoClosed` — wazo-websocketd closed the socket with one of its
      own codes (``code`` 4001–4004, ``reason``).
    * :exc:`TermDecodeError` (also a :exc:`ValueError`) — a Basix frame is
      not valid Erlang external term format (``tag``, ``offset``).

Every exception carries the data it is about (``call_sid``, ``msgid`` where
known) and its ``str()`` is one sentence: what went wrong and what to do.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyReplied",
    "CommandError",
    "FrameTooLarge",
    "InvalidFrame",
    "KazooError",
    "PlatformError",
    "TermDecodeError",
    "WazoClosed",
    "JambonzLabError",
    "NoPendingHook",
    "NoSocket",
    "ProtocolError",
    "QueryError",
    "RestError",
    "ServerError",
    "SessionClosed",
    "SignatureError",
    "VerbError",
    "WaitTimeout",
]


class JambonzLabError(Exception):
    """Base class of every jambonz_lab exception."""

    def __init__(self, message: str, *, call_sid: str | None = None, msgid: str | None = None):
        super().__init__(message)
        self.call_sid = call_sid
        self.msgid = msgid


class VerbError(JambonzLabError, ValueError):
    """A verb is invalid: unknown verb, unknown property, wrong type, missing value.

    The message has one line per problem (``say: unknown property 'txt' (did
    you mean 'text'?)``), every problem listed.

    Attributes:
        verb: the verb name (``"say"``).
        property: the first offending property path (``"text"``), or ``None``.
        problems: every problem, one line each.
    """

    def __init__(self, message: str, *, verb: str, property: str | None = None):
        super().__init__(message)
        self.verb = verb
        self.property = property
        self.problems: list[str] = message.splitlines()


class CommandError(JambonzLabError, ValueError):
    """An inject command has a value the feature server would not read."""

    def __init__(self, message: str, *, command: str):
        super().__init__(message)
        self.command = command


class ProtocolError(JambonzLabError):
    """A message cannot be exchanged the way jambonz expects."""


class FrameTooLarge(ProtocolError):
    """The outgoing frame is larger than jambonz accepts; nothing was sent.

    Attributes:
        size: the encoded size in bytes.
        limit: the limit in bytes (24 576 by default).
        verbs: the verbs that were refused (they no longer wait in any queue).
    """

    def __init__(self, message: str, *, size: int, limit: int, call_sid: str | None = None):
        super().__init__(message, call_sid=call_sid)
        self.size = size
        self.limit = limit
        self.verbs: list[dict[str, Any]] = []


class AlreadyReplied(ProtocolError):
    """The hook (``msgid``) was already acked, by you or automatically."""


class NoPendingHook(ProtocolError):
    """No hook is waiting for a reply (none arrived, or jambonz abandoned it)."""


class InvalidFrame(ProtocolError):
    """A frame received from jambonz is malformed (recorded, never raised to users)."""

    def __init__(self, message: str, *, raw: str | bytes | None = None, call_sid: str | None = None):
        super().__init__(message, call_sid=call_sid)
        self.raw = raw


class NoSocket(ProtocolError):
    """The call is served over HTTP webhooks: jambonz reads verbs only from a hook's answer.

    Commands (``inject_*``, a ``send()`` after the hook was answered) need a
    WebSocket app, or jambonz's REST API for the live call (``lab.rest``).
    """


class SignatureError(ProtocolError):
    """An HTTP webhook did not carry a valid ``Jambonz-Signature`` for the configured secret."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        #: ``missing``, ``malformed``, ``stale`` or ``mismatch``
        self.reason = reason


class SessionClosed(JambonzLabError):
    """The call has ended or its socket was closed for good; nothing can be sent."""


class RestError(JambonzLabError):
    """A request to jambonz's REST API failed: refused (``status`` 4xx/5xx) or unanswered (``None``)."""

    def __init__(self, message: str, *, status: int | None = None, call_sid: str | None = None):
        super().__init__(message, call_sid=call_sid)
        self.status = status


class ServerError(JambonzLabError):
    """The app server could not start or stop."""


class WaitTimeout(JambonzLabError, TimeoutError):
    """A wait ran out of time before what it waited for happened."""


class QueryError(JambonzLabError, ValueError):
    """A SQL query over the event log failed (``lab.sql``): DuckDB's one-line reason, and the query."""

    def __init__(self, message: str, *, query: str):
        super().__init__(message)
        self.query = query


class PlatformError(JambonzLabError):
    """A Kazoo, Basix or Wazo event source failed (refused, closed, answered an error).

    Attributes:
        source: ``"kazoo"``, ``"basix"`` or ``"wazo"``.
    """

    def __init__(self, message: str, *, source: str, call_sid: str | None = None):
        super().__init__(message, call_sid=call_sid)
        self.source = source


class KazooError(PlatformError):
    """Kazoo's blackhole answered a request with ``status: error``.

    Attributes:
        errors: Kazoo's error strings, verbatim (auth errors may echo a token).
        request_id: the request's ``request_id``.
    """

    def __init__(self, message: str, *, errors: list[str], request_id: str | None = None):
        super().__init__(message, source="kazoo")
        self.errors = errors
        self.request_id = request_id


class WazoClosed(PlatformError):
    """wazo-websocketd closed the socket with one of its codes (4001 no token, 4002 authentication
    failed, 4003 authentication expired, 4004 protocol error) or 1011.

    Attributes:
        code: the WebSocket close code.
        reason: the close reason text (may be empty).
    """

    def __init__(self, message: str, *, code: int, reason: str = ""):
        super().__init__(message, source="wazo")
        self.code = code
        self.reason = reason


class TermDecodeError(PlatformError, ValueError):
    """Bytes that are not valid Erlang external term format (a Basix CTI frame).

    Attributes:
        tag: the tag byte being read when decoding failed (``None`` when the input ended first).
        offset: the byte offset of that tag (or of the end of input).
    """

    def __init__(self, message: str, *, tag: int | None, offset: int):
        super().__init__(message, source="basix")
        self.tag = tag
        self.offset = offset
