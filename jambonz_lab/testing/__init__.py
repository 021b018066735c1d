"""Testing jambonz apps with pytest: fixtures (a plugin pytest loads by itself) and assertions.

Installed with jambonz_lab, the plugin (:mod:`jambonz_lab.testing.plugin`) gives every test the
fixtures ``jambonz_lab`` (a started lab), ``jambonz_sim`` (a simulator bound to it) and
``jambonz_caller`` (a caller from steps). The assertions print the call's transcript and hooks
when they fail.

Example::

    from jambonz_lab.testing import assert_heard, assert_status

    def test_greets(jambonz_lab, jambonz_sim):
        svc = jambonz_lab.service("/hi")
        svc.on("session:new")(lambda s: s.say(text="Hi").hangup().send())
        result = jambonz_sim.call("/hi")
        assert_heard(result, "Hi")
        assert_status(result, "completed")
"""

from __future__ import annotations

from .asserts import (
    CallAssertionError,
    assert_heard,
    assert_status,
    assert_turn_latency,
    format_call,
    percentile,
)
from .calls import LabSim, make_caller
from .report import Hook, Line, hooks, transcript, turn_latencies

__all__ = [
    "CallAssertionError",
    "Hook",
    "LabSim",
    "Line",
    "assert_heard",
    "assert_status",
    "assert_turn_latency",
    "format_call",
    "hooks",
    "make_caller",
    "percentile",
    "transcript",
    "turn_latencies",
]
