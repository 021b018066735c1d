"""The simulated feature server's HTTP webhooks for one call (``HttpRequestor``, feature-server 0.9.8).

An app whose calling hook is ``http(s)://`` has no socket: each message that wants an answer is
one HTTP request, and the response body is the answer. :class:`HttpLink` has the interface the
engine uses for :class:`~jambonz_lab.sim.transport.Link` and does what ``lib/utils/http-requestor.js``
does (line numbers below are that file's unless another is named):

- method ``POST`` (or ``GET``) from the hook (~44, ~114); a POST carries the snake-cased payload as
  JSON (~112, ~194); a GET carries no payload at all, only the query string of its own URL (~169, ~194);
- headers: ``Jambonz-Signature`` over the JSON of the payload when the account has a webhook secret
  (~181, ``base-requestor.js`` ~50–66), ``Authorization: Basic`` from the hook's username *and*
  password (~23–28; credentials written into the URL are dropped with it, ~74), ``user-agent: jambonz``
  (~118, ``config.js`` ~127), ``Content-Type: application/json`` on a POST (~186);
- a relative hook (``/action``) goes to the base URL of the calling hook, ``scheme://host:port``
  (~144, ``base-requestor.js`` ~26);
- ``#rc=N&rp=...`` on the hook URL: up to ``min(|rc|, 5)`` retries (default 0) of the errors the
  policy names (default ``ct``), after 0.5, 1, 2, 4, 6 s (~141, ~149–155, ~220–240,
  ``base-requestor.js`` ~101–119); a headers timeout (undici's ``HeadersTimeoutError``) is not the
  ``TimeoutError`` that ``rt`` names, so only ``all`` retries it;
- 200, 202 and 204 succeed, anything else (a 3xx too: redirects are not followed) fails (~196, ~209);
  the body is parsed only when the content type says ``application/json`` (invalid JSON fails),
  otherwise the answer is empty (~214–217);
- the response headers must come within ``JAMBONES_HTTP_TIMEOUT`` (10 s, ~195, ``config.js`` ~123);
- ``jambonz:error`` and ``verb:status`` are never sent over HTTP (~108, ``task.js`` ~208–221);
  ``call:status`` goes to the application's call status hook, a second requestor, and nowhere
  when none is configured (``middleware.js`` ~339–347, ``create-call.js`` ~258–262).

A failed request raises :class:`WebhookFailed` (an :class:`AckTimeout`, so every verb reacts as it
does to an unanswered hook: in both cases the requestor's promise rejects and ``performAction``
throws, ``task.js`` ~262). The call status and unawaited hooks go out in the background, in order.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag, urlsplit, urlunsplit

import aiohttp

from ..protocol.jsjson import stringify
from ..protocol.signature import HEADER, sign
from ..protocol.snake import snake_keys
from .transport import AckTimeout

if TYPE_CHECKING:
    from .engine import SimCall, SimOptions

__all__ = ["HTTP_TIMEOUT", "HttpLink", "WebhookFailed", "base_url", "is_http", "retry_params"]

log = logging.getLogger("jambonz_lab.sim")

#: seconds jambonz waits for a webhook's response headers (JAMBONES_HTTP_TIMEOUT, config.js ~123)
HTTP_TIMEOUT = 10.0
#: statuses a webhook may answer with (http-requestor.js ~209)
OK_STATUSES = frozenset({200, 202, 204})
#: kinds HttpRequestor drops (http-requestor.js ~108) or callers only send on a socket (task.js ~209, ~217)
SOCKET_ONLY = frozenset({"jambonz:error", "verb:status"})
MAX_RETRIES = 5


class WebhookFailed(AckTimeout):
    """A webhook request failed for good (after its retries): ``reason`` is jambonz's ``err.message``."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status


def is_http(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("http://", "https://"))


def base_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, without credentials (base-requestor.js ~25–27)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port is not None else "")


def retry_params(fragment: str) -> tuple[int, frozenset[str]]:
    """``#rc=..&rp=..`` of a webhook URL: (retries, policies) (http-requestor.js ~149–154).

    ``rc``: ``min(|parseInt(rc)|, 5)``, 0 when absent or not a number; ``rp``: default ``ct``.
    """
    params = dict(p.split("=", 1) for p in fragment.split("&") if "=" in p)
    found = re.match(r"\s*([+-]?\d+)", params.get("rc", "0"))
    rc = min(abs(int(found.group(1))), MAX_RETRIES) if found else 0
    policies = frozenset(p.strip() for p in params.get("rp", "ct").split(","))
    return rc, policies


class _Failure(Exception):
    """One attempt failed; ``kind`` is what the retry policy looks at."""

    def __init__(self, kind: str, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.kind = kind  # "ct", "timeout", "status", "other"
        self.reason = reason
        self.status = status

    def retryable(self, policies: frozenset[str]) -> bool:
        if "all" in policies:
            return True
        if self.kind == "ct":
            return "ct" in policies
        if self.kind == "status" and self.status is not None:
            return f"{self.status // 100}xx" in policies and self.status // 100 in (4, 5)
        return False  # a headers timeout, a bad body, a 3xx: only "all"


class HttpLink:
    """One call's webhooks, as jambonz's ``HttpRequestor`` (plus its call-status notifier) sends them."""

    #: no socket, so never closed by the app (the engine's ``Link.graceful``)
    graceful = False

    def __init__(
        self,
        call: SimCall,
        url: str,
        options: SimOptions,
        *,
        method: str = "POST",
        status_hook: str | None = None,
    ) -> None:
        method = method.upper()
        if method not in ("GET", "POST"):
            raise ValueError(f"a webhook's method is GET or POST, not {method!r}")
        self.call = call
        self.url = url
        self.base = base_url(url)
        self.options = options
        self.method = method
        self.status_hook = status_hook
        self.secret = options.webhook_secret
        self.timeout = options.http_timeout
        self.auth = True  # the calling hook's credentials (a redirect to another host drops them)
        self.session: aiohttp.ClientSession | None = None
        self.background: asyncio.Task[None] | None = None
        self.queue: asyncio.Queue[tuple[str, str, str, Any]] = asyncio.Queue()
        self.closed = False
        #: tasks with a request to the app under way (see :meth:`settle`)
        self.busy: set[asyncio.Task[Any]] = set()

    # -- the engine's interface ------------------------------------------------------------

    async def connect(self) -> None:
        """No socket to open: every message is its own request."""

    async def request(
        self, kind: str, data: Any, hook: str | None = None, *, timeout: float | None = None
    ) -> Any:
        """POST (or GET) ``data`` to ``hook`` (the calling hook when None); the parsed answer.

        ``timeout`` is ignored: a webhook waits JAMBONES_HTTP_TIMEOUT, whatever the message.

        Raises:
            WebhookFailed: no acceptable answer, after the URL's retries.
        """
        if kind in SOCKET_ONLY or self.closed:
            return None
        url = self.call_url(kind, hook)
        if url is None:
            return None
        if kind == "session:redirect" and hook is not None and is_http(hook) and base_url(hook) != self.base:
            # a new HttpRequestor for the new base URL, without the old credentials (redirect.js ~36–49)
            self.call.note("http-base-url", f"redirect to {hook}: relative hooks now go to {base_url(hook)}")
            self.url, self.base, self.auth = hook, base_url(hook), False
        method = self.method if kind == "session:new" else "POST"  # a string hook has no method (~114)
        self.trace(kind, url, method, data)
        task = asyncio.current_task()
        if task is not None:
            self.busy.add(task)
        try:
            return await self.send(kind, url, method, data)
        finally:
            if task is not None:
                self.busy.discard(task)

    def hold(self) -> None:
        """The current task is about to send a request here (a handover): :meth:`settle` waits for it."""
        task = asyncio.current_task()
        if task is not None:
            self.busy.add(task)
            task.add_done_callback(self.busy.discard)

    async def settle(self) -> None:
        """Wait for the requests other tasks have under way (a redirect command's webhook).

        With the stack empty an HTTP app's call ends; on the virtual clock no verb takes real
        time, so without this a webhook in flight would lose a race that it wins on jambonz.
        """
        me = asyncio.current_task()
        others = [t for t in self.busy if t is not me and not t.done()]
        if others:
            await asyncio.wait(others, timeout=self.timeout * (MAX_RETRIES + 2))

    async def notify(self, kind: str, data: Any, hook: str | None = None) -> None:
        """A message nobody awaits: ``call:status`` to the status hook, in the background."""
        if kind in SOCKET_ONLY or self.closed:
            return
        if kind == "call:status":
            if self.status_hook is None:
                return  # no call_status_hook: a no-op notifier (middleware.js ~347)
            self.enqueue(kind, self.status_hook, "POST", data)
            return
        url = self.call_url(kind, hook)
        if url is not None:
            self.enqueue(kind, url, "POST", data)

    async def notify_hook(self, hook: str | None, data: dict[str, Any]) -> None:
        """A hook jambonz does not wait for (partial results, status hooks): sent, answer ignored."""
        if not hook or self.closed:
            return
        url = self.call_url("verb:hook", hook)
        if url is not None:
            self.enqueue("verb:hook", url, "POST", data)

    async def close(self, code: int = 1000) -> None:
        """The call is over: the background requests still go out (briefly), then the client closes."""
        self.closed = True
        if self.background is not None:
            try:
                await asyncio.wait_for(self.queue.join(), self.timeout)
            except TimeoutError:
                self.call.note("http-dropped", "background webhooks still pending at the end; dropped")
            self.background.cancel()
            await asyncio.gather(self.background, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
            self.session = None

    # -- requests ---------------------------------------------------------------------------

    def call_url(self, kind: str, hook: str | None) -> str | None:
        """The absolute URL a hook goes to: relative ones on the calling hook's base URL."""
        if hook is None or hook == self.url:
            return self.url
        if hook.startswith("/"):
            return self.base + hook
        if is_http(hook):
            return hook
        if hook.startswith(("ws://", "wss://")):
            self.call.note("http-ws-hook", f"{kind} to {hook}: a socket from an HTTP app is not simulated")
            return None
        self.call.note("http-bad-hook", f"{kind} to {hook!r}: not an absolute or /relative URL; not sent")
        self.call.error(f"{kind}: hook {hook!r} is not a URL")
        return None

    def trace(self, kind: str, url: str, method: str, data: Any) -> None:
        """The request as the trace shows it: ``hook`` is the URL, ``data`` the payload."""
        payload = snake_keys(dict(data)) if data else None
        self.call.trace("sent", kind, None, {"type": kind, "hook": url, "method": method, "data": payload})
        self.call.call_clock.post(kind)  # its row's call time (the lab's server reads it later)

    def enqueue(self, kind: str, url: str, method: str, data: Any) -> None:
        self.trace(kind, url, method, data)
        self.queue.put_nowait((kind, url, method, data))
        if self.background is None:
            self.background = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            kind, url, method, data = await self.queue.get()
            try:
                await self.send(kind, url, method, data, background=True)
            except WebhookFailed:
                pass  # noted; jambonz only logs it (call-session.js ~3149–3151)
            except Exception:  # a simulator bug must not stop the statuses behind it
                log.exception("simulator failed sending %s to %s", kind, url)
            finally:
                self.queue.task_done()

    def client(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(auto_decompress=True)
        return self.session

    def headers(self, method: str, body: str) -> dict[str, str]:
        headers = {"user-agent": "jambonz"}
        if self.secret:
            headers[HEADER] = sign(body, self.secret)
        user, password = self.options.username, self.options.password
        if self.auth and user and password:  # both or neither (http-requestor.js ~24)
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if method == "POST":
            headers["Content-Type"] = "application/json"
        return headers

    async def send(self, kind: str, url: str, method: str, data: Any, *, background: bool = False) -> Any:
        """One webhook with its retries; the parsed JSON answer (None for an empty one)."""
        clean, fragment = urldefrag(url)
        retries, policies = retry_params(fragment)
        target = _without_credentials(clean)
        payload = snake_keys(dict(data)) if data else None
        body = stringify(payload)  # JSON.stringify's text, signed as sent (~191, base-requestor.js ~50)
        headers = self.headers(method, body)  # signed once, before the retries (~181)
        backoff = 0.5
        attempt = 0
        while True:
            try:
                answer = await self._attempt(method, target, headers, body, background=background)
            except _Failure as failure:
                attempt += 1
                if attempt <= retries and failure.retryable(policies):
                    self.call.note(
                        "http-retry",
                        f"{failure.reason}; retrying request ({attempt}/{retries}) in {backoff:g} s",
                    )
                    if not background:
                        await self.call.pass_time(backoff)
                    else:  # beside the call: its clock does not move
                        await asyncio.sleep(0 if self.call.clock.virtual else backoff)
                    self.call.call_clock.post(kind)  # the app's server sees the request again
                    backoff = backoff * 2 if backoff < 2 else backoff + 2
                    continue
                self._report(kind, target, failure)
                raise WebhookFailed(target, failure.reason, failure.status) from None
            self.call.trace("received", "http-response", None, {"hook": target, "data": answer})
            return answer

    async def _attempt(
        self, method: str, url: str, headers: dict[str, str], body: str, *, background: bool
    ) -> Any:
        session = self.client()
        pending = asyncio.ensure_future(
            session.request(
                method,
                url,
                data=body.encode() if method == "POST" else None,
                headers=headers,
                allow_redirects=False,
            )
        )
        try:
            if background:
                response = await asyncio.wait_for(pending, self.timeout)
            else:
                response = await self.call.wait_real(pending, self.timeout)
        except TimeoutError:
            pending.cancel()
            raise _Failure("timeout", "Headers Timeout Error") from None
        except aiohttp.ClientConnectorError as exc:
            raise _Failure("ct", _connect_error(exc, url)) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise _Failure("ct", f"{type(exc).__name__}: {exc}") from None
        except aiohttp.ClientError as exc:
            raise _Failure("other", f"{type(exc).__name__}: {exc}") from None
        async with response:
            if response.status not in OK_STATUSES:
                raise _Failure("status", "Unexpected HTTP Response", response.status)
            if "application/json" not in response.headers.get("Content-Type", ""):
                return None  # '' in jambonz: no verbs
            text = await response.text()
        try:
            return json.loads(text)
        except ValueError as exc:
            raise _Failure("other", f"invalid JSON in the response: {exc}") from None

    def _report(self, kind: str, url: str, failure: _Failure) -> None:
        if failure.status is not None:  # http-requestor.js ~244–246
            note = f"web callback returned unexpected status code {failure.status}"
        else:  # ~248–250
            note = f"web callback returned unexpected error: {failure.reason}"
        self.call.note("http-failed", note, {"type": kind, "url": url})
        self.call.error(f"{kind} to {url}: {note}")


def _without_credentials(url: str) -> str:
    """jambonz builds its client from protocol, host and port: a URL's user:pass goes nowhere (~74)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=netloc))


def _connect_error(exc: aiohttp.ClientConnectorError, url: str) -> str:
    """Node's text for a refused connection (``connect ECONNREFUSED host:port``) where it is one."""
    if isinstance(exc.os_error, ConnectionRefusedError):
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"connect ECONNREFUSED {parts.hostname}:{port}"
    return f"{type(exc).__name__}: {exc}"
