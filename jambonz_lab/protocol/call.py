"""The app side of one jambonz call, sans I/O.

:class:`CallProtocol` keeps what the feature server expects from the app for
one call: which msgids still wait for an ack, whether the opening message
(``session:new`` and friends) has been answered, what to hold while the socket
is down. It takes parsed :class:`~jambonz_lab.protocol.messages.Message`
objects and intents (send, reply, command) and returns the frames to write, as
:class:`Outgoing` objects, in order. It never reads a clock and never touches a
socket; the I/O layer writes the frames, runs the timers and calls back.

Typical use by an I/O layer::

    call, out = CallProtocol.open(first_message)
    write(out)
    for msg in messages:
        call.receive(msg)            # remembers msgids awaiting an ack
    write(call.send(verbs))          # ack of session:new, later a redirect command
    write(call.reply(msgid, verbs))  # ack of that hook
    call.connection_lost(1006)       # pending acks are abandoned, sends are held
    write(call.reconnect(reconnect_message))

Rules (protocol doc §1.5, §1.6, §3, §7):

* the first :meth:`~CallProtocol.send` acks the opening message; each later
  one becomes ``{"type":"command","command":"redirect","queueCommand":
  not exec_immediate,"data":[…]}``; a send with nothing queued after the
  opening ack sends nothing;
* every msgid is tracked on its own, so concurrent hooks each get their ack;
* commands issued before the opening ack, or while the socket is down, are
  held; after the opening ack they stay held (state ``STARTING``) until the
  next frame jambonz sends on the call, or until the I/O layer calls
  :meth:`~CallProtocol.settle` after a short delay. The feature server handles
  every frame of one socket read before it creates the call session and
  starts listening for commands, so a command that reached it in the same
  read as the ack would be dropped (feature-server 0.9.8 ``ws-requestor.js``
  emits ``command`` while parsing a read; ``CallSession`` subscribes only once
  the ``session:new`` request resolved). The first frame after the ack — the
  ``call:status`` ``trying`` an inbound call session sends as it starts —
  proves the session listens;
* ``session:adulting`` is acked at once (jambonz ignores its content);
* a call served over HTTP webhooks (``socket=False``) has no socket for
  commands: each hook's reply is the HTTP response body. There ``send()``
  answers the newest hook still waiting, and a send with no hook waiting, or
  any command, raises :exc:`~jambonz_lab.exceptions.NoSocket`.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import AlreadyReplied, NoPendingHook, NoSocket, ProtocolError, SessionClosed
from .messages import MAX_APP_FRAME, Message, MessageType, encode

__all__ = ["AckedBy", "CallProtocol", "CallState", "Outgoing", "Pending", "ack_message"]

_DONE_KEPT = 512  # how many answered msgids to remember for AlreadyReplied


class CallState(enum.Enum):
    """Where the call stands, from the app's side."""

    OPENING = "opening"  #: the opening message waits for its ack (the first verbs)
    STARTING = "starting"  #: opening acked; jambonz may not take commands yet (they are held)
    ACTIVE = "active"  #: opening acked, jambonz listens; socket up
    DETACHED = "detached"  #: socket dropped (not 1000); jambonz should reconnect
    CLOSED = "closed"  #: the call ended or the socket closed with 1000


class AckedBy(enum.Enum):
    APP = "app"  #: a send() or reply() of the app
    AUTO = "auto"  #: jambonz_lab acked on the app's behalf
    ABANDONED = "abandoned"  #: the socket dropped before an ack; jambonz gave up on it


@dataclass(frozen=True, slots=True)
class Pending:
    """A message that waits for an ack."""

    msgid: str
    type: MessageType
    hook: str | None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One frame to write, with what it means.

    Attributes:
        message: the JSON object.
        text: its encoding (already checked against the frame limit).
        acks: the msgid this frame acks, if it is an ack.
        auto: True when jambonz_lab wrote it on the app's behalf.
        verbs: how many verbs it carries.
    """

    message: dict[str, Any]
    text: str
    acks: str | None = None
    auto: bool = False
    verbs: int = 0

    @property
    def kind(self) -> str:
        """``"ack"`` or the command name."""
        return "ack" if self.acks else str(self.message.get("command"))


def ack_message(msgid: str, verbs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ack of ``msgid`` carrying ``verbs`` (no ``data`` key when there are none)."""
    message: dict[str, Any] = {"type": "ack", "msgid": msgid}
    if verbs:
        message["data"] = [dict(v) for v in verbs]
    return message


class CallProtocol:
    """Ack bookkeeping and message building for one call (see the module doc)."""

    def __init__(self, opening: Message, *, limit: int = MAX_APP_FRAME, socket: bool = True) -> None:
        if not opening.type.opens_session:
            raise ProtocolError(f"{opening.type} cannot open a session", msgid=opening.msgid)
        self.call_sid: str | None = opening.call_sid or opening.leg_sid
        self.limit = limit
        #: False for a call served over HTTP webhooks: acks only, no commands
        self.socket = socket
        self.opening = opening
        self.state = CallState.OPENING
        self._initial: Pending | None = Pending(opening.msgid, opening.type, opening.hook)
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self._done: OrderedDict[str, tuple[AckedBy, Pending]] = OrderedDict()
        self._held: list[Outgoing] = []
        self._held_verbs: list[dict[str, Any]] | None = None  # an opening send while detached

    # -- construction -----------------------------------------------------------------

    @classmethod
    def open(
        cls, opening: Message, *, limit: int = MAX_APP_FRAME, socket: bool = True
    ) -> tuple[CallProtocol, list[Outgoing]]:
        """Start a call from the first message of a socket (``socket=False``: of an HTTP webhook call).

        Returns:
            The protocol object and the frames to write now: an immediate ack
            for ``session:adulting`` (jambonz ignores its content) and for a
            ``session:reconnect`` opening a socket for a call unknown here.
        """
        call = cls(opening, limit=limit, socket=socket)
        out: list[Outgoing] = []
        # adulting: jambonz ignores the ack's content; a reconnect of a call this app does not know
        # (it restarted): jambonz only waits for the ack, the call's verbs run on
        if opening.type in (MessageType.SESSION_ADULTING, MessageType.SESSION_RECONNECT):
            out = call._ack_initial([], auto=True)
        return call, out

    # -- state --------------------------------------------------------------------

    @property
    def opening_ack_owed(self) -> bool:
        """True until the opening message (or its reconnect stand-in) is acked."""
        return self._initial is not None

    @property
    def initial_msgid(self) -> str | None:
        return self._initial.msgid if self._initial else None

    def pending(self) -> list[Pending]:
        """Messages waiting for an ack, oldest first (the opening one included)."""
        head = [self._initial] if self._initial and self.state is not CallState.DETACHED else []
        return head + list(self._pending.values())

    def is_pending(self, msgid: str) -> bool:
        if msgid in self._pending:
            return True
        initial = self._initial
        return initial is not None and initial.msgid == msgid and self.state is not CallState.DETACHED

    def acked_by(self, msgid: str) -> AckedBy | None:
        done = self._done.get(msgid)
        return done[0] if done else None

    # -- input ---------------------------------------------------------------------

    def receive(self, msg: Message) -> list[Outgoing]:
        """Take a message received on the call's socket (not the opening one).

        Messages that need an ack are remembered until acked. A
        ``session:reconnect`` must go to :meth:`reconnect` instead.

        Returns:
            Commands held since the opening ack, now safe to write (a frame
            from jambonz after the ack shows its call session listens).
        """
        if msg.type is MessageType.SESSION_RECONNECT:
            raise ProtocolError("session:reconnect goes to reconnect()", msgid=msg.msgid)
        if msg.needs_ack:
            self._pending[msg.msgid] = Pending(msg.msgid, msg.type, msg.hook)
        if self.state is CallState.STARTING:
            return self.settle()
        return []

    def settle(self) -> list[Outgoing]:
        """Declare jambonz ready for commands (``STARTING`` → ``ACTIVE``).

        Called by :meth:`receive` on the first frame after the opening ack,
        or by the I/O layer when a short delay after writing the ack has
        passed. Returns the held commands, in order; nothing in other states.
        """
        if self.state is not CallState.STARTING:
            return []
        self.state = CallState.ACTIVE
        return self._release_held()

    def connection_lost(self, code: int | None, *, final: bool | None = None) -> list[Pending]:
        """The socket closed. ``final`` (default: ``code == 1000``) ends the call; else it detaches.

        The I/O layer knows who closed: jambonz never reconnects after closing
        a socket itself (1000, or 1001 when it rejects a call), nor after the
        app closed with 1000.

        Returns:
            The acks jambonz abandoned (it fails in-flight msgids on a drop);
            the opening ack stays owed (jambonz re-keys it to the reconnect).
        """
        abandoned = list(self._pending.values())
        for p in abandoned:
            self._remember(p, AckedBy.ABANDONED)
        self._pending.clear()
        if self.state is CallState.CLOSED:
            return abandoned
        if final is None:
            final = code == 1000
        self.state = CallState.CLOSED if final else CallState.DETACHED
        if self.state is CallState.CLOSED:
            self._held.clear()
        return abandoned

    def reconnect(self, msg: Message) -> list[Outgoing]:
        """A new socket for this call opened with ``session:reconnect``.

        If the opening ack was still owed, the reconnect's msgid takes its role
        (its ack carries the first verbs). Otherwise it is acked at once
        (jambonz ignores the ack's verbs) and held commands follow.
        """
        if msg.type is not MessageType.SESSION_RECONNECT:
            raise ProtocolError(f"{msg.type} is not a reconnect", msgid=msg.msgid)
        if self.state is CallState.CLOSED:
            raise SessionClosed("call ended; a reconnect cannot revive it", call_sid=self.call_sid)
        if self._initial is not None:
            self._initial = Pending(msg.msgid, msg.type, None)
            self.state = CallState.OPENING
            if self._held_verbs is not None:
                outs = self._ack_initial(self._held_verbs, auto=False)
                self._held_verbs = None
                return outs
            return []
        self.state = CallState.ACTIVE
        ack = self._ack(Pending(msg.msgid, msg.type, None), [], auto=True)
        return [ack, *self._release_held()]

    # -- output --------------------------------------------------------------------

    def send(self, verbs: Sequence[Mapping[str, Any]], *, exec_immediate: bool = True) -> list[Outgoing]:
        """Push verbs: the opening ack first, then ``redirect`` commands.

        Args:
            verbs: validated wire verbs.
            exec_immediate: after the opening ack, True replaces the verb
                stack now (``queueCommand: false``), False appends to it.

        Returns:
            The frames to write; empty when there is nothing to send, or when
            the socket is down (the send is held for the reconnect).

        Raises:
            FrameTooLarge: the frame is over the limit; nothing changed.
            SessionClosed: the call is over.
            NoSocket: an HTTP webhook call with no hook waiting for its answer.
        """
        self._check_open()
        if not verbs:
            return []
        if not self.socket:
            waiting = self.pending()
            if not waiting:
                raise NoSocket(
                    f"call {self.call_sid} is an HTTP webhook call and no hook is waiting for an answer; "
                    "send verbs while handling a hook, or steer the call with the REST API (lab.rest) "
                    "or serve it over WebSocket",
                    call_sid=self.call_sid,
                )
            return self.reply(waiting[-1].msgid, verbs)
        if self._initial is not None and self._held_verbs is None:
            if self.state is CallState.DETACHED:
                # held for the reconnect's ack; check the size now, while the caller can fix it
                probe = {"type": "ack", "msgid": self._initial.msgid, "data": list(verbs)}
                encode(probe, limit=self.limit, call_sid=self.call_sid)
                self._held_verbs = [dict(v) for v in verbs]
                return []
            return self._ack_initial(verbs, auto=False)
        return self.command("redirect", list(verbs), queue=not exec_immediate)

    def reply(
        self,
        msgid: str | None,
        verbs: Sequence[Mapping[str, Any]],
        *,
        auto: bool = False,
        text: str | None = None,
    ) -> list[Outgoing]:
        """Ack one msgid (``None``: the newest message still waiting).

        ``text`` is the frame already encoded from :func:`ack_message` with the
        same msgid and verbs (a worker thread checked its size); it is used as is.

        Raises:
            AlreadyReplied: that msgid was acked already.
            NoPendingHook: jambonz is not waiting for it (never sent, or
                abandoned when the socket dropped).
            ProtocolError: an empty ack for ``session:new`` (jambonz would
                reject the call with 480).
            FrameTooLarge: over the limit; nothing changed.
        """
        self._check_open()
        target = self._find(msgid)
        if self._initial is not None and target.msgid == self._initial.msgid:
            return self._ack_initial(verbs, auto=auto)
        out = self._ack(target, verbs, auto=auto, text=text)
        del self._pending[target.msgid]
        return [out]

    def pending_hook(self, msgid: str) -> bool:
        """True while ``msgid`` (a hook or the opening message) still waits for its ack."""
        return self.state not in (CallState.CLOSED, CallState.DETACHED) and self.is_pending(msgid)

    def auto_ack(self, msgid: str, verbs: Sequence[Mapping[str, Any]] = ()) -> list[Outgoing]:
        """Ack ``msgid`` on the app's behalf if it still waits; else nothing."""
        if self.state in (CallState.CLOSED, CallState.DETACHED) or not self.is_pending(msgid):
            return []
        return self.reply(msgid, verbs, auto=True)

    def command(
        self,
        name: str,
        data: Any = None,
        *,
        call_sid: str | None = None,
        queue: bool = False,
        tool_call_id: str | None = None,
    ) -> list[Outgoing]:
        """Build a ``command`` frame (held until the opening ack / reconnect).

        Args:
            name: the command (``redirect``, ``mute:status``, …).
            data: its data; omitted from the frame when ``None``.
            call_sid: the leg to act on (sent as camelCase ``callSid``).
            queue: ``queueCommand`` (meaningful for ``redirect``).
            tool_call_id: for ``llm:tool-output``.

        Raises:
            NoSocket: the call is served over HTTP webhooks (no socket to send it on).
        """
        self._check_open()
        if not self.socket:
            raise NoSocket(
                f"call {self.call_sid} is an HTTP webhook call: the {name} command needs a socket; "
                "use the REST API (lab.rest) or serve the app over WebSocket",
                call_sid=self.call_sid,
            )
        message: dict[str, Any] = {"type": "command", "command": name, "queueCommand": queue}
        if call_sid:
            message["callSid"] = call_sid
        if tool_call_id is not None:
            message["tool_call_id"] = tool_call_id
        if data is not None:
            message["data"] = data
        verbs = len(data) if name == "redirect" and isinstance(data, list) else 0
        out = Outgoing(message, encode(message, limit=self.limit, call_sid=self.call_sid), verbs=verbs)
        if self.state is not CallState.ACTIVE:
            self._held.append(out)
            return []
        return [out]

    def close(self) -> None:
        """The app closes the call's socket with 1000: nothing more is sent."""
        self.connection_lost(1000)

    # -- internals -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self.state is CallState.CLOSED:
            raise SessionClosed(
                f"call {self.call_sid} has ended; nothing more can be sent on it", call_sid=self.call_sid
            )

    def _find(self, msgid: str | None) -> Pending:
        waiting = self.pending()
        if msgid is None:
            if waiting:
                return waiting[-1]
            if self._done:
                last_id, (how, p) = next(reversed(self._done.items()))
                raise self._answered_error(last_id, how, p)
            raise NoPendingHook(
                f"no hook of call {self.call_sid} waits for a reply; use send() to push verbs",
                call_sid=self.call_sid,
            )
        for p in waiting:
            if p.msgid == msgid:
                return p
        if msgid in self._done:
            how, p = self._done[msgid]
            raise self._answered_error(msgid, how, p)
        raise NoPendingHook(
            f"jambonz is not waiting for msgid {msgid} on call {self.call_sid}",
            call_sid=self.call_sid,
            msgid=msgid,
        )

    def _answered_error(self, msgid: str, how: AckedBy, p: Pending) -> Exception:
        what = f"{p.type}" + (f" {p.hook}" if p.hook else "") + f" (msgid {msgid})"
        if how is AckedBy.ABANDONED:
            return NoPendingHook(
                f"{what} was abandoned by jambonz when the socket dropped; use send() to push verbs",
                call_sid=self.call_sid,
                msgid=msgid,
            )
        by = "automatically" if how is AckedBy.AUTO else "already"
        return AlreadyReplied(
            f"{what} was {by} acked; use send() to push more verbs", call_sid=self.call_sid, msgid=msgid
        )

    def _ack(
        self, target: Pending, verbs: Sequence[Mapping[str, Any]], *, auto: bool, text: str | None = None
    ) -> Outgoing:
        message = ack_message(target.msgid, verbs)
        if text is None:
            text = encode(message, limit=self.limit, call_sid=self.call_sid)
        self._remember(target, AckedBy.AUTO if auto else AckedBy.APP)
        return Outgoing(message, text, acks=target.msgid, auto=auto, verbs=len(verbs))

    def _ack_initial(self, verbs: Sequence[Mapping[str, Any]], *, auto: bool) -> list[Outgoing]:
        assert self._initial is not None
        if not verbs and self.opening.type is MessageType.SESSION_NEW:
            raise ProtocolError(
                "session:new must be acked with at least one verb (jambonz rejects the call with 480)",
                call_sid=self.call_sid,
                msgid=self._initial.msgid,
            )
        reconnect = self.opening.type is MessageType.SESSION_RECONNECT
        out = self._ack(self._initial, verbs, auto=auto)
        self._initial = None
        if reconnect:  # jambonz's call session exists and listens already
            self.state = CallState.ACTIVE
            return [out, *self._release_held()]
        self.state = CallState.STARTING
        return [out]

    def _release_held(self) -> list[Outgoing]:
        held, self._held = self._held, []
        return held

    def _remember(self, p: Pending, how: AckedBy) -> None:
        self._done[p.msgid] = (how, p)
        while len(self._done) > _DONE_KEPT:
            self._done.popitem(last=False)
