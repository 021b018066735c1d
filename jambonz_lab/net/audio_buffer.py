"""The audio of one stream, with bounded memory.

:class:`AudioBuffer` keeps the newest ``keep_seconds`` of samples in memory.
Once a stream grows past that, the whole stream so far goes to a WAV file in a
temporary directory and every later chunk is appended there too (the header is
patched on each write, so the file is a valid WAV at any time); the memory then
holds only the newest ``keep_seconds``. :meth:`samples` returns everything,
from memory or from the file.

Frames are kept as the L16 bytes they came in (no numpy work per frame: a 20 ms frame costs a
deque append) and decoded when read. Chunks are appended on the loop thread; any thread may
read (a lock guards both).
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
        self._chunks: deque[bytes] = deque()
        self._block = 2 * channels  # bytes per sample frame
        self._held = 0
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._wav: wave.Wave_write | None = None
        self._closed = False

    def append(self, chunk: Samples) -> None:
        """Add one frame's samples ``(channels, n)``."""
        self.append_l16(encode_l16(chunk))

    def append_l16(self, data: bytes) -> None:
        """Add one frame as it came: L16 bytes, interleaved, a whole number of samples per channel."""
        n = len(data) // self._block
        with self._lock:
            self.frames += 1
            if not n or self._closed:
                return
            self.total += n
            self._chunks.append(data)
            self._held += n
            if self._wav is None:
                if self._held > self.keep:
                    self._spill()
            else:
                self._wav.writeframes(data)  # patches the header: the file stays readable
            while self._wav is not None and self._held - len(self._chunks[0]) // self._block >= self.keep:
                self._held -= len(self._chunks.popleft()) // self._block

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
        self._wav.writeframes(b"".join(self._chunks))
        log.debug("audio spilled to %s", self.path)

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
        tail: list[bytes] = []
        got = 0
        with self._lock:
            for chunk in reversed(self._chunks):
                if got >= want:
                    break
                tail.append(chunk)
                got += len(chunk) // self._block
        joined = self._joined(tail[::-1])
        return joined[:, max(0, joined.shape[1] - want) :]

    def _joined(self, chunks: list[bytes]) -> Samples:
        if not chunks:
            return np.zeros((self.channels, 0), dtype=np.int16)
        return decode_l16(b"".join(chunks), self.channels)

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
