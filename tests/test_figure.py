"""InlineFigure: every picture jambonz_lab draws shows itself in a notebook without pyplot."""

from __future__ import annotations

import numpy as np

from jambonz_lab.figure import InlineFigure
from jambonz_lab.lab import timeline
from jambonz_lab.lab.turns import plot_response_times
from jambonz_lab.net.audio_views import spectrogram, waveform

PNG = b"\x89PNG\r\n\x1a\n"


def test_an_inline_figure_renders_itself_as_png() -> None:
    fig = InlineFigure(figsize=(2, 1))
    fig.subplots().plot([0, 1], [1, 0])
    assert fig._repr_png_().startswith(PNG)


def test_the_timeline_latency_and_audio_pictures_are_inline_figures() -> None:
    import pandas as pd

    assert timeline.TimelineFigure is InlineFigure
    turns = pd.DataFrame({"call_sid": ["a", "b"], "response_ms": [10.0, 20.0]})
    tone = (np.sin(np.arange(800) / 3) * 3000).astype(np.int16).reshape(1, -1)
    for fig in (plot_response_times(turns), waveform(tone, 8000), spectrogram(tone, 8000)):
        assert isinstance(fig, InlineFigure) and fig._repr_png_().startswith(PNG)
