"""jambonz's REST API for calls, on the simulator: ``/v1/Accounts/{account_sid}/Calls``.

:class:`RestServer` answers as the api-server (``lib/routes/api/accounts.js``) in front of
feature-server 0.9.8 (``http-routes/api/create-call.js``, ``update-call.js``) answers, so
``jambonz_sdk``'s ``JambonzClient`` works against it unchanged:

* ``POST .../Calls`` places a REST-originated :class:`~jambonz_lab.sim.SimCall` to the app at
  ``call_hook``: 201 ``{sid, callId}``. The called party is the server's ``callee``.
* ``GET .../Calls`` (filters ``direction``, ``from``, ``to``, ``callStatus``), ``GET .../Calls/{sid}``:
  the calls' records, ended ones included (redis keeps them an hour).
* ``PUT`` (or ``POST``) ``.../Calls/{sid}``: one live-call update, mapped onto the call's
  command handling (:func:`~jambonz_lab.sim.commands.apply_command`): 202, or 200 ``{status,
  reason}`` for ``sip_request``.
* ``DELETE .../Calls/{sid}``: 204; like jambonz it only removes the record, the call goes on.
* ``GET .../CallCount``: ``{inbound, outbound}`` live calls.

Auth is a Bearer API key with the api-server's answers (401 ``Unauthorized``; another
account's sid: 500 ``{"msg": "insufficient permissions"}``). See docs/simulator-fidelity.md.

Example::

    from jambonz_lab import sim
    from jambonz_sdk.client import JambonzClient

    server = sim.serve_rest(callee=sim.Caller(answer=sim.DialOutcome(ring=1)))
    client = JambonzClient(base_url=server.base_url, account_sid=server.account_sid,
                           api_key=server.api_key)
    sid = await client.calls.create({"from": "+15550100", "to": {"type": "phone", "number": "+15550111"},
                                     "call_hook": lab.url + "/outbound", **server.speech})

Threads: the server and its calls run on the lab's loop (:mod:`jambonz_lab.loop`); ``start``,
``stop`` and ``result`` are for cells, scripts and other threads, ``astart``/``astop`` for the loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Self

from aiohttp import web

from .. import loop
from ..protocol.verbs import load_models
from . import rest_rules as rules
from .caller import Caller
from .clock import Clock, ClockName
from .commands import apply_command
from .engine import SimCall, SimOptions
from .http_link import is_http
from .payloads import RECOGNIZER, SYNTHESIZER
from .result import CallResult
from .verbs.dial import target_key

__all__ = ["Callee", "RestServer", "serve_rest"]

log = logging.getLogger("jambonz_lab.sim.rest")

#: the called party: one :class:`Caller` for every call, or one made from createCall's ``to``
Callee = Caller | Callable[[dict[str, Any]], Caller]
#: the feature server's own HTTP address, written into each call's record (``serviceUrl``)
SERVICE_URL = "http://10.0.1.30:3000"
#: an ended call's record is kept this long (realtimedb-helpers ``MAX_CALL_LIFETIME_AFTER_COMPLETED``)
KEEP_ENDED_FOR = 3600.0
#: the parsed JSON body (express.json; an array reads as an object without keys)
_BODY: web.RequestKey[dict[str, Any]] = web.RequestKey("body", dict)
_CHALLENGE = 'Bearer realm="Users"'  # passport-http-bearer ``_challenge`` (strategy.js ~170)


class _Entry:
    """One call the API placed: its simulation, its task, and when it ended (wall time)."""

    def __init__(self, call: SimCall, task: asyncio.Task[CallResult]) -> None:
        self.call = call
        self.task = task
        self.ended_at: float | None = None


class RestServer:
    """jambonz's calls API on loopback (see the module docstring).

    Args:
        host, port: where to listen (port 0: any free one).
        account_sid, api_key: the one account and its key (default: new uuids).
        callee: who answers the calls: a :class:`Caller` (its ``answer``; ``dial`` outcomes by
            the ``to`` number win), or a function of createCall's ``to`` returning one.
            Default: ``Caller()``, answers after 2 s of ringing and stays on.
        clock: the calls' clock; ``real`` by default, so calls live while you drive them.
        options: the calls' :class:`SimOptions`.
        keep: ended calls whose records are kept at most.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        account_sid: str | None = None,
        api_key: str | None = None,
        callee: Callee | None = None,
        clock: ClockName = "real",
        options: SimOptions | None = None,
        keep: int = 1000,
    ) -> None:
        self.host = host
        self.port = port
        self.account_sid = account_sid or str(uuid.uuid4())
        if not rules.valid_sid(self.account_sid):
            raise ValueError(
                f"account_sid must be a uuid (jambonz answers 400 otherwise): {self.account_sid!r}"
            )
        self.api_key = api_key or str(uuid.uuid4())
        if not self.api_key or " " in self.api_key:
            raise ValueError("api_key must be a non-empty token without spaces")
        self.callee: Callee = callee if callee is not None else Caller()
        Clock(clock)  # checks the name
        self.clock: ClockName = clock
        self.options = options or SimOptions()
        self.keep = keep
        self._calls: dict[str, _Entry] = {}
        self._runner: web.AppRunner | None = None

    # -- what to connect with --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What ``JambonzClient(base_url=...)`` takes (the API is under ``/v1``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def speech(self) -> dict[str, str]:
        """The five speech settings createCall needs without an ``application_sid`` (the simulator's)."""
        return {
            "speech_synthesis_vendor": SYNTHESIZER["vendor"],
            "speech_synthesis_language": SYNTHESIZER["language"],
            "speech_synthesis_voice": SYNTHESIZER["voice"],
            "speech_recognizer_vendor": RECOGNIZER["vendor"],
            "speech_recognizer_language": RECOGNIZER["language"],
        }

    # -- lifecycle ---------------------------------------------------------------------------------

    async def astart(self) -> Self:
        """Listen (loop thread)."""
        loop.require_loop_thread()
        if self._runner is not None:
            return self
        load_models()
        app = web.Application(middlewares=[self._auth])
        calls = "/v1/Accounts/{account}/Calls"
        app.router.add_get(calls, self._list)
        app.router.add_post(calls, self._create)
        app.router.add_get(calls + "/{call}", self._retrieve)
        app.router.add_put(calls + "/{call}", self._update)
        app.router.add_post(calls + "/{call}", self._update)  # accounts.js ~1160: the legacy verb
        app.router.add_delete(calls + "/{call}", self._delete)
        app.router.add_get("/v1/Accounts/{account}/CallCount", self._count)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self.port = int(runner.addresses[0][1])
        self._runner = runner
        log.info("jambonz REST API at %s/v1 (account %s)", self.base_url, self.account_sid)
        return self

    async def astop(self, grace: float = 5.0) -> None:
        """End the live calls (as ``call_status: completed``), then stop listening (loop thread)."""
        live = [e for e in self._calls.values() if not e.task.done()]
        for entry in live:
            entry.call.end("jambonz")
        if live:
            _, pending = await asyncio.wait([e.task for e in live], timeout=grace)
            for task in pending:
                task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self, timeout: float = 10.0) -> Self:
        """Listen on ``host:port``. Cells, scripts, other threads (not the loop's)."""
        load_models()  # slow the first time: here, not on the loop
        loop.submit(self.astart()).result(timeout)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """End the calls and stop listening. Cells, scripts, other threads."""
        loop.submit(self.astop()).result(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the calls, for tests and notebooks --------------------------------------------------------

    def sim_call(self, call_sid: str) -> SimCall | None:
        """The simulation of a call the API placed (None once unknown or deleted)."""
        entry = self._calls.get(call_sid)
        return entry.call if entry is not None else None

    async def aresult(self, call_sid: str) -> CallResult:
        """Wait for a call's end (loop thread). Raises ``KeyError`` for an unknown call."""
        return await asyncio.shield(self._calls[call_sid].task)

    def result(self, call_sid: str, timeout: float = 60.0) -> CallResult:
        """Wait for a call's end; its :class:`CallResult`. Any thread but the loop's."""
        return loop.submit(self.aresult(call_sid)).result(timeout)

    def states(self) -> dict[str, tuple[str, str, str]]:
        """Each known call's (status, to, app URL), in creation order (loop thread: ``loop.run_sync``)."""
        loop.require_loop_thread()
        return {sid: (e.call.status, str(e.call.facts["to"]), e.call.url) for sid, e in self._calls.items()}

    # -- auth (app.js ~187–198: passport-http-bearer on /v1) ---------------------------------------

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await _body(request)
        if isinstance(body, rules.Refusal):  # express.json runs before passport (app.js ~186)
            return _reply(body)
        request[_BODY] = body
        header = request.headers.get("Authorization")
        token: str | None = None
        if header is not None:
            parts = header.split(" ")
            if len(parts) != 2:  # strategy.js ~127: fail(400)
                return web.Response(status=400, text="Bad Request")
            if parts[0].lower() == "bearer":
                token = parts[1]
        for extra in (
            body.get("access_token"),
            request.query.get("access_token"),
        ):
            if extra:
                if token:
                    return web.Response(status=400, text="Bad Request")
                token = str(extra)
        if not token:
            return _unauthorized(_CHALLENGE)
        if not hmac.compare_digest(token.encode(), self.api_key.encode()):
            return _unauthorized(f'{_CHALLENGE}, error="invalid_token"')
        return await handler(request)

    def _account(self, request: web.Request) -> rules.Refusal | None:
        """``parseAccountSid`` then ``validateRequest`` (accounts.js ~53–66) for an account-scoped key."""
        sid = request.match_info["account"]
        if not rules.valid_sid(sid):
            return rules.BAD_SID
        if sid != self.account_sid:  # DbErrorForbidden is not mapped by sysError: a 500
            return rules.Refusal(500, {"msg": "insufficient permissions"})
        return None

    def _entry(self, request: web.Request) -> _Entry | web.Response:
        """The account checks, the call sid's format, then the call; else the answer to give."""
        refusal = self._account(request)
        if refusal is None and not rules.valid_sid(request.match_info["call"]):
            refusal = rules.BAD_SID
        if refusal is not None:
            return _reply(refusal)
        self._purge()
        return self._calls.get(request.match_info["call"]) or web.Response(status=404, text="Not Found")

    # -- routes ------------------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.StreamResponse:
        """createCall (accounts.js ~982–1021, feature-server create-call.js ~331)."""
        refusal = self._account(request)
        body = request[_BODY].copy()  # check_create rewrites the hooks
        if refusal is None:
            refusal = rules.check_create(body)
        if refusal is not None:
            return _reply(refusal)
        try:
            call = self._place(body)
        except Exception as exc:  # the callee function is user code: say what failed, place nothing
            log.exception("createCall: cannot place the call")
            return _reply(rules.Refusal(500, {"msg": f"cannot place the call: {type(exc).__name__}: {exc}"}))
        task = asyncio.get_running_loop().create_task(call.run())
        entry = _Entry(call, task)
        task.add_done_callback(lambda _: setattr(entry, "ended_at", time.time()))
        self._calls[call.call_sid] = entry
        self._purge()
        log.info("createCall %s to %s on %s", call.call_sid, call.facts["to"], call.url)
        return web.json_response({"sid": call.call_sid, "callId": call.facts["call_id"]}, status=201)

    def _place(self, body: dict[str, Any]) -> SimCall:
        to = dict(body["to"])
        number = target_key(to)
        callee = self._callee(to, number)
        if isinstance(body.get("timeLimit"), int | float | str):  # from the answer (rest_dial.js ~75)
            limit = float(body["timeLimit"])
            callee = dataclasses.replace(
                callee, time_limit=min(callee.time_limit, callee.answer.ring + limit)
            )
        attrs: dict[str, Any] = {
            "call_sid": str(uuid.uuid4()),  # jambonz's are v4 uuids, which the API checks (utils.js ~140)
            "from_": str(body["from"]),
            "to": number,
            "account_sid": self.account_sid,
        }
        if body.get("timeout") is not None:
            attrs["ring_timeout"] = float(body["timeout"])
        if isinstance(body.get("amd"), dict):
            attrs["amd"] = body["amd"]
        tag = body.get("tag")
        url = str(body["call_hook"]["url"])
        status = body.get("call_status_hook")
        status_url = str(status["url"]) if isinstance(status, dict) else None
        webhook = is_http(url)
        if webhook:  # an HttpRequestor, and one more for the status hook (create-call.js ~247–265)
            method = str(body["call_hook"].get("method") or "POST").upper()
            attrs["method"] = method if method in ("GET", "POST") else "POST"
            if status_url:
                attrs["call_status_hook"] = status_url
        options = SimOptions(**vars(self.options))
        call = SimCall(
            url,
            callee,
            Clock(self.clock),
            options,
            direction="outbound",
            tag=_trimmed(tag) if isinstance(tag, dict) else None,
            **attrs,
        )
        call.note("rest", "createCall", payload=body)
        if status_url and not webhook and status_url != url:
            call.note(
                "not-simulated",
                "createCall: a socket app's own call_status_hook; statuses stay on the socket",
            )
        return call

    def _callee(self, to: dict[str, Any], number: str) -> Caller:
        if not isinstance(self.callee, Caller):
            made = self.callee(to)
            if not isinstance(made, Caller):
                raise TypeError(f"callee({to!r}) returned {type(made).__name__}, not a sim.Caller")
            return dataclasses.replace(made, number=number)
        outcome = self.callee.dial.get(number) or self.callee.dial.get("*") or self.callee.answer
        return dataclasses.replace(self.callee, number=number, answer=outcome)

    async def _list(self, request: web.Request) -> web.StreamResponse:
        """listCalls (accounts.js ~1024–1045; realtimedb-helpers list-calls.js: exact-match filters)."""
        refusal = self._account(request)
        if refusal is not None:
            return _reply(refusal)
        self._purge()
        wanted = {k: request.query[q] for k, q in _FILTERS.items() if request.query.get(q)}
        records = [self._record(e) for e in self._calls.values()]
        return web.json_response([r for r in records if all(r.get(k) == v for k, v in wanted.items())])

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        """retrieveCall (accounts.js ~1048–1070)."""
        entry = self._entry(request)
        return entry if isinstance(entry, web.Response) else web.json_response(self._record(entry))

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        """deleteCall (accounts.js ~1073–1095): removes the record only; the call goes on."""
        entry = self._entry(request)
        if isinstance(entry, web.Response):
            return entry
        del self._calls[entry.call.call_sid]
        entry.call.note("rest", "DELETE removed the call's record; jambonz does not hang up")
        return web.Response(status=204)

    async def _count(self, request: web.Request) -> web.StreamResponse:
        """CallCount (accounts.js ~1248–1262): the live calls, by direction."""
        refusal = self._account(request)
        if refusal is not None:
            return _reply(refusal)
        live = sum(1 for e in self._calls.values() if not e.task.done())
        return web.json_response({"inbound": 0, "outbound": live})

    async def _update(self, request: web.Request) -> web.StreamResponse:
        """updateCall (accounts.js ~1098–1157, feature-server update-call.js ~44–70)."""
        body = request[_BODY]
        refusal = self._account(request)
        if refusal is None:
            refusal = rules.BAD_SID if not rules.valid_sid(request.match_info["call"]) else None
        if refusal is None:
            refusal = rules.check_update(body)
        if refusal is not None:
            return _reply(refusal)
        self._purge()
        entry = self._calls.get(request.match_info["call"])
        if entry is None:
            return web.Response(status=404, text="Not Found")
        call = entry.call
        refusal = _session_refusal(call, entry.task.done(), body)
        if refusal is not None:
            return _reply(refusal)
        call.note("rest", "updateCall", payload=body)
        if _truthy(body.get("sip_request")):
            if not call.answered:  # _lccSipRequest returns nothing: update-call.js reads .status of it
                return _reply(
                    rules.Refusal(500, {"msg": "Cannot read properties of undefined (reading 'status')"})
                )
            _apply(call, body)
            return web.json_response({"status": 200, "reason": "OK"})
        _apply(call, body)
        return web.Response(status=202, text="Accepted")

    # -- records -----------------------------------------------------------------------------------

    def _record(self, entry: _Entry) -> dict[str, Any]:
        call = entry.call
        info = call.call_info()
        if call.status == "completed":  # CallInfo.toJSON adds them once the call completed
            info["duration"] = _duration(call, entry)
            if entry.task.done() and not entry.task.cancelled():
                info["call_termination_by"] = entry.task.result().termination_by
        return rules.call_record(info, SERVICE_URL)

    def _purge(self) -> None:
        """Drop ended calls' records after :data:`KEEP_ENDED_FOR`, and beyond ``keep`` of them."""
        now = time.time()
        ended = [sid for sid, e in self._calls.items() if e.ended_at is not None]
        for n, sid in enumerate(ended):
            at = self._calls[sid].ended_at
            if n < len(ended) - self.keep or (at is not None and now - at > KEEP_ENDED_FOR):
                del self._calls[sid]

    def __repr__(self) -> str:
        state = f"listening on {self.base_url}/v1" if self._runner is not None else "stopped"
        return f"<RestServer {state} account {self.account_sid}>"


_FILTERS = {"direction": "direction", "from": "from", "to": "to", "call_status": "callStatus"}


def serve_rest(**kwargs: Any) -> RestServer:
    """A started :class:`RestServer` (same arguments). Cells and scripts; on the loop ``await
    RestServer(...).astart()`` instead."""
    return RestServer(**kwargs).start()


# -- updateCall: onto the call's command handling ----------------------------------------------------


def _session_refusal(call: SimCall, done: bool, body: Mapping[str, Any]) -> rules.Refusal | None:
    """``retrieveCallSession`` (feature-server update-call.js ~10–37): its 400 JSON / 422 text."""
    sid = call.call_sid
    if _truthy(body.get("call_status_hook")) and not _truthy(body.get("call_hook")):
        return rules.bad_request(
            f"call_status_hook can be updated only when call_hook is also being updated for call_sid {sid}"
        )
    if done or call.over:
        return rules.Refusal(422, f"call session is gone for call_sid {sid}")
    status = body.get("call_status")
    if (status == "completed" and not call.answered) or (status == "no-answer" and not call.ringing):
        return rules.Refusal(
            422, f"current call state is incompatible with requested action for call_sid {sid}"
        )
    return None


def _apply(call: SimCall, body: Mapping[str, Any]) -> None:
    """``CallSession.updateCall`` (call-session.js ~2000–2060): the first matching update, then
    ``whisper`` unless that update returned."""

    def command(name: str, data: Any) -> None:
        apply_command(call, {"type": "command", "command": name, "data": data})

    if _truthy(body.get("call_status")):
        return command("call:status", dict(body))
    if _truthy(body.get("call_hook")) or _truthy(body.get("child_call_hook")):
        if _truthy(body.get("child_call_hook")):
            call.note("not-simulated", "updateCall child_call_hook: a dial's B-leg is not adulted here")
        hook = body.get("call_hook")
        url = hook.get("url") if isinstance(hook, dict) else hook
        if url:
            command("redirect", {"call_hook": str(url)})
        return None
    if _truthy(body.get("listen_status")) or _truthy(body.get("stream_status")):
        command("listen:status", {"listen_status": body.get("listen_status") or body.get("stream_status")})
    if _truthy(body.get("transcribe_status")):
        command("transcribe:status", dict(body))
    else:
        done = _apply_one(call, body, command)
        if done:
            return None
    if _truthy(body.get("whisper")):
        command("whisper", dict(body))
    return None


def _apply_one(call: SimCall, body: Mapping[str, Any], command: Callable[[str, Any], None]) -> bool:
    """The ``else if`` chain of updateCall after ``transcribe_status``; True when it returned."""
    for key, name in (("mute_status", "mute:status"), ("conf_hold_status", "conf:hold-status")):
        if _truthy(body.get(key)):
            command(name, dict(body))
            return False
    if _truthy(body.get("conf_mute_status")):
        command("conf:mute-status", dict(body))
    elif _truthy(body.get("sip_request")):
        command("sip:request", dict(body))
        return True
    elif _truthy(body.get("dtmf")):
        command("dtmf", dict(body))
    elif _truthy(body.get("record")):
        command("record", body["record"])
    elif _truthy(body.get("tag")):  # _lccTag (~1701): the tag becomes the call's customerData
        if isinstance(body["tag"], dict):
            call.customer_data = dict(body["tag"])
        return True
    else:
        for key, name in _RETURNING:
            if _truthy(body.get(key)):
                command(name, body[key])
                return True
    return False


_RETURNING = (
    ("conferenceParticipantAction", "conf:participant-action"),
    ("dub", "dub"),
    ("boostAudioSignal", "boostAudioSignal"),
    ("media_path", "media:path"),
    ("llm_update", "llm:update"),
)


# -- helpers -----------------------------------------------------------------------------------------


def _truthy(value: Any) -> bool:
    return isinstance(value, dict | list) or bool(value)


def _duration(call: SimCall, entry: _Entry) -> int:
    if entry.task.done() and not entry.task.cancelled():
        return round(entry.task.result().duration)
    return round(call.clock.now() - call.answer_at) if call.answer_at is not None else 0


def _trimmed(value: Any) -> Any:
    """``customSanitizeFunction`` (feature-server schemas/create-call.js ~118): strings in the tag trimmed."""
    if isinstance(value, dict):
        return {k: _trimmed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trimmed(v) for v in value]
    return value.strip() if isinstance(value, str) else value


async def _body(request: web.Request) -> dict[str, Any] | rules.Refusal:
    """``express.json()``: a JSON object or array, else 400 ``{msg}``; other content types: ``{}``."""
    if request.method in ("GET", "DELETE", "HEAD") or request.content_type != "application/json":
        return {}
    text = await request.text()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        return rules.Refusal(400, {"msg": f"invalid JSON: {exc}"})
    if not isinstance(value, dict | list):  # body-parser's strict mode
        return rules.Refusal(
            400, {"msg": f"invalid JSON: a body must be an object or an array, not {text[:40]}"}
        )
    return value if isinstance(value, dict) else {}


def _reply(refusal: rules.Refusal) -> web.Response:
    if isinstance(refusal.body, str):
        return web.Response(status=refusal.status, text=refusal.body)
    return web.json_response(refusal.body, status=refusal.status)


def _unauthorized(challenge: str) -> web.Response:
    """passport's failure (authenticate.js ~170–177): 401, the challenge, body ``Unauthorized``."""
    return web.Response(status=401, text="Unauthorized", headers={"WWW-Authenticate": challenge})
