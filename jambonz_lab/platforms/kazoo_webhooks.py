"""Kazoo webhooks over HTTP: the receiver on the lab's server and the Kazoo-side sender.

:class:`WebhookReceiver` is a plain HTTP endpoint mounted on the lab's aiohttp server
(``lab.server.add_http(receiver.path, receiver.handle)``): it decodes what Kazoo sends (GET
query, POST/PUT form data or JSON), answers 200 at once and records one row per hook.

:class:`WebhookSender` plays Kazoo's side (platforms.md §1.4, §1.6 "Webhook simulator"): it
holds hook documents, builds the channel payloads of the events it is handed, delivers them
with Kazoo's verbs, formats, headers and retry rules, and switches off a hook that keeps
failing (6 failures within 60 s, checked every 15 s).

Threads: both live on the lab's loop thread (:mod:`jambonz_lab.loop`). The receiver's
handler runs there; the sender's coroutines run there, its plain methods may be called from
any thread and hand the work to the loop.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote_plus, urlencode

import aiohttp
from aiohttp import web
from yarl import URL

from .. import loop
from ..protocol.kazoo_webhooks import (
    DISABLED_MESSAGE,
    HookDisabler,
    WebhookConfig,
    channel_payload,
    from_querystring,
    hook_event_for,
    matches,
    to_querystring,
)
from ..records import Record, make_row
from ._feed import EventFeed, PlatformEvent

__all__ = ["WebhookReceiver", "WebhookSender"]

log = logging.getLogger("jambonz_lab.platforms.kazoo_webhooks")

SOURCE = "kazoo"
FORM = "application/x-www-form-urlencoded"
#: the query parameter (or ``custom_data`` key) that carries a receiver's shared secret
SECRET_KEY = "lab_secret"


class BadRequest(Exception):
    """A request the receiver cannot decode (answered 400; internal)."""


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class WebhookReceiver(EventFeed):
    """Receives Kazoo webhooks on the lab's HTTP server and records each one.

    GET hooks are read from the query string (Kazoo appends ``?`` + query even when the hook's
    uri has a query: a ``??`` or a ``?`` inside the query is fine), POST/PUT from a form body
    (``application/x-www-form-urlencoded``) or a JSON object (``application/json``). Each hook
    is answered ``200`` with an empty body and recorded as one ``in`` row: ``type`` = the
    payload's ``hook_event`` (``webhook`` without one), ``call_sid`` = its ``call_id``, ``hook``
    = the ``X-Hook-ID`` header, ``note`` = ``"POST json"`` (+ the ``X-Account-ID``),
    ``payload`` = the decoded dict (form data keeps no types: all leaves are strings), ``path``
    = the receiver's path. A body that cannot be decoded gets ``400`` with a one-line reason
    and a ``bad-frame`` lab row; the next request is served as usual.

    Kazoo signs nothing, so with ``secret=`` the receiver requires a shared secret: give Kazoo
    ``receiver.url`` (which ends in ``?lab_secret=SECRET``; Kazoo keeps a hook uri's query), or set
    ``custom_data: {"lab_secret": SECRET}`` on the hook (Kazoo merges it into every payload). A hook
    without it, or with another value (compared in constant time), is answered ``401``, recorded
    as an ``auth-failed`` lab row only (never as an event) and counted in ``rejected``. The secret
    is dropped from the recorded payload and never logged.

    Example::

        receiver = WebhookReceiver("/kazoo/hooks", record=rows.append)
        lab.server.add_http(receiver.path, receiver.handle)   # on the loop thread

    Like the platform clients it has ``wait_for`` / ``listen`` (:class:`~.EventFeed`): a waiter on
    ``"channel_destroy"`` wakes on the next such hook.

    Threads: :meth:`handle` runs on the lab's loop thread (the server calls it there).
    """

    source: ClassVar[str] = SOURCE

    def __init__(
        self,
        path: str = "/kazoo/hooks",
        *,
        record: Record | None = None,
        base_url: str = "",
        secret: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"webhook path must start with '/', not {path!r}")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise ValueError("a webhook secret must be a non-empty string (or None for no secret)")
        self.path = path.rstrip("/") or "/"
        self._secret = secret
        self.record = record
        #: ``http://host:port`` of the server it is mounted on (set by whoever mounts it)
        self.base_url = base_url.rstrip("/")
        #: hooks received and decoded
        self.received = 0
        #: requests refused (400 for a broken body, 401 for a missing or wrong secret)
        self.rejected = 0

    @property
    def url(self) -> str:
        """The URL to give Kazoo as the hook's ``uri`` (just the path until ``base_url`` is set),
        with the shared secret as its query when there is one."""
        query = "?" + urlencode({SECRET_KEY: self._secret}) if self._secret is not None else ""
        return self.base_url + self.path + query

    def _secret_ok(self, request: web.Request, payload: dict[str, Any]) -> bool:
        """Check (and drop from ``payload``) the shared secret: the URL's query, else custom_data."""
        if self._secret is None:
            return True
        first = request.raw_path.partition("?")[2].partition("?")[0]  # the hook uri's own query
        given = parse_qs(first).get(SECRET_KEY, [None])[-1]
        in_payload = payload.pop(SECRET_KEY, None)
        if given is None:
            given = in_payload if isinstance(in_payload, str) else None
        return given is not None and hmac.compare_digest(given.encode(), self._secret.encode())

    def _row(self, direction: str, type: str, **fields: Any) -> None:
        if self.record is not None:
            self.record(make_row(SOURCE, direction, type, path=self.path, **fields))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Decode, record and answer one hook (loop thread). Never raises."""
        method = request.method.upper()
        hook_id = request.headers.get("X-Hook-ID")
        account = request.headers.get("X-Account-ID")
        raw = b""
        try:
            try:
                raw = await request.read() if request.body_exists else b""
            except web.HTTPException as exc:  # body over the server's limit
                raise BadRequest(f"cannot read the body: {exc.reason}") from None
            payload, fmt = self._decode(method, request, raw)
            if not self._secret_ok(request, payload):
                self.rejected += 1
                log.warning("kazoo webhook %s %s refused: missing or wrong secret", method, self.path)
                note = f"{method}: missing or wrong {SECRET_KEY} (401)"
                self._row("lab", "auth-failed", hook=hook_id, note=note)
                return web.Response(status=401, text=f"missing or wrong {SECRET_KEY}\n")
        except BadRequest as exc:
            self.rejected += 1
            reason = _one_line(str(exc))
            log.warning("kazoo webhook %s %s refused: %s", method, self.path, reason)
            preview = raw[:300].decode("utf-8", "replace") if raw else request.raw_path[:300]
            if self._secret is not None:
                preview = preview.replace(quote_plus(self._secret), "***").replace(self._secret, "***")
            self._row("lab", "bad-frame", hook=hook_id, note=f"{method}: {reason}", payload={"raw": preview})
            return web.Response(status=400, text=reason + "\n")
        except Exception as exc:  # a client gone mid-body, or worse: still answer and record
            self.rejected += 1
            reason = _one_line(f"{type(exc).__name__}: {exc}")
            log.warning("kazoo webhook %s %s failed: %s", method, self.path, reason)
            self._row("lab", "bad-frame", hook=hook_id, note=f"{method}: {reason}")
            return web.Response(status=400, text=reason + "\n")
        self.received += 1
        kind = payload.get("hook_event")
        call_id = payload.get("call_id")
        note = f"{method} {fmt}" + (f" account={account}" if account else "")
        name = kind if isinstance(kind, str) and kind else "webhook"
        sid = call_id if isinstance(call_id, str) else None
        self._row("in", name, call_sid=sid, hook=hook_id, note=note, payload=payload)
        self._deliver(PlatformEvent(SOURCE, name, sid, payload, time.time()))
        return web.Response(status=200)

    @staticmethod
    def _decode(method: str, request: web.Request, raw: bytes) -> tuple[dict[str, Any], str]:
        query = request.raw_path.partition("?")[2]
        if method in ("GET", "HEAD", "DELETE") or (not raw and method in ("POST", "PUT", "PATCH")):
            if raw:
                raise BadRequest(f"unexpected body on {method}")
            return from_querystring(query), "query"
        if method not in ("POST", "PUT", "PATCH"):
            raise BadRequest(f"method {method} is not a webhook")
        ctype = request.content_type.lower()
        if ctype == FORM:
            return from_querystring(raw.decode("utf-8", "replace")), "form-data"
        if ctype == "application/json" or ctype.endswith("+json"):
            try:
                body = json.loads(raw)
            except ValueError as exc:  # JSONDecodeError and bad UTF-8
                raise BadRequest(f"bad JSON body: {exc}") from None
            if not isinstance(body, dict):
                raise BadRequest(f"JSON body must be an object, not {type(body).__name__}")
            return body, "json"
        raise BadRequest(f"unsupported content type {ctype!r} (form data or JSON expected)")

    def __repr__(self) -> str:
        return f"<WebhookReceiver {self.url}, {self.received} hook(s), {self.rejected} refused>"


class WebhookSender:
    """Kazoo's webhook side, for tests and offline demos: delivers channel hooks to a receiver.

    Hooks are added as :class:`~jambonz_lab.protocol.kazoo_webhooks.WebhookConfig` (or its
    fields). :meth:`publish` is handed every call event (``"CHANNEL_CREATE"`` and the
    normalized blackhole-style event dict) and queues one delivery per enabled matching hook;
    it never waits for the network. A delivery follows §1.4: headers ``X-Hook-ID`` and
    ``X-Account-ID``; GET → ``uri + "?" + query`` (always ``?``); POST/PUT form data or
    pretty-printed JSON; success is 200 (or 201 for PUT); only transport errors (refused,
    timeout) are retried, ``retry_delay`` apart, ``retries`` attempts in all; every failed
    attempt (transport error or non-200) feeds the disabler, which every ``check_every``
    seconds switches off a hook with ``failure_limit`` failures within ``failure_window``.
    Deliveries to one hook go out in order. :attr:`deliveries` logs every attempt.

    Example::

        sender = WebhookSender(cluster_id="lab")
        hook_id = sender.add_hook(name="calls", uri=receiver.url, hook="all", format="json")
        await sender.publish("CHANNEL_CREATE", event)      # on the loop
        await sender.adrain()                              # or sender.drain() from a cell

    Threads: coroutines on the lab's loop thread; :meth:`add_hook`, :meth:`enable`,
    :attr:`hooks`, :meth:`wait_idle` and :meth:`close` from any thread (not the loop's for the
    last two).
    """

    def __init__(
        self,
        *,
        cluster_id: str = "jambonz-lab",
        retry_delay: float = 2.0,
        failure_window: float = 60.0,
        failure_limit: int = 6,
        check_every: float = 15.0,
        connect_timeout: float = 10.0,
        timeout: float = 10.0,
        record: Record | None = None,
    ) -> None:
        self.cluster_id = cluster_id
        self.retry_delay = retry_delay
        self.check_every = check_every
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        #: optional event log: a ``hook-disabled`` lab row when the disabler switches a hook off
        self.record = record
        #: every attempt: ``{"hook", "attempt", "event", "call_id", "status", "error", "ts"}``
        self.deliveries: list[dict[str, Any]] = []
        self._disabler = HookDisabler(int(failure_window * 1000), failure_limit)
        self._hooks: dict[str, WebhookConfig] = {}
        self._queues: dict[str, asyncio.Queue[dict[str, Any] | None]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._checker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    # -- hook documents (any thread) ------------------------------------------------------

    def add_hook(self, config: WebhookConfig | None = None, /, **fields: Any) -> str:
        """Add (or replace, same id) a hook; returns its id. ``ValueError`` on a bad field."""
        if config is None:
            config = WebhookConfig(**fields)
        elif fields:
            raise TypeError("give a WebhookConfig or its fields, not both")
        return loop.run_sync(self._add, config)

    def _add(self, config: WebhookConfig) -> str:
        self._hooks[config.id] = config
        return config.id

    def remove_hook(self, hook_id: str) -> None:
        """Forget a hook (``DELETE .../webhooks/{id}``); ``KeyError`` if unknown."""
        loop.run_sync(self._remove, hook_id)

    def _remove(self, hook_id: str) -> None:
        del self._hooks[hook_id]
        self._disabler.reset(hook_id)

    def enable(self, hook_id: str | None = None) -> None:
        """Re-enable one hook (``PATCH {"enabled": true}``) or, without an id, every disabled one
        (``{"re-enable": true}``); its failures are forgotten."""
        loop.run_sync(self._enable, hook_id)

    def _enable(self, hook_id: str | None) -> None:
        targets = [self._hooks[hook_id]] if hook_id is not None else list(self._hooks.values())
        for config in targets:
            config.enabled = True
            config.disable_reason = None
            self._disabler.reset(config.id)

    @property
    def hooks(self) -> list[dict[str, Any]]:
        """The hooks as a Crossbar listing shows them (``enabled``, ``disable_reason``)."""
        return loop.run_sync(lambda: [c.listing() for c in self._hooks.values()])

    # -- events (loop thread) ---------------------------------------------------------------

    async def publish(self, event_name: str, data: Mapping[str, Any]) -> None:
        """Queue the hooks ``event_name`` fires (``CHANNEL_CREATE``…) for ``data``, the normalized
        event; returns at once (delivery runs in the background)."""
        loop.require_loop_thread()
        hook_event = hook_event_for(event_name)
        if hook_event is None or self._closed:
            return
        event_account = None
        ccvs = data.get("custom_channel_vars") if isinstance(data, Mapping) else None
        if isinstance(ccvs, Mapping):
            event_account = ccvs.get("account_id")
        for config in list(self._hooks.values()):
            if not config.enabled or not matches(config.hook, hook_event):
                continue
            if (
                config.account_id is not None
                and event_account is not None
                and config.account_id != event_account
                and not config.include_subaccounts  # no account tree here: any account then
            ):
                continue
            payload = channel_payload(
                hook_event, data, cluster_id=self.cluster_id, custom_data=config.custom_data
            )
            self._queue(config.id).put_nowait({"payload": payload, "hook_event": hook_event})

    def _queue(self, hook_id: str) -> asyncio.Queue[dict[str, Any] | None]:
        queue = self._queues.get(hook_id)
        if queue is None:
            queue = self._queues[hook_id] = asyncio.Queue()
            self._workers[hook_id] = asyncio.get_running_loop().create_task(self._work(hook_id, queue))
        return queue

    async def _work(self, hook_id: str, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        while True:
            item = await queue.get()
            try:
                if item is None:
                    return
                config = self._hooks.get(hook_id)
                if config is not None:
                    await self._deliver(config, item["payload"], item["hook_event"])
            except Exception:  # a bug must not stop the hook's queue
                log.exception("kazoo webhook %s: delivery failed", hook_id)
            finally:
                queue.task_done()

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=self.connect_timeout,
                sock_connect=self.connect_timeout,
                sock_read=self.timeout,
            )
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def _deliver(self, config: WebhookConfig, payload: dict[str, Any], hook_event: str) -> None:
        account = config.account_id or payload.get("account_id") or ""
        headers = {"X-Hook-ID": config.id, "X-Account-ID": str(account)}
        body: bytes | None = None
        if config.http_verb == "get":
            url = URL(config.uri + "?" + to_querystring(payload), encoded=True)
        else:
            url = URL(config.uri, encoded=True)
            if config.format == "json":
                headers["Content-Type"] = "application/json"
                body = json.dumps(payload, indent=2, ensure_ascii=False).encode()
            else:
                headers["Content-Type"] = FORM
                body = to_querystring(payload).encode()
        ok = (200, 201) if config.http_verb == "put" else (200,)
        call_id = payload.get("call_id")
        for attempt in range(1, config.retries + 1):
            entry: dict[str, Any] = {
                "hook": config.id,
                "attempt": attempt,
                "event": hook_event,
                "call_id": call_id,
                "status": None,
                "error": None,
                "ts": time.time(),
            }
            try:
                async with self._session_now().request(
                    config.http_verb.upper(), url, headers=headers, data=body, allow_redirects=False
                ) as resp:
                    await resp.read()  # ignored, as Kazoo does
                    entry["status"] = resp.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                entry["error"] = _one_line(f"{type(exc).__name__}: {exc}") if str(exc) else type(exc).__name__
                self.deliveries.append(entry)
                self._failed(config.id)
                if attempt < config.retries and not self._closed:
                    await asyncio.sleep(self.retry_delay)
                    continue
                return
            self.deliveries.append(entry)
            if entry["status"] not in ok:
                self._failed(config.id)  # counted, never retried
            return

    # -- the disabler -------------------------------------------------------------------------

    def _failed(self, hook_id: str) -> None:
        self._disabler.failure(hook_id, time.monotonic() * 1000)
        if self._checker is None or self._checker.done():
            self._checker = asyncio.get_running_loop().create_task(self._check_loop())

    async def _check_loop(self) -> None:
        while self._disabler.pending and not self._closed:
            await asyncio.sleep(self.check_every)
            self.check()

    def check(self, now_ms: float | None = None) -> list[str]:
        """Run the disabler now (loop thread); returns the ids of the hooks it switched off."""
        now = time.monotonic() * 1000 if now_ms is None else now_ms
        disabled = []
        for hook_id in self._disabler.check(now):
            config = self._hooks.get(hook_id)
            if config is None or not config.enabled:
                continue
            config.enabled = False
            config.disable_reason = DISABLED_MESSAGE
            disabled.append(hook_id)
            log.info("kazoo webhook %s disabled: %s", hook_id, DISABLED_MESSAGE)
            if self.record is not None:
                self.record(make_row(SOURCE, "lab", "hook-disabled", hook=hook_id, note=DISABLED_MESSAGE))
        return disabled

    # -- lifecycle ------------------------------------------------------------------------------

    async def adrain(self) -> None:
        """Wait until every queued delivery is done (retries included). Loop thread."""
        for queue in list(self._queues.values()):
            await queue.join()

    async def aclose(self) -> None:
        """Stop: finish nothing more, cancel the workers and the check timer, close the session."""
        self._closed = True
        tasks = [*self._workers.values(), *([self._checker] if self._checker else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        self._queues.clear()
        self._checker = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def drain(self, timeout: float = 30.0) -> None:
        """:meth:`adrain` from a cell or a script: wait until every queued delivery is done."""
        loop.submit(self.adrain()).result(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """:meth:`aclose` from a cell or a script."""
        loop.submit(self.aclose()).result(timeout)

    def __repr__(self) -> str:
        enabled = sum(1 for c in self._hooks.values() if c.enabled)
        return (
            f"<WebhookSender {enabled}/{len(self._hooks)} hook(s) enabled, {len(self.deliveries)} attempt(s)>"
        )
