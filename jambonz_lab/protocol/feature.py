"""The feature server's side of one call's socket, sans I/O (the mirror of :mod:`.call`).

:class:`FeatureProtocol` keeps what jambonz-feature-server 0.9.8's ``WsRequestor``
(``lib/utils/ws-requestor.js``) keeps for one call: the envelope of every
request it sends, which msgids wait for an ack, which request an ack answers,
what waits for a socket, and how a dropped socket is re-opened. It takes the
app's frames (text) and the socket's fate (opened, closed with a code, a
response timer fired) and gives back events and the frames to write
(:meth:`~FeatureProtocol.frames_to_send`). It never reads a clock and never
touches a socket; the I/O layer (the simulator, the test fakes, the
benchmarks) writes the frames and runs the 5 s timers.

Typical use by an I/O layer::

    core = FeatureProtocol(max_reconnects=5)
    core.connected()                              # the first socket is open
    frame = core.request("session:new", payload)  # built, queued for writing
    write(core.frames_to_send())
    for event in core.receive(text):              # an ack, a command, an invalid frame
        ...
    core.expire(frame.msgid)                      # its 5 s passed: a later ack is stray
    dropped = core.connection_lost(1006)          # abandoned requests; reconnect or not
    core.connected()                              # the new socket: session:reconnect first

Rules (``ws-requestor.js``, file:line approximate):

* the envelope is ``{type, msgid, call_sid, hook, data, b3}`` (~200–209):
  ``call_sid`` only once this requestor sent ``session:new`` (~86), ``hook``
  only on ``verb:hook``, ``dial:confirm``, ``session:redirect``, ``llm:event``
  and ``llm:tool-call`` (~204), ``data`` snake-cased except the verbatim
  subtrees (~190); ``session:reconnect`` carries the cached ``session:new``
  (or ``session:adulting``) payload (~191–192);
* ``call:status``, ``verb:status``, ``jambonz:error``, ``llm:*`` and ``tts:*``
  events want no ack (the list misnamed ``MTYPE_WANTS_ACK``, ~16, ~75);
* while no socket is up, or while a ``session:reconnect`` waits for its ack,
  every other request is queued (~109–125, ~184) and sent when the socket is
  ready or the reconnect acked (~296–313); after a graceful close (1000 from
  the app, or jambonz's own close) every request is discarded (~81, ~325);
* from the app: ``type`` is required, ``ack`` needs ``msgid``, ``command``
  needs ``command`` and ``data`` (except ``llm:tool-output``, ``tts:flush``,
  ``tts:clear``); a failure is answered with ``jambonz:error``
  ``InvalidMessage`` and the socket stays up (~491–534). ``callSid`` picks the
  leg (camelCase, ~496), ``queueCommand`` defaults to false (~495). A frame
  over the payload limit (24 KiB, ``JAMBONES_WS_MAX_PAYLOAD``, ~352) ends the
  socket instead;
* an ack to a msgid not in flight (late, duplicated or never sent) is
  discarded (~540); any ack clears the pending-``session:new`` mark (~538);
* a drop other than 1000 while ``connections < maxReconnects`` schedules a
  reconnect and abandons every request in flight — unless ``session:new`` is
  still unacked (~393, ~450–459); the ``session:reconnect`` sent then takes
  over the unacked ``session:new`` (its ack supplies the first verbs; ~245–252).
"""

from __future__ import annotations

import enum
import json
import secrets
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .messages import MAX_APP_FRAME, MessageType, encode
from .snake import snake_keys

__all__ = [
    "Acked",
    "Command",
    "Dropped",
    "Event",
    "Expired",
    "FeatureProtocol",
    "Frame",
    "Invalid",
    "LinkState",
    "Request",
    "StrayAck",
    "TooLarge",
    "hook_params",
    "invalid_message_data",
]

#: the types whose ``hook`` jambonz puts in the envelope (ws-requestor.js ~204)
HOOKED = frozenset(
    {
        MessageType.VERB_HOOK,
        MessageType.DIAL_CONFIRM,
        MessageType.SESSION_REDIRECT,
        MessageType.LLM_EVENT,
        MessageType.LLM_TOOL_CALL,
    }
)
#: commands that need no ``data`` (``MTYPE_NO_DATA``, ws-requestor.js ~25)
NO_DATA_COMMANDS = frozenset({"llm:tool-output", "tts:flush", "tts:clear"})
MAX_RECONNECTS = 5  # config.js MAX_RECONNECTS; ``#rc`` lowers it
FIRST_BACKOFF = 0.5  # ``backoffMs`` starts at 500 ms (ws-requestor.js ~38)
_REMEMBERED = 512  # how many finished msgids are kept to tell a late ack from an unknown one
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def new_msgid() -> str:
    """A fresh 22-character base58 id, the shape of jambonz's short-uuid msgids."""
    return "".join(secrets.choice(_BASE58) for _ in range(22))


class LinkState(enum.Enum):
    """The socket, as the requestor sees it."""

    CONNECTING = "connecting"  #: no socket yet: requests wait for the first one
    OPEN = "open"  #: requests go out as they are made
    DOWN = "down"  #: dropped (not 1000): requests wait for the reconnect
    RESYNC = "resync"  #: reconnected; session:reconnect waits for an ack, other requests wait
    CLOSED = "closed"  #: closed gracefully (1000 from the app, or jambonz closed): requests are discarded


@dataclass(frozen=True, slots=True)
class Request:
    """A request jambonz sent, as its ack will find it."""

    msgid: str  #: the msgid it went out with
    type: MessageType
    hook: str | None


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame to write to the app.

    Attributes:
        message: the JSON object (the envelope).
        text: its compact JSON encoding (``JSON.stringify``'s shape).
        request: what it is; ``request.msgid`` is the frame's msgid.
        wants_ack: True for the types jambonz waits an ack for.
        stands_in_for: the ``session:new`` msgid a ``session:reconnect`` took over.
    """

    message: dict[str, Any]
    text: str
    request: Request
    wants_ack: bool
    stands_in_for: str | None = None

    @property
    def msgid(self) -> str:
        return self.request.msgid

    @property
    def type(self) -> MessageType:
        return self.request.type


# -- events from the app ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Acked:
    """An ack to a request in flight. ``request`` is what it answers: the original
    ``session:new`` when the ack names the ``session:reconnect`` that took it over."""

    msgid: str
    data: Any
    request: Request
    message: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StrayAck:
    """An ack jambonz discards ("ack to unknown msgid … discarding").

    ``why``: ``late`` (its timer fired), ``abandoned`` (its socket dropped),
    ``duplicate`` (acked already) or ``unknown`` (never sent); ``request`` is
    the earlier request when known.
    """

    msgid: str
    data: Any
    why: str
    request: Request | None = None
    message: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Command:
    """A command, as ``ws-requestor.js`` emits it (``_recvCommand``, ~550).

    ``call_sid`` is the ``callSid`` the app named, else the call's; ``leg`` is
    just what the app named (``None`` when absent).
    """

    name: str
    data: Any
    call_sid: str | None
    leg: str | None
    queue: bool
    tool_call_id: Any
    msgid: Any
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Invalid:
    """A frame jambonz cannot use; it answers with ``jambonz:error`` (:func:`invalid_message_data`)."""

    details: str
    content: str


@dataclass(frozen=True, slots=True)
class TooLarge:
    """A frame over the payload limit: the requestor's socket ends (``maxPayload``, ~352)."""

    size: int
    limit: int


Event = Acked | StrayAck | Command | Invalid | TooLarge


# -- socket fate ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dropped:
    """What a closed socket means.

    Attributes:
        code: the close code.
        graceful: a 1000 close: nothing more is sent, no reconnect.
        reconnect: jambonz schedules a reconnect.
        abandoned: requests failed now ("abandoning msgid … since socket is closed").
        in_flight: requests still waiting for an ack (they fail when their timer fires).
    """

    code: int | None
    graceful: bool
    reconnect: bool
    abandoned: tuple[Request, ...]
    in_flight: tuple[Request, ...]


@dataclass(frozen=True, slots=True)
class Expired:
    """A response timer fired (``timeout from far end for msgid …``, ~266–270).

    ``reconnect_failed``: a ``session:reconnect`` was waiting; its queue is
    dropped (``rejectQueuedMsgs``, ~304) and jambonz hangs the call up
    (``reconnect-error``; ``call-session.js`` ~2258–2274).
    """

    request: Request
    reconnect_failed: bool = False
    dropped: tuple[Frame, ...] = ()


def hook_params(fragment: str) -> tuple[int, frozenset[str]]:
    """``#rc=..&rp=..`` of a hook URL: (max reconnects, retry policies) (ws-requestor.js ~52–56).

    ``rc``: ``min(|parseInt(rc)| || 5, 5)``; ``rp``: comma-separated, default ``ct``.
    """
    params = dict(p.split("=", 1) for p in fragment.split("&") if "=" in p)
    try:
        rc = abs(int(params.get("rc", str(MAX_RECONNECTS)))) or MAX_RECONNECTS
    except ValueError:
        rc = MAX_RECONNECTS
    policies = frozenset(p.strip() for p in params.get("rp", "ct").split(",") if p.strip())
    return min(rc, MAX_RECONNECTS), policies


def invalid_message_data(event: Invalid, *, content_limit: int | None = None) -> dict[str, Any]:
    """The ``jambonz:error`` data answering an invalid frame (ws-requestor.js ~518–522)."""
    content = event.content if content_limit is None else event.content[:content_limit]
    return {"msg": "InvalidMessage", "details": event.details, "content": content}


class FeatureProtocol:
    """One call's requestor: requests out, acks and commands in (see the module doc).

    Args:
        limit: the largest frame the app may send (``JAMBONES_WS_MAX_PAYLOAD``).
        max_reconnects: successful opens after which a drop is final (``#rc``).
        msgids: where msgids come from (default: fresh short-uuid-like ids).
    """

    def __init__(
        self,
        *,
        limit: int = MAX_APP_FRAME,
        max_reconnects: int = MAX_RECONNECTS,
        msgids: Callable[[], str] = new_msgid,
    ) -> None:
        self.limit = limit
        self.max_reconnects = max_reconnects
        self.state = LinkState.CONNECTING
        self.connections = 0  #: successful opens so far
        self.backoff = FIRST_BACKOFF  #: seconds before the next retry or reconnect (never reset)
        self.call_sid: str | None = None  #: set by session:new (the envelope's call_sid)
        self._msgids = msgids
        self._in_flight: OrderedDict[str, Request] = OrderedDict()  # wire msgid → request
        self._finished: OrderedDict[str, tuple[str, Request]] = OrderedDict()  # msgid → (why, request)
        self._initial: str | None = None  # wire msgid of an unacked session:new (``_initMsgId``)
        self._session_data: dict[str, Any] | None = None  # for session:reconnect
        self._queued: list[Frame] = []
        self._outbox: list[Frame] = []

    # -- state ------------------------------------------------------------------------

    def pending(self) -> list[Request]:
        """Requests waiting for an ack, oldest first."""
        return list(self._in_flight.values())

    def is_pending(self, msgid: str) -> bool:
        return msgid in self._in_flight

    @property
    def opening_unacked(self) -> bool:
        """True while a ``session:new`` (or the reconnect standing in for it) waits for its ack."""
        return self._initial is not None

    @property
    def queued(self) -> list[Frame]:
        """Frames waiting for a socket or for the reconnect's ack."""
        return list(self._queued)

    def frames_to_send(self) -> list[Frame]:
        """The frames to write now, in order (each is returned once)."""
        out, self._outbox = self._outbox, []
        return out

    # -- requests out -------------------------------------------------------------------

    def request(
        self,
        kind: MessageType | str,
        data: Mapping[str, Any] | None = None,
        hook: str | Mapping[str, Any] | None = None,
        *,
        b3: str | None = None,
    ) -> Frame | None:
        """Build a request; it goes to :meth:`frames_to_send` now or once the socket is ready.

        Args:
            kind: the message type (``session:new``, ``verb:hook``, ``call:status``, …).
            data: the payload (camelCase keys are snake-cased; ``session:reconnect``
                ignores it and sends the cached ``session:new`` payload).
            hook: the hook (a URL string, or an object with ``url``); kept in the
                envelope only for the types that carry one.
            b3: the tracing header.

        Returns:
            The frame, or ``None`` when the socket was closed gracefully (jambonz
            discards the request; awaiting it yields nothing).

        Raises:
            ValueError: ``kind`` is not a type jambonz sends.
        """
        mtype = _message_type(kind)
        if self.state is LinkState.CLOSED:
            return None
        payload: dict[str, Any] = snake_keys(dict(data)) if data else {}
        if mtype is MessageType.SESSION_NEW:
            sid = payload.get("call_sid")
            self.call_sid = sid if isinstance(sid, str) else None
        if mtype in (MessageType.SESSION_NEW, MessageType.SESSION_ADULTING):
            self._session_data = payload
        if mtype is MessageType.SESSION_RECONNECT:
            payload = dict(self._session_data or {})
        msgid = self._msgids()
        message: dict[str, Any] = {"type": mtype.value, "msgid": msgid}
        if self.call_sid is not None:
            message["call_sid"] = self.call_sid
        url = hook.get("url") if isinstance(hook, Mapping) else hook
        hook_url = url if isinstance(url, str) and mtype in HOOKED else None
        if hook_url is not None:
            message["hook"] = hook_url
        message["data"] = payload
        if b3 is not None:
            message["b3"] = b3
        request = Request(msgid, mtype, hook_url)
        stands_in = None
        if mtype is MessageType.SESSION_RECONNECT and self._initial is not None:
            # the unacked session:new is re-keyed to the reconnect (~245–252): its ack brings the verbs
            stands_in = self._initial
            opening = self._in_flight.pop(stands_in, None)
            if opening is not None:  # timed out already: the map holds undefined, its ack is unknown
                self._in_flight[msgid] = opening
            self._initial = msgid
        elif mtype.needs_ack:
            self._in_flight[msgid] = request
            if mtype is MessageType.SESSION_NEW:
                self._initial = msgid
        frame = Frame(message, encode(message, limit=sys.maxsize), request, mtype.needs_ack, stands_in)
        if mtype is MessageType.SESSION_RECONNECT or self.state is LinkState.OPEN:
            self._outbox.append(frame)
        else:
            self._queued.append(frame)
        return frame

    # -- the socket -------------------------------------------------------------------

    def connected(self) -> Frame | None:
        """A socket opened. The first one releases the queue; a later one sends
        ``session:reconnect`` first (~367) and holds the rest until an ack (~296–313).

        Returns:
            The ``session:reconnect`` frame on a re-open, else ``None``.
        """
        if self.state is LinkState.CLOSED:
            return None
        self.connections += 1
        if self.connections == 1:
            self.state = LinkState.OPEN
            self._release()
            return None
        self.state = LinkState.RESYNC
        return self.request(MessageType.SESSION_RECONNECT)

    def next_backoff(self) -> float:
        """The wait before a connect retry or a reconnect; each call grows the next one.

        One ``backoffMs`` per requestor, shared by connect retries (~159–160) and
        reconnects (~479): doubled below 2 s, then 2 s more each time, never reset
        and never capped (0.5, 1, 2, 4, 6, 8, 10, … s).
        """
        delay = self.backoff
        self.backoff = delay * 2 if delay < 2.0 else delay + 2.0
        return delay

    def connection_lost(self, code: int | None) -> Dropped:
        """The socket closed with ``code`` (``_onClose``, ``_onSocketClosed``; ~422–459)."""
        if self.state is LinkState.CLOSED:
            return Dropped(code, True, False, (), tuple(self._in_flight.values()))
        if code == 1000:
            self.state = LinkState.CLOSED  # pending requests are not cleared: they time out (~429)
            self._queued.clear()
            return Dropped(code, True, False, (), tuple(self._in_flight.values()))
        self.state = LinkState.DOWN
        reconnect = 0 < self.connections < self.max_reconnects
        abandoned: tuple[Request, ...] = ()
        if reconnect and self._initial is None:
            abandoned = self._abandon()
        return Dropped(code, False, reconnect, abandoned, tuple(self._in_flight.values()))

    def close(self) -> tuple[Request, ...]:
        """jambonz closes the socket itself (the call ended, or it rejects the call; ~325–339).

        Nothing is sent after it, there is no reconnect; the requests in flight
        are abandoned unless ``session:new`` is unacked (~393). Returns them.
        """
        if self.state is LinkState.CLOSED:
            return ()
        self.state = LinkState.CLOSED
        self._queued.clear()
        abandoned = self._abandon() if self._initial is None else ()
        self._in_flight.clear()
        return abandoned

    def expire(self, msgid: str) -> Expired | None:
        """The response timer of ``msgid`` fired (~266–270); ``None`` if it is not in flight
        under that msgid (answered, abandoned, or re-keyed to a reconnect: its timer
        still looks up the old msgid and finds nothing)."""
        request = self._in_flight.pop(msgid, None)
        if request is None:
            return None
        self._finish(msgid, "late", request)
        if self.state is not LinkState.RESYNC:
            return Expired(request)
        # any failure rejects the pending reconnect (~286–288): the queue is dropped, the call hangs up
        dropped = tuple(self._queued)
        self._queued.clear()
        self.state = LinkState.OPEN
        return Expired(request, reconnect_failed=True, dropped=dropped)

    # -- frames in ------------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> list[Event]:
        """Take one frame from the app (text; binary is parsed as text, as jambonz does).

        Returns:
            One event: :class:`Acked`, :class:`StrayAck`, :class:`Command`,
            :class:`Invalid` (answer with ``jambonz:error``) or :class:`TooLarge`
            (end the socket). An ack while a reconnect waits releases the queue
            (:meth:`frames_to_send`).
        """
        size = len(frame) if isinstance(frame, bytes) else _utf8_size(frame)
        if size > self.limit:
            return [TooLarge(size, self.limit)]
        # ws-requestor.js ~483 tests ``this.isBinary`` (always undefined): binary frames are parsed too
        text = frame.decode("utf-8", errors="replace") if isinstance(frame, bytes) else frame
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            return [Invalid(f"frame is not JSON ({exc.msg} at char {exc.pos})", text)]
        except (RecursionError, ValueError) as exc:
            return [Invalid(f"frame cannot be decoded as JSON ({type(exc).__name__})", text)]
        if obj is None:
            return [Invalid("Cannot destructure the frame: it is null", text)]
        fields: dict[str, Any] = obj if isinstance(obj, dict) else {}
        kind = fields.get("type")
        if not _truthy(kind):
            return [Invalid("type property not supplied", text)]
        if kind == "ack":
            msgid = fields.get("msgid")
            if not _truthy(msgid):
                return [Invalid("msgid not supplied", text)]
            return [self._ack(msgid, fields)]
        if kind == "command":
            return [self._command(fields, text)]
        return [Invalid(f"invalid type property: {_js_text(kind)}", text)]

    # -- internals ------------------------------------------------------------------------

    def _ack(self, msgid: Any, fields: dict[str, Any]) -> Event:
        data = fields.get("data")
        self._initial = None  # any ack clears the pending-session:new mark (~538)
        key = msgid if isinstance(msgid, str) else _js_text(msgid)
        request = self._in_flight.pop(key, None) if isinstance(msgid, str) else None
        if request is None:
            why, earlier = self._finished.get(key, ("unknown", None))
            return StrayAck(key, data, why, earlier, fields)
        self._finish(key, "duplicate", request)
        if self.state is LinkState.RESYNC:  # any success resolves the reconnect wait (~282–284)
            self.state = LinkState.OPEN
            self._release()
        return Acked(key, data, request, fields)

    def _command(self, fields: dict[str, Any], text: str) -> Event:
        name = fields.get("command")
        if not _truthy(name):
            return Invalid("command property not supplied", text)
        name = name if isinstance(name, str) else _js_text(name)
        data = fields.get("data")
        if not _truthy(data) and name not in NO_DATA_COMMANDS:
            return Invalid("data property not supplied", text)
        leg = fields.get("callSid")
        leg = leg if _truthy(leg) and isinstance(leg, str) else None
        queue = fields.get("queueCommand", False)
        return Command(
            name=name,
            data=data,
            call_sid=leg or self.call_sid,
            leg=leg,
            queue=_truthy(queue),
            tool_call_id=fields.get("tool_call_id"),
            msgid=fields.get("msgid"),
            message=fields,
        )

    def _abandon(self) -> tuple[Request, ...]:
        abandoned = tuple(self._in_flight.values())
        for msgid, request in self._in_flight.items():
            self._finish(msgid, "abandoned", request)
        self._in_flight.clear()
        return abandoned

    def _release(self) -> None:
        self._outbox.extend(self._queued)
        self._queued.clear()

    def _finish(self, msgid: str, why: str, request: Request) -> None:
        self._finished[msgid] = (why, request)
        while len(self._finished) > _REMEMBERED:
            self._finished.popitem(last=False)


def _message_type(kind: MessageType | str) -> MessageType:
    if isinstance(kind, MessageType):
        return kind
    try:
        return MessageType(kind)
    except ValueError:
        raise ValueError(f"{kind!r} is not a message type jambonz sends") from None


def _truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON value (``assert.ok``): null, false, 0 and "" are false."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    return True


def _js_text(value: Any) -> str:
    """A JSON value in an error message (strings as they are)."""
    return value if isinstance(value, str) else json.dumps(value)


def _utf8_size(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", errors="surrogatepass"))
