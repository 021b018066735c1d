"""Benchmark: jambonz_lab's app server against node-client-ws and jambonz-python-sdk.

A fake jambonz (this process, ``websockets`` asyncio client, subprotocol
``ws.jambonz.org``) drives N concurrent calls against the same reference app
on each server: ``session:new`` → ack with a digits ``gather`` (actionHook
``/hook``), then K ``verb:hook`` round trips (digits ``0``…``K-1``), each
acked with one ``say`` built from the hook's payload (``You pressed {digits}``),
then a 1000 close. Each server runs in its own process on 127.0.0.1, so its
CPU time (user + sys of all its threads) is its own: summed from
``/proc/PID/task/*/schedstat`` (ns), or from ``/proc/PID/stat`` (10 ms ticks)
when a thread exited during the window.

Usage::

    python benchmarks/bench_server.py                 # N=50 calls, K=40 hooks
    python benchmarks/bench_server.py --quick         # N=10, K=10, one repeat
    python benchmarks/bench_server.py --calls 100 --hooks 20 --repeat 5
    python benchmarks/bench_server.py --no-deflate    # do not offer permessage-deflate
    python benchmarks/bench_server.py --profile       # cProfile our server (loop thread)

Servers (``--servers``, comma-separated): ``lab`` (coroutine handlers),
``lab-sync`` (plain-function handlers on the lab's worker threads), ``ncw``
(``@jambonz/node-client-ws`` 0.2.x, installed with npm into
``benchmarks/.peers``; skipped with a reason when node or npm is missing or the
install fails) and ``sdk`` (``jambonz-python-sdk`` 0.4.x).

Each server gets one unmeasured full-size warm-up run, then ``--repeat``
measured runs, round-robin over the servers. Messages per call = 2
(``session:new`` + its ack) + 2 per hook. CPU per message = the server's CPU
time over the measured window (the load plus ``--settle`` seconds, which
outlasts jambonz_lab's 4 s per-hook timers) divided by those messages;
WebSocket handshakes and closes are included. The load generator's own CPU and
the CPU of every other process during the windows are reported too: on a
shared machine the figures are only as good as its quietness.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import platform
import pstats
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from jambonz_lab.protocol.feature import Acked, Command, FeatureProtocol, StrayAck

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
PEERS = HERE / ".peers"
NCW_PACKAGE = "@jambonz/node-client-ws"
NCW_RANGE = "^0.2.0"

SUBPROTOCOL = Subprotocol("ws.jambonz.org")
HOOK = "/hook"
ACK_TIMEOUT = 5.0  # jambonz gives up on an ack after 5 s
OPEN_TIMEOUT = 5.0  # jambonz uses 1.5 s; looser so that a busy box does not fail a run
CLOSE_TIMEOUT = 2.0
START_TIMEOUT = 30.0  # a server process printing its port
STOP_TIMEOUT = 3.0
# After the load, before the last CPU reading: the closes are handled and deferred work runs.
# jambonz_lab arms a 4 s "ack late?" timer per hook (ServerOptions.ack_warning), so the
# window must outlast it or that cost would land in another server's measurement.
SETTLE = 4.5
BUSY_WARNING = 0.25  # cores used by other processes during a run that make it suspect
QUIET_WAIT = 10.0  # seconds to wait for a quiet machine before redoing a run
MAX_STARTUP_LINES = 50  # stdout lines before the port
MAX_SKIPPED_FRAMES = 16  # frames that are not the awaited ack, per await
CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_SERVERS = ("lab", "lab-sync", "ncw", "sdk")
LABELS = {
    "lab": "jambonz_lab (async handlers)",
    "lab-sync": "jambonz_lab (sync handlers)",
    "ncw": "@jambonz/node-client-ws",
    "sdk": "jambonz-python-sdk",
}


class BenchError(Exception):
    """A server misbehaved or could not be started."""


# -- servers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    key: str
    argv: list[str]
    env: dict[str, str] | None = None
    version: str = ""


@dataclass
class Server:
    spec: ServerSpec
    proc: asyncio.subprocess.Process
    port: int
    stderr: TextIO

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/bench"


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (``/proc/PID/stat``).

    Counted in clock ticks (10 ms), dead threads included.
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    return (utime + stime) / CLK_TCK


def thread_cpu_ns(pid: int) -> dict[int, int]:
    """On-CPU nanoseconds per live thread (``/proc/PID/task/TID/schedstat``, field 1)."""
    out: dict[int, int] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out[int(task.name)] = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread exited meanwhile, or no schedstat in this kernel
    return out


def system_busy_seconds() -> float:
    """Non-idle CPU seconds of the whole machine, all CPUs (``/proc/stat``; steal counts)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / CLK_TCK  # minus idle and iowait


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


@dataclass(frozen=True)
class CpuSample:
    ticks: float  # seconds, 10 ms resolution
    threads: dict[int, int]  # ns per live thread

    @classmethod
    def take(cls, pid: int) -> CpuSample:
        return cls(proc_cpu_seconds(pid), thread_cpu_ns(pid))

    def until(self, later: CpuSample) -> tuple[float, bool]:
        """CPU seconds between two samples; True when at ns precision.

        The per-thread sum is exact unless a thread exited in between (its
        time would be lost); then the coarse tick count is used.
        """
        if self.threads and self.threads.keys() <= later.threads.keys():
            ns = sum(v - self.threads.get(tid, 0) for tid, v in later.threads.items())
            return ns / 1e9, True
        return later.ticks - self.ticks, False


def stderr_tail(server_stderr: TextIO, limit: int = 2000) -> str:
    server_stderr.flush()
    server_stderr.seek(0)
    return server_stderr.read()[-limit:]


async def start_server(spec: ServerSpec) -> Server:
    """Start a server process and read the port it prints."""
    err = tempfile.TemporaryFile(mode="w+")
    proc = await asyncio.create_subprocess_exec(
        *spec.argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=err,
        env=spec.env,
        cwd=HERE,
    )
    server = Server(spec, proc, 0, err)
    try:
        assert proc.stdout is not None
        server.port = await asyncio.wait_for(read_port(proc.stdout), START_TIMEOUT)
    except (TimeoutError, BenchError) as exc:
        await stop_server(server)
        raise BenchError(f"{spec.key} did not start ({exc!r}): {stderr_tail(err)}") from None
    return server


async def read_port(stdout: asyncio.StreamReader) -> int:
    """The first stdout line that is a port number (libraries may print before it)."""
    for _ in range(MAX_STARTUP_LINES):
        line = (await stdout.readline()).decode().strip()
        if line.isdigit():
            return int(line)
        if not line and stdout.at_eof():
            break
    raise BenchError("no port printed")


async def stop_server(server: Server) -> int | None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT; returns the exit code."""
    proc = server.proc
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
    return proc.returncode


def report_stderr(server: Server, lines: int = 5) -> None:
    """Servers should stay quiet under this load: show what one wrote to stderr."""
    text = stderr_tail(server.stderr, 100_000).strip()
    if text:
        tail = "\n    ".join(text.splitlines()[-lines:])
        print(f"{server.spec.key} wrote to stderr; last lines:\n    {tail}", file=sys.stderr)


def kill_quietly(servers: Sequence[Server]) -> None:
    """Last resort at exit: SIGKILL any server still running."""
    for server in servers:
        if server.proc.returncode is None:
            try:
                server.proc.kill()
            except ProcessLookupError:
                pass


# -- the node peer -----------------------------------------------------------------------


def ncw_version() -> str | None:
    manifest = PEERS / "node_modules" / NCW_PACKAGE / "package.json"
    if not manifest.is_file():
        return None
    version = str(json.loads(manifest.read_text()).get("version", ""))
    return version if version.startswith("0.2.") else None


def ensure_ncw() -> tuple[str | None, str]:
    """Install node-client-ws 0.2.x into benchmarks/.peers; (version, skip reason)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None, "node or npm not found on PATH"
    if (version := ncw_version()) is not None:
        return version, ""
    PEERS.mkdir(exist_ok=True)
    manifest = PEERS / "package.json"
    if not manifest.exists():
        manifest.write_text('{"name": "bench-peers", "private": true}\n')
    cmd = ["npm", "install", "--no-audit", "--no-fund", "--silent", f"{NCW_PACKAGE}@{NCW_RANGE}"]
    try:
        done = subprocess.run(cmd, cwd=PEERS, capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"npm install failed: {exc}"
    if done.returncode != 0 or (version := ncw_version()) is None:
        return None, f"npm install failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
    return version, ""


def node_version() -> str:
    try:
        return run_text(["node", "--version"])
    except (OSError, subprocess.TimeoutExpired):
        return "?"


# -- what jambonz sends ----------------------------------------------------------------------


def new_msgid() -> str:
    """22 url-safe characters, the length of jambonz's short-uuid msgids."""
    return secrets.token_urlsafe(16)[:22]


def call_info(call_sid: str, n: int) -> dict[str, Any]:
    """The toJSON() call fields jambonz puts in hook payloads (protocol doc §2.6)."""
    return {
        "call_sid": call_sid,
        "direction": "inbound",
        "from": f"+1415555{n % 10000:04d}",
        "to": "+16175550199",
        "call_id": f"{uuid.uuid4()}",
        "sbc_callid": f"{secrets.token_hex(8)}@203.0.113.10",
        "sip_status": 200,
        "sip_reason": "OK",
        "call_status": "in-progress",
        "account_sid": "c0a3e7d2-5b1f-4e8a-9c6d-2f7b8a9e0d11",
        "trace_id": secrets.token_hex(16),
        "application_sid": "4b7c9d2e-1f3a-4c5b-8d6e-7f8a9b0c1d2e",
        "fs_sip_address": "10.0.1.30:5070",
        "originating_sip_ip": "198.51.100.7",
        "originating_sip_trunk_name": "AcmeCarrier",
        "fs_public_ip": "203.0.113.30",
    }


def sip_invite(info: dict[str, Any]) -> dict[str, Any]:
    """A serialized INVITE as in ``session:new`` ``data.sip`` (protocol doc §2.2)."""
    sdp = "v=0\r\no=- 4711 4711 IN IP4 10.0.1.20\r\ns=-\r\nc=IN IP4 10.0.1.20\r\nt=0 0\r\n"
    sdp += "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    uri = f"sip:{info['to']}@10.0.1.30:5070"
    headers = {
        "via": "SIP/2.0/UDP 10.0.1.20:5060;rport=5060;branch=z9hG4bKQ3a7Xy;received=10.0.1.20",
        "max-forwards": "70",
        "from": f'"Caller" <sip:{info["from"]}@203.0.113.10>;tag=8Ka1pQ',
        "to": f"<sip:{info['to']}@203.0.113.20>",
        "call-id": info["call_id"],
        "cseq": "1001 INVITE",
        "contact": "<sip:10.0.1.20:5060>",
        "content-type": "application/sdp",
        "content-length": str(len(sdp)),
        "X-Account-Sid": info["account_sid"],
        "X-CID": info["sbc_callid"],
        "X-Forwarded-For": "198.51.100.7",
        "X-Originating-Carrier": "AcmeCarrier",
        "X-Application-Sid": info["application_sid"],
    }
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return {
        "headers": headers,
        "raw": f"INVITE {uri} SIP/2.0\r\n{head}\r\n{sdp}",
        "body": sdp,
        "method": "INVITE",
        "version": "2.0",
        "uri": uri,
        "payload": [{"type": "application/sdp", "content": sdp}],
    }


def session_new(info: dict[str, Any], msgid: str) -> str:
    data: dict[str, Any] = {"sip": sip_invite(info), **info}
    data.update(
        sip_status=100,
        sip_reason="Trying",
        call_status="trying",
        caller_name="Caller",
        has_recording=False,
        local_sip_address="10.0.1.30:5070",
        service_provider_sid="2708b1b3-2736-40ea-b502-c53d8396247f",
        defaults={
            "synthesizer": {"vendor": "google", "language": "en-US", "voice": "en-US-Standard-C"},
            "recognizer": {"vendor": "google", "language": "en-US"},
        },
    )
    frame = {"type": "session:new", "msgid": msgid, "call_sid": info["call_sid"], "data": data}
    return json.dumps(frame)


def verb_hook(info: dict[str, Any], msgid: str, digits: str) -> str:
    data = {"reason": "dtmfDetected", "digits": digits, **info}
    frame = {"type": "verb:hook", "msgid": msgid, "call_sid": info["call_sid"], "hook": HOOK}
    return json.dumps({**frame, "data": data})


# -- one call ----------------------------------------------------------------------------------


@dataclass
class CallResult:
    rtts: list[float] = field(default_factory=list)  # seconds, one per hook
    messages: int = 0  # frames both ways that completed a round trip
    extensions: tuple[str, ...] = ()


async def await_ack(ws: ClientConnection, reader: FeatureProtocol, msgid: str) -> dict[str, Any]:
    """The ack of ``msgid``, read as jambonz reads it; commands are skipped, a bounded number."""
    for _ in range(MAX_SKIPPED_FRAMES):
        raw = await asyncio.wait_for(ws.recv(), ACK_TIMEOUT)
        (event,) = reader.receive(raw)
        if isinstance(event, Acked | StrayAck) and event.msgid == msgid:
            return dict(event.message)
        if not isinstance(event, Command):
            raise BenchError(f"jambonz would refuse this frame ({event}): {str(raw)[:200]}")
    raise BenchError(f"no ack for {msgid} within {MAX_SKIPPED_FRAMES} frames")


def verbs_of(ack: dict[str, Any]) -> list[str]:
    data = ack.get("data")
    if not isinstance(data, list):
        return []
    return [str(v.get("verb")) for v in data if isinstance(v, dict)]


def check_opening_ack(ack: dict[str, Any]) -> None:
    data = ack.get("data") or [{}]
    if verbs_of(ack) != ["gather"] or data[0].get("actionHook") != HOOK:
        raise BenchError(f"session:new ack is not a gather to {HOOK}: {ack}")


def check_hook_ack(ack: dict[str, Any], digits: str) -> None:
    """The reply is built from the hook's payload: ``say "You pressed {digits}"``."""
    data = ack.get("data") or [{}]
    if verbs_of(ack) != ["say"] or data[0].get("text") != f"You pressed {digits}":
        raise BenchError(f"hook ack is not say 'You pressed {digits}': {ack}")


async def run_call(url: str, n: int, hooks: int, deflate: bool) -> CallResult:
    """One fake call: open, K hook round trips, close 1000."""
    result = CallResult()
    reader = FeatureProtocol()  # the frames jambonz builds here are the benchmark's own
    info = call_info(str(uuid.uuid4()), n)
    async with connect(
        url,
        subprotocols=[SUBPROTOCOL],
        compression="deflate" if deflate else None,
        open_timeout=OPEN_TIMEOUT,
        close_timeout=CLOSE_TIMEOUT,
        ping_interval=None,
        proxy=None,
        user_agent_header="jambonz",
    ) as ws:
        if ws.subprotocol != SUBPROTOCOL:
            raise BenchError(f"server selected subprotocol {ws.subprotocol!r}")
        result.extensions = tuple(e.name for e in ws.protocol.extensions)
        msgid = new_msgid()
        await ws.send(session_new(info, msgid))
        check_opening_ack(await await_ack(ws, reader, msgid))
        result.messages += 2
        for k in range(hooks):
            msgid = new_msgid()
            digits = str(k)  # a new text each time: no reply is served from a cache
            t0 = time.perf_counter()
            await ws.send(verb_hook(info, msgid, digits))
            ack = await await_ack(ws, reader, msgid)
            result.rtts.append(time.perf_counter() - t0)
            check_hook_ack(ack, digits)
            result.messages += 2
        await ws.close(code=1000)
    return result


# -- one load run ------------------------------------------------------------------------------


@dataclass
class RunResult:
    calls: int
    hooks: int  # completed hook round trips
    failures: list[str]
    wall: float
    server_cpu: float
    cpu_precise: bool  # from per-thread schedstat (ns), else from stat ticks (10 ms)
    background_cpu: float  # CPU seconds of every other process in the window
    window: float  # seconds: the load plus the settle
    rss_mb: float  # the server's resident memory at the end
    loadgen_cpu: float
    messages: int
    rtts: list[float]
    extensions: set[str]


def load_timeout(calls: int, hooks: int) -> float:
    """A bound on one load run: generous, but finite."""
    return 30.0 + ACK_TIMEOUT * 2 + 0.02 * calls * hooks


async def run_load(
    server: Server, calls: int, hooks: int, deflate: bool, settle: float = SETTLE
) -> RunResult:
    """N concurrent calls against one server; measures its CPU and wall time."""
    pid = server.proc.pid
    cpu0, gen0, busy0 = CpuSample.take(pid), time.process_time(), system_busy_seconds()
    t0 = time.perf_counter()
    tasks = [run_call(server.url, n, hooks, deflate) for n in range(calls)]
    limit = load_timeout(calls, hooks)
    try:
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), limit)
    except TimeoutError:
        outcomes = [BenchError(f"the load run did not finish within {limit:.0f} s")] * calls
    wall = time.perf_counter() - t0
    gen = time.process_time() - gen0
    await asyncio.sleep(settle)
    cpu, precise = cpu0.until(CpuSample.take(pid))
    busy = system_busy_seconds() - busy0
    window = time.perf_counter() - t0
    background = max(0.0, busy - cpu - (time.process_time() - gen0))
    ok = [o for o in outcomes if isinstance(o, CallResult)]
    failures = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
    return RunResult(
        calls=calls,
        hooks=sum(len(r.rtts) for r in ok),
        failures=failures,
        wall=wall,
        server_cpu=cpu,
        cpu_precise=precise,
        background_cpu=background,
        window=window,
        rss_mb=rss_mb(pid),
        loadgen_cpu=gen,
        messages=sum(r.messages for r in ok),
        rtts=[t for r in ok for t in r.rtts],
        extensions={e for r in ok for e in r.extensions},
    )


# -- aggregation and report --------------------------------------------------------------------


@dataclass
class Row:
    key: str
    runs: list[RunResult] = field(default_factory=list)
    skipped: str = ""

    def total(self, attr: str) -> float:
        return float(sum(getattr(r, attr) for r in self.runs))

    @property
    def failures(self) -> list[str]:
        return [f for r in self.runs for f in r.failures]

    @property
    def hooks_per_s(self) -> float:
        wall = self.total("wall")
        return self.total("hooks") / wall if wall else 0.0

    @property
    def cpu_us_per_msg(self) -> float:
        messages = self.total("messages")
        return self.total("server_cpu") * 1e6 / messages if messages else math.nan

    def cpu_per_msg_each(self) -> list[float]:
        return [r.server_cpu * 1e6 / r.messages for r in self.runs if r.messages]

    def percentile_ms(self, q: float) -> float:
        rtts = sorted(t for r in self.runs for t in r.rtts)
        if not rtts:
            return math.nan
        return rtts[max(0, math.ceil(q * len(rtts)) - 1)] * 1e3


def fmt(value: float, digits: int = 1) -> str:
    return "—" if math.isnan(value) else f"{value:,.{digits}f}"


def ratio(value: float, base: float) -> str:
    if math.isnan(value) or math.isnan(base) or not base:
        return "—"
    return f"{value / base:.2f}×"


def cell_wall(row: Row, base: Row) -> str:
    return fmt(row.total("wall"), 2)


def cell_cpu(row: Row, base: Row) -> str:
    each = ", ".join(f"{v:.0f}" for v in row.cpu_per_msg_each())
    return f"{fmt(row.cpu_us_per_msg, 0)} ({each})"


def cell_deflate(row: Row, base: Row) -> str:
    return "yes" if any("permessage-deflate" in r.extensions for r in row.runs) else "no"


def cell_loadgen(row: Row, base: Row) -> str:
    wall = row.total("wall")
    return f"{100 * row.total('loadgen_cpu') / wall:.0f}%" if wall else "—"


Cell = Callable[[Row, Row], str]
COLUMNS: list[tuple[str, Cell]] = [
    ("calls", lambda r, b: f"{int(r.total('calls'))}"),
    ("hooks", lambda r, b: f"{int(r.total('hooks'))}"),
    ("failed calls", lambda r, b: f"{len(r.failures)}"),
    ("wall s", cell_wall),
    ("hooks/s", lambda r, b: fmt(r.hooks_per_s, 0)),
    ("server CPU µs/msg (per run)", cell_cpu),
    ("p50 ms", lambda r, b: fmt(r.percentile_ms(0.50), 2)),
    ("p99 ms", lambda r, b: fmt(r.percentile_ms(0.99), 2)),
    ("CPU/msg vs lab", lambda r, b: ratio(r.cpu_us_per_msg, b.cpu_us_per_msg)),
    ("hooks/s vs lab", lambda r, b: ratio(r.hooks_per_s, b.hooks_per_s)),
    ("server RSS MB", lambda r, b: fmt(r.runs[-1].rss_mb, 0) if r.runs else "—"),
    ("deflate", cell_deflate),
    ("loadgen CPU", cell_loadgen),
]


def table_row(row: Row, base: Row) -> str:
    if row.skipped:
        return f"| {LABELS[row.key]} | skipped: {row.skipped} |" + " |" * (len(COLUMNS) - 1)
    return "| " + " | ".join([LABELS[row.key], *(cell(row, base) for _, cell in COLUMNS)]) + " |"


def render_table(rows: list[Row]) -> str:
    base = next((r for r in rows if r.key == "lab" and r.runs), rows[0])
    head = "| server | " + " | ".join(name for name, _ in COLUMNS) + " |"
    align = "|---|" + "".join("---|" if name == "deflate" else "---:|" for name, _ in COLUMNS)
    return "\n".join([head, align, *(table_row(r, base) for r in rows)])


def background_note(rows: list[Row]) -> str:
    """CPU used by other processes during the measured windows, in cores."""
    runs = [run for row in rows for run in row.runs]
    if not runs:
        return ""
    cores = [run.background_cpu / run.window for run in runs if run.window > 0]
    mean, worst = sum(cores) / len(cores), max(cores)
    note = f"other processes used {mean:.2f} cores on average (worst run {worst:.2f})"
    if worst > BUSY_WARNING:
        note += " — WARNING: the machine was not quiet; CPU figures are less reliable"
    return note


def git_state() -> str:
    """The repository's commit, and whether jambonz_lab/ differs from it."""
    repo = ["git", "-C", str(HERE.parent)]
    try:
        head = run_text([*repo, "rev-parse", "--short", "HEAD"])
        dirty = run_text([*repo, "status", "--porcelain", "--", "jambonz_lab"])
        diff = run_text([*repo, "diff", "HEAD", "--", "jambonz_lab"]) if dirty else ""
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    if not dirty:
        return head or "?"
    digest = hashlib.sha1(diff.encode()).hexdigest()[:8]
    return f"{head or '?'} + uncommitted changes in jambonz_lab/, diff sha1 {digest}"


def run_text(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()


def versions(ncw: str | None) -> dict[str, str]:
    def dist(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    out = {
        "python": platform.python_version(),
        "jambonz_lab": f"{dist('jambonz-lab')} (git {git_state()})",
        "jambonz-python-sdk": dist("jambonz-python-sdk"),
        "aiohttp": dist("aiohttp"),
        "websockets (load generator)": dist("websockets"),
    }
    if ncw:
        out["node"] = node_version()
        out[NCW_PACKAGE] = ncw
    return out


def print_report(args: argparse.Namespace, rows: list[Row], ncw: str | None) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{when} — {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(", ".join(f"{k} {v}" for k, v in versions(ncw).items()))
    print(
        f"{args.calls} concurrent calls × {args.hooks} hooks, {args.repeat} measured run(s) per "
        f"server (round-robin), deflate offered: {'no' if args.no_deflate else 'yes'}, "
        f"settle {args.settle:g} s\n"
    )
    print(render_table(rows))
    if note := background_note(rows):
        print(f"  {note}")
    coarse = [r.key for r in rows if any(not run.cpu_precise for run in r.runs)]
    if coarse:
        print(f"  CPU of {', '.join(coarse)} from /proc/PID/stat ticks (10 ms) in some runs")
    for row in rows:
        for failure in sorted(set(row.failures))[:5]:
            print(f"  {row.key} failure: {failure}")


# -- orchestration -----------------------------------------------------------------------------


def server_specs(keys: list[str], ncw: str | None, profile: str | None) -> dict[str, ServerSpec]:
    py = sys.executable
    lab = [py, str(APPS / "lab_app.py")]
    specs = {
        "lab": ServerSpec("lab", lab + (["--profile", profile] if profile else [])),
        "lab-sync": ServerSpec("lab-sync", [*lab, "--sync"]),
        "sdk": ServerSpec("sdk", [py, str(APPS / "sdk_app.py")]),
    }
    if ncw:
        env = {**os.environ, "NODE_PATH": str(PEERS / "node_modules")}
        specs["ncw"] = ServerSpec("ncw", ["node", str(APPS / "ncw_app.js")], env, ncw)
    return {k: v for k, v in specs.items() if k in keys}


async def warm_up(server: Server, args: argparse.Namespace) -> None:
    """One full-size unmeasured run: imports, lazy model loading, JIT, thread pool start-up."""
    run = await run_load(server, args.calls, args.hooks, not args.no_deflate, args.settle)
    if run.failures:
        raise BenchError(f"{server.spec.key} failed its warm-up: {run.failures[0]}")


async def start_all(specs: dict[str, ServerSpec], rows: dict[str, Row]) -> list[Server]:
    servers: list[Server] = []
    for key, spec in specs.items():
        try:
            servers.append(await start_server(spec))
        except (BenchError, OSError) as exc:
            rows[key].skipped = str(exc)[:200]
            print(f"skipping {key}: {exc}", file=sys.stderr)
    return servers


async def measure_all(args: argparse.Namespace, servers: list[Server], rows: dict[str, Row]) -> None:
    live: list[Server] = []
    for server in servers:
        try:
            await warm_up(server, args)
            live.append(server)
        except (BenchError, TimeoutError) as exc:
            rows[server.spec.key].skipped = str(exc)[:200]
            print(f"skipping {server.spec.key}: {exc}", file=sys.stderr)
    retries = [args.busy_retries]  # shared budget, so that a busy machine cannot stall the run
    for r in range(args.repeat):
        for server in list(live):
            try:
                run = await measured_run(args, server, retries)
            except OSError as exc:  # the server process died: /proc/PID is gone
                rows[server.spec.key].skipped = f"died during run {r + 1}: {exc}"[:200]
                live.remove(server)
                continue
            rows[server.spec.key].runs.append(run)
            print(
                f"run {r + 1}/{args.repeat} {server.spec.key:8s} {run.hooks} hooks "
                f"in {run.wall:.2f} s, server CPU {run.server_cpu:.2f} s, "
                f"{len(run.failures)} failed call(s), other processes "
                f"{run.background_cpu / run.window:.2f} cores",
                file=sys.stderr,
            )


async def measured_run(args: argparse.Namespace, server: Server, retries: list[int]) -> RunResult:
    """One measured run; redone (from a shared budget) while other processes were busy."""
    while True:
        run = await run_load(server, args.calls, args.hooks, not args.no_deflate, args.settle)
        busy = run.background_cpu / run.window if run.window else 0.0
        if busy <= BUSY_WARNING or retries[0] <= 0:
            return run
        retries[0] -= 1
        print(f"  {server.spec.key}: redoing a run, other processes used {busy:.2f} cores", file=sys.stderr)
        await wait_quiet(QUIET_WAIT)


async def wait_quiet(limit: float) -> None:
    """Wait (at most ``limit`` s) until the machine, our idle servers included, is quiet."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        busy0 = system_busy_seconds()
        await asyncio.sleep(1.0)
        if system_busy_seconds() - busy0 <= BUSY_WARNING:
            return


async def bench(args: argparse.Namespace, keys: list[str], ncw: str | None) -> list[Row]:
    rows = {k: Row(k) for k in keys}
    if "ncw" in rows and ncw is None:
        rows["ncw"].skipped = args.ncw_skip
    servers: list[Server] = []
    try:
        servers = await start_all(server_specs(keys, ncw, args.profile_path), rows)
        await measure_all(args, servers, rows)
    finally:
        for server in servers:
            try:
                await stop_server(server)
            except (TimeoutError, ProcessLookupError):
                pass
        kill_quietly(servers)
        for server in servers:
            report_stderr(server)
            server.stderr.close()
    return [rows[k] for k in keys]


def print_profile(path: str, top: int = 15) -> None:
    if not Path(path).is_file():
        print(f"no profile written to {path}", file=sys.stderr)
        return
    stats = pstats.Stats(path)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


# -- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=None, help="concurrent calls N (50)")
    parser.add_argument("--hooks", type=int, default=None, help="verb:hook round trips per call K (40)")
    parser.add_argument("--repeat", type=int, default=None, help="measured runs per server (5)")
    parser.add_argument("--quick", action="store_true", help="N=10, K=10, one run")
    parser.add_argument("--servers", default=",".join(ALL_SERVERS), help="comma-separated subset")
    parser.add_argument("--no-deflate", action="store_true", help="do not offer permessage-deflate")
    parser.add_argument(
        "--busy-retries",
        type=int,
        default=4,
        help="measured runs that may be redone because other processes were busy (4)",
    )
    parser.add_argument(
        "--settle", type=float, default=None, help=f"seconds after each load, CPU still counted ({SETTLE})"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the lab server only")
    args = parser.parse_args(argv)
    quick = args.quick
    args.calls = args.calls or (10 if quick else 50)
    args.hooks = args.hooks or (10 if quick else 40)
    args.repeat = args.repeat or (1 if quick else 5)
    args.settle = SETTLE if args.settle is None else max(0.0, args.settle)
    if min(args.calls, args.hooks, args.repeat) < 1:
        parser.error("--calls, --hooks and --repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    keys = [k.strip() for k in args.servers.split(",") if k.strip()]
    if unknown := set(keys) - set(ALL_SERVERS):
        print(f"unknown server(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    args.profile_path = None
    if args.profile:
        keys = ["lab"]
        args.profile_path = str(Path(tempfile.gettempdir()) / f"bench_lab_{os.getpid()}.prof")
    ncw, args.ncw_skip = ensure_ncw() if "ncw" in keys else (None, "")
    if "ncw" in keys and ncw is None:
        print(f"skipping ncw: {args.ncw_skip}", file=sys.stderr)
    rows = asyncio.run(bench(args, keys, ncw))
    print_report(args, rows, ncw)
    if args.profile_path:
        print("\n(profiling inflates CPU; do not compare this row with unprofiled runs)")
        print_profile(args.profile_path)
    return 1 if any(r.failures for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
