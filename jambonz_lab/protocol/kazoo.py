"""Kazoo (2600Hz) wire facts, pure: Gregorian time, blackhole frames, event normalization.

No I/O. The blackhole client and simulator (:mod:`jambonz_lab.platforms.kazoo`,
:mod:`jambonz_lab.platforms.kazoo_sim`) build on it.
"""

from __future__ import annotations

__all__ = ["GREGORIAN_OFFSET", "gregorian_to_unix", "unix_to_gregorian"]

#: seconds from 0000-01-01 (Kazoo's Gregorian seconds) to 1970-01-01
GREGORIAN_OFFSET = 62167219200


def gregorian_to_unix(value: int | float | str) -> float:
    """Kazoo's Gregorian seconds (an int, or a string as webhooks send it) → Unix seconds.

    >>> gregorian_to_unix(63610891956)   # 2015-10-01 04:12:36 UTC
    1443672756.0
    """
    return float(value) - GREGORIAN_OFFSET


def unix_to_gregorian(ts: float) -> int:
    """Unix seconds → Kazoo's Gregorian seconds (whole seconds, as Kazoo sends them)."""
    return int(ts) + GREGORIAN_OFFSET
