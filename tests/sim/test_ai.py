"""The simulator's llm verb and TTS token streaming, against real lab apps on loopback."""

from __future__ import annotations

from typing import Any

import pytest

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.sim.verbs.ai import CHARS_PER_SECOND, event_filter
from tests.simtrace import notes, sent


def stream_events(result: sim.CallResult) -> list[str]:
    return [m["data"]["event_type"] for m in sent(result, "tts:streaming-event")]


def openai_output(call_id: str, output: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": call_id, "output": output},
    }


class TestLlm:
    def test_tool_call_answered_is_heard_and_action_hook_reports_normal_end(self, lab: jl.Lab) -> None:
        """The app's tool output is spoken; args arrive verbatim; the actionHook says normal end."""
        calls: list[dict[str, Any]] = []
        done: list[dict[str, Any]] = []

        @lab.service("/agent").on("session:new")
        def new(session: jl.Session) -> None:
            def tool(msg: Any) -> None:
                calls.append(msg.data)
                session.update_llm({"type": "session.update", "session": {"voice": "alloy"}})
                call_id = msg.data["tool_call_id"]
                session.send_tool_output(call_id, openai_output(call_id, "21C"))

            session.on("/tools", tool)
            session.on("/done", lambda msg: done.append(msg.data))
            session.openai_s2s(llmOptions={}, toolHook="/tools", actionHook="/done").hangup().send()

        caller = sim.Caller(
            inputs=[sim.Speech("weather in Paris?"), sim.Speech("thanks")],
            tool_calls=[sim.ToolCall("get_weather", {"cityName": "Paris", "units": {"tempUnit": "C"}})],
        )
        result = sim.call(lab.url + "/agent", caller=caller)
        assert result.heard == [("llm", "tool result: 21C"), ("llm", "reply to: thanks")]
        [call] = calls
        assert call == {
            "tool_call_id": call["tool_call_id"],
            "name": "get_weather",
            "args": {"cityName": "Paris", "units": {"tempUnit": "C"}},
        }
        assert call["tool_call_id"].startswith("call_")
        assert [m["hook"] for m in sent(result, "llm:tool-call")] == ["/tools"]
        assert [d["completion_reason"] for d in done] == ["normal conversation end"]
        assert [e.payload for e in result.trace if e.type == "llm-update"] == [
            {"type": "session.update", "session": {"voice": "alloy"}}
        ]
        assert result.statuses() == ["trying", "in-progress", "completed"]

    def test_unanswered_tool_call_has_no_timeout(self, lab: jl.Lab) -> None:
        """No llm:tool-output: jambonz sets no timeout, the call waits in the tool call until the hangup.

        openai_s2s.js ~320–335 sends llm:tool-call and waits for processToolOutput; no timer anywhere.
        """
        done: list[dict[str, Any]] = []

        @lab.service("/mute").on("session:new")
        def new(session: jl.Session) -> None:
            session.on("/done", lambda msg: done.append(msg.data))
            session.llm(vendor="openai", llmOptions={}, toolHook="/tools", actionHook="/done").hangup().send()

        caller = sim.Caller(
            inputs=[sim.Speech("book it"), sim.Speech("hello?")],
            tool_calls=[sim.ToolCall("book", {"slot": 3})],
            hangup_after=120,
        )
        result = sim.call(lab.url + "/mute", caller=caller, options=sim.SimOptions(tool_timeout=0.3))
        assert done == [] and result.heard == []
        assert len(sent(result, "llm:tool-call")) == 1
        assert (result.termination_by, result.trace[-1].t) == ("caller", pytest.approx(120, abs=0.01))
        assert any("no tool timeout" in n for n in notes(result, "tool-wait"))

    def test_events_are_filtered_and_tools_without_tool_hook_are_skipped(self, lab: jl.Lab) -> None:
        """events=[session.created, response.*, -response.audio_transcript.done] picks exactly those."""

        @lab.service("/events").on("session:new")
        def new(session: jl.Session) -> None:
            session.openai_s2s(
                llmOptions={},
                eventHook="/ev",
                events=["session.created", "response.*", "-response.audio_transcript.done"],
            ).hangup().send()

        caller = sim.Caller(inputs=[sim.Speech("one"), sim.Speech("two")], tool_calls=[sim.ToolCall("x")])
        result = sim.call(lab.url + "/events", caller=caller)
        events = sent(result, "llm:event")
        assert [e["data"]["type"] for e in events] == ["session.created", "response.done", "response.done"]
        assert {e["hook"] for e in events} == {"/ev"}
        assert result.heard == [("llm", "reply to: one"), ("llm", "reply to: two")]
        assert sent(result, "llm:tool-call") == []
        assert [e.note for e in result.trace if e.type == "tool-call-skipped"] == [
            "tool call x: no toolHook; skipped"
        ]

    def test_google_tool_call_shape(self, lab: jl.Lab) -> None:
        """google gets tool_call_id 'function_call_id' and function_calls; toolResponse is heard."""
        calls: list[dict[str, Any]] = []

        @lab.service("/gemini").on("session:new")
        def new(session: jl.Session) -> None:
            def tool(msg: Any) -> None:
                calls.append(msg.data)
                fc = msg.data["function_calls"][0]
                reply = {"toolResponse": {"functionResponses": [{"id": fc["id"], "response": {"ok": True}}]}}
                session.send_tool_output(msg.data["tool_call_id"], reply)

            session.on("/tools", tool)
            session.google_s2s(llmOptions={}, toolHook="/tools").hangup().send()

        caller = sim.Caller(inputs=[sim.Speech("go")], tool_calls=[sim.ToolCall("lookup", {"q": "a"})])
        result = sim.call(lab.url + "/gemini", caller=caller)
        [call] = calls
        fc_id = call["function_calls"][0]["id"]
        assert call == {
            "tool_call_id": "function_call_id",
            "type": "toolCall",
            "function_calls": [{"id": fc_id, "name": "lookup", "args": {"q": "a"}}],
        }
        assert result.heard == [("llm", 'tool result: {"ok": true}')]

    def test_event_filter_patterns(self) -> None:
        """'all', names, wildcards and exclusions."""
        names = ["session.created", "response.done", "response.audio.delta", "input_audio_buffer.committed"]
        assert [n for n in names if event_filter(["all", "-response.audio.*"])(n)] == [
            "session.created",
            "response.done",
            "input_audio_buffer.committed",
        ]
        responses = event_filter(["response.*"])
        assert [n for n in names if responses(n)] == ["response.done", "response.audio.delta"]
        assert [n for n in names if event_filter(["-session.created"])(n)] == names[1:]
        assert [n for n in names if event_filter([])(n)] == names
        assert [n for n in names if event_filter(None)(n)] == names


class TestTtsStreaming:
    def test_backpressured_client_recovers_and_everything_is_heard(self, lab: jl.Lab) -> None:
        """30 chunks of 100 chars: three full/paused/resumed rounds, then the whole text in one say."""
        chunks = [f"{i:02d}" + "abcdefghi " * 9 + "xxxxxxxx" for i in range(30)]
        assert {len(c) for c in chunks} == {100}
        sessions: list[jl.Session] = []

        @lab.service("/tts").on("session:new")
        def new(session: jl.Session) -> None:
            sessions.append(session)

            def on_event(msg: Any) -> None:
                if msg.data["event_type"] == "stream_open":
                    for chunk in chunks:
                        session.tts_tokens(chunk)
                    session.tts_flush()

            session.on("tts:streaming-event", on_event)
            session.say(stream=True).hangup().send()

        result = sim.call(lab.url + "/tts")
        assert result.heard == [("say", "".join(chunks))]
        assert stream_events(result) == ["stream_open"] + ["stream_paused", "stream_resumed"] * 3 + [
            "stream_closed"
        ]
        results = [m["data"] for m in sent(result, "tts:tokens-result")]
        assert [r for r in results if r["status"] != "ok"] == [
            {"id": i, "status": "failed", "reason": "full"} for i in (11, 19, 27)
        ]
        assert [r["id"] for r in results if r["status"] == "ok"] == list(range(1, 31))
        assert sessions[0].tts_pending == 0
        assert result.statuses() == ["trying", "in-progress", "completed"]

    def test_raw_client_ignoring_backpressure_gets_full(self, lab: jl.Lab) -> None:
        """Fifteen unpaced chunks: ten accepted, five refused 'full'; no id, no reply.

        The flush sends the buffer without a stream_resumed: only a chunk sent by the
        sentence splitter resumes it (tts-streaming-buffer.js ~200–241 vs ~324–328).
        """
        chunk = "z" * 99 + " "

        @lab.service("/raw").on("session:new")
        def new(session: jl.Session) -> None:
            def on_event(msg: Any) -> None:
                if msg.data["event_type"] == "stream_open":
                    session.inject("tts:tokens", {"tokens": "no id"})
                    for i in range(1, 16):
                        session.inject("tts:tokens", {"id": i, "tokens": chunk})
                    session.inject("tts:flush")

            session.on("tts:streaming-event", on_event)
            session.say(stream=True).send()

        result = sim.call(lab.url + "/raw", options=sim.SimOptions(idle_wait=0.3))
        results = [m["data"] for m in sent(result, "tts:tokens-result")]
        assert results == [{"id": i, "status": "ok"} for i in range(1, 11)] + [
            {"id": i, "status": "failed", "reason": "full"} for i in range(11, 16)
        ]
        assert result.heard == [("say", chunk * 10)]
        assert stream_events(result) == ["stream_open", "stream_paused", "stream_closed"]

    def test_a_chunk_over_1000_chars_is_refused_even_into_an_empty_buffer(self, lab: jl.Lab) -> None:
        """buffer + chunk > 1000 is refused whatever is buffered (tts-streaming-buffer.js ~111); no
        stream_resumed follows with nothing to send (~324); whitespace into an empty buffer is ok (~103)."""

        @lab.service("/big").on("session:new")
        def new(session: jl.Session) -> None:
            def on_event(msg: Any) -> None:
                if msg.data["event_type"] == "stream_open":
                    session.inject("tts:tokens", {"id": 1, "tokens": "w" * 1001})
                    session.inject("tts:tokens", {"id": 2, "tokens": "   "})
                    session.inject("tts:tokens", {"id": 3, "tokens": "short."})
                    session.inject("tts:flush")

            session.on("tts:streaming-event", on_event)
            session.say(stream=True).send()

        result = sim.call(lab.url + "/big", options=sim.SimOptions(idle_wait=0.3))
        assert [m["data"] for m in sent(result, "tts:tokens-result")] == [
            {"id": 1, "status": "failed", "reason": "full"},
            {"id": 2, "status": "ok"},
            {"id": 3, "status": "ok"},
        ]
        assert result.heard == [("say", "short.")]
        assert stream_events(result) == ["stream_open", "stream_paused", "stream_closed"]

    def test_paused_stream_resumes_when_speech_drains_a_chunk(self, lab: jl.Lab) -> None:
        """Paused at 900 buffered chars, the stream resumes once a chunk leaves and <= 200 are left
        (tts-streaming-buffer.js ~318–328), not before; a clear un-pauses silently (~174)."""

        @lab.service("/drain").on("session:new")
        def new(session: jl.Session) -> None:
            def on_event(msg: Any) -> None:
                if msg.data["event_type"] == "stream_open":
                    session.inject("tts:tokens", {"id": 1, "tokens": "a " * 450})
                    session.inject("tts:tokens", {"id": 2, "tokens": "b " * 100})

            session.on("tts:streaming-event", on_event)
            session.say(stream=True, closeStreamOnEmpty=False).send()

        result = sim.call(
            lab.url + "/drain", sim.Caller(hangup_after=200), options=sim.SimOptions(idle_wait=0.3)
        )
        events = [
            (e.t, e.payload["data"]["event_type"]) for e in result.messages("sent", "tts:streaming-event")
        ]
        kinds = [k for _, k in events]
        assert kinds[:3] == ["stream_open", "stream_paused", "stream_resumed"]
        drained = (900 - 200) / CHARS_PER_SECOND  # seconds of speech until 200 chars are left
        assert events[2][0] - events[1][0] == pytest.approx(drained, abs=0.2)
        assert any("closeOnStreamEmpty" in n for n in notes(result, "ignored"))

    def test_tokens_without_a_stream_fail_with_the_vendor_connection(self, lab: jl.Lab) -> None:
        """After a plain say, tokens get failed / 'connection to <vendor> failed'."""

        @lab.service("/plain").on("session:new")
        def new(session: jl.Session) -> None:
            def on_status(msg: Any) -> None:
                if msg.data["call_status"] == "in-progress":
                    session.inject("tts:tokens", {"id": "a1", "tokens": "hello"})

            session.on("call:status", on_status)
            session.config(synthesizer={"vendor": "deepgram"}).say(text="hi").send()

        result = sim.call(lab.url + "/plain", options=sim.SimOptions(idle_wait=0.5))
        assert [m["data"] for m in sent(result, "tts:tokens-result")] == [
            {"id": "a1", "status": "failed", "reason": "connection to deepgram failed"}
        ]
        assert result.heard == [("say", "hi")]

    def test_clear_drops_the_buffer_and_bargein_interrupts(self, lab: jl.Lab) -> None:
        """tts:clear drops unspoken text; caller speech with bargeIn sends user_interruption."""

        @lab.service("/barge").on("session:new")
        def new(session: jl.Session) -> None:
            def on_event(msg: Any) -> None:
                if msg.data["event_type"] == "stream_open":
                    session.inject("tts:tokens", {"id": 1, "tokens": "dropped text"})
                    session.inject("tts:clear")
                    session.inject("tts:tokens", {"id": 2, "tokens": "a" * 300})

            session.on("tts:streaming-event", on_event)
            session.config(bargeIn={"enable": True, "input": ["speech"]}).say(stream=True).send()

        caller = sim.Caller(inputs=[sim.Speech("stop", after=2.5)], hangup_after=100)
        result = sim.call(lab.url + "/barge", caller=caller, options=sim.SimOptions(idle_wait=0.3))
        assert stream_events(result) == ["stream_open", "user_interruption", "stream_closed"]
        # about 2.5 s of speech at 15.6 chars/s (less the app's real-time delay) before the interruption
        [(kind, text)] = result.heard
        assert kind == "say" and text == "a" * len(text) and 35 <= len(text) <= 39
        assert [m["data"] for m in sent(result, "tts:tokens-result")] == [
            {"id": 1, "status": "ok"},
            {"id": 2, "status": "ok"},
        ]
        assert (result.termination_by, result.duration) == ("caller", 100)
