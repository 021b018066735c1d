"""Kazoo (2600Hz) as an event source: the blackhole websocket client and a small Crossbar REST helper.

:class:`KazooClient` keeps one socket to blackhole (``ws://HOST:5555``, any path) open on the
lab's loop, subscribes its bindings (one frame per binding: the plural ``bindings`` of the old
README does not work), records every frame and hands CHANNEL_* events to waiters. It sends
WebSocket pings for keep-alive (blackhole drops a socket after 1 h without *incoming* frames)
and, after a drop, reconnects with backoff and subscribes every binding again, with a fresh
token when it was given a ``token_provider``. Kazoo echoes a bad token in its error text: the
client redacts it in exceptions and rows.

:class:`KazooRest` lists channels and sends the channel commands of Crossbar (hangup, transfer…).

Threads: the ``a*`` coroutines run on the lab's loop thread; the plain methods are for cells
and scripts and hand the work to that loop.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from .. import loop
from ..exceptions import KazooError, PlatformError
from ..protocol import kazoo as proto
from ..records import Record
from ._source import EventSource

__all__ = ["AUTH_ERRORS", "KazooClient", "KazooRest"]

log = logging.getLogger("jambonz_lab.platforms.kazoo")

#: error replies after which reconnecting with the same credentials cannot help
AUTH_ERRORS = (
    "authentication token required",
    "failed to authenticate token",
    "invalid authentication token format",
    "unauthorized account id",
    "unauthorized wildcard account id",
)

TokenProvider = Callable[[], str | Awaitable[str]]


class KazooClient(EventSource):
    """A Kazoo blackhole websocket as an event source (``source`` column ``"kazoo"``).

    Args:
        url: the blackhole socket, e.g. ``ws://kazoo.example.com:5555`` (any path works).
        auth_token: a Crossbar token (``PUT /v2/user_auth`` or ``/v2/api_auth``).
        account_id: the account the bindings are for (the token's account or a descendant).
        bindings: subscribed at connect and again after every reconnect, e.g.
            ``("call.CHANNEL_CREATE.*", "call.CHANNEL_DESTROY.*")`` or ``("call.*.*",)``.
        token_provider: gives a fresh token (plain or async callable) at each reconnect; tokens
            expire while a socket is up, and a reconnect with the old one is refused.
        ping_interval: seconds between WebSocket pings (``None``: none; the socket is then
            dropped by blackhole after 1 h without incoming frames).
        request_timeout: seconds to wait for the reply to a request.
        record: where rows go (the lab sets it).

    Rows: ``out`` subscribe/unsubscribe/ping (``msgid`` = request_id, token redacted); ``in``
    ``reply`` (``msgid`` = request_id); ``in`` events (``type`` = CHANNEL_CREATE…, ``call_sid`` =
    ``data.call_id``, ``hook`` = ``subscribed_key``, ``payload`` = the whole frame).

    Example::

        kazoo = KazooClient("ws://127.0.0.1:5555", auth_token=token, account_id=acct,
                            bindings=["call.*.*"]).connect()
        ended = kazoo.wait_for("CHANNEL_DESTROY")
        print(ended.result().data["hangup_cause"])

    Threads: plain methods from cells and scripts (any thread but the lab's loop); ``a*``
    coroutines on the loop thread.
    """

    source: ClassVar[str] = "kazoo"

    def __init__(
        self,
        url: str,
        *,
        auth_token: str,
        account_id: str,
        bindings: Iterable[str] = (),
        token_provider: TokenProvider | None = None,
        ping_interval: float | None = 60.0,
        ping_timeout: float | None = 20.0,
        request_timeout: float = 10.0,
        open_timeout: float = 10.0,
        record: Record | None = None,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.5, 10.0),
    ) -> None:
        super().__init__(url, record=record, reconnect=reconnect, backoff=backoff)
        self.auth_token = auth_token
        self.account_id = account_id
        #: the bindings this client keeps subscribed (in order, each once)
        self.bindings: list[str] = list(dict.fromkeys(bindings))
        self.token_provider = token_provider
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.request_timeout = request_timeout
        self.open_timeout = open_timeout
        self._pending: dict[str, asyncio.Future[proto.Reply]] = {}
        self._old_tokens: list[str] = []  # redacted too, should Kazoo echo one later
        self._refused_status: int | None = None

    # -- EventSource hooks (loop thread) -----------------------------------------------------

    @property
    def url_for_log(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    async def _open(self) -> ClientConnection:
        self._refused_status = None
        try:
            # no Sec-WebSocket-Protocol: blackhole answers a handshake that has one with HTTP 400
            return await connect(
                self.url,
                compression=None,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                max_size=4 * 1024 * 1024,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            self._refused_status = status
            why = {400: " (a sub-protocol was offered?)", 429: " (too many connections from this IP)"}
            raise PlatformError(
                f"Kazoo refused the WebSocket handshake with HTTP {status}{why.get(status, '')}",
                source=self.source,
            ) from exc

    async def _ready(self, ws: ClientConnection) -> None:
        try:
            if self.token_provider is not None and self.connections > 0:
                await self._refresh_token()
            for binding in list(self.bindings):
                frame = proto.subscribe_frame(
                    binding, account_id=self.account_id, auth_token=self.auth_token, request_id=_new_id()
                )
                reply = await self._exchange(ws, frame, binding, early=True)
                self._check(reply, "subscribe", binding)
        except BaseException:
            self._fail_pending(PlatformError("the connection was set up again", source=self.source))
            await ws.close()
            raise

    def _frame(self, data: str | bytes) -> None:
        raw = proto.load_json(data)  # the frame as Kazoo sent it is what the row keeps
        frame = proto.parse_obj(raw)
        if isinstance(frame, proto.Reply):
            safe = proto.redact_frame(raw, *self._secrets())
            self.emit("in", "reply", msgid=frame.request_id, payload=safe, note=frame.status)
            future = self._pending.pop(frame.request_id or "", None)
            if future is not None and not future.done():
                future.set_result(frame)
            return
        self.emit(
            "in", frame.name, call_id=frame.call_id, hook=frame.subscribed_key, payload=raw, data=frame.data
        )

    def _closed_error(self, ws: ClientConnection) -> PlatformError | None:
        self._fail_pending(PlatformError("Kazoo closed the socket before replying", source=self.source))
        return None

    def _fatal(self, exc: BaseException) -> bool:
        if isinstance(exc, KazooError):
            return any(e.startswith(AUTH_ERRORS) for e in exc.errors) and self.token_provider is None
        return self._refused_status in (400, 401, 403)

    async def aclose(self) -> None:
        await super().aclose()
        self._fail_pending(PlatformError("the Kazoo client was closed", source=self.source))

    # -- requests (loop thread) --------------------------------------------------------------

    async def asubscribe(self, binding: str) -> list[str]:
        """Subscribe ``binding`` (kept across reconnects); returns Kazoo's ``subscribed`` list:
        every client binding of the session, one entry per internal binding (``call.*.*`` × 9).

        Raises:
            KazooError: an error reply (``errors`` verbatim but for the token).
            PlatformError: not connected, or no reply in time.
        """
        frame = proto.subscribe_frame(
            binding, account_id=self.account_id, auth_token=self.auth_token, request_id=_new_id()
        )
        reply = await self._request(frame, binding)
        self._check(reply, "subscribe", binding)
        if binding not in self.bindings:
            self.bindings.append(binding)
        subscribed = reply.data.get("subscribed")
        return [str(b) for b in subscribed] if isinstance(subscribed, list) else []

    async def aunsubscribe(self, binding: str) -> dict[str, Any]:
        """Unsubscribe ``binding``; returns ``{"unsubscribed": [...], "subscribed": [...]}``."""
        frame = proto.unsubscribe_frame(
            binding, account_id=self.account_id, auth_token=self.auth_token, request_id=_new_id()
        )
        reply = await self._request(frame, binding)
        self._check(reply, "unsubscribe", binding)
        if binding in self.bindings:
            self.bindings.remove(binding)
        return dict(reply.data)

    async def aping(self) -> dict[str, Any]:
        """Send ``action: ping``; returns the reply's ``data`` (``{"response": "pong"}`` when
        bh_ping is loaded, else the session's last reply data)."""
        frame = proto.ping_frame(auth_token=self.auth_token, request_id=_new_id())
        reply = await self._request(frame, None)
        self._check(reply, "ping", None)
        return dict(reply.data)

    async def _request(self, frame: dict[str, Any], binding: str | None) -> proto.Reply:
        loop.require_loop_thread()
        if self._ws is None:
            raise PlatformError(f"kazoo is not connected ({self.state.value})", source=self.source)
        return await self._exchange(self._ws, frame, binding, early=False)

    async def _exchange(
        self, ws: ClientConnection, frame: dict[str, Any], binding: str | None, *, early: bool
    ) -> proto.Reply:
        """Send a request and wait for its reply. ``early``: the reader task does not run yet
        (connection setup), so read the socket here, handling other frames as usual."""
        rid = str(frame["request_id"])
        future: asyncio.Future[proto.Reply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        action = str(frame["action"])
        self.awaiting = f"the reply to {action} {binding or ''}".rstrip()
        try:
            await ws.send(proto.encode(frame))
            self.emit(
                "out", action, msgid=rid, hook=binding, payload=proto.redact_frame(frame, *self._secrets())
            )
            async with asyncio.timeout(self.request_timeout):
                while early and not future.done():
                    self._safe_frame(await ws.recv())
                return await future
        except TimeoutError:
            raise PlatformError(
                f"Kazoo at {self.url_for_log} sent no reply to {action} {rid} "
                f"within {self.request_timeout:g} s",
                source=self.source,
            ) from None
        finally:
            self._pending.pop(rid, None)

    def _check(self, reply: proto.Reply, action: str, binding: str | None) -> None:
        if reply.ok:
            return
        errors = [proto.redact(e, *self._secrets()) for e in reply.errors] or [f"status {reply.status}"]
        what = f"{action} {binding!r}" if binding else action
        raise KazooError(
            f"Kazoo refused {what}: {'; '.join(errors)}", errors=errors, request_id=reply.request_id
        )

    async def _refresh_token(self) -> None:
        assert self.token_provider is not None
        token = self.token_provider()
        if inspect.isawaitable(token):
            token = await token
        if not isinstance(token, str) or not token:
            raise PlatformError("token_provider gave no token", source=self.source)
        if token != self.auth_token:
            self._old_tokens.append(self.auth_token)
            self.auth_token = token
        self.emit("lab", "token-refreshed", note="a fresh auth token for the new connection")

    def _secrets(self) -> tuple[str, ...]:
        return (self.auth_token, *self._old_tokens)

    def _fail_pending(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning when nobody waits

    # -- cells -------------------------------------------------------------------------------

    def subscribe(self, binding: str, timeout: float | None = None) -> list[str]:
        """Subscribe from a cell (see :meth:`asubscribe`)."""
        return loop.submit(self.asubscribe(binding)).result(timeout or self.request_timeout + 5)

    def unsubscribe(self, binding: str, timeout: float | None = None) -> dict[str, Any]:
        """Unsubscribe from a cell (see :meth:`aunsubscribe`)."""
        return loop.submit(self.aunsubscribe(binding)).result(timeout or self.request_timeout + 5)

    def ping(self, timeout: float | None = None) -> dict[str, Any]:
        """Ping from a cell (see :meth:`aping`)."""
        return loop.submit(self.aping()).result(timeout or self.request_timeout + 5)


def _new_id() -> str:
    return secrets.token_hex(16)


class KazooRest:
    """A few Crossbar calls on channels (``X-Auth-Token``), on ``aiohttp``.

    Example::

        rest = KazooRest("http://kazoo.example.com:8000", token)
        rest.channels(acct)                                  # the account's active channels
        rest.channel_command(acct, uuid, "hangup")           # POST {"data":{"action":"hangup"}}
        rest.channel_command(acct, uuid, "hangup", metaflow=True)  # PUT metaflow module hangup
        rest.close()

    Both command forms need Kazoo's Konami Pro and metaflows enabled on the call.

    Threads: plain methods from cells and scripts; ``a*`` coroutines on the lab's loop.
    """

    def __init__(self, base_url: str, auth_token: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth_token = auth_token
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        loop.require_loop_thread()
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        headers = {"X-Auth-Token": self.auth_token, "Accept": "application/json"}
        async with self._session.request(method, self.base_url + path, json=body, headers=headers) as resp:
            text = await resp.text()
            try:
                envelope = json.loads(text) if text else {}
            except json.JSONDecodeError:
                envelope = {"message": text[:200]}
            if resp.status == 401:
                raise PlatformError(
                    f"Kazoo answered {method} {path} with 401 invalid_credentials: the auth token is "
                    "missing, wrong or expired (get a new one with PUT /v2/user_auth or /v2/api_auth)",
                    source="kazoo",
                )
            if resp.status >= 300:
                message = envelope.get("message") if isinstance(envelope, dict) else None
                raise PlatformError(
                    f"Kazoo answered {method} {path} with {resp.status} {message or resp.reason}",
                    source="kazoo",
                )
            return envelope

    async def achannels(self, account_id: str) -> list[dict[str, Any]]:
        """``GET /v2/accounts/{account_id}/channels``: the active channels (``uuid``, ``direction``,
        ``answered``, ``timestamp``…)."""
        envelope = await self._call("GET", f"/v2/accounts/{account_id}/channels")
        data = envelope.get("data") if isinstance(envelope, dict) else None
        return [c for c in data if isinstance(c, dict)] if isinstance(data, list) else []

    async def achannel_command(
        self, account_id: str, uuid: str, action: str = "hangup", *, metaflow: bool = False, **data: Any
    ) -> dict[str, Any]:
        """Act on a channel: ``POST {"data":{"action":…, **data}}`` (transfer, hangup, break,
        callflow, intercept), or with ``metaflow=True`` ``PUT {"action":"metaflow",
        "data":{"data":{"module": action, **data}}}``. Returns Kazoo's response envelope."""
        path = f"/v2/accounts/{account_id}/channels/{uuid}"
        if metaflow:
            body = {"action": "metaflow", "data": {"data": {"module": action, **data}}}
            result = await self._call("PUT", path, body)
        else:
            result = await self._call("POST", path, {"data": {"action": action, **data}})
        return result if isinstance(result, dict) else {"data": result}

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def channels(self, account_id: str) -> list[dict[str, Any]]:
        """See :meth:`achannels` (cells)."""
        return loop.submit(self.achannels(account_id)).result(self.timeout + 5)

    def channel_command(
        self, account_id: str, uuid: str, action: str = "hangup", *, metaflow: bool = False, **data: Any
    ) -> dict[str, Any]:
        """See :meth:`achannel_command` (cells)."""
        coro = self.achannel_command(account_id, uuid, action, metaflow=metaflow, **data)
        return loop.submit(coro).result(self.timeout + 5)

    def close(self) -> None:
        loop.submit(self.aclose()).result(self.timeout + 5)

    def __repr__(self) -> str:
        return f"<KazooRest {self.base_url}>"
