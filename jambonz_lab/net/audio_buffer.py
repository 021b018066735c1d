"""The audio of one stream, with bounded memory.

:class:`AudioBuffer` keeps the newest ``keep_seconds`` of samples in memory.
Once a stream grows past that, the whole stream so far goes to a WAV file in a
temporary directory and every later chunk is appended there too (the header is
patched on each write, so the file is a valid WAV at any time); the memory then
holds only the newest ``keep_seconds``. :meth:`samples` returns everything,
from memory or from the file.

Chunks are appended on the loop thread; any thread may read (a lock guards both).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import wave
from collections import deque
from pathlib import Path
from typing import IO

import numpy as np

from ..protocol.audio import Samples, decode_l16, encode_l16

__all__ = ["AudioBuffer"]

log = logging.getLogger("jambonz_lab.audio")


class AudioBuffer:
    """Samples ``(channels, n)`` int16 at ``sample_rate``; see the module docstring."""

    def __init__(
        self, sample_rate: int, channels: int, *, keep_seconds: float = 60.0, spill_dir: str | None = None
    ) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.keep = max(1, int(keep_seconds * sample_rate))
        self.spill_dir = spill_dir
        #: samples per channel received in all
        self.total = 0
        #: binary frames appended
        self.frames = 0
        #: the WAV file holding the whole stream, once it outgrew memory
        self.path: Path | None = None
        self._chunks: deque[Samples] = deque()
        self._held = 0
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._wav: wave.Wave_write | None = None
        self._closed = False

    def append(self, chunk: Samples) -> None:
        """Add one frame's samples ``(channels, n)``."""
        n = chunk.shape[1]
        with self._lock:
            self.frames += 1
            if not n or self._closed:
                return
            self.total += n
            self._chunks.append(chunk)
            self._held += n
            if self._wav is None and self._held > self.keep:
                self._spill()
            elif self._wav is not None:
                self._write(chunk)
            while self._wav is not None and self._held - self._chunks[0].shape[1] >= self.keep:
                self._held -= self._chunks.popleft().shape[1]

    def _spill(self) -> None:
        """Open the WAV file and write what memory holds (the whole stream so far)."""
        try:
            fd, name = tempfile.mkstemp(prefix="jambonz-audio-", suffix=".wav", dir=self.spill_dir)
            self._file = os.fdopen(fd, "w+b")
            self._wav = wave.open(self._file, "wb")
            self._wav.setnchannels(self.channels)
            self._wav.setsampwidth(2)
            self._wav.setframerate(self.sample_rate)
            self.path = Path(name)
        except OSError as exc:
            log.error("cannot spill audio to a file: %s; keeping it in memory", exc)
            self.keep = 1 << 62
            return
        for chunk in self._chunks:
            self._write(chunk)
        log.debug("audio spilled to %s", self.path)

    def _write(self, chunk: Samples) -> None:
        assert self._wav is not None
        self._wav.writeframes(encode_l16(chunk))  # patches the header: the file stays readable

    @property
    def seconds(self) -> float:
        return self.total / self.sample_rate

    def samples(self) -> Samples:
        """Every sample so far, ``(channels, n)``."""
        with self._lock:
            if self.path is None:
                return self._joined(list(self._chunks))
            if self._file is not None:
                self._file.flush()
            with wave.open(str(self.path), "rb") as w:
                return decode_l16(w.readframes(w.getnframes()), self.channels)

    def latest(self, seconds: float) -> Samples:
        """The newest ``seconds`` (at most what memory holds)."""
        want = max(0, int(seconds * self.sample_rate))
        with self._lock:
            joined = self._joined(list(self._chunks))
        return joined[:, max(0, joined.shape[1] - want) :]

    def _joined(self, chunks: list[Samples]) -> Samples:
        if not chunks:
            return np.zeros((self.channels, 0), dtype=np.int16)
        return np.concatenate(chunks, axis=1)

    def close(self) -> None:
        """Finish the WAV file (it stays on disk until :meth:`discard`)."""
        with self._lock:
            self._closed = True
            if self._wav is not None:
                self._wav.close()
            if self._file is not None:
                self._file.close()
            self._wav = self._file = None

    def discard(self) -> None:
        """Close and delete the spill file, if any."""
        self.close()
        with self._lock:
            if self.path is not None:
                self.path.unlink(missing_ok=True)
