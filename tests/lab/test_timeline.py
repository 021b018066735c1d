"""The timeline picture: arrows per frame, labels, latencies, lab-event markers, plain text, PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cbook import is_math_text
from matplotlib.figure import Figure
from matplotlib.text import Text

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.lab import timeline

PNG = b"\x89PNG\r\n\x1a\n"
TRICKY = "price $x$ <b>bold</b>"


def echo(lab: jl.Lab) -> None:
    @lab.service("/echo").on("session:new")
    def new(session: jl.Session) -> None:
        @session.on("/echo")
        def heard(msg: jl.Message) -> None:
            session.say(text=f"You said {msg.transcript}").hangup().reply()

        session.gather(input=["speech"], actionHook="/echo", say={"text": "Say something"}).send()


def texts(fig: Figure, gid: str) -> list[Text]:
    return [t for t in fig.axes[0].texts if t.get_gid() == gid]


def test_one_call_draws_an_arrow_per_frame_and_a_label_per_row(lab: jl.Lab) -> None:
    echo(lab)
    result = lab.call("/echo", sim.Caller.saying(TRICKY))
    events = lab.session(result.call_sid).events
    fig = lab.timeline(result.call_sid)

    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    frames = events[events["direction"].isin(["in", "out"])]
    assert len(ax.patches) == len(frames) >= 6
    labels = [t.get_text() for t in texts(fig, "label")]
    assert len(labels) == len(events)
    assert labels[0] == "session:new"
    assert f'verb:hook /echo "{TRICKY}"' in labels
    assert "ack: say, hangup" in labels
    assert "call:status in-progress" in labels and "call:status completed" in labels
    assert any(label.startswith("ack") for label in labels)
    assert "close" in labels  # the lab event at the end, as a marker with its label

    acks = lab.events.query("call_sid == @result.call_sid and type == 'ack'")
    latencies = [t.get_text() for t in texts(fig, "latency")]
    assert len(latencies) == acks["ack_ms"].notna().sum() == 2
    assert all(text.endswith(" ms") for text in latencies)
    assert [t.get_text() for t in texts(fig, "lane")] == ["jambonz", "app"]
    (header,) = texts(fig, "header")
    assert result.call_sid in header.get_text() and "+14155550100" in header.get_text()

    # arrows start on the sender's lane: in from jambonz (above), out from the app (below)
    starts = [float(np.asarray(arrow.get_path().vertices)[0, 1]) for arrow in ax.patches]
    directions = frames["direction"].tolist()
    top = max(starts)
    assert [y == top for y in starts] == [d == "in" for d in directions]


def test_caller_text_is_drawn_as_literal_text(lab: jl.Lab) -> None:
    echo(lab)
    result = lab.call("/echo", sim.Caller.saying(TRICKY), from_="$\\alpha$")
    with matplotlib.rc_context({"text.usetex": True}):  # even when the user turned TeX on
        fig = lab.timeline(result.call_sid)
    ax = fig.axes[0]
    (spoken,) = [t for t in ax.texts if TRICKY in t.get_text()]
    assert is_math_text(spoken.get_text())  # matplotlib would have parsed it as mathtext
    every = [*ax.texts, ax.xaxis.label]
    assert all(not t.get_parse_math() and not t.get_usetex() for t in every)
    assert "$\\alpha$" in texts(fig, "header")[0].get_text()
    # rendered, the dollar signs stay: literal text is wider than the math it would have been
    renderer = FigureCanvasAgg(fig).get_renderer()  # outside the TeX context: Agg renders
    as_math = ax.text(0, 0, spoken.get_text(), fontsize=spoken.get_fontsize())  # parsed, by default
    assert spoken.get_window_extent(renderer).width > as_math.get_window_extent(renderer).width


def test_saves_a_png_and_shows_itself_as_png(lab: jl.Lab, tmp_path: Path) -> None:
    echo(lab)
    lab.call("/echo", sim.Caller.saying("hello"))
    fig = lab.timeline()
    path = tmp_path / "timeline.png"
    fig.savefig(path)
    assert path.read_bytes().startswith(PNG)
    assert isinstance(fig, timeline.TimelineFigure)
    assert fig._repr_png_().startswith(PNG)


def test_several_calls_get_their_own_lanes_and_lab_events_are_markers(lab: jl.Lab) -> None:
    echo(lab)

    @lab.service("/broken").on("session:new")
    def broken(session: jl.Session) -> None:
        raise RuntimeError("no verbs today")

    lab.call("/echo", sim.Caller.saying("hello"))
    lab.call("/broken", sim.Caller(hangup_after=2))
    events = lab.events
    fig = lab.timeline()
    ax = fig.axes[0]
    assert [t.get_text() for t in texts(fig, "lane")] == ["jambonz", "app"] * 2
    assert len(texts(fig, "header")) == 2
    assert ax.get_title(loc="left") == "2 call(s)"
    assert len(ax.patches) == events["direction"].isin(["in", "out"]).sum()
    lab_rows = events[events["direction"] == "lab"]
    assert {"handler-error", "auto-ack"} <= set(lab_rows["type"])
    assert len(ax.lines) == len(lab_rows)
    markers = {line.get_marker() for line in ax.lines}
    assert {timeline.LAB_MARKERS["handler-error"][0], timeline.LAB_MARKERS["auto-ack"][0]} <= markers
    labels = [t.get_text() for t in texts(fig, "label")]
    assert "handler-error" in labels and "ack (auto): answer" in labels


def test_the_lab_timeline_draws_the_newest_calls_and_says_how_many_it_left_out(lab: jl.Lab) -> None:
    """After a load a lane per call would be a picture tens of thousands of pixels tall (issue 18
    item 5): the default draws the newest 20 calls, ``last=`` picks how many, ``None`` draws all."""
    echo(lab)
    sids = [lab.call("/echo", sim.Caller.saying(f"n{i}")).call_sid for i in range(4)]
    fig = lab.timeline(last=2)
    headers = [t.get_text() for t in texts(fig, "header")]
    assert len(headers) == 2 and all(any(sid in h for h in headers) for sid in sids[2:])
    assert fig.axes[0].get_title(loc="left") == "the newest 2 of 4 calls (timeline(last=None): all)"
    assert len(texts(lab.timeline(last=None), "header")) == 4
    assert len(texts(lab.timeline(), "header")) == 4  # fewer than 20: all of them
    with pytest.raises(ValueError, match="last must be"):
        lab.timeline(last=0)


def test_session_timeline_draws_only_that_call(lab: jl.Lab) -> None:
    echo(lab)
    lab.call("/echo", sim.Caller.saying("one"))
    second = lab.call("/echo", sim.Caller.saying("two"))
    session = lab.session(second.call_sid)
    fig = session.timeline()
    assert len(texts(fig, "header")) == 1
    assert len(fig.axes[0].patches) == session.events["direction"].isin(["in", "out"]).sum()
    assert not any('"one"' in t.get_text() for t in texts(fig, "label"))


def test_draw_takes_a_restored_log_and_refuses_nothing_to_draw(lab: jl.Lab, tmp_path: Path) -> None:
    echo(lab)
    result = lab.call("/echo", sim.Caller.saying("saved"))
    path = tmp_path / "call.jsonl"
    lab.session(result.call_sid).save(path)
    fig = timeline.draw(jl.read_log(path).events, title="from a file")
    title = fig.axes[0].get_title(loc="left")
    assert title == "from a file"
    fig = timeline.draw(jl.read_log(path).events, title="cost $5 to $6")
    (drawn,) = [
        t for t in fig.axes[0].get_children() if isinstance(t, Text) and t.get_text() == "cost $5 to $6"
    ]
    assert not drawn.get_parse_math()
    assert any('"saved"' in t.get_text() for t in texts(fig, "label"))
    with pytest.raises(ValueError, match="no events"):
        timeline.draw(pd.DataFrame(columns=list(jl.EventLog().to_dataframe().columns)))
    with pytest.raises(KeyError):
        lab.timeline("no-such-call")


def test_a_notebook_cell_shows_the_timeline_inline(tmp_path: Path) -> None:
    """In a real kernel, without pyplot: the cell's result is a PNG image."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    source = (
        "import jambonz_lab as jl\n"
        "from jambonz_lab import sim\n"
        "lab = jl.start()\n"
        "lab.service('/').on('session:new', lambda s: s.say(text='hi').hangup().send())\n"
        "lab.call('/', sim.Caller())\n"
        "lab.timeline()"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nbclient.NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    (output,) = [o for o in nb.cells[0].outputs if o["output_type"] == "execute_result"]
    assert "image/png" in output["data"]
    assert "pyplot" not in source


def test_the_picture_fits_a_notebook_column_and_its_labels_sit_over_the_arrows(lab: jl.Lab) -> None:
    """Notebook 03 in JupyterLab (a 1280-pixel window, the file browser open: a column of ~830 px)
    showed the 1,200-pixel PNG at ~70 %, its 8-point labels at ~7 px, and a later arrow struck
    through an ack's latency ("0.68 ms"), which had no box of its own. The PNG is 950 px wide now;
    every label and latency is drawn over the arrows on a white box."""
    import struct

    echo(lab)
    result = lab.call("/echo", sim.Caller.saying("hello"))
    fig = lab.timeline(result.call_sid)
    assert isinstance(fig, timeline.TimelineFigure)
    width, _height = struct.unpack(">II", fig._repr_png_()[16:24])  # the PNG's IHDR chunk
    assert width <= 960
    arrows = max(arrow.get_zorder() for arrow in fig.axes[0].patches)
    drawn = texts(fig, "label") + texts(fig, "latency")
    assert texts(fig, "latency") and drawn
    for text in drawn:
        box = text.get_bbox_patch()
        assert box is not None and tuple(box.get_facecolor()[:3]) == (1.0, 1.0, 1.0), text.get_text()
        assert text.get_zorder() > arrows
