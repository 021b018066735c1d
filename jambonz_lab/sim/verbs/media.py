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

import uuid
from typing import TYPE_CHECKING, Any

from ..audio_socket import AudioSocket
from ..caller import Digits, Speech
from ..engine import AckTimeout
from . import runner
from .basic import action_hook, hook_url, placeholder_sleep, speech_result, unawaited_action
from .rooms import wait_for_end

if TYPE_CHECKING:
    from ..context import VerbContext

__all__ = ["BEEP", "BEEP_SECONDS"]

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


@runner("listen")
async def listen(call: VerbContext, verb: dict[str, Any]) -> None:
    """The audio socket (:mod:`~jambonz_lab.sim.audio_socket`), then the actionHook (``listen.js`` ~92–94)."""
    if verb.get("transcribe"):
        call.note("not-simulated", "listen: nested transcribe not simulated")
    if verb.get("playBeep"):
        call.heard("play", BEEP)
        await placeholder_sleep(call, BEEP_SECONDS, "listen beep")
    results = await AudioSocket(call, verb).run()
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
