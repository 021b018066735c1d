"""What the parties do while a dial is bridged: keys, hold, transfer (``DialOutcome.during``).

As feature-server 0.9.8 handles them (``lib/tasks/dial.js``, ``lib/utils/place-outdial.js``):

* **Keys** (:class:`~jambonz_lab.sim.caller.Press`, SIP INFO ``application/dtmf-relay``)
  reach ``dtmfHook`` once the B-leg is bridged (``dial.js`` ~922–923). ``dtmfCapture``
  as an array arms a collector on each leg; as an object, ``childCall`` *and*
  ``parentCall`` patterns both go to the B-leg's collector (~37–44) and the caller's
  keys are not listened to at all. A collector keeps the keys of one burst: a gap of
  3 s or more starts afresh (``dtmf-collector.js`` ~16, ~24–30); a match is the first
  pattern the collected keys end with (~38), and the keys are kept. A match sends a
  ``verb:hook`` ``{dtmf, ...callInfo}`` (the pressing leg's info) on the parent's socket,
  not awaited (~516): its ack's verbs do nothing. Keys other than ``0-9 # *`` are not
  matched (~508).
* **Hold** (:class:`~jambonz_lab.sim.caller.Hold`, a re-INVITE with sendonly/inactive):
  with ``onHoldHook``, 0.5 s of silence is played, then a ``verb:hook`` of the parent's
  info plus ``hold_detail {from, to}`` (the re-INVITE's headers) is awaited
  (~1091–1107); its ``play``/``say``/``pause`` verbs play to the held party, anything
  else and none play (~1108–1113). It is asked once per hold: the loop's
  ``this.isOnHold`` is never set (~1136). The unhold re-INVITE kills what still plays
  (~843–845, ~1069–1071). Who hears it: the caller when the callee holds; the callee
  when the caller holds with the media released (the default, ~1049–1058), but the
  caller itself when the media stays anchored (``anchorMedia``, ``amd``, ``listen``,
  ``transcribe``, ``dub``; ``canReleaseMedia`` ~160–173): ``isIncomingLegHold`` is
  only set on the released path.
* **Transfer** (:class:`~jambonz_lab.sim.caller.Refer`, an incoming REFER) with
  ``referHook``: a ``verb:hook`` of the referring leg's info plus ``refer_details``,
  awaited, then 202 (~373–408); without the hook, 501. A REFER from the callee
  (B-leg) with verbs in the ack replaces the *caller's* application (``redirect``,
  ~418): the dial is killed as by a redirect (B-leg hung up, actionHook verbs
  ignored). A REFER from the caller (A-leg, ``call-session.js`` ~2858–2862) with
  verbs gives the B-leg a session of its own (``doAdulting``, ``place-outdial.js``
  ~439–502): a new socket to the app's URL + ``/adulting`` whose first message is
  ``session:adulting`` (the B-leg's info plus ``parent_call_info``; no ``call_sid``
  in the envelope, its ack's content ignored), the hook's verbs run there, and
  the dial ends (``ReferComplete``, ~431–435) without hanging the B-leg up: its
  actionHook is awaited and its verbs run on the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..caller import Caller, Hold, Press, Refer
from ..clock import Clock
from ..engine import AckTimeout, SimCall
from ..result import CallResult
from . import run_verb
from .basic import PLAY_SECONDS, hook_url, loops, speech_seconds, texts

if TYPE_CHECKING:
    from ..context import VerbContext
    from .amd import Detector
    from .dial import Dial, Leg

__all__ = ["AdultSession", "Bridge", "Collector", "collectors"]

DTMF_GAP = 3.0  # dtmf-collector.js ~16: interDigitTimeout 3000 ms
DTMF_KEYS = frozenset("0123456789#*")  # dial.js ~508: Signal=([0-9#*])
HOLD_SILENCE = 0.5  # dial.js ~1094: silence_stream://500 before the onHoldHook
HOLD_VERBS = ("play", "say", "pause")  # dial.js ~1091
#: what keeps jambonz's media anchored on the bridge (canReleaseMedia, dial.js ~160–173)
ANCHORING = ("anchorMedia", "amd", "listen", "stream", "transcribe", "dub")
SBC = "203.0.113.10"
Ended = Literal["replaced", "adulted"]


class Collector:
    """One leg's dtmf collector (``dtmf-collector.js``)."""

    def __init__(self, patterns: list[str], gap: float = DTMF_GAP) -> None:
        self.patterns = patterns
        self.gap = gap
        self.keys: list[tuple[str, float]] = []

    def press(self, key: str, at: float) -> str | None:
        """Add ``key`` pressed at ``at``; the first pattern the burst ends with, or None."""
        if self.keys and at - self.keys[-1][1] >= self.gap:
            self.keys = []
        self.keys.append((key, at))
        burst = "".join(k for k, _ in self.keys)
        return next((p for p in self.patterns if burst.endswith(p)), None)


def collectors(capture: Any) -> tuple[Collector | None, Collector | None]:
    """(caller's, callee's) collectors from ``dtmfCapture`` (``parseDtmfOptions``, dial.js ~29–53)."""
    parent: list[str] = []
    child: list[str] = []
    if isinstance(capture, list):
        parent += [str(p) for p in capture]
        child += [str(p) for p in capture]
    elif isinstance(capture, dict):
        for key in ("childCall", "parentCall"):  # both into the child's list: the server's bug (~42)
            if isinstance(capture.get(key), list):
                child += [str(p) for p in capture[key]]
    return (Collector(parent) if parent else None, Collector(child) if child else None)


def _uri(party: str) -> tuple[str, str]:
    """(SIP URI, user part as ``parseUri`` gives it) of a number, name or URI."""
    if party.startswith("tel:"):
        return party, party[4:]
    if party.startswith(("sip:", "sips:")):
        rest = party.split(":", 1)[1]
        return party, rest.split("@", 1)[0] if "@" in rest else ""
    return f"sip:{party}@{SBC}", party


@dataclass(order=True)
class Moment:
    at: float
    order: int
    what: str  # "key", "hold", "hold-ask", "hold-verb", "unhold", "refer"
    event: Press | Hold | Refer | None = None
    key: str = ""
    heard: tuple[str, str] | None = None


class Bridge:
    """The bridge's leg events in time order; :meth:`fire` does the next one."""

    def __init__(self, dial: Dial, leg: Leg) -> None:
        self.dial, self.leg, self.call = dial, leg, dial.call
        self.verb = dial.verb
        self.start = start = self.call.clock.now()
        self.moments: list[Moment] = []
        self.order = 0
        self.dtmf_hook = hook_url(self.verb.get("dtmfHook"))
        self.parent_keys, self.child_keys = (
            collectors(self.verb.get("dtmfCapture") or {}) if self.dtmf_hook else (None, None)
        )
        self.anchored = any(self.verb.get(k) for k in ANCHORING)
        self.holding: Hold | None = None
        for event in leg.outcome.during:
            if isinstance(event, Press):
                for i, key in enumerate(event.digits):
                    self.add(start + event.at + i * event.interval, "key", event, key=key)
            elif isinstance(event, Hold):
                self.add(start + event.at, "hold", event)
                self.add(start + event.at + event.seconds, "unhold", event)
            else:
                self.add(start + event.at, "refer", event)

    def add(self, at: float, what: str, event: Press | Hold | Refer | None = None, **kw: Any) -> None:
        self.order += 1
        self.moments.append(Moment(at, self.order, what, event, **kw))
        self.moments.sort()

    def next_at(self) -> float | None:
        return self.moments[0].at if self.moments else None

    async def fire(self) -> Ended | None:
        """Do the next moment (its time has come); what ended the dial, if it did."""
        m = self.moments.pop(0)
        if m.what == "key" and isinstance(m.event, Press):
            await self.key(m.event, m.key, m.at)
        elif m.what == "hold" and isinstance(m.event, Hold):
            self.hold(m.event)
        elif m.what == "hold-ask" and isinstance(m.event, Hold):
            await self.ask_hold(m.event)
        elif m.what == "unhold" and isinstance(m.event, Hold):
            self.unhold(m.event)
        elif m.what == "hold-verb" and m.heard is not None:
            self.call.heard(*m.heard)
        elif isinstance(m.event, Refer):
            return await self.refer(m.event)
        return None

    # -- keys -----------------------------------------------------------------------------

    async def key(self, press: Press, key: str, at: float) -> None:
        call = self.call
        collector = self.parent_keys if press.by == "caller" else self.child_keys
        if collector is None or self.dtmf_hook is None:
            return  # no INFO listener on that leg (dial.js ~922–923)
        if key not in DTMF_KEYS:
            call.note("dtmf", f"key {key!r} from the {press.by}: not 0-9, # or *; not matched")
            return
        match = collector.press(key, at)
        if match is None:
            return
        info = call.call_info() if press.by == "caller" else self.leg.info(call)
        call.note("dtmf", f"{press.by} keys match {match!r}: dtmfHook (not awaited)")
        await call.notify_hook(self.dtmf_hook, {"dtmf": match, **info})

    # -- hold -----------------------------------------------------------------------------

    def headers(self, by: str) -> tuple[str, str]:
        """(From, To) of a re-INVITE from ``by``, in the dialog of that party's leg."""
        tag = self.leg.call_sid[:8]
        caller = _uri(str(self.call.call_info()["from"]))[0]
        if by == "callee":  # the B-leg dialog: jambonz's INVITE went from the caller id to the target
            return f"<{_uri(self.leg.to)[0]}>;tag=b{tag}", f"<{_uri(self.leg.caller_id)[0]}>;tag=j{tag}"
        return f"<{caller}>;tag=a{tag}", f"<{_uri(str(self.call.call_info()['to']))[0]}>;tag=j{tag}"

    def hold(self, hold: Hold) -> None:
        if not hook_url(self.verb.get("onHoldHook")):
            self.call.note("hold", f"{hold.by} puts the call on hold; no onHoldHook: re-INVITE passed on")
            return
        self.call.note("hold", f"{hold.by} puts the call on hold (re-INVITE, sendonly)")
        self.holding = hold
        self.add(self.call.clock.now() + HOLD_SILENCE, "hold-ask", hold)  # silence first (dial.js ~1094)

    async def ask_hold(self, hold: Hold) -> None:
        call = self.call
        hook = hook_url(self.verb.get("onHoldHook"))
        frm, to = self.headers(hold.by)
        try:
            verbs = await call.hook(hook, {**call.call_info(), "hold_detail": {"from": frm, "to": to}})
        except AckTimeout:
            call.note("hold", "onHoldHook not acked: nothing plays")
            return
        others = [v["verb"] for v in verbs if v["verb"] not in HOLD_VERBS]
        if others:
            call.note("hold", f"onHoldHook: unsupported verb {others[0]} (only play, say, pause); none play")
            return
        to_caller = hold.by == "callee" or self.anchored
        who = "caller" if to_caller else "callee"
        call.note("hold", f"onHoldHook verbs play to the {who}")
        at = call.clock.now()
        for kind, what, seconds in self.hold_items(verbs):
            if what:
                self.add(at, "hold-verb", hold, heard=(("hold:" if to_caller else "b-leg:") + kind, what))
            at += seconds

    def hold_items(self, verbs: list[dict[str, Any]]) -> Iterator[tuple[str, str, float]]:
        for v in verbs:
            if v["verb"] == "pause":
                yield "pause", "", float(v.get("length", 1))
                continue
            for _ in range(loops(v)):
                if v["verb"] == "say":
                    for text in texts(v):
                        yield "say", text, speech_seconds(text)
                else:
                    urls = v["url"] if isinstance(v["url"], list) else [v["url"]]
                    for url in urls:
                        yield "play", str(url), float(v.get("timeoutSecs") or PLAY_SECONDS)

    def unhold(self, hold: Hold) -> None:
        if hold is self.holding:
            self.holding = None
            self.call.note("hold", f"{hold.by} takes the call off hold: what still plays is killed")
        self.moments = [m for m in self.moments if not (m.what == "hold-verb" and m.event is hold)]

    # -- transfer -------------------------------------------------------------------------

    async def refer(self, refer: Refer) -> Ended | None:
        call, leg = self.call, self.leg
        hook = hook_url(self.verb.get("referHook"))
        if not hook:
            call.note("refer", f"REFER from the {refer.by}: no referHook on the dial, 501")
            return None
        from_callee = refer.by == "callee"
        refer_to, refer_user = _uri(refer.to)
        referrer = leg.to if from_callee else str(call.call_info()["from"])
        by_uri, by_user = _uri(referrer)
        details = {
            "sip_refer_to": f"<{refer_to}>",
            "refer_to_user": refer_user,
            "sip_referred_by": f"<{by_uri}>",
            "referred_by_user": by_user,
            "referring_call_sid": leg.call_sid if from_callee else call.call_sid,
            "referred_call_sid": call.call_sid if from_callee else leg.call_sid,
        }
        info = leg.info(call) if from_callee else call.call_info()
        try:
            verbs = await call.hook(hook, {**info, "refer_details": details})
        except AckTimeout:
            call.note("refer", "referHook not acked: REFER answered 501")
            return None
        call.note("refer", f"REFER from the {refer.by} to {refer.to}: 202 Accepted")
        if not verbs:
            call.note("refer", "no verbs from the referHook: nothing changes")
            return None
        if from_callee:
            call.note("refer", "REFER on the B-leg: the referHook's verbs replace the caller's application")
            call.replace_stack(verbs, kill=False)
            return "replaced"
        call.note("adulting", f"REFER on the A-leg: B-leg {leg.call_sid} gets its own session (/adulting)")
        adult = AdultSession(call, leg, verbs, self.start + leg.outcome.talk)
        call.sessions.append(asyncio.get_running_loop().create_task(adult.run()))
        return "adulted"


class AdultSession(SimCall):
    """A B-leg grown up (``AdultingCallSession``): its own socket, the referHook's verbs."""

    def __init__(self, parent: VerbContext, leg: Leg, verbs: list[dict[str, Any]], hangs_up: float) -> None:
        if parent.clock.virtual:
            clock = Clock("virtual")
            clock.advance(parent.clock.now())  # one timeline with the parent's trace
        else:
            clock = parent.clock
        caller = Caller(hangup_after=hangs_up, dial=parent.caller.dial, number=leg.to)
        super().__init__(parent.url + "/adulting", caller, clock, parent.options, call_sid=leg.call_sid)
        self.parent, self.leg = parent, leg
        self.direction = "outbound"
        self.adult_verbs = verbs
        self.answered, self.answer_at = True, leg.answered_at
        self.status, self.sip_status, self.sip_reason = "in-progress", 200, "OK"

    def call_info(self) -> dict[str, Any]:
        leg = self.leg
        leg.status, leg.sip_status, leg.sip_reason = self.status, self.sip_status, self.sip_reason
        return leg.info(self.parent)

    def raw_info(self) -> dict[str, Any]:
        return self.call_info()

    async def run(self) -> CallResult:
        try:
            await self.connect()
        except Exception as exc:  # noqa: BLE001 - jambonz only logs it
            self.note("connect-failed", f"adulting socket: {type(exc).__name__}: {exc}")
            self.error(f"adulting socket: cannot connect: {exc}")
            self.result.final_status = "failed"
            return self.result
        self.payload = {**self.call_info(), "parent_call_info": self.parent.call_info()}
        ask = asyncio.get_running_loop().create_task(self.request("session:adulting", self.payload))
        ask.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)  # not awaited
        self.session_started = True
        self.stack.extend(self.accept_verbs(self.adult_verbs, "referHook ack"))
        try:
            await self._loop(run_verb)
        finally:
            await self._finish()
            ask.cancel()
        return self.result


def moments(detector: Detector | None, events: Bridge) -> list[float]:
    """When the bridge's next things happen (the AMD detector's and the parties')."""
    times = [events.next_at(), detector.next_at() if detector is not None else None]
    return [t for t in times if t is not None]
