"""``lab.rest()``: jambonz's REST API through jambonz-python-sdk's client, each request a row.

Against the simulator's REST API (``sim.RestServer``, a real aiohttp server whose answers are
api-server's, see tests/sim/test_rest.py) and a lab service that the created calls reach.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import jambonz_lab as jl
from jambonz_lab.sim import Caller, DialOutcome, RestServer, SimOptions
from tests.fakejambonz import wait_until

CALLEE = {"type": "phone", "number": "+15550111"}


@pytest.fixture
def server() -> Iterator[RestServer]:
    callee = Caller(answer=DialOutcome(ring=0, talk=600))
    rest = RestServer(callee=callee, options=SimOptions(ack_timeout=2.0)).start()
    try:
        yield rest
    finally:
        rest.stop()


def client(lab: jl.Lab, server: RestServer) -> Any:
    return lab.rest(server.base_url, server.account_sid, server.api_key)


def rest_rows(lab: jl.Lab) -> list[dict[str, Any]]:
    return [r for r in lab.log.rows() if str(r["type"]).startswith("rest:")]


def test_a_call_created_over_rest_reaches_the_lab_and_its_rows_sit_with_it(
    lab: jl.Lab, server: RestServer
) -> None:
    sessions: list[jl.Session] = []

    @lab.service("/outbound").on("session:new")
    def new(session: jl.Session) -> None:
        sessions.append(session)
        session.say(text="this is the lab calling").pause(length=600).send()

    rest = client(lab, server)
    opened = lab.wait_for_session("/outbound", timeout=15)
    sid = rest.create_call(
        from_="+15550100", to=CALLEE, call_hook=lab.url + "/outbound", tag={"n": 1}, **server.speech
    )
    session = opened.result()
    assert session.call_sid == sid and session.data["direction"] == "outbound"
    assert session.data["customerData"] == {"n": 1}
    rows = rest_rows(lab)
    assert [(r["direction"], r["type"], r["call_sid"]) for r in rows] == [
        ("out", "rest:create-call", sid),
        ("in", "rest:create-call", sid),
    ]
    assert rows[0]["payload"]["from"] == "+15550100"  # from_ is sent as from
    assert rows[1]["payload"] == {"answer": sid}
    assert {r["transport"] for r in rows} == {"http"}
    rest.hangup(sid)
    assert server.result(sid, timeout=15).final_status == "completed"


def test_a_live_call_redirected_over_rest_runs_the_new_hook(lab: jl.Lab, server: RestServer) -> None:
    lab.service("/first").on("session:new", lambda s: s.pause(length=600).send())
    redirected: list[jl.Session] = []

    @lab.service("/after").on("session:redirect")
    def after(session: jl.Session) -> None:
        redirected.append(session)
        session.say(text="redirected over REST").hangup().send()

    rest = client(lab, server)
    opened = lab.wait_for_session("/first", timeout=15)
    sid = rest.create_call(from_="+15550100", to=CALLEE, call_hook=lab.url + "/first", **server.speech)
    opened.result()
    rest.redirect(sid, lab.url + "/after")
    result = server.result(sid, timeout=15)
    assert ("say", "redirected over REST") in result.heard
    assert redirected and redirected[0].call_sid == sid
    kinds = [r["type"] for r in rest_rows(lab) if r["direction"] == "out"]
    assert kinds == ["rest:create-call", "rest:update-call"]


def test_list_get_and_the_calls_answers(lab: jl.Lab, server: RestServer) -> None:
    lab.service("/o").on("session:new", lambda s: s.pause(length=600).send())
    rest = client(lab, server)
    opened = lab.wait_for_session("/o", timeout=15)
    sid = rest.create_call(from_="+15550100", to=CALLEE, call_hook=lab.url + "/o", **server.speech)
    opened.result()
    assert sid in [c["call_sid"] for c in rest.calls()]
    assert rest.get(sid)["call_sid"] == sid
    rest.mute(sid)
    rest.hangup(sid)
    server.result(sid, timeout=15)


def test_a_refused_request_is_a_rest_error_and_a_row(lab: jl.Lab, server: RestServer) -> None:
    bad = lab.rest(server.base_url, server.account_sid, "not-the-key")
    with pytest.raises(jl.RestError, match="401") as info:
        bad.create_call(from_="+15550100", to=CALLEE, call_hook=lab.url + "/x", **server.speech)
    assert info.value.status == 401
    answer = [r for r in rest_rows(lab) if r["direction"] == "in"][0]
    assert "401" in answer["note"]
    rest = client(lab, server)
    with pytest.raises(jl.RestError) as missing:
        rest.create_call(from_="+15550100", to=CALLEE, **server.speech)  # no call_hook: 400
    assert missing.value.status == 400
    with pytest.raises(jl.RestError) as gone:
        rest.update("5d1f4f2e-0000-4000-8000-000000000000", call_status="completed")
    assert gone.value.status == 404


def test_an_unreachable_jambonz_is_a_rest_error_with_no_status(lab: jl.Lab) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rest = lab.rest(f"http://127.0.0.1:{port}", "5d1f4f2e-0000-4000-8000-000000000000", "k")
    with pytest.raises(jl.RestError, match="is jambonz reachable") as info:
        rest.calls()
    assert info.value.status is None


def test_bad_arguments_fail_before_any_request(lab: jl.Lab) -> None:
    with pytest.raises(ValueError, match="http"):
        lab.rest("ws://127.0.0.1:1", "a", "k")
    rest = lab.rest("http://127.0.0.1:1", "a", "k")
    with pytest.raises(ValueError, match="JSON values"):
        rest.create_call(to=CALLEE, tag={"x": object()})
    assert rest_rows(lab) == []


def test_the_blocking_methods_refuse_the_loop_thread_and_the_a_twins_work_there(
    lab: jl.Lab, server: RestServer
) -> None:
    got: list[Any] = []
    errors: list[BaseException] = []

    @lab.service("/async").on("session:new")
    async def new(session: jl.Session) -> None:
        session.pause(length=600).send()
        rest = client(lab, server)
        try:
            rest.calls()
        except RuntimeError as exc:
            errors.append(exc)
        got.append(await rest.aget(session.call_sid))
        await rest.aupdate(session.call_sid, call_status="completed")

    rest = client(lab, server)
    sid = rest.create_call(from_="+15550100", to=CALLEE, call_hook=lab.url + "/async", **server.speech)
    server.result(sid, timeout=15)
    wait_until(lambda: got)
    assert "a-twin" in str(errors[0]) and got[0]["call_sid"] == sid
