"""Speech recognition in gather against feature-server 0.9.8 ``lib/tasks/gather.js``.

Interim results, confidence, ASR errors and continuous ASR, driven by ``Caller`` scripts
(:class:`~jambonz_lab.sim.Speech` ``interims`` / ``error`` / ``more``) against a raw WebSocket
app on loopback that acks exactly what each test says. Each test cites the gather.js line.
"""

from __future__ import annotations

from typing import Any

import pytest

from jambonz_lab import sim
from jambonz_lab.sim import Caller, Digits, Speech
from jambonz_lab.sim.caller import Input
from tests.sim.test_verbs_fidelity import FAST, gather_results, hook_time, raw_app
from tests.simtrace import notes, sent, sent_hooks


def run(verbs: list[dict[str, Any]], *inputs: Input, hangup_after: float = 120) -> sim.CallResult:
    with raw_app([{"verb": "config", "notifyEvents": True}, *verbs]) as url:
        return sim.call(url, Caller(inputs=list(inputs), hangup_after=hangup_after), options=FAST)


def gather(**kw: Any) -> dict[str, Any]:
    return {"verb": "gather", "input": ["speech"], "actionHook": "/g", **kw}


def partials(result: sim.CallResult) -> list[str]:
    return [d["speech"]["alternatives"][0]["transcript"] for _, d in sent_hooks(result, "/p")]


class TestInterims:
    def test_each_interim_goes_to_the_partial_result_hook(self) -> None:
        """Every interim transcript is a verb:hook to partialResultHook, not awaited, with the speech,
        the call info and verb_id (gather.js ~1108–1114); the final goes to the actionHook (~1065)."""
        said = Speech("book a car please", interims=("book", "book a", "book a car"), interval=0.5)
        result = run([gather(id="g7", partialResultHook="/p")], said)
        assert partials(result) == ["book", "book a", "book a car"]
        first = sent_hooks(result, "/p")[0][1]
        assert (first["verb_id"], first["speech"]["is_final"], first["call_sid"]) == (
            "g7",
            False,
            result.call_sid,
        )
        assert gather_results(result) == [{"reason": "speechDetected", "transcript": "book a car please"}]
        assert hook_time(result) == pytest.approx(2.5, abs=0.05)

    def test_interims_restart_the_main_timer(self) -> None:
        """An interim restarts a running main timer (~1095, ~1127): interims at 3, 7 and 11 s keep a
        5 s gather alive until the final at 15 s; without them it times out at 5 s."""
        said = Speech("one two three four", after=3, interims=("one", "one two", "one two three"), interval=4)
        result = run([gather(timeout=5, partialResultHook="/p")], said)
        assert gather_results(result) == [{"reason": "speechDetected", "transcript": "one two three four"}]
        assert hook_time(result) == pytest.approx(15, abs=0.05)
        quiet = run([gather(timeout=5)], Speech("one two three four", after=15, interims=()))
        assert gather_results(quiet) == [{"reason": "timeout"}]

    def test_no_interims_without_partial_hook_bargein_or_timeout(self) -> None:
        """interim = !!partialResultHook || bargein || timeout > 0 (~53): with none, no interims; the
        final still resolves."""
        said = Speech("hello there", interims=("hello",), interval=1)
        result = run([gather(timeout=0)], said)
        assert any("interim 'hello' not sent" in n for n in notes(result, "asr"))
        assert gather_results(result) == [{"reason": "speechDetected", "transcript": "hello there"}]

    def test_bargein_without_a_prompt_still_reports_speech_bargein_detected(self) -> None:
        """playComplete is unset without a prompt, so the first interim with bargein sends
        speech-bargein-detected (~1096–1101); _killAudio then sets playComplete: only once (~885)."""
        said = Speech("hi there you", interims=("hi", "hi there"), interval=0.5)
        result = run([gather(bargein=True)], said)
        barge = [
            m for m in sent(result, "verb:status") if m["data"].get("event") == "speech-bargein-detected"
        ]
        assert [m["data"]["alternatives"][0]["transcript"] for m in barge] == ["hi"]

    def test_min_bargein_word_count_counts_the_interim_words(self) -> None:
        """Barge-in needs (words + bufferedWords) >= minBargeinWordCount (~975–977, ~1096)."""
        text = "Tell me in a few words what you are calling about today please thank you"
        said = Speech("my bill is wrong", interims=("my", "my bill", "my bill is"), interval=0.5)
        result = run([gather(bargein=True, minBargeinWordCount=3, say={"text": text})], said)
        barge = [
            m for m in sent(result, "verb:status") if m["data"].get("event") == "speech-bargein-detected"
        ]
        assert [m["data"]["alternatives"][0]["transcript"] for m in barge] == ["my bill is"]


class TestConfidence:
    def test_a_low_confidence_final_resolves_stt_low_confidence(self) -> None:
        """confidence && minConfidence && confidence < minConfidence: _resolve('stt-low-confidence')
        (~954–961); the actionHook gets {speech, reason: 'stt-low-confidence'} (~1419–1424)."""
        result = run(
            [gather(recognizer={"vendor": "google", "minConfidence": 0.8})], Speech("maybe", confidence=0.4)
        )
        [(_, data)] = sent_hooks(result, "/g")
        assert data["reason"] == "stt-low-confidence"
        assert data["speech"]["alternatives"][0] == {"confidence": 0.4, "transcript": "maybe"}

    def test_confidence_zero_or_min_confidence_zero_skip_the_check(self) -> None:
        """Both must be truthy (~956): confidence 0 passes any minConfidence; minConfidence 0 none."""
        zero = run(
            [gather(recognizer={"vendor": "google", "minConfidence": 0.8})], Speech("yes", confidence=0)
        )
        off = run(
            [gather(recognizer={"vendor": "google", "minConfidence": 0})], Speech("yes", confidence=0.1)
        )
        assert (
            gather_results(zero) == gather_results(off) == [{"reason": "speechDetected", "transcript": "yes"}]
        )

    def test_session_min_confidence_applies(self) -> None:
        """The session recognizer (config) fills keys the verb lacks (stt-task.js ~104–118)."""
        verbs = [{"verb": "config", "recognizer": {"vendor": "google", "minConfidence": 0.9}}, gather()]
        result = run(verbs, Speech("hm", confidence=0.5))
        assert gather_results(result)[0]["reason"] == "stt-low-confidence"


class TestAsrErrors:
    def test_a_vendor_error_sends_asr_error_then_the_action_hook_with_reason_error(self) -> None:
        """_onVendorError (~1257): _startFallback without a fallback sends jambonz:error {msg: 'ASR
        error', details: 'STT Vendor <v> error: <error>', failover: 'not available'} (~1183–1185),
        then _resolve('stt-error'): the actionHook gets {reason: 'error', details} (~1413–1418)."""
        verb = gather(id="g1", recognizer={"vendor": "deepgram"})
        result = run([verb], Speech("", error="connection reset"))
        [error] = [m["data"] for m in sent(result, "jambonz:error")]
        assert error == {
            "msg": "ASR error",
            "details": "STT Vendor deepgram error: connection reset",
            "failover": "not available",
            "verb": "gather",
            "id": "g1",
        }
        [(_, data)] = sent_hooks(result, "/g")
        assert (data["reason"], data["details"]) == ("error", "connection reset")

    def test_speechmatics_errors_are_re_wrapped_as_json(self) -> None:
        """_onSpeechmaticsErrror passes {error: JSON.stringify(evt without message)} (~1224–1228)."""
        result = run([gather(recognizer={"vendor": "speechmatics"})], Speech("", error="quota"))
        [(_, data)] = sent_hooks(result, "/g")
        assert data["details"] == '{"error":"quota"}'

    def test_a_google_error_ends_the_gather_with_no_action_hook(self) -> None:
        """Google has no vendor error listener: jambonz's common error event, _onJambonzError
        (~1190–1215): the ASR error, then notifyTaskDone — no actionHook; the next verb runs."""
        result = run([gather(), {"verb": "say", "text": "next"}], Speech("", error="UNAVAILABLE"))
        [error] = [m["data"] for m in sent(result, "jambonz:error")]
        assert error["details"] == "STT Vendor google error: UNAVAILABLE"
        assert sent_hooks(result, "/g") == []
        assert ("say", "next") in result.heard

    def test_a_fallback_vendor_takes_over_and_the_gather_goes_on(self) -> None:
        """canFallback (stt-task.js ~314): failover 'in progress' (~1170–1171) and transcription goes on
        with the fallback vendor; no resolve, so a silent caller times out."""
        verb = gather(timeout=5, recognizer={"vendor": "deepgram", "fallbackVendor": "google"})
        result = run([verb], Speech("", error="boom"))
        [error] = [m["data"] for m in sent(result, "jambonz:error")]
        assert error["failover"] == "in progress"
        assert gather_results(result) == [{"reason": "timeout"}]


class TestContinuousAsr:
    def test_finals_are_joined_until_the_asr_timeout_passes(self) -> None:
        """asrTimeout > 0: each final is buffered without trailing punctuation, the main timer cleared
        and the asr timer (re)started (~1010–1028); when it fires the buffer is consolidated
        (~769–780; transcription-utils.js ~215–263: joined with spaces, confidence averaged)."""
        said = Speech(
            "my number is.", after=1, confidence=0.8, more=(Speech("4 1 5,", after=1.5, confidence=0.6),)
        )
        result = run([gather(recognizer={"vendor": "google", "asrTimeout": 2})], said)
        [(_, data)] = sent_hooks(result, "/g")
        assert data["reason"] == "speechDetected"
        assert data["speech"]["alternatives"][0]["transcript"] == "my number is 415"
        assert data["speech"]["alternatives"][0]["confidence"] == pytest.approx(0.7)
        assert hook_time(result) == pytest.approx(1 + 1.5 + 2, abs=0.05)

    def test_digits_glue_to_digits(self) -> None:
        """A digit after a digit is appended without a space (transcription-utils.js ~239–243)."""
        said = Speech("4 1", more=(Speech("5 5", after=0.5),))
        result = run([gather(recognizer={"vendor": "google", "asrTimeout": 1})], said)
        assert gather_results(result) == [{"reason": "speechDetected", "transcript": "4155"}]

    def test_the_termination_digit_sends_the_transcripts_after_1_s(self) -> None:
        """asrDtmfTerminationDigit with transcripts buffered: both timers cleared, the final asr timer
        (1 s) resolves the speech (~393–399, ~813–820); the key is heard even with input speech only
        (~226)."""
        said = Speech("account", more=(Digits("#", after=0.5),))
        result = run(
            [gather(recognizer={"vendor": "google", "asrTimeout": 10, "asrDtmfTerminationDigit": "#"})], said
        )
        assert gather_results(result) == [{"reason": "speechDetected", "transcript": "account"}]
        assert hook_time(result) == pytest.approx(1 + 0.5 + 1, abs=0.05)

    def test_the_main_timer_only_opens_the_asr_window(self) -> None:
        """In continuous ASR the main timer starts the asr timer instead of resolving (~746–747):
        silence ends as timeout after timeout + asrTimeout."""
        result = run([gather(timeout=5, recognizer={"vendor": "google", "asrTimeout": 3})], sim.Silence())
        assert gather_results(result) == [{"reason": "timeout"}]
        assert hook_time(result) == pytest.approx(8, abs=0.05)

    def test_timeout_zero_starts_the_asr_timer_at_once(self) -> None:
        """startListening with timeout 0 starts the asr timer (~234–236)."""
        result = run([gather(timeout=0, recognizer={"vendor": "google", "asrTimeout": 3})], sim.Silence())
        assert hook_time(result) == pytest.approx(3, abs=0.05)
