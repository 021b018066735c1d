"""DataFrame views of the platform sources' rows: one table per platform with its key columns.

``lab.events`` holds every row of every source (filter it with ``source``);
:func:`platform_events` keeps one platform's events and lifts the columns that
matter for that platform (platforms.md §4), computed by the platform's own pure
module (``FLAT_COLUMNS`` and ``flat()`` in :mod:`jambonz_lab.protocol`):

=========  ====================================================================
kazoo      event_ts, name, call_id, other_leg_call_id, call_direction, caller /
           callee numbers, account_id, hangup_cause, subscribed_key (blackhole
           frames and webhook posts in one table; ``path`` tells them apart)
basix      event_ts, entity, event, uuid, other_uuid, direction, numbers, state,
           last_event, last_event_data, call_id
wazo       event_ts, name, call_id, user_uuid, status, direction, numbers,
           is_caller, talking_to, reason_code
=========  ====================================================================

``ts`` is when the row was recorded; ``event_ts`` is the platform's own time of
the event, in UTC (Kazoo's Gregorian seconds, Basix microseconds and Wazo's
offset timestamps converted). ``raw`` is the whole payload.

Example::

    lab.platform_events("kazoo").query("name == 'CHANNEL_DESTROY'")

Pure functions of a DataFrame; any thread.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PLATFORMS", "flat_of", "is_control", "platform_events"]

#: the platform sources with a table of their own
PLATFORMS = ("kazoo", "basix", "wazo")
#: key columns that hold whole numbers (a nullable ``Int64``: 19, not 19.0 once a row lacks one)
INTEGER_COLUMNS: dict[str, tuple[str, ...]] = {"wazo": ("reason_code",)}

Flat = Callable[[str, dict[str, Any]], dict[str, Any]]


def _module(name: str) -> Any:
    return importlib.import_module(f"jambonz_lab.protocol.{name}")


def flat_of(source: str, payload: Any) -> tuple[tuple[str, ...], Flat]:
    """The key columns and the ``flat`` function for one row's payload of ``source``."""
    if source not in PLATFORMS:
        raise ValueError(f"unknown platform {source!r}: pick one of {', '.join(PLATFORMS)}")
    name = source
    if source == "kazoo" and isinstance(payload, dict) and "hook_event" in payload:
        name = "kazoo_webhooks"  # a webhook post, not a blackhole frame: same columns
    module = _module(name)
    return tuple(module.FLAT_COLUMNS), module.flat


def is_control(source: str, kind: str) -> bool:
    """True for an ``in`` row that is protocol bookkeeping, not an event (replies, acks, specs)."""
    if source == "kazoo":
        return kind == "reply"
    if source == "wazo":
        return kind.startswith("op:")
    if source == "basix":
        return kind == "field_spec" or kind.endswith(".initial")
    return False


def platform_events(events: pd.DataFrame, source: str) -> pd.DataFrame:
    """The events of ``source`` (``"kazoo"``, ``"basix"`` or ``"wazo"``), one row each, with key columns."""
    import pandas as pd

    columns, _ = flat_of(source, None)
    mine = events[(events["source"] == source) & (events["direction"] == "in")]
    keep = [not is_control(source, str(kind)) for kind in mine["type"]]
    mine = mine[keep]
    records = []
    for payload, kind in zip(mine["payload"], mine["type"], strict=True):
        body = payload if isinstance(payload, dict) else {}
        _, flat = flat_of(source, body)
        records.append(flat(str(kind), body))
    table = pd.DataFrame.from_records(records, columns=list(columns), index=mine.index)
    stamps = pd.to_datetime(table["event_ts"], unit="s", utc=True, errors="coerce")
    table["event_ts"] = stamps.dt.round("us")  # platforms give at most microseconds; drop float noise
    for name in INTEGER_COLUMNS.get(source, ()):
        numbers = pd.to_numeric(table[name], errors="coerce")
        table[name] = numbers.where(numbers == numbers.round()).astype("Int64")  # not a whole number: NA
    head = mine[["ts", "type", "call_sid", "path"]]
    out = pd.concat([head, table, mine["payload"].rename("raw")], axis=1)
    return out.reset_index(drop=True)
