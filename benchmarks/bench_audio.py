"""Benchmark: concurrent listen/stream audio sockets received in real time by one lab (``lab.audio``).

The senders are jambonz's side (FreeSWITCH mod_audio_fork as ``listen.js`` drives it): one
process of its own (multiprocessing, spawn) with a raw ``websockets`` client per stream,
subprotocol ``audio.drachtio.org``, one metadata text frame, then one binary L16 frame every
20 ms paced at real time (each stream at its own random phase within the 20 ms). The lab runs
in this process, as a notebook's would.

Each frame carries, in its first 16 bytes, its scheduled send time and the time it was really
sent (``time.monotonic()``, one clock for both processes on Linux); the rest is a tone. The lab's
``AudioDriver.receive_audio`` is wrapped to stamp the time each frame was handled (after it was
decoded and buffered), so per frame:

* **lag** = handled − scheduled: what a listener sees (sender lateness + kernel + the lab);
* **added lag** = handled − really sent: what the lab (and the loopback socket) adds.

**CPU per frame** = this process's CPU time (all threads: the lab's loop and the rest) over the
measured window divided by the frames handled in it. The first ``--warm`` seconds of each run
are not measured. The wrapper's own cost (a list append and a clock read, ~0.3 µs) is included.

Usage::

    python benchmarks/bench_audio.py                       # 50, 100, 200 streams; 8k mono and 16k stereo
    python benchmarks/bench_audio.py --streams 200 --formats 8k-mono --seconds 20
    python benchmarks/bench_audio.py --profile             # cProfile of the lab's loop thread, top functions

Nothing is asserted; it prints a table (and the machine's load: os.getloadavg()).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import math
import multiprocessing as mp
import os
import pstats
import random
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMATS = {"8k-mono": (8000, 1), "16k-stereo": (16000, 2)}
FRAME = 0.02
HEADER = struct.Struct("<dd")  # scheduled, sent


# -- the senders (the child process) ---------------------------------------------------------


def sender_main(url: str, n: int, rate: int, channels: int, seconds: float, out: Any) -> None:
    """Run ``n`` paced streams for ``seconds``; report ("ready", t0) then ("done", stats)."""
    asyncio.run(_senders(url, n, rate, channels, seconds, out))


async def _senders(url: str, n: int, rate: int, channels: int, seconds: float, out: Any) -> None:
    import websockets
    from websockets.typing import Subprotocol

    samples = rate // 50
    t = np.arange(samples * 50) / rate
    tone = np.round(np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
    pcm = np.repeat(tone, channels).tobytes()  # one second, interleaved
    frame_bytes = samples * channels * 2
    socks = []
    for start in range(0, n, 50):  # connect in batches: a burst of 200 handshakes is not the point
        batch = [
            websockets.connect(url, subprotocols=[Subprotocol("audio.drachtio.org")], compression=None)
            for _ in range(start, min(n, start + 50))
        ]
        socks += await asyncio.gather(*batch)
    for i, ws in enumerate(socks):
        mix = "stereo" if channels == 2 else "mono"
        await ws.send(json.dumps({"sampleRate": rate, "mixType": mix, "callSid": f"bench-{i}"}))
    t0 = time.monotonic() + 0.5
    out.put(("ready", t0))
    frames = int(round(seconds / FRAME))
    late: list[float] = []
    rng = random.Random(7)

    async def one(ws: Any, phase: float) -> None:
        for k in range(frames):
            sched = t0 + phase + k * FRAME
            delay = sched - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = time.monotonic()
            late.append(sent - sched)
            offset = (k % 50) * frame_bytes
            body = pcm[offset + HEADER.size : offset + frame_bytes]
            await ws.send(HEADER.pack(sched, sent) + body)
        await ws.close()

    cpu0 = time.process_time()
    await asyncio.gather(*(one(ws, rng.random() * FRAME) for ws in socks))
    cpu = time.process_time() - cpu0
    arr = np.array(late)
    out.put(
        (
            "done",
            {
                "frames": len(late),
                "late_p50": float(np.percentile(arr, 50)),
                "late_p99": float(np.percentile(arr, 99)),
                "cpu": cpu,
            },
        )
    )


# -- the lab (this process) ------------------------------------------------------------------


#: when each frame was handled, and its first 16 bytes (two lists: floats and bytes are not tracked
#: by the garbage collector, so the bench adds no GC work of its own)
TIMES: list[float] = []
HEADS: list[bytes] = []


def patch_receiver() -> None:
    """Stamp each frame when the lab has handled it (decoded and buffered)."""
    from jambonz_lab.net.audio import AudioDriver

    original = AudioDriver.receive_audio
    clock = time.monotonic
    times, heads = TIMES.append, HEADS.append

    def timed(self: AudioDriver, data: bytes) -> None:
        original(self, data)
        times(clock())
        heads(data[:16])

    AudioDriver.receive_audio = timed  # type: ignore[method-assign]


@dataclass
class Run:
    fmt: str
    streams: int
    frames: int
    expected: int
    lag_p50: float
    lag_p99: float
    added_p50: float
    added_p99: float
    cpu_us: float
    sender_late_p99: float
    sender_cpu: float
    load: tuple[float, float, float]


def run_once(lab: Any, fmt: str, n: int, seconds: float, warm: float, profile: bool) -> tuple[Run, str]:
    rate, channels = FORMATS[fmt]
    TIMES.clear()
    HEADS.clear()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=sender_main, args=(lab.url + "/audio", n, rate, channels, warm + seconds, q))
    proc.start()
    kind, t0 = q.get(timeout=60)
    assert kind == "ready"
    w0, w1 = t0 + warm, t0 + warm + seconds
    time.sleep(max(0.0, w0 - time.monotonic()))
    prof = start_profile(lab) if profile else None
    cpu0 = time.process_time()
    time.sleep(max(0.0, w1 - time.monotonic()))
    cpu1 = time.process_time()
    report = stop_profile(lab, prof) if prof is not None else ""
    kind, stats = q.get(timeout=120)
    proc.join(30)
    time.sleep(0.5)  # the last frames and the closes
    recv = np.array(TIMES)
    heads = np.frombuffer(b"".join(HEADS), dtype="<f8").reshape(-1, 2)
    sched, sent = heads[:, 0], heads[:, 1]
    inside = (sched >= w0) & (sched < w1)
    handled = (recv >= w0) & (recv < w1)
    lag = recv[inside] - sched[inside]
    added = recv[inside] - sent[inside]
    frames_cpu = int(handled.sum())
    return (
        Run(
            fmt,
            n,
            int(inside.sum()),
            int(round(n * seconds / FRAME)),
            float(np.percentile(lag, 50)) if lag.size else math.nan,
            float(np.percentile(lag, 99)) if lag.size else math.nan,
            float(np.percentile(added, 50)) if added.size else math.nan,
            float(np.percentile(added, 99)) if added.size else math.nan,
            (cpu1 - cpu0) / max(1, frames_cpu) * 1e6,
            stats["late_p99"],
            stats["cpu"] / (warm + seconds),
            os.getloadavg(),
        ),
        report,
    )


def start_profile(lab: Any) -> cProfile.Profile:
    from jambonz_lab import loop

    prof = cProfile.Profile()
    loop.run_sync(prof.enable)
    return prof


def stop_profile(lab: Any, prof: cProfile.Profile) -> str:
    from jambonz_lab import loop

    loop.run_sync(prof.disable)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(18)
    return buf.getvalue()


def git_state() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "jambonz_lab/net"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (jambonz_lab/net modified)" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="50,100,200")
    parser.add_argument("--formats", default="8k-mono,16k-stereo")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warm", type=float, default=2.0, help="unmeasured seconds at the start")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)

    import logging

    import jambonz_lab as jl

    logging.getLogger("jambonz_lab").setLevel(logging.WARNING)
    patch_receiver()
    lab = jl.start()
    print(
        f"bench_audio: git {git_state()}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"
    )
    header = (
        f"{'format':<11} {'streams':>7} {'frames':>8} {'lag p50':>8} {'lag p99':>8} "
        f"{'added p50':>9} {'added p99':>9} {'µs/frame':>8} {'sender late p99':>15} "
        f"{'sender cpu':>10} {'load1':>5}"
    )
    print(header)
    runs = []
    try:
        for fmt in args.formats.split(","):
            for n in (int(x) for x in args.streams.split(",")):
                lab.audio("/audio")  # a fresh service: the last run's streams go
                run, report = run_once(lab, fmt, n, args.seconds, args.warm, args.profile)
                runs.append(run)
                ms = 1000.0
                print(
                    f"{run.fmt:<11} {run.streams:>7} {run.frames:>5}/{run.expected:<5} "
                    f"{run.lag_p50 * ms:>6.2f}ms {run.lag_p99 * ms:>6.2f}ms "
                    f"{run.added_p50 * ms:>7.2f}ms {run.added_p99 * ms:>7.2f}ms {run.cpu_us:>8.1f} "
                    f"{run.sender_late_p99 * ms:>13.2f}ms {run.sender_cpu * 100:>9.0f}% {run.load[0]:>5.2f}",
                    flush=True,
                )
                if report:
                    print(report)
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
