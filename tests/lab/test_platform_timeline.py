"""The platform timeline's layout (issue 18 item 5): labels that read, with matplotlib's Agg renderer.

Drawn from a real lab's events (the Kazoo, Basix and Wazo simulators over loopback sockets, calls
played at ``time_scale=0``: every event within milliseconds, the worst crowding) and from a small
hand-made frame with long labels; each test draws the figure with Agg and reads the text extents.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox, BboxBase

import jambonz_lab as jl
from jambonz_lab.lab.platform_timeline import MAX_LABEL, draw_sources
from tests.lab.apps import three_platforms_played


@pytest.fixture(scope="module")
def three_platforms() -> Iterator[pd.DataFrame]:
    """``lab.events`` after three calls played by each of the Kazoo, Basix and Wazo simulators."""
    lab = jl.start(replace=False)
    try:
        with three_platforms_played(lab):
            yield lab.events
    finally:
        lab.stop()


def extents(fig: Figure) -> tuple[BboxBase, list[tuple[str, Bbox]], list[tuple[str, Bbox]]]:
    """The figure's box and, in display pixels, the event labels' and the lane names' boxes.

    A label's box is checked against the axes (where a clipped label would be cut), a lane name's
    against the figure: ``outside(labels, fig.axes[0].bbox)``, ``outside(lanes, figure)``."""
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    ax = fig.axes[0]
    labels = [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts if t.get_gid() == "label"]
    lanes = [(t.get_text(), t.get_window_extent(renderer)) for t in ax.get_yticklabels()]
    return fig.bbox, labels, lanes


def overlaps(boxes: list[tuple[str, Bbox]]) -> list[tuple[str, str]]:
    """Pairs of texts whose boxes overlap (touching edges do not count)."""
    found = []
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            if box_a.x0 < box_b.x1 and box_b.x0 < box_a.x1 and box_a.y0 < box_b.y1 and box_b.y0 < box_a.y1:
                found.append((a, b))
    return found


def outside(boxes: list[tuple[str, Bbox]], figure: BboxBase) -> list[str]:
    return [
        text
        for text, box in boxes
        if box.x0 < figure.x0 or box.x1 > figure.x1 or box.y0 < figure.y0 or box.y1 > figure.y1
    ]


def test_labels_of_three_platforms_neither_overlap_nor_leave_the_figure(
    three_platforms: pd.DataFrame,
) -> None:
    from jambonz_lab.lab.events import parsed

    fig = draw_sources(parsed(three_platforms))
    figure, labels, lanes = extents(fig)
    assert len(lanes) == 18 and len(labels) >= 18 * 3  # a lane per leg, every event labelled
    assert overlaps(labels) == []
    assert overlaps(labels + lanes) == []  # the lane names are clear of the labels too
    assert outside(labels, fig.axes[0].bbox) == outside(lanes, figure) == []
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert 3 <= len(ticks) <= 10, ticks
    assert fig.axes[0].get_xlabel() in ("milliseconds since the first event", "seconds since the first event")
    assert not any(t.endswith(".000000") for t in ticks), ticks


def frame(rows: list[tuple[float, str, str, str, Any]]) -> pd.DataFrame:
    """A parsed ``lab.events``-like frame: (ts, source, call_sid, type, payload) per row."""
    return pd.DataFrame(
        [
            {"ts": ts, "source": source, "call_sid": sid, "direction": "in", "type": kind, "payload": payload}
            for ts, source, sid, kind, payload in rows
        ]
    )


def test_long_labels_are_cut_and_kept_whole_in_full_text() -> None:
    """A long status (caller-influenced text) and a long call id: cut with "…" in the picture,
    whole in ``fig.full_text``; a sub-second span is drawn in milliseconds; nothing overlaps."""
    status = "Ringing-" + "x" * 80
    sid = "call-" + "y" * 60
    rows = [
        (1000.000, "wazo", sid, "call_created", {"data": {"status": status}}),
        (1000.002, "wazo", sid, "call_updated", {"data": {"status": status}}),
        (1000.003, "wazo", sid, "call_answered", {"data": {"status": "Up"}}),
        (1000.250, "wazo", sid, "call_ended", {"data": {"status": "Up"}}),
        (1000.001, "kazoo", "k-1", "CHANNEL_CREATE", {}),
        (1000.300, "kazoo", "k-1", "CHANNEL_DESTROY", {"hangup_cause": "NORMAL_CLEARING"}),
    ]
    fig = draw_sources(frame(rows))
    figure, labels, lanes = extents(fig)
    assert overlaps(labels + lanes) == []
    assert outside(labels, fig.axes[0].bbox) == outside(lanes, figure) == []
    texts = [t for t, _ in labels]
    cut = [t for t in texts if t.endswith("…")]
    assert len(cut) == 2 and all(len(t) == MAX_LABEL for t in cut)
    assert fig.full_text[cut[0]] == f"call_created {status}"
    lane = next(t for t, _ in lanes if t.startswith("wazo"))
    assert lane.endswith("…") and fig.full_text[lane] == f"wazo · {sid}"
    assert "CHANNEL_DESTROY NORMAL_CLEARING" in texts
    assert fig.axes[0].get_xlabel() == "milliseconds since the first event"
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    values = [float(t.replace("−", "-")) for t in ticks]
    assert max(values) >= 50 and all(v == int(v) for v in values), ticks  # whole ms, not "0.100"


def test_many_events_at_one_instant_get_their_own_tracks() -> None:
    """Ten events of one lane within a millisecond, one more five seconds later: no label on another."""
    rows: list[tuple[float, str, str, str, Any]] = [
        (2000.0 + i * 1e-4, "basix", "b-1", f"channel.event{i}", {}) for i in range(10)
    ]
    rows.append((2005.0, "basix", "b-1", "channel.removed", {}))  # five seconds on: the burst is crowded
    fig = draw_sources(frame(rows))
    figure, labels, lanes = extents(fig)
    assert len(labels) == 11 and overlaps(labels + lanes) == []
    assert outside(labels, fig.axes[0].bbox) == outside(lanes, figure) == []


def test_the_picture_fits_a_notebook_column_at_a_readable_size(three_platforms: pd.DataFrame) -> None:
    """Notebook 09 in JupyterLab (a 1280-pixel window, the file browser open: a column of ~830 px)
    showed the 1,200-pixel PNG at ~70 %, its 7-point labels at ~7 px. The PNG is 950 px wide now
    and its labels 8 points, so they show at 9-11 px."""
    import struct

    from jambonz_lab.lab.events import parsed

    fig = draw_sources(parsed(three_platforms))
    png = fig._repr_png_()
    width, _height = struct.unpack(">II", png[16:24])  # the PNG's IHDR chunk
    assert width <= 960
    labels = [t for t in fig.axes[0].texts if t.get_gid() == "label"]
    assert labels and min(float(t.get_fontsize()) for t in labels) >= 8
