"""Wazo's event feed (wazo-websocketd) as a jambonz_lab event source, and a little wazo-calld.

:class:`WazoClient` gets a token from wazo-auth (or uses the one given), opens
``/api/websocketd/?token=…&version=2``, waits for ``init``, subscribes, sends ``start`` and
records every event. It renews the token before it expires (and when the server announces
``auth_session_expire_soon``), reconnects with a fresh token after a drop, and drops duplicate
deliveries. :class:`WazoCalld` places and hangs up calls as the user (``/users/me/calls``).

Rows (``source`` ``"wazo"``):

* ``out`` ``op:subscribe`` / ``op:start`` / ``op:token`` (the token redacted) / ``op:ping``;
* ``in`` ``op:init`` / ``op:subscribe`` / ``op:start`` / ``op:token`` / ``op:pong`` (control);
* ``in`` ``<event name>`` (``call_created`` …): ``call_id`` = ``data.call_id``, payload = the
  bus body, ``data`` = the body's ``data``;
* ``lab`` ``token`` (a token was issued; never the token itself), ``renew-failed``,
  ``duplicate``, plus the base's ``open`` / ``dropped`` / ``reconnect`` / ``bad-frame`` ….

Threads: the plain methods are for cells and scripts; the ``a*`` coroutines run on the lab's
loop (see :mod:`jambonz_lab.loop`).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import logging
import ssl as ssl_module
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .. import loop
from ..exceptions import PlatformError, WazoClosed
from ..protocol import wazo as proto
from ..records import Record
from ._source import EventSource

__all__ = ["WazoCalld", "WazoClient"]

log = logging.getLogger("jambonz_lab.platforms.wazo")

#: how many recent event keys are remembered to drop duplicates
DEDUP_WINDOW = 2048


def _split_url(url: str) -> tuple[str, str]:
    """(HTTP base ``scheme://host:port``, websocketd URL without a query) from either form."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "ws", "wss"):
        raise ValueError(
            f"give Wazo's base URL (https://HOST) or its websocketd URL (wss://HOST/…), not {url!r}"
        )
    secure = scheme in ("https", "wss")
    http = urlunsplit(("https" if secure else "http", parts.netloc, "", "", ""))
    if scheme in ("ws", "wss"):
        path = parts.path or "/"
    else:
        path = parts.path.rstrip("/") + "/api/websocketd/"
    ws = urlunsplit(("wss" if secure else "ws", parts.netloc, path, "", ""))
    return http, ws


def _http_error(what: str, status: int, text: str) -> PlatformError:
    detail = " ".join(text.split())[:200]
    return PlatformError(f"{what} answered HTTP {status}" + (f": {detail}" if detail else ""), source="wazo")


class WazoClient(EventSource):
    """wazo-websocketd events as rows and :class:`~jambonz_lab.platforms.PlatformEvent` s.

    Args:
        url: Wazo's base URL (``https://HOST``: auth at ``/api/auth/0.1/token``, websocketd at
            ``/api/websocketd/``) or the websocketd URL itself (``wss://HOST/api/websocketd/``;
            auth on the same host).
        token: a wazo-auth token with the ``websocketd`` ACL (and ``events.…`` ACLs for the events).
        username, password: wazo-auth credentials; used to get (and renew) tokens when given.
        expiration: seconds of validity asked for each token.
        events: event names to subscribe to (``"*"``: everything the token may see).
        version: websocketd protocol version (2; 1 is accepted but has no pong and no late acks).
        record: where rows go (a lab sets it in ``lab.watch``).
        ssl: an ``ssl.SSLContext`` for ``https``/``wss`` (Wazo's default certificate is self-signed:
            trust its CA, or pass an unverified context knowingly).
        renew_at: renew the token after this share of its lifetime.

    Example::

        wazo = WazoClient("https://wazo.example", username="alice", password="secret")
        wazo.connect()
        ended = wazo.wait_for("call_ended")
        print(ended.result().data["reason_code"])
        wazo.close()

    Threads: ``connect`` / ``close`` / ``ping`` / ``wait_for`` from cells and scripts; the rest
    lives on the lab's loop.
    """

    source = "wazo"

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        expiration: int = 3600,
        events: Iterable[str] = ("*",),
        version: int = 2,
        record: Record | None = None,
        ssl: ssl_module.SSLContext | None = None,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.5, 10.0),
        renew_at: float = 0.8,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
    ) -> None:
        self.http_url, self.ws_url = _split_url(url)
        super().__init__(self.ws_url, record=record, reconnect=reconnect, backoff=backoff)
        if token is None and not (username and password is not None):
            raise ValueError("give token= (with the websocketd ACL) or username= and password=")
        if version not in (1, 2):
            raise ValueError(f"version must be 1 or 2, not {version!r}")
        self.token = token
        self.username = username
        self._password = password
        self.expiration = expiration
        self.events = tuple(events)
        self.version = version
        self.ssl = ssl
        self.renew_at = renew_at
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        #: the current token's metadata (session_uuid, utc_expires_at …) when we asked for it
        self.token_info: dict[str, Any] = {}
        #: events delivered twice and dropped; tokens renewed over an open socket
        self.duplicates = 0
        self.renewals = 0
        self._recent: collections.OrderedDict[tuple[Any, Any, Any], None] = collections.OrderedDict()
        self._pongs: dict[str, asyncio.Future[str]] = {}
        self._renew_task: asyncio.Task[None] | None = None
        self._token_used = False  # a token that served a connection is replaced on the next one
        self._refused: PlatformError | None = None

    # -- recording ------------------------------------------------------------------------------

    @property
    def url_for_log(self) -> str:
        """The websocketd URL as recorded: the version, never the token."""
        return f"{self.ws_url}?version={self.version}"

    @property
    def has_credentials(self) -> bool:
        return bool(self.username) and self._password is not None

    async def _out(self, obj: dict[str, Any], text: str) -> None:
        await self._send(text)
        self.emit("out", f"op:{obj['op']}", payload=obj)

    # -- auth ---------------------------------------------------------------------------------------

    async def afetch_token(self) -> str:
        """Ask wazo-auth for a fresh token (``POST /api/auth/0.1/token``, Basic auth); keep and return it."""
        if not self.has_credentials:
            raise PlatformError("no username/password to ask wazo-auth for a token", source="wazo")
        url = f"{self.http_url}/api/auth/0.1/token"
        basic = base64.b64encode(f"{self.username}:{self._password}".encode()).decode()
        body = {"expiration": self.expiration, "backend": "wazo_user"}
        timeout = aiohttp.ClientTimeout(total=self.open_timeout)
        self.awaiting = f"a token from wazo-auth ({url})"
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(
                    url, json=body, headers={"Authorization": f"Basic {basic}"}, ssl=self._http_ssl()
                ) as response,
            ):
                text = await response.text()
                if response.status == 401:
                    error = PlatformError(
                        f"wazo-auth refused the credentials of {self.username!r} (HTTP 401): check the "
                        "username and password",
                        source="wazo",
                    )
                    self._refused = error
                    raise error
                if response.status >= 300:
                    raise _http_error("wazo-auth POST /token", response.status, text)
                data = json.loads(text)["data"]
        except aiohttp.ClientError as exc:
            raise PlatformError(f"could not reach wazo-auth at {url}: {exc}", source="wazo") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise PlatformError(
                f"wazo-auth answered a token without data.token: {exc}", source="wazo"
            ) from exc
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str):
            raise PlatformError("wazo-auth answered a token without data.token", source="wazo")
        self.token = token
        self.token_info = {k: v for k, v in data.items() if k != "token"}
        self.emit(
            "lab",
            "token",
            note=f"token issued, expires at {data.get('utc_expires_at')} UTC",
            payload={"session_uuid": data.get("session_uuid"), "utc_expires_at": data.get("utc_expires_at")},
        )
        return token

    def _http_ssl(self) -> ssl_module.SSLContext | bool:
        return self.ssl if self.ssl is not None else True

    def _lifetime(self) -> float | None:
        issued = proto.parse_utc(self.token_info.get("utc_issued_at"))
        expires = proto.parse_utc(self.token_info.get("utc_expires_at"))
        if expires is None:
            return None
        if issued is None:
            return max(expires - time.time(), 0.0)
        return max(expires - issued, 0.0)

    def _schedule_renewal(self, delay: float | None = None) -> None:
        """Renew after ``delay`` s (default: ``renew_at`` of the token's lifetime); replaces a pending one."""
        if self._renew_task is not None and self._renew_task is not asyncio.current_task():
            self._renew_task.cancel()
        self._renew_task = None
        if delay is None:
            lifetime = self._lifetime()
            if lifetime is None:
                return
            delay = max(lifetime * self.renew_at, 0.05)
        if not self.has_credentials:
            return
        self._renew_task = asyncio.get_running_loop().create_task(self._renew_later(delay))

    async def _renew_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._renew()

    async def _renew(self) -> None:
        try:
            token = await self.afetch_token()
            await self._out({"op": "token", "data": {"token": "<redacted>"}}, proto.op_token(token))
            self.renewals += 1
        except (PlatformError, OSError, ConnectionClosed) as exc:
            self.emit("lab", "renew-failed", note=f"{type(exc).__name__}: {exc}")
            return
        self._schedule_renewal()

    async def arenew(self) -> None:
        """Get a fresh token now and hand it to the server with ``op:token`` (loop thread)."""
        if self._renew_task is not None:
            self._renew_task.cancel()
            self._renew_task = None
        await self._renew()

    # -- EventSource hooks ---------------------------------------------------------------------

    async def _open(self) -> ClientConnection:
        if self.has_credentials and (self.token is None or self._token_used):
            await self.afetch_token()
        assert self.token is not None
        url = f"{self.ws_url}?token={quote(self.token, safe='')}&version={self.version}"
        kwargs: dict[str, Any] = {}
        if self.ws_url.startswith("wss:") and self.ssl is not None:
            kwargs["ssl"] = self.ssl
        return await connect(
            url,
            compression=None,
            open_timeout=self.open_timeout,
            ping_interval=self.ping_interval,
            max_size=2**24,
            **kwargs,
        )

    async def _recv_control(self, ws: ClientConnection, want: str) -> None:
        """Read frames until the control frame ``want`` (setup only: no events flow before start)."""
        deadline = asyncio.get_running_loop().time() + self.open_timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise PlatformError(
                    f"wazo-websocketd at {self.url_for_log} sent no {want!r} within {self.open_timeout:g} s",
                    source="wazo",
                )
            try:
                data = await asyncio.wait_for(ws.recv(), left)
            except ConnectionClosed:
                error = self._closed_error(ws)
                raise (
                    error
                    if error is not None
                    else PlatformError(
                        f"wazo-websocketd closed the socket before {want!r} (code {ws.close_code})",
                        source="wazo",
                    )
                ) from None
            except TimeoutError:
                continue
            try:
                frame = self._handle(data)
            except Exception as exc:
                preview = data[:300] if isinstance(data, str) else data[:120].hex(" ")
                self.emit("lab", "bad-frame", note=f"{type(exc).__name__}: {exc}", payload={"raw": preview})
                continue
            if frame is not None and frame.op == want:
                return

    async def _ready(self, ws: ClientConnection) -> None:
        self._ws = ws  # so that _send works during setup
        try:
            await self._recv_control(ws, "init")
            for name in self.events:
                await self._out({"op": "subscribe", "data": {"event_name": name}}, proto.op_subscribe(name))
            await self._out({"op": "start"}, proto.op_start())
            await self._recv_control(ws, "start")  # acks come in order: every subscribe ack is in
        except BaseException:
            self._ws = None
            await ws.close()
            raise
        finally:
            self._token_used = True
        self._schedule_renewal()

    def _frame(self, data: str | bytes) -> None:
        self._handle(data)

    def _handle(self, data: str | bytes) -> proto.ServerFrame | None:
        frame = proto.parse_server_frame(data, self.version)
        if frame.op != "event":
            self.emit(
                "in", f"op:{frame.op}", payload={"op": frame.op, "code": frame.code, "data": frame.data}
            )
            if frame.op == "pong":
                payload = frame.data.get("payload") if isinstance(frame.data, dict) else None
                future = self._pongs.pop(str(payload), None)
                if future is not None and not future.done():
                    future.set_result(str(payload))
            return frame
        body = frame.body
        key = proto.dedup_key(body)
        if key[2] is None:
            pass  # no header timestamp: nothing tells a repeat from a new event
        elif key in self._recent:
            self.duplicates += 1
            self.emit("lab", "duplicate", call_id=_str(key[0]), note=f"{key[1]} at {key[2]} delivered again")
            return frame
        else:
            self._recent[key] = None
            while len(self._recent) > DEDUP_WINDOW:
                self._recent.popitem(last=False)
        inner = body.get("data")
        call_id = inner.get("call_id") if isinstance(inner, dict) else None
        self.emit(
            "in",
            str(body["name"]),
            call_id=_str(call_id),
            payload=body,
            data=inner if isinstance(inner, dict) else body,
        )
        if body["name"] == "auth_session_expire_soon" and self.has_credentials:
            mine = self.token_info.get("session_uuid")
            theirs = inner.get("uuid") if isinstance(inner, dict) else None
            if mine is None or theirs is None or mine == theirs:
                self._schedule_renewal(0.0)
        return frame

    def _closed_error(self, ws: ClientConnection) -> PlatformError | None:
        code = ws.close_code
        if code is None or code not in proto.CLOSE_CODES:
            return None
        return proto.closed_error(code, ws.close_reason or "")

    def _fatal(self, exc: BaseException) -> bool:
        if exc is self._refused:
            return True
        if isinstance(exc, WazoClosed):
            if exc.code in (proto.CLOSE_NO_TOKEN, proto.CLOSE_AUTH_FAILED, proto.CLOSE_PROTOCOL_ERROR):
                return True
            if exc.code == proto.CLOSE_AUTH_EXPIRED:
                return not self.has_credentials
        return False

    async def aclose(self) -> None:
        if self._renew_task is not None:
            self._renew_task.cancel()
            self._renew_task = None
        for future in self._pongs.values():
            future.cancel()
        self._pongs.clear()
        await super().aclose()

    # -- ping ----------------------------------------------------------------------------------

    async def aping(self, payload: str = "", timeout: float = 5.0) -> str:
        """Send ``op:ping`` and return the echoed payload (v2 only: v1 servers ignore pings)."""
        if self.version != 2:
            raise PlatformError("wazo-websocketd answers op:ping only in version 2", source="wazo")
        payload = payload or f"lab-{time.monotonic_ns()}"
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pongs[payload] = future
        try:
            await self._out({"op": "ping", "data": {"payload": payload}}, proto.op_ping(payload))
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pongs.pop(payload, None)

    def ping(self, payload: str = "", timeout: float = 5.0) -> str:
        """:meth:`aping` from a cell or a script."""
        return loop.submit(self.aping(payload, timeout)).result(timeout + 1.0)

    def renew(self, timeout: float = 10.0) -> None:
        """:meth:`arenew` from a cell or a script."""
        loop.submit(self.arenew()).result(timeout)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


class WazoCalld:
    """wazo-calld as the token's user: place, list and hang up calls (``/api/calld/1.0/users/me/calls``).

    Args:
        base_url: Wazo's base URL (``https://HOST``).
        token: a token string, or a :class:`WazoClient` (its current token is used at each call).
        ssl: an ``ssl.SSLContext`` for https.

    Example::

        calld = WazoCalld("https://wazo.example", wazo)   # wazo: a connected WazoClient
        call = calld.make_call("1002")
        calld.hangup(call["call_id"])

    Threads: the plain methods from cells and scripts; the ``a*`` coroutines on any loop.
    """

    def __init__(
        self,
        base_url: str,
        token: str | WazoClient,
        *,
        ssl: ssl_module.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.http_url, _ = _split_url(base_url)
        self._token = token
        self.ssl = ssl
        self.timeout = timeout

    @property
    def token(self) -> str:
        token = self._token.token if isinstance(self._token, WazoClient) else self._token
        if not token:
            raise PlatformError("no token yet: connect the WazoClient first", source="wazo")
        return token

    async def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = f"{self.http_url}/api/calld/1.0{path}"
        headers = {"X-Auth-Token": self.token, "Accept": "application/json"}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http,
                http.request(
                    method, url, json=body, headers=headers, ssl=self.ssl if self.ssl is not None else True
                ) as response,
            ):
                text = await response.text()
                status = response.status
        except aiohttp.ClientError as exc:
            raise PlatformError(f"could not reach wazo-calld at {url}: {exc}", source="wazo") from exc
        if status >= 300:
            raise _http_error(f"wazo-calld {method} {path}", status, text)
        try:
            return status, json.loads(text) if text else None
        except ValueError as exc:
            raise PlatformError(
                f"wazo-calld {method} {path} answered non-JSON: {exc}", source="wazo"
            ) from exc

    async def amake_call(
        self,
        extension: str,
        line_id: int | None = None,
        *,
        all_lines: bool = False,
        from_mobile: bool = False,
        auto_answer_caller: bool = False,
        variables: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """``POST /users/me/calls`` → the new Call (HTTP 201)."""
        body: dict[str, Any] = {
            "extension": extension,
            "all_lines": all_lines,
            "from_mobile": from_mobile,
            "auto_answer_caller": auto_answer_caller,
            "variables": variables or {},
        }
        if line_id is not None:
            body["line_id"] = line_id
        _, call = await self._request("POST", "/users/me/calls", body)
        if not isinstance(call, dict):
            raise PlatformError("wazo-calld answered a call that is not an object", source="wazo")
        return call

    async def ahangup(self, call_id: str) -> None:
        """``DELETE /users/me/calls/{call_id}`` (204; 403 when the call is someone else's → PlatformError)."""
        await self._request("DELETE", f"/users/me/calls/{quote(call_id, safe='')}")

    async def acalls(self) -> list[dict[str, Any]]:
        """``GET /users/me/calls`` → the user's calls."""
        _, body = await self._request("GET", "/users/me/calls")
        items = body.get("items") if isinstance(body, dict) else None
        return list(items) if isinstance(items, list) else []

    def make_call(self, extension: str, line_id: int | None = None, **options: Any) -> dict[str, Any]:
        """:meth:`amake_call` from a cell or a script."""
        return loop.submit(self.amake_call(extension, line_id, **options)).result(self.timeout + 1.0)

    def hangup(self, call_id: str) -> None:
        """:meth:`ahangup` from a cell or a script."""
        loop.submit(self.ahangup(call_id)).result(self.timeout + 1.0)

    def calls(self) -> list[dict[str, Any]]:
        """:meth:`acalls` from a cell or a script."""
        return loop.submit(self.acalls()).result(self.timeout + 1.0)

    def __repr__(self) -> str:
        return f"<WazoCalld {self.http_url}>"
