"""EventSource, the base of the platform clients, against a real websockets server on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve

from jambonz_lab import loop
from jambonz_lab.exceptions import PlatformError
from jambonz_lab.platforms import EventSource, PlatformEvent, SourceState
from jambonz_lab.records import RECORD_FIELDS

TYPE, NOTE = RECORD_FIELDS.index("type"), RECORD_FIELDS.index("note")


class JsonSource(EventSource):
    """A toy platform: every text frame is a JSON event ``{"name", "call_id"}``; "BYE" is fatal."""

    source = "toy"

    def __init__(self, url: str, **kw: Any) -> None:
        super().__init__(url, backoff=(0.05, 0.2), **kw)
        self.readies = 0

    async def _open(self) -> ClientConnection:
        return await connect(self.url, open_timeout=2, compression=None)

    async def _ready(self, ws: ClientConnection) -> None:
        self.readies += 1
        await ws.send(json.dumps({"hello": self.readies}))

    def _frame(self, data: str | bytes) -> None:
        event = json.loads(data)
        if not isinstance(event, dict):
            raise ValueError(f"expected a JSON object, got {type(event).__name__}")
        self.emit("in", event["name"], call_id=event.get("call_id"), payload=event)

    def _closed_error(self, ws: ClientConnection) -> PlatformError | None:
        if ws.close_code == 4000:
            return PlatformError("the toy server said goodbye for good", source="toy")
        return None

    def _fatal(self, exc: BaseException) -> bool:
        return isinstance(exc, PlatformError)


class ToyServer:
    """A websockets server on loopback whose connections the test drives."""

    def __init__(self) -> None:
        self.conns: list[ServerConnection] = []
        self.hellos: list[Any] = []
        self.server: Server | None = None

    async def handler(self, ws: ServerConnection) -> None:
        self.conns.append(ws)
        async for frame in ws:
            self.hellos.append(json.loads(frame))

    async def start(self) -> str:
        self.server = await serve(self.handler, "127.0.0.1", 0)
        port = next(iter(self.server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def send(self, text: str) -> None:
        await self.conns[-1].send(text)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def run(coro: Any, timeout: float = 10.0) -> Any:
    return loop.submit(coro).result(timeout)


@pytest.fixture
def toy() -> Iterator[tuple[ToyServer, str]]:
    server = ToyServer()
    url = run(server.start())
    try:
        yield server, url
    finally:
        run(server.stop())


async def until(check: Any, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_events_are_recorded_and_wake_waiters(toy: tuple[ToyServer, str]) -> None:
    server, url = toy
    rows: list[tuple[Any, ...]] = []
    src = JsonSource(url, record=rows.append).connect()
    assert src.state is SourceState.OPEN
    waiter = src.wait_for("created", timeout=5)
    seen: list[PlatformEvent] = []
    src.listen(seen.append)
    run(server.send(json.dumps({"name": "other"})))
    run(server.send(json.dumps({"name": "created", "call_id": "c1"})))
    event = waiter.result()
    assert (event.source, event.type, event.call_id, event.data) == (
        "toy",
        "created",
        "c1",
        {"name": "created", "call_id": "c1"},
    )
    assert [e.type for e in seen] == ["other", "created"]
    src.close()
    assert src.state is SourceState.CLOSED
    as_dicts = [dict(zip(RECORD_FIELDS, r, strict=True)) for r in rows]
    assert [(r["direction"], r["type"]) for r in as_dicts] == [
        ("lab", "open"),
        ("in", "other"),
        ("in", "created"),
        ("lab", "close"),
    ]
    assert {r["source"] for r in as_dicts} == {"toy"}
    assert as_dicts[2]["call_sid"] == "c1" and json.loads(as_dicts[2]["payload"])["name"] == "created"


def test_bad_frame_is_recorded_and_the_socket_goes_on(toy: tuple[ToyServer, str]) -> None:
    server, url = toy
    rows: list[tuple[Any, ...]] = []
    src = JsonSource(url, record=rows.append).connect()
    waiter = src.wait_for("after")
    run(server.send("{not json"))
    run(server.send("[1, 2]"))
    run(server.send(json.dumps({"name": "after"})))
    assert waiter.result().type == "after"
    bad = [r for r in rows if r[3] == "bad-frame"]
    assert [r[8].split(":")[0] for r in bad] == ["JSONDecodeError", "ValueError"]
    assert json.loads(bad[0][7]) == {"raw": "{not json"}
    assert src.state is SourceState.OPEN and src.connections == 1
    src.close()


def test_a_dropped_socket_reconnects_and_sets_up_again(toy: tuple[ToyServer, str]) -> None:
    server, url = toy
    rows: list[tuple[Any, ...]] = []
    src = JsonSource(url, record=rows.append).connect()
    run(until(lambda: len(server.hellos) == 1))
    run(server.conns[-1].close(1011, "oops"))
    run(until(lambda: src.connections == 2 and len(server.hellos) == 2))
    assert server.hellos == [{"hello": 1}, {"hello": 2}]
    waiter = src.wait_for("again")
    run(server.send(json.dumps({"name": "again"})))
    assert waiter.result().type == "again"
    kinds = [r[3] for r in rows if r[2] == "lab"]
    assert kinds[:4] == ["open", "dropped", "open", "reconnect"]
    assert "code 1011" in next(r[8] for r in rows if r[3] == "dropped")
    src.close()


def test_a_fatal_close_stops_and_fails_waiters(toy: tuple[ToyServer, str]) -> None:
    server, url = toy
    src = JsonSource(url).connect()
    waiter = src.wait_for("never", timeout=5)
    run(server.conns[-1].close(4000, "bye"))
    with pytest.raises(PlatformError, match="goodbye for good"):
        waiter.result()
    run(until(lambda: src.state is SourceState.CLOSED))
    assert src.connections == 1 and isinstance(src.error, PlatformError)


def test_first_connection_failure_raises_and_is_recorded() -> None:
    rows: list[tuple[Any, ...]] = []
    src = JsonSource("ws://127.0.0.1:9", record=rows.append)  # discard port: refused
    with pytest.raises(OSError):
        src.connect()
    assert src.state is SourceState.CLOSED
    assert [r[3] for r in rows] == ["connect-failed"]


def test_wait_for_the_nth_event(toy: tuple[ToyServer, str]) -> None:
    server, url = toy
    src = JsonSource(url).connect()
    third = src.wait_for("tick", count=3, timeout=5)
    for n in range(4):
        run(server.send(json.dumps({"name": "tick", "call_id": f"c{n}"})))
        run(server.send(json.dumps({"name": "tock"})))
    assert third.result().call_id == "c2"
    assert "3 × toy event 'tick'" in repr(src.wait_for("tick", count=3))
    with pytest.raises(ValueError, match="count must be 1 or more"):
        src.wait_for("tick", count=0)
    src.close()


# --- a server that never answers (issue 11 item 7) ---------------------------------------------------


@pytest.fixture
def mute() -> Iterator[str]:
    """A TCP listener that accepts and never says a word (not even the HTTP upgrade answer)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    listener.settimeout(0.1)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}/events"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_a_mute_server_times_out_naming_url_and_what_was_awaited(mute: str) -> None:
    rows: list[tuple[Any, ...]] = []
    src = JsonSource(mute, record=rows.append)
    with pytest.raises(PlatformError) as caught:
        src.connect(timeout=0.5)
    assert str(caught.value) == (
        f"toy at {mute} did not answer within 0.5 s: the lab was waiting for the WebSocket opening handshake"
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # ends at the user's line
    assert src.state is SourceState.CLOSED and src.error is caught.value
    assert [(r[TYPE], r[NOTE]) for r in rows] == [("connect-failed", f"PlatformError: {caught.value}")]


class SlowHandshake(ToyServer):
    """Answers the upgrade only after ``delay`` seconds."""

    delay = 1.0

    async def start(self) -> str:
        async def slow(conn: ServerConnection, request: Any) -> None:
            await asyncio.sleep(self.delay)

        self.server = await serve(self.handler, "127.0.0.1", 0, process_request=slow)
        port = next(iter(self.server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"


def test_giving_up_stops_the_background_connect() -> None:
    """Before: connect(timeout) raised a bare TimeoutError in the cell while the attempt went on and
    connected later, behind the user's back."""
    server = SlowHandshake()
    url = run(server.start())
    try:
        src = JsonSource(url)
        with pytest.raises(PlatformError, match="did not answer within 0.3 s"):
            src.connect(timeout=0.3)
        run(asyncio.sleep(server.delay + 0.5))
        assert server.conns == [] and src.connections == 0 and src.state is SourceState.CLOSED
    finally:
        run(server.stop())


class MuteSetup(JsonSource):
    """Waits for a reply to its hello that the toy server never sends."""

    async def _ready(self, ws: ClientConnection) -> None:
        await super()._ready(ws)
        self.awaiting = "the reply to hello"
        await ws.recv()


def test_a_set_up_that_never_ends_names_its_phase_and_drops_the_socket(toy: tuple[ToyServer, str]) -> None:
    server, url = toy
    src = MuteSetup(url)
    with pytest.raises(PlatformError) as caught:
        src.connect(timeout=0.5)
    assert (
        str(caught.value)
        == f"toy at {url} did not answer within 0.5 s: the lab was waiting for the reply to hello"
    )
    run(until(lambda: server.conns and server.conns[0].state.name == "CLOSED"))
    assert server.hellos == [{"hello": 1}]
