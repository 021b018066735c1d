"""BERT frames that try to be bombs: time and memory to decode or refuse each, and how long the lab's
loop stalls while a Basix client receives them (decoded off the loop, and on it for comparison).

    python benchmarks/bench_bert.py            # about 20 s
    python benchmarks/bench_bert.py --repeat 9

Target (issue 11 item 6): any frame of at most 64 KiB decodes or is refused in <= 50 ms and <= 64 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

from jambonz_lab import loop
from jambonz_lab.exceptions import TermDecodeError
from jambonz_lab.platforms.basix import BasixClient
from jambonz_lab.platforms.basix_sim import BasixSimulator
from jambonz_lab.protocol import basix as b
from jambonz_lab.protocol import etf
from jambonz_lab.records import RECORD_FIELDS

MIB = 1024 * 1024
TYPE = RECORD_FIELDS.index("type")


def zipped(inner: bytes) -> bytes:
    return b"\x83\x50" + len(inner).to_bytes(4, "big") + zlib.compress(inner, 9)


def lst(n: int, item: bytes) -> bytes:
    return b"\x6c" + n.to_bytes(4, "big") + item * n + b"\x6a"


def frames() -> dict[str, bytes]:
    inflated = etf.MAX_INFLATED
    return {
        "64 KiB list of NILs": b"\x83" + lst(65_530, b"\x6a"),
        "64 KiB list of small ints": b"\x83" + lst(32_760, b"\x61\x07"),
        "64 KiB map atom => int": b"\x83\x74" + (13_100).to_bytes(4, "big") + b"\x73\x01k\x61\x01" * 13_100,
        "64 KiB binaries of 60 B": b"\x83" + lst(1_000, b"\x6d\x00\x00\x00\x3c" + b"x" * 60),
        "zlib: 99,999 NILs (just under the cap)": zipped(lst(etf.MAX_ITEMS - 1, b"\x6a")),
        "zlib: 99,999 small ints": zipped(lst(etf.MAX_ITEMS - 1, b"\x61\x05")),
        "zlib: NILs to 4 MiB": zipped(lst(inflated - 6, b"\x6a")),
        "zlib: nested lists to 4 MiB": zipped(lst((inflated - 6) // 7, b"\x6c\x00\x00\x00\x01\x6a\x6a")),
        "zlib: one 4 MiB binary": zipped(
            b"\x6d" + (inflated - 5).to_bytes(4, "big") + b"\0" * (inflated - 5)
        ),
        "zlib: 64 KiB of zlib data (issue's bomb)": zipped(lst(64 * MIB, b"\x6a")),
        "zlib: map bomb": zipped(b"\x74" + (1_000_000).to_bytes(4, "big") + b"\x61\x01\x6a" * 1_000_000),
    }


def outcome(data: bytes) -> str:
    try:
        etf.decode(data)
    except TermDecodeError as exc:
        text = str(exc)
        return "refused: " + (text[:40] + "…" if len(text) > 40 else text)
    return "decoded"


def timed(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def peak_mib(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / MIB
    finally:
        tracemalloc.stop()


def decode_table(repeat: int) -> None:
    print("| frame | bytes on the wire | outcome | ms (median) | peak MiB |")
    print("|---|---:|---|---:|---:|")
    for name, data in frames().items():

        def run(data: bytes = data) -> None:
            try:
                etf.decode(data)
            except TermDecodeError:
                pass

        ms = timed(run, repeat)
        print(f"| {name} | {len(data):,} | {outcome(data)} | {ms:.1f} | {peak_mib(run):.1f} |")


class OnLoop(BasixClient):
    """For comparison only: every frame decoded on the loop thread."""

    def _off_loop(self, data: str | bytes) -> bool:
        return False


def stall(client_type: type[BasixClient], bombs: list[bytes]) -> float:
    """Largest gap (ms) between 1 ms ticks on the lab's loop while ``bombs`` arrive."""
    sim = BasixSimulator(accounts={"acme": "tok"})
    sim.start()
    rows: list[Any] = []
    cti = client_type(sim.ws_url, app_name="bench", record=rows.append, domain="acme", token="tok")
    cti.connect()
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    try:
        task = loop.submit(ticker())
        time.sleep(0.2)
        before = len(rows)
        for data in bombs:
            sim.send_raw(data)
        sim.send_raw(b.encode_msg("done"))
        deadline = time.monotonic() + 60
        while not any(r[TYPE] == "msg" for r in rows[before:]) and time.monotonic() < deadline:
            time.sleep(0.01)
        loop.call_soon(stop.set)
        task.result(5)
    finally:
        cti.close()
        sim.stop()
    return max(gaps) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(
        f"caps: MAX_ITEMS={etf.MAX_ITEMS:,} terms, MAX_INFLATED={etf.MAX_INFLATED // MIB} MiB, "
        f"MAX_BIG_BYTES={etf.MAX_BIG_BYTES}, MAX_DEPTH={etf.MAX_DEPTH}\n"
    )
    decode_table(args.repeat)
    data = frames()
    bombs = [data["zlib: NILs to 4 MiB"], data["64 KiB list of NILs"], data["zlib: map bomb"]] * 5
    off = stall(BasixClient, bombs)
    on = stall(OnLoop, bombs)
    print(
        f"\nLoop stall while a Basix client receives {len(bombs)} bomb frames "
        "(largest gap between 1 ms ticks):"
    )
    print("| decoding | max gap ms | vs on-loop |")
    print("|---|---:|---:|")
    print(f"| off the loop (BasixClient) | {off:.1f} | {off / on:.2f}× |")
    print(f"| on the loop (for comparison) | {on:.1f} | 1.00× |")


if __name__ == "__main__":
    main()
