"""config.bargeIn's background gather (feature-server 0.9.8), against a raw app on loopback.

Sources: ``lib/tasks/config.js`` ~32–46, ~249–264; ``lib/session/call-session.js`` ``enableBotMode``
~1011–1049, ``kill(true)`` ~2139–2166, the gather skip ~1360–1368; ``lib/utils/background-task-manager.js``
``_initBargeIn`` ~103–134, ``_bargeInTaskCompleted`` ~210–216.
"""

from __future__ import annotations

from typing import Any

import pytest

from jambonz_lab import sim
from jambonz_lab.sim import Caller, Digits, Speech
from jambonz_lab.sim.caller import Input
from tests.sim.test_verbs_fidelity import FAST, raw_app
from tests.simtrace import notes, sent_hooks

LONG = "This is a long announcement that keeps going for quite a while before it ends at last"


def run(first: list[dict[str, Any]], inputs: list[Input], on_hook: Any = None) -> sim.CallResult:
    with raw_app(first, on_hook) as url:
        return sim.call(url, Caller(inputs=inputs, hangup_after=60), options=FAST)


class TestBargeIn:
    def test_speech_cuts_the_say_and_the_hook_verbs_replace_the_stack(self) -> None:
        """The first interim transcript ('vad') kills the say and clears the stack (~2139–2166,
        background-task-manager.js ~210); the final one sends the actionHook, whose verbs run next
        (gather.js ~1370, task.js ~254)."""
        first: list[dict[str, Any]] = [
            {"verb": "config", "bargeIn": {"enable": True, "input": ["speech"], "actionHook": "/barge"}},
            {"verb": "say", "text": LONG},
            {"verb": "say", "text": "never heard"},
        ]
        result = run(first, [Speech("agent please", after=2)], lambda m: [{"verb": "say", "text": "ok"}])
        hooks = sent_hooks(result, "/barge")
        assert len(hooks) == 1
        t, data = hooks[0]
        assert data["reason"] == "speechDetected"
        assert data["speech"]["alternatives"][0]["transcript"] == "agent please"
        assert t == pytest.approx(2, abs=0.2)
        assert [w for _, w in result.heard] == [LONG, "ok"]
        assert any("killed" in n for n in notes(result, "killed"))

    def test_a_key_cuts_the_verb_but_resolves_nothing(self) -> None:
        """A key ('dtmf', dtmfBargein defaults on for digits, gather.js ~47, ~387) cuts the say; the
        schema allows no numDigits/finishOnKey on bargeIn and its timeout is 0 (config.js ~33–45), so
        nothing resolves the gather: no actionHook."""
        barge = {"enable": True, "input": ["digits"], "actionHook": "/barge"}
        first: list[dict[str, Any]] = [
            {"verb": "config", "bargeIn": barge},
            {"verb": "say", "text": LONG},
            {"verb": "say", "text": "x"},
        ]
        result = run(first, [Digits("5", after=1)])
        assert sent_hooks(result, "/barge") == []
        assert [w for _, w in result.heard] == [LONG]

    def test_sticky_rearms_and_takes_the_next_input(self) -> None:
        """sticky restarts the background gather once done (background-task-manager.js ~120–127)."""
        barge = {"enable": True, "sticky": True, "input": ["speech"], "actionHook": "/barge"}
        first = [{"verb": "config", "bargeIn": barge}]
        result = run(first, [Speech("one", after=2), Speech("two", after=3)])
        said = [d["speech"]["alternatives"][0]["transcript"] for _, d in sent_hooks(result, "/barge")]
        assert said == ["one", "two"]

    def test_without_sticky_it_runs_once(self) -> None:
        """Without sticky the task is gone after its hook (~120)."""
        barge = {"enable": True, "input": ["speech"], "actionHook": "/barge"}
        result = run([{"verb": "config", "bargeIn": barge}], [Speech("one"), Speech("two")])
        assert len(sent_hooks(result, "/barge")) == 1

    def test_disabling_config_in_the_stack_stops_the_clearing(self) -> None:
        """kill(true) clears up to a queued config with bargeIn.enable false and drops its enable
        (call-session.js ~2148–2160): the verbs after it still run."""
        first: list[dict[str, Any]] = [
            {"verb": "config", "bargeIn": {"enable": True, "input": ["speech"]}},
            {"verb": "say", "text": LONG},
            {"verb": "say", "text": "cleared"},
            {"verb": "config", "bargeIn": {"enable": False}},
            {"verb": "say", "text": "kept"},
        ]
        result = run(first, [Speech("stop", after=1)])
        assert [w for _, w in result.heard] == [LONG, "kept"]

    def test_a_gather_while_it_runs_is_skipped_and_lends_its_timeout(self) -> None:
        """A gather verb is skipped, prompt and all; the background gather takes its timeout and resolves
        'timeout' on its own hook (call-session.js ~1360–1368, gather.js ~367–376)."""
        first: list[dict[str, Any]] = [
            {"verb": "config", "bargeIn": {"enable": True, "input": ["speech"], "actionHook": "/barge"}},
            {"verb": "gather", "input": ["speech"], "timeout": 4, "actionHook": "/g", "say": {"text": "hi"}},
        ]
        result = run(first, [])
        assert sent_hooks(result, "/g") == []
        [(t, data)] = sent_hooks(result, "/barge")
        assert data["reason"] == "timeout" and t == pytest.approx(4, abs=0.2)
        assert result.heard == []
