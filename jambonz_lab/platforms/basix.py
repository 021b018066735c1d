"""Basix PBX ws_cti client: BERT frames in, live element tables and event rows out.

:class:`BasixClient` keeps a ws_cti socket open on the lab's loop (platforms.md §2), decodes
each binary frame (:mod:`jambonz_lab.protocol.etf`), maps it through the latest ``field_spec``
(:mod:`jambonz_lab.protocol.basix`) and keeps the channel, user, group, ... tables current.
:func:`call_user` is the REST call that makes the PBX ring a user and dial a number.

Rows (``source="basix"``): ``in`` ``field_spec``, ``<entity>.initial`` (``channel.initial``),
``<entity>.<event>`` (``channel.added``, ``channel.updated``, ``channel.removed``, ``user.updated``
...), ``system_msg``, ``msg``; ``out`` ``hangup`` / ``park`` / ``transfer`` / ``eavesdrop`` /
``call_user``; ``lab`` rows from the base (``open``, ``dropped``, ``reconnect``, ``bad-frame`` ...).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from .. import loop
from ..exceptions import PlatformError, TermDecodeError
from ..protocol import basix as proto
from ..protocol.etf import decode
from ..records import Record
from ._source import EventSource

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["USER_SELECTORS", "BasixClient", "acall_user", "call_user"]

log = logging.getLogger("jambonz_lab.platforms.basix")

#: the query parameters that choose whose channels a connection sees (§2.1)
USER_SELECTORS = ("user_id", "user_name", "user_label", "user_extension", "user_did", "user_email")

WS_PATH = "/basix/api/ws_cti"
TICKET_PATH = "/basix/api/gen_ws_ticket"
CALL_USER_PATH = "/basix/api/call_user"
#: frames bigger than this (or COMPRESSED ones) are decoded off the loop thread (a few ms of work)
OFF_LOOP_BYTES = 8 * 1024


def _yield_gil() -> None:
    time.sleep(0)  # let the loop thread take the GIL (a decode never holds it for long)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _http_base(url: str) -> str:
    """``ws(s)://host[:port]/...`` → ``http(s)://host[:port]``."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunsplit((scheme, netloc, "", "", ""))


class BasixClient(EventSource):
    """A Basix ws_cti event source: channel / user / group events and their live tables.

    Auth: ``domain`` + ``token`` as HTTP Basic on the upgrade, or, with ``ticket=True``, a fresh
    single-use ticket from ``POST /basix/api/gen_ws_ticket`` before every (re)connection (tickets
    cannot be used with ``full_events``). Credentials may also sit in the URL
    (``wss://DOMAIN:TOKEN@host``); they are never recorded.

    Example::

        from jambonz_lab.platforms.basix import BasixClient
        cti = BasixClient("wss://bcs.brastel.com", app_name="lab", domain="acme", token=TOKEN,
                          user_name="jessica")
        lab.watch(cti)                     # or cti.connect()
        cti.channels                       # DataFrame, one row per live channel
        cti.wait_for("channel.removed").result()
        cti.hangup(uuid)

    Threads: the socket, tables and counters live on the lab's loop thread. The plain methods
    (``connect``, ``close``, ``table``, ``channels`` ..., ``hangup``, ``call_user``) are for cells and
    scripts; the ``a*`` coroutines run on the loop.

    Args:
        url: ``ws(s)://host[:port]``; the path defaults to ``/basix/api/ws_cti``.
        app_name: required by the server; the limit is 2 connections per user + app_name.
        domain, token: the PBX domain and API token (HTTP Basic ``domain:token``).
        ticket: authenticate each connection with a new ws ticket instead of Basic domain:token.
        api_url: ``http(s)://host[:port]`` for the REST calls (default: derived from ``url``).
        full_events: every channel of the PBX (admins / API token), not only the user's.
        forced: close an older connection to make room (sends both ``forced`` and ``force``).
        user_id, user_name, user_label, user_extension, user_did, user_email: whose channels.
        open_timeout, ping_interval: passed to ``websockets``.
    """

    source: ClassVar[str] = "basix"

    def __init__(
        self,
        url: str,
        *,
        app_name: str,
        domain: str | None = None,
        token: str | None = None,
        ticket: bool = False,
        api_url: str | None = None,
        full_events: bool = False,
        forced: bool = False,
        user_id: str | int | None = None,
        user_name: str | None = None,
        user_label: str | None = None,
        user_extension: str | None = None,
        user_did: str | None = None,
        user_email: str | None = None,
        record: Record | None = None,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.5, 10.0),
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
    ) -> None:
        if not app_name:
            raise ValueError("app_name is required by Basix ws_cti (it counts connections per app)")
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"a ws_cti URL starts with ws:// or wss://, not {parts.scheme or '?'}://")
        if parts.username is not None and domain is None:
            domain = _unquote(parts.username)
            token = _unquote(parts.password or "") if token is None else token
        if ticket and full_events:
            raise ValueError("Basix refuses full_events=true with a ws ticket: use domain:token auth")
        if (domain is None or token is None) and not ticket:
            raise ValueError("give domain= and token= (HTTP Basic domain:token) for ws_cti")
        if ticket and (domain is None or token is None):
            raise ValueError("a ws ticket is minted with domain:token: give domain= and token=")
        selectors = {
            "user_id": user_id,
            "user_name": user_name,
            "user_label": user_label,
            "user_extension": user_extension,
            "user_did": user_did,
            "user_email": user_email,
        }
        query: list[tuple[str, str]] = [("app_name", app_name)]
        if full_events:
            query.append(("full_events", "true"))
        if forced:
            query += [("forced", "true"), ("force", "true")]
        query += [(k, str(v)) for k, v in selectors.items() if v is not None]
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        path = parts.path if parts.path not in ("", "/") else WS_PATH
        #: the exact path + query sent (and named in a ticket request)
        self.uri = path + "?" + urlencode(query, quote_via=quote)
        super().__init__(
            urlunsplit((parts.scheme, netloc, path, urlencode(query, quote_via=quote), "")),
            record=record,
            reconnect=reconnect,
            backoff=backoff,
        )
        self.app_name = app_name
        self.domain = domain
        self._token = token
        self.ticket = ticket
        self.api_url = (api_url or _http_base(url)).rstrip("/")
        self.full_events = full_events
        self.forced = forced
        self.selectors = {k: v for k, v in selectors.items() if v is not None}
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        #: the live tables and field specs (loop thread)
        self.state_tables = proto.ElementTables()
        #: the system_msg that ends this connection for good (connection_replaced, ...)
        self._ending: PlatformError | None = None
        #: the ticket request's refusal (bad domain:token): reconnecting cannot help
        self._refused: PlatformError | None = None

    # -- connection (loop thread) -----------------------------------------------------------

    async def _auth_header(self) -> str:
        assert self.domain is not None and self._token is not None
        if not self.ticket:
            return _basic(self.domain, self._token)
        ticket = await self._get_ticket()
        return _basic("ws_ticket", ticket)

    async def _get_ticket(self) -> str:
        self.awaiting = f"a ws ticket from {self.api_url}{TICKET_PATH}"
        status, body = await _post_json(
            self.api_url + TICKET_PATH, self.domain or "", self._token or "", {"uri": self.uri}
        )
        if status in (400, 401, 403):
            self._refused = PlatformError(str(body.get("_error")), source="basix")
            raise self._refused
        body = _check(status, body)
        ticket = body.get("ticket")
        if not isinstance(ticket, str) or not ticket:
            raise PlatformError("basix gen_ws_ticket answered without a ticket", source="basix")
        return ticket

    async def _open(self) -> ClientConnection:
        header = await self._auth_header()
        try:
            return await connect(
                self.url,
                additional_headers={"Authorization": header},
                compression=None,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                max_size=16 * 1024 * 1024,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            text = exc.response.body.decode("utf-8", "replace")[:200] if exc.response.body else ""
            what = {
                400: "bad request (is app_name set?)",
                401: "authentication failed (domain:token or ticket)",
                403: "refused",
            }.get(status, "refused the upgrade")
            raise PlatformError(
                f"basix ws_cti {what}: HTTP {status}" + (f" {text.strip()}" if text.strip() else ""),
                source="basix",
            ) from exc

    async def _ready(self, ws: ClientConnection) -> None:
        # the server sends every field_spec and initial_info again on a new connection
        self.state_tables.clear()
        self._ending = None

    def _closed_error(self, ws: ClientConnection) -> PlatformError | None:
        return self._ending

    def _fatal(self, exc: BaseException) -> bool:
        if exc is self._ending or exc is self._refused:
            return True
        if isinstance(exc, PlatformError) and isinstance(exc.__cause__, InvalidStatus):
            return exc.__cause__.response.status_code in (400, 401, 403)
        return False

    @property
    def url_for_log(self) -> str:
        return self.url  # credentials never go into self.url (they travel in the header)

    # -- frames (loop thread) ------------------------------------------------------------------

    def _off_loop(self, data: str | bytes) -> bool:
        # ws_cti events are ~100 bytes; a big or COMPRESSED frame is decoded on a worker thread
        return isinstance(data, bytes) and (len(data) > OFF_LOOP_BYTES or data[1:2] == b"\x50")

    def _parse(self, data: str | bytes, pause: Callable[[], None] | None = None) -> proto.BasixMessage:
        if isinstance(data, str):
            raise PlatformError(
                f"basix sent a text frame ({len(data)} chars); ws_cti frames are binary BERT terms",
                source="basix",
            )
        try:
            term = decode(data, pause=pause)
        except TermDecodeError as exc:
            raise TermDecodeError(f"undecodable BERT frame: {exc}", tag=exc.tag, offset=exc.offset) from exc
        return proto.parse_message(term)

    def _parse_off_loop(self, data: str | bytes) -> proto.BasixMessage:
        return self._parse(data, pause=_yield_gil)

    def _frame(self, msg: proto.BasixMessage) -> None:
        change = self.state_tables.apply(msg)
        if msg.kind == "field_spec":
            self.emit("in", "field_spec", payload={"entity": msg.entity, "fields": list(msg.fields)})
        elif msg.kind == "initial_info":
            self.emit(
                "in",
                f"{msg.entity}.initial",
                payload={"entity": msg.entity, "elements": list(change.elements)},
                note=change.note,
            )
        elif msg.kind == "info_event":
            element = change.element or {}
            is_channel = msg.entity in proto.CHANNEL_ENTITIES
            uuid = element.get("uuid") if is_channel else None
            self.emit(
                "in",
                f"{msg.entity}.{msg.event}",
                call_id=uuid if isinstance(uuid, str) else None,
                payload={"entity": msg.entity, "event": msg.event, "element": element},
                note=change.note,
            )
        elif msg.kind == "system_msg":
            text = str(msg.msg)
            note = None
            if text in proto.FATAL_SYSTEM_MSGS:
                why = (
                    "another client took this connection's place (forced)"
                    if text == "connection_replaced"
                    else "the limit of 2 connections per user + app_name is reached"
                )
                note = f"{text}: {why}; not reconnecting"
                self._ending = PlatformError(f"basix {note}", source="basix")
            self.emit("in", "system_msg", payload={"msg": text}, note=note)
        else:
            self.emit("in", "msg", payload={"msg": msg.msg})

    # -- tables (cells) --------------------------------------------------------------------------

    def table(self, entity: str) -> pd.DataFrame:
        """The live elements of ``entity`` (``channel``, ``user``, ``group``, ``group_member``,
        ``terminal``, ``domain``, ``channel_waiting``, ``queued_channel``, ``parked_channel``) as a
        DataFrame, one row per element, columns in field_spec order. Cells and scripts."""
        import pandas as pd

        rows, columns = loop.run_sync(self._snapshot, entity)
        return pd.DataFrame(rows, columns=columns)

    def _snapshot(self, entity: str) -> tuple[list[dict[str, Any]], list[str]]:
        return self.state_tables.rows(entity), self.state_tables.columns(entity)

    def rows(self, entity: str) -> list[dict[str, Any]]:
        """The live elements of ``entity`` as dicts (copies). Any thread."""
        return loop.run_sync(self.state_tables.rows, entity)

    @property
    def channels(self) -> pd.DataFrame:
        return self.table("channel")

    @property
    def users(self) -> pd.DataFrame:
        return self.table("user")

    @property
    def groups(self) -> pd.DataFrame:
        return self.table("group")

    @property
    def group_members(self) -> pd.DataFrame:
        return self.table("group_member")

    @property
    def terminals(self) -> pd.DataFrame:
        return self.table("terminal")

    @property
    def waiting_channels(self) -> pd.DataFrame:
        return self.table("channel_waiting")

    @property
    def queued_channels(self) -> pd.DataFrame:
        return self.table("queued_channel")

    @property
    def parked_channels(self) -> pd.DataFrame:
        return self.table("parked_channel")

    # -- commands (§2.5: JSON text frames, fire and forget) ---------------------------------------

    async def acommand(self, cmd: str, uuid: str, /, **fields: Any) -> None:
        """Send ``{"cmd": cmd, "uuid": uuid, ...}`` (loop thread). No reply is documented."""
        body = proto.command(cmd, uuid, **fields)
        await self._send(json.dumps(body))
        self.emit("out", cmd, call_id=uuid, payload=body)

    def _command(self, cmd: str, uuid: str, wait: float, /, **fields: Any) -> None:
        loop.submit(self.acommand(cmd, uuid, **fields)).result(wait)

    def hangup(self, uuid: str, timeout: float = 10.0) -> None:
        """Hang a channel up. Cells and scripts."""
        self._command("hangup", uuid, timeout)

    def park(self, uuid: str, park_timeout: int | None = None, timeout: float = 10.0) -> None:
        """Park a channel (``timeout`` on the wire is ``park_timeout`` here). Cells and scripts."""
        self._command("park", uuid, timeout, timeout=park_timeout)

    def transfer(
        self,
        uuid: str,
        *,
        user_id: int | str | None = None,
        user_name: str | None = None,
        destination: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Transfer a channel to a user or a destination. Cells and scripts."""
        self._command(
            "transfer", uuid, timeout, user_id=user_id, user_name=user_name, destination=destination
        )

    def eavesdrop(
        self, uuid: str, *, target_uuid: str, subcommand: str | None = None, timeout: float = 10.0
    ) -> None:
        """Listen in on ``target_uuid`` through the media plug ``uuid``. Cells and scripts."""
        self._command("eavesdrop", uuid, timeout, target_uuid=target_uuid, subcommand=subcommand)

    # -- REST ------------------------------------------------------------------------------------

    async def acall_user(self, **body: Any) -> list[str]:
        """:func:`acall_user` with this client's PBX and credentials; recorded as an ``out`` row."""
        uuids = await acall_user(self.api_url, self.domain or "", self._token or "", **body)
        self.emit("out", "call_user", payload=body, note="uuids " + ", ".join(uuids))
        return uuids

    def call_user(self, timeout: float = 30.0, **body: Any) -> list[str]:
        """Ring a user and dial a destination (``user_name="jessica", destination="0312341234"``);
        returns the new channels' uuids. Cells and scripts."""
        return loop.submit(self.acall_user(**body)).result(timeout)


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


async def _post_json(url: str, domain: str, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST ``body`` as JSON with Basic ``domain:token``: (HTTP status, the reply as checked by
    :func:`_check`: raises :exc:`PlatformError` on an HTTP error or a non-zero ``result_code``)."""
    headers = {"Authorization": _basic(domain, token)}
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.post(url, json=body, headers=headers) as resp:
            text = await resp.text()
            status, reason = resp.status, resp.reason or ""
    try:
        reply = json.loads(text) if text else {}
    except ValueError:
        reply = {}
    if not isinstance(reply, dict):
        reply = {}
    code = reply.get("result_code")
    if status != 200 or (code is not None and code != 0):
        error = reply.get("error") or reply.get("message") or text[:200] or reason
        return status, {
            "_error": f"basix {urlsplit(url).path} failed: HTTP {status}, result_code {code}: {error}"
        }
    return status, reply


def _check(status: int, reply: dict[str, Any]) -> dict[str, Any]:
    if "_error" in reply:
        raise PlatformError(str(reply["_error"]), source="basix")
    return reply


async def acall_user(base_url: str, domain: str, token: str, **body: Any) -> list[str]:
    """``POST {base_url}/basix/api/call_user`` with Basic ``domain:token``; returns ``uuids``.

    A non-zero ``result_code`` (or an HTTP error) raises :exc:`PlatformError` with the server's
    message. Loop thread (any asyncio loop)."""
    reply = _check(*await _post_json(base_url.rstrip("/") + CALL_USER_PATH, domain, token, body))
    uuids = reply.get("uuids")
    return [str(u) for u in uuids] if isinstance(uuids, list) else []


def call_user(base_url: str, domain: str, token: str, timeout: float = 30.0, **body: Any) -> list[str]:
    """Ring a user and dial a destination through Basix's REST API; returns the channels' uuids.

    Example::

        call_user("https://bcs.brastel.com", "acme", TOKEN, user_name="jessica", destination="0312341234")

    Cells and scripts (runs on the lab's loop)."""
    return loop.submit(acall_user(base_url, domain, token, **body)).result(timeout)
