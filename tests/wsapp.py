"""A jambonz WebSocket app for tests: a ``websockets`` server on its own thread and loop.

``serving(conn)`` runs ``conn(ws)`` for each socket jambonz (the simulator) opens, with the
``ws.jambonz.org`` subprotocol, on a free loopback port, and yields the URL (``path`` appended).
``serving_sync(handler)`` does the same for a plain function on a ``websockets.sync`` connection
(one thread per socket), for apps that block between frames.
The tests' apps are small coroutines that ack exactly what a test wants, so an unacked hook or a
bad frame reaches the simulator as it would reach jambonz.

Example::

    async def conn(ws):
        async for frame in ws:
            ...

    with serving(conn, "/app") as url:
        result = sim.call(url, ...)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.sync.server import ServerConnection as SyncConnection
from websockets.sync.server import serve as serve_sync
from websockets.typing import Subprotocol

__all__ = ["SyncConnection", "serving", "serving_sync"]

PROTOCOLS = [Subprotocol("ws.jambonz.org")]


@contextmanager
def serving(conn: Callable[[ServerConnection], Awaitable[None]], path: str = "") -> Iterator[str]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"] = stop
        # close_timeout: at the end, a socket whose peer is gone must not hold the shutdown for 10 s
        async with serve(conn, "127.0.0.1", 0, subprotocols=PROTOCOLS, close_timeout=1) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            box["url"] = f"ws://127.0.0.1:{port}{path}"
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(5):
        raise RuntimeError("the test app did not start within 5 s")
    try:
        yield str(box["url"])
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(15)
        if thread.is_alive():  # never close a loop that still runs; say why instead
            raise RuntimeError("the test app did not shut down within 15 s")
        loop.close()


@contextmanager
def serving_sync(handler: Callable[[SyncConnection], None], path: str = "") -> Iterator[str]:
    with serve_sync(handler, "127.0.0.1", 0, subprotocols=PROTOCOLS) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}{path}"
        finally:
            server.shutdown()
            thread.join(5)
