"""Platform event sources (issue 6): the BERT codec, the Basix frame path, end-to-end event throughput.

Run: python benchmarks/bench_platforms.py [--quick] [--calls N] [--repeat R] [--only codec|e2e]

1. BERT/ETF codec, µs per frame (best of ``--runs`` runs of ``--iters`` iterations, GC off while
   timing, like ``timeit``): ``jambonz_lab.protocol.etf`` against the peer ``erlang`` module
   (erlang-py, a test dependency), on the 64-byte group_member ``info_event`` of platforms.md §2.4
   and on a channel ``info_event`` encoded the way the Basix simulator does it. Then the Basix
   client's work per frame, stage by stage.
2. End to end, in one process: a lab (``jambonz_lab.start()``), one simulator and the lab's client
   per platform (a fresh lab per row), ``--calls`` answered calls played with ``time_scale=0``. Wall
   and CPU time (``time.process_time``: every thread, so the simulator and the client together) from
   ``play()`` until the last event is in (the client's ``wait_for(..., count=N)``; the webhook
   receiver's counter). One unmeasured full-size run first, then ``--repeat`` measured ones; then
   ``lab.events`` and ``lab.platform_events(source)`` over everything the row recorded.

Prints tables; nothing is asserted (timings live here, not in tests).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import erlang

import jambonz_lab as jl
from jambonz_lab.platforms import (
    BasixSimulator,
    CallScenario,
    KazooSimulator,
    WazoSimulator,
    WebhookSender,
)
from jambonz_lab.platforms.basix import BasixClient
from jambonz_lab.protocol import basix, etf
from jambonz_lab.records import make_row

# -- frames ---------------------------------------------------------------------------------------

#: platforms.md §2.4 example 2, byte for byte
GROUP_MEMBER_HEX = (
    "83 68 04 64 00 0a 69 6e 66 6f 5f 65 76 65 6e 74 6b 00 0c 67 72 6f 75 70 5f 6d 65 6d 62 65 72"
    " 68 06 62 06 8e 7b 69 62 00 98 9a d7 62 00 98 9a 69 61 00 61 01 61 00"
    " 6b 00 07 75 70 64 61 74 65 64"
)


def group_member_frame() -> bytes:
    frame = basix.encode_info_event("group_member", (110001001, 10001111, 10001001, 0, 1, 0), "updated")
    if frame != bytes.fromhex(GROUP_MEMBER_HEX):
        sys.exit("the group_member encoder no longer writes the 64 bytes of platforms.md §2.4")
    return frame


def channel_element() -> dict[str, Any]:
    """An inbound call ringing ring group 2000, as the simulator's leg ``a`` (§2.4 example 3)."""
    ts = 1546839040024071
    return {
        "uuid": "5714495a-b8a1-4fff-8420-78648863ecd1",
        "direction": "inbound",
        "peer_location": "external",
        "calling_name": "Alice",
        "calling_number": "0312341234",
        "called_number": "2000",
        "offer_timestamp": ts,
        "group_id": 10001111,
        "state": basix.calling_group_state(ts + 11054, 10001111, queue="group1"),
        "target": (etf.Atom("group"), 10001111, "group1", "2000"),
        "last_event": "STATE_CHANGE",
        "call_id": "abc123@10.0.0.1",
    }


def channel_frame() -> bytes:
    """What ``BasixSimulator.broadcast`` sends for :func:`channel_element` (field_spec: README order)."""
    fields = basix.DEFAULT_FIELDS["channel"]
    return basix.encode_info_event(
        "channel", basix.element_term("channel", channel_element(), fields), "added"
    )


# -- micro timings --------------------------------------------------------------------------------


def best_us(cases: dict[str, tuple[Callable[[Any], Any], Any]], runs: int, iters: int) -> dict[str, float]:
    """µs per call of each ``fn(arg)``: best of ``runs`` runs of ``iters`` calls. The cases take turns
    within each run, so that drift in the machine hits them alike; GC off while timing, as timeit does."""
    for fn, arg in cases.values():
        fn(arg)
    best = dict.fromkeys(cases, float("inf"))
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(runs):
            for label, (fn, arg) in cases.items():
                t0 = time.perf_counter()
                for _ in range(iters):
                    fn(arg)
                best[label] = min(best[label], time.perf_counter() - t0)
    finally:
        if enabled:
            gc.enable()
    return {label: t / iters * 1e6 for label, t in best.items()}


def codec_table(runs: int, iters: int) -> None:
    print(f"\nBERT/ETF codec, µs per frame: best of {runs} runs × {iters:,} iterations, GC off while timing")
    print(
        f"{'frame':<26} {'bytes ours/peer':>15} {'decode ours':>12} {'decode peer':>12} {'ours/peer':>10} "
        f"{'encode ours':>12} {'encode peer':>12} {'ours/peer':>10}"
    )
    for name, frame in (
        ("group_member (§2.4, 64 B)", group_member_frame()),
        ("channel info_event", channel_frame()),
    ):
        ours_term = etf.decode(frame)
        peer_term = erlang.binary_to_term(frame)
        # each side encodes its own decoding of the frame (erlang-py writes atoms as
        # SMALL_ATOM_UTF8_EXT, one byte shorter each)
        ours_bytes, peer_bytes = etf.encode(ours_term), erlang.term_to_binary(peer_term)
        if ours_bytes != frame:
            sys.exit(f"{name}: etf.encode(etf.decode(frame)) differs from the frame")
        if etf.decode(peer_bytes) != ours_term:
            sys.exit(f"{name}: erlang-py's re-encoding decodes to a different term")
        t = best_us(
            {
                "dec_ours": (etf.decode, frame),
                "dec_peer": (erlang.binary_to_term, frame),
                "enc_ours": (etf.encode, ours_term),
                "enc_peer": (erlang.term_to_binary, peer_term),
            },
            runs,
            iters,
        )
        sizes = f"{len(ours_bytes)}/{len(peer_bytes)}"
        print(
            f"{name:<26} {sizes:>15} {t['dec_ours']:12.2f} {t['dec_peer']:12.2f} "
            f"{t['dec_ours'] / t['dec_peer']:9.2f}× {t['enc_ours']:12.2f} {t['enc_peer']:12.2f} "
            f"{t['enc_ours'] / t['enc_peer']:9.2f}×"
        )


def basix_path_table(runs: int, iters: int) -> None:
    """What the Basix client does per frame, cumulative stage by stage."""
    frames = {"channel": channel_frame(), "group_member": group_member_frame()}
    specs = [basix.encode_field_spec(e, basix.DEFAULT_FIELDS[e]) for e in frames]
    tables = basix.ElementTables()
    for spec in specs:
        tables.apply(basix.parse_message(etf.decode(spec)))

    def parsed(frame: bytes) -> basix.BasixMessage:
        return basix.parse_message(etf.decode(frame))

    def applied(frame: bytes) -> basix.Change:
        return tables.apply(basix.parse_message(etf.decode(frame)))

    def recorded(frame: bytes) -> tuple[Any, ...]:
        msg = basix.parse_message(etf.decode(frame))
        change = tables.apply(msg)
        element = change.element or {}
        return make_row(
            "basix",
            "in",
            f"{msg.entity}.{msg.event}",
            call_sid=element.get("uuid"),
            payload={"entity": msg.entity, "event": msg.event, "element": element},
            note=change.note,
            path="ws://bench",
        )

    rows: list[tuple[Any, ...]] = []
    client = BasixClient("ws://127.0.0.1:9", app_name="bench", domain="d", token="t", record=rows.append)
    for spec in specs:
        client._frame(spec)

    def client_frame(frame: bytes) -> None:
        client._frame(frame)  # private, but it is exactly the per-frame work of the socket reader
        if len(rows) > 10_000:
            rows.clear()

    stages: list[tuple[str, Callable[[bytes], Any]]] = [
        ("etf.decode", etf.decode),
        ("+ parse_message (normalize)", parsed),
        ("+ ElementTables.apply (Decoder)", applied),
        ("+ event-log row (payload as JSON)", recorded),
        ("BasixClient._frame (all of it)", client_frame),
    ]
    print(f"\nBasix client path per frame, µs (cumulative; best of {runs} × {iters:,}, stages take turns)")
    print(f"{'stage':<36} {'channel':>9} {'group_member':>13}")
    t = best_us({f"{label}|{e}": (fn, frames[e]) for label, fn in stages for e in frames}, runs, iters)
    for label, _ in stages:
        print(f"{label:<36} {t[f'{label}|channel']:9.2f} {t[f'{label}|group_member']:13.2f}")


# -- end to end -----------------------------------------------------------------------------------


def calls(n: int, base: int) -> list[CallScenario]:
    """``n`` answered calls (create ×2, answer ×2, bridge, destroy ×2), distinct ids per run."""
    return [CallScenario(seed=base + i, ring=2, talk=5) for i in range(n)]


class Row:
    """One platform row: a fresh lab, a simulator and what receives its events."""

    label = "?"
    source = "?"

    def __init__(self) -> None:
        self.lab = jl.start()
        self.sim: Any = None

    def received(self) -> int:
        raise NotImplementedError

    def expect(self, events: int, timeout: float) -> Callable[[], bool]:
        """Get ready for ``events`` more events (before play()); returns a wait that says if they came."""
        raise NotImplementedError

    def close(self) -> None:
        self.lab.stop()
        if self.sim is not None:
            self.sim.stop()


class ClientRow(Row):
    """A websocket client of the lab (``lab.kazoo`` / ``lab.basix`` / ``lab.wazo``)."""

    client: Any

    def received(self) -> int:
        return int(self.client.received)

    def expect(self, events: int, timeout: float) -> Callable[[], bool]:
        client = self.client
        target = client.received + events
        waiter = client.wait_for(lambda _e: True, timeout=timeout, count=events)  # the last event

        def wait() -> bool:
            try:
                waiter.result()
            except Exception as exc:
                print(f"  {self.label}: {client.received - target:+d} events: {exc}", file=sys.stderr)
                return False
            return True

        return wait


class KazooRow(ClientRow):
    label, source = "Kazoo blackhole (ws, JSON)", "kazoo"

    def __init__(self) -> None:
        super().__init__()
        self.sim = KazooSimulator().start()
        self.client = self.lab.kazoo(
            self.sim.ws_url,
            auth_token=self.sim.auth_token,
            account_id=self.sim.account_id,
            bindings=["call.*.*"],
        )


class BasixRow(ClientRow):
    label, source = "Basix ws_cti (ws, BERT)", "basix"

    def __init__(self) -> None:
        super().__init__()
        self.sim = BasixSimulator().start()
        self.client = self.lab.basix(
            self.sim.ws_url, app_name="bench", domain="example", token="secret", full_events=True
        )


class WazoRow(ClientRow):
    label, source = "Wazo websocketd (ws, JSON)", "wazo"

    def __init__(self) -> None:
        super().__init__()
        self.sim = WazoSimulator().start()
        self.client = self.lab.wazo(self.sim.http_url, username="admin", password="admin-pw")


class WebhookRow(Row):
    """The Kazoo simulator's WebhookSender posting to the lab's own receiver (no websocket client)."""

    source = "kazoo"

    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.label = f"Kazoo webhooks (HTTP POST, {fmt})"
        self.sim = KazooSimulator().start()
        self.receiver = self.lab.kazoo_webhooks("/kazoo/hooks")
        self.sender = WebhookSender(retry_delay=0.05)
        self.sender.add_hook(uri=self.receiver.url, hook="all", format=fmt, name="bench")
        self.sim.webhooks = self.sender

    def received(self) -> int:
        return int(self.receiver.received)

    def expect(self, events: int, timeout: float) -> Callable[[], bool]:
        target = self.receiver.received + events  # the receiver has no wait_for: poll its counter

        def wait() -> bool:
            deadline = time.monotonic() + timeout
            while self.receiver.received < target:
                if time.monotonic() > deadline:
                    print(f"  {self.label}: {self.receiver.received - target:+d} hooks", file=sys.stderr)
                    return False
                time.sleep(0.001)
            return True

        return wait

    def close(self) -> None:
        self.sender.close()
        super().close()


def settle(row: Row, timeout: float = 60.0) -> int:
    """Wait until no event arrived for 0.3 s; returns the count."""
    deadline = time.monotonic() + timeout
    last = -1
    while row.received() != last and time.monotonic() < deadline:
        last = row.received()
        time.sleep(0.3)
    return last


def run_row(row: Row, n: int, repeat: int) -> dict[str, Any]:
    """One unmeasured full-size warm-up run (it also counts the events per call), ``repeat``
    measured runs of ``n`` calls, then the platform table."""
    before = row.received()
    row.sim.play(calls(n, 1_000_000), time_scale=0).result()
    per_call = (settle(row) - before) / n
    if per_call <= 0:
        return {"label": row.label, "failed": True}
    _ = row.lab.events  # the views' warm-up too (the first one imports pandas)
    runs = []
    for r in range(repeat):
        expected = round(per_call * n)
        wait = row.expect(expected, 60)
        gc.collect()
        cpu0, t0 = time.process_time(), time.perf_counter()
        row.sim.play(calls(n, 2_000_000 + r * n), time_scale=0)
        ok = wait()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        runs.append((expected, wall, cpu, ok))
    settle(row)
    t0 = time.perf_counter()
    events = row.lab.events  # the flattened view, built once and cached until the next event
    t1 = time.perf_counter()
    table = row.lab.platform_events(row.source)
    t2 = time.perf_counter()
    return {
        "label": row.label,
        "failed": not all(r[3] for r in runs),
        "per_call": per_call,
        "runs": runs,
        "log_rows": len(events),
        "view_s": t1 - t0,
        "table_rows": len(table),
        "table_s": t2 - t1,
    }


def e2e_tables(n: int, repeat: int) -> None:
    makers: list[Callable[[], Row]] = [
        KazooRow,
        lambda: WebhookRow("json"),
        lambda: WebhookRow("form-data"),
        BasixRow,
        WazoRow,
    ]
    results = []
    for make in makers:
        row = make()
        try:
            results.append(run_row(row, n, repeat))
        finally:
            row.close()
    print(
        f"\nEnd to end, one process: {n} calls per run played with time_scale=0, {repeat} measured runs "
        f"(after one unmeasured run); CPU = every thread (simulator + lab client); median run, "
        "per-run CPU µs/event in parentheses"
    )
    base_cpu = float("nan") if results[0]["failed"] else _median_cpu_us(results[0])
    print(
        f"{'source':<37} {'ev/call':>7} {'events':>7} {'wall s':>7} {'events/s':>9} {'CPU s':>6} "
        f"{'CPU µs/event (per run)':>30} {'vs Kazoo ws':>11}"
    )
    for res in results:
        if res["failed"]:
            print(f"{res['label']:<37} FAILED (see stderr)")
            continue
        expected = res["runs"][0][0]
        wall = statistics.median(r[1] for r in res["runs"])
        cpu = statistics.median(r[2] for r in res["runs"])
        per_run = ", ".join(f"{r[2] / r[0] * 1e6:.0f}" for r in res["runs"])
        cpu_us = _median_cpu_us(res)
        cell = f"{cpu_us:.0f} ({per_run})"
        print(
            f"{res['label']:<37} {res['per_call']:7.1f} {expected:7,} {wall:7.2f} {expected / wall:9,.0f} "
            f"{cpu:6.2f} {cell:>30} {cpu_us / base_cpu:10.2f}×"
        )
    print(
        f"\n{'lab.platform_events(source) after the runs':<45} {'log rows':>9} {'lab.events s':>13} "
        f"{'platform_events s':>18} {'table rows':>11}"
    )
    for res in results:
        if res["failed"]:
            continue
        print(
            f"{res['label']:<45} {res['log_rows']:9,} {res['view_s']:13.2f} {res['table_s']:18.2f} "
            f"{res['table_rows']:11,}"
        )


def _median_cpu_us(res: dict[str, Any]) -> float:
    return statistics.median(r[2] / r[0] * 1e6 for r in res["runs"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="100 calls, 1 run, fewer codec iterations")
    ap.add_argument("--calls", type=int, help="calls per end-to-end run (default 500; 100 with --quick)")
    ap.add_argument("--repeat", type=int, help="measured end-to-end runs per row (default 3; 1 with --quick)")
    ap.add_argument("--runs", type=int, help="codec: runs, best one kept (default 7; 3 with --quick)")
    ap.add_argument("--iters", type=int, help="codec: iterations per run (default 5000; 1000 with --quick)")
    ap.add_argument("--only", choices=("codec", "e2e"), help="only one part")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="seconds to wait at most for other processes to calm down",
    )
    args = ap.parse_args()
    n = args.calls or (100 if args.quick else 500)
    repeat = args.repeat or (1 if args.quick else 3)
    runs = args.runs or (3 if args.quick else 7)
    iters = args.iters or (1000 if args.quick else 5000)
    print(
        f"python {platform.python_version()}, {platform.machine()}, erlang-py "
        f"{_version('erlang_py')}, websockets {_version('websockets')}, aiohttp {_version('aiohttp')}"
    )
    quiet(args.quiet_wait)
    background = Background()
    if args.only != "e2e":
        codec_table(runs, iters)
        basix_path_table(runs, iters)
    if args.only != "codec":
        e2e_tables(n, repeat)
    print(f"\nother processes used {background.cores():.2f} cores on average during this run", flush=True)


def quiet(limit: float, threshold: float = 0.25) -> None:
    """Wait (up to ``limit`` s) for a 2 s window in which other processes use under ``threshold`` cores."""
    deadline = time.monotonic() + limit
    while True:
        probe = Background()
        time.sleep(2.0)
        load = probe.cores()
        if load < threshold or time.monotonic() > deadline:
            break
        print(f"(other processes use {load:.2f} cores: waiting for quiet)", file=sys.stderr)


class Background:
    """CPU of every other process (Linux /proc/stat: all busy time minus this process's)."""

    def __init__(self) -> None:
        self.busy0, self.own0, self.t0 = self._busy(), time.process_time(), time.perf_counter()

    @staticmethod
    def _busy() -> float:
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except OSError:
            return float("nan")
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    def cores(self) -> float:
        busy, own = self._busy() - self.busy0, time.process_time() - self.own0
        return max(busy - own, 0.0) / (time.perf_counter() - self.t0)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    main()
