"""A minimal jambonz stand-in for tests: a real ``websockets`` client on loopback.

It only speaks the wire protocol (the simulator issue builds the faithful one):
send a message, read what the app answers.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from websockets.sync.client import ClientConnection, connect

import jambonz_lab as jl
from jambonz_lab.protocol.feature import Acked, Command, FeatureProtocol, StrayAck

SUBPROTOCOL = "ws.jambonz.org"
_ids = itertools.count(1)


def call_data(call_sid: str, **extra: Any) -> dict[str, Any]:
    data = {
        "sip": {"headers": {"X-Caller": "<b>Mallory</b>"}, "method": "INVITE"},
        "direction": "inbound",
        "call_sid": call_sid,
        "from": "+14155550100",
        "to": "+16175550199",
        "caller_name": "Alice",
        "call_status": "trying",
        "sip_status": 100,
    }
    data.update(extra)
    return data


class FakeJambonz:
    """One socket, as jambonz would open it for one call."""

    def __init__(self, url: str, call_sid: str = "call-1", *, subprotocols: list[str] | None = None) -> None:
        protos: Any = [SUBPROTOCOL] if subprotocols is None else subprotocols
        self.ws: ClientConnection = connect(url, subprotocols=protos or None, open_timeout=5).__enter__()
        self.call_sid = call_sid
        self.core = FeatureProtocol(limit=sys.maxsize)  # reads the app's frames as jambonz does

    def send(
        self,
        type: str,
        data: dict[str, Any] | None = None,
        *,
        hook: str | None = None,
        msgid: str | None = None,
        call_sid: str | None = "default",
    ) -> str:
        msgid = msgid or f"m{next(_ids)}"
        msg: dict[str, Any] = {"type": type, "msgid": msgid}
        if call_sid is not None:
            msg["call_sid"] = self.call_sid if call_sid == "default" else call_sid
        if hook is not None:
            msg["hook"] = hook
        msg["data"] = data if data is not None else {"call_sid": self.call_sid}
        self.ws.send(json.dumps(msg))
        return msgid

    def session_new(self, **extra: Any) -> str:
        return self.send("session:new", call_data(self.call_sid, **extra))

    def hook(self, hook: str, **data: Any) -> str:
        return self.send("verb:hook", {"call_sid": self.call_sid, **data}, hook=hook)

    def recv(self, timeout: float = 3.0) -> dict[str, Any]:
        """The next frame of the app; AssertionError if jambonz would refuse it (InvalidMessage)."""
        frame = self.ws.recv(timeout)
        assert isinstance(frame, str), "jambonz apps send text frames"
        (event,) = self.core.receive(frame)
        if not isinstance(event, Acked | StrayAck | Command):
            raise AssertionError(f"jambonz would refuse this frame ({event}): {frame[:200]}")
        return event.message

    def recv_none(self, timeout: float = 0.3) -> None:
        """Assert that nothing arrives within ``timeout``."""
        try:
            frame = self.ws.recv(timeout)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame: {frame!r}")

    def close(self, code: int = 1000) -> None:
        self.ws.close(code)

    def __enter__(self) -> FakeJambonz:
        return self

    def __exit__(self, *exc: object) -> None:
        self.ws.close()


def wait_until(predicate: Callable[[], object], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def http(method: str, url: str) -> tuple[int, str]:
    req = urllib.request.Request(url.replace("ws://", "http://"), method=method)
    try:
        with urllib.request.urlopen(req, timeout=3) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:  # close the response socket now, not at garbage collection
            return exc.code, exc.read().decode()


def lab_rows(lab: jl.Lab, kind: str) -> list[dict[str, Any]]:
    return [r for r in lab.log.rows() if r["type"] == kind and r["direction"] == "lab"]
