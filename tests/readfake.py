"""A fake jambonz that reads its socket the way the real feature server does.

``fakejambonz.FakeJambonz`` hands the test one message at a time. The real jambonz
does not: what matters for the opening of a call is *which socket read* a frame
came in. This module models that, after jambonz-feature-server 0.9.8:

* ``lib/utils/ws-requestor.js`` (~384, ~482-553): the requestor's ``ws`` socket
  parses everything one read from the socket returned and emits the frames
  one after the other, synchronously; an ack settles the pending request's
  promise (``_recvAck``), a command is emitted as a ``'command'`` event at once
  (``_recvCommand``), to whoever listens *right now*.
* ``lib/middleware.js`` (~458) awaits ``requestor.request('session:new', ...)``;
  only when that promise has settled (a microtask, i.e. after the rest of the read
  was handled) does ``app.js`` (~128) build the ``InboundCallSession``, whose
  ``CallSession`` constructor (``lib/session/call-session.js`` ~130) attaches the
  ``'command'`` listener. So a command in the same read as the ``session:new``
  ack, or in an earlier one, reaches nobody: it is silently lost.
* ``lib/session/inbound-call-session.js`` (~33-38): the constructor's first act
  is a ``call:status`` notification with ``call_status: "trying"``; it is the
  first frame jambonz sends after the ack. Outbound and other sessions send no
  such status, hence ``send_trying=False``.

:class:`ReadFake` uses the sans-I/O ``websockets.client.ClientProtocol`` over a
blocking socket, so that one read is literally one ``sock.recv(65536)``; a reader
thread handles every frame of that chunk, in order, and only then "creates the
session" if the chunk carried the ack. Commands handled before that are recorded
in :attr:`ReadFake.dropped`, later ones in :attr:`ReadFake.commands`; every read's
messages stay in :attr:`ReadFake.reads` for assertions on the chunk boundaries.

``delay_first_read`` makes the race deterministic: the reader sleeps that long
after ``session:new`` went out before its first read, so the ack and whatever the
app writes right after it wait in the kernel buffer and come in one read, as they
do when a busy jambonz gets to the socket late.

Example::

    with ReadFake(lab.url + "/", delay_first_read=0.05) as fake:
        fake.session_new()
        fake.wait_created()
        fake.wait_commands(1)
        assert fake.dropped == []
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from jambonz_lab.protocol.feature import Acked, Command, FeatureProtocol, StrayAck

SUBPROTOCOL = Subprotocol("ws.jambonz.org")
READ_SIZE = 65536
"""Bytes asked for per read (what a node ``net.Socket`` typically hands ``ws`` at once)."""

_ids = itertools.count(1)

Message = dict[str, Any]


def call_data(call_sid: str, **extra: Any) -> dict[str, Any]:
    """A ``session:new`` payload for an inbound call (``extra`` overrides fields)."""
    data: dict[str, Any] = {
        "sip": {"headers": {}, "method": "INVITE"},
        "direction": "inbound",
        "call_sid": call_sid,
        "from": "+14155550100",
        "to": "+16175550199",
        "caller_name": "Alice",
        "call_status": "trying",
        "sip_status": 100,
    }
    data.update(extra)
    return data


class ReadFake:
    """One call's socket, read one chunk at a time like jambonz's ``WsRequestor``.

    Args:
        url: ``ws://127.0.0.1:PORT/path`` of the app.
        call_sid: the call's id in every message.
        delay_first_read: seconds to wait, after sending ``session:new``, before the
            first read, so the ack and what follows it come in one chunk.
        send_trying: send ``call:status`` ``trying`` once the session exists (as
            ``InboundCallSession`` does); False models sessions that do not.
        timeout: for connecting and the handshake.

    Attributes (read them after a ``wait_*``; they are only appended to):
        reads: the messages parsed from each read, one list per ``recv()``
            (empty when it completed no text frame, e.g. the closing handshake).
        acks: ack messages by msgid.
        commands: commands that reached the (created) session, in order.
        dropped: commands that came before the session existed: lost.
        other: anything else the app sent (not an ack nor a command).
        ack_read: index in ``reads`` of the read that carried the ``session:new`` ack.
        error: what ended the reader thread, if it was not a normal close.
    """

    def __init__(
        self,
        url: str,
        call_sid: str = "call-1",
        *,
        delay_first_read: float = 0.0,
        send_trying: bool = True,
        timeout: float = 5.0,
    ) -> None:
        self.call_sid = call_sid
        self.delay_first_read = delay_first_read
        self.send_trying = send_trying
        self.reads: list[list[Message]] = []
        self.acks: dict[str, Message] = {}
        self.commands: list[Message] = []
        self.dropped: list[Message] = []
        self.other: list[Message] = []
        self.ack_read: int | None = None
        self.error: BaseException | None = None
        self.session_msgid: str | None = None
        self._created = False
        self._closing = False
        self._eof = False
        self._fragments: list[bytes] | None = None
        self._cond = threading.Condition()
        self._wlock = threading.Lock()  # the protocol object and socket writes
        self._reader: threading.Thread | None = None
        #: what jambonz makes of each frame (acks, commands, InvalidMessage); only its reading is used
        self._core = FeatureProtocol(limit=sys.maxsize)

        uri = parse_uri(url)
        self._proto = ClientProtocol(uri, subprotocols=[SUBPROTOCOL])
        self._sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
        try:
            self._handshake(timeout)
        except BaseException:
            self._sock.close()
            raise
        self._sock.settimeout(None)

    # -- connection --------------------------------------------------------------------

    def _handshake(self, timeout: float) -> None:
        self._proto.send_request(self._proto.connect())
        self._flush()
        deadline = time.monotonic() + timeout
        leftover: list[Message] = []
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("websocket handshake timed out")
            chunk = self._sock.recv(READ_SIZE)
            if not chunk:
                raise ConnectionError("connection closed during the handshake")
            self._proto.receive_data(chunk)
            events = self._proto.events_received()
            if any(isinstance(e, Response) for e in events):
                if self._proto.handshake_exc is not None:
                    raise self._proto.handshake_exc
                leftover = self._messages([e for e in events if isinstance(e, Frame)])
                break
        if leftover:  # the app spoke before anyone asked: that is a read like any other
            self._handle_read(leftover)

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the app selected."""
        return self._proto.subprotocol

    def _flush(self) -> None:
        """Write what the protocol has queued (caller holds ``_wlock`` or is alone)."""
        for data in self._proto.data_to_send():
            if data:
                self._sock.sendall(data)

    # -- sending -----------------------------------------------------------------------

    def send(self, type: str, data: dict[str, Any] | None = None, *, hook: str | None = None) -> str:
        """Send one message as ``WsRequestor.request`` shapes it; returns its msgid."""
        msgid = f"rf{next(_ids)}"
        msg: Message = {"type": type, "msgid": msgid, "call_sid": self.call_sid}
        if hook is not None:
            msg["hook"] = hook
        msg["data"] = data if data is not None else {"call_sid": self.call_sid}
        with self._wlock:
            self._proto.send_text(json.dumps(msg).encode())
            self._flush()
        return msgid

    def session_new(self, **extra: Any) -> str:
        """Send ``session:new`` (``extra`` overrides payload fields) and start reading."""
        if self._reader is not None:
            raise RuntimeError("session:new was sent already")
        self.session_msgid = self.send("session:new", call_data(self.call_sid, **extra))
        self._reader = threading.Thread(target=self._read_loop, name=f"readfake-{self.call_sid}", daemon=True)
        self._reader.start()
        return self.session_msgid

    def hook(self, hook: str, **data: Any) -> str:
        """Send a ``verb:hook`` for ``hook``; wait for its ack with :meth:`wait_ack`."""
        return self.send("verb:hook", {"call_sid": self.call_sid, **data}, hook=hook)

    def status(self, call_status: str, **data: Any) -> str:
        """Send a ``call:status`` notification."""
        return self.send("call:status", {"call_sid": self.call_sid, "call_status": call_status, **data})

    # -- reading -----------------------------------------------------------------------

    def _messages(self, frames: list[Frame]) -> list[Message]:
        """The complete text messages in ``frames`` (reassembling fragments)."""
        out: list[Message] = []
        for frame in frames:
            if frame.opcode is Opcode.TEXT:
                self._fragments = [bytes(frame.data)]
            elif frame.opcode is Opcode.CONT and self._fragments is not None:
                self._fragments.append(bytes(frame.data))
            else:  # control frames: the protocol answers pings and closes itself
                continue
            if frame.fin:
                text = b"".join(self._fragments).decode()
                self._fragments = None
                (event,) = self._core.receive(text)
                if isinstance(event, Acked | StrayAck | Command):
                    out.append(event.message)
                else:
                    out.append({"type": "<invalid>", "raw": text})
        return out

    def _handle_read(self, messages: list[Message]) -> None:
        """Handle one read's messages in order, then create the session if it was acked."""
        send_trying = False
        with self._cond:
            index = len(self.reads)
            self.reads.append(messages)
            for msg in messages:
                kind = msg.get("type")
                if kind == "ack" and isinstance(msg.get("msgid"), str):
                    self.acks[msg["msgid"]] = msg
                    if msg["msgid"] == self.session_msgid and self.ack_read is None:
                        self.ack_read = index
                elif kind == "command":
                    (self.commands if self._created else self.dropped).append(msg)
                else:
                    self.other.append(msg)
            if self.ack_read is not None and not self._created:
                self._created = True  # the promise settled: the session exists from now on
                send_trying = self.send_trying
            self._cond.notify_all()
        if send_trying:
            self.status("trying", sip_status=100, sip_reason="Trying")

    def _read_loop(self) -> None:
        try:
            if self.delay_first_read > 0:
                time.sleep(self.delay_first_read)
            while True:
                chunk = self._sock.recv(READ_SIZE)
                with self._wlock:
                    if chunk:
                        self._proto.receive_data(chunk)
                    else:
                        self._proto.receive_eof()
                    events = self._proto.events_received()
                    self._flush()  # pongs, the close handshake
                messages = self._messages([e for e in events if isinstance(e, Frame)])
                if chunk:
                    self._handle_read(messages)
                else:
                    break
        except BaseException as exc:  # noqa: B036 -- a thread must not die loudly under pytest
            if not self._closing:
                self.error = exc
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    # -- waiting -----------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 3.0, what: str = "condition") -> None:
        """Wait until ``predicate()`` (evaluated under the lock) holds; TimeoutError if not."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate() or self._eof, timeout):
                raise TimeoutError(f"waited {timeout:g} s for {what}")
            if not predicate():
                raise ConnectionError(f"socket ended before {what} (error: {self.error!r})")

    @property
    def created(self) -> bool:
        """Whether the session exists (the read carrying the ack was handled)."""
        return self._created

    def wait_created(self, timeout: float = 3.0) -> Message:
        """Wait for the ``session:new`` ack and the session; returns the ack."""
        self.wait_for(lambda: self._created, timeout, "the session:new ack")
        assert self.session_msgid is not None
        return self.acks[self.session_msgid]

    def wait_ack(self, msgid: str, timeout: float = 3.0) -> Message:
        """Wait for the ack of ``msgid``."""
        self.wait_for(lambda: msgid in self.acks, timeout, f"the ack of {msgid}")
        return self.acks[msgid]

    def wait_commands(self, n: int, timeout: float = 3.0) -> list[Message]:
        """Wait until ``n`` commands have *arrived*, handled or dropped; returns the handled ones.

        Since a command can only be dropped up to the ack's read, once the session
        exists :attr:`dropped` is final; compare it with ``[]`` after this.
        """
        self.wait_for(lambda: len(self.commands) + len(self.dropped) >= n, timeout, f"{n} command(s)")
        with self._cond:
            return list(self.commands)

    @property
    def frames_per_read(self) -> list[int]:
        """How many messages each read carried, in order."""
        with self._cond:
            return [len(r) for r in self.reads]

    # -- closing -----------------------------------------------------------------------

    def close(self, code: int = 1000, timeout: float = 2.0) -> None:
        """Close the websocket (the close handshake if possible) and the socket."""
        if self._sock.fileno() < 0:
            return
        self._closing = True
        try:
            with self._wlock:
                self._proto.send_close(code)
                self._flush()
        except Exception:  # already closed or broken: just tear down
            pass
        if self._reader is not None:
            self._reader.join(timeout)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._reader is not None:
            self._reader.join(timeout)
        self._sock.close()

    def __enter__(self) -> ReadFake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
