"""What keeps a long-running app server alive: descriptors, half-open sockets, credentials.

- :func:`raise_descriptor_limit` lifts the soft ``RLIMIT_NOFILE`` to the hard
  one at start (1,024 is the usual soft default: about 1,000 calls), and
  :func:`connection_cap` leaves headroom under it for log files, the
  simulator's sockets and the handshakes in progress.
- :class:`HandshakeGuard` closes TCP connections that never send their HTTP
  request (half-open upgrades, port scanners): jambonz sends its upgrade at
  once and gives up itself after 1.5 s.
- :class:`AcceptFloodFilter` turns asyncio's "socket.accept() out of system
  resource" error, logged for every failed accept while descriptors run out,
  into one warning per interval with a count.
- :func:`basic_auth_ok` checks the ``Authorization: Basic`` header jambonz
  sends to a WebSocket app configured with a username and password, in
  constant time.
- :func:`unlink_socket` breaks the reference cycle aiohttp leaves behind each
  WebSocket with a heartbeat, so a closed socket is freed at once rather than
  by a full garbage collection.

Loop thread only, except :func:`raise_descriptor_limit` and :func:`basic_auth_ok` (any thread).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("jambonz_lab.server")

__all__ = [
    "AcceptFloodFilter",
    "HandshakeGuard",
    "basic_auth_ok",
    "connection_cap",
    "raise_descriptor_limit",
    "unlink_socket",
]

#: descriptors kept free under the soft limit for everything that is not a call's socket
HEADROOM = 128


def raise_descriptor_limit() -> int | None:
    """Raise the soft open-files limit to the hard limit; returns the soft limit now (None: unknown)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError) as exc:
            log.info("cannot raise the open-files limit from %s to %s: %s", soft, want, exc)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def connection_cap(requested: int | None, soft_limit: int | None) -> int | None:
    """The WebSocket connections to accept at once: ``requested``, else what the descriptors allow.

    Call sockets and listen/stream audio sockets count alike (a call with a ``listen`` holds two).
    """
    if requested is not None:
        return requested
    if soft_limit is None:
        return None
    return max(16, soft_limit - HEADROOM)


def basic_auth_ok(header: str | None, username: str, password: str) -> bool:
    """True when ``header`` is ``Basic base64(username:password)``; constant time in the secret."""
    if not header:
        return False
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = f"{username}:{password}".encode()
    return hmac.compare_digest(given, expected)


class HandshakeGuard:
    """Closes connections that have not sent a request ``timeout`` seconds after they were seen.

    :meth:`sweep` is called every half second or so with the server's live
    request handlers; :meth:`greeted` marks one whose request arrived.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._first_seen: dict[Any, float] = {}
        self._greeted: set[Any] = set()
        #: connections closed for never sending a request
        self.closed = 0

    def greeted(self, handler: Any) -> None:
        self._greeted.add(handler)
        self._first_seen.pop(handler, None)

    def sweep(self, handlers: Iterable[Any], now: float) -> int:
        """Close the silent ones; returns how many were closed now."""
        live = set(handlers)
        self._greeted &= live
        for gone in [h for h in self._first_seen if h not in live]:
            del self._first_seen[gone]
        closed = 0
        for handler in live - self._greeted:
            first = self._first_seen.setdefault(handler, now)
            if now - first >= self.timeout:
                transport = handler.transport
                if transport is not None:
                    transport.abort()
                del self._first_seen[handler]
                closed += 1
        self.closed += closed
        return closed


class AcceptFloodFilter:
    """A loop exception handler that reports running out of descriptors once per ``interval``."""

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.count = 0
        self._last = 0.0
        self._since = 0

    def __call__(self, running: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != self.MESSAGE:
            running.default_exception_handler(context)
            return
        self.count += 1
        self._since += 1
        now = time.monotonic()
        if now - self._last >= self.interval:
            exc = context.get("exception")
            log.warning(
                "out of file descriptors: %d connection(s) could not be accepted in the last %.0f s (%s); "
                "raise `ulimit -n` or lower max_connections",
                self._since,
                self.interval if self._last else 0,
                exc,
            )
            self._last = now
            self._since = 0


def unlink_socket(request: Any) -> None:
    """Drop the heartbeat callback aiohttp leaves on a closed WebSocket's connection.

    With ``heartbeat`` set, ``WebSocketResponse.prepare`` gives the connection's protocol
    (``request.protocol``) a callback that is a bound method of the response, and the response
    holds the request, which holds the protocol. aiohttp (3.14) never clears it, not even in
    ``connection_lost``, so each WebSocket left a cycle of about 28 objects (the handler, its
    transport and socket, the request, the response, its reader and writer) that only a full
    garbage collection frees, and a full collection walks every tracked object of the process
    with the GIL held. Call it when the socket's handler is done reading; the callback only
    resets the heartbeat on incoming data, which no longer matters then. Loop thread only.
    """
    protocol = getattr(request, "protocol", None)
    if getattr(protocol, "_data_received_cb", None) is not None:
        protocol._data_received_cb = None  # type: ignore[union-attr]
