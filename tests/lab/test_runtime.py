"""The lab runtime: start/replace/stop, the default lab, the event log."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from websockets.exceptions import ConnectionClosed

import jambonz_lab as jl
from tests.fakejambonz import FakeJambonz, http


def test_start_returns_once_listening_on_loopback() -> None:
    lab = jl.start()
    try:
        assert lab.host == "127.0.0.1" and lab.port > 0
        assert lab.url == f"ws://127.0.0.1:{lab.port}"
        assert http("GET", lab.url + "/none")[0] == 404
    finally:
        lab.stop()


def test_start_again_on_the_same_port_replaces_the_server() -> None:
    first = jl.start()
    port = first.port
    second = jl.start(port=port)
    try:
        assert not first.running and second.running and second.port == port
        second.service("/").on("session:new", lambda s: s.say(text="second").send())
        with FakeJambonz(second.url, "x") as fj:
            fj.session_new()
            assert fj.recv()["data"] == [{"verb": "say", "text": "second"}]
    finally:
        second.stop()


def test_stop_is_idempotent_and_closes_calls_with_1001() -> None:
    """1001 (going away) makes jambonz reconnect rather than end the call."""
    lab = jl.start()
    lab.service("/").on("session:new", lambda s: s.answer().send())
    fj = FakeJambonz(lab.url, "s")
    fj.session_new()
    fj.recv()
    lab.stop()
    lab.stop()
    with pytest.raises(ConnectionClosed):
        fj.recv(2)
    fj.close()
    assert fj.ws.close_code == 1001
    assert "stopped" in repr(lab)


def test_a_port_in_use_is_a_clear_server_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(jl.ServerError, match=f"cannot listen on 127.0.0.1:{port}"):
            jl.Lab(port=port).start()


def test_services_declared_before_start_are_served() -> None:
    """jambonz_lab.service() before start() declares on the default lab."""
    svc = jl.service("/early")
    svc.on("session:new", lambda s: s.say(text="early bird").send())
    lab = jl.start()
    try:
        assert jl.default_lab() is lab
        with FakeJambonz(lab.url + "/early") as fj:
            fj.session_new()
            assert fj.recv()["data"] == [{"verb": "say", "text": "early bird"}]
    finally:
        lab.stop()


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="grace"):
        jl.start(grace=6)
    with pytest.raises(jl.VerbError):
        jl.start(default_verbs=[{"verb": "sya"}])


def test_events_dataframe_has_both_directions_and_lab_rows(lab: jl.Lab) -> None:
    lab.service("/")
    with FakeJambonz(lab.url, "ev") as fj:
        fj.session_new()
        fj.recv()
    deadline = time.monotonic() + 2
    while len(lab.log) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    df = lab.events
    assert list(df["direction"]) == ["in", "out", "lab", "lab"]
    assert list(df["type"]) == ["session:new", "ack", "auto-ack", "close"]
    assert str(df["ts"].dtype) == "datetime64[ns, UTC]" or "UTC" in str(df["ts"].dtype)
    assert lab.events is df  # cached while nothing changes


def test_the_lifecycle_is_one_state() -> None:
    lab = jl.Lab()
    assert lab.state is jl.LabState.NEW and not lab.running
    lab.start()
    try:
        assert lab.state is jl.LabState.RUNNING and lab.running
        assert "running" in repr(lab)
    finally:
        lab.stop()
    assert lab.state is jl.LabState.STOPPED and not lab.running
    with pytest.raises(jl.ServerError, match="stopped"):
        lab.start()


def test_lab_for_finds_the_lab_of_a_session(lab: jl.Lab) -> None:
    from jambonz_lab.lab import lab_for

    sessions: list[jl.Session] = []

    @lab.service("/").on("session:new")
    def new(s: jl.Session) -> None:
        sessions.append(s)
        s.hangup().send()

    lab.call("/")
    assert lab_for(sessions[0].server) is lab
    assert lab_for(object()) is None  # type: ignore[arg-type]


def test_completion_offers_the_api_and_not_module_leftovers() -> None:
    """``jl.<TAB>`` and ``sim.<TAB>`` (IPython completes from ``dir()``): the public names, without
    ``annotations`` (from ``from __future__ import annotations``) or ``logging``."""
    from jambonz_lab import sim

    names = dir(jl)
    assert "annotations" not in names and "logging" not in names
    assert set(jl.__all__) <= set(names) and "sim" in names and "start" in names
    assert dir(sim) == sorted(sim.__all__)
    assert not hasattr(jl, "annotations") and not hasattr(sim, "annotations")
    assert sim.clock.Clock is sim.Clock  # the submodules stay reachable
    assert "from the start of the verb that takes this input" in (sim.Digits.__doc__ or "")


def test_lab_call_shows_the_simulator_options_in_its_signature() -> None:
    """``lab.call(path, caller, ...)``: options, clock, timeout, direction and tag are keywords that
    completion and help() show, as on ``sim.call``."""
    import inspect

    from jambonz_lab import sim

    mine = inspect.signature(jl.Lab.call).parameters
    theirs = inspect.signature(sim.call).parameters
    for name in ("caller", "clock", "options", "timeout", "direction", "tag"):
        assert mine[name].default == theirs[name].default, name
        assert mine[name].kind == theirs[name].kind, name
    doc = jl.Lab.call.__doc__ or ""
    assert all(f"{name}:" in doc for name in ("options", "timeout", "direction", "tag"))


def test_lab_call_passes_its_keywords_to_the_simulator(lab: jl.Lab) -> None:
    from jambonz_lab import sim

    lab.service("/").on("session:new", lambda s: s.say(text="hi").hangup().send())
    result = lab.call("/", None, "virtual", options=sim.SimOptions(), timeout=30, call_sid="call-kw")
    assert result.call_sid == "call-kw" and result.final_status == "completed"


def test_start_returns_with_the_verb_models_loaded() -> None:
    """Issue 18 item 4: in a fresh process the models are not loaded at import, and are once
    start() returns, so the first call's ack does not pay the SDK's slow import."""
    code = (
        "import jambonz_lab as jl\n"
        "from jambonz_lab.protocol import verbs\n"
        "print(verbs._loaded.is_set())\n"
        "lab = jl.start()\n"
        "print(verbs._loaded.is_set())\n"
        "import gc; print(gc.get_freeze_count() > 100_000)\n"
        "lab.stop()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    # and the objects alive then (the imports, the SDK's models) are frozen out of full collections
    assert out.stdout.splitlines() == ["False", "True", "True"]
