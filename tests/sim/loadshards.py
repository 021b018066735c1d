"""Shard-process targets for tests/sim/test_load_processes.py: top-level, so a forkserver (or
spawned) child can import them by name."""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any

from jambonz_lab.sim import shards


def fail_shard_one(shard: shards.Shard, out: Any) -> None:
    """Shard 1's calls cannot be made (a direction SimCall refuses: ValueError in the shard's
    first call); the others run as sim.load runs them."""
    if shard.index == 1:
        shard = dataclasses.replace(shard, direction="sideways")  # type: ignore[arg-type]
    shards.process_main(shard, out)


def die_shard_zero(shard: shards.Shard, out: Any) -> None:
    """Shard 0's process dies without a word (exit code 3); the others run normally."""
    if shard.index == 0:
        os._exit(3)
    shards.process_main(shard, out)


def unpicklable_results(shard: shards.Shard, out: Any) -> None:
    """The shard's results hold a lock (in this child process only)."""
    shards.run_shard = lambda shard, report=None: [threading.Lock()]  # type: ignore[list-item]
    shards.process_main(shard, out)
