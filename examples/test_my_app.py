"""Testing a jambonz app with pytest: examples/echo.py, called by the simulated jambonz.

Installing jambonz_lab gives pytest the fixtures ``jambonz_lab`` (a started lab), ``jambonz_sim``
(a simulated jambonz calling it) and ``jambonz_caller`` (a caller from steps). Run:

    pytest examples/test_my_app.py
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from jambonz_lab.sim import Caller
from jambonz_lab.testing import LabSim, assert_heard, assert_status, assert_turn_latency

# the lab runs the app file once started, as `jambonz-lab serve examples/echo.py` does
pytestmark = pytest.mark.jambonz_app(Path(__file__).with_name("echo.py"))


def test_echo_says_back_what_the_caller_said(
    jambonz_sim: LabSim, jambonz_caller: Callable[..., Caller]
) -> None:
    caller = jambonz_caller("I'd like a pizza", ("dtmf", "42#"), None, "goodbye")
    result = jambonz_sim.call("/echo", caller=caller)

    assert_heard(
        result,
        "Say something",
        re.compile(r"You said: I'd like a pizza\b"),
        "You pressed 4 2",
        "I did not hear anything",
        "Goodbye!",
    )
    assert_status(result, "completed")
    assert_turn_latency(result, p95_ms=2000)  # seconds on the call's clock: generous for a shared CI box


def test_echo_over_http_webhooks(jambonz_sim: LabSim) -> None:
    # the lab serves the same app to webhooks: jambonz POSTs each hook, the response holds the verbs
    result = jambonz_sim.call(jambonz_sim.lab.http_url + "/echo", caller=["goodbye"])
    assert_heard(result, "Say something", "Goodbye!")
    assert_status(result, "completed")
