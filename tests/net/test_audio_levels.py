"""The level meter's numbers (``net/audio_levels.py``): RMS in dBFS per channel, silence at the floor."""

from __future__ import annotations

import math

import numpy as np

from jambonz_lab.net.audio_levels import FLOOR_DBFS, SentAudio, level_labels, rms_dbfs
from jambonz_lab.protocol.audio import encode_l16


def test_rms_in_dbfs_per_channel() -> None:
    half = np.full(800, 16384, np.int16)  # a constant half of full scale: -6.02 dBFS
    sine = (np.sin(2 * np.pi * 440 * np.arange(800) / 8000) * 32767).astype(np.int16)  # 44 whole cycles
    assert rms_dbfs(half) == [round(20 * math.log10(0.5), 1)]
    assert rms_dbfs(np.stack([sine, np.zeros(800, np.int16)])) == [-3.0, FLOOR_DBFS]
    assert rms_dbfs(np.zeros((2, 0), np.int16)) == [FLOOR_DBFS, FLOOR_DBFS]
    assert rms_dbfs(np.ones(800, np.int16)) == [FLOOR_DBFS]  # -90.3 dBFS: under the floor


def test_labels_follow_the_mix_type() -> None:
    assert level_labels("mono") == ["caller"]
    assert level_labels("stereo") == ["caller", "app"]
    assert level_labels("mixed") == ["mixed"]


def test_sent_audio_keeps_the_newest_tenth_of_a_second() -> None:
    sent = SentAudio(8000)  # 800 samples: 1,600 bytes
    loud, quiet = np.full(1000, 20000, np.int16), np.full(300, 100, np.int16)
    sent.add(encode_l16(loud))
    sent.add(encode_l16(quiet))
    newest = np.frombuffer(sent.newest(), "<i2")
    assert newest.size == 800 and sent.sends == 2
    assert (newest[:500] == 20000).all() and (newest[500:] == 100).all()  # the last 0.1 s, in order
    for _ in range(10):
        sent.add(encode_l16(quiet))
    assert len(sent.chunks) <= 4  # bounded: old chunks are dropped
