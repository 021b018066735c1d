"""A picture of the messages of one or more calls: swim-lanes over time.

Each call gets two lanes, ``jambonz`` (above) and ``app`` (below). Every frame
is an arrow in its direction at the time it passed the app server: ``in``
(jambonz → app) points down, ``out`` (app → jambonz) points up. Each arrow has
a label (``session:new``, ``verb:hook /echo "hello"``, ``call:status
in-progress``, ``ack: say, gather``, ``redirect: hangup``); acks carry their
latency (the ``ack_ms`` column of :attr:`Lab.events <jambonz_lab.Lab.events>`)
in grey after the label. Lab events (``auto-ack``, ``handler-error``,
``bad-frame``, ``ack-late``, …) are markers on the app lane. The x axis is a
true time scale on the call's clock: for a simulated call (rows with ``call_t``)
its own call time, where a ``say`` or a gather timeout takes its seconds and the
app's real processing time is added where the caller waits for it; for a real
jambonz call, wall time since the first event drawn. The axis label says which.

Example::

    fig = lab.timeline()                       # every call of the lab
    fig = lab.session(sid).timeline()          # one call
    fig.savefig("call.png")                    # a static image

    from jambonz_lab.lab import timeline
    timeline.draw(jl.read_log("calls.jsonl").events, title="yesterday's calls")

The figure is built with matplotlib's object API (:class:`matplotlib.figure.Figure`,
no pyplot state), so it works in scripts, under nbval and on binder; it shows
itself inline in a notebook as a PNG. Caller-controlled text (transcripts,
numbers, hooks) is drawn as plain text: no mathtext, no TeX, no markup.

Threads: any thread may call :func:`draw`; it reads the DataFrame it is given
and touches no lab state.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ..figure import InlineFigure
from ..protocol.messages import best_alternative

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.text import Text

__all__ = ["LAB_MARKERS", "TimelineFigure", "draw", "label_of", "seconds_formatter"]

#: marker and colour of each lab event kind; other kinds get a small grey tick
LAB_MARKERS: dict[str, tuple[str, str]] = {
    "auto-ack": ("o", "tab:orange"),
    "handler-error": ("X", "tab:red"),
    "bad-frame": ("s", "tab:red"),
    "ack-late": ("v", "tab:purple"),
    "protocol-error": ("D", "tab:red"),
    "refused-frame": ("P", "tab:red"),
}
_OTHER_MARKER = ("|", "0.45")
_COLORS = {"in": "tab:blue", "out": "tab:green"}

FONT = 8.0  # points, labels
WIDTH = 9.5  # inches: a 950-pixel PNG, shown unscaled in most notebook columns
_LEFT, _RIGHT, _TOP, _BOTTOM = 0.9, 0.25, 0.45, 0.65  # inches around the axes
_ROW = 0.21  # inches per label track
_HEADER = 1.0  # tracks above the jambonz lane for the call's header line
_GAP = 0.6  # tracks between two calls
_MAX_TRACKS = 14  # past this, labels share tracks (and may overlap)
_MAX_LABEL = 72  # characters
_CHAR = 0.6  # average glyph width, in font sizes (DejaVu Sans)
_LABEL_BOX = {"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85}  # over the arrows


#: the timelines' Figure: shows itself inline in any kernel (see :mod:`jambonz_lab.figure`)
TimelineFigure = InlineFigure


@dataclass
class _Item:
    x: float  # seconds: call time, or wall time since the first event
    direction: str  # in, out, lab
    label: str
    latency: str | None = None
    auto: bool = False
    kind: str = ""
    track: int = 0


def draw(events: pd.DataFrame, *, title: str | None = None) -> TimelineFigure:
    """Draw the message swim-lanes of the calls in ``events``.

    Args:
        events: rows of the event log, as :attr:`Lab.events <jambonz_lab.Lab.events>`
            or :attr:`Session.events <jambonz_lab.Session.events>` give them (columns
            ``ts``, ``call_sid``, ``direction``, ``type``, ``msgid``, ``hook``,
            ``payload``, ``note``; ``ack_ms``, ``call_status``, ``transcript``,
            ``digits``, ``reason``, ``leg`` and ``call_t`` are used when present).
        title: drawn above the lanes (as plain text).

    Returns:
        A :class:`TimelineFigure` (a ``matplotlib.figure.Figure``): one axes whose
        ``patches`` are the arrows (one per frame, in row order) and whose
        ``texts`` are, per call, a header and the two lane names, then a label
        per row (frames and lab events) and a latency annotation per ack with
        an ``ack_ms``. Each text has a gid: ``header``, ``lane``, ``label``,
        ``latency``.

    Raises:
        ValueError: ``events`` has no rows.

    Example::

        fig = draw(lab.events[lab.events["call_sid"] == sid], title="one call")
        fig.savefig("call.png")
    """
    import pandas as pd
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.transforms import blended_transform_factory

    if "source" in events.columns:  # platform rows have their own picture (platform_timeline)
        events = events[events["source"].fillna("jambonz") == "jambonz"]
    if len(events) == 0:
        raise ValueError("no events to draw")
    ts = events["ts"]
    stamps = (
        pd.to_datetime(ts, unit="s", utc=True)
        if pd.api.types.is_numeric_dtype(ts)
        else pd.to_datetime(ts, utc=True)
    )
    t0 = stamps.min()
    seconds, clock = _times(events, stamps)
    records = cast("list[dict[str, Any]]", events.to_dict("records"))

    calls: dict[str, list[_Item]] = {}
    headers: dict[str, str] = {}
    for row, x in zip(records, seconds, strict=True):
        sid = _text(row.get("call_sid")) or "(no call)"
        items = calls.setdefault(sid, [])
        if sid not in headers:
            headers[sid] = f"call {sid}"
        direction = _text(row.get("direction")) or "lab"
        if direction == "in" and _text(row.get("type")) in _OPENERS:
            data = _payload(row).get("data")
            if isinstance(data, Mapping) and headers[sid] == f"call {sid}":
                headers[sid] = _header(sid, data)
        item = _Item(x, direction, _short(label_of(row), _MAX_LABEL), kind=_text(row.get("type")) or "")
        if direction == "out":
            item.auto = _text(row.get("note")) == "auto"
            ms = row.get("ack_ms")
            if item.kind == "ack" and isinstance(ms, int | float) and not math.isnan(ms):
                item.latency = _ms(float(ms))
        items.append(item)

    # the x scale: room on the right for the longest label, the rest for time
    axes_pt = (WIDTH - _LEFT - _RIGHT) * 72.0
    longest = max(_width_pt(it) for items in calls.values() for it in items)
    span = max(seconds) or 1e-3
    usable = max(axes_pt - longest - 10.0, axes_pt * 0.3)
    per_pt = span / usable  # seconds per point
    tracks = {sid: _allocate(items, per_pt) for sid, items in calls.items()}

    # blocks from the top: header line, jambonz lane, label tracks, app lane
    heights = {sid: _HEADER + n + 1 for sid, n in tracks.items()}
    total = sum(heights.values()) + _GAP * (len(calls) - 1)
    fig = TimelineFigure(figsize=(WIDTH, total * _ROW + _TOP + _BOTTOM + 0.3))
    height_in = fig.get_figheight()
    fig.subplots_adjust(
        left=_LEFT / WIDTH,
        right=1 - _RIGHT / WIDTH,
        bottom=_BOTTOM / height_in,
        top=1 - _TOP / height_in,
    )
    ax: Axes = fig.add_subplot()
    left_pad = 6.0 * per_pt
    ax.set_xlim(-left_pad, span + (longest + 4.0) * per_pt)
    ax.set_ylim(-0.6, total + 0.2)
    lane_tf = blended_transform_factory(ax.transAxes, ax.transData)
    plain: dict[str, Any] = {"parse_math": False, "usetex": False}

    top = total
    for sid, items in calls.items():
        n = tracks[sid]
        y_jambonz = top - _HEADER
        y_app = y_jambonz - n - 1
        ax.text(
            0.0,
            top - 0.45,
            headers[sid],
            transform=lane_tf,
            ha="left",
            va="center",
            fontsize=FONT + 1,
            fontweight="bold",
            gid="header",
            **plain,
        )
        for y, name in ((y_jambonz, "jambonz"), (y_app, "app")):
            ax.text(
                -0.008,
                y,
                name,
                transform=lane_tf,
                ha="right",
                va="center",
                fontsize=FONT + 1,
                color="0.25",
                gid="lane",
                **plain,
            )
        ax.hlines([y_jambonz, y_app], -left_pad, ax.get_xlim()[1], colors="0.7", linewidth=0.8, zorder=0)
        for it in items:
            y_label = y_jambonz - 1 - it.track
            gap = 3.0 * per_pt
            color = "0.2"
            if it.direction in ("in", "out"):
                start, end = (y_jambonz, y_app) if it.direction == "in" else (y_app, y_jambonz)
                arrow = FancyArrowPatch(
                    (it.x, start),
                    (it.x, end),
                    arrowstyle="-|>",
                    mutation_scale=9,
                    linewidth=1.0,
                    linestyle="--" if it.auto else "-",
                    color=_COLORS[it.direction],
                    shrinkA=0,
                    shrinkB=0,
                    zorder=2,
                )
                ax.add_patch(arrow)
                color = _COLORS[it.direction]
            else:
                marker, color = LAB_MARKERS.get(it.kind, _OTHER_MARKER)
                ax.plot([it.x], [y_app], linestyle="none", marker=marker, color=color, markersize=7, zorder=3)
            label: Text = ax.text(
                it.x + gap,
                y_label,
                it.label,
                ha="left",
                va="center",
                fontsize=FONT,
                color=color,
                gid="label",
                zorder=4,
                bbox=_LABEL_BOX,
                **plain,
            )
            if it.latency is not None:
                ax.annotate(
                    it.latency,
                    xy=(1.0, 0.5),
                    xycoords=label,
                    xytext=(3, 0),
                    textcoords="offset points",
                    ha="left",
                    va="center",
                    fontsize=FONT - 0.5,
                    color="0.4",
                    style="italic",
                    gid="latency",
                    zorder=4,
                    annotation_clip=False,
                    bbox=_LABEL_BOX,  # a later arrow may cross it: the label stays readable
                    **plain,
                )
        top = y_app - _GAP

    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    unit, fmt = seconds_formatter(span)
    ax.xaxis.set_major_formatter(fmt)
    ax.tick_params(axis="x", labelsize=FONT)
    xlabel = _xlabel(clock, len(calls), t0)
    ax.set_xlabel(xlabel if unit == "seconds" else xlabel.replace("(s)", "(ms)"), fontsize=FONT, **plain)
    if title is not None:
        ax.set_title(str(title), loc="left", fontsize=FONT + 3, pad=8, **plain)
    return fig


def label_of(row: Mapping[str, Any]) -> str:
    """The label of one event-log row (a dict of its columns), as drawn on the timeline.

    Example::

        label_of({"direction": "in", "type": "verb:hook", "hook": "/echo", ...})
        # 'verb:hook /echo "hello"'
    """
    direction = _text(row.get("direction"))
    kind = _text(row.get("type")) or "?"
    payload = _payload(row)
    data = payload.get("data")
    data = data if isinstance(data, Mapping) else {}
    if direction == "in":
        parts = [kind]
        hook = _text(row.get("hook")) or _text(payload.get("hook"))
        if hook:
            parts.append(hook)
        if kind == "call:status":
            parts.append(_text(row.get("call_status")) or _text(data.get("call_status")) or "?")
            leg = _text(row.get("leg")) or _text(data.get("call_sid"))
            sid = _text(row.get("call_sid"))
            if leg and sid and leg != sid:
                parts.append(f"(leg {leg[:8]})")
            return " ".join(parts)
        transcript = _text(row.get("transcript")) or _transcript(data)
        digits = _text(row.get("digits")) or _text(data.get("digits"))
        reason = _text(row.get("reason")) or _text(data.get("reason"))
        if transcript:
            parts.append(f'"{_short(transcript, 40)}"')
        elif digits:
            parts.append(f"digits {_short(digits, 20)}")
        elif reason and kind == "verb:hook":
            parts.append(_short(reason, 24))
        return " ".join(parts)
    if direction == "out":
        names = _verb_names(payload.get("data")) if kind in ("ack", "redirect") else None
        head = "ack (auto)" if kind == "ack" and _text(row.get("note")) == "auto" else kind
        if names is None:
            return head
        return f"{head}: {names}" if names else f"{head} (empty)"
    return kind


def seconds_formatter(span: float) -> tuple[str, Any]:
    """Tick labels for an axis in seconds that reads: ``("milliseconds", …)`` (ticks like ``250``)
    when ``span`` is under a second, else ``("seconds", …)`` (``1.5``, never ``1.500000``)."""
    from matplotlib.ticker import FuncFormatter

    if span < 1.0:
        return "milliseconds", FuncFormatter(lambda x, _pos: f"{x * 1000:g}")
    return "seconds", FuncFormatter(lambda x, _pos: f"{x:g}")


# -- helpers -----------------------------------------------------------------------------


def _times(events: pd.DataFrame, stamps: pd.Series) -> tuple[list[float], str]:
    """Each row's x, and which clock: ``"call"`` (every call is simulated: its rows' ``call_t``,
    the call's own clock), ``"wall"`` (none is: seconds since the first event) or ``"mixed"``."""
    import pandas as pd

    wall = (stamps - stamps.min()).dt.total_seconds()
    if "call_t" not in events.columns:
        return wall.tolist(), "wall"
    call_t = pd.to_numeric(events["call_t"], errors="coerce").astype("float64")
    sid = events["call_sid"].fillna("(no call)")
    simulated = call_t.notna().groupby(sid).transform("any")
    if not simulated.any():
        return wall.tolist(), "wall"
    # a simulated call's row without a call time (a lab row after its clock was forgotten)
    # sits where the call's clock last was
    filled = call_t.groupby(sid).ffill().groupby(sid).bfill()
    x = filled.where(simulated, wall)
    return x.tolist(), "call" if simulated.all() else "mixed"


def _xlabel(clock: str, calls: int, t0: pd.Timestamp) -> str:
    if clock == "call":
        each = "" if calls == 1 else ", each call from its start"
        return f"call time (s): the simulated call's own clock{each}"
    since = f"since the first event ({t0:%Y-%m-%d %H:%M:%S} UTC)"
    if clock == "mixed":
        return f"call time (s) for simulated calls, from their start; wall time (s) {since} for the others"
    return f"wall time (s) {since}"


_OPENERS = ("session:new", "session:redirect", "session:adulting")


def _header(sid: str, data: Mapping[str, Any]) -> str:
    frm, to = _text(data.get("from")), _text(data.get("to"))
    who = f"   {_short(frm or '?', 32)} → {_short(to or '?', 32)}" if frm or to else ""
    return f"call {sid}{who}"


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    return None


def _payload(row: Mapping[str, Any]) -> Mapping[str, Any]:
    payload = row.get("payload")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            return {}
    return payload if isinstance(payload, Mapping) else {}


def _transcript(data: Mapping[str, Any]) -> str | None:
    best = best_alternative(data)
    return _text(best.get("transcript")) if best is not None else None


def _verb_names(verbs: Any) -> str:
    if not isinstance(verbs, list):
        return ""
    names = []
    for verb in verbs:
        if isinstance(verb, Mapping):
            name = verb.get("verb")
            if name is None and len(verb) == 1:  # the {"say": {...}} shape
                name = next(iter(verb))
            names.append(str(name))
    if len(names) > 4:
        names = [*names[:4], f"… ({len(names)})"]
    return ", ".join(names)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())  # one line
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ms(ms: float) -> str:
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 100:
        return f"{ms:.1f} ms"
    return f"{ms:.0f} ms"


def _width_pt(it: _Item) -> float:
    width = 3.0 + len(it.label) * FONT * _CHAR + 4.0
    if it.latency is not None:
        width += 3.0 + len(it.latency) * (FONT - 0.5) * _CHAR
    return width


def _allocate(items: list[_Item], per_pt: float) -> int:
    """Give each label a track where it does not overlap the one before; returns the track count."""
    ends: list[float] = []
    for it in sorted(items, key=lambda i: i.x):
        start = it.x
        end = it.x + (_width_pt(it) + 4.0) * per_pt
        free = [j for j, e in enumerate(ends) if e <= start]
        if free:
            j = free[0]
        elif len(ends) < _MAX_TRACKS:
            j = len(ends)
            ends.append(0.0)
        else:
            j = min(range(len(ends)), key=lambda k: ends[k])
        ends[j] = end
        it.track = j
    return max(1, len(ends))
