"""The simulator against an HTTP webhook app, as feature-server 0.9.8's ``HttpRequestor`` calls one.

The app is a real aiohttp server on loopback (run on the lab's loop, next to the simulator); its
handlers answer with verb arrays built by jambonz-python-sdk's ``WebhookResponse``. Each test names
the feature-server source it follows (``lib/utils/http-requestor.js`` unless another file is named);
``docs/simulator-fidelity.md`` lists them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import pytest
from aiohttp import web
from jambonz_sdk.webhook import WebhookResponse
from websockets.asyncio.server import ServerConnection

import jambonz_lab as jl
from jambonz_lab import loop, sim
from jambonz_lab.protocol.signature import HEADER, verify
from jambonz_lab.sim import Caller, Digits, SimOptions, Speech
from tests.simtrace import notes
from tests.wsapp import serving

FAST = SimOptions(http_timeout=0.5)


def run(coro: Awaitable[Any], timeout: float = 20.0) -> Any:
    async def wrap() -> Any:
        return await coro

    return loop.submit(wrap()).result(timeout)


@dataclass
class Got:
    """One request the app received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)


Answer: TypeAlias = web.StreamResponse | list[dict[str, Any]] | WebhookResponse
Handler: TypeAlias = Callable[[Got], Awaitable[Answer] | Answer]


class WebhookApp:
    """An HTTP jambonz app: ``routes[path](got)`` answers each request (a 200 with no body if none)."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self.routes = routes
        self.got: list[Got] = []
        self.base = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def to(self, path: str) -> list[Got]:
        return [g for g in self.got if g.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        got = Got(
            request.method, request.path, dict(request.query), dict(request.headers), await request.text()
        )
        self.got.append(got)
        handler = self.routes.get(request.path)
        if handler is None:
            return web.Response(status=200)
        answer = handler(got)
        if asyncio.iscoroutine(answer):
            answer = await answer
        if isinstance(answer, WebhookResponse):
            return web.json_response(answer.to_list())
        if isinstance(answer, list):
            return web.json_response(answer)
        assert isinstance(answer, web.StreamResponse)
        return answer


@pytest.fixture
def webhook() -> Iterator[Callable[[dict[str, Handler]], WebhookApp]]:
    apps: list[WebhookApp] = []

    def start(routes: dict[str, Handler]) -> WebhookApp:
        app = WebhookApp(routes)
        run(app.start())
        apps.append(app)
        return app

    yield start
    for app in apps:
        run(app.stop())


def say(*texts: str) -> WebhookResponse:
    response = WebhookResponse()
    for text in texts:
        response.say(text=text)
    return response


def rejected(result: sim.CallResult, reason: str) -> None:
    assert (result.final_status, result.sip_status, result.termination_by) == ("failed", 480, "jambonz")
    assert notes(result, "rejected") == [f"call rejected with 480 (X-Reason: {reason})"]


# -- the calling hook ----------------------------------------------------------------------


def test_the_calling_hook_gets_session_new_by_post_and_its_verbs_run(
    webhook: Callable[..., WebhookApp],
) -> None:
    """session:new's payload is POSTed as JSON with jambonz's user agent (~112, ~118, ~186, ~194;
    middleware.js ~447–458); the answer's verbs run; when they are done the call ends, since an
    HTTP app has no socket to send commands on (call-session.js ~1395–1423)."""
    app = webhook({"/call": lambda got: say("hello", "goodbye")})
    result = sim.call(app.base + "/call", options=FAST)
    assert result.said == ["hello", "goodbye"]
    assert (result.final_status, result.termination_by) == ("completed", "jambonz")
    assert notes(result, "tasks-done") == [
        "verb stack empty; an HTTP app sends no commands: jambonz hangs up"
    ]
    [new] = app.got  # no status hook configured: no call status requests (middleware.js ~347)
    assert (new.method, new.path) == ("POST", "/call")
    assert new.headers["Content-Type"] == "application/json"
    assert new.headers["User-Agent"] == "jambonz"
    assert "Authorization" not in new.headers and HEADER not in new.headers
    payload = new.json
    assert payload["call_sid"] == result.call_sid
    assert payload["direction"] == "inbound" and "sip" in payload and "defaults" in payload
    assert result.statuses() == []


def test_a_get_calling_hook_carries_only_its_own_query_string(webhook: Callable[..., WebhookApp]) -> None:
    """A GET sends no payload at all: only the URL's own query (~169, ~191, ~194: a body for POST only)."""
    app = webhook({"/call": lambda got: say("hi")})
    result = sim.call(app.base + "/call?app=42", options=FAST, method="GET")
    assert result.said == ["hi"]
    [new] = app.got
    assert (new.method, new.query, new.body) == ("GET", {"app": "42"}, "")
    assert "Content-Type" not in new.headers


def test_an_empty_or_non_json_answer_to_session_new_rejects_the_call(
    webhook: Callable[..., WebhookApp],
) -> None:
    """Without ``application/json`` the body is not read: the answer is '' (~214–217), no application,
    so the INVITE gets 480 (middleware.js ~461, ~492)."""
    app = webhook(
        {
            "/empty": lambda got: web.Response(status=204),
            "/text": lambda got: web.Response(text=json.dumps([{"verb": "say", "text": "hi"}])),
        }
    )
    for path in ("/empty", "/text"):
        result = sim.call(app.base + path, options=FAST)
        rejected(result, "must be array")
        assert result.heard == []


# -- actionHooks ---------------------------------------------------------------------------


def gather_app(action: str = "/action") -> dict[str, Handler]:
    def call(got: Got) -> WebhookResponse:
        return WebhookResponse().gather(
            input=["speech", "digits"], finishOnKey="#", actionHook=action, say={"text": "your name?"}
        )

    def action_hook(got: Got) -> WebhookResponse:
        data = got.json
        heard = data["speech"]["alternatives"][0]["transcript"] if "speech" in data else data.get("digits")
        return say(f"hello {heard}")

    return {"/call": call, "/action": action_hook}


def test_a_relative_action_hook_goes_to_the_base_url_with_the_speech(
    webhook: Callable[..., WebhookApp],
) -> None:
    """``/action`` resolves on the calling hook's scheme://host:port (~144, base-requestor.js ~26) and
    gets the call info plus the gather's result by POST (task.js ~227, ~234); its verbs replace the stack."""
    app = webhook(gather_app())
    result = sim.call(app.base + "/call", Caller(inputs=[Speech("bob")]), options=FAST)
    assert result.said == ["your name?", "hello bob"]
    [action] = app.to("/action")
    assert action.method == "POST"
    data = action.json
    assert data["reason"] == "speechDetected" and data["call_sid"] == result.call_sid
    assert data["speech"]["alternatives"][0]["transcript"] == "bob"


def test_digits_reach_an_absolute_action_hook(webhook: Callable[..., WebhookApp]) -> None:
    app = webhook({})
    app.routes.update(gather_app(app.base + "/action"))
    result = sim.call(app.base + "/call", Caller(inputs=[Digits("42#")]), options=FAST)
    assert result.said == ["your name?", "hello 42"]
    [action] = app.to("/action")
    assert (action.json["reason"], action.json["digits"]) == ("dtmfDetected", "42")


def test_a_failing_action_hook_is_reported_and_the_call_carries_on_as_jambonz_does(
    webhook: Callable[..., WebhookApp],
) -> None:
    """A 500 fails the request (~209): gather reports ``invalid actionHook response`` with the error's
    message in a call status (gather.js ~1426–1442); no jambonz:error over HTTP (task.js ~208); the
    stack carries on, then the call ends (call-session.js ~1395)."""
    routes = gather_app()
    routes["/action"] = lambda got: web.Response(status=500)
    app = webhook(routes)
    result = sim.call(
        app.base + "/call", Caller(inputs=[Speech("bob")]), options=FAST, status_hook=app.base + "/status"
    )
    assert result.said == ["your name?"]
    assert len(app.to("/action")) == 1  # no fragment: no retry
    assert notes(result, "http-failed") == ["web callback returned unexpected status code 500"]
    assert "invalid actionHook response: Unexpected HTTP Response" in result.errors
    errors = [g.json for g in app.to("/status") if "error" in g.json]
    assert [(e["error"], e["reason"]) for e in errors] == [
        ("invalid actionHook response", "Unexpected HTTP Response")
    ]
    assert result.final_status == "completed"


def test_invalid_json_from_an_action_hook_is_a_failure_too(webhook: Callable[..., WebhookApp]) -> None:
    """``body.json()`` throws on a JSON content type with a broken body (~214–215)."""
    routes = gather_app()
    routes["/action"] = lambda got: web.Response(text="[{nope", content_type="application/json")
    app = webhook(routes)
    result = sim.call(app.base + "/call", Caller(inputs=[Speech("bob")]), options=FAST)
    assert result.said == ["your name?"]
    [note] = notes(result, "http-failed")
    assert note.startswith("web callback returned unexpected error: invalid JSON in the response")


# -- retries -------------------------------------------------------------------------------


def failing(times: int, status: int, then: Handler) -> Handler:
    left = [times]

    def handle(got: Got) -> Answer:
        if left[0] > 0:
            left[0] -= 1
            return web.Response(status=status)
        answer = then(got)
        assert not asyncio.iscoroutine(answer)
        return answer

    return handle


def test_rc_and_rp_retry_a_5xx_after_half_a_second_then_one(webhook: Callable[..., WebhookApp]) -> None:
    """``#rc=2&rp=5xx``: two retries of a 5xx, 0.5 s then 1 s apart on the call's clock (~141, ~152–155,
    ~228–235, base-requestor.js ~112–118); the fragment is not sent."""
    app = webhook({"/call": failing(2, 503, lambda got: say("at last"))})
    result = sim.call(app.base + "/call#rc=2&rp=5xx", options=FAST)
    assert result.said == ["at last"]
    assert len(app.to("/call")) == 3
    assert notes(result, "http-retry") == [
        "Unexpected HTTP Response; retrying request (1/2) in 0.5 s",
        "Unexpected HTTP Response; retrying request (2/2) in 1 s",
    ]
    answered = next(e for e in result.trace if e.direction == "received" and e.payload["data"])
    assert answered.t == pytest.approx(1.5, abs=0.2)


def test_without_a_matching_policy_a_failure_is_not_retried(webhook: Callable[..., WebhookApp]) -> None:
    """rp defaults to ``ct`` (~153): a 500 is tried once; rp=4xx does not cover it either; the call is
    rejected with the error's message (middleware.js ~492)."""
    app = webhook({"/call": lambda got: web.Response(status=500)})
    for fragment in ("", "#rc=3", "#rc=3&rp=4xx"):
        before = len(app.got)
        result = sim.call(app.base + "/call" + fragment, options=FAST)
        rejected(result, "Unexpected HTTP Response")
        assert len(app.got) - before == 1
        assert notes(result, "http-failed") == ["web callback returned unexpected status code 500"]


def test_rc_is_capped_at_5_and_all_retries_anything(webhook: Callable[..., WebhookApp]) -> None:
    """``min(|rc|, 5)`` (~152); ``all`` covers a 3xx, which is not followed (~196)."""
    app = webhook({"/call": lambda got: web.Response(status=302, headers={"Location": "/elsewhere"})})
    result = sim.call(app.base + "/call#rc=9&rp=all", options=FAST)
    rejected(result, "Unexpected HTTP Response")
    assert len(app.to("/call")) == 6 and app.to("/elsewhere") == []


def test_a_refused_connection_is_retried_under_ct() -> None:
    """ECONNREFUSED is ``ct`` (base-requestor.js ~103), the default policy; the rejection reason is the
    connection error's message."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = sim.call(f"http://127.0.0.1:{port}/call#rc=1", options=FAST)
    rejected(result, f"connect ECONNREFUSED 127.0.0.1:{port}")
    assert len(notes(result, "http-retry")) == 1


def test_a_headers_timeout_is_not_rt(webhook: Callable[..., WebhookApp]) -> None:
    """The response headers must come within JAMBONES_HTTP_TIMEOUT (~195); undici's
    HeadersTimeoutError is not named ``TimeoutError``, so ``rt`` does not retry it
    (base-requestor.js ~108)."""

    async def slow(got: Got) -> Answer:
        await asyncio.sleep(1.0)
        return say("too late")

    app = webhook({"/call": slow})
    result = sim.call(app.base + "/call#rc=2&rp=rt", options=SimOptions(http_timeout=0.2))
    rejected(result, "Headers Timeout Error")
    assert len(app.to("/call")) == 1


# -- the call status hook ------------------------------------------------------------------


def test_the_status_hook_gets_each_call_status(webhook: Callable[..., WebhookApp]) -> None:
    """A call_status_hook gets its own requestor, and every status by POST (middleware.js ~342–346,
    call-session.js ~3141–3147)."""
    app = webhook({"/call": lambda got: say("hi")})
    result = sim.call(app.base + "/call", options=FAST, call_status_hook=app.base + "/status")
    statuses = [g.json["call_status"] for g in app.to("/status")]
    assert statuses == ["trying", "in-progress", "completed"] == result.statuses()
    assert all(g.method == "POST" and g.json["call_sid"] == result.call_sid for g in app.to("/status"))


# -- credentials ---------------------------------------------------------------------------


def test_basic_auth_comes_from_the_hooks_username_and_password_only(
    webhook: Callable[..., WebhookApp],
) -> None:
    """The header needs both username and password (~23–28) and goes with every request, relative
    hooks included (~45, ~184); user:pass written in the URL goes nowhere: the client is built from
    protocol, host and port (~74)."""
    app = webhook(gather_app())
    token = "Basic " + base64.b64encode(b"ann:secret").decode()
    sim.call(
        app.base + "/call",
        Caller(inputs=[Speech("x")]),
        options=SimOptions(username="ann", password="secret"),
    )
    assert [g.headers.get("Authorization") for g in app.got] == [token, token]
    app.got.clear()
    sim.call(app.base + "/call", options=SimOptions(username="ann"))
    in_url = app.base.replace("http://", "http://ann:secret@") + "/call"
    sim.call(in_url, options=FAST)
    assert [g.headers.get("Authorization") for g in app.got] == [None] * 4  # /call and /action, twice


def test_a_webhook_secret_signs_each_request(webhook: Callable[..., WebhookApp]) -> None:
    """``Jambonz-Signature: t=…,v1=HMAC(secret, "t.body")`` (~181, base-requestor.js ~50–66)."""
    app = webhook({"/call": lambda got: say("hi")})
    sim.call(
        app.base + "/call", options=SimOptions(webhook_secret="s3cret"), status_hook=app.base + "/status"
    )
    assert len(app.got) == 4
    for got in app.got:
        verify(got.headers[HEADER], got.body, "s3cret")


def test_a_socket_apps_http_action_hook_is_a_webhook_of_its_own(webhook: Callable[..., WebhookApp]) -> None:
    """An absolute http(s) hook from a WebSocket app goes out on a new HttpRequestor, by POST, and its
    answer's verbs run (ws-requestor.js ~95–105)."""
    app = webhook(gather_app())

    async def conn(ws: ServerConnection) -> None:
        async for frame in ws:
            msg = json.loads(frame)
            if msg["type"] == "session:new":
                verbs = WebhookResponse().gather(input=["speech"], actionHook=app.base + "/action").to_list()
                await ws.send(json.dumps({"type": "ack", "msgid": msg["msgid"], "data": verbs}))

    with serving(conn, "/ws") as url:
        result = sim.call(url, Caller(inputs=[Speech("bob")], hangup_after=5), options=FAST)
    assert result.said == ["hello bob"]
    [action] = app.got
    assert action.method == "POST" and action.json["speech"]["alternatives"][0]["transcript"] == "bob"


def redirecting_app(
    answer: Callable[[dict[str, Any]], list[dict[str, Any]]],
) -> Callable[[ServerConnection], Awaitable[None]]:
    """A socket app that acks session:new with ``answer(msg)``."""

    async def conn(ws: ServerConnection) -> None:
        async for frame in ws:
            msg = json.loads(frame)
            if msg["type"] == "session:new":
                await ws.send(json.dumps({"type": "ack", "msgid": msg["msgid"], "data": answer(msg)}))

    return conn


def test_a_socket_apps_redirect_to_an_http_url_hands_the_call_to_webhooks(
    webhook: Callable[..., WebhookApp],
) -> None:
    """A redirect verb to an http URL: the socket requestor hands over to an HttpRequestor and closes
    (ws-requestor.js ~95–104, call-session.js ~126–133); session:redirect is POSTed there, its verbs
    run, relative hooks go to the new base URL, and the empty stack ends the call (an HTTP app now)."""
    app = webhook({"/next": lambda got: say("over http").gather(input=["speech"], actionHook="/action")})
    app.routes["/action"] = lambda got: say("bye " + got.json["speech"]["alternatives"][0]["transcript"])
    conn = redirecting_app(lambda msg: WebhookResponse().redirect(actionHook=app.base + "/next").to_list())
    with serving(conn, "/ws") as url:
        result = sim.call(url, Caller(inputs=[Speech("bob")], hangup_after=30), options=FAST)
    assert result.said == ["over http", "bye bob"]
    assert [(g.method, g.path) for g in app.got] == [("POST", "/next"), ("POST", "/action")]
    assert app.got[0].json["call_sid"] == result.call_sid
    assert (result.termination_by, notes(result, "tasks-done") != []) == ("jambonz", True)


def test_a_redirect_command_to_an_http_call_hook_goes_over_http(webhook: Callable[..., WebhookApp]) -> None:
    """``redirect {call_hook: http…}`` (_lccCallHook, call-session.js ~1597, ~1639–1642): the webhook's
    verbs replace the stack."""
    app = webhook({"/next": lambda got: say("from the webhook")})

    async def conn(ws: ServerConnection) -> None:
        async for frame in ws:
            msg = json.loads(frame)
            if msg["type"] == "session:new":
                verbs = say("please hold").pause(length=20).to_list()
                await ws.send(json.dumps({"type": "ack", "msgid": msg["msgid"], "data": verbs}))
            elif msg["type"] == "call:status" and msg["data"]["call_status"] == "in-progress":
                # once jambonz listens: a command in the same read as the ack would be lost
                redirect = {"call_hook": app.base + "/next"}
                await ws.send(json.dumps({"type": "command", "command": "redirect", "data": redirect}))

    with serving(conn, "/ws") as url:
        result = sim.call(url, Caller(hangup_after=60), options=FAST)
    assert result.said == ["please hold", "from the webhook"]
    [redirect] = app.got
    assert redirect.method == "POST" and redirect.json["call_sid"] == result.call_sid


def test_the_labs_own_services_run_as_a_webhook_app(lab: jl.Lab) -> None:
    """The same lab service over HTTP: session:new, the relative actionHook and the status hook."""

    @lab.service("/echo").on("session:new")
    def new(session: jl.Session) -> None:
        @session.on("/echo")
        def echo(msg: jl.Message) -> None:
            session.say(text=f"heard {msg.transcript or msg.digits}").reply()

        session.gather(input=["speech"], actionHook="/echo", say={"text": "hi"}).send()

    url = lab.url.replace("ws://", "http://", 1) + "/echo"
    result = sim.call(url, Caller(inputs=[Speech("one two")]), status_hook=url + "/status")
    assert result.said == ["hi", "heard one two"]
    assert result.statuses() == ["trying", "in-progress", "completed"] and not result.errors


# -- the command line ----------------------------------------------------------------------


def test_jambonz_lab_call_drives_a_webhook_app(webhook: Callable[..., WebhookApp]) -> None:
    """``jambonz-lab call http://… --status-hook URL`` in a real subprocess."""
    app = webhook(gather_app())
    argv = [sys.executable, "-m", "jambonz_lab.lab.cli", "call", app.base + "/call", "--speech", "bob"]
    argv += ["--status-hook", app.base + "/status", "--format", "json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [g.path for g in app.got if g.path != "/status"] == ["/call", "/action"]
    assert [g.json["call_status"] for g in app.to("/status")] == ["trying", "in-progress", "completed"]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert (rows[0]["type"], rows[0]["payload"]["hook"]) == ("session:new", app.base + "/call")


def test_jambonz_lab_call_refuses_status_hook_for_a_socket_app() -> None:
    argv = [
        sys.executable,
        "-m",
        "jambonz_lab.lab.cli",
        "call",
        "ws://127.0.0.1:9/x",
        "--status-hook",
        "http://h/s",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "jambonz-lab: --status-hook and --method are for http(s):// apps"
