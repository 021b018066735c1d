"""``jambonz-lab simulate jambonz``: the simulator's REST API (:class:`~jambonz_lab.sim.RestServer`) alone.

``jambonz-lab simulate jambonz [--host H] [--port P] [--account-sid A] [--api-key K]
[--calls-from SCRIPT]`` listens until SIGINT or SIGTERM. One line says what to give
``JambonzClient`` (base URL, account sid, API key); then one line per call the API places and
one when it ends. ``--calls-from SCRIPT`` is a Python file that defines ``callee``: a
``jambonz_lab.sim.Caller`` (who answers every call: its ``answer``, or its ``dial`` outcome for
the ``to`` number), or a function of createCall's ``to`` object returning one. Example::

    # callee.py
    from jambonz_lab.sim import Caller, DialOutcome
    callee = Caller(answer=DialOutcome(ring=1), dial={"+15550123": DialOutcome("busy")}, hangup_after=30)

Threads: nothing prints from the lab's loop thread; the main thread asks the loop for the
calls' states (``RestServer.states``) twice a second and prints what changed.
"""

from __future__ import annotations

import argparse
import runpy
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .. import loop
from .cli_serve import listen, stop_on_signals

if TYPE_CHECKING:
    from ..sim.rest import Callee, RestServer

__all__ = ["add_options", "simulate"]


def add_options(simulate: argparse.ArgumentParser) -> None:
    """The options only ``simulate jambonz`` reads."""
    simulate.add_argument(
        "--account-sid", metavar="A", help="jambonz only: the account sid (default: a new uuid)"
    )
    simulate.add_argument("--api-key", metavar="K", help="jambonz only: the API key (default: a new uuid)")
    simulate.add_argument(
        "--calls-from",
        metavar="SCRIPT",
        help="jambonz only: a Python file that defines `callee` (a sim.Caller, or a function of `to`)",
    )


def _callee(path: str | None) -> Callee | None:
    """The ``callee`` a ``--calls-from`` script defines (raises ValueError with a one-line reason)."""
    from ..sim import Caller

    if path is None:
        return None
    if not Path(path).is_file():
        raise ValueError(f"no such file: {path}")
    try:
        names = runpy.run_path(path, run_name="__jambonz_lab__")
    except Exception as exc:  # noqa: BLE001 - the script's own error, said in one line
        raise ValueError(f"{path} failed: {type(exc).__name__}: {exc}") from None
    callee = names.get("callee")
    if callee is None:
        raise ValueError(f"{path} defines no `callee` (a jambonz_lab.sim.Caller or a function of `to`)")
    if not isinstance(callee, Caller) and not callable(callee):
        raise ValueError(f"{path}: `callee` is a {type(callee).__name__}, not a sim.Caller or a function")
    return callee  # type: ignore[no-any-return]


def simulate(args: argparse.Namespace) -> int:
    """Run the REST API until SIGINT / SIGTERM; the exit status."""
    from ..sim import RestServer

    try:
        server = RestServer(
            args.host,
            args.port,
            account_sid=args.account_sid,
            api_key=args.api_key,
            callee=_callee(args.calls_from),
        )
    except ValueError as exc:
        print(f"jambonz-lab: {exc}", file=sys.stderr)
        return 2
    stop = stop_on_signals()
    exposure = "and knows the API key can place calls to your apps"
    if not listen(server.start, args.host, args.port, exposure):
        return 1
    try:
        print(_connect_line(server), flush=True)
        _report(server, stop)
    finally:
        server.stop()
    print("stopped", flush=True)
    return 0


def _connect_line(server: RestServer) -> str:
    return (
        f"jambonz simulator: REST API {server.base_url}/v1 account_sid={server.account_sid} "
        f"api_key={server.api_key} (JambonzClient(base_url={server.base_url!r}, ...); createCall needs "
        "the five speech_* settings or jambonz answers 400)"
    )


def _report(server: RestServer, stop: threading.Event) -> None:
    """Print a line for each new call and each change of a call's status, until ``stop``."""
    shown: dict[str, str] = {}
    while not stop.wait(0.5):
        for sid, (status, to, url) in loop.run_sync(server.states).items():
            if shown.get(sid) == status:
                continue
            if sid not in shown:
                print(f"call {sid}: to {to}, app {url}", flush=True)
            print(f"call {sid}: {status}", flush=True)
            shown[sid] = status
