"""A picture of calls seen by several platforms at once: one lane per call, grouped by source.

Each call of each source (jambonz, Kazoo, Basix, Wazo) gets a lane; each event
is a dot at the time the lab recorded it, labelled with its name (``status
completed``, ``CHANNEL_ANSWER``, ``channel.updated``, ``call_ended``). Lanes of
one source share a colour. Protocol bookkeeping (Kazoo replies, Wazo acks, Basix
field specs and snapshots) is left out. Caller-controlled text is drawn as plain
text (no mathtext).

Layout: labels never overlap and never leave the figure. Each label sits right of
its dot, on the lane's dot row when nothing is in its way, else on the first free
track below it (a lane is as tall as its labels need); the x axis leaves room on
the right for the longest label. Long labels and lane names are cut with ``…``;
the figure's ``full_text`` maps each cut text to the whole one (and
``lab.platform_events(source)`` has every field). A span under a second is drawn
in milliseconds.

Example::

    lab.platform_timeline()                        # every source the lab recorded
    lab.platform_timeline(sources=("kazoo", "wazo"))

Threads: any thread; it reads the DataFrame it is given and no lab state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .platform_views import is_control
from .timeline import TimelineFigure, seconds_formatter

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLORS", "MAX_LABEL", "MAX_LANES", "PlatformFigure", "draw_sources"]

#: lane colour per source
COLORS = {"jambonz": "tab:blue", "kazoo": "tab:orange", "basix": "tab:green", "wazo": "tab:purple"}
#: lanes drawn at most (the others are counted in the title line)
MAX_LANES = 40
#: longest event label, in characters (longer ones end in "…"; ``fig.full_text`` has them)
MAX_LABEL = 36
_MAX_LANE_NAME = 26  # characters of a lane's name ("kazoo · e2l90e4u289ojey5w3")
_MAX_TRACKS = 12  # label tracks per lane; past this, labels share the least busy track (and may overlap)
FONT = 8.0  # points
WIDTH = 9.5  # inches: a 950-pixel PNG, shown unscaled in most notebook columns
_TRACK = 0.16  # inches per label track
_LANE_GAP = 0.5  # tracks between two lanes
_RIGHT, _TOP, _BOTTOM = 0.2, 0.35, 0.6  # inches around the axes
_PAD = 3.0  # points between a dot and its label, and between two labels
_DOT = 3.0  # points: a dot's half width


class PlatformFigure(TimelineFigure):
    """The platform timeline: an inline figure that also keeps the texts it drew cut short.

    Attributes:
        full_text: each text drawn cut short (ending in ``…``) mapped to the whole text.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.full_text: dict[str, str] = {}


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


def _cut(text: str, limit: int, full: dict[str, str]) -> str:
    """``text`` on one line, at most ``limit`` characters; a cut text is remembered in ``full``."""
    one = " ".join(text.split())
    if len(one) <= limit:
        return one
    cut = one[: limit - 1] + "…"
    full[cut] = one
    return cut


def _width_pt(texts: list[str]) -> list[float]:
    """Each text's width in points at :data:`FONT`, measured by Agg (no figure needed)."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer = RendererAgg(10, 10, 72.0)  # 72 dpi: pixels are points
    prop = FontProperties(size=FONT)
    return [renderer.get_text_width_height_descent(t, prop, ismath=False)[0] for t in texts]


def _tracks(xs: list[float], widths: list[float], per_pt: float) -> tuple[list[int], int]:
    """A track per label of one lane (0: the dot row), so that no two labels overlap and no label
    covers a later dot of its own lane; returns the tracks and how many there are."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ends: list[float] = [float("-inf")]  # per track: where its last label ends (seconds)
    tracks = [0] * len(xs)
    for i in order:
        start = xs[i] + (_DOT + _PAD) * per_pt
        end = start + (widths[i] + _PAD) * per_pt
        dot_in_way = any(start - _DOT * per_pt <= xs[j] <= end + _DOT * per_pt for j in order if j != i)
        free = [k for k, e in enumerate(ends) if e <= xs[i] and not (k == 0 and dot_in_way)]
        if free:
            k = free[0]
        elif len(ends) < _MAX_TRACKS + 1:
            k = len(ends)
            ends.append(float("-inf"))
        else:
            k = min(range(1, len(ends)), key=lambda n: ends[n])
        ends[k] = end
        tracks[i] = k
    return tracks, len(ends)


def draw_sources(
    events: pd.DataFrame, *, sources: tuple[str, ...] | None = None, title: str | None = None
) -> PlatformFigure:
    """Draw one lane per call per source from ``lab.events`` (or ``read_log(path).events``).

    Returns:
        A :class:`PlatformFigure` (an inline ``matplotlib`` figure): one axes whose y tick
        labels name the lanes (``source · call id``, cut) and whose texts with gid ``label``
        are the event labels; ``fig.full_text`` maps every cut text to its whole.

    Raises:
        ValueError: no call events of the chosen sources.
    """
    import pandas as pd
    from matplotlib.ticker import MaxNLocator

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
    shown = dict(list(lanes.items())[:MAX_LANES])

    full: dict[str, str] = {}
    items: dict[tuple[str, str], list[tuple[float, str]]] = {key: [] for key in shown}
    for key, x, kind, payload in zip(keys, seconds, rows["type"], rows["payload"], strict=True):
        if key in items:
            items[key].append((x, _cut(_label(key[0], str(kind), payload), MAX_LABEL, full)))
    lane_names = [_cut(f"{source} · {sid}", _MAX_LANE_NAME, full) for source, sid in shown]
    for (source, sid), name in zip(shown, lane_names, strict=True):
        if name.endswith("…"):
            full[name] = f"{source} · {sid}"

    # the x scale: the left margin fits the lane names, the right end the longest label
    every = [text for lane in items.values() for _, text in lane]
    widths = dict(zip(every, _width_pt(every), strict=True))
    left_in = (max(_width_pt(lane_names)) * 1.1 + 24.0) / 72.0  # + the tick pad and some air
    axes_pt = (WIDTH - left_in - _RIGHT) * 72.0
    span = max(seconds) or 1e-3
    longest = max(widths.values()) * 1.1 + _DOT + 2 * _PAD  # Agg's hinting may draw a little wider
    usable = max(axes_pt - longest - 12.0, axes_pt * 0.3)
    per_pt = span / usable  # seconds per point
    left_x = -6.0 * per_pt

    # lanes from the top: the dot row, then the label tracks it needs
    placed: dict[tuple[str, str], tuple[list[int], int]] = {}
    for key, lane in items.items():
        placed[key] = _tracks([x for x, _ in lane], [widths[t] for _, t in lane], per_pt)
    total = sum(n for _, n in placed.values()) + _LANE_GAP * (len(placed) - 1)
    height = total * _TRACK + _TOP + _BOTTOM + 0.25
    fig = PlatformFigure(figsize=(WIDTH, height))
    fig.full_text = full
    fig.subplots_adjust(
        left=left_in / WIDTH, right=1 - _RIGHT / WIDTH, bottom=_BOTTOM / height, top=1 - _TOP / height
    )
    ax = fig.add_subplot()
    plain: dict[str, Any] = {"parse_math": False, "usetex": False}
    y = 0.0
    ticks: list[float] = []
    for key, lane in items.items():
        source = key[0]
        color = COLORS.get(source, "0.4")
        tracks, n = placed[key]
        ticks.append(y)
        ax.hlines([y], left_x, span + longest * per_pt, colors=color, alpha=0.25, linewidth=0.8, zorder=0)
        for (x, text), track in zip(lane, tracks, strict=True):
            ax.plot([x], [y], "o", color=color, markersize=4, gid="event", zorder=3)
            if track:
                ax.vlines([x], y, y + track, colors=color, alpha=0.35, linewidth=0.6, zorder=1)
            ax.text(
                x + (_DOT + _PAD) * per_pt,
                y + track,
                text,
                ha="left",
                va="center",
                fontsize=FONT,
                color=color,
                gid="label",
                zorder=4,
                **plain,
            )
        y += n + _LANE_GAP
    ax.set_yticks(ticks)
    ax.set_yticklabels(lane_names, fontsize=FONT, **plain)
    for tick, (source, _) in zip(ax.get_yticklabels(), shown, strict=True):
        tick.set_color(COLORS.get(source, "0.4"))
    ax.set_ylim(y - _LANE_GAP + 0.1, -0.6)
    ax.set_xlim(left_x, span + longest * per_pt)
    unit, formatter = seconds_formatter(span)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, min_n_ticks=3))
    ax.xaxis.set_major_formatter(formatter)
    ax.tick_params(axis="x", labelsize=FONT + 1)
    ax.tick_params(axis="y", length=0)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(f"{unit} since the first event", fontsize=FONT + 1)
    ax.grid(axis="x", alpha=0.3)
    more = len(lanes) - len(shown)
    head = title or ""
    if more:
        head = f"{head}  ({more} more lane(s) not drawn)".strip()
    if head:
        ax.set_title(head, loc="left", fontsize=FONT + 2, **plain)
    return fig
