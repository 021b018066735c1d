"""Audio for notebooks: a player, a waveform and a spectrogram of int16 samples ``(channels, n)``.

IPython and matplotlib are imported when first used; the figures are
``matplotlib.figure.Figure`` objects (no pyplot state). The spectrogram is a
short-time FFT with numpy (Hann window, half overlap), in dB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..protocol.audio import Samples, to_wav

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["player", "spectrogram", "spectrum", "waveform"]

CHANNEL_NAMES = ("caller", "callee")


def player(samples: Samples, sample_rate: int) -> Any:
    """An ``IPython.display.Audio`` of the samples (a WAV; stereo stays stereo)."""
    from IPython.display import Audio

    return Audio(data=to_wav(samples, sample_rate), rate=sample_rate)  # type: ignore[no-untyped-call]


def _label(i: int, channels: int) -> str:
    return CHANNEL_NAMES[i] if channels == 2 else "audio"


def waveform(samples: Samples, sample_rate: int, *, title: str = "") -> Figure:
    """One axis per channel: amplitude (-1..1) over seconds."""
    from ..figure import InlineFigure

    channels = samples.shape[0]
    fig = InlineFigure(figsize=(9, 1.8 * channels + 0.6), layout="constrained")
    axes = fig.subplots(channels, 1, sharex=True, squeeze=False)[:, 0]
    t = np.arange(samples.shape[1]) / sample_rate
    for i, ax in enumerate(axes):
        ax.plot(t, samples[i] / 32768.0, linewidth=0.6)
        ax.set_ylim(-1.0, 1.0)
        ax.set_ylabel(_label(i, channels))
    axes[-1].set_xlabel("seconds")
    if title:
        fig.suptitle(title)
    return fig


def spectrum(channel: Any, sample_rate: int, window: int = 256) -> tuple[Any, Any, Any]:
    """``(power_db, freqs, times)`` of one channel: power ``(freqs, frames)`` in dB."""
    x = np.asarray(channel, dtype=np.float64) / 32768.0
    hop = max(1, window // 2)
    if x.size < window:
        x = np.pad(x, (0, window - x.size))
    frames = 1 + (x.size - window) // hop
    index = np.arange(window)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.fft.rfft(x[index] * np.hanning(window), axis=1)
    power = 10.0 * np.log10(np.abs(spec) ** 2 + 1e-12)
    freqs = np.fft.rfftfreq(window, 1.0 / sample_rate)
    times = (np.arange(frames) * hop + window / 2) / sample_rate
    return power.T, freqs, times


def spectrogram(samples: Samples, sample_rate: int, *, window: int = 256, title: str = "") -> Figure:
    """One axis per channel: frequency over seconds, colour in dB."""
    from ..figure import InlineFigure

    channels = samples.shape[0]
    fig = InlineFigure(figsize=(9, 2.2 * channels + 0.6), layout="constrained")
    axes = fig.subplots(channels, 1, sharex=True, squeeze=False)[:, 0]
    for i, ax in enumerate(axes):
        power, freqs, times = spectrum(samples[i], sample_rate, window)
        mesh = ax.pcolormesh(times, freqs, power, shading="nearest", vmin=power.max() - 80, vmax=power.max())
        ax.set_ylabel(f"{_label(i, channels)} Hz")
        fig.colorbar(mesh, ax=ax, label="dB")
    axes[-1].set_xlabel("seconds")
    if title:
        fig.suptitle(title)
    return fig
