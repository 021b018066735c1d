"""A real audio-socket server on loopback (the app side of listen/stream), for the simulator's tests.

It runs ``websockets.serve`` on its own loop in a thread, speaks subprotocol
``audio.drachtio.org``, keeps each connection's metadata, binary frames and events,
and sends what its script says once it has read so many frames::

    with AudioServer(script=[(10, play_audio(tone)), (50, disconnect())]) as server:
        sim.call(..., listen url=server.url ...)
    server.connections[0].frames
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import websockets
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from jambonz_lab.protocol.audio import SUBPROTOCOL

#: (after this many binary frames read, send this; None closes the socket)
Script = list[tuple[int, str | bytes | None]]


@dataclass
class Connection:
    path: str
    subprotocol: str | None
    headers: dict[str, str]
    metadata: dict[str, Any] | None = None
    frames: list[bytes] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: how many binary frames had come when each event came
    event_frames: list[int] = field(default_factory=list)


class AudioServer:
    def __init__(self, script: Script | None = None) -> None:
        self.script = list(script or [])
        self.connections: list[Connection] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Future[None] | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/audio"

    def __enter__(self) -> AudioServer:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(5)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = self._loop.create_future()
        async with serve(self._handle, "127.0.0.1", 0, subprotocols=[Subprotocol(SUBPROTOCOL)]) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        headers = {k.lower(): v for k, v in ws.request.headers.raw_items()}
        conn = Connection(ws.request.path, ws.subprotocol, headers)
        self.connections.append(conn)
        script = list(self.script)
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    conn.frames.append(message)
                elif conn.metadata is None:
                    conn.metadata = json.loads(message)
                else:
                    conn.events.append(json.loads(message))
                    conn.event_frames.append(len(conn.frames))
                while script and len(conn.frames) >= script[0][0]:
                    _, send = script.pop(0)
                    if send is None:
                        await ws.close()
                        return
                    await ws.send(send)
        except websockets.ConnectionClosed:
            pass
