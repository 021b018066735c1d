"""A picture of calls seen by several platforms at once: one lane per call, grouped by source.

Each call of each source (jambonz, Kazoo, Basix, Wazo) gets a lane; each event
is a dot at the time the lab recorded it, labelled with its name (``call:status
completed``, ``CHANNEL_ANSWER``, ``channel.updated``, ``call_ended``). Lanes of
one source share a colour. Protocol bookkeeping (Kazoo replies, Wazo acks, Basix
field specs and snapshots) is left out. Caller-controlled text is drawn as plain
text (no mathtext).

Example::

    lab.platform_timeline()                        # every source the lab recorded
    lab.platform_timeline(sources=("kazoo", "wazo"))

Threads: any thread; it reads the DataFrame it is given and no lab state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .platform_views import is_control
from .timeline import TimelineFigure

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLORS", "draw_sources"]

#: lane colour per source
COLORS = {"jambonz": "tab:blue", "kazoo": "tab:orange", "basix": "tab:green", "wazo": "tab:purple"}
_MAX_LANES = 40


def _label(source: str, kind: str, payload: Any) -> str:
    data = payload.get("data") if isinstance(payload, dict) else None
    if source == "jambonz" and kind == "call:status" and isinstance(data, dict):
        return f"status {data.get('call_status', '?')}"
    if source == "wazo" and isinstance(data, dict) and data.get("status"):
        return f"{kind} {data['status']}"
    if source == "kazoo" and kind.upper() == "CHANNEL_DESTROY" and isinstance(payload, dict):
        cause = (data if isinstance(data, dict) else payload).get("hangup_cause")
        return f"{kind} {cause}" if cause else kind
    return kind


def draw_sources(
    events: pd.DataFrame, *, sources: tuple[str, ...] | None = None, title: str | None = None
) -> TimelineFigure:
    """Draw one lane per call per source from ``lab.events`` (or ``read_log(path).events``).

    Raises:
        ValueError: no call events of the chosen sources.
    """
    import pandas as pd

    rows = events[(events["direction"] == "in") & events["call_sid"].notna()]
    names = rows["source"].fillna("jambonz").astype(str)
    keep = [
        not is_control(s, str(k)) and (sources is None or s in sources)
        for s, k in zip(names, rows["type"], strict=True)
    ]
    rows, names = rows[keep], names[keep]
    if len(rows) == 0:
        raise ValueError("no call events to draw for these sources")
    stamps = pd.to_datetime(rows["ts"], unit="s", utc=True)
    seconds = [(t - stamps.min()).total_seconds() for t in stamps]
    keys = list(zip(names, rows["call_sid"].astype(str), strict=True))
    lanes: dict[tuple[str, str], int] = {}
    for key in keys:
        lanes.setdefault(key, len(lanes))
    shown = dict(list(lanes.items())[:_MAX_LANES])

    height = 1.0 + 0.42 * len(shown)  # inches
    fig = TimelineFigure(figsize=(12.0, height))
    ax = fig.add_axes((0.16, 0.9 / height, 0.8, 1 - 1.3 / height))
    span = max(seconds) or 1e-3
    rows_out = zip(keys, seconds, rows["type"], rows["payload"], strict=True)
    for n, ((source, sid), x, kind, payload) in enumerate(rows_out):
        lane = shown.get((source, sid))
        if lane is None:
            continue
        color = COLORS.get(source, "0.4")
        ax.plot([x], [lane], "o", color=color, markersize=4, gid="event")
        ax.text(
            x,
            lane + (0.12 if n % 2 == 0 else -0.28),
            _label(source, str(kind), payload)[:40],
            fontsize=7,
            rotation=0,
            color=color,
            usetex=False,
            parse_math=False,
            gid="label",
            clip_on=True,
        )
    ax.set_yticks(list(shown.values()))
    ax.set_yticklabels([f"{source} · {sid[:18]}" for source, sid in shown], fontsize=7)
    for tick, (source, _) in zip(ax.get_yticklabels(), shown, strict=True):
        tick.set_color(COLORS.get(source, "0.4"))
    ax.set_ylim(len(shown) - 0.5, -0.7)
    ax.set_xlim(-span * 0.02, span * 1.15)
    ax.set_xlabel("seconds since the first event")
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9, usetex=False, parse_math=False)
    return fig
