"""The one Figure class jambonz_lab draws on: a matplotlib ``Figure`` that shows itself inline.

A bare ``matplotlib.figure.Figure`` displays as ``<Figure size …>`` in Jupyter unless pyplot's inline
backend is active. :class:`InlineFigure` renders itself to PNG with Agg, so a timeline, a waveform or a
latency plot as the last line of a cell shows the picture in any kernel, with no pyplot global state.
Import this module only where a picture is drawn: it imports matplotlib.

Example::

    from jambonz_lab.figure import InlineFigure
    fig = InlineFigure(figsize=(6, 3))
    fig.subplots().plot([0, 1], [0, 1])
    fig                      # a PNG in a notebook

Any thread (Agg draws off-screen).
"""

from __future__ import annotations

import io

try:
    from matplotlib.figure import Figure
except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
    raise ImportError("pictures need matplotlib: pip install matplotlib") from exc

__all__ = ["InlineFigure"]


class InlineFigure(Figure):
    """A matplotlib ``Figure`` that shows itself inline in Jupyter, as a PNG."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=100)
        return buf.getvalue()
