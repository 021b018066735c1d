"""What the long-running ``jambonz-lab`` commands (serve, simulate, watch) do the same way: stop on
Ctrl-C or SIGTERM, listen or say why not.

Threads: the CLI's main thread.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

__all__ = ["listen", "stop_on_signals"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def stop_on_signals() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM (the command then stops and cleans up)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def listen(start: Callable[[], object], host: str, port: int, exposure: str) -> bool:
    """Run ``start()``; False, after one line on stderr, when it cannot listen on ``host:port``.

    Off loopback it warns that anyone who can reach the host ``exposure`` (what they could do).
    """
    try:
        start()
    except OSError as exc:
        print(f"jambonz-lab: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return False
    if host not in LOOPBACK:
        print(
            f"jambonz-lab: warning: {host} is not loopback; anyone who can reach it {exposure}",
            file=sys.stderr,
            flush=True,
        )
    return True
