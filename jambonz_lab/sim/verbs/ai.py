"""Verb runners: ``llm`` (and the s2s shortcuts) and TTS token streaming (protocol doc §2.9, §2.10, §3.3).

**llm** — a scripted conversation, not a model. The vendor's session-start event
goes to ``eventHook``; then each :class:`~jambonz_lab.sim.caller.Speech` input
(until a :class:`~jambonz_lab.sim.caller.Silence` or the end of the script) is
one user turn::

    conversation.item.input_audio_transcription.completed  {transcript}
    [response.function_call_arguments.done + llm:tool-call → wait for llm:tool-output]
    the caller hears ("llm", "reply to: <transcript>")  (or "tool result: <output>")
    response.audio_transcript.done  {transcript: <reply>}
    response.done

Events carry OpenAI Realtime names for every vendor (a simplification); the
session-start event is vendor-specific (``session.created`` for openai /
microsoft). They are filtered by the verb's ``events``: ``"all"``, exact names,
``*`` wildcards (``response.*``) and ``-name`` exclusions; no ``events`` means
all, and a list of exclusions only means all but those.

Tool calls: the caller's ``tool_calls`` are made **one per user turn**, in
order, continuing across llm verbs of the call (turn 1 makes the first tool
call, turn 2 the second, …; tool calls left when the caller stops talking are
not made). Each goes to ``toolHook`` as ``llm:tool-call {tool_call_id, name,
args}`` (``args`` verbatim, jambonz does not snake-case it); vendor ``google``
gets jambonz's ``{tool_call_id:"function_call_id", type:"toolCall",
function_calls:[{id, name, args}]}``. The verb then waits, in real time, for an
``llm:tool-output`` command whose top-level ``tool_call_id`` matches, with no
timeout: jambonz sets none, the call just waits (on the virtual clock the app
gets ``SimOptions.tool_timeout`` real seconds, default 5, then time jumps to
the caller's hangup). OpenAI-shaped output
(``conversation.item.create`` / ``function_call_output``) and Google's
``toolResponse.functionResponses[0].response`` are spoken as the turn's reply
("tool result: <output>"); other shapes are recorded only. Without a
``toolHook`` scripted tool calls are skipped (noted). ``llm:update`` commands
are recorded while the verb runs. The actionHook gets ``{completion_reason}``
(``normal conversation end`` when the caller stopped); unacked, or acked with
invalid verbs, it ends the call (``openai_s2s.js`` ~144, ``llm/index.js`` ~51).

**TTS streaming** — see :class:`TtsStream`. The ``say`` and ``config`` runners
of :mod:`.basic` are re-registered here with wrappers: this module imports
``basic`` first, so its registrations run after basic's and win.
"""

from __future__ import annotations

import asyncio
import json
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..caller import Digits, Silence, Speech, ToolCall
from ..context import PerCall
from . import basic, runner
from .basic import WORDS_PER_SECOND, hang_up_on_error, hook_url, speech_seconds, texts

if TYPE_CHECKING:
    from ..context import VerbContext

__all__ = ["CHARS_PER_SECOND", "HIGH_WATER", "LOW_WATER", "QUIET", "TtsStream", "event_filter", "tts_stream"]

HIGH_WATER = 1000  # chars: tokens that would overflow the buffer are refused ("full")
LOW_WATER = 200  # chars: a paused stream resumes at or below this
CHARS_PER_SECOND = WORDS_PER_SECOND * 6  # the say speaking rate (about six characters a word)
QUIET = 0.1  # real seconds without a command after which the app counts as quiet

#: the event a vendor sends when its session is up (everything else is OpenAI-named)
SESSION_START = {
    "openai": {"type": "session.created"},
    "microsoft": {"type": "session.created"},
    "google": {"type": "setupComplete"},
    "elevenlabs": {"type": "conversation_initiation_metadata"},
    "deepgram": {"type": "Welcome"},
    "voiceagent": {"type": "Welcome"},
    "ultravox": {"type": "state", "state": "listening"},
}
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@dataclass
class _CallAi:
    tools_made: int = 0
    tts: TtsStream | None = None


_ai = PerCall(_CallAi)


# -- llm ---------------------------------------------------------------------------------


def event_filter(events: Any) -> Callable[[str], bool]:
    """The verb's ``events`` as a predicate on event names."""
    if events is None:
        return lambda name: True
    items = [events] if isinstance(events, str) else [str(e) for e in events]
    include = [p for p in items if not p.startswith("-")]
    exclude = [p[1:] for p in items if p.startswith("-")]

    def wanted(name: str) -> bool:
        if any(_matches(p, name) for p in exclude):
            return False
        return not include or any(p == "all" or _matches(p, name) for p in include)

    return wanted


def _matches(pattern: str, name: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, name) is not None


def _new_id(call: VerbContext, prefix: str) -> str:
    return prefix + "".join(call.ids.choice(_ID_CHARS) for _ in range(20))  # who, not what: never seeded


def _tool_result(data: Any) -> str | None:
    """What the caller hears from an ``llm:tool-output`` (OpenAI or Google shape), else None."""
    if not isinstance(data, dict):
        return None
    item = data.get("item")
    if data.get("type") == "conversation.item.create" and isinstance(item, dict):
        if item.get("type") == "function_call_output":
            return _text(item.get("output"))
    response = data.get("toolResponse")
    if isinstance(response, dict):
        replies = response.get("functionResponses")
        if isinstance(replies, list) and replies and isinstance(replies[0], dict):
            return _text(replies[0].get("response"))
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class _Llm:
    """One running llm verb."""

    def __init__(self, call: VerbContext, verb: dict[str, Any]) -> None:
        self.call = call
        self.verb = verb
        self.vendor = str(verb.get("vendor") or "openai")
        self.wanted = event_filter(verb.get("events"))
        self.event_hook = hook_url(verb.get("eventHook"))
        self.tool_hook = hook_url(verb.get("toolHook"))
        self.waiting: dict[str, asyncio.Future[Any]] = {}
        self.listeners: dict[str, Callable[[dict[str, Any]], None]] = {
            "llm:tool-output": self.on_tool_output,
            "llm:update": self.on_update,
        }

    async def event(self, data: dict[str, Any]) -> None:
        if self.event_hook and self.wanted(str(data.get("type", ""))):
            await self.call.notify("llm:event", data, self.event_hook)

    def on_tool_output(self, msg: dict[str, Any]) -> None:
        tool_call_id = msg.get("tool_call_id")
        data = msg.get("data")
        fut = self.waiting.get(tool_call_id) if isinstance(tool_call_id, str) else None
        if fut is None or fut.done():
            why = f"llm:tool-output for {tool_call_id!r}: no tool call waits for it"
            self.call.note("tool-output-ignored", why, data)
            return
        self.call.note("tool-output", f"llm:tool-output for {tool_call_id}", data)
        fut.set_result(data)

    def on_update(self, msg: dict[str, Any]) -> None:
        data = msg.get("data")
        kind = data.get("type") if isinstance(data, dict) else None
        self.call.note("llm-update", f"llm:update {kind or ''}".strip(), data)

    async def run(self) -> str:
        """Play the conversation; returns the completion reason."""
        call = self.call
        await self.event(dict(SESSION_START.get(self.vendor, {"type": "session.created"})))
        while True:
            said = call.next_input()
            if isinstance(said, Silence):
                break
            if isinstance(said, Digits):
                call.note("ignored-input", f"llm: dtmf {said.digits!r} is not passed to the model")
                continue
            assert isinstance(said, Speech)
            await call.sleep(said.after)
            await self.event(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": _new_id(call, "item_"),
                    "content_index": 0,
                    "transcript": said.text,
                }
            )
            reply = f"reply to: {said.text}"
            tool = self.next_tool()
            if tool is not None:
                output = await self.tool_call(tool)
                if isinstance(output, str):
                    reply = f"tool result: {output}"
            call.heard("llm", reply)
            await self.event({"type": "response.audio_transcript.done", "transcript": reply})
            await call.sleep(speech_seconds(reply))
            await self.event({"type": "response.done", "response": {"status": "completed"}})
        left = len(call.caller.tool_calls) - _ai(call).tools_made
        if left > 0:
            call.note("tool-calls-left", f"{left} scripted tool call(s) not made: the caller stopped talking")
        return "normal conversation end"

    def next_tool(self) -> ToolCall | None:
        state = _ai(self.call)
        tools = self.call.caller.tool_calls
        if state.tools_made >= len(tools):
            return None
        state.tools_made += 1
        return tools[state.tools_made - 1]

    async def tool_call(self, tool: ToolCall) -> str | None:
        """Send one tool call and wait for its output (no timeout): the text heard, or None."""
        call = self.call
        hook = self.tool_hook
        if not hook or hook.startswith(("http://", "https://")):
            why = "no toolHook" if not hook else f"toolHook {hook} is HTTP (not simulated)"
            call.note("tool-call-skipped", f"tool call {tool.name}: {why}; skipped")
            return None
        call_id = _new_id(call, "call_")
        args = dict(tool.args)
        await self.event(
            {
                "type": "response.function_call_arguments.done",
                "call_id": call_id,
                "name": tool.name,
                "arguments": json.dumps(args),
            }
        )
        if self.vendor == "google":
            data: dict[str, Any] = {
                "tool_call_id": "function_call_id",
                "type": "toolCall",
                "function_calls": [{"id": call_id, "name": tool.name, "args": args}],
            }
            keys = [call_id, "function_call_id"]
        else:
            data = {"tool_call_id": call_id, "name": tool.name, "args": args}
            keys = [call_id]
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        for key in keys:
            self.waiting[key] = fut
        await call.notify("llm:tool-call", data, hook)
        end, _ = call.deadline()
        remaining = max(0.0, end - call.clock.now())
        window = min(remaining, call.options.tool_timeout) if call.clock.virtual else remaining
        try:
            output = await call.wait_real(fut, window)
        except TimeoutError:
            why = "jambonz has no tool timeout: the call waits until it ends"
            call.note("tool-wait", f"no llm:tool-output for {call_id}; {why}")
            await call.sleep(max(0.0, end - call.clock.now()))  # at the deadline: raises Hangup
            return None
        finally:
            for key in keys:
                self.waiting.pop(key, None)
        return _tool_result(output)


@runner("llm")
async def llm(call: VerbContext, verb: dict[str, Any]) -> None:
    session = _Llm(call, verb)
    call.listeners.update(session.listeners)
    try:
        reason = await session.run()
    finally:
        for name, fn in session.listeners.items():
            if call.listeners.get(name) == fn:
                del call.listeners[name]
    # performAction throws when unacked or acked with invalid verbs: the session ends (openai_s2s.js ~144)
    await hang_up_on_error(call, verb, {"completion_reason": reason})


# -- TTS token streaming ----------------------------------------------------------------------


class TtsStream:
    """The call's TTS token stream (protocol doc §2.10), as the simulator models it.

    Open while a ``say`` with ``stream: true`` runs, or from a ``config`` verb
    with ``ttsStream.enable: true`` until one disables it (a background stream;
    the ``config`` *command* is not seen here). ``stream_open`` /
    ``stream_closed`` mark its life.

    - ``tts:tokens {id, tokens}`` appends to the buffer → ``tts:tokens-result
      {id, status:"ok"}``. Tokens that would take the buffer over
      :data:`HIGH_WATER` (1000 chars) are refused with ``{status:"failed",
      reason:"full"}`` — even into an empty buffer, so a single chunk over
      1000 chars is never taken (``tts-streaming-buffer.js`` ~111) — and
      ``stream_paused`` is sent once; the stream resumes (``stream_resumed``)
      only when a chunk leaves the buffer (speech drains it here) and at most
      :data:`LOW_WATER` (200) chars are left (~318–328). A flush or a clear
      does not resume it (a clear un-pauses it silently, ~165–175).
      Whitespace into an empty buffer is discarded, ``ok``. No ``id`` ⇒ no
      reply; no ``tokens`` ⇒
      ``missing tokens``. With no stream open the reply is ``failed`` with
      ``connection to <vendor> failed``: the documented failure for a stream
      whose vendor connection is not up (``stream_open`` is that connection).
    - Speech drains the buffer at :data:`CHARS_PER_SECOND` on the call's clock.
      On the virtual clock the call's time moves only when the app has been
      quiet for :data:`QUIET` real seconds (an app producing tokens takes no
      call time), and then jumps to the next change (resume point, end of
      speech).
    - ``tts:flush`` hands the whole buffer to TTS: the caller hears
      ``("say", <everything spoken since the last flush or clear>)`` and the
      flushed text takes its speaking time. ``tts:clear`` drops the buffer and
      any flushed audio still playing (what was already spoken is heard).
    - A streaming say ends when ``closeOnStreamEmpty`` (default true; the
      SDK's ``closeStreamOnEmpty`` is not read by 0.9.8, ``say.js`` ~80) and
      it has been flushed, nothing is left to say and the app is quiet;
      otherwise it lasts until replaced or the call ends (like an idle stack:
      on the virtual clock ``SimOptions.idle_wait`` real seconds of silence
      jump to the caller's hangup). Each ``text`` entry of a streaming say is
      buffered and flushed first, and a text makes it close on empty (~121).
    - Barge-in: with ``config.bargeIn`` enabled for ``speech``, a streaming say
      takes the caller's next input; a ``Speech`` ``after`` seconds into the
      stream clears the buffer and sends ``user_interruption`` (the bargeIn
      actionHook is not sent here). A background stream is not interrupted.
    """

    def __init__(self, call: VerbContext) -> None:
        self._call = weakref.ref(call)
        self.buffer = ""  # accepted, not yet spoken
        self.spoken = ""  # spoken since the last flush / clear
        self.backlog = 0.0  # seconds of flushed text still playing
        self.open = False
        self.owner: str | None = None  # "say" or "config"
        self.vendor = "google"
        self.paused = False
        self.flushed = False
        self.barge_at: float | None = None
        self.activity = asyncio.Event()
        self._last = 0.0
        self._credit = 0.0
        self._outbox: asyncio.Task[None] | None = None
        self._background: asyncio.Task[None] | None = None

    @property
    def call(self) -> VerbContext:
        call = self._call()
        assert call is not None, "the call is gone"
        return call

    # -- life ----------------------------------------------------------------

    def start(self, owner: str, vendor: str) -> None:
        self.open, self.owner, self.vendor = True, owner, vendor
        self.buffer = self.spoken = ""
        self.backlog, self._credit = 0.0, 0.0
        self.paused = self.flushed = False
        self._last = self.call.clock.now()
        self.call.note("tts-stream", f"TTS stream open ({owner}, {vendor})")
        self._emit("tts:streaming-event", {"event_type": "stream_open"})

    def close(self) -> None:
        if not self.open:
            return
        self.settle()
        if self.spoken:
            self.call.heard("say", self.spoken)
        if self.buffer or self.backlog:
            self.call.note("tts-dropped", f"stream closed with {len(self.buffer)} chars unspoken")
        self.buffer = self.spoken = ""
        self.backlog = 0.0
        self.open = self.paused = False
        self.owner = None
        self.barge_at = None
        self.call.note("tts-stream", "TTS stream closed")
        self._emit("tts:streaming-event", {"event_type": "stream_closed"})

    async def sent(self) -> None:
        """Wait until the stream's messages so far are on the wire."""
        if self._outbox is not None:
            await asyncio.wait([self._outbox])

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        prev, call = self._outbox, self.call

        async def send() -> None:
            if prev is not None:
                await asyncio.wait([prev])
            await call.notify(kind, data)

        self._outbox = asyncio.get_running_loop().create_task(send())

    # -- commands (app → jambonz) ------------------------------------------------

    def on_tokens(self, msg: dict[str, Any]) -> None:
        data = msg.get("data")
        if not isinstance(data, dict) or data.get("id") is None:
            self.call.note("tts-no-id", "tts:tokens without id: jambonz sends no reply", data)
            return
        tid, tokens = data["id"], data.get("tokens")
        self.activity.set()
        if not isinstance(tokens, str):
            self._result(tid, "failed", "missing tokens")
        elif not self.open:
            self._result(tid, "failed", f"connection to {self.vendor_now()} failed")
        else:
            self.settle()
            if not self.buffer and not tokens.strip():
                self._result(tid, "ok")  # whitespace into an empty buffer: discarded
            elif len(self.buffer) + len(tokens) > HIGH_WATER:
                self._result(tid, "failed", "full")
                if not self.paused:
                    self.paused = True
                    self._emit("tts:streaming-event", {"event_type": "stream_paused"})
            else:
                self.buffer += tokens
                self._result(tid, "ok")

    def on_flush(self, msg: dict[str, Any]) -> None:
        self.activity.set()
        if not self.open:
            self.call.note("tts-flush", "tts:flush with no stream open: nothing to flush")
            return
        self.settle()
        if self.spoken or self.buffer:
            self.call.heard("say", self.spoken + self.buffer)
        self.backlog += len(self.buffer) / CHARS_PER_SECOND
        self.buffer = self.spoken = ""
        self._credit = 0.0
        self.flushed = True

    def on_clear(self, msg: dict[str, Any]) -> None:
        self.activity.set()
        if not self.open:
            self.call.note("tts-clear", "tts:clear with no stream open: nothing to clear")
            return
        self.settle()
        self._drop("tts:clear")

    def _result(self, tid: Any, status: str, reason: str | None = None) -> None:
        data: dict[str, Any] = {"id": tid, "status": status}
        if reason is not None:
            data["reason"] = reason
        self._emit("tts:tokens-result", data)

    def _drop(self, why: str) -> None:
        if self.spoken:
            self.call.heard("say", self.spoken)
        self.call.note("tts-cleared", f"{why}: {len(self.buffer)} chars dropped")
        self.buffer = self.spoken = ""
        self.backlog, self._credit = 0.0, 0.0
        self.paused = False  # cleared silently: no stream_resumed (tts-streaming-buffer.js ~174)

    def vendor_now(self) -> str:
        return self.vendor if self.open else _vendor(self.call, {})

    # -- speech on the call's clock ---------------------------------------------

    def settle(self) -> None:
        """Speak what the call's clock says has been spoken since the last look."""
        if not self.open:
            return
        now = self.call.clock.now()
        if self.barge_at is not None and now >= self.barge_at:
            self._speak(self.barge_at - self._last)
            self._last = self.barge_at
            self.barge_at = None
            self._interrupt()
        self._speak(now - self._last)
        self._last = now

    def _speak(self, seconds: float) -> None:
        if seconds <= 0:
            return
        used = min(self.backlog, seconds)
        self.backlog -= used
        seconds -= used
        if seconds <= 0 or not self.buffer:
            return
        chars = seconds * CHARS_PER_SECOND + self._credit
        n = min(len(self.buffer), int(chars + 1e-6))
        self._credit = chars - n if n < len(self.buffer) else 0.0
        self.spoken += self.buffer[:n]
        self.buffer = self.buffer[n:]
        if n > 0:
            self._chunk_sent()

    def _chunk_sent(self) -> None:
        """A chunk left the buffer: a paused stream resumes at or below LOW_WATER (~324–328)."""
        if self.paused and len(self.buffer) <= LOW_WATER:
            self.paused = False
            self._emit("tts:streaming-event", {"event_type": "stream_resumed"})

    def _interrupt(self) -> None:
        if not (self.buffer or self.backlog):
            self.call.note("bargein", "caller spoke while the stream was silent")
            return
        self.call.note("bargein", "caller barged in on the TTS stream")
        self._drop("user_interruption")
        self._emit("tts:streaming-event", {"event_type": "user_interruption"})

    def next_change(self) -> float:
        """Call seconds until something changes by speech alone (0: nothing is playing)."""
        seconds = self.backlog + len(self.buffer) / CHARS_PER_SECOND
        if seconds <= 0:
            return 0.0
        if self.paused and self.buffer:  # until the chunk that resumes it leaves
            left = max(1.0, len(self.buffer) - LOW_WATER) - self._credit
            seconds = self.backlog + max(left, 0.0) / CHARS_PER_SECOND
        if self.barge_at is not None:
            seconds = min(seconds, self.barge_at - self.call.clock.now())
        return max(seconds, 1e-6)

    # -- waiting -------------------------------------------------------------------

    async def wait_activity(self, timeout: float) -> bool:
        """Wait (real time) for a command from the app; False when none came."""
        if not self.activity.is_set():
            fut = asyncio.ensure_future(self.activity.wait())
            try:
                await self.call.wait_real(fut, timeout)
            except TimeoutError:
                return False
            finally:
                fut.cancel()
        self.activity.clear()
        return True

    async def wait_app_or_end(self) -> None:
        """Nothing to say: wait for the app; on the virtual clock give up after ``idle_wait``."""
        call = self.call
        end, _ = call.deadline()
        remaining = max(0.0, end - call.clock.now())
        wait = min(remaining, call.options.idle_wait) if call.clock.virtual else remaining
        if await self.wait_activity(wait):
            return
        await call.sleep(end - call.clock.now())  # raises Hangup at the call's end

    def arm_bargein(self) -> None:
        barge = self.call.config.get("bargeIn")
        if not (isinstance(barge, dict) and barge.get("enable") and "speech" in (barge.get("input") or [])):
            return
        said = self.call.next_input()
        if isinstance(said, Speech):
            self.barge_at = self.call.clock.now() + said.after
            self.call.note("bargein-armed", f"caller will say {said.text!r} {said.after:g} s into the stream")
        elif not isinstance(said, Silence):
            self.call.note("ignored-input", f"caller input {said!r} is not speech; no barge-in")

    async def run_background(self) -> None:
        """A config-opened stream: look at the clock now and then, so stream_resumed goes out."""
        call = self.call
        while self.open and self.owner == "config" and call.result.final_status is None:
            await asyncio.sleep(QUIET)
            self.settle()


def tts_stream(call: VerbContext) -> TtsStream:
    """The call's TTS stream, created (and its command listeners registered) on first use."""
    state = _ai(call)
    if state.tts is None:
        state.tts = stream = TtsStream(call)
        call.listeners["tts:tokens"] = stream.on_tokens
        call.listeners["tts:flush"] = stream.on_flush
        call.listeners["tts:clear"] = stream.on_clear
    return state.tts


def _vendor(call: VerbContext, verb: dict[str, Any]) -> str:
    config_stream = call.config.get("ttsStream")
    defaults = call.payload.get("defaults")
    for synth in (
        verb.get("synthesizer"),
        config_stream.get("synthesizer") if isinstance(config_stream, dict) else None,
        call.config.get("synthesizer"),
        defaults.get("synthesizer") if isinstance(defaults, dict) else None,
    ):
        if isinstance(synth, dict) and synth.get("vendor"):
            return str(synth["vendor"])
    return "google"


# Registered after basic's runners (basic is imported at the top of this module), so these win.
@runner("say")
async def say(call: VerbContext, verb: dict[str, Any]) -> None:
    """``stream: true`` runs a TTS stream; any other say is :func:`.basic.say`."""
    stream = tts_stream(call)
    if not verb.get("stream"):
        await basic.say(call, verb)
        return
    owned = not stream.open
    if owned:
        stream.start("say", _vendor(call, verb))
    else:
        stream.flushed = False
    entries = texts(verb)
    for text in entries:  # each entry is buffered, then flushed (say.js ~150–194)
        stream.buffer += text
        stream.on_flush({})
    # say.js ~80, ~121: closeOnStreamEmpty (default true), forced on by a text
    close_on_empty = verb.get("closeOnStreamEmpty") is not False or bool(entries)
    if "closeStreamOnEmpty" in verb:
        call.note("ignored", "closeStreamOnEmpty: jambonz 0.9.8 reads closeOnStreamEmpty (say.js ~80)")
    stream.arm_bargein()
    try:
        while True:
            if await stream.wait_activity(QUIET):
                continue  # the app is busy: no call time passes
            stream.settle()
            seconds = stream.next_change()
            if seconds > 0:
                await call.sleep(seconds)
                stream.settle()
                continue
            if close_on_empty and stream.flushed:
                break
            await stream.wait_app_or_end()
    finally:
        stream.barge_at = None
        if owned:
            stream.close()
        await stream.sent()  # stream_closed goes out before the call's next message (even on hangup)


@runner("config")
async def config(call: VerbContext, verb: dict[str, Any]) -> None:
    """:func:`.basic.config`, plus ``ttsStream.enable`` opening / closing the background stream."""
    await basic.config(call, verb)
    setting = verb.get("ttsStream")
    if not isinstance(setting, dict) or "enable" not in setting:
        return
    stream = tts_stream(call)
    if setting["enable"] and not stream.open:
        stream.start("config", _vendor(call, {}))
        stream._background = asyncio.get_running_loop().create_task(stream.run_background())
    elif not setting["enable"] and stream.owner == "config":
        stream.close()
    await stream.sent()
