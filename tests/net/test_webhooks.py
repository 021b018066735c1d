"""The app server as an HTTP webhook app: the same services and handlers, jambonz's hooks as requests.

jambonz's side of HTTP is feature-server 0.9.8 ``lib/utils/http-requestor.js``: a POST of the
snake-cased payload as JSON (``Content-Type: application/json``), ``User-Agent: jambonz``, a
``Jambonz-Signature`` header when the account has a webhook secret, and a 200/202/204 whose JSON
body is the verb array to run (``~150–175``).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

import jambonz_lab as jl
from jambonz_lab.protocol.signature import sign
from tests.fakejambonz import FakeJambonz, call_data, http, lab_rows, wait_until


def post(
    url: str, payload: Any, *, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> tuple[int, Any]:
    """POST as jambonz's HttpRequestor does; the status and the parsed JSON body (or the text)."""
    body = raw if raw is not None else json.dumps(payload).encode()
    hdrs = {"Content-Type": "application/json", "User-Agent": "jambonz", **(headers or {})}
    req = urllib.request.Request(url.replace("ws://", "http://"), data=body, headers=hdrs, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            text = resp.read().decode()
            return resp.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def keep_and_say(sessions: list[jl.Session], text: str = "x") -> Callable[[jl.Session], None]:
    """A session:new handler that keeps the session and answers with one say."""

    def new(session: jl.Session) -> None:
        sessions.append(session)
        session.say(text=text).send()

    return new


def rows_of(lab: jl.Lab, sid: str) -> list[dict[str, Any]]:
    return [r for r in lab.log.rows() if r["call_sid"] == sid]


class TestOneAppTwoTransports:
    def test_the_calling_hook_runs_session_new_and_the_reply_is_the_body(self, lab: jl.Lab) -> None:
        """A POST to the service path is session:new; what the handler sends is the response."""
        seen: list[jl.Session] = []

        @lab.service("/app").on("session:new")
        def new(session: jl.Session) -> None:
            seen.append(session)
            session.say(text=f"Hello {session.data['from']}").gather(actionHook="/digits", input=["digits"])
            session.send()

        status, verbs = post(lab.url + "/app", call_data("h-1"))
        assert status == 200
        assert verbs == [
            {"verb": "say", "text": "Hello +14155550100"},
            {"verb": "gather", "actionHook": "/digits", "input": ["digits"]},
        ]
        assert seen[0].call_sid == "h-1"

    def test_the_same_handlers_serve_websocket_and_http_with_the_same_rows(self, lab: jl.Lab) -> None:
        """One service: a WebSocket call and a webhook call get the same verbs; the rows differ only
        in ``transport``."""
        svc = lab.service("/both")

        @svc.on("session:new")
        def new(session: jl.Session) -> None:
            @session.on("/next")  # before send(): the hook may come back at once
            def nxt(msg: jl.Message) -> None:
                session.say(text=f"you said {msg.data['speech']['alternatives'][0]['transcript']}")
                session.reply()

            session.say(text="hi").gather(actionHook="/next", input=["speech"]).send()

        speech = {"speech": {"alternatives": [{"transcript": "yes", "confidence": 0.9}]}}
        with FakeJambonz(lab.url + "/both", call_sid="ws-1") as fj:
            fj.session_new()
            ws_first = fj.recv()["data"]
            fj.hook("/next", **speech)
            ws_second = fj.recv()["data"]
        _, http_first = post(lab.url + "/both", call_data("http-1"))
        _, http_second = post(lab.url + "/next", {**call_data("http-1"), **speech})
        assert http_first == ws_first and http_second == ws_second == [
            {"verb": "say", "text": "you said yes"}
        ]

        def shape(sid: str) -> list[tuple[str, str, str | None]]:
            rows = [r for r in rows_of(lab, sid) if r["direction"] != "lab" and r["type"] != "call:status"]
            return [(r["direction"], r["type"], r["hook"]) for r in rows]

        assert (
            shape("http-1")
            == shape("ws-1")
            == [
                ("in", "session:new", None),
                ("out", "ack", None),
                ("in", "verb:hook", "/next"),
                ("out", "ack", None),
            ]
        )
        transports = {r["call_sid"]: r["transport"] for r in lab.log.rows() if r["direction"] == "in"}
        assert transports == {"ws-1": "ws", "http-1": "http"}
        calls = lab.calls.set_index("call_sid")
        assert {"ws-1", "http-1"} <= set(calls.index)

    def test_a_hook_nobody_handles_is_answered_with_an_empty_array(self, lab: jl.Lab) -> None:
        lab.service("/quiet").on("session:new", lambda s: s.say(text="x").send())
        post(lab.url + "/quiet", call_data("q-1"))
        status, verbs = post(lab.url + "/unhandled", {**call_data("q-1"), "reason": "timeout"})
        assert (status, verbs) == (200, [])

    def test_a_handler_that_raises_is_reported_and_the_call_goes_on(self, lab: jl.Lab) -> None:
        @lab.service("/boom").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/bad", lambda msg: 1 / 0)
            session.say(text="menu").send()

        post(lab.url + "/boom", call_data("b-1"))
        status, verbs = post(lab.url + "/bad", call_data("b-1"))
        assert (status, verbs) == (200, [])
        wait_until(lambda: lab_rows(lab, "handler-error"))
        assert "ZeroDivisionError" in lab_rows(lab, "handler-error")[0]["note"]
        assert post(lab.url + "/bad", call_data("b-1"))[0] == 200  # the session still answers

    def test_a_coroutine_handler_and_wait_for_step_through_a_webhook_call(self, lab: jl.Lab) -> None:
        got: list[Any] = []

        @lab.service("/step").on("session:new")
        async def new(session: jl.Session) -> None:
            session.gather(actionHook="/g", input=["digits"]).send()
            msg = await session.wait_for("/g")
            got.append(msg.data["digits"])
            session.say(text="thanks").hangup().send()  # over HTTP: the answer to /g

        assert post(lab.url + "/step", call_data("s-1"))[1] == [
            {"verb": "gather", "actionHook": "/g", "input": ["digits"]}
        ]
        assert post(lab.url + "/g", {**call_data("s-1"), "digits": "42"})[1] == [
            {"verb": "say", "text": "thanks"},
            {"verb": "hangup"},
        ]
        assert got == ["42"]


class TestWhatHttpCannotDo:
    def test_send_after_the_reply_and_inject_raise_no_socket(self, lab: jl.Lab) -> None:
        sessions: list[jl.Session] = []
        lab.service("/cmd").on("session:new", keep_and_say(sessions))
        post(lab.url + "/cmd", call_data("c-1"))
        session = sessions[0]
        with pytest.raises(jl.NoSocket, match="REST API"):
            session.say(text="later").send()
        with pytest.raises(jl.NoSocket, match="mute:status command needs a socket"):
            session.inject_mute()
        # nothing is lost: the refused verbs stay queued for the next hook's answer
        assert session.queued == [{"verb": "say", "text": "later"}]

    def test_send_inside_a_later_hook_answers_that_hook(self, lab: jl.Lab) -> None:
        """Over HTTP, a send() while a hook waits is that hook's answer (there is no redirect)."""

        @lab.service("/later").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/h", lambda msg: session.say(text="two").send())
            session.say(text="one").send()

        post(lab.url + "/later", call_data("l-1"))
        assert post(lab.url + "/h", call_data("l-1"))[1] == [{"verb": "say", "text": "two"}]


class TestStatusAndEnd:
    def test_status_hook_is_recorded_and_a_final_status_ends_the_session(self, lab: jl.Lab) -> None:
        sessions: list[jl.Session] = []
        closes: list[jl.SocketClose] = []

        @lab.service("/app").on("session:new")
        def new(session: jl.Session) -> None:
            sessions.append(session)
            session.on("close", closes.append)
            session.say(text="bye").hangup().send()

        post(lab.url + "/app", call_data("st-1"))
        assert post(lab.url + "/app/status", call_data("st-1", call_status="in-progress"))[0] == 200
        assert sessions[0].status == "in-progress" and not sessions[0].closed
        post(lab.url + "/app/status", call_data("st-1", call_status="completed", duration=3))
        wait_until(lambda: closes)
        assert closes == [jl.SocketClose(None, True)] and sessions[0].closed
        statuses = [r for r in rows_of(lab, "st-1") if r["type"] == "call:status"]
        assert [r["transport"] for r in statuses] == ["http", "http"]
        assert lab.calls.set_index("call_sid").loc["st-1", "final_status"] == "completed"

    def test_an_idle_webhook_call_is_ended_by_the_sweeper(self) -> None:
        lab = jl.start(grace=0.3, webhook_idle=0.5)
        try:
            sessions: list[jl.Session] = []
            lab.service("/idle").on("session:new", keep_and_say(sessions))
            post(lab.url + "/idle", call_data("i-1"))
            wait_until(lambda: sessions and sessions[0].closed, timeout=10)
            assert "no webhook request for 0.5 s" in lab_rows(lab, "close")[0]["note"]
        finally:
            lab.stop()


class TestBadInput:
    def test_a_body_that_is_not_a_json_object_is_400_and_logged(self, lab: jl.Lab) -> None:
        lab.service("/app")
        status, text = post(lab.url + "/app", None, raw=b"{not json")
        assert status == 400 and "not a JSON object" in text
        status, _ = post(lab.url + "/app", [1, 2])
        assert status == 400
        assert len(lab_rows(lab, "webhook-refused")) == 2

    def test_a_hook_for_no_service_and_no_call_is_404(self, lab: jl.Lab) -> None:
        lab.service("/app")
        status, text = post(lab.url + "/elsewhere", call_data("nobody"))
        assert status == 404 and "no live call nobody" in text

    def test_an_http_hook_for_a_websocket_call_is_refused(self, lab: jl.Lab) -> None:
        lab.service("/ws").on("session:new", lambda s: s.say(text="x").send())
        with FakeJambonz(lab.url + "/ws", call_sid="mix-1") as fj:
            fj.session_new()
            fj.recv()
            status, text = post(lab.url + "/ws", call_data("mix-1"))
        assert status == 409 and "served over WebSocket" in text

    def test_basic_auth_applies_to_webhooks_too(self) -> None:
        lab = jl.start(grace=0.3, auth=("jambonz", "s3cret"))
        try:
            lab.service("/app").on("session:new", lambda s: s.say(text="ok").send())
            assert post(lab.url + "/app", call_data("a-1"))[0] == 401
            import base64

            token = base64.b64encode(b"jambonz:s3cret").decode()
            good = post(lab.url + "/app", call_data("a-1"), headers={"Authorization": f"Basic {token}"})
            assert good == (200, [{"verb": "say", "text": "ok"}])
        finally:
            lab.stop()


class TestSignature:
    def test_with_a_secret_only_signed_requests_get_through(self) -> None:
        secret = "wh_secret_abc"
        lab = jl.start(grace=0.3, webhook_secret=secret)
        try:
            lab.service("/app").on("session:new", lambda s: s.say(text="signed").send())
            body = json.dumps(call_data("sig-1"))
            status, text = post(lab.url + "/app", None, raw=body.encode())
            assert status == 403 and "no Jambonz-Signature header" in text
            forged = sign(body, "another secret")
            assert (
                post(lab.url + "/app", None, raw=body.encode(), headers={"Jambonz-Signature": forged})[0]
                == 403
            )
            stale = sign(body, secret, timestamp=int(time.time()) - 3600)
            assert (
                post(lab.url + "/app", None, raw=body.encode(), headers={"Jambonz-Signature": stale})[0]
                == 403
            )
            good = sign(body, secret)
            status, verbs = post(
                lab.url + "/app", None, raw=body.encode(), headers={"Jambonz-Signature": good}
            )
            assert (status, verbs) == (200, [{"verb": "say", "text": "signed"}])
            assert len(lab_rows(lab, "webhook-refused")) == 3
        finally:
            lab.stop()

    def test_our_signature_and_the_sdks_agree(self) -> None:
        """jambonz-python-sdk's verifier (its webhook middleware's) accepts what our sign() writes,
        and our server accepts what the lab's simulator and jambonz write: the same HMAC of
        ``"<t>.<body>"`` (base-requestor.js ``_generateSigHeader`` ~59)."""
        from jambonz_sdk._signature import verify_signature

        secret = "sdk-secret"
        body = json.dumps(call_data("sdk-1"))
        assert verify_signature(body.encode(), sign(body, secret), secret) is True
        with pytest.raises(ValueError):
            verify_signature(body.encode(), sign(body, "wrong"), secret)


class TestGet:
    def test_a_get_hook_from_jambonz_without_a_payload_opens_a_call(self, lab: jl.Lab) -> None:
        """jambonz 0.9.8 sends no payload with GET (http-requestor.js ~190: a body for POST only):
        the call gets a made-up sid and a row says why."""
        lab.service("/g").on("session:new", lambda s: s.say(text="via get").send())
        req = urllib.request.Request(
            lab.url.replace("ws://", "http://") + "/g", headers={"User-Agent": "jambonz"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read()) == [{"verb": "say", "text": "via get"}]
        assert "carries no call_sid" in lab_rows(lab, "webhook")[0]["note"]

    def test_a_get_with_a_query_string_takes_its_fields(self, lab: jl.Lab) -> None:
        sessions: list[jl.Session] = []
        lab.service("/q").on("session:new", keep_and_say(sessions, "q"))
        status, _ = http("GET", lab.url + "/q?call_sid=g-2&from=%2B1555")
        assert status == 200 and sessions[0].data["from"] == "+1555" and sessions[0].call_sid == "g-2"

    def test_a_bare_get_from_a_browser_still_gets_the_hint(self, lab: jl.Lab) -> None:
        lab.service("/app")
        status, body = http("GET", lab.url + "/app")
        assert status == 426 and "HTTP webhooks" in body


def test_many_webhook_calls_at_once_each_get_their_own_answer(lab: jl.Lab) -> None:
    @lab.service("/par").on("session:new")
    def new(session: jl.Session) -> None:
        session.say(text=session.call_sid).send()

    results: dict[str, Any] = {}

    def one(i: int) -> None:
        results[f"p-{i}"] = post(lab.url + "/par", call_data(f"p-{i}"))[1]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == {f"p-{i}": [{"verb": "say", "text": f"p-{i}"}] for i in range(20)}
