"""The same reference app on jambonz-python-sdk 0.4.x, run as its own process.

Each ``/hook`` is answered with one ``say`` built from the hook's payload
(``You pressed {digits}``), as in ``lab_app.py``.

Prints its port on one stdout line, then serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from jambonz_sdk.websocket import create_endpoint


async def on_new(session: Any) -> None:
    async def hook(data: dict[str, Any]) -> None:
        session.say(text=f"You pressed {data['digits']}")
        await session.reply()

    session.on("/hook", hook)
    session.gather(input=["digits"], actionHook="/hook")
    await session.send()


async def serve() -> None:
    make_service, runner = await create_endpoint(host="127.0.0.1", port=0)
    make_service(path="/bench").on("session:new", on_new)
    port = runner.addresses[0][1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(port, flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve())
