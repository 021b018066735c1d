"""Live levels of an audio stream: RMS in dBFS over the newest ~100 ms, per channel.

What the session card's level meter shows while a listen/stream socket sends audio
(:meth:`jambonz_lab.net.audio.AudioStream.levels`). Nothing is computed per frame: the
frame path stays a deque append (``audio_buffer.py``); a reader (the widget hub, at most
every 150 ms per card) decodes the newest :data:`WINDOW` seconds it holds and takes one
numpy sum of squares per channel. A stream with no new frame for :data:`STALE` seconds
reads as silent (the simulator skips silence on its virtual clock; a stalled sender sends
nothing), so a meter never freezes on its last value.

Example::

    rms_dbfs(np.full((1, 800), 16384, np.int16))   # [-6.02]
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FLOOR_DBFS", "STALE", "WINDOW", "Freshness", "Levels", "SentAudio", "level_labels", "rms_dbfs"]

#: seconds of audio a level is taken over
WINDOW = 0.1
#: what silence (and no audio at all) reads as; -inf does not travel as JSON
FLOOR_DBFS = -90.0
#: seconds without a new frame after which a channel reads as silent
STALE = 0.3

_FULL_SCALE = 32768.0


def rms_dbfs(samples: Any) -> list[float]:
    """RMS of each channel of int16 ``samples`` ``(channels, n)`` in dB full scale, rounded to 0.1 dB;
    :data:`FLOOR_DBFS` at most (silence, or no samples)."""
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.shape[1] == 0:
        return [FLOOR_DBFS] * arr.shape[0]
    x = arr.astype(np.float64)
    mean_square = np.einsum("ij,ij->i", x, x) / arr.shape[1]
    out = []
    for ms in mean_square.tolist():
        db = 10.0 * math.log10(ms / (_FULL_SCALE * _FULL_SCALE)) if ms > 0 else FLOOR_DBFS
        out.append(round(max(FLOOR_DBFS, db), 1))
    return out


def level_labels(mix_type: str) -> list[str]:
    """What each channel of a stream is: ``mono`` the caller, ``stereo`` caller and what the
    caller hears (the app's side), ``mixed`` both legs summed."""
    if mix_type == "stereo":
        return ["caller", "app"]
    return ["mixed"] if mix_type == "mixed" else ["caller"]


@dataclass(frozen=True)
class Levels:
    """One reading of a stream's meter.

    Attributes:
        labels: what each level is (``caller``, ``app``, ``mixed``).
        dbfs: RMS over the newest :data:`WINDOW` seconds, per label (numbers, never text).
        state: ``flowing`` (a frame came within :data:`STALE` s), ``idle`` (open, no recent
            frame) or ``ended`` (the socket closed; every level reads :data:`FLOOR_DBFS`).
    """

    labels: tuple[str, ...]
    dbfs: tuple[float, ...]
    state: str


class Freshness:
    """Whether a frame counter moved within :data:`STALE` seconds (read side only: no cost per frame)."""

    def __init__(self) -> None:
        self._seen = 0
        self._moved_at = -math.inf

    def fresh(self, count: int) -> bool:
        now = time.monotonic()
        if count != self._seen:
            self._seen = count
            self._moved_at = now
        return now - self._moved_at <= STALE


class SentAudio:
    """The newest L16 bytes the app sent back as raw audio (bidirectional streaming), bounded to
    about :data:`WINDOW` seconds at ``sample_rate``; loop thread."""

    def __init__(self, sample_rate: int) -> None:
        self.keep = max(2, int(WINDOW * sample_rate) * 2)
        self.chunks: deque[bytes] = deque()
        self.held = 0
        #: raw sends so far
        self.sends = 0

    def add(self, data: bytes) -> None:
        self.sends += 1
        self.chunks.append(data)
        self.held += len(data)
        while self.held - len(self.chunks[0]) >= self.keep:
            self.held -= len(self.chunks.popleft())

    def newest(self) -> bytes:
        """The newest ~:data:`WINDOW` seconds, whole samples."""
        data = b"".join(self.chunks)
        data = data[max(0, len(data) - self.keep) :]
        return data[len(data) % 2 :]
