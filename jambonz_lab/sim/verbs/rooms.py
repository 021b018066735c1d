"""conference, enqueue, dequeue, leave: rooms as one simulated process sees them.

The model: the simulator runs this one call and nothing else, so there is no
other conference member, queue member or dequeuer unless a verb implies one.
Waits that last "until the caller hangs up" end at the caller's
``hangup_after`` or the time limit (:class:`~jambonz_lab.sim.engine.Hangup`).
On the virtual clock such a wait first gives the app ``SimOptions.idle_wait``
real seconds to act (a ``redirect`` command, a kick) and then jumps to that
moment; on the real clock it simply waits.

conference (payloads per protocol doc §4.3)
    ``startConferenceOnEnter`` unset or true: the caller starts the conference.
    statusHook ``start`` (members 0), the enterHook once (raw CallInfo; the
    say/play/pause verbs of its ack are played to the caller), the caller
    joins: statusHook ``join`` (members 1). The caller then stays, alone, until
    they hang up, the time limit passes, the stack is replaced, or the app kicks
    them with ``conf:participant-action {action:"kick"}``. Meanwhile they say
    their remaining inputs in turn (each :class:`~jambonz_lab.sim.caller.Speech`
    ``after`` seconds after the previous one ended, as long as a TTS voice would
    take; a ``Silence`` ends it, keys are pressed to nobody): FreeSWITCH's
    talk detection fires ``start-talking`` when they begin and
    ``stop-talking`` when they end (mod_conference ``conference_loop_input``),
    which jambonz reports for its own member only with ``time`` from the
    event's timestamp and ``members`` the conference size (``conference.js``
    ~774–796). A member that joined muted (``joinMuted``, ``speakOnlyTo``,
    ~359) cannot speak: FreeSWITCH sends ``mute-detect`` instead, which jambonz
    does not handle. Leaving sends
    statusHook ``leave`` and ``end`` (members 0: the last member left).
    Whatever ends the verb, the actionHook (call info only) is sent
    (``conference.js`` ~107–110): after a kick the stack goes on; after a
    replace its ack verbs still replace the stack; after a hangup (the
    caller's ``completed`` first) they are of no use. The waiting caller
    (``startConferenceOnEnter: false``) gets it too.

    ``startConferenceOnEnter: false`` with no conference running: the caller
    waits for a moderator who never comes. waitHook loop: 0.75 s of silence,
    the hook with raw CallInfo, its say/play/pause verbs played, again, until an
    ack without verbs (or an unacked hook, or a verb other than say/play/pause);
    then silence until hangup. No statusHook events: the caller never joined.

    statusHook events (not awaited) are sent only for those listed in
    ``statusEvents`` among start, end, join, leave, start-talking and
    stop-talking, and only with a statusHook (~57–61): ``{event, duration,
    time, members, conference_sid, friendly_name}`` + call info (~715–743);
    ``duration`` is seconds since the conference started. ``conference_sid`` is
    ``conf:<account_sid>:<name>``. ``maxParticipants``,
    ``endConferenceDuration`` and ``endConferenceOnExit`` only matter with
    other members; ``beep``, ``memberTag``, ``record`` and ``listen`` are noted
    in the trace; ``joinMuted`` and ``speakOnlyTo`` only silence the talk events.

enqueue
    waitHook loop: 0.5 s of silence, the hook with the sparse payload
    ``{queue_sid, queue_time, queue_size:1, queue_position:0, call_sid,
    call_id, customerData?}``, its say/play/pause/tag verbs run, again. A
    ``leave`` in the ack plays the verbs before it, then ends the wait: the
    actionHook gets ``queue_sid, queue_time, queue_result:"leave"``. An ack
    without verbs (or unacked, or with another verb) ends the loop: the caller
    waits in silence until hangup (nobody dequeues in one process). The
    hangup — or a replace — ends the wait and the actionHook still gets
    ``queue_result:"hangup"`` (``enqueue.js`` ~56, ~65–70, ~115), its verbs ignored.
    ``queue_sid`` is ``queue:<account_sid>:<name>``; ``queue_time`` whole seconds.

dequeue
    Nobody is queued. ``timeout`` > 0: after that many seconds the actionHook
    gets ``dequeue_result:"timeout"``; jambonz does not await that hook (the
    next verb starts at once and the ack's verbs, if any, replace the stack
    when they come). No ``timeout`` (jambonz's default 0): it waits until hangup.

leave
    Outside an enqueue waitHook, jambonz's leave task just waits until it is
    killed: dead air until a ``redirect`` command or the hangup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..caller import Audio, Digits, Silence
from ..engine import AckTimeout, Hangup
from . import runner
from .basic import action_hook, hook_url, pause, play, say, speech_seconds, tag, unawaited_action, with_id

if TYPE_CHECKING:
    from ..context import VerbContext

__all__ = ["play_verbs", "wait_for_end"]

CONF_WAIT_SILENCE = 0.75  # jambonz plays silence_stream://750 before each conference waitHook
QUEUE_WAIT_SILENCE = 0.5  # and silence_stream://500 before each enqueue waitHook
CONF_EVENTS = ("start", "end", "join", "leave", "start-talking", "stop-talking")  # conference.js ~58
CONF_PLAYABLE = frozenset({"say", "play", "pause"})
QUEUE_PLAYABLE = frozenset({"say", "play", "pause", "leave", "tag"})
KICK_COMMAND = "conf:participant-action"


async def wait_for_end(call: VerbContext, wake: asyncio.Event | None = None) -> None:
    """Wait until the caller hangs up or the time limit passes (raises Hangup), or ``wake`` is set.

    The verb stays killable meanwhile (a replace cancels it). On the virtual
    clock the app gets ``idle_wait`` real seconds to act before time jumps.
    """
    end, _ = call.deadline()
    remaining = max(0.0, end - call.clock.now())
    window = min(remaining, call.options.idle_wait) if call.clock.virtual else remaining
    waiter = asyncio.ensure_future((wake or asyncio.Event()).wait())
    try:
        await call.wait_real(waiter, window)
        return
    except TimeoutError:
        pass
    finally:
        waiter.cancel()
    await call.sleep(max(0.0, end - call.clock.now()))  # at or past the deadline: raises Hangup


async def play_verbs(call: VerbContext, verbs: Iterable[dict[str, Any]]) -> None:
    """Run the say/play/pause/tag verbs of a wait or enter hook's ack (play without its actionHook)."""
    for verb in verbs:
        name = verb["verb"]
        if name == "say":
            await say(call, verb)
        elif name == "play":
            await play(call, {k: v for k, v in verb.items() if k != "actionHook"})
        elif name == "pause":
            await pause(call, verb)
        elif name == "tag":
            await tag(call, verb)


async def _prompt_hook(
    call: VerbContext, hook: str, data: dict[str, Any], allowed: frozenset[str], what: str
) -> list[dict[str, Any]]:
    """A wait/enter hook: its ack verbs, or [] when jambonz gives up (unacked, or a verb not allowed)."""
    try:
        verbs = await call.hook(hook, data)
    except AckTimeout:
        call.note("error", f"{what}: no ack; jambonz stops asking")
        return []
    bad = [v["verb"] for v in verbs if v["verb"] not in allowed]
    if bad:
        call.note("error", f"unsupported verb {bad[0]!r} in {what}: only {sorted(allowed)}")
        return []
    return verbs


async def _sleep_unless(call: VerbContext, seconds: float, stop: asyncio.Event) -> bool:
    """A wait of the call that ``stop`` cuts short; False when it did. Raises Hangup."""
    if stop.is_set():
        return False
    waiting = asyncio.ensure_future(call.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiting, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not waiting.done():
            waiting.cancel()
    if waiting.done() and not waiting.cancelled():
        waiting.result()  # raises Hangup
        return True
    return False


def _iso_now(call: VerbContext) -> str:
    """The wall-clock time of the call's clock now, as JavaScript's toISOString() writes it."""
    trace = call.result.trace
    origin = trace[0].ts - trace[0].t if trace else datetime.now(UTC).timestamp() - call.clock.now()
    moment = datetime.fromtimestamp(origin + call.clock.now(), UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Conference:
    """The statusHook side of one conference verb."""

    def __init__(self, call: VerbContext, verb: dict[str, Any]) -> None:
        self.call = call
        self.name = str(verb["name"])
        self.sid = f"conf:{call.payload['account_sid']}:{self.name}"
        self.hook = hook_url(verb.get("statusHook"))
        wanted = verb.get("statusEvents") or []
        self.events = [e for e in CONF_EVENTS if e in wanted] if self.hook else []
        self.started = call.clock.now()

    async def event(self, name: str, members: int) -> None:
        if name not in self.events:
            return
        data = {
            "event": name,
            "duration": round(self.call.clock.now() - self.started, 3),
            "time": _iso_now(self.call),
            "members": members,
            "conference_sid": self.sid,
            "friendly_name": self.name,
            **self.call.call_info(),
        }
        await self.call.notify_hook(self.hook, data)

    async def talk(self, muted: bool, stop: asyncio.Event) -> None:
        """The caller says their remaining inputs in turn; each one's start/stop-talking (~774–796).

        Ends at a ``Silence``, when the inputs run out, or when ``stop`` is set (a kick);
        raises Hangup when the call ends meanwhile.
        """
        call = self.call
        while not stop.is_set():
            said = call.next_input()
            if isinstance(said, Silence | Audio):  # Audio: only a listen streams it
                return
            if isinstance(said, Digits):
                call.note("conference", f"keys {said.digits!r} pressed in the conference: nobody takes them")
                if not await _sleep_unless(call, said.after + said.interval * len(said.digits), stop):
                    return
                continue
            if not await _sleep_unless(call, said.after, stop):
                return
            seconds = speech_seconds(said.text)
            if muted:
                call.note(
                    "conference",
                    f"{said.text!r} said while muted: FreeSWITCH fires mute-detect, which jambonz ignores",
                )
                if not await _sleep_unless(call, seconds, stop):
                    return
                continue
            await self.event("start-talking", 1)
            if not await _sleep_unless(call, seconds, stop):
                return  # the leave cuts the speech: no stop-talking is reported after it
            await self.event("stop-talking", 1)

    async def leave(self) -> None:
        """The only member leaves: leave, then end (notifications: sent, not awaited)."""
        self.call.note("conference", f"left conference {self.name}; it ends (no members left)")
        await self.event("leave", 0)
        await self.event("end", 0)


@runner("conference")
async def conference(call: VerbContext, verb: dict[str, Any]) -> None:
    """Whatever ends it (a kick, a replace, the hangup), the actionHook follows (``conference.js`` ~107)."""
    try:
        await _conference(call, verb)
    except Hangup as ended:  # the caller's completed goes first (inbound-call-session.js ~113-118)
        await call.send_final_status(ended)
        await _late_action(call, verb, {}, replace=False)
        raise
    except asyncio.CancelledError:  # killed by a replace: performAction still replaces the stack
        await _late_action(call, verb, {}, replace=True)
        raise
    await action_hook(call, verb, {})


async def _conference(call: VerbContext, verb: dict[str, Any]) -> None:
    room = _Conference(call, verb)
    inert = [
        k
        for k in (
            "beep",
            "memberTag",
            "record",
            "listen",
            "stream",
            "maxParticipants",
            "endConferenceDuration",
            "endConferenceOnExit",
            "distributeDtmf",
        )
        if k in verb
    ]
    if inert:
        call.note("conference", f"{', '.join(inert)}: noted; no effect with a single member")
    if verb.get("startConferenceOnEnter") is False:
        call.note("conference", f"conference {room.name} not running: waiting for a moderator (none comes)")
        wait = hook_url(verb.get("waitHook"))
        while wait:
            await call.sleep(CONF_WAIT_SILENCE)
            verbs = await _prompt_hook(call, wait, call.raw_info(), CONF_PLAYABLE, "conference waitHook")
            if not verbs:
                break
            await play_verbs(call, verbs)
        await wait_for_end(call)
        return
    call.note("conference", f"conference {room.name} started by this caller")
    await room.event("start", 0)
    enter = hook_url(verb.get("enterHook"))
    if enter:
        await play_verbs(
            call, await _prompt_hook(call, enter, call.raw_info(), CONF_PLAYABLE, "conference enterHook")
        )
    await room.event("join", 1)
    kicked = asyncio.Event()

    def on_action(msg: dict[str, Any]) -> None:
        data = msg.get("data")
        action = data.get("action") if isinstance(data, dict) else None
        call.note("command", f"{KICK_COMMAND} {action!r}")
        if action == "kick":
            kicked.set()

    previous = call.listeners.get(KICK_COMMAND)
    call.listeners[KICK_COMMAND] = on_action
    muted = bool(verb.get("joinMuted") or verb.get("speakOnlyTo"))  # the "mute" flag (~359)
    try:
        await room.talk(muted, kicked)
        await wait_for_end(call, kicked)
    except (Hangup, asyncio.CancelledError):
        await room.leave()
        raise
    finally:
        if previous is None:
            call.listeners.pop(KICK_COMMAND, None)
        else:
            call.listeners[KICK_COMMAND] = previous
    await room.leave()


async def _late_action(
    call: VerbContext, verb: dict[str, Any], result: dict[str, Any], *, replace: bool
) -> None:
    """The actionHook of a verb ended by a hangup or a replace; its verbs replace the stack if ``replace``."""
    hook = hook_url(verb.get("actionHook"))
    if not hook:
        return
    try:
        verbs = await call.hook(hook, with_id(verb, {**call.call_info(), **result}))
    except AckTimeout:
        return
    if verbs and replace:
        call.replace_stack(verbs, kill=False)
    elif verbs:
        call.note("ignored", f"{verb['verb']} actionHook verbs ignored: the call is gone")


@runner("enqueue")
async def enqueue(call: VerbContext, verb: dict[str, Any]) -> None:
    name = str(verb["name"])
    queue_sid = f"queue:{call.payload['account_sid']}:{name}"
    joined = call.clock.now()
    call.note("queue", f"queued in {name}: position 0 of 1; nobody dequeues in one process")
    try:
        left = await _queue_wait(call, verb, queue_sid, joined)
    except (Hangup, asyncio.CancelledError) as stop:  # enqueue.js ~56, ~65-70, ~115: still sent
        if isinstance(stop, Hangup):
            await call.send_final_status(stop)
        waited = int(call.clock.now() - joined)
        result = {"queue_sid": queue_sid, "queue_time": waited, "queue_result": "hangup"}
        await _late_action(call, verb, result, replace=False)
        raise
    if not left:
        return
    call.note("queue", f"left queue {name} (leave in the waitHook ack)")
    result = {"queue_sid": queue_sid, "queue_time": int(call.clock.now() - joined), "queue_result": "leave"}
    await action_hook(call, verb, result)


async def _queue_wait(call: VerbContext, verb: dict[str, Any], queue_sid: str, joined: float) -> bool:
    """The waitHook loop, then silence until the call ends; True when a ``leave`` ends the wait."""
    wait = hook_url(verb.get("waitHook"))
    while wait:
        await call.sleep(QUEUE_WAIT_SILENCE)
        data: dict[str, Any] = {
            "queue_sid": queue_sid,
            "queue_time": int(call.clock.now() - joined),
            "queue_size": 1,
            "queue_position": 0,
            "call_sid": call.call_sid,
            "call_id": call.payload["call_id"],
        }
        if call.customer_data is not None:
            data["customerData"] = call.customer_data
        verbs = await _prompt_hook(call, wait, data, QUEUE_PLAYABLE, "enqueue waitHook")
        if not verbs:
            break
        names = [v["verb"] for v in verbs]
        upto = names.index("leave") if "leave" in names else len(verbs)
        await play_verbs(call, verbs[:upto])
        if upto < len(verbs):
            return True
    await wait_for_end(call)
    return False


@runner("dequeue")
async def dequeue(call: VerbContext, verb: dict[str, Any]) -> None:
    timeout = float(verb.get("timeout") or 0)
    call.note("dequeue", f"dequeue from {verb['name']}: nobody is queued in one process")
    if timeout <= 0:
        await wait_for_end(call)
        return
    await call.sleep(timeout)
    unawaited_action(call, verb, {"dequeue_result": "timeout"})


@runner("leave")
async def leave(call: VerbContext, verb: dict[str, Any]) -> None:
    call.note("leave", "leave outside an enqueue waitHook: jambonz waits until the task is killed (dead air)")
    await wait_for_end(call)
