"""jambonz's REST API from the lab: create calls, steer live ones, every request and answer a row.

:class:`RestClient` wraps jambonz-python-sdk's ``JambonzClient`` (``jambonz_sdk.client``), so
the requests are the SDK's. It adds what a lab needs: it runs the client on the lab's loop (one
aiohttp session for its lifetime), records each request and its answer in the event log next to
the call they are about (``type`` ``rest:create-call``, ``rest:update-call``, …; ``out`` for the
request, ``in`` for the answer; ``transport`` ``"http"``), and turns a failed request into a
:exc:`~jambonz_lab.exceptions.RestError` with the status and jambonz's message.

Example::

    rest = lab.rest("https://jambonz.example.com", account_sid, api_key)   # or the simulator's
    sid = rest.create_call(to={"type": "phone", "number": "+15550111"}, from_="+15550100",
                           call_hook=public_url + "/outbound")
    rest.redirect(sid, public_url + "/after")
    rest.hangup(sid)

Threads: the blocking methods are for cells, scripts and worker threads (they raise on the
loop thread); on the loop, in a coroutine handler, ``await`` their ``a``-twins
(``acreate_call``, ``aupdate``, …).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp

from .. import loop
from ..exceptions import RestError
from ..records import Record, make_row

__all__ = ["RestClient"]

T = TypeVar("T")

#: how long a blocking call waits for jambonz's answer
TIMEOUT = 30.0


class RestClient:
    """jambonz's REST API for one account, on the lab's loop (see the module doc)."""

    def __init__(
        self, base_url: str, account_sid: str, api_key: str, *, record: Record | None = None
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        if not account_sid or not api_key:
            raise ValueError("account_sid and api_key are required (jambonz's portal shows both)")
        self.base_url = base_url.rstrip("/")
        self.account_sid = account_sid
        self._api_key = api_key
        self._record = record
        self._client: Any = None  # a JambonzClient, made on the loop (its aiohttp session lives there)

    def __repr__(self) -> str:
        return f"<RestClient {self.base_url} account {self.account_sid}>"

    # -- blocking (cells, scripts) ------------------------------------------------------

    def create_call(self, **opts: Any) -> str:
        """``POST /Calls``: place a call; returns its call sid. ``from_`` stands for ``from``.

        The options are jambonz's (``to``, ``call_hook``, ``call_status_hook``, ``tag``,
        ``timeout``, ``amd``, …); ``call_hook`` is where jambonz fetches the call's verbs: a
        lab service's URL (``lab.url + "/outbound"``) as jambonz can reach it.
        """
        return self._wait(self.acreate_call(**opts))

    def update(self, call_sid: str, **opts: Any) -> Any:
        """``PUT /Calls/{call_sid}``: one live-call update (``call_hook``, ``call_status``,
        ``whisper``, ``mute_status``, ``conf_mute_status``, ``listen_status``, ``sip_request``, …)."""
        return self._wait(self.aupdate(call_sid, **opts))

    def redirect(self, call_sid: str, call_hook: str) -> Any:
        """Replace the call's verbs with those of ``call_hook`` (a ws(s) or http(s) URL)."""
        return self.update(call_sid, call_hook=call_hook)

    def hangup(self, call_sid: str) -> Any:
        """End the call (``call_status: completed``; ``no-answer`` cancels one still ringing)."""
        return self.update(call_sid, call_status="completed")

    def whisper(self, call_sid: str, verbs: Mapping[str, Any] | list[Mapping[str, Any]]) -> Any:
        """Play or say something to the call's party only (a say/play verb, or a list of them)."""
        return self.update(call_sid, whisper=verbs)

    def mute(self, call_sid: str, status: str = "mute") -> Any:
        """``mute`` or ``unmute`` the call's party."""
        return self.update(call_sid, mute_status=status)

    def get(self, call_sid: str) -> dict[str, Any]:
        """``GET /Calls/{call_sid}``: the call's record."""
        return self._wait(self.aget(call_sid))

    def calls(self, **filters: str) -> list[dict[str, Any]]:
        """``GET /Calls``: the account's calls (``direction``, ``from``, ``to``, ``callStatus``)."""
        return self._wait(self.acalls(**filters))

    def delete(self, call_sid: str) -> None:
        """``DELETE /Calls/{call_sid}``."""
        self._wait(self.adelete(call_sid))

    def close(self) -> None:
        """Close the HTTP session (a later call opens a new one)."""
        self._wait(self.aclose())

    # -- on the loop --------------------------------------------------------------------

    async def acreate_call(self, **opts: Any) -> str:
        body = _body(opts)
        client = self._sdk()
        sid: str = await self._do("create-call", "POST /Calls", None, body, lambda: client.calls.create(body))
        return sid

    async def aupdate(self, call_sid: str, **opts: Any) -> Any:
        body = _body(opts)
        client = self._sdk()
        where = f"PUT /Calls/{call_sid}"
        return await self._do(
            "update-call", where, call_sid, body, lambda: client.calls.update(call_sid, body)
        )

    async def aget(self, call_sid: str) -> dict[str, Any]:
        client = self._sdk()
        where = f"GET /Calls/{call_sid}"
        got: dict[str, Any] = await self._do(
            "get-call", where, call_sid, None, lambda: client.calls.get(call_sid)
        )
        return got

    async def acalls(self, **filters: str) -> list[dict[str, Any]]:
        client = self._sdk()
        params = dict(filters) or None
        got: list[dict[str, Any]] = await self._do(
            "list-calls", "GET /Calls", None, params, lambda: client.calls.list(params)
        )
        return got

    async def adelete(self, call_sid: str) -> None:
        client = self._sdk()
        where = f"DELETE /Calls/{call_sid}"
        await self._do("delete-call", where, call_sid, None, lambda: client.calls.delete(call_sid))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # -- internals ----------------------------------------------------------------------

    def _sdk(self) -> Any:
        loop.require_loop_thread()
        if self._client is None:
            from jambonz_sdk.client import JambonzClient

            self._client = JambonzClient(
                base_url=self.base_url, account_sid=self.account_sid, api_key=self._api_key
            )
        return self._client

    def _wait(self, coro: Awaitable[T]) -> T:
        if loop.in_loop_thread():
            close = getattr(coro, "close", None)
            if close is not None:
                close()
            raise RuntimeError("RestClient's blocking methods cannot run on the lab's loop; await the a-twin")
        return loop.submit(_as_coroutine(coro)).result(TIMEOUT)

    async def _do(
        self,
        op: str,
        where: str,
        call_sid: str | None,
        body: Any,
        request: Callable[[], Awaitable[T]],
    ) -> T:
        """Run one SDK request (``where``: ``"PUT /Calls/{sid}"``); record it and its answer as rows."""
        started = time.time()
        try:
            answer = await request()
        except aiohttp.ClientResponseError as exc:
            error = RestError(
                f"jambonz answered {where} with {exc.status} {exc.message}; check the account sid, "
                "the API key and the request's fields",
                status=exc.status,
                call_sid=call_sid,
            )
            self._rows(op, where, call_sid, body, started, None, str(error))
            raise error from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = RestError(
                f"{where} to {self.base_url} failed ({type(exc).__name__}: {exc}); is jambonz reachable?",
                call_sid=call_sid,
            )
            self._rows(op, where, call_sid, body, started, None, str(error))
            raise error from None
        sid = answer if op == "create-call" and isinstance(answer, str) else call_sid
        self._rows(op, where, sid, body, started, answer, None)
        return answer

    def _rows(
        self,
        op: str,
        where: str,
        call_sid: str | None,
        body: Any,
        started: float,
        answer: Any,
        error: str | None,
    ) -> None:
        if self._record is None:
            return
        path = self.base_url + f"/v1/Accounts/{self.account_sid}"
        kind = f"rest:{op}"
        common: dict[str, Any] = {"call_sid": call_sid, "path": path, "transport": "http"}
        self._record(make_row("jambonz", "out", kind, payload=body, note=where, ts=started, **common))
        payload = {"error": error} if error is not None else {"answer": answer}
        note = error if error is not None else f"{where} answered"
        self._record(make_row("jambonz", "in", kind, payload=payload, note=note, **common))


def _body(opts: Mapping[str, Any]) -> dict[str, Any]:
    """The request body: ``from_`` is ``from`` (a Python keyword); values must be JSON."""
    body = {("from" if key == "from_" else key): value for key, value in opts.items()}
    try:
        json.dumps(body)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"REST request fields must be JSON values: {exc}") from None
    return body


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable
