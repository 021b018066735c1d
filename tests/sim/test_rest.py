"""The simulator's REST API (``sim.RestServer``), driven by jambonz-python-sdk's ``JambonzClient``.

Each test runs a real aiohttp server (the lab's loop), a real websockets app (tests/wsapp.py) and
real HTTP requests. The api-server's answers are cited per test: ``accounts.js`` is
jambonz-api-server ``lib/routes/api/accounts.js``; ``update-call.js`` and ``call-session.js`` are
feature-server 0.9.8 ``lib/http-routes/api/update-call.js`` and ``lib/session/call-session.js``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import aiohttp
import pytest
from jambonz_sdk.client import JambonzClient
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

import jambonz_lab as jl
from jambonz_lab import loop, sim
from jambonz_lab.sim import Caller, DialOutcome, RestServer, SimOptions
from tests.fakejambonz import wait_until
from tests.sim.test_http_app import WebhookApp, say
from tests.sim.test_http_app import run as run_on_loop
from tests.simtrace import notes
from tests.wsapp import serving

T = TypeVar("T")
CALLEE = "+15550111"
TAG = {"order": 7, "note": "  padded  "}
PAUSE = [{"verb": "pause", "length": 600}]
REDIRECTED = [{"verb": "say", "text": "redirected"}, {"verb": "pause", "length": 600}]
#: a bridged dial: whisper and mute act while it runs (call-session.js ~1719, ~1813)
DIAL = [{"verb": "dial", "target": [{"type": "phone", "number": "+15550999"}]}]


class App:
    """A WebSocket app that acks session:new with ``first`` and any session:redirect with
    REDIRECTED; ``seen`` is every message it got (appended on the app's thread)."""

    def __init__(self, first: list[dict[str, Any]]) -> None:
        self.first = first
        self.seen: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    async def __call__(self, ws: ServerConnection) -> None:
        try:
            async for frame in ws:
                msg = json.loads(frame)
                with self.lock:
                    self.seen.append(msg)
                ack = {"session:new": self.first, "session:redirect": REDIRECTED}.get(msg["type"])
                if ack is not None or msg["type"] == "verb:hook":
                    await ws.send(json.dumps({"type": "ack", "msgid": msg["msgid"], "data": ack or []}))
        except ConnectionClosed:
            pass

    def of(self, type: str) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.seen if m["type"] == type]

    def statuses(self) -> list[str]:
        return [m["data"]["call_status"] for m in self.of("call:status")]


@contextmanager
def rest(**kw: Any) -> Iterator[RestServer]:
    callee = kw.pop("callee", Caller(answer=DialOutcome(ring=0), dial={"*": DialOutcome(ring=0, talk=600)}))
    server = RestServer(callee=callee, options=SimOptions(ack_timeout=2.0), **kw).start()
    try:
        yield server
    finally:
        server.stop()


def client_of(server: RestServer, **kw: str) -> JambonzClient:
    args = {"base_url": server.base_url, "account_sid": server.account_sid, "api_key": server.api_key}
    return JambonzClient(**{**args, **kw})


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    await asyncio.to_thread(wait_until, predicate, timeout)


def create_body(server: RestServer, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "from": "+15550100",
        "to": {"type": "phone", "number": CALLEE},
        "call_hook": url,
        **server.speech,
        **extra,
    }


def test_create_places_an_outbound_call_that_the_app_hears_as_jambonz_sends_it() -> None:
    """createCall answers 201 {sid, callId} (create-call.js ~331, passed on by accounts.js ~1016);
    the app gets call:status, then session:new with direction outbound and the tag as customerData."""
    app = App(PAUSE)
    with serving(app, "/outbound") as url, rest() as server:

        async def go() -> None:
            async with client_of(server) as client:
                body = create_body(server, url, tag=TAG)
                async with aiohttp.ClientSession() as http:  # the raw answer, as the SDK reads it
                    headers = {"Authorization": f"Bearer {server.api_key}"}
                    resp = await http.post(
                        f"{server.base_url}/v1/Accounts/{server.account_sid}/Calls",
                        json=body,
                        headers=headers,
                    )
                    assert resp.status == 201
                    created = await resp.json()
                assert set(created) == {"sid", "callId"}
                sid = await client.calls.create(create_body(server, url, tag=TAG))
                assert uuid.UUID(sid)
                await until(lambda: any(m.get("call_sid") == sid for m in app.of("session:new")))
                new = next(m for m in app.of("session:new") if m["call_sid"] == sid)
                assert new["data"]["direction"] == "outbound"
                assert new["data"]["customerData"] == {"order": 7, "note": "padded"}  # trimmed (~118)
                assert new["data"]["to"] == CALLEE
                assert new["data"]["account_sid"] == server.account_sid

        run(go())


def test_list_and_get_show_the_calls_as_the_redis_record() -> None:
    """listCalls / retrieveCall (accounts.js ~1024–1070): snake_case, strings but sip_status and
    duration, no objects (customerData dropped by filterNullsAndObjects), filters by exact match."""
    app = App(PAUSE)
    with serving(app, "/outbound") as url, rest() as server:

        async def go() -> None:
            async with client_of(server) as client:
                sid = await client.calls.create(create_body(server, url, tag=TAG))
                await until(lambda: app.of("session:new"))
                record = await client.calls.get(sid)
                assert record["call_sid"] == sid
                assert record["call_status"] == "in-progress"
                assert record["sip_status"] == 200
                assert record["direction"] == "outbound"
                assert record["to"] == CALLEE
                assert record["service_url"].startswith("http://")
                assert "customerData" not in record and "customer_data" not in record
                assert all(isinstance(v, str) for k, v in record.items() if k != "sip_status")
                listed = await client.calls.list()
                assert [c["call_sid"] for c in listed] == [sid]
                assert await client.calls.list({"direction": "inbound"}) == []
                assert [c["call_sid"] for c in await client.calls.list({"callStatus": "in-progress"})] == [
                    sid
                ]
                assert await client.calls.list({"to": "+10000000000"}) == []

        run(go())


def test_redirect_a_live_call_then_hang_it_up() -> None:
    """PUT call_hook: session:redirect to the app, its verbs replace the stack (_lccCallHook,
    call-session.js ~1589); PUT call_status completed hangs up (_lccCallStatus ~1492). Both 202
    "Accepted" (update-call.js ~66). The record stays, completed, with a duration (redis keeps it)."""
    app = App(PAUSE)
    with serving(app, "/outbound") as url, rest() as server:

        async def go() -> None:
            async with client_of(server) as client:
                sid = await client.calls.create(create_body(server, url))
                await until(lambda: app.of("session:new"))
                assert await client.calls.redirect(sid, "/moved") == "Accepted"
                await until(lambda: app.of("session:redirect"))
                assert app.of("session:redirect")[0]["hook"] == "/moved"
                call = await _live(server, sid, app)
                await until(lambda: ("say", "redirected") in call.result.heard)
                assert await client.calls.update(sid, {"call_status": "completed"}) == "Accepted"
                result = await asyncio.to_thread(server.result, sid, 10.0)
                assert result.final_status == "completed"
                assert result.termination_by == "jambonz"
                await until(lambda: "completed" in app.statuses())
                record = await client.calls.get(sid)
                assert record["call_status"] == "completed"
                assert isinstance(record["duration"], int)
                assert record["call_termination_by"] == "jambonz"
                with pytest.raises(aiohttp.ClientResponseError) as gone:  # update-call.js ~16: 422 text
                    await client.calls.update(sid, {"call_status": "completed"})
                assert gone.value.status == 422

        run(go())


def test_whisper_and_mute_during_a_dial() -> None:
    """whisper and mute_status act on a running dial (call-session.js ~1719–1726, ~1805–1851);
    whisper goes with a mute in one request (validateUpdateCall ~316: whisper is allowed alongside)."""
    app = App(DIAL)
    with serving(app, "/outbound") as url, rest() as server:

        async def go() -> None:
            async with client_of(server) as client:
                sid = await client.calls.create(create_body(server, url))
                call = await _live(server, sid, app)
                await until(lambda: call.current is not None and call.current.get("verb") == "dial")
                await client.calls.whisper(sid, {"verb": "say", "text": "psst"})
                await until(lambda: ("whisper", "psst") in call.result.heard)
                await client.calls.update(
                    sid, {"mute_status": "mute", "whisper": {"verb": "say", "text": "muted now"}}
                )
                await until(lambda: ("whisper", "muted now") in call.result.heard)
                assert "mute:status mute" in notes(call.result, "command")
                await client.calls.update(sid, {"call_status": "completed"})
                await asyncio.to_thread(server.result, sid, 10.0)

        run(go())


async def _live(server: RestServer, sid: str, app: App) -> sim.SimCall:
    await until(lambda: app.of("session:new"))
    call = server.sim_call(sid)
    assert call is not None
    return call


def test_delete_removes_the_record_but_the_call_goes_on() -> None:
    """deleteCall (accounts.js ~1073; realtimedb-helpers delete-call.js): 204, only the redis record
    goes; the call is not hung up, and the API no longer knows it (404 on GET and PUT)."""
    app = App(PAUSE)
    with serving(app, "/outbound") as url, rest() as server:

        async def go() -> None:
            async with client_of(server) as client:
                sid = await client.calls.create(create_body(server, url))
                call = await _live(server, sid, app)
                assert await client.calls.delete(sid) is None
                assert not call.over
                for attempt in (
                    client.calls.get(sid),
                    client.calls.update(sid, {"call_status": "completed"}),
                ):
                    with pytest.raises(aiohttp.ClientResponseError) as missing:
                        await attempt
                    assert missing.value.status == 404
                call.end("jambonz")  # the test hangs it up itself

        run(go())


def test_no_answer_while_ringing_cancels_and_not_after_the_answer() -> None:
    """call_status no-answer needs a ringing outbound call (update-call.js ~23–28): while it rings
    the INVITE is CANCELed (487, call-session.js ~1503–1510); once answered it is a 422."""
    app = App(PAUSE)
    with serving(app, "/outbound") as url, rest(callee=Caller(answer=DialOutcome(ring=600))) as server:

        async def go() -> None:
            async with client_of(server) as client:
                sid = await client.calls.create(create_body(server, url))
                await until(lambda: "ringing" in app.statuses())
                assert await client.calls.update(sid, {"call_status": "no-answer"}) == "Accepted"
                result = await asyncio.to_thread(server.result, sid, 10.0)
                assert (result.final_status, result.sip_status) == ("no-answer", 487)
                assert not app.of("session:new")

        run(go())


def _raw(server: RestServer, method: str, path: str, **kw: Any) -> tuple[int, str, dict[str, str]]:
    async def go() -> tuple[int, str, dict[str, str]]:
        async with aiohttp.ClientSession() as http:
            resp = await http.request(method, f"{server.base_url}/v1/Accounts/{path}", **kw)
            return resp.status, await resp.text(), dict(resp.headers)

    return run(go())


def test_auth_failures_answer_as_passport_and_the_api_server() -> None:
    """No token: 401 ``Unauthorized`` with ``WWW-Authenticate: Bearer realm="Users"``; a wrong one
    adds ``error="invalid_token"`` (passport-http-bearer strategy.js ~142, ~153; passport
    authenticate.js ~170–177). Another account's sid: validateRequest's DbErrorForbidden, which
    sysError maps to 500 {"msg": "insufficient permissions"} (accounts.js ~53–66, error.js ~20);
    a sid that is not a uuid: 400 {"msg": "Bad request"} (utils.js ~140)."""
    with rest() as server:
        status, text, headers = _raw(server, "GET", f"{server.account_sid}/Calls")
        assert (status, text, headers["WWW-Authenticate"]) == (401, "Unauthorized", 'Bearer realm="Users"')
        auth = {"Authorization": "Bearer nope"}
        status, text, headers = _raw(server, "GET", f"{server.account_sid}/Calls", headers=auth)
        assert (status, text) == (401, "Unauthorized")
        assert headers["WWW-Authenticate"] == 'Bearer realm="Users", error="invalid_token"'
        status, text, _ = _raw(server, "GET", f"{server.account_sid}/Calls", headers={"Authorization": "x"})
        assert (status, text) == (400, "Bad Request")

        async def go() -> None:
            other = str(uuid.uuid4())
            async with client_of(server, account_sid=other) as client:
                with pytest.raises(aiohttp.ClientResponseError) as forbidden:
                    await client.calls.list()
                assert forbidden.value.status == 500
            async with client_of(server, api_key="wrong") as client:
                with pytest.raises(aiohttp.ClientResponseError) as unauthorized:
                    await client.calls.list()
                assert unauthorized.value.status == 401
            async with client_of(server) as client:
                with pytest.raises(aiohttp.ClientResponseError) as bad_sid:
                    await client.calls.count()  # GET /Calls/count: "count" is no call sid
                assert bad_sid.value.status == 400

        run(go())
        good = {"Authorization": f"Bearer {server.api_key}"}
        status, text, _ = _raw(server, "GET", f"{uuid.uuid4()}/Calls", headers=good)
        assert (status, json.loads(text)) == (500, {"msg": "insufficient permissions"})
        status, text, _ = _raw(server, "GET", "not-a-uuid/Calls", headers=good)
        assert (status, json.loads(text)) == (400, {"msg": "Bad request"})
        status, text, _ = _raw(server, "GET", f"{server.account_sid}/CallCount", headers=good)
        assert (status, json.loads(text)) == (200, {"inbound": 0, "outbound": 0})


@pytest.mark.parametrize(
    ("change", "status", "body"),
    [
        ({"from": None}, 400, {"msg": "missing from parameter"}),
        ({"to": {"type": "phone"}}, 400, {"msg": 'missing or invalid to property: {"type":"phone"}'}),
        ({"speech_synthesis_voice": None}, 400, None),  # accounts.js ~433–441
        ({"call_hook": None}, 400, {"msg": "either call_hook or application_sid required"}),
        ({"call_hook": "/relative"}, 400, {"msg": "call_hook url be an absolute url"}),
        ({"call_hook": {"method": "GET"}}, 400, None),
        ({"tag": ["not", "an", "object"]}, 500, "Internal Server Error"),  # the feature server's 400
        ({"timeout": "soon"}, 500, "Internal Server Error"),
    ],
)
def test_create_refusals(change: dict[str, Any], status: int, body: Any) -> None:
    """validateCreateCall (accounts.js ~399–473) answers 400 {msg}; what the feature server's
    createCallSchema refuses (schemas/create-call.js) comes back as a bare 500 (accounts.js ~1010)."""
    with rest() as server:
        payload = {
            k: v for k, v in {**create_body(server, "ws://127.0.0.1:9/x"), **change}.items() if v is not None
        }
        good = {"Authorization": f"Bearer {server.api_key}"}
        got, text, _ = _raw(server, "POST", f"{server.account_sid}/Calls", json=payload, headers=good)
        assert got == status
        if isinstance(body, dict):
            assert json.loads(text) == body
        elif body is not None:
            assert text == body
        else:
            assert "msg" in json.loads(text)
        listed = _raw(server, "GET", f"{server.account_sid}/Calls", headers=good)
        assert listed[:2] == (200, "[]")  # nothing was placed


@pytest.mark.parametrize(
    ("update", "msg"),
    [
        ({}, "no valid options supplied to updateCall"),
        ({"agent_update": {"x": 1}}, "no valid options supplied to updateCall"),  # the SDK's update_agent
        (
            {"call_status": "completed", "mute_status": "mute"},
            "multiple options are not allowed in updateCall",
        ),
        ({"call_status": "busy"}, "invalid call_status"),
        ({"mute_status": "loud"}, "invalid mute_status"),
        ({"dtmf": {"duration": 100}}, "invalid dtmf"),
        (
            {"sip_request": {"method": "INFO"}},
            "sip_request requires method, content_type and content properties",
        ),
        (
            {"record": {"action": "startCallRecording"}},
            "record requires siprecServerURL property when starting recording",
        ),
    ],
)
def test_update_refusals(update: dict[str, Any], msg: str) -> None:
    """validateUpdateCall (accounts.js ~293–379): 400 {msg}, checked before the call is looked up."""
    with rest() as server:
        good = {"Authorization": f"Bearer {server.api_key}"}
        status, text, _ = _raw(
            server, "PUT", f"{server.account_sid}/Calls/{uuid.uuid4()}", json=update, headers=good
        )
        assert (status, json.loads(text)) == (400, {"msg": msg})


def test_update_an_unknown_call_is_404_and_bad_json_is_400() -> None:
    """retrieveCall finds nothing: sendStatus(404) (accounts.js ~1150); express.json's parse error: 400."""
    with rest() as server:
        good = {"Authorization": f"Bearer {server.api_key}"}
        path = f"{server.account_sid}/Calls/{uuid.uuid4()}"
        assert _raw(server, "PUT", path, json={"call_status": "completed"}, headers=good)[:2] == (
            404,
            "Not Found",
        )
        status, text, _ = _raw(
            server,
            "POST",
            f"{server.account_sid}/Calls",
            data="{nope",
            headers={**good, "Content-Type": "application/json"},
        )
        assert status == 400 and "msg" in json.loads(text)


def test_sip_request_answers_200_with_the_response_and_fails_before_the_answer() -> None:
    """sip_request: 200 {status, reason} (update-call.js ~55–60); before the answer _lccSipRequest
    returns nothing and reading its status throws: 500 (call-session.js ~1748, update-call.js ~57)."""
    app = App(PAUSE)
    with serving(app, "/outbound") as url, rest(callee=Caller(answer=DialOutcome(ring=600))) as server:
        info = {"sip_request": {"method": "INFO", "content_type": "text/plain", "content": "hi"}}

        async def go() -> None:
            async with client_of(server) as client:
                sid = await client.calls.create(create_body(server, url))
                await until(lambda: "ringing" in app.statuses())
                with pytest.raises(aiohttp.ClientResponseError) as early:
                    await client.calls.update(sid, info)
                assert early.value.status == 500
                await client.calls.update(sid, {"call_status": "no-answer"})
                await asyncio.to_thread(server.result, sid, 10.0)

        run(go())
    app = App(PAUSE)
    with serving(app, "/outbound") as url, rest() as server:

        async def answered() -> None:
            async with client_of(server) as client:
                sid = await client.calls.create(create_body(server, url))
                call = await _live(server, sid, app)
                assert await client.calls.update(sid, info) == {"status": 200, "reason": "OK"}
                assert "sip:request INFO" in notes(call.result, "command")
                await client.calls.update(sid, {"call_status": "completed"})
                await asyncio.to_thread(server.result, sid, 10.0)

        run(answered())


def test_a_lab_app_called_by_a_rest_server_started_on_the_loop(lab: jl.Lab) -> None:
    """In-process: the server started by a coroutine on the lab's loop (``astart``), the call to a
    lab service; the session opens outbound with the tag; PUT tag replaces the customerData
    (_lccTag, call-session.js ~1701), which the next hook carries."""

    @lab.service("/out").on("session:new")
    def new(session: jl.Session) -> None:
        session.pause(length=600).send()

    server = RestServer(callee=Caller(answer=DialOutcome(ring=0)))
    loop.submit(server.astart()).result(10)
    try:

        async def go() -> str:
            async with client_of(server) as client:
                opened = lab.wait_for_session(
                    "/out"
                )  # armed first: the session may open before create returns
                sid: str = await client.calls.create(create_body(server, lab.url + "/out", tag=TAG))
                session = await asyncio.to_thread(opened.result, 10)
                assert (session.call_sid, session.direction) == (sid, "outbound")
                assert session.data["customerData"] == {"order": 7, "note": "padded"}
                await client.calls.update(sid, {"tag": {"order": 8}})
                call = server.sim_call(sid)
                assert call is not None and call.customer_data == {"order": 8}
                await client.calls.update(sid, {"call_status": "completed"})
                return sid

        sid = run(go())
        result = server.result(sid, 10.0)
        [final] = [
            m
            for m in result.messages("sent", "call:status")
            if m.payload["data"]["call_status"] == "completed"
        ]
        assert final.payload["data"]["customerData"] == {"order": 8}
    finally:
        loop.submit(server.astop()).result(15)


def test_an_http_webhook_app_gets_the_call_by_its_method_and_statuses_on_its_status_hook() -> None:
    """A call_hook with an http(s) URL gets an HttpRequestor with the hook's method, and a
    call_status_hook its own notifier (create-call.js ~247–265): session:new by GET here, the
    statuses POSTed to /status; PUT call_status completed ends it as for a socket app."""
    app = WebhookApp({"/call": lambda got: [*say("hello").to_list(), {"verb": "pause", "length": 600}]})
    run_on_loop(app.start())
    try:
        with rest() as server:

            async def go() -> str:
                async with client_of(server) as client:
                    hooks = {"call_hook": {"url": app.base + "/call", "method": "GET"}}
                    body = {**create_body(server, ""), **hooks, "call_status_hook": app.base + "/status"}
                    sid: str = await client.calls.create(body)
                    await until(lambda: app.to("/call"))
                    call = server.sim_call(sid)
                    assert call is not None
                    await until(lambda: ("say", "hello") in call.result.heard)
                    await client.calls.update(sid, {"call_status": "completed"})
                    return sid

            sid = run(go())
            result = server.result(sid, 10.0)
            assert result.final_status == "completed"
            [first] = app.to("/call")
            assert (first.method, first.body) == ("GET", ""), first.query
            statuses = [g.json["call_status"] for g in app.to("/status")]
            assert statuses[0] == "trying" and statuses[-1] == "completed"
            assert all(g.method == "POST" for g in app.to("/status"))
    finally:
        run_on_loop(app.stop())


def test_a_callee_function_decides_per_target_and_its_failure_places_nothing() -> None:
    """``callee`` as a function of createCall's ``to``: a busy callee ends the call busy (486,
    create-call.js ~389) and the record says so; a callee function that raises is a 500 {msg}."""
    seen: list[dict[str, Any]] = []

    def callee(to: dict[str, Any]) -> Caller:
        seen.append(to)
        if to.get("number") == "+15550666":
            raise RuntimeError("no such party")
        return Caller(answer=DialOutcome("busy", ring=0))

    app = App(PAUSE)
    with serving(app, "/outbound") as url, rest(callee=callee) as server:

        async def go() -> None:
            async with client_of(server) as client:
                sid = await client.calls.create(create_body(server, url))
                result = await asyncio.to_thread(server.result, sid, 10.0)
                assert (result.final_status, result.sip_status) == ("busy", 486)
                record = await client.calls.get(sid)
                assert (record["call_status"], record["sip_status"]) == ("busy", 486)
                assert not app.of("session:new")
                body = create_body(server, url, to={"type": "phone", "number": "+15550666"})
                with pytest.raises(aiohttp.ClientResponseError) as failed:
                    await client.calls.create(body)
                assert failed.value.status == 500
                assert [c["call_sid"] for c in await client.calls.list()] == [sid]

        run(go())
    assert [t["number"] for t in seen] == [CALLEE, "+15550666"]
