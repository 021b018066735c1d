"""The pytest plugin, run as a user runs it: a small test file in a pytester run.

The user files call an in-process lab service over its WebSocket and over HTTP webhooks
(``lab.http_url``: the same server answers each hook's POST with the verbs, as an HTTP app does
for jambonz's ``HttpRequestor``, feature-server 0.9.8 ``lib/utils/http-requestor.js`` ~112–217).
The one latency threshold that must fail comes from an app that sleeps 1.5 s in a hook handler
against a limit of 300 ms: a margin no loaded machine closes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import jambonz_lab.sim  # noqa: F401 - imported before pytester's module snapshot: one copy of its classes
import jambonz_lab.testing.plugin  # noqa: F401

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).parent.parent.parent / "examples"

APP = """
import re, time
import pytest
from jambonz_lab.testing import assert_heard, assert_status, assert_turn_latency

@pytest.fixture
def echo(jambonz_lab):
    svc = jambonz_lab.service("/echo")

    @svc.on("session:new")
    def new(session):
        @session.on("/said")
        def said(msg):
            if "slow" in (msg.transcript or ""):
                time.sleep(1.5)  # the deliberately slow app
            session.say(text=f"You said: {msg.transcript}").hangup().reply()

        session.gather(input=["speech"], actionHook="/said", timeout=5, say={"text": "Say something"}).send()
    return jambonz_lab
"""


def run(pytester: pytest.Pytester, body: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_user=APP + body)
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_passing_runs_pass_over_a_socket_and_over_http(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.mark.parametrize("http", [False, True])
def test_echo(echo, jambonz_sim, jambonz_caller, http):
    target = echo.http_url + "/echo" if http else "/echo"
    result = jambonz_sim.call(target, caller=jambonz_caller("hello there"))
    assert_heard(result, "Say something", re.compile(r"You said: hello\\b"))
    assert_status(result, "completed")
    assert_turn_latency(result, p95_ms=1000)

def test_a_ws_url(echo, jambonz_sim):
    assert_heard(jambonz_sim.call(echo.url + "/echo", caller=["hi"]), "You said: hi")
""",
    )
    result.assert_outcomes(passed=3)


def test_a_failing_assert_heard_prints_both_sides_and_the_hooks(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_echo(echo, jambonz_sim):
    assert_heard(jambonz_sim.call("/echo", caller=["hello"]), "Say something", "You said: goodbye")
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the caller did not hear 'You said: goodbye' after 'Say something' (expectation 2 of 2)",
            "*transcript (seconds into the call):",
            "*  app     say 'Say something'",
            "*caller  said 'hello'",
            "*app     say 'You said: hello'",
            "*call    completed (ended by jambonz)",
            "*hooks:",
            "*session:new*gather",
            "*/said*reason=speechDetected transcript='hello'*say, hangup",
        ]
    )


def test_assert_status_fails_with_the_status(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_echo(echo, jambonz_sim):
    assert_status(jambonz_sim.call("/echo", caller=["hello"]), "busy")
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the call ended 'completed', not 'busy'", "*transcript*"])


@pytest.mark.parametrize("http", [False, True], ids=["socket", "http"])
def test_turn_latency_passes_and_fails_on_its_threshold(pytester: pytest.Pytester, http: bool) -> None:
    result = run(
        pytester,
        f"""
def test_slow(echo, jambonz_sim):
    target = echo.http_url + "/echo" if {http} else "/echo"
    result = jambonz_sim.call(target, caller=["be slow"])
    assert_turn_latency(result, max_ms=60_000)
    assert_turn_latency(result, p95_ms=300)
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*turn latency p95 * ms > 300 ms (turns, ms: *)", "*/said*say, hangup"])


def test_a_call_without_turns_has_no_latency_to_pass(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_none(echo, jambonz_sim):
    assert_turn_latency(jambonz_sim.call("/echo", caller=jambonz_caller_hangs_up()), p95_ms=1000)

def jambonz_caller_hangs_up():
    from jambonz_lab.testing import make_caller
    return make_caller(hangup_after=0.5)
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no turn to measure*", "*call    completed (ended by caller)"])


def test_a_plain_assert_gets_the_calls_in_the_report(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_plain(echo, jambonz_sim):
    assert jambonz_sim.call("/echo", caller=["hello"]).said == []
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*jambonz calls*", "*caller  said 'hello'"])


def test_bad_targets_and_steps_fail_clearly(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_target(jambonz_sim):
    with pytest.raises(ValueError, match="use a /path of the lab"):
        jambonz_sim.call("echo")

def test_step(jambonz_caller):
    with pytest.raises(ValueError, match="caller step 3"):
        jambonz_caller(3)
""",
    )
    result.assert_outcomes(passed=2)


def test_the_entry_point_loads_the_plugin_and_it_stays_inert(pytester: pytest.Pytester) -> None:
    """In a fresh interpreter: the fixtures come without ``pytest_plugins``; a test that asks for none
    gets no lab, no simulator and no widget library imported."""
    pytester.makepyfile(
        test_inert="""
import sys

def test_inert():
    loaded = {"jambonz_lab.sim", "anywidget", "ipywidgets", "pandas"} & set(sys.modules)
    assert not loaded

def test_fixture(jambonz_sim):
    assert jambonz_sim.lab.running
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:pytester")
    result.assert_outcomes(passed=2)


def test_the_example_passes(pytester: pytest.Pytester) -> None:
    for name in ("test_my_app.py", "echo.py"):
        shutil.copy(EXAMPLES / name, pytester.path / name)
    result = pytester.runpytest("-p", "no:cacheprovider", "test_my_app.py")
    result.assert_outcomes(passed=2)
