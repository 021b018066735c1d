"""HTTP webhook apps: jambonz's hooks as HTTP requests, served by the same services and handlers.

jambonz drives a webhook app with one HTTP request per hook (feature-server 0.9.8
``lib/utils/http-requestor.js``). The calling hook gets the call's details, every
``actionHook`` gets the verb's result with the call's details, and the status hook gets
call status. The JSON array in the response body is the verbs to run next. The
app server turns each request into the frame a WebSocket app would have got:

* a POST to a service path for a call it does not know: ``session:new``;
* a POST for a known call (found by the body's ``call_sid``) to any path: ``verb:hook``,
  whose ``hook`` is that path (jambonz resolves a relative ``actionHook`` such as
  ``/action`` against the app's base URL, so it arrives at ``/action``);
* a POST to a service's :attr:`~jambonz_lab.net.Service.status_path` (``<path>/status``):
  ``call:status``, answered at once. A final status (completed, failed, busy, no-answer)
  ends the session.

The frame then goes through the same code as a WebSocket frame: the call protocol, the
event log (``transport`` = ``"http"``) and the handlers. The hook's ack becomes the
response body (``[]`` when nothing was composed). Over HTTP only a hook's answer reaches
jambonz, so commands raise :exc:`~jambonz_lab.exceptions.NoSocket`.

A GET hook carries its fields in the query string, when there are any: jambonz 0.9.8 sends
no payload with GET, only the URL's own query (``http-requestor.js`` ~190: the body is set for
POST only), so a GET calling hook opens a call with a made-up ``call_sid``. A webhook secret
(``ServerOptions.webhook_secret``) makes every request prove its ``Jambonz-Signature``.

Threads: loop thread only (aiohttp's handlers run there).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..exceptions import SignatureError
from ..protocol.messages import FINAL_STATUSES
from ..protocol.signature import HEADER, verify
from .limits import basic_auth_ok

if TYPE_CHECKING:
    from ..protocol.call import Outgoing
    from .server import AppServer
    from .session import Service, Session

__all__ = ["WebhookCall", "is_webhook", "serve_webhook"]

log = logging.getLogger("jambonz_lab.server")


#: how long a hook's response waits for the app's answer (jambonz's HTTP_TIMEOUT: 10 s)
ANSWER_TIMEOUT = 10.0


class WebhookCall:
    """One call served over HTTP: the stand-in for its socket (loop thread only).

    Each hook request waits on a future keyed by the msgid the server gave its frame;
    the ack that the call protocol produces for that msgid resolves it.
    """

    transport = "http"

    def __init__(self, server: AppServer, service: Service, path: str) -> None:
        self.server = server
        self.service = service
        self.path = path
        self.session: Session | None = None
        self.early: list[Any] = []
        #: the code this side closed with (``Session.close()``); None while the call goes on
        self.closing: int | None = None
        self.answers: dict[str, asyncio.Future[list[Any]]] = {}
        #: monotonic time of the last request for this call (the idle sweep ends forgotten calls)
        self.seen = time.monotonic()

    @property
    def open(self) -> bool:
        return self.closing is None

    def expect(self, msgid: str) -> asyncio.Future[list[Any]]:
        """The future the ack of ``msgid`` resolves with its verbs."""
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.answers[msgid] = fut
        return fut

    def write(self, session: Session, outs: list[Outgoing]) -> None:
        for out in outs:
            self.server.record_out(session, out)
            fut = self.answers.pop(out.acks, None) if out.acks else None
            if fut is not None and not fut.done():
                fut.set_result(list(out.message.get("data") or []))

    async def flush(self) -> None:
        """Nothing to write: an answer leaves as its request's response."""

    def close(self, code: int) -> None:
        """``Session.close()``: there is no socket; the session ends here (jambonz is not told)."""
        if self.closing is not None:
            return
        self.closing = code
        self.finish()
        why = "closed by the app (jambonz is not told: hang up with a verb or the REST API)"
        asyncio.get_running_loop().call_soon(
            functools.partial(self.server.connection_lost, self, None, final=True, why=why)
        )

    def finish(self) -> None:
        """Answer the requests still waiting with no verbs."""
        for fut in self.answers.values():
            if not fut.done():
                fut.set_result([])
        self.answers.clear()


def is_webhook(request: web.Request) -> bool:
    """A POST, or a GET with a query string or from jambonz (its ``User-Agent`` is ``jambonz`` unless
    ``JAMBONES_HTTP_USER_AGENT_HEADER`` says otherwise; ``lib/config.js`` ~127). A bare GET from a
    browser gets the hint to upgrade instead."""
    if request.method == "POST":
        return True
    agent = request.headers.get("User-Agent", "")
    return request.method == "GET" and (bool(request.query) or agent.lower().startswith("jambonz"))


async def serve_webhook(server: AppServer, request: web.Request) -> web.StreamResponse:
    """Answer one HTTP hook request from jambonz (see the module doc)."""
    body = await request.read()
    options = server.options
    if len(body) > options.max_incoming:
        return _refused(server, 413, f"webhook body of {len(body)} bytes is over {options.max_incoming}")
    text = body.decode("utf-8", errors="replace")
    auth = options.auth
    if auth is not None and not basic_auth_ok(request.headers.get("Authorization"), *auth):
        return _refused(server, 401, f"webhook {request.path} without valid credentials")
    if options.webhook_secret is not None:
        try:
            verify(request.headers.get(HEADER), text, options.webhook_secret)
        except SignatureError as exc:
            return _refused(server, 403, f"webhook {request.path}: {exc}")
    payload = _payload(request, text)
    if payload is None:
        return _refused(server, 400, f"webhook {request.path}: the body is not a JSON object")
    sid = payload.get("call_sid")
    known = server.sessions.get(sid) if isinstance(sid, str) else None
    path = request.path.rstrip("/") or "/"
    service = server.route(path)
    if known is not None and known.driver.conn.transport != "http":
        return _refused(server, 409, f"call {sid} is served over WebSocket; an HTTP hook cannot join it")
    if service is not None and path == service.status_path:
        return _status(server, known, service, path, payload)
    if known is not None and not known.closed:
        conn = known.driver.conn
        assert isinstance(conn, WebhookCall)
        frame = {"type": "verb:hook", "hook": request.path_qs, "data": payload}
    elif service is not None:
        conn = WebhookCall(server, service, path)
        if not isinstance(sid, str) or not sid:
            sid = f"http-{uuid.uuid4()}"
            server.record_lab(sid, "webhook", f"{request.method} {path} carries no call_sid; a new call")
        frame = {"type": "session:new", "data": payload}
    else:
        return _refused(server, 404, f"no jambonz_lab service at {path} and no live call {sid}")
    msgid = uuid.uuid4().hex
    conn.seen = time.monotonic()
    answer = conn.expect(msgid)
    server.receive(conn, json.dumps({**frame, "msgid": msgid, "call_sid": sid}))
    try:
        verbs = await asyncio.wait_for(answer, ANSWER_TIMEOUT)
    except TimeoutError:
        conn.answers.pop(msgid, None)
        note = f"no answer to {frame['type']} {path} within {ANSWER_TIMEOUT:g} s (jambonz gives up then)"
        server.report("ack-late", note, call_sid=sid, msgid=msgid)
        return web.json_response([], status=504)
    return web.json_response(verbs)


def _payload(request: web.Request, text: str) -> dict[str, Any] | None:
    """The hook's fields: the JSON body of a POST, the query string of a GET."""
    if request.method == "GET":
        return dict(request.query)
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _status(
    server: AppServer, known: Session | None, service: Service, path: str, payload: dict[str, Any]
) -> web.StreamResponse:
    """A call status hook: recorded as ``call:status``; a final one ends the session."""
    sid = payload.get("call_sid")
    frame = {"type": "call:status", "msgid": uuid.uuid4().hex, "call_sid": sid, "data": payload}
    if known is None or known.closed:  # recorded (an early frame of no session) and answered
        server.receive(WebhookCall(server, service, path), json.dumps(frame))
        return web.json_response([])
    conn = known.driver.conn
    assert isinstance(conn, WebhookCall)
    conn.seen = time.monotonic()
    server.receive(conn, json.dumps(frame))
    status = payload.get("call_status")
    if status in FINAL_STATUSES:
        conn.finish()
        server.connection_lost(conn, None, final=True, why=f"call status {status}: the webhook call ended")
    return web.json_response([])


def _refused(server: AppServer, status: int, note: str) -> web.Response:
    server.report("webhook-refused", f"{note}; answered {status}")
    return web.Response(status=status, text=note + "\n")
