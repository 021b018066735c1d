"""``jambonz-lab``: the command line.

``jambonz-lab serve FILE [--host H] [--port P]`` imports FILE, which declares
services with :func:`jambonz_lab.service`, serves them until SIGINT or
SIGTERM, then shuts down cleanly.
"""

from __future__ import annotations

import argparse
import runpy
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .runtime import default_lab, start

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"jambonz-lab: no such file: {path}", file=sys.stderr)
        return 2
    declared = default_lab()
    runpy.run_path(str(path), run_name="__jambonz_lab__")
    if not declared.server.services:
        print(f"jambonz-lab: {path} declares no service (use jambonz_lab.service(path))", file=sys.stderr)
        return 2
    lab = start(host=args.host, port=args.port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    for svc in lab.server.services.values():
        print(f"serving {svc.path} at {lab.url}{svc.path if svc.path != '/' else ''}", flush=True)
    while not stop.wait(0.5):
        pass
    lab.stop()
    print("stopped", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jambonz-lab", description="jambonz WebSocket apps in Python")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the services a Python file declares")
    serve.add_argument("file", help="a Python file that calls jambonz_lab.service(...)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=3000, help="port (default 3000; 0 picks one)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return 2  # pragma: no cover - argparse refuses other commands


if __name__ == "__main__":
    sys.exit(main())
