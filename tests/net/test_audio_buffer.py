"""AudioBuffer keeps frames as their L16 bytes and decodes them when read (net/audio_buffer.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jambonz_lab.net.audio_buffer import AudioBuffer
from jambonz_lab.protocol.audio import encode_l16


def stereo(n: int, start: int) -> np.ndarray:
    left = np.arange(start, start + n, dtype=np.int16)
    return np.stack([left, -left])


def test_latest_and_samples_across_frames_in_memory() -> None:
    buf = AudioBuffer(16000, 2)
    for k in range(5):
        buf.append_l16(encode_l16(stereo(320, k * 320)))
    assert (buf.frames, buf.total) == (5, 1600)
    everything = buf.samples()
    assert everything.shape == (2, 1600) and np.array_equal(everything, stereo(1600, 0))
    assert np.array_equal(buf.latest(0.025), stereo(1600, 0)[:, -400:])  # 1.25 frames
    assert buf.latest(0).shape == (2, 0)


def test_spilled_buffer_keeps_everything_on_disk_and_the_newest_in_memory(tmp_path: Path) -> None:
    buf = AudioBuffer(8000, 1, keep_seconds=0.05, spill_dir=str(tmp_path))  # 400 samples
    for k in range(10):
        buf.append(np.arange(k * 160, (k + 1) * 160, dtype=np.int16)[None, :])
    assert buf.path is not None and buf.path.parent == tmp_path
    assert np.array_equal(buf.samples()[0], np.arange(1600, dtype=np.int16))
    newest = buf.latest(10.0)[0]
    assert 400 <= newest.size < 400 + 160 and np.array_equal(newest, np.arange(1600 - newest.size, 1600))
    buf.discard()
    assert not buf.path.exists()
