"""``jambonz-lab simulate`` and ``jambonz-lab watch``: the platform sources from the shell.

* ``simulate {kazoo,basix,wazo}`` runs one platform simulator on its own until SIGINT or SIGTERM.
* ``watch {kazoo,basix,wazo} URL`` connects a platform client and prints one line per event.

See :mod:`jambonz_lab.lab.cli` for the options. Threads: nothing prints from the lab's loop
thread; the watched client's rows reach the main thread through a :class:`queue.Queue`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import queue
import re
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import unquote, urlsplit

from .. import loop
from ..exceptions import JambonzLabError
from ..records import RECORD_FIELDS, Record
from . import cli_jambonz
from .cli_serve import listen, stop_on_signals
from .events import EventLog
from .platform_views import PLATFORMS, flat_of, is_control

if TYPE_CHECKING:
    from ..platforms import CallScenario, EventSource, SimServer

__all__ = ["COMMANDS", "add_commands", "run"]

#: the subcommands this module adds
COMMANDS = ("simulate", "watch")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``simulate`` and ``watch`` to the ``jambonz-lab`` parser."""
    simulate = sub.add_parser(
        "simulate", help="run a Kazoo, Basix, Wazo or jambonz (REST API) simulator until Ctrl-C / SIGTERM"
    )
    simulate.add_argument("platform", choices=(*PLATFORMS, "jambonz"))
    simulate.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    simulate.add_argument("--port", type=int, default=0, help="port (default 0: any free one)")
    simulate.add_argument(
        "--calls", type=int, default=0, metavar="N", help="scripted calls to play (default 0)"
    )
    simulate.add_argument(
        "--interval", type=float, default=5.0, metavar="S", help="seconds between two calls (default 5)"
    )
    simulate.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="real seconds per call second: 1 real time (default), 0.1 ten times faster, 0 at once",
    )
    simulate.add_argument("--seed", type=int, default=1, metavar="K", help="call n uses seed K+n (default 1)")
    cli_jambonz.add_options(simulate)
    watch = sub.add_parser("watch", help="print the events of a Kazoo, Basix or Wazo feed as they arrive")
    platforms = watch.add_subparsers(dest="platform", required=True, metavar="{kazoo,basix,wazo}")
    _watch_platform_args(platforms)


def run(args: argparse.Namespace) -> int:
    """Run ``simulate`` or ``watch``; the exit status."""
    return _simulate(args) if args.command == "simulate" else _watch(args)


def _simulate(args: argparse.Namespace) -> int:
    from ..platforms import BasixSimulator, KazooSimulator, WazoSimulator

    if args.platform == "jambonz":
        return cli_jambonz.simulate(args)
    for name in ("calls", "interval", "time_scale"):
        if getattr(args, name) < 0:
            print(f"jambonz-lab: --{name.replace('_', '-')} must be 0 or more", file=sys.stderr)
            return 2
    sims: dict[str, type[SimServer]] = {
        "kazoo": KazooSimulator,
        "basix": BasixSimulator,
        "wazo": WazoSimulator,
    }
    sim = sims[args.platform](args.host, args.port)
    stop = stop_on_signals()
    if not listen(sim.start, args.host, args.port, "gets the simulator's well-known credentials"):
        return 1
    try:
        print(_connect_line(sim), flush=True)
        for n in range(args.calls):
            if stop.is_set():
                break
            scenario = _scenario(args.seed + n, n)
            sim.play(scenario, time_scale=args.time_scale)
            print(f"call {n + 1}/{args.calls}: {_describe(scenario)}", flush=True)
            if n + 1 < args.calls:
                stop.wait(args.interval)
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    print("stopped", flush=True)
    return 0


def _connect_line(sim: SimServer) -> str:
    from ..platforms import BasixSimulator, KazooSimulator, WazoSimulator

    if isinstance(sim, KazooSimulator):
        return (
            f"kazoo simulator: blackhole {sim.ws_url} auth_token={sim.auth_token} "
            f"account_id={sim.account_id} (Crossbar channels at {sim.http_url}/v2)"
        )
    if isinstance(sim, BasixSimulator):
        accounts = " ".join(f"{domain}:{token}" for domain, token in sim.accounts.items())
        return (
            f"basix simulator: ws_cti {sim.ws_url}/basix/api/ws_cti domain:token {accounts} "
            f"(any app_name, e.g. app_name=lab; full_events=true for every channel)"
        )
    if isinstance(sim, WazoSimulator):
        users = " ".join(f"{u.username}/{u.password}" for u in sim.users)
        return f"wazo simulator: {sim.http_url} (websocketd {sim.ws_url}) users {users}"
    raise AssertionError(f"no connect line for {sim!r}")


def _scenario(seed: int, n: int) -> CallScenario:
    """The ``n``-th call of ``simulate --calls``: mostly answered, every third one not (busy or no answer)."""
    from ..platforms import CallScenario

    if n % 3 == 2:
        cause = "USER_BUSY" if (n // 3) % 2 else "NO_ANSWER"
        return CallScenario(seed=seed, caller=f"+1555010{n % 10}", answered=False, hangup_cause=cause)
    return CallScenario(seed=seed, caller=f"+1555010{n % 10}", hangup_by="caller" if n % 2 else "callee")


def _describe(s: CallScenario) -> str:
    outcome = f"answered, talks {s.talk:g} s" if s.answered else f"not answered ({s.cause})"
    return f"{s.caller} → {s.callee} (seed {s.seed}): rings {s.ring:g} s, {outcome}"


# -- watch -------------------------------------------------------------------------------------

#: per platform: the two number columns of a table line, then the other columns worth showing
_TABLE_COLUMNS = {
    "kazoo": (("caller_id_number", "callee_id_number"), ("call_direction", "hangup_cause")),
    "basix": (("calling_number", "called_number"), ("direction", "state")),
    "wazo": (("caller_id_number", "peer_caller_id_number"), ("direction", "status", "reason_code")),
}


#: writes rows exactly as ``jambonz_lab.start(log_path=...)`` does (its own rows stay empty)
_LOG = EventLog()


def _watch(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        print("jambonz-lab: --count must be 1 or more", file=sys.stderr)
        return 2
    if args.timeout is not None and args.timeout <= 0:
        print("jambonz-lab: --timeout must be more than 0 seconds", file=sys.stderr)
        return 2
    rows: queue.Queue[tuple[Any, ...]] = queue.Queue()
    try:
        client, secrets = _client(args, rows.put_nowait)
    except ValueError as exc:
        print(f"jambonz-lab: {exc}", file=sys.stderr)
        return 2
    sink = None
    if args.log is not None:
        try:
            sink = open(args.log, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed below
        except OSError as exc:
            print(f"jambonz-lab: cannot write {args.log}: {_why(exc)}", file=sys.stderr)
            return 1
    stop = stop_on_signals()
    try:
        return _watch_loop(args, client, rows, sink, stop, secrets)
    finally:
        _close_quietly(client)
        if sink is not None:
            while not rows.empty():  # the rows of the close itself
                _LOG.write_jsonl(rows.get_nowait(), sink)
            sink.close()


def _watch_loop(
    args: argparse.Namespace,
    client: EventSource,
    rows: queue.Queue[tuple[Any, ...]],
    sink: TextIO | None,
    stop: threading.Event,
    secrets: tuple[str, ...],
) -> int:
    from ..platforms import SourceState

    started = time.monotonic()
    deadline = started + args.timeout if args.timeout is not None else None
    where = f"{args.platform} at {client.url_for_log}"

    def fail(message: str) -> int:
        print(f"jambonz-lab: {_redact(message, secrets)}", file=sys.stderr, flush=True)
        return 1

    # connect (interruptible; the first attempt is bounded by --timeout, else 15 s)
    limit = min(15.0, args.timeout) if args.timeout is not None else 15.0
    connecting = loop.submit(client.aconnect(limit))  # past the limit it stops and says what it awaited
    while not connecting.done():
        if stop.wait(0.05):
            connecting.cancel()
            return 0
    try:
        connecting.result()
    except concurrent.futures.CancelledError:
        return 0
    except Exception as exc:
        return fail(f"cannot watch {where}: {_why(exc)}")
    print(f"watching {client.url_for_log} ({args.platform})", file=sys.stderr, flush=True)
    if args.format == "table":
        print(f"{'time':<12}  {'source':<6} {'type':<24} {'call id':<36} detail", flush=True)

    seen = 0
    while True:
        if stop.is_set():
            return 0
        try:
            row = rows.get(timeout=0.2)
        except queue.Empty:
            if deadline is not None and time.monotonic() >= deadline:
                if args.count is None and seen:
                    return 0  # --timeout alone: watch for S seconds, fine if anything came
                wanted = f"{args.count} event(s)" if args.count is not None else "any event"
                got = f" (got {seen})" if seen else ""
                return fail(f"timeout: {args.timeout:g} s passed without {wanted} from {where}{got}")
            state, error = loop.run_sync(lambda: (client.state, client.error))
            if state is SourceState.CLOSED and rows.empty():
                why = _why(error) if error is not None else "the socket closed"
                return fail(f"{where} closed for good: {why}")
            continue
        if sink is not None:
            _LOG.write_jsonl(row, sink)
        event = _event(row)
        if event is None:
            continue
        seen += 1
        try:
            print(json.dumps(event, default=str) if args.format == "json" else _table_line(event), flush=True)
        except BrokenPipeError:  # `watch ... | head`: the reader is gone, stop quietly
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more is printed
            return 0
        if args.count is not None and seen >= args.count:
            return 0


def _client(args: argparse.Namespace, record: Record) -> tuple[EventSource, tuple[str, ...]]:
    """The platform client the options describe, and the secrets never to print."""
    from ..platforms import BasixClient, KazooClient, WazoClient

    if args.platform == "kazoo":
        kazoo = KazooClient(
            args.url,
            auth_token=args.token,
            account_id=args.account,
            bindings=args.bindings or ["call.*.*"],
            record=record,
        )
        return kazoo, (args.token,)
    if args.platform == "basix":
        basix = BasixClient(
            args.url,
            app_name=args.app_name,
            domain=args.domain,
            token=args.token,
            full_events=args.full_events,
            ticket=args.ticket,
            record=record,
        )
        in_url = urlsplit(args.url).password  # wss://DOMAIN:TOKEN@host
        return basix, tuple(s for s in (args.token, in_url, unquote(in_url or "")) if s)
    if args.token is None and not (args.username and args.password is not None):
        raise ValueError("watch wazo needs --token, or --username and --password")
    wazo = WazoClient(
        args.url,
        token=args.token,
        username=args.username,
        password=args.password,
        events=args.events or ["*"],
        record=record,
    )
    return wazo, tuple(s for s in (args.token, args.password) if s)


def _event(row: tuple[Any, ...]) -> dict[str, Any] | None:
    """The printed form of an ``in`` row that is an event (None for replies, acks and lab rows)."""
    fields = dict(zip(RECORD_FIELDS, row, strict=True))
    source, kind = str(fields["source"]), str(fields["type"])
    if fields["direction"] != "in" or is_control(source, kind):
        return None
    text = fields["payload"]
    try:
        payload = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        payload = None
    _, flat = flat_of(source, payload)
    out: dict[str, Any] = {"ts": fields["ts"], "source": source, "type": kind, "call_id": fields["call_sid"]}
    for key, value in flat(kind, payload if isinstance(payload, dict) else {}).items():
        if out.get(key) is None:
            out[key] = value
    return out


def _table_line(event: dict[str, Any]) -> str:
    ts = float(event["ts"])
    clock = time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"
    numbers, others = _TABLE_COLUMNS.get(str(event["source"]), ((), ()))
    parts = []
    if numbers and any(event.get(k) is not None for k in numbers):
        parts.append(" → ".join(str(event.get(k) or "?") for k in numbers))
    parts += [f"{k}={event[k]}" for k in others if event.get(k) is not None]
    call_id = event["call_id"] or "-"
    return _printable(
        f"{clock:<12}  {event['source']:<6} {event['type']:<24} {call_id:<36} {' '.join(parts)}"
    )


def _printable(text: str) -> str:
    """``text`` with control characters escaped: caller data must not drive the terminal."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _why(exc: BaseException) -> str:
    """An exception as one line: its message (our exceptions say what to do), with the type for others."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(exc, JambonzLabError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` without the secrets (where they stand alone: a token "tok" leaves "token" be)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "<redacted>", text)
    return text


def _close_quietly(client: EventSource) -> None:
    try:
        client.close(5.0)
    except Exception:  # closing must not turn a clean exit into a traceback
        pass


def _watch_platform_args(platforms: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kazoo = platforms.add_parser("kazoo", help="a Kazoo blackhole websocket")
    kazoo.add_argument("url", help="the blackhole socket, e.g. ws://kazoo.example.com:5555")
    kazoo.add_argument("--token", required=True, help="a Crossbar auth token")
    kazoo.add_argument("--account", required=True, help="the account id the bindings are for")
    kazoo.add_argument(
        "--binding",
        dest="bindings",
        action="append",
        metavar="BINDING",
        help="subscribe BINDING (repeatable; default call.*.*)",
    )
    basix = platforms.add_parser("basix", help="a Basix PBX ws_cti feed")
    basix.add_argument("url", help="ws(s)://HOST[:PORT] (the path defaults to /basix/api/ws_cti)")
    basix.add_argument("--app-name", default="jambonz-lab", help="app_name (default jambonz-lab)")
    basix.add_argument("--domain", help="the PBX domain (HTTP Basic domain:token)")
    basix.add_argument("--token", help="the API token (HTTP Basic domain:token)")
    basix.add_argument(
        "--full-events", action="store_true", help="every channel of the PBX, not only the user's"
    )
    basix.add_argument("--ticket", action="store_true", help="authenticate with a fresh single-use ws ticket")
    wazo = platforms.add_parser("wazo", help="a Wazo stack's websocketd")
    wazo.add_argument("url", help="Wazo's base URL (https://HOST) or its websocketd URL (wss://HOST/...)")
    wazo.add_argument("--token", help="a wazo-auth token with the websocketd ACL")
    wazo.add_argument("--username", help="wazo-auth user (a token is asked for, and renewed)")
    wazo.add_argument("--password", help="wazo-auth password")
    wazo.add_argument(
        "--event",
        dest="events",
        action="append",
        metavar="NAME",
        help="subscribe to event NAME (repeatable; default *: everything the token may see)",
    )
    for p in (kazoo, basix, wazo):
        p.add_argument("--format", choices=("table", "json"), default="table")
        p.add_argument(
            "--log", metavar="FILE", help="append every row to FILE as JSON lines (jambonz_lab.read_log)"
        )
        p.add_argument("--count", type=int, metavar="N", help="exit 0 after N events")
        p.add_argument(
            "--timeout",
            type=float,
            metavar="S",
            help="exit 1 if N events (or, without --count, none at all) came within S seconds",
        )
