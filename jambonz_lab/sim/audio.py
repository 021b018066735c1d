"""Audio in the simulator: the caller's audio, what the app plays, a call's two-channel recording.

Every simulated call keeps :class:`CallAudio` (``result.audio``): segments of sound
on two sides, ``caller`` and ``app``, each at its call time:

* caller: :class:`~jambonz_lab.sim.caller.Audio` inputs as themselves; DTMF keys of
  :class:`~jambonz_lab.sim.caller.Digits` as their in-band tones (0.1 s each); the
  words of a :class:`~jambonz_lab.sim.caller.Speech` as a placeholder (shaped noise,
  as long as a TTS voice would take to say them, ending when the final transcript comes);
* app: ``say`` and ``play`` as a placeholder (a soft 440 Hz tone, as long as the
  simulator lets them last), the audio an app sends on a listen socket (``playAudio``,
  bidirectional raw PCM) as itself, from the moment it plays.

:meth:`CallAudio.render` mixes them into a ``(2, n)`` int16 array, caller left, app
right, from call time 0 to the end of the call, silence where nobody speaks
(``result.recording()``, ``result.save_wav(path)``). A listen's stream reads the same
segments (:meth:`CallAudio.window`) at its own rate.

Resampling is linear interpolation (numpy), enough to hear and to test with, not a
speech-grade filter.
"""

from __future__ import annotations

import math
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..protocol.audio import encode_l16, from_wav

__all__ = [
    "DTMF_SECONDS",
    "CallAudio",
    "Segment",
    "Side",
    "dtmf_freqs",
    "placeholder",
    "render",
    "resample",
]

Samples = npt.NDArray[np.int16]
Side = Literal["caller", "app"]

#: how long a pressed key sounds (in-band tone) in the recording and a listen stream
DTMF_SECONDS = 0.1
#: the amplitude of placeholders (a fraction of full scale): audible, softer than real audio
PLACEHOLDER_AMPLITUDE = 0.08

_DTMF_ROWS = (697.0, 770.0, 852.0, 941.0)
_DTMF_COLS = (1209.0, 1336.0, 1477.0, 1633.0)
_DTMF_KEYS = ("123A", "456B", "789C", "*0#D")


def dtmf_freqs(key: str) -> tuple[float, float]:
    """The (row, column) frequencies of a DTMF key."""
    for row, keys in zip(_DTMF_ROWS, _DTMF_KEYS, strict=True):
        if key.upper() in keys and len(key) == 1:
            return row, _DTMF_COLS[keys.index(key.upper())]
    raise ValueError(f"{key!r} is not a DTMF key (0-9 * # A-D)")


def resample(samples: npt.ArrayLike, src: int, dst: int) -> Samples:
    """Mono int16 ``samples`` from ``src`` Hz to ``dst`` Hz by linear interpolation."""
    x = np.asarray(samples).reshape(-1)
    if src == dst or x.size == 0:
        return x.astype(np.int16)
    n = int(round(x.size * dst / src))
    at = np.arange(n, dtype=np.float64) * (src / dst)
    out = np.interp(at, np.arange(x.size, dtype=np.float64), x.astype(np.float64))
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def _tone(freq: float | tuple[float, float], seconds: float, amplitude: float, rate: int) -> Samples:
    n = int(round(seconds * rate))
    t = np.arange(n, dtype=np.float64) / rate
    freqs = freq if isinstance(freq, tuple) else (freq,)
    wave_ = np.zeros(n)
    for f in freqs:
        if f:
            wave_ += np.sin(2 * math.pi * f * t)
    wave_ *= amplitude * 32767 / max(1, len(freqs))
    return np.clip(np.round(wave_), -32768, 32767).astype(np.int16)


def render(source: Any, rate: int, source_rate: int | None = None) -> Samples:
    """An audio source as mono int16 samples at ``rate``.

    ``source``: a :class:`~jambonz_lab.sim.caller.Tone`, a float (seconds of silence),
    a WAV path (16-bit PCM; several channels are averaged), a numpy array with
    ``source_rate``, a ``(samples, rate)`` pair, an :class:`~jambonz_lab.sim.caller.Audio`,
    or a list of these (back to back).

    Raises:
        ValueError: a source it cannot read (one line: what and why).
    """
    from .caller import Audio, Tone

    if isinstance(source, Audio):
        return render(source.source, rate, source.rate)
    if isinstance(source, Tone):
        return _tone(source.freq, source.seconds, source.amplitude, rate)
    if isinstance(source, (int, float)) and not isinstance(source, bool):
        return np.zeros(int(round(float(source) * rate)), dtype=np.int16)
    if isinstance(source, (str, Path)):
        try:
            samples, wav_rate = from_wav(Path(source).read_bytes())
        except OSError as exc:
            raise ValueError(f"caller audio {str(source)!r}: {exc.strerror or exc}") from None
        mono = samples.astype(np.int32).mean(axis=0) if samples.shape[0] > 1 else samples[0]
        return resample(mono, wav_rate, rate)
    if isinstance(source, np.ndarray):
        if source_rate is None:
            raise ValueError("caller audio: a numpy array needs its sample rate (Audio(array, rate=...))")
        if source.ndim != 1:
            raise ValueError(f"caller audio: a numpy array must be 1-D (mono), not {source.ndim}-D")
        if np.issubdtype(source.dtype, np.floating):
            source = np.clip(np.round(source * 32767), -32768, 32767)
        return resample(source, source_rate, rate)
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], np.ndarray):
        return render(source[0], rate, int(source[1]))
    if isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
        parts = [render(part, rate, source_rate) for part in source]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
    raise ValueError(f"caller audio: cannot play a {type(source).__name__}")


def placeholder(side: Side, seconds: float, rate: int, seed: int = 0) -> Samples:
    """Something audible of the right length: the app's a soft 440 Hz tone, the caller's shaped
    noise (speech-like bursts, four a second), both faded in and out."""
    n = max(0, int(round(seconds * rate)))
    if side == "app":
        out = _tone(440.0, seconds, PLACEHOLDER_AMPLITUDE, rate).astype(np.float64)
    else:
        rng = np.random.default_rng(seed)
        t = np.arange(n, dtype=np.float64) / rate
        envelope = 0.55 + 0.45 * np.sin(2 * math.pi * 4 * t)
        out = rng.standard_normal(n) * envelope * PLACEHOLDER_AMPLITUDE * 32767 / 2
    fade = min(n // 2, int(0.01 * rate))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        out[:fade] *= ramp
        out[n - fade :] *= ramp[::-1]
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


@dataclass(eq=False)
class Segment:
    """One sound of one side from call time ``start``: ``samples`` (mono int16 at ``rate``), or, for a
    placeholder, ``length`` samples made from ``seed`` only when the call's audio is rendered (a load
    of many calls keeps a few numbers per say, not its samples)."""

    side: Side
    start: float
    samples: Samples | None
    rate: int
    label: str = ""
    length: int = 0
    seed: int = 0
    #: a placeholder's length as made (``length`` is less after a cut)
    full: int = 0
    _cache: dict[int, Samples] = field(default_factory=dict, repr=False)

    @property
    def seconds(self) -> float:
        return (self.samples.size if self.samples is not None else self.length) / self.rate

    @property
    def end(self) -> float:
        return self.start + self.seconds

    def data(self) -> Samples:
        """The samples at the segment's own rate (a placeholder's made now)."""
        if self.samples is not None:
            return self.samples
        return placeholder(self.side, self.full / self.rate, self.rate, self.seed)[: self.length]

    def at(self, rate: int) -> Samples:
        """The samples at ``rate`` (resampled once)."""
        if rate == self.rate:
            return self.data()
        if rate not in self._cache:
            self._cache[rate] = resample(self.data(), self.rate, rate)
        return self._cache[rate]

    def cut(self, at: float) -> None:
        """Stop the sound at call time ``at`` (a killAudio)."""
        keep = max(0, int(round((at - self.start) * self.rate)))
        if self.samples is None:
            self.length = min(self.length, keep)
        elif keep < self.samples.size:
            self.samples = self.samples[:keep]
        self._cache.clear()


@dataclass
class CallAudio:
    """A call's sound on both sides; ``end``: the call time the call ended (set at its end)."""

    segments: list[Segment] = field(default_factory=list)
    end: float | None = None

    def add(self, side: Side, start: float, samples: Samples, rate: int, label: str = "") -> Segment:
        segment = Segment(side, max(0.0, start), np.asarray(samples, dtype=np.int16).reshape(-1), rate, label)
        self.segments.append(segment)
        return segment

    def add_placeholder(self, side: Side, start: float, seconds: float, label: str = "") -> Segment | None:
        """A placeholder (:func:`placeholder`) kept at 8 kHz (None for no time)."""
        if seconds <= 0:
            return None
        n = int(round(seconds * 8000))
        segment = Segment(side, max(0.0, start), None, 8000, label, length=n, seed=len(self.segments), full=n)
        self.segments.append(segment)
        return segment

    def window(self, side: Side, first: int, n: int, rate: int) -> Samples:
        """``n`` samples of ``side`` at ``rate`` from sample ``first`` (call time ``first / rate``)."""
        out = np.zeros(n, dtype=np.int32)
        last = first + n
        for seg in self.segments:
            if seg.side != side:
                continue
            begin = int(round(seg.start * rate))
            data = seg.at(rate)
            lo, hi = max(first, begin), min(last, begin + data.size)
            if lo < hi:
                out[lo - first : hi - first] += data[lo - begin : hi - begin]
        return np.clip(out, -32768, 32767).astype(np.int16)

    def render(self, rate: int = 8000, seconds: float | None = None) -> Samples:
        """Both sides, ``(2, n)`` int16 (caller, app), from call time 0 for ``seconds``
        (default: to the call's end, else to the last sound)."""
        if seconds is None:
            seconds = self.end if self.end is not None else max((s.end for s in self.segments), default=0.0)
        n = int(round(seconds * rate))
        return np.stack([self.window("caller", 0, n, rate), self.window("app", 0, n, rate)])

    def save_wav(self, path: str | Path, rate: int = 8000) -> Path:
        """The recording as a two-channel 16-bit WAV file (caller left, app right)."""
        target = Path(path)
        with wave.open(str(target), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(encode_l16(self.render(rate)))
        return target


def input_taken(audio: CallAudio, now: float, taken: Any) -> None:
    """The caller's input as a verb takes it at call time ``now``: its sound in the recording.

    Speech: a placeholder ending at ``now + after`` (when its final comes), as long as a
    TTS voice takes to say it (no longer than ``after``), then its ``more`` in turn; Digits:
    each key's DTMF tone at its press. An :class:`~jambonz_lab.sim.caller.Audio` is added
    by the listen that streams it (it knows when the stream starts).
    """
    from .caller import Digits, Speech
    from .verbs.basic import speech_seconds

    if isinstance(taken, Speech):
        said_at = now + taken.after
        seconds = min(speech_seconds(taken.text), max(0.0, taken.after))
        audio.add_placeholder("caller", said_at - seconds, seconds, f"speech {taken.text!r}")
        cursor = said_at
        for more in taken.more:
            input_taken(audio, cursor, more)
            cursor += more.after + (
                (len(more.digits) - 1) * more.interval if isinstance(more, Digits) else 0.0
            )
    elif isinstance(taken, Digits):
        for i, key in enumerate(taken.digits):
            add_key(audio, now + taken.after + i * taken.interval, key)


def add_key(audio: CallAudio, at: float, key: str) -> None:
    """A pressed key's in-band tone (nothing for a character that is no DTMF key)."""
    try:
        freqs = dtmf_freqs(key)
    except ValueError:
        return
    audio.add("caller", at, _tone(freqs, DTMF_SECONDS, 0.3, 8000), 8000, f"dtmf {key}")
