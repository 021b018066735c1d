"""transcribe, listen (and stream), message, dtmf, alert, dub.

transcribe
    Takes the caller's inputs in order: each :class:`~jambonz_lab.sim.caller.Speech`
    becomes, ``after`` seconds later, a transcriptionHook (awaited) with the raw
    CallInfo and ``speech`` (the shape of gather's ``speech``). Ack verbs replace
    the stack and end the transcribe. The first Silence or Digits input (or
    none left) ends the transcripts; jambonz's transcribe then keeps running
    until it is killed, so the verb waits until the caller hangs up (or a
    ``redirect`` replaces it). translationHook: not simulated (no translation
    engine), noted.

listen / stream
    ``playBeep`` plays a 0.5 s tone first; then the audio socket
    (:class:`~jambonz_lab.sim.audio_socket.AudioSocket`: metadata, 20 ms L16 frames of the
    caller's :class:`~jambonz_lab.sim.caller.Audio`, dtmf events, the app's playAudio). The
    stream runs ``maxLength`` seconds, or until the finish key, the app's ``disconnect`` or
    close, a hangup or a replace. With ``finishOnKey`` (or ``passDtmf``) listen takes the
    caller's next Digits: pressed one every ``interval`` from ``after``; the finish key ends
    the stream and is reported as ``digits``. The actionHook gets ``digits?`` and
    ``dial_call_duration`` (whole seconds streamed), none when the socket did not connect.

    A ``transcribe`` property is a nested transcribe task (``listen.js`` ~64, started beside
    the fork ~83–91, killed with it ~98, ~121–124): once the stream took its Audio (and
    Digits), each following :class:`~jambonz_lab.sim.caller.Speech` sounds in the stream (its
    placeholder on the caller's side) and becomes, ``after`` seconds after the one before,
    a transcriptionHook with the raw CallInfo and ``speech``, as the transcribe verb's. It is
    not awaited by the stream, and verbs in its ack are ignored: a nested transcribe never
    replaces the application (``transcribe.js`` ~706–713, ``!this.parentTask``). Speech not
    final when the stream ends is not transcribed; on the 20 ms frame grid.

message
    The SMS is noted (an SMPP gateway is assumed); the actionHook is sent and
    not awaited — the next verb starts at once, the ack's verbs replace the
    stack when they come (``message.js`` ~62–121) — with ``message_sid`` (the
    verb's, else a new UUID, ~12), ``carrier`` (the verb's, else the call's
    carrier), ``carrier_message_id`` and ``message_status:"success"``.

dtmf
    The caller hears ``("dtmf", digits)``; the verb lasts as jambonz waits:
    ``len(digits) * (duration + 250) + 750`` ms (``duration`` default 500).

alert
    Noted (jambonz writes an application alert for the account).

dub
    The action and track are noted; what is played on a track (``sayOnTrack`` /
    ``playOnTrack``, or ``addTrack`` with ``say`` / ``play``) is heard as
    ``("dub", text or url)``. It runs in the background: the verb takes no time.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from ..audio_socket import AudioSocket
from ..caller import Digits, Speech
from ..context import spawn
from ..engine import AckTimeout
from . import runner
from .basic import action_hook, hook_url, placeholder_sleep, speech_result, unawaited_action
from .rooms import wait_for_end

if TYPE_CHECKING:
    from ..context import VerbContext

__all__ = ["BEEP", "BEEP_SECONDS", "NestedTranscribe"]

BEEP = "tone_stream://L=1;%(500, 0, 1500)"
BEEP_SECONDS = 0.5


@runner("transcribe")
async def transcribe(call: VerbContext, verb: dict[str, Any]) -> None:
    hook = hook_url(verb.get("transcriptionHook"))
    if verb.get("translationHook"):
        call.note("not-simulated", "translationHook: no translation is simulated")
    while True:
        said = call.next_input()
        if not isinstance(said, Speech):
            if isinstance(said, Digits):
                call.note("ignored-input", f"transcribe does not take digits: {said.digits!r}")
            break
        await call.sleep(said.after)
        if not hook:
            call.note("transcription", f"transcribed {said.text!r}; no transcriptionHook")
            continue
        try:
            verbs = await call.hook(hook, {**call.raw_info(), "speech": speech_result(said, said.text)})
        except AckTimeout:
            continue
        if verbs:
            call.replace_stack(verbs, kill=False)
            return
    call.note("transcribe", "no more speech; transcribing until the call ends")
    await wait_for_end(call)


class NestedTranscribe:
    """listen's ``transcribe`` on the stream's frame clock (see the module docstring); loop thread."""

    def __init__(self, call: VerbContext, spec: dict[str, Any]) -> None:
        self.call = call
        self.hook = hook_url(spec.get("transcriptionHook"))
        self.translation = bool(spec.get("translationHook"))
        self.said: Speech | None = None
        self.at: float | None = None  # when the final of ``said`` comes
        self.stopped = False

    def start(self) -> None:
        if self.translation:
            self.call.note("not-simulated", "listen transcribe: translationHook: no translation is simulated")
        self._take()

    def _take(self) -> None:
        """The caller's next Speech, if that is what comes next (its sound goes into the call now)."""
        if self.stopped or not isinstance(self.call.peek_input(), Speech):
            self.said = self.at = None
            return
        said = self.call.next_input()
        assert isinstance(said, Speech)
        self.said, self.at = said, self.call.clock.now() + said.after

    def next_at(self) -> float | None:
        return self.at

    async def due(self, until: float) -> None:
        sent = False
        while self.said is not None and self.at is not None and self.at <= until:
            sent = self._final(self.said) or sent
            self._take()
        if sent:  # let the hooks go out at this call time, before the stream's clock moves on
            await asyncio.sleep(0)

    def stop(self) -> None:
        self.stopped = True
        self.said = self.at = None

    def _final(self, said: Speech) -> bool:
        """The final transcript of ``said``: its hook started (True), or a note without a hook."""
        call = self.call
        if not self.hook:
            call.note("transcription", f"transcribed {said.text!r}; no transcriptionHook")
            return False
        payload = {**call.raw_info(), "speech": speech_result(said, said.text)}
        hook = self.hook

        async def send() -> None:
            try:
                verbs = await call.hook(hook, payload)
            except AckTimeout:
                return
            if verbs:
                call.note("transcription", "nested transcribe: the verbs of its ack are ignored")

        spawn(send())
        return True


@runner("listen")
async def listen(call: VerbContext, verb: dict[str, Any]) -> None:
    """The audio socket (:mod:`~jambonz_lab.sim.audio_socket`), then the actionHook (``listen.js`` ~92–94)."""
    spec = verb.get("transcribe")
    beside = NestedTranscribe(call, spec) if isinstance(spec, dict) and spec else None
    if verb.get("playBeep"):
        call.heard("play", BEEP)
        await placeholder_sleep(call, BEEP_SECONDS, "listen beep")
    results = await AudioSocket(call, verb, beside=beside).run()
    await action_hook(call, verb, results)


@runner("message")
async def message(call: VerbContext, verb: dict[str, Any]) -> None:
    carrier = str(verb.get("carrier") or call.payload["originating_sip_trunk_name"])
    sms = f"SMS from {verb.get('from')} to {verb.get('to')} via {carrier}"
    call.note("message", f"{sms}: {verb.get('text')!r}")
    sid = verb.get("message_sid") or str(uuid.UUID(int=call.ids.getrandbits(128)))
    result = {
        "message_sid": sid,
        "carrier": carrier,
        "carrier_message_id": str(uuid.UUID(int=call.ids.getrandbits(128))),
        "message_status": "success",
    }
    unawaited_action(call, verb, result)


@runner("dtmf")
async def dtmf(call: VerbContext, verb: dict[str, Any]) -> None:
    digits = str(verb["dtmf"])
    duration = int(verb.get("duration") or 500)
    call.heard("dtmf", digits)
    await call.sleep((len(digits) * (duration + 250) + 750) / 1000)


@runner("alert")
async def alert(call: VerbContext, verb: dict[str, Any]) -> None:
    call.note("alert", f"application alert written: {verb.get('message')!r}")


@runner("dub")
async def dub(call: VerbContext, verb: dict[str, Any]) -> None:
    action, track = verb.get("action"), verb.get("track")
    call.note("dub", f"{action} on track {track!r}")
    say, play = verb.get("say"), verb.get("play")
    if action == "sayOnTrack" or (action == "addTrack" and say and not play):
        text = say.get("text") if isinstance(say, dict) else say
        call.heard("dub", str(text or ""))
    elif action == "playOnTrack" or (action == "addTrack" and play):
        call.heard("dub", str(play or ""))
