"""``jambonz-lab``: the command line.

* ``jambonz-lab serve FILE [--host H] [--port P] [--log PATH] [--parquet DIR] [--memory-rows N]
  [--keep-sessions N] [--keep-sessions-for S]`` imports FILE, which declares
  services with :func:`jambonz_lab.service`, serves them until SIGINT or
  SIGTERM, then shuts down cleanly. With ``JAMBONZ_LAB_AUTH=user:password`` in
  the environment every WebSocket upgrade must carry those HTTP Basic
  credentials; binding beyond loopback without them prints a warning.
* ``jambonz-lab call URL [--speech TEXT]... [--dtmf DIGITS]... [--silence]...
  [--hangup-after S] [--clock virtual|real] [--format table|json]
  [--status-hook URL] [--method POST|GET]`` places one simulated inbound call
  to any jambonz WebSocket app (``ws://``) or HTTP webhook app (``http://``:
  ``--status-hook`` is its call status webhook, ``--method`` its calling
  hook's) and prints its trace;
  exit status 0 when the call completed normally, 1 with a one-line reason
  otherwise.
* ``jambonz-lab demo`` serves the bundled demo app and calls it.
* ``jambonz-lab simulate {kazoo,basix,wazo} [--host H] [--port P] [--calls N]
  [--interval S] [--time-scale X] [--seed K]`` runs one platform simulator on
  its own until SIGINT or SIGTERM: one line says what to connect to and with
  which credentials, then one line per scripted call it plays (``--calls N``:
  ``CallScenario(seed=K+n)``, every ``--interval`` s).
* ``jambonz-lab simulate jambonz [--host H] [--port P] [--account-sid A] [--api-key K]
  [--calls-from SCRIPT]`` runs jambonz's REST API for calls (``/v1/Accounts/{sid}/Calls``,
  :class:`jambonz_lab.sim.RestServer`): one line with the base URL, account sid and API key,
  then one line per call and status (see :mod:`jambonz_lab.lab.cli_jambonz`).
* ``jambonz-lab watch {kazoo,basix,wazo} URL [platform options] [--format
  json|table] [--log FILE] [--count N] [--timeout S]`` connects a platform
  client and prints one line per event as it arrives (``--log``: the rows as
  JSON lines, like ``jambonz_lab.start(log_path=...)``, for
  :func:`jambonz_lab.read_log`). ``watching URL`` on stderr once subscribed.
  Exit 0 after ``--count`` events or on SIGINT / SIGTERM; 1 with a one-line
  reason when the connection fails or ``--timeout`` runs out first.

Threads: nothing prints from the lab's loop thread. The watched client's rows
reach the main thread through a :class:`queue.Queue` and are printed there.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..protocol.verbs import load_models
from . import cli_platforms as platform_commands
from .cli_serve import stop_on_signals
from .runtime import default_lab, start

if TYPE_CHECKING:
    from ..sim import CallResult, TraceEntry

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"jambonz-lab: no such file: {path}", file=sys.stderr)
        return 2
    load_models()  # before listening: the first call must not wait for the SDK's import
    declared = default_lab()
    runpy.run_path(str(path), run_name="__jambonz_lab__")
    if not declared.server.services:
        print(f"jambonz-lab: {path} declares no service (use jambonz_lab.service(path))", file=sys.stderr)
        return 2
    try:
        auth = _auth_from_env()
    except ValueError as exc:
        print(f"jambonz-lab: {exc}", file=sys.stderr)
        return 2
    if auth is None and not _loopback(args.host):
        print(
            f"jambonz-lab: warning: serving on {args.host} without credentials: anyone who reaches the "
            f"port can drive these calls; set {AUTH_ENV}=username:password (and the same on the "
            "jambonz application's WebSocket URL)",
            file=sys.stderr,
        )
    try:
        lab = start(
            host=args.host,
            port=args.port,
            auth=auth,
            log_path=args.log,
            parquet_dir=args.parquet,
            memory_rows=args.memory_rows,
            keep_sessions=args.keep_sessions,
            keep_sessions_for=args.keep_sessions_for,
        )
    except (ValueError, OSError, ImportError) as exc:
        print(f"jambonz-lab: {exc}", file=sys.stderr)
        return 2
    stop = stop_on_signals()
    for svc in lab.server.services.values():
        print(f"serving {svc.path} at {lab.url}{svc.path if svc.path != '/' else ''}", flush=True)
    while not stop.wait(0.5):
        pass
    lab.stop()
    print("stopped", flush=True)
    return 0


#: ``username:password`` that every WebSocket upgrade to ``serve`` must carry (HTTP Basic)
AUTH_ENV = "JAMBONZ_LAB_AUTH"


def _auth_from_env() -> tuple[str, str] | None:
    """The credentials of :data:`AUTH_ENV` (never from the command line: it shows in ``ps``)."""
    value = os.environ.get(AUTH_ENV)
    if not value:
        return None
    username, sep, password = value.partition(":")
    if not sep or not username or not password:
        raise ValueError(f"{AUTH_ENV} must be username:password")
    return username, password


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _call(args: argparse.Namespace) -> int:
    from ..sim import Caller, call

    caller = Caller.from_steps(args.steps or [], hangup_after=args.hangup_after)
    hooks: dict[str, Any] = {}
    if args.status_hook or args.method:
        if not args.url.startswith(("http://", "https://")):
            print("jambonz-lab: --status-hook and --method are for http(s):// apps", file=sys.stderr)
            return 2
        hooks = {"method": args.method or "POST"}
        if args.status_hook:
            hooks["status_hook"] = args.status_hook
    result = call(args.url, caller, args.clock, **hooks)
    _print_trace(result, args.format)
    return _verdict(result)


def _demo(args: argparse.Namespace) -> int:
    from ..sim import Caller, Digits, Speech, call
    from . import demo

    load_models()
    lab = start()
    try:
        demo.install(lab.service(demo.PATH))
        caller = Caller(inputs=[Speech("I would like a coffee"), Digits("42#"), Speech("goodbye")])
        print(f"demo app at {lab.url}{demo.PATH}; calling it with a scripted caller ({args.clock} clock)\n")
        result = call(lab.url + demo.PATH, caller, args.clock)
        _print_trace(result, args.format)
        if args.format != "json":
            print("\n" + demo.NEXT)
        return _verdict(result)
    finally:
        lab.stop()


def _verdict(result: CallResult) -> int:
    if result.ok:
        return 0
    reason = result.errors[0] if result.errors else f"final status {result.final_status}"
    print(f"jambonz-lab: call {result.final_status} (SIP {result.sip_status}): {reason}", file=sys.stderr)
    return 1


def _print_trace(result: CallResult, fmt: str) -> None:
    if fmt == "json":
        print(result.to_jsonl())
        return
    arrows = {"sent": "jambonz → app", "received": "app → jambonz", "sim": "jambonz"}
    print(f"{'t (s)':>7}  {'who':<14} {'what':<20} detail")
    for e in result.trace:
        print(f"{e.t:7.2f}  {arrows.get(e.direction, e.direction):<14} {e.type:<20} {_detail(e)}")
    print("\ncaller heard:" + ("" if result.heard else " nothing"))
    for kind, text in result.heard:
        print(f"  {kind}: {text}")
    print(
        f"final status: {result.final_status} (SIP {result.sip_status}), {result.duration:g} s, "
        f"ended by {result.termination_by}"
    )


def _detail(e: TraceEntry) -> str:
    if e.note:
        return e.note
    msg = e.payload if isinstance(e.payload, dict) else {}
    data = msg.get("data")
    if e.type in ("ack", "redirect", "http-response") and isinstance(data, list):
        return ", ".join(str(v.get("verb")) for v in data if isinstance(v, dict)) or "(no verbs)"
    if e.type in ("ack", "http-response") and not data:
        return "(no verbs)"
    parts = []
    if msg.get("hook"):
        parts.append(str(msg["hook"]))
    if isinstance(data, dict):
        for key in ("call_status", "reason", "digits", "event", "event_type"):
            if key in data:
                parts.append(f"{key}={data[key]}")
        if isinstance(data.get("speech"), dict):
            alts = data["speech"].get("alternatives") or [{}]
            parts.append(f"transcript={alts[0].get('transcript')!r}")
    return " ".join(parts)


# -- simulate ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jambonz-lab", description="jambonz WebSocket apps in Python")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the services a Python file declares")
    serve.add_argument("file", help="a Python file that calls jambonz_lab.service(...)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=3000, help="port (default 3000; 0 picks one)")
    serve.add_argument("--log", metavar="PATH", help="append every event to PATH as JSON lines (read_log)")
    serve.add_argument(
        "--parquet",
        metavar="DIR",
        help="write every event to a Parquet log in DIR (read_log, jambonz_lab.sql; the scale extra)",
    )
    serve.add_argument(
        "--memory-rows", type=int, default=200_000, help="event-log rows kept in memory (older ones spill)"
    )
    serve.add_argument(
        "--keep-sessions",
        type=int,
        default=200,
        help="ended sessions kept in memory (start() keeps 1000; fewer make garbage collections shorter)",
    )
    serve.add_argument(
        "--keep-sessions-for",
        type=float,
        default=3600.0,
        metavar="S",
        help="seconds an ended session is kept",
    )
    one = sub.add_parser("call", help="place one simulated call to a jambonz WebSocket or webhook app")
    one.add_argument(
        "url",
        help="the app's ws(s):// or http(s):// URL, e.g. ws://127.0.0.1:3000/echo (#rc=..&rp=.. honoured)",
    )
    one.add_argument("--status-hook", metavar="URL", help="http apps: the call status webhook")
    one.add_argument("--method", choices=("POST", "GET"), help="http apps: the calling hook's method")
    _caller_args(one)
    demo = sub.add_parser("demo", help="serve the bundled demo app and call it")
    demo.add_argument("--clock", choices=("virtual", "real"), default="virtual")
    demo.add_argument("--format", choices=("table", "json"), default="table")
    platform_commands.add_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "call":
        return _call(args)
    if args.command in platform_commands.COMMANDS:
        return platform_commands.run(args)
    return _demo(args)


def _caller_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--speech",
        dest="steps",
        action="append",
        type=lambda s: ("speech", s),
        metavar="TEXT",
        help="the caller says TEXT at the next gather (repeatable, in order)",
    )
    p.add_argument(
        "--dtmf",
        dest="steps",
        action="append",
        type=lambda s: ("dtmf", s),
        metavar="DIGITS",
        help="the caller presses DIGITS at the next gather (repeatable, in order)",
    )
    p.add_argument(
        "--silence",
        dest="steps",
        action="append_const",
        const=("silence", ""),
        help="the caller says nothing at the next gather",
    )
    p.add_argument(
        "--hangup-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the caller hangs up after SECONDS (default: when the app ends the call)",
    )
    p.add_argument("--clock", choices=("virtual", "real"), default="virtual")
    p.add_argument("--format", choices=("table", "json"), default="table")


if __name__ == "__main__":
    sys.exit(main())
