"""sim.load's calls per second from 1 process, 2 processes and a 2-worker Dask LocalCluster.

The app under test runs in a process of its own (``jambonz-lab serve examples/hello.py``), so the
simulator's shards compete with it for the machine's cores, not for its loop. Each mode runs
``--repeat`` times, round-robin (so drift in the machine's load hits all of them alike), after one
unmeasured warm-up each (the forkserver's start, the Dask workers' imports). Calls per second are
end to end: the shards' start, the calls, the results back in this process.

Besides calls/s the table shows the CPU seconds the app process used per 1,000 calls (from /proc)
and the load average (os.getloadavg) before each run: on a shared machine other people's work is
part of every figure.

Run: python benchmarks/bench_load.py [--calls N] [--concurrency C] [--repeat R] [--no-dask]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from jambonz_lab import sim

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_app(port: int) -> subprocess.Popen[bytes]:
    """``jambonz-lab serve examples/hello.py`` on ``port``; returns once it accepts connections."""
    app = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jambonz_lab.lab.cli",
            "serve",
            str(ROOT / "examples/hello.py"),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return app
        except OSError:
            time.sleep(0.1)
    app.kill()
    raise SystemExit("the app did not start listening within 30 s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(url: str, calls: int, concurrency: int, mode: str, client: Any) -> list[sim.CallResult]:
    if mode == "dask":
        return sim.load(url, calls=calls, concurrency=concurrency, client=client, progress=False)
    return sim.load(url, calls=calls, concurrency=concurrency, processes=int(mode[0]), progress=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster row")
    args = ap.parse_args()

    port = free_port()
    app = start_app(port)
    url = f"ws://127.0.0.1:{port}/hello"
    modes = ["1 process", "2 processes"]
    client: Any = None
    cluster: Any = None
    if not args.no_dask:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            print("dask.distributed is not installed (pip install 'jambonz-lab[scale]'): no Dask row")
        else:
            cluster = LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0")
            client = Client(cluster)
            modes.append("dask")
    walls: dict[str, list[float]] = {m: [] for m in modes}
    app_cpu: dict[str, list[float]] = {m: [] for m in modes}
    loads: dict[str, list[float]] = {m: [] for m in modes}
    sim_cpu: list[float] = []  # this process's CPU in the 1-process runs: the simulator's
    failed = 0
    try:
        for mode in modes:  # warm-up: the forkserver, the workers' imports, the app's first calls
            run(url, min(200, args.calls), args.concurrency, mode, client)
        for _ in range(args.repeat):
            for mode in modes:
                loads[mode].append(os.getloadavg()[0])
                cpu0, t0, own0 = cpu_seconds(app.pid), time.perf_counter(), time.process_time()
                results = run(url, args.calls, args.concurrency, mode, client)
                walls[mode].append(time.perf_counter() - t0)
                if mode == modes[0]:
                    sim_cpu.append(time.process_time() - own0)
                app_cpu[mode].append(cpu_seconds(app.pid) - cpu0)
                failed += sum(not r.ok for r in results) + args.calls - len(results)
    finally:
        if client is not None:
            client.close()
            cluster.close()
        app.terminate()
        app.wait(10)

    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus; "
        f"{args.calls} calls of examples/hello.py, concurrency {args.concurrency}, {args.repeat} runs each"
    )
    print(
        f"{'mode':<12} {'calls/s (median)':>17} {'min..max':>13} {'ratio':>6} "
        f"{'app cpu s/1k':>13} {'load avg':>9}"
    )
    base = args.calls / statistics.median(walls[modes[0]])
    for mode in modes:
        rates = [args.calls / w for w in walls[mode]]
        rate = statistics.median(rates)
        per_k = 1000 * statistics.median(app_cpu[mode]) / args.calls
        print(
            f"{mode:<12} {rate:>17.0f} {min(rates):>6.0f}..{max(rates):<6.0f} {rate / base:>6.2f} "
            f"{per_k:>13.2f} {statistics.mean(loads[mode]):>9.2f}"
        )
    # what the cores allow, whatever else runs: X calls/s needs X*sim/K <= 1 per shard process,
    # X*app <= 1 (the app's one loop) and X*(sim+app) <= cores
    sim_s, app_s = statistics.median(sim_cpu) / args.calls, statistics.median(app_cpu[modes[0]]) / args.calls
    cores = os.cpu_count() or 1

    def bound(k: int) -> float:
        return min(k / sim_s, 1 / app_s, cores / (sim_s + app_s))

    print(
        f"CPU per call: simulator {1000 * sim_s:.2f} ms, app {1000 * app_s:.2f} ms; on {cores} idle cores "
        f"2 processes could reach at most {bound(2):.0f} calls/s, {bound(2) / bound(1):.2f}x of 1 process"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; calls not ok: {failed}")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
