"""The simulated feature server's side of one call (protocol doc §1–§6).

:class:`SimCall` connects to a jambonz WebSocket app the way jambonz does
(subprotocol ``ws.jambonz.org``, Basic auth, 1.5 s handshake, ``#rc``/``#rp``
retries with jambonz's backoff), sends ``session:new``, then runs the verb
stack: each verb is executed by a runner from :mod:`jambonz_lab.sim.verbs`,
hooks are sent and their acks awaited (5 s), commands from the app are
applied as the feature server applies them, and the socket is re-opened with
``session:reconnect`` when the app drops it.

``direction="outbound"`` places a REST-originated call instead (protocol doc
§2.2, §2.7, §6.11): the first ``call:status`` opens the socket, ``trying`` →
``ringing``/``early-media`` → ``in-progress`` arrive without a top-level
``call_sid``, and ``session:new`` is only sent once the callee answered.

Runs on one asyncio loop (the lab's, see :mod:`jambonz_lab.sim.api`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal
from urllib.parse import urldefrag

from .. import callclocks
from ..exceptions import VerbError
from ..protocol import MAX_APP_FRAME
from ..protocol.feature import (
    hook_params,
)
from ..protocol.verbs import normalize_verbs
from . import audio, payloads
from .alarms import EAGER_WAIT, Alarms
from .caller import Caller, Input, Silence
from .clock import Clock
from .http_link import HTTP_TIMEOUT, HttpLink, WebhookFailed, is_http
from .payloads import REST_RING_TIMEOUT
from .recording import Recording
from .result import CallResult, TraceEntry
from .transport import AckTimeout, Link

__all__ = ["AckTimeout", "Direction", "Hangup", "SimCall", "SimOptions"]

log = logging.getLogger("jambonz_lab.sim")

#: verbs feature-server 0.9.8 can run (make_task.js); the rest of the schemas are v10+
FS_VERBS = frozenset(
    "say play gather dial hangup pause redirect config listen stream transcribe conference enqueue "
    "dequeue leave llm s2s openai_s2s microsoft_s2s google_s2s elevenlabs_s2s deepgram_s2s "
    "voiceagent_s2s ultravox_s2s dialogflow lex rasa message sip:decline sip:refer sip:request tag "
    "dtmf answer alert dub rest:dial".split()
)
#: calls without an explicit seed take 0, 1, 2, … in order: a script's callers behave the same on
#: every run; a seed never fixes who a call is (``SimCall.ids``: call_sid, Call-ID, msgids)
_SEEDS = itertools.count()
Direction = Literal["inbound", "outbound"]
_base58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class Hangup(Exception):
    """The call ends now (``by``: ``caller`` or ``jambonz``)."""

    def __init__(self, by: str, sip_status: int = 200, reason: str = "OK") -> None:
        super().__init__(by)
        self.by = by
        self.sip_status = sip_status
        self.reason = reason


class SimOptions:
    """Timing and limits of the simulated feature server (jambonz's defaults)."""

    def __init__(
        self,
        *,
        ack_timeout: float = 5.0,
        handshake_timeout: float = 1.5,
        max_frame: int = MAX_APP_FRAME,
        idle_wait: float = 1.0,
        username: str | None = None,
        password: str | None = None,
        seed: int | None = None,
        tool_timeout: float = 5.0,
        read_delay: float = 0.0,
        ring_wait: float = 0.2,
        webhook_secret: str | None = None,
        http_timeout: float = HTTP_TIMEOUT,
    ) -> None:
        self.ack_timeout = ack_timeout
        self.handshake_timeout = handshake_timeout
        self.max_frame = max_frame
        #: virtual clock only: real seconds to wait for a command while idle before
        #: jumping to the caller's hangup (an app that pushes later is too late)
        self.idle_wait = idle_wait
        self.username = username
        self.password = password
        self.seed = seed
        #: real seconds an llm verb waits for the app's llm:tool-output
        self.tool_timeout = tool_timeout
        #: real seconds a busy jambonz takes to read the app's first frame after
        #: ``session:new``: whatever the app writes meanwhile comes in the same read as
        #: the ack, so a command sent right after the ack is lost, as on a loaded
        #: feature server (``ws-requestor.js`` ~553, ``call-session.js`` ~130). Set it
        #: (e.g. 0.05) to check that an app keeps its commands on real jambonz.
        self.read_delay = read_delay
        #: virtual clock only: real seconds a ringing REST call waits for the app's commands
        #: (``call:status``, ``redirect``, …) before the callee's outcome; a command that ends
        #: the ringing cuts it short (jambonz handles commands from the INVITE on)
        self.ring_wait = ring_wait
        #: HTTP apps: the account's webhook secret (``Jambonz-Signature`` on each webhook, see http_link)
        self.webhook_secret = webhook_secret
        #: HTTP apps: real seconds a webhook's response headers may take (JAMBONES_HTTP_TIMEOUT)
        self.http_timeout = http_timeout


class SimCall:
    """One simulated call against ``url``: inbound, or REST-originated (``direction="outbound"``).

    For an outbound call ``caller`` is the party being called: ``caller.answer``
    says how it answers, ``caller.number`` is the ``to``; ``tag`` is the REST
    createCall ``tag`` (``customerData`` in every payload); the call attribute
    ``ring_timeout`` is createCall's ``timeout`` (default 60 s of ringing).

    An ``http(s)://`` url is a webhook app (:class:`~jambonz_lab.sim.http_link.HttpLink`): the
    attributes ``method`` (the calling hook's, ``POST`` or ``GET``) and ``status_hook`` (or
    ``call_status_hook``: the application's call status webhook) apply to it.
    """

    def __init__(
        self,
        url: str,
        caller: Caller | None = None,
        clock: Clock | None = None,
        options: SimOptions | None = None,
        *,
        direction: Direction = "inbound",
        tag: Mapping[str, Any] | None = None,
        **attrs: Any,
    ) -> None:
        if direction not in ("inbound", "outbound"):
            raise ValueError(f"direction must be 'inbound' or 'outbound', not {direction!r}")
        if tag is not None and direction != "outbound":
            raise ValueError("tag is the REST createCall tag: only for direction='outbound'")
        self.url, fragment = urldefrag(url)
        self.retries, self.policies = hook_params(fragment)
        self.caller = caller or Caller()
        self.clock = clock or Clock("virtual")
        self.options = options or SimOptions()
        seed = self.options.seed if self.options.seed is not None else next(_SEEDS)
        #: what the caller and the simulated world do (choices, timings): fixed by the seed
        self.rng = random.Random(seed)
        #: who the call is (call_sid, SIP Call-ID, trace and leg ids): new for every call, whatever the seed
        self.ids = random.Random(uuid.uuid4().int)
        self.call_sid: str = attrs.pop("call_sid", None) or str(uuid.UUID(int=self.ids.getrandbits(128)))
        hook_method = str(attrs.pop("method", "POST"))
        status_hook = attrs.pop("status_hook", None) or attrs.pop("call_status_hook", None)
        self.attrs = attrs
        #: a REST call's createCall ``amd`` (sim.verbs.amd.start_rest at the answer)
        self.rest_amd: dict[str, Any] | None = self._rest_amd(attrs.pop("amd", None), direction)
        self.direction: Direction = direction
        self.result = CallResult(self.call_sid)
        #: this call's clock for the lab's rows (a lab in this process stamps them with it)
        self.call_clock = callclocks.register(self.call_sid, self.clock)
        self.stack: deque[dict[str, Any]] = deque()
        self.answered = False
        self.answer_at: float | None = None
        self.status = "trying"
        self.sip_status, self.sip_reason = 100, "Trying"
        self.customer_data: dict[str, Any] | None = None
        self.notify_events = False
        self.config: dict[str, Any] = {}
        #: texts synthesized in this call: (vendor, language, voice, text), see verbs/synth.py
        self.tts_cache: set[tuple[str, str, str, str]] = set()
        #: the call's recording (``record`` command, ``config.record``), see recording.py
        self.recording = Recording()
        self.session_started = False  # the session:new ack was processed
        #: a REST call's INVITE is out and not answered yet (commands act on it: create-call.js)
        self.ringing = False
        self.ring_timeout = REST_RING_TIMEOUT
        self.env_vars: dict[str, Any] | None = None  # a REST call's, for its session:new
        if direction == "inbound":
            self.payload = payloads.session_new_payload(self)
            self.facts = self.payload  # what call_info() / raw_info() are made of
        else:
            self.facts = payloads.outbound_facts(self)
            self.payload = {}  # nothing cached for session:reconnect until session:new is sent
            if tag is not None:
                self.customer_data = dict(tag)  # jambonz's CallInfo takes the tag at creation
        self._inputs: Iterator[Input] = iter(self.caller.inputs)
        self._peeked: list[Input] = []  # taken from _inputs by peek_input, not by a verb yet
        self.link: Link | HttpLink
        if is_http(url):  # middleware.js ~331–348: an HttpRequestor, and a notifier for call status
            self.link = HttpLink(self, url, self.options, method=hook_method, status_hook=status_hook)
        else:
            self.link = Link(self, self.url, self.options, self.retries, self.policies, self.new_msgid)
        self.old_links: list[Link | HttpLink] = []  # sockets a ws(s) redirect handed over from
        self._wake = asyncio.Event()
        self._verb_task: asyncio.Task[None] | None = None
        self.current: dict[str, Any] | None = None  # the verb running now
        self._replaced = False
        self._ended: Hangup | None = None
        self.listeners: dict[str, Callable[[dict[str, Any]], None]] = {}
        #: moments of background tasks (config.bargeIn): the call's waits stop there (sim.alarms)
        self.alarms = Alarms()
        self._eager_idle = False  # idle, moving from one eager moment to the next (noted once)
        #: sessions this call started that outlive their verb (a dial's adulted B-leg): awaited at the end
        self.sessions: list[asyncio.Task[CallResult]] = []

    @staticmethod
    def _rest_amd(amd: Any, direction: Direction) -> dict[str, Any] | None:
        """createCall's ``amd`` must be an object (``schemas/create-call.js`` ~40), on outbound calls."""
        if amd is None:
            return None
        if direction != "outbound":
            raise ValueError("amd is the REST createCall amd: only for direction='outbound'")
        if not isinstance(amd, dict):
            raise ValueError("amd must be an object (createCall answers 400 otherwise)")
        return dict(amd)

    # -- facts ------------------------------------------------------------------------

    def next_input(self) -> Input:
        taken = self._peeked.pop(0) if self._peeked else next(self._inputs, Silence())
        audio.input_taken(self.result.audio, self.clock.now(), taken)
        return taken

    def peek_input(self) -> Input | None:
        """The caller's next input, not taken (None when there are no more)."""
        if not self._peeked:
            upcoming = next(self._inputs, None)
            if upcoming is None:
                return None
            self._peeked.append(upcoming)
        return self._peeked[0]

    def deadline(self) -> tuple[float, str]:
        """When the call ends by itself, and who ends it."""
        limit = self.caller.time_limit
        hang = self.caller.hangup_after
        if hang is not None and hang <= limit:
            return hang, "caller"
        return limit, "jambonz"

    def call_info(self) -> dict[str, Any]:
        """The toJSON() shape of the call (most hooks and call:status)."""
        return payloads.call_info(self)

    def raw_info(self) -> dict[str, Any]:
        """The raw CallInfo shape (transcriptionHook, conference wait hooks)."""
        return payloads.raw_info(self)

    # -- trace ------------------------------------------------------------------------

    def trace(
        self, direction: str, kind: str, msgid: str | None, payload: Any, note: str | None = None
    ) -> None:
        # live: an ack that arrives during an app wait is at the wait's real time so far (the clock
        # itself moves only when the wait ends), so a slow app's answer is not traced at its hook's time
        t = self.clock.live()
        self.result.trace.append(TraceEntry(t, time.time(), direction, kind, msgid, payload, note))
        if msgid is not None and direction == "sent":  # its row's call time
            self.call_clock.sent[msgid] = t

    def note(self, kind: str, note: str, payload: Any = None) -> None:
        self.trace("sim", kind, None, payload, note)

    def heard(self, kind: str, what: str) -> None:
        self.result.heard.append((kind, what))

    def error(self, text: str) -> None:
        self.result.errors.append(text)

    # -- time -------------------------------------------------------------------------

    async def sleep(self, seconds: float) -> None:
        """A wait of the call itself (a verb's duration); the caller may hang up meanwhile."""
        seconds = max(0.0, seconds)
        end, by = self.deadline()
        now = self.clock.now()
        at = self.alarms.next_at()
        while at is not None and at <= now + seconds and at < end:  # a background task acts first
            await self.pass_time(at - now)
            seconds -= max(0.0, at - now)
            await self.alarms.ring(max(at, now))
            now, at = self.clock.now(), self.alarms.next_at()
        if now + seconds >= end:
            await self.pass_time(end - now)
            raise Hangup(by)
        await self.pass_time(seconds)

    async def pass_time(self, seconds: float) -> None:
        if self.clock.virtual:
            self.clock.advance(seconds)
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(max(0.0, seconds))

    async def wait_real(self, fut: asyncio.Future[Any], timeout: float) -> Any:
        """Wait for the app (real time in both clocks; virtual time moves by what passed)."""
        t0 = time.monotonic()
        self.clock.waiting(True)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        finally:
            self.clock.advance(time.monotonic() - t0)
            self.clock.waiting(False)

    # -- messages -----------------------------------------------------------------------

    def new_msgid(self) -> str:
        """A msgid like jambonz's short-uuids (22 base58 characters), unique in the process."""
        return "".join(self.ids.choice(_base58) for _ in range(22))

    async def notify(self, kind: str, data: Any, hook: str | None = None) -> None:
        """Send a message that wants no ack (discarded after a graceful close)."""
        await self.link.notify(kind, data, hook)

    async def request(
        self, kind: str, data: Any, hook: str | None = None, *, timeout: float | None = None
    ) -> Any:
        """Send a message that wants an ack; return the ack's ``data`` (raises :class:`AckTimeout`)."""
        return await self.link.request(kind, data, hook, timeout=timeout)

    async def notify_hook(self, hook: str | None, data: dict[str, Any]) -> None:
        """A hook jambonz does not wait for (partial results, status hooks): sent now, acks ignored."""
        await self.link.notify_hook(hook, data)

    async def connect(self) -> None:
        """Open the call's first socket (jambonz's retry policy)."""
        await self.link.connect()

    async def handover(self, url: str) -> None:
        """A redirect to an absolute ws(s) URL: a new requestor, so a new socket (redirect.js ~22–33);
        from a socket app to an http(s) URL: webhooks from now on.

        The old socket is left open but no longer heard (``handover``, call-session.js ~125); the new
        requestor never sent ``session:new``, so its envelopes carry no ``call_sid``. Raises what
        :meth:`Link.connect` raises.
        """
        if is_http(
            url
        ):  # a socket app's session:redirect to a webhook: the socket is closed (ws-requestor.js ~101–104)
            old, self.link = self.link, HttpLink(self, url, self.options)
            self.link.hold()  # the session:redirect this task sends next
            self.note("handover", f"redirect to {url}: the call goes on over HTTP webhooks; socket closed")
            await old.close(1000)
            return
        clean, fragment = urldefrag(url)
        retries, policies = hook_params(fragment)
        old, self.link = self.link, Link(self, clean, self.options, retries, policies, self.new_msgid)
        self.old_links.append(old)
        await self.link.connect()

    async def hook(
        self, hook: str | None, data: dict[str, Any], *, kind: str = "verb:hook"
    ) -> list[dict[str, Any]]:
        """An awaited hook: returns the valid ack verbs ([] = carry on). Raises AckTimeout."""
        if not hook:
            return []
        if is_http(hook) and isinstance(self.link, Link):
            # a ws app's http hook is a webhook of its own (ws-requestor.js ~95–105); a redirect hands over
            if kind == "session:redirect":
                await self.handover(hook)
            else:
                web = HttpLink(self, hook, self.options)
                try:
                    return self.accept_verbs(await web.request(kind, data, hook), f"answer of {hook}")
                finally:
                    await web.close()
        verbs = await self.request(kind, data, hook)
        return self.accept_verbs(verbs, f"ack to {hook}")

    def accept_verbs(self, verbs: Any, where: str) -> list[dict[str, Any]]:
        """Validate verbs from an ack or command; invalid ones are dropped and reported."""
        if verbs is None:
            return []
        if not isinstance(verbs, list):
            self.note("ignored", f"{where}: data is not an array; ignored")
            return []
        try:
            checked = normalize_verbs(verbs)
        except VerbError as exc:
            self.note("invalid-verbs", f"{where}: {exc}; dropped")
            self.error(f"{where}: {exc}")
            return []
        unknown = [v["verb"] for v in checked if v["verb"] not in FS_VERBS]
        if unknown:
            self.note("invalid-verbs", f"{where}: invalid jambonz verb {unknown[0]!r}; dropped")
            self.error(f"{where}: invalid jambonz verb {unknown[0]!r}")
            return []
        return checked

    async def send_status(
        self, status: str, sip_status: int | None = None, reason: str | None = None, **extra: Any
    ) -> None:
        self.status = status
        if sip_status is not None:
            self.sip_status, self.sip_reason = sip_status, reason or self.sip_reason
        await self.notify("call:status", {**self.call_info(), **extra})

    async def verb_status(self, event: str, verb: dict[str, Any], **extra: Any) -> None:
        if self.notify_events:
            data = {"event": event, "name": verb["verb"], **extra}
            if "id" in verb:
                data["id"] = verb["id"]
            await self.notify("verb:status", data)

    async def jambonz_error(self, data: dict[str, Any]) -> None:
        await self.notify("jambonz:error", data)
        self.error(str(data.get("msg")) + (f": {data['details']}" if data.get("details") else ""))

    @property
    def over(self) -> bool:
        """True once the call is ending (hung up, rejected, or killed)."""
        return self._ended is not None

    def _end_now(self, hangup: Hangup) -> None:
        if self._ended is None:
            self._ended = hangup
        self.kill_current()
        self._wake.set()

    # -- the verb stack -----------------------------------------------------------------

    def replace_stack(self, verbs: list[dict[str, Any]], *, kill: bool = True) -> None:
        self.stack = deque(verbs)
        if kill:
            self.kill_current()
        self._wake.set()

    def append_stack(self, verbs: list[dict[str, Any]]) -> None:
        self.stack.extend(verbs)
        self._wake.set()

    def kill_current(self) -> None:
        task = self._verb_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            self._replaced = True
            task.cancel()

    def end(self, by: str = "jambonz", sip_status: int = 200, reason: str = "OK") -> None:
        """End the call from a command (``call:status completed``)."""
        self._end_now(Hangup(by, sip_status, reason))

    async def answer(self) -> None:
        if not self.answered:
            self.answered = True
            self.answer_at = self.clock.now()
            await self.send_status("in-progress", 200, "OK")
            self.recording.answered(self)

    # -- run ----------------------------------------------------------------------------

    async def run(self) -> CallResult:
        """Place the call and play it out; returns its :class:`CallResult`."""
        from . import verbs as runners

        if self.direction == "outbound":
            return await self._run_outbound(runners.run_verb)
        try:
            await self.connect()
        except Exception as exc:  # noqa: BLE001 - connect failure rejects the call
            return self._reject(f"cannot connect: {type(exc).__name__}: {exc}", close=False)
        try:
            data = await self.request("session:new", self.payload)
        except WebhookFailed as failed:  # X-Reason: err.message (middleware.js ~481–493)
            return await self._reject_closing(failed.reason)
        except AckTimeout:
            return await self._reject_closing("session:new not acked in time")
        if self.link.graceful:
            return self._reject("app closed the socket before acking session:new", close=False)
        if not isinstance(data, list):
            return await self._reject_closing("must be array")
        if not data:
            return await self._reject_closing("no application provided")
        verbs = self.accept_verbs(data, "session:new ack")
        if not verbs:
            return await self._reject_closing("invalid verbs in the session:new ack")
        self.stack = deque(verbs)
        self.session_started = True
        await self.send_status("trying", 100, "Trying")
        try:
            await self._loop(runners.run_verb)
        finally:
            await self._finish()
        return self.result

    async def _run_outbound(self, run_verb: Callable[[SimCall, dict[str, Any]], Any]) -> CallResult:
        """A REST-originated call (doc §2.7): ring the callee; session:new only once it answered."""
        try:
            await self.connect()  # opened by the first call:status
        except Exception as exc:  # noqa: BLE001 - jambonz only logs it; the messages are lost
            self.note("connect-failed", f"cannot connect: {type(exc).__name__}: {exc}; messages are lost")
            self.error(f"cannot connect: {type(exc).__name__}: {exc}")
        self.ringing = True
        try:
            await self.send_status("trying", 100, "Trying")
            failure = await self._ring()
        finally:
            self.ringing = False
        if failure is not None:
            status, sip_status, reason, by = failure
            await self.send_status(status, sip_status, reason)
            self.result.final_status = status
            self.result.sip_status = sip_status
            self.result.termination_by = by
            await self._close(1000)
            return self.result
        self.answered = True
        self.answer_at = self.clock.now()
        await self.send_status("in-progress", 200, "OK")
        self.recording.answered(self)
        if self.rest_amd is not None:  # rest_dial.js ~100-106: before session:new
            from .verbs import amd

            amd.start_rest(self, self.rest_amd)
        self.payload = payloads.outbound_session_new(self)
        data: Any = None
        unreachable = isinstance(self.link, Link) and self.link.core.connections == 0
        if unreachable:  # the app could not be reached at all
            self.note("no-app", "no socket for session:new; the call stays answered with no app")
        else:
            try:
                data = await self.request("session:new", self.payload)
            except AckTimeout:  # unlike inbound (480), the answered call stays up with no app (doc §1.6)
                self.note("no-app", "session:new not acked; the call stays answered with no app")
                self.error("session:new not acked in time")
        self.stack = deque(self.accept_verbs(data, "session:new ack"))
        self.session_started = True
        try:
            await self._loop(run_verb)
        finally:
            await self._finish()
        return self.result

    async def _ring(self) -> tuple[str, int, str, str] | None:
        """Ring the callee (``caller.answer``): None once answered, else (status, sip, reason, by)."""
        from .verbs.dial import FAILURES

        outcome = self.caller.answer
        try:
            if outcome.ring > 0:  # provisional: no reason of its own, so sip_reason stays "Trying"
                self._sbc_callid()
                if outcome.early_media:
                    await self.send_status("early-media", 183)
                else:
                    await self.send_status("ringing", 180)
            if outcome.ring >= self.ring_timeout:
                await self._ring_for(self.ring_timeout)
                self.note("ring-timeout", f"no answer within {self.ring_timeout:g} s; jambonz cancels")
                return "no-answer", 487, "Request Terminated", "jambonz"
            await self._ring_for(outcome.ring)
            if self._ended is not None:  # a command at ``trying`` (no ringing at all)
                raise self._ended
        except Hangup as ended:
            self.note("cancelled", "the call ended while ringing; jambonz cancels")
            return "no-answer", 487, "Request Terminated", ended.by
        if outcome.result == "answer":
            self._sbc_callid()
            return None
        status, sip_status, reason = FAILURES[outcome.result]
        return status, sip_status, reason, "caller"

    async def _ring_for(self, seconds: float) -> None:
        """Ring ``seconds`` of call time; a command that ends the call meanwhile raises its Hangup.

        The virtual clock waits up to ``ring_wait`` real seconds for the app's commands first.
        """
        self._wake.clear()
        if self._ended is not None:
            raise self._ended
        start = self.clock.now()
        end, _ = self.deadline()
        wait = min(seconds, end - start) if not self.clock.virtual else min(seconds, self.options.ring_wait)
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await self.wait_real(waiter, max(0.0, wait))
        except TimeoutError:
            pass
        finally:
            waiter.cancel()
        if self._ended is not None:
            raise self._ended
        await self.sleep(max(0.0, start + seconds - self.clock.now()))

    def _sbc_callid(self) -> None:
        """The SBC's X-CID from the first 18x, else the 200 (create-call.js ~339, ~346–349)."""
        if "sbc_callid" not in self.facts:
            self.facts["sbc_callid"] = str(uuid.UUID(int=self.ids.getrandbits(128)))

    async def _loop(self, run_verb: Callable[[SimCall, dict[str, Any]], Any]) -> None:
        while self._ended is None:
            if not self.stack and isinstance(self.link, HttpLink):
                await self.link.settle()
            if not self.stack and isinstance(self.link, HttpLink):
                # no socket to wait on: all tasks complete ends the session (call-session.js ~1395–1423)
                self.note("tasks-done", "verb stack empty; an HTTP app sends no commands: jambonz hangs up")
                self._ended = Hangup("jambonz")
                return
            if not self.stack:
                if not await self._idle():
                    return
                continue
            verb = self.current = self.stack.popleft()
            self._replaced = self._eager_idle = False
            self._verb_task = asyncio.get_running_loop().create_task(run_verb(self, verb))
            try:
                await self._verb_task
            except asyncio.CancelledError:
                if not self._replaced and self._ended is None:
                    raise
                self.note(
                    "killed",
                    f"{verb['verb']} killed (replaced)"
                    if self._ended is None
                    else f"{verb['verb']} ended by hangup",
                )
            except Hangup as hangup:
                self._ended = hangup
            except Exception as exc:  # a simulator bug must not hide the app's behaviour
                log.exception("simulator failed running %s", verb.get("verb"))
                self.note(
                    "sim-error", f"simulator failed running {verb.get('verb')}: {type(exc).__name__}: {exc}"
                )
                self.error(f"simulator failed running {verb.get('verb')}: {exc}")
            finally:
                self._verb_task = self.current = None
            if self.link.graceful and not self.stack:
                self._ended = self._ended or Hangup("jambonz")

    async def _idle(self) -> bool:
        """Empty stack: wait for a redirect command; False when the call ended meanwhile."""
        self._wake.clear()
        end, by = self.deadline()
        remaining = max(0.0, end - self.clock.now())
        if not self._eager_idle:
            self.note("idle", "verb stack empty; waiting for commands")
        wait = min(remaining, self.options.idle_wait) if self.clock.virtual else remaining
        at = self.alarms.next_at()
        if at is not None and not self.clock.virtual:
            wait = min(wait, max(0.0, at - self.clock.now()))
        eager = self.clock.virtual and self.alarms.next_is_eager()
        if eager:  # a background listen's next frame (sim.alarms): the stack need not wait for the app
            wait = min(wait, EAGER_WAIT)
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await self.wait_real(waiter, wait)
        except TimeoutError:
            at = self.alarms.next_at()
            if at is not None and at < end:  # a background task (config.bargeIn) acts before the end
                self._eager_idle = eager  # still idle: one note for the whole wait
                await self.sleep(max(0.0, at - self.clock.now()))
                return self._ended is None
            if self.clock.virtual:
                self.clock.advance(max(0.0, end - self.clock.now()))
            self._ended = Hangup(by)
            return False
        finally:
            waiter.cancel()
        return self._ended is None and (bool(self.stack) or not self.link.graceful)

    async def send_final_status(self, ended: Hangup) -> None:
        """The call's own last ``call:status`` (once): completed, or no-answer if the caller gave up.

        A REST call's running AMD is stopped first (``rest-call-session.js`` ~62–65).
        """
        from .verbs import amd

        await amd.hangup(self)
        if self.status in ("completed", "failed", "no-answer"):
            return
        if self.answered:
            extra: dict[str, Any] = {"call_termination_by": ended.by, "duration": self._duration()}
            if ended.by == "caller":
                extra["headers"] = {"reason": "Q.850;cause=16"}
            await self.send_status("completed", **extra)
        elif ended.by == "caller":
            await self.send_status("no-answer", 487, "Request Terminated", call_termination_by="caller")

    def _duration(self) -> int:
        return round(self.clock.now() - (self.answer_at or 0.0)) if self.answered else 0

    async def _finish(self) -> None:
        self.alarms.close()
        ended = self._ended or Hangup("jambonz")
        await self.send_final_status(ended)
        if not self.answered and self.status not in ("failed", "completed", "no-answer"):
            self.sip_status, self.sip_reason = 603, "Decline"
            self.note("unanswered", "session ended before answer; INVITE answered 603")
            self.status = "failed"
        self.result.duration = self._duration()
        self.result.audio.end = self.clock.now()
        self.result.final_status = self.status
        self.result.sip_status = self.sip_status
        self.result.termination_by = ended.by
        await self._close(1000)
        for session in self.sessions:  # a B-leg with its own socket lives on after this call
            self.result.sessions.append(await session)

    async def _close(self, code: int) -> None:
        self._ended = self._ended or Hangup("jambonz")
        for old in self.old_links:  # jambonz leaves them open; the simulator tidies up with the call
            await old.close(code)
        await self.link.close(code)
        self.call_clock.forget_sent()  # the app's server has read them (or never will)

    def _reject(self, reason: str, *, close: bool) -> CallResult:
        self.status = "failed"
        self.sip_status, self.sip_reason = 480, "Temporarily Unavailable"
        self.note("rejected", f"call rejected with 480 (X-Reason: {reason})")
        self.error(reason)
        self.result.final_status = "failed"
        self.result.sip_status = 480
        self.result.termination_by = "jambonz"
        return self.result

    async def _reject_closing(self, reason: str) -> CallResult:
        result = self._reject(reason, close=True)
        await self._close(1001)
        return result
