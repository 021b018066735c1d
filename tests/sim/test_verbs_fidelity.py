"""Verb runners against feature-server 0.9.8: gather digits and timing, say/play, hook failures, config.

Each test cites the jambonz-feature-server source it pins (``lib/tasks/*.js``, line approx.).
The app is a plain WebSocket server on loopback (``RawApp``): it acks exactly what the test says,
so an unacked hook or invalid ack verbs reach the simulator as they would reach jambonz.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from jambonz_lab import sim
from jambonz_lab.sim import Caller, Digits, Silence, Speech
from jambonz_lab.sim.caller import Input
from jambonz_lab.sim.verbs.basic import PLAY_SECONDS, speech_seconds
from tests.simtrace import notes, sent, sent_hooks
from tests.wsapp import serving

FAST = sim.SimOptions(idle_wait=0.1, ack_timeout=0.3)
NO_ACK = object()  # a handler result: leave the message unacked
Handler = Callable[[dict[str, Any]], Any]


@contextmanager
def raw_app(
    first: list[dict[str, Any]], on_hook: Handler | None = None, *, redirect_after: float | None = None
) -> Iterator[str]:
    """A jambonz app on a real socket: session:new acked with ``first``; each other message that
    wants an ack gets ``on_hook(msg)`` as its data (``NO_ACK``: none; default: an empty ack);
    ``redirect_after`` real seconds after the session:new ack, a redirect command to a hangup."""

    async def conn(ws: ServerConnection) -> None:
        async for frame in ws:
            msg = json.loads(frame)
            kind = msg.get("type")
            if kind == "session:new":
                reply: Any = first
            elif kind in ("verb:hook", "session:redirect", "session:reconnect", "dial:confirm"):
                reply = on_hook(msg) if on_hook is not None else []
            else:
                continue
            if reply is not NO_ACK:
                await ws.send(json.dumps({"type": "ack", "msgid": msg["msgid"], "data": reply}))
            if kind == "session:new" and redirect_after is not None:
                await asyncio.sleep(redirect_after)
                command = {"type": "command", "command": "redirect", "data": [{"verb": "hangup"}]}
                await ws.send(json.dumps(command))

    with serving(conn) as url:
        yield url


def gather_results(result: sim.CallResult, hook: str = "/g") -> list[dict[str, Any]]:
    """What each gather actionHook reported: reason, digits / transcript."""
    out = []
    for _, data in sent_hooks(result, hook):
        row = {"reason": data["reason"]}
        if "digits" in data:
            row["digits"] = data["digits"]
        if "speech" in data:
            row["transcript"] = data["speech"]["alternatives"][0]["transcript"]
        out.append(row)
    return out


def run_gather(gather: dict[str, Any], said: Input, *, hangup_after: float = 120) -> sim.CallResult:
    verbs = [{"verb": "config", "notifyEvents": True}, {"verb": "gather", "actionHook": "/g", **gather}]
    with raw_app(verbs) as url:
        return sim.call(url, Caller(inputs=[said], hangup_after=hangup_after), options=FAST)


def hook_time(result: sim.CallResult, hook: str = "/g") -> float:
    """Seconds from the gather's start (its verb:status starting) to its actionHook."""
    start = next(
        e.t
        for e in result.messages("sent", "verb:status")
        if e.payload["data"].get("name") == "gather" and e.payload["data"]["event"] == "starting"
    )
    return sent_hooks(result, hook)[0][0] - start


def task_events(result: sim.CallResult) -> list[tuple[str, str]]:
    """(verb, event) of the verbs' own verb:status events (Task.notifyStatus: key ``verb``)."""
    return [
        (d["verb"], d["event"])
        for d in (e.payload["data"] for e in result.messages("sent", "verb:status"))
        if "verb" in d
    ]


class TestGatherDigits:
    def test_digits_without_num_digits_or_finish_key_end_as_timeout(self) -> None:
        """No default minDigits/interDigitTimeout (gather.js ~39–41): keys are collected until the main
        timer (15 s from the start without a prompt, not reset by keys) resolves 'timeout' (~749)."""
        result = run_gather({"input": ["digits"]}, Digits("123", after=1))
        assert gather_results(result) == [{"reason": "timeout"}]
        assert hook_time(result) == pytest.approx(15, abs=0.05)

    def test_num_digits_resolves_when_reached(self) -> None:
        """len === numDigits resolves dtmfDetected at that key (gather.js ~413)."""
        result = run_gather({"numDigits": 2}, Digits("123", after=1, interval=0.5))
        assert gather_results(result) == [{"reason": "dtmfDetected", "digits": "12"}]
        assert hook_time(result) == pytest.approx(1.5, abs=0.05)

    def test_max_digits_resolves_when_reached(self) -> None:
        """len === maxDigits resolves too (gather.js ~413)."""
        result = run_gather({"maxDigits": 3}, Digits("12345", after=1, interval=0.5))
        assert gather_results(result) == [{"reason": "dtmfDetected", "digits": "123"}]

    def test_finish_key_always_resolves_dtmf_detected(self) -> None:
        """finishOnKey resolves dtmfDetected whatever was collected, the key itself left out (~400–402)."""
        result = run_gather({"finishOnKey": "#", "minDigits": 3}, Digits("1#"))
        assert gather_results(result) == [{"reason": "dtmfDetected", "digits": "1"}]
        empty = run_gather({"finishOnKey": "#"}, Digits("#"))
        assert gather_results(empty) == [{"reason": "dtmfDetected", "digits": ""}]

    def test_inter_digit_timer_needs_min_digits(self) -> None:
        """interDigitTimeout without minDigits never starts (~418): the main timer ends it as 'timeout'."""
        result = run_gather({"interDigitTimeout": 2}, Digits("12"))
        assert gather_results(result) == [{"reason": "timeout"}]
        assert hook_time(result) == pytest.approx(15, abs=0.05)

    def test_inter_digit_timer_with_min_digits(self) -> None:
        """With minDigits reached the inter-digit timer replaces the main timer (~418–423)."""
        result = run_gather({"interDigitTimeout": 2, "minDigits": 1}, Digits("12", after=1, interval=0.5))
        assert gather_results(result) == [{"reason": "dtmfDetected", "digits": "12"}]
        assert hook_time(result) == pytest.approx(1.5 + 2, abs=0.05)

    def test_main_timer_with_min_digits_reports_the_digits(self) -> None:
        """The main timer resolves dtmf-num-digits when len >= minDigits (~749): dtmfDetected + digits."""
        result = run_gather({"minDigits": 2, "timeout": 5}, Digits("123"))
        assert gather_results(result) == [{"reason": "dtmfDetected", "digits": "123"}]
        assert hook_time(result) == pytest.approx(5, abs=0.05)

    def test_timeout_ends_the_gather_even_when_keys_come_later(self) -> None:
        """The main timer starts after the prompt; keys after it fires are too late (~233, ~741)."""
        prompt = {"text": "Press one"}
        result = run_gather({"numDigits": 1, "timeout": 3, "say": prompt}, Digits("1", after=10))
        assert gather_results(result) == [{"reason": "timeout"}]
        assert hook_time(result) == pytest.approx(speech_seconds("Press one") + 3, abs=0.05)

    def test_keys_do_not_reset_the_main_timer(self) -> None:
        """The timer runs from the first key and is not restarted by later ones (~381)."""
        result = run_gather({"timeout": 4}, Digits("12345", after=1, interval=1))
        assert gather_results(result) == [{"reason": "timeout"}]
        assert hook_time(result) == pytest.approx(4, abs=0.05)

    def test_dtmf_bargein_cuts_the_prompt_and_reports_it(self) -> None:
        """A key during the prompt kills it: verb:status dtmf-bargein-detected {dtmf, duration} (~386–390),
        the nested say's stop-playback + kill-playback (say.js ~462–464)."""
        text = "Please enter your four digit account number now"
        result = run_gather({"numDigits": 2, "say": {"text": text}}, Digits("42", after=1, interval=0.5))
        assert gather_results(result) == [{"reason": "dtmfDetected", "digits": "42"}]
        assert hook_time(result) == pytest.approx(1.5, abs=0.05)
        events = task_events(result)
        assert events == [
            ("say", "synthesized-audio"),
            ("say", "start-playback"),
            ("gather", "dtmf-bargein-detected"),
            ("say", "stop-playback"),
            ("say", "kill-playback"),
        ]
        barge = next(
            d for d in sent(result, "verb:status") if d["data"].get("event") == "dtmf-bargein-detected"
        )
        assert barge["data"]["dtmf"] == "4" and "duration" in barge["data"]

    def test_listen_during_prompt_false_loses_keys_during_the_prompt(self) -> None:
        """The dtmf listener starts only when the prompt ends (gather.js ~257–258, ~342)."""
        prompt = {"text": "Press one after the tone"}
        result = run_gather(
            {"numDigits": 1, "timeout": 2, "listenDuringPrompt": False, "say": prompt}, Digits("1", after=0.5)
        )
        assert gather_results(result) == [{"reason": "timeout"}]
        assert notes(result, "ignored-input")


class TestGatherSpeech:
    def test_final_transcript_during_the_prompt_resolves_without_bargein(self) -> None:
        """A final transcript resolves the gather (~1065) and the resolve kills the prompt (~1328),
        bargein false: no speech-bargein-detected (~1096)."""
        text = "Tell me in a few words what you are calling about today please"
        result = run_gather({"input": ["speech"], "say": {"text": text}}, Speech("billing", after=2))
        assert gather_results(result) == [{"reason": "speechDetected", "transcript": "billing"}]
        assert hook_time(result) == pytest.approx(2, abs=0.05)
        assert ("gather", "speech-bargein-detected") not in task_events(result)
        assert task_events(result)[-1] == ("say", "kill-playback")

    def test_bargein_sends_speech_bargein_detected(self) -> None:
        """With bargein the interim result kills the prompt first: speech-bargein-detected + speech fields
        (~1096–1100)."""
        text = "Tell me in a few words what you are calling about today please"
        gather = {"input": ["speech"], "bargein": True, "say": {"text": text}}
        result = run_gather(gather, Speech("my bill is wrong", after=2))
        barge = [
            d["data"]
            for d in sent(result, "verb:status")
            if d["data"].get("event") == "speech-bargein-detected"
        ]
        assert len(barge) == 1 and barge[0]["verb"] == "gather" and barge[0]["is_final"] is False
        assert gather_results(result) == [{"reason": "speechDetected", "transcript": "my bill is wrong"}]

    def test_speech_after_the_timeout_is_too_late(self) -> None:
        """The main timer (started after the prompt) ends it first (~233, ~741–751)."""
        result = run_gather({"input": ["speech"], "timeout": 5}, Speech("hello", after=8))
        assert gather_results(result) == [{"reason": "timeout"}]
        assert hook_time(result) == pytest.approx(5, abs=0.05)

    def test_timeout_zero_waits_until_the_hangup(self) -> None:
        """timeout 0 = no timer (~52, ~742): a silent caller is waited for until the call ends."""
        result = run_gather({"input": ["speech"], "timeout": 0}, Silence(), hangup_after=40)
        assert gather_results(result) == []
        assert (result.termination_by, result.trace[-1].t) == ("caller", pytest.approx(40, abs=0.01))


class TestGatherHookFailures:
    def test_invalid_ack_verbs_send_error_details_and_error_status(self) -> None:
        """performAction throws on invalid verbs (task.js ~254–256); gather catches it: jambonz:error with
        details and a call:status whose reason is the error message (gather.js ~1426–1444)."""
        verbs: list[dict[str, Any]] = [
            {"verb": "gather", "id": "g1", "numDigits": 1, "actionHook": "/g"},
            {"verb": "say", "text": "next"},
        ]
        with raw_app(verbs, lambda msg: [{"verb": "sayy", "text": "x"}]) as url:
            result = sim.call(url, Caller(inputs=[Digits("7")], hangup_after=60), options=FAST)
        [error] = [m["data"] for m in sent(result, "jambonz:error")]
        assert error == {
            "msg": "invalid actionHook response",
            "details": "invalid instruction: sayy",
            "verb": "gather",
            "id": "g1",
        }
        status = [m["data"] for m in sent(result, "call:status") if "error" in m["data"]]
        assert [(s["error"], s["reason"]) for s in status] == [
            ("invalid actionHook response", "invalid instruction: sayy")
        ]
        assert result.heard == [("say", "next")]

    def test_unacked_hook_error_status_has_no_reason(self) -> None:
        """A timeout rejects with a plain string (ws-requestor.js ~268): err.message is undefined, so
        neither details nor reason is set (gather.js ~1428, ~1440)."""
        verbs = [{"verb": "gather", "numDigits": 1, "actionHook": "/g"}]
        with raw_app(verbs, lambda msg: NO_ACK) as url:
            result = sim.call(url, Caller(inputs=[Digits("7")], hangup_after=60), options=FAST)
        [error] = [m["data"] for m in sent(result, "jambonz:error")]
        assert error == {"msg": "invalid actionHook response", "verb": "gather"}
        [status] = [m["data"] for m in sent(result, "call:status") if "error" in m["data"]]
        assert "reason" not in status

    def test_redirect_acked_with_invalid_verbs_hangs_up(self) -> None:
        """redirect's performAction throws (task.js ~256); the task error ends the call (~1390)."""
        verbs = [{"verb": "redirect", "actionHook": "/r"}, {"verb": "say", "text": "never"}]
        with raw_app(verbs, lambda msg: [{"verb": "nope"}]) as url:
            result = sim.call(url, Caller(hangup_after=60), options=FAST)
        assert result.heard == [] and result.termination_by == "jambonz"
        assert any("invalid instruction: nope" in e for e in result.errors)

    def test_llm_unacked_action_hook_ends_the_call(self) -> None:
        """The llm actionHook unacked: performAction throws (openai_s2s.js ~144, llm/index.js ~51)."""
        verbs = [{"verb": "llm", "vendor": "openai", "llmOptions": {}, "actionHook": "/done"}]
        verbs.append({"verb": "say", "text": "never"})
        with raw_app(verbs, lambda msg: NO_ACK) as url:
            result = sim.call(url, Caller(inputs=[Speech("hi"), Silence()], hangup_after=300), options=FAST)
        assert ("say", "never") not in result.heard
        assert result.termination_by == "jambonz" and result.trace[-1].t < 100
        assert any("llm actionHook failed" in e for e in result.errors)

    def test_sip_request_sends_a_second_failed_hook_when_the_first_is_unacked(self) -> None:
        """sip:request: the success actionHook unacked, performAction throws and the catch sends
        ``{result: "failed"}`` (no ``err``: a timeout rejects with a string); that one unacked too,
        the call ends (sip_request.js ~36–44)."""
        verbs = [
            {"verb": "say", "text": "hi"},
            {"verb": "sip:request", "method": "INFO", "actionHook": "/sr"},
            {"verb": "say", "text": "never"},
        ]
        with raw_app(verbs, lambda msg: NO_ACK) as url:
            result = sim.call(url, Caller(hangup_after=300), options=FAST)
        reported = [data for _, data in sent_hooks(result, "/sr")]
        assert [d["result"] for d in reported] == ["success", "failed"]
        assert "err" not in reported[1]
        assert ("say", "never") not in result.heard
        assert result.termination_by == "jambonz" and result.trace[-1].t < 100

    def test_llm_action_hook_with_invalid_verbs_ends_the_call(self) -> None:
        """Invalid verbs in the llm actionHook ack throw too (task.js ~256)."""
        verbs = [{"verb": "llm", "vendor": "openai", "llmOptions": {}, "actionHook": "/done"}]
        with raw_app(verbs, lambda msg: [{"verb": "sayy"}]) as url:
            result = sim.call(url, Caller(inputs=[Silence()], hangup_after=300), options=FAST)
        assert result.termination_by == "jambonz" and result.trace[-1].t < 100
        assert any("invalid instruction: sayy" in e for e in result.errors)


class TestSayPlay:
    def test_text_array_plays_every_entry_in_order(self) -> None:
        """say.js ~74 keeps every entry; ~278–280 plays each segment; stop-playback after each (~307)."""
        verbs: list[dict[str, Any]] = [
            {"verb": "config", "notifyEvents": True},
            {"verb": "say", "text": ["one", "two", "three"]},
        ]
        with raw_app(verbs) as url:
            result = sim.call(url, Caller(hangup_after=60), options=FAST)
        assert result.heard == [("say", "one"), ("say", "two"), ("say", "three")]
        synthesized = [("say", "synthesized-audio")] * 3
        assert (
            task_events(result) == synthesized + [("say", "start-playback")] + [("say", "stop-playback")] * 3
        )

    def test_loop_zero_plays_once(self) -> None:
        """loop || 1 (say.js ~84, play.js ~26): 0 plays once; play reports start-playback (~55)."""
        verbs = [
            {"verb": "config", "notifyEvents": True},
            {"verb": "say", "text": "hi", "loop": 0},
            {"verb": "play", "url": "https://x/a.wav", "loop": 0},
            {"verb": "say", "text": "twice", "loop": 2},
        ]
        with raw_app(verbs) as url:
            result = sim.call(url, Caller(hangup_after=60), options=FAST)
        assert result.heard == [
            ("say", "hi"),
            ("play", "https://x/a.wav"),
            ("say", "twice"),
            ("say", "twice"),
        ]
        assert ("play", "start-playback") in task_events(result)

    def test_killed_say_and_play_report_kill_playback(self) -> None:
        """A redirect kills the verb: say sends stop-playback then kill-playback (say.js ~461–464),
        play kill-playback (play.js ~69)."""
        for verb, expected in (
            (
                {"verb": "say", "text": "a long announcement " * 20},
                ["synthesized-audio", "start-playback", "stop-playback", "kill-playback"],
            ),
            (
                {"verb": "play", "url": "https://x/long.wav", "timeoutSecs": 60},
                ["start-playback", "kill-playback"],
            ),
        ):
            verbs = [{"verb": "config", "notifyEvents": True}, verb]
            with raw_app(verbs, redirect_after=0.3) as url:  # the real clock: the verb is still playing
                result = sim.call(url, Caller(hangup_after=300), "real", options=FAST)
            assert [e for v, e in task_events(result) if v == verb["verb"]] == expected


class TestSynthesis:
    """tts-task.js ~294–398: each entry synthesized before start-playback, one verb:status each."""

    @staticmethod
    def synthesized(result: sim.CallResult) -> list[dict[str, Any]]:
        return [
            d
            for d in (e.payload["data"] for e in result.messages("sent", "verb:status"))
            if d.get("event") == "synthesized-audio"
        ]

    def test_fresh_then_cached_with_their_fields(self) -> None:
        """A fresh synthesis has characters and elapsed_time (~333–342); the cached one not (~344–352)."""
        verbs: list[dict[str, Any]] = [
            {"verb": "config", "notifyEvents": True},
            {"verb": "say", "text": "Welcome to Acme", "id": "w1"},
            {"verb": "say", "text": "Welcome to Acme", "id": "w2"},
        ]
        with raw_app(verbs) as url:
            result = sim.call(url, Caller(hangup_after=60), options=FAST)
        fresh, cached = self.synthesized(result)
        assert fresh == {
            "event": "synthesized-audio",
            "vendor": "google",
            "language": "en-US",
            "characters": 15,
            "elapsed_time": fresh["elapsed_time"],
            "served_from_cache": False,
            "verb": "say",
            "id": "w1",
        }
        assert isinstance(fresh["elapsed_time"], int) and fresh["elapsed_time"] > 0
        assert cached == {
            "event": "synthesized-audio",
            "vendor": "google",
            "language": "en-US",
            "served_from_cache": True,
            "verb": "say",
            "id": "w2",
        }

    def test_disable_tts_cache_synthesizes_again(self) -> None:
        verbs: list[dict[str, Any]] = [
            {"verb": "config", "notifyEvents": True},
            {"verb": "say", "text": "again"},
            {"verb": "say", "text": "again", "disableTtsCache": True},
        ]
        with raw_app(verbs) as url:
            result = sim.call(url, Caller(hangup_after=60), options=FAST)
        assert [d["served_from_cache"] for d in self.synthesized(result)] == [False, False]

    def test_the_vendor_is_the_verbs_then_the_configs(self) -> None:
        """say.js ~40–47: the verb's synthesizer, else the session's; "default" means none."""
        verbs: list[dict[str, Any]] = [
            {
                "verb": "config",
                "notifyEvents": True,
                "synthesizer": {"vendor": "deepgram", "language": "en-GB"},
            },
            {"verb": "say", "text": "one"},
            {"verb": "say", "text": "two", "synthesizer": {"vendor": "elevenlabs", "language": "default"}},
        ]
        with raw_app(verbs) as url:
            result = sim.call(url, Caller(hangup_after=60), options=FAST)
        assert [(d["vendor"], d["language"]) for d in self.synthesized(result)] == [
            ("deepgram", "en-GB"),
            ("elevenlabs", "en-GB"),
        ]

    def test_a_gather_prompt_is_synthesized_too(self) -> None:
        result = run_gather({"numDigits": 1, "say": {"text": "Press a key"}}, Digits("1", after=3))
        assert [d["verb"] for d in self.synthesized(result)] == ["say"]

    def test_text_that_parses_as_a_url_is_played_not_spoken(self) -> None:
        """tts-task.js ~387, ~405: ``new URL(text)`` succeeds for "Note: ..." (scheme ``note:``)."""
        verbs: list[dict[str, Any]] = [
            {"verb": "config", "notifyEvents": True},
            {"verb": "say", "text": ["Note: we are closed", "Press 1: sales"]},
        ]
        with raw_app(verbs) as url:
            result = sim.call(url, Caller(hangup_after=60), options=FAST)
        assert result.heard == [("play", "Note: we are closed"), ("say", "Press 1: sales")]
        assert [d["characters"] for d in self.synthesized(result)] == [14]
        assert notes(result, "tts-url") == [
            "'Note: we are closed' parses as a URL: jambonz plays it as a file, it is not spoken"
        ]

    def test_without_notify_events_nothing_is_sent(self) -> None:
        with raw_app([{"verb": "say", "text": "quiet"}]) as url:
            result = sim.call(url, Caller(hangup_after=60), options=FAST)
        assert self.synthesized(result) == []
        assert result.heard == [("say", "quiet")]


class TestConfig:
    @pytest.mark.parametrize(
        ("config", "answers"),
        [
            ({"bargeIn": {"enable": True, "input": ["speech"]}}, True),
            ({"bargeIn": {"enable": False}}, False),
            ({"record": {"action": "startCallRecording"}}, True),
            ({"listen": {"url": "wss://a/b"}}, True),
            ({"transcribe": {"enable": True}}, True),
            ({"boostAudioSignal": 0}, True),
            ({"synthesizer": {"vendor": "google"}}, False),
            ({"notifyEvents": True}, False),
        ],
    )
    def test_config_answers_only_for_media_settings(self, config: dict[str, Any], answers: bool) -> None:
        """config.js ~67–73: an endpoint (the answer) only for bargeIn.enable, record.action, listen.url,
        amd, boostAudioSignal, transcribe.enable."""
        with raw_app([{"verb": "config", **config}]) as url:
            result = sim.call(url, Caller(hangup_after=10), options=FAST)
        assert ("in-progress" in result.statuses()) is answers


def test_play_prompt_length() -> None:
    """A play prompt without timeoutSecs lasts the simulator's file length."""
    result = run_gather({"numDigits": 1, "timeout": 1, "play": {"url": "https://x/p.wav"}}, Silence())
    assert hook_time(result) == pytest.approx(PLAY_SECONDS + 1, abs=0.05)
