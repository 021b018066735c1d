"""dial (with its B-legs and dial:confirm), sip:refer and sip:request.

What the simulated feature server does (protocol doc §2.7, §2.7a, §4.3):

* ``dial`` answers an inbound call at once (a 183 with early media instead
  when ``answerOnBridge``; then the answer comes when a B-leg is bridged),
  places one B-leg per target and reports each leg's ``call:status`` on the
  parent's socket. How each party answers comes from
  :meth:`Caller.outcome <jambonz_lab.sim.caller.Caller.outcome>`; the first
  leg to answer (and pass its ``confirmHook``) wins and the others are
  cancelled (487). The bridge lasts the callee's ``talk`` seconds, capped by
  ``timeLimit``. The actionHook then reports ``dial_call_status`` the way
  jambonz tracks it: the latest leg status, except that ``no-answer`` and
  ``completed`` stick.
* When the caller hangs up during a dial, jambonz reports the parent's
  ``completed`` first, then ends the B-legs, then still sends the dial
  actionHook (its verbs are of no use: the call is gone).
* A dial killed by a replace (a ``redirect`` command) still sends its
  actionHook, but the ack's verbs are ignored.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..caller import DialOutcome
from ..engine import AckTimeout, Hangup
from . import runner
from .amd import Detector
from .basic import (
    PLAY_SECONDS,
    action_hook,
    hang_up_on_error,
    hook_url,
    loops,
    speech_seconds,
    texts,
    with_id,
)
from .legs import Bridge, Ended, moments

if TYPE_CHECKING:
    from ..context import VerbContext

#: the property that names the party, per target type
__all__ = ["Dial", "Leg", "target_key"]

TARGET_KEYS = {"phone": "number", "teams": "number", "user": "name", "sip": "sipUri"}
MAX_TARGETS = 10  # jambonz dials at most 10 targets at once (duplicates removed)
FAILURES = {
    "busy": ("busy", 486, "Busy Here"),
    "no-answer": ("no-answer", 487, "Request Terminated"),
    "failed": ("failed", 503, "Service Unavailable"),
}
CANCELLED = ("no-answer", 487, "Request Terminated")
RINGING = ("trying", "ringing", "early-media")
#: what the referred party's outcome makes of the final NOTIFY (sipfrag status)
REFER_FINAL = {"answer": 200, "busy": 486, "no-answer": 487, "failed": 503}
REFER_WAIT = 15.0  # jambonz sends the sip:refer actionHook after 15 s without a final NOTIFY
NOT_SIMULATED = ("listen", "stream", "transcribe", "dub")  # dtmfHook, onHoldHook, referHook: legs.py


@dataclass
class Leg:
    """One B-leg of a dial."""

    index: int
    target: dict[str, Any]
    to: str
    outcome: DialOutcome
    call_sid: str
    call_id: str
    sbc_callid: str
    caller_id: str
    status: str = "trying"
    sip_status: int = 100
    sip_reason: str = "Trying"
    answered_at: float | None = None
    duration: int | None = None
    released: bool = False  # jambonz sent BYE without a status (a declined confirm)

    def info(self, call: VerbContext) -> dict[str, Any]:
        """The B-leg's toJSON() (call:status, dial:confirm)."""
        parent = call.call_info()
        data: dict[str, Any] = {
            "call_sid": self.call_sid,
            "direction": "outbound",
            "from": self.caller_id,
            "to": self.to,
            "call_id": self.call_id,
            "sbc_callid": self.sbc_callid,
            "sip_status": self.sip_status,
            "sip_reason": self.sip_reason,
            "call_status": self.status,
            "caller_id": self.caller_id,
            "account_sid": parent["account_sid"],
            "trace_id": parent["trace_id"],
            "application_sid": parent["application_sid"],
            "fs_sip_address": parent["fs_sip_address"],
            "parent_call_sid": call.call_sid,
        }
        if self.duration is not None:
            data["duration"] = self.duration
        data["fs_public_ip"] = parent["fs_public_ip"]
        return data


def _hex(call: VerbContext, n: int) -> str:
    """``n`` hex digits from the call's id source: a leg is new on every call, whatever the seed."""
    return "".join(call.ids.choice("0123456789abcdef") for _ in range(n))


def target_key(target: dict[str, Any]) -> str:
    """The number, name or URI a target dials (what ``Caller.dial`` is keyed by)."""
    return str(target.get(TARGET_KEYS.get(str(target.get("type")), "number")) or "")


class Dial:
    """One run of a dial verb."""

    def __init__(self, call: VerbContext, verb: dict[str, Any]) -> None:
        self.call = call
        self.verb = verb
        self.timeout = float(verb.get("timeout") or 60)
        self.start = call.clock.now()
        self.results: dict[str, Any] = {}
        self.legs: list[Leg] = []
        caller_id = str(verb.get("callerId") or call.call_info()["from"])
        seen: set[tuple[str, str]] = set()
        for target in verb.get("target") or []:
            key = (str(target.get("type")), target_key(target))
            if key in seen:
                call.note("dial", f"duplicate dial target {key[1]} removed")
                continue
            seen.add(key)
            if len(self.legs) == MAX_TARGETS:
                call.note("dial", f"more than {MAX_TARGETS} targets; the first {MAX_TARGETS} are dialled")
                break
            self.legs.append(
                Leg(
                    index=len(self.legs),
                    target=target,
                    to=key[1],
                    outcome=call.caller.outcome(key[1]),
                    call_sid=str(uuid.UUID(int=call.ids.getrandbits(128))),
                    call_id="-".join(_hex(call, n) for n in (8, 4, 4, 4, 12)),
                    sbc_callid=f"{_hex(call, 16)}@203.0.113.10",
                    caller_id=caller_id,
                )
            )

    # -- statuses -----------------------------------------------------------------------

    async def status(
        self, leg: Leg, status: str, sip_status: int | None = None, reason: str | None = None
    ) -> None:
        """A B-leg status change: call:status on the parent's socket, and the dial's results."""
        leg.status = status
        if sip_status is not None:
            leg.sip_status, leg.sip_reason = sip_status, reason or leg.sip_reason
        if status == "completed" and leg.answered_at is not None:
            leg.duration = round(self.call.clock.now() - leg.answered_at)
        if self.results.get("dial_call_status") not in ("completed", "no-answer"):
            self.results.update(
                dial_call_status=status,
                dial_sip_status=leg.sip_status,
                dial_call_sid=leg.call_sid,
                dial_sbc_callid=leg.sbc_callid,
            )
        await self.call.notify("call:status", leg.info(self.call))

    async def teardown(self) -> None:
        """The dial is killed: cancel the ringing legs, hang up the answered one."""
        for leg in self.legs:
            if leg.status in RINGING:
                await self.status(leg, *CANCELLED)
            elif leg.status == "in-progress" and not leg.released:
                await self.status(leg, "completed")

    async def wait_until(self, seconds: float) -> None:
        """Wait until ``seconds`` after the dial started (the caller may hang up meanwhile)."""
        await self.call.sleep(max(0.0, self.start + seconds - self.call.clock.now()))

    # -- the dial -----------------------------------------------------------------------

    async def run(self) -> None:
        call, verb = self.call, self.verb
        for key in NOT_SIMULATED:
            if key in verb:
                call.note("not-simulated", f"dial {key}: recorded, not simulated")
        if verb.get("answerOnBridge"):
            call.note("dial", "answerOnBridge: early media (183) now, answer when a B-leg is bridged")
        else:
            await call.answer()  # jambonz allocates the caller's endpoint and answers at once
        if verb.get("dialMusic"):
            call.heard("play", str(verb["dialMusic"]))
        if not self.legs:
            call.note("dial", "no targets to dial")
        try:
            winner = await self.attempt()
            how = await self.bridge(winner) if winner is not None else None
            if how == "replaced":  # a REFER from the callee: killed as by a redirect (dial.js ~418)
                await self.teardown()
                await self.action(expect_response=False, why="the referHook's verbs replaced the app")
                return
        except Hangup as ended:
            await call.send_final_status(ended)
            await self.teardown()
            await self.action(expect_response=False, why="the call is gone")
            raise
        except asyncio.CancelledError:  # killed by a replace (redirect command) or a hangup command
            await self.teardown()
            await self.action(expect_response=False, why="the dial was killed")
            raise
        await self.action(expect_response=True)

    async def attempt(self) -> Leg | None:
        """Ring every target; the winner (answered and confirmed), or None."""
        for leg in self.legs:
            await self.status(leg, "trying", 100, "Trying")
        for leg in self.legs:
            if leg.outcome.ring > 0:
                if leg.outcome.early_media:
                    await self.status(leg, "early-media", 183, "Session Progress")
                else:
                    await self.status(leg, "ringing", 180, "Ringing")
        pending = list(self.legs)
        ring_timer = True
        while pending:
            leg = min(pending, key=lambda g: (g.outcome.ring, g.index))
            if ring_timer and leg.outcome.ring >= self.timeout:
                await self.wait_until(self.timeout)
                self.call.note("dial-timeout", f"no answer within {self.timeout:g} s; jambonz cancels")
                for other in pending:
                    await self.status(other, *CANCELLED)
                return None
            await self.wait_until(leg.outcome.ring)
            pending.remove(leg)
            if leg.outcome.result != "answer":
                await self.status(leg, *FAILURES[leg.outcome.result])
                continue
            leg.answered_at = self.call.clock.now()
            await self.status(leg, "in-progress", 200, "OK")
            ring_timer = False  # an answer clears jambonz's ring timer, even if the leg is declined later
            if not await self.confirm(leg):
                continue
            self.results.update(dial_call_status="completed", dial_sip_status=200, dial_call_sid=leg.call_sid)
            if self.verb.get("answerOnBridge"):
                await self.call.answer()
            for other in pending:
                await self.status(other, *CANCELLED)
            return leg
        return None

    async def confirm(self, leg: Leg) -> bool:
        """Run the confirmHook's verbs on the B-leg; False when the leg is declined."""
        call = self.call
        hook = hook_url(leg.target.get("confirmHook") or self.verb.get("confirmHook"))
        if not hook:
            return True
        try:
            verbs = await call.hook(hook, leg.info(call), kind="dial:confirm")
        except AckTimeout:
            return self.decline(leg, "dial:confirm not acked")
        banned = [v["verb"] for v in verbs if v["verb"] in ("dial", "sip:decline")]
        if banned:
            return self.decline(leg, f"unsupported verb in dial url: {banned[0]}")
        for v in verbs:
            name = v["verb"]
            if name == "say":
                for _ in range(loops(v)):
                    for text in texts(v):
                        call.heard("b-leg:say", text)
                        await call.sleep(speech_seconds(text))
            elif name == "play":
                urls = v["url"] if isinstance(v["url"], list) else [v["url"]]
                for _ in range(loops(v)):
                    for url in urls:
                        call.heard("b-leg:play", str(url))
                        await call.sleep(float(v.get("timeoutSecs") or PLAY_SECONDS))
            elif name == "pause":
                await call.sleep(float(v.get("length", 1)))
            elif name == "hangup":
                return self.decline(leg, "the confirm app hung up the B-leg")
            else:
                call.note("not-simulated", f"{name} on the B-leg (dial:confirm app): not simulated")
        call.note("dial", f"B-leg {leg.call_sid} confirmed; bridging")
        return True

    def decline(self, leg: Leg, why: str) -> bool:
        leg.released = True
        self.call.note(
            "dial-declined",
            f"{why}: jambonz declines and hangs up B-leg {leg.call_sid} (no call:status for that BYE)",
        )
        return False

    async def bridge(self, leg: Leg) -> Ended | None:
        """The parties talk until the callee hangs up or timeLimit ends the bridge; a REFER may end it."""
        call = self.call
        raw_limit = self.verb.get("timeLimit")
        limit = float(raw_limit) if raw_limit is not None else None
        seconds = leg.outcome.talk
        capped = limit is not None and limit < seconds
        end = call.clock.now() + (limit if limit is not None and capped else seconds)
        amd = self.verb.get("amd")
        if amd is not None and not isinstance(amd, dict):
            call.note("error", "dial amd must be an object; ignored")
            call.error("dial amd must be an object")
        detector = (
            Detector(call, amd, leg.outcome.greeting, f"B-leg {leg.call_sid}")
            if isinstance(amd, dict)
            else None
        )
        events = Bridge(self, leg)  # what the parties do meanwhile (keys, hold, REFER)
        while (at := min(moments(detector, events), default=end)) < end:
            await call.sleep(at - call.clock.now())
            if detector is not None and detector.next_at() == at:  # dial.js ~932
                await detector.deliver(detector.due())
            elif (ended := await events.fire()) is not None:
                return ended  # adulted: the B-leg is no longer this dial's (no BYE, no status)
        await call.sleep(max(0.0, end - call.clock.now()))
        call.note(
            "dial",
            f"timeLimit {limit:g} s reached; jambonz hangs up the B-leg"
            if capped
            else "the called party hung up",
        )
        if detector is not None:
            await detector.deliver(detector.stop())  # the dial ends with the detector running (dial.js ~262)
        await self.status(leg, "completed")
        return None

    async def action(self, *, expect_response: bool, why: str = "") -> None:
        if expect_response:
            await action_hook(self.call, self.verb, self.results)
            return
        hook = hook_url(self.verb.get("actionHook"))
        if not hook:
            return
        try:
            verbs = await self.call.hook(hook, with_id(self.verb, {**self.call.call_info(), **self.results}))
        except AckTimeout:
            return
        if verbs:
            self.call.note("ignored", f"dial actionHook verbs ignored: {why}")


@runner("dial")
async def dial(call: VerbContext, verb: dict[str, Any]) -> None:
    await Dial(call, verb).run()


@runner("sip:refer")
async def sip_refer(call: VerbContext, verb: dict[str, Any]) -> None:
    """REFER → 202; NOTIFYs (100, then the final status) → eventHook; then the actionHook."""
    refer_to = str(verb["referTo"])
    outcome = call.caller.outcome(refer_to)
    event_hook = hook_url(verb.get("eventHook"))
    call.note("refer", f"REFER to {refer_to}: 202 Accepted")
    # every sipfrag status goes out as a number (sip_refer.js ~86-94)
    await call.notify_hook(event_hook, {"event": "transfer-status", "call_status": 100})
    if outcome.ring >= REFER_WAIT:
        await call.sleep(REFER_WAIT)
        call.note("refer", f"no final NOTIFY within {REFER_WAIT:g} s")
        await action_hook(call, verb, {"refer_status": 202})
        return
    await call.sleep(outcome.ring)
    final = REFER_FINAL[outcome.result]  # parseInt of the sipfrag status (sip_refer.js ~88)
    if event_hook:
        try:  # jambonz awaits this one before it sends the actionHook; its verbs are ignored
            await call.hook(event_hook, {"event": "transfer-status", "call_status": final})
        except AckTimeout:
            pass
    await action_hook(call, verb, {"refer_status": 202, "final_referred_call_status": final})
    if final == 200:
        call.note("transferred", "call transferred; the far end normally releases this leg now (BYE)")


@runner("sip:request")
async def sip_request(call: VerbContext, verb: dict[str, Any]) -> None:
    """200 OK → actionHook ``{result:"success", sip_status}``.

    If that fails (unacked, invalid verbs) a second one goes out, ``{result:"failed", err?}``,
    and if that fails too the call ends (``sip_request.js`` ~36–44).
    """
    method = str(verb["method"]).upper()
    call.note("sip-request", f"SIP {method} sent in the dialog: 200 OK")

    async def second(message: str | None) -> None:
        failed: dict[str, Any] = {"result": "failed"}
        if message is not None:  # a timeout rejects with a string: no err.message
            failed["err"] = message
        await hang_up_on_error(call, verb, failed)

    await action_hook(call, verb, {"result": "success", "sip_status": 200}, on_error=second)
