"""Frames joined, stored and read back in bounded pieces, so that no one C call holds the GIL long.

The lab's loop thread shares the GIL with a thread that builds a view. A pandas or pickle call on a
whole frame of Python objects (text columns) is one C call that holds the GIL throughout: 5–30 ms at
100 k calls, a wait added to every ack the loop owes meanwhile. Numbers copy in microseconds; Python
objects do not (each copy touches the object's reference count). So here:

- :func:`concat` joins frames column by column, copying at most :data:`STEP` objects per C call and
  letting other threads run between copies; the result is :func:`pandas.concat` ``(ignore_index=True)``
  of the same frames, one block per column (never consolidated into one 2-D block, which is a copy of
  every object at once);
- :func:`dump` writes a frame as pickles of :data:`SLICE_ROWS` rows each, and :func:`load` reads it
  back slice by slice (one unpickling step per slice, not per file);
- a frame handed out (``concat(..., hand_out=True)``) has its text arrays kept here too: once its
  reader drops it (no reference left but ours), :func:`sweep` frees its values a step at a time
  (a thread woken when the frame goes; the keeper and the next read sweep too).
  Dropping a frame of many Python objects frees them all in one uninterrupted cascade (13 ms for
  ``lab.hooks`` at 100 k calls), in whichever thread drops it.
"""

from __future__ import annotations

import logging
import pickle
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SLICE_ROWS",
    "STEP",
    "by_steps",
    "columns_of",
    "concat",
    "dump",
    "frame",
    "load",
    "pause",
    "release",
    "sweep",
    "values",
]

#: rows per bounded step: the slowest per-object steps (a missing-value check, comparing text) take
#: 50–80 ns a value here, so about 0.5 ms; a copy of references about 0.03 ms
STEP = 8_192
#: objects handled between two voluntary hand-overs of the GIL (see :func:`pause`)
_HAND_OVER = 4 * STEP
#: rows per pickle in a spilled file (a slice of soak events unpickles in about 0.5 ms)
SLICE_ROWS = 1_000


class _Work(threading.local):
    done = 0
    wall = 0.0  # perf_counter at the last hand-over
    cpu = 0.0  # this thread's CPU time then


_work = _Work()
#: a thread that was kept from running longer than this (s) since its last hand-over shares the GIL
#: with a busy thread (the loop, serving calls)
CONTENDED = 0.0003
#: how long it then stays away (s): the loop runs that long without waiting for the GIL
BACK_OFF = 0.002
#: the longest stretch (s) between two hand-overs, however few objects were counted
_EVERY = 0.001


def _on_a_loop() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def pause(objects: int = STEP) -> None:
    """Count ``objects`` handled; past a few steps' worth or a millisecond since the last time,
    hand the GIL over.

    If this thread was kept waiting since the last hand-over (its wall time ran ahead of its CPU
    time by more than :data:`CONTENDED`: the loop took the GIL, or the machine is busy), it sleeps
    :data:`BACK_OFF`, else ``time.sleep(0)``. So a builder takes the GIL when the loop does not
    want it and yields it when the loop does: forced switches alone share it half and half, and
    halve the loop's pace while a view is built.
    """
    _work.done += objects
    wall = time.perf_counter()
    if _work.done < _HAND_OVER and wall - _work.wall < _EVERY:
        return
    _work.done = 0
    if _on_a_loop():  # never sleeps on an event loop's thread
        return
    cpu = time.thread_time()
    kept = (wall - _work.wall) - (cpu - _work.cpu)
    time.sleep(BACK_OFF if kept > CONTENDED else 0)
    _work.wall, _work.cpu = time.perf_counter(), time.thread_time()


def values(series: pd.Series) -> Any:
    """The column's array: a NumPy array for NumPy dtypes, else its extension array (datetimes
    with a time zone stay datetimes)."""
    import pandas as pd

    array = series.array
    return array.to_numpy() if isinstance(array, pd.arrays.NumpyExtensionArray) else array


#: the column arrays :func:`columns_of` took, by ``id`` of their frame while it lives (a dict
#: operation is atomic under the GIL, and a lock here could be taken again by the removal
#: callback, run by a garbage collection in the thread holding it)
_taken: dict[int, tuple[weakref.ref[Any], list[Any]]] = {}


def columns_of(data: pd.DataFrame) -> list[Any]:
    """``[values(data[c]) for c in data.columns]``, taken once per frame while it lives.

    pandas makes a view of a frame's index and block for each column taken (``data[col]``) and
    keeps a weak reference to it on both, dead or alive, until a few hundred pile up. The event
    log's in-memory chunks are read at every view read, so each read left a few dead references
    per column on each chunk. For frames not changed after they are made (the log's chunks and
    the calls aggregate's blocks, which are replaced, not changed): a frame changed after would
    read stale columns here.
    """
    key = id(data)
    hit = _taken.get(key)
    if hit is not None and hit[0]() is data:
        return hit[1]
    arrays = [values(data[c]) for c in data.columns]

    def forget(gone: weakref.ref[Any], key: int = key) -> None:
        if (entry := _taken.get(key)) is not None and entry[0] is gone:
            _taken.pop(key, None)  # a new frame under the same id may lose its entry: taken again

    _taken[key] = (weakref.ref(data, forget), arrays)
    return arrays


def frame(columns: Sequence[Any], arrays: Sequence[Any], n: int) -> pd.DataFrame:
    """A frame of ``arrays`` (each ``n`` long, not copied) with a RangeIndex, one block per column."""
    import pandas as pd

    index = pd.RangeIndex(n)
    data = {
        c: pd.Series(a, index=index, dtype=a.dtype, copy=False) for c, a in zip(columns, arrays, strict=True)
    }
    return pd.DataFrame(data, index=index, columns=pd.Index(list(columns)), copy=False)


def _join(pieces: Sequence[Any]) -> Any:
    """One array of the pieces, copied in steps of at most :data:`STEP` objects."""
    import numpy as np
    import pandas as pd

    first = pieces[0]
    alike = all(isinstance(p, np.ndarray) and p.dtype == first.dtype for p in pieces)
    if alike and first.dtype != object:  # numbers: one copy of bytes
        return np.concatenate(pieces)
    if not alike:  # extension arrays (datetimes, Arrow text: buffers, not objects) or mixed dtypes
        if len(pieces) == 1:  # a copy, as for the others: the result shares no memory with its input
            return first.copy()
        joined = pd.concat([pd.Series(p, dtype=p.dtype, copy=False) for p in pieces], ignore_index=True)
        return values(joined)
    out = np.empty(sum(len(p) for p in pieces), dtype=object)
    at = 0
    for piece in pieces:
        for start in range(0, len(piece), STEP):
            part = piece[start : start + STEP]
            out[at : at + len(part)] = part
            at += len(part)
            pause(len(part))
    return out


def by_steps(series: pd.Series, step: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``step(series)`` for a row-wise ``step``, applied to :data:`STEP` rows at a time."""
    import pandas as pd

    if len(series) <= STEP:
        return step(series)
    pieces = []
    for start in range(0, len(series), STEP):
        pieces.append(values(step(series.iloc[start : start + STEP])))
        pause()
    joined = _join(pieces)
    out: pd.Series = pd.Series(joined, index=series.index, dtype=joined.dtype, name=series.name, copy=False)
    return out


def concat(frames: Sequence[pd.DataFrame], *, hand_out: bool = False) -> pd.DataFrame:
    """``pd.concat(frames, ignore_index=True)`` in bounded steps (frames with the same columns in
    the same order; others go to pandas as they are). ``hand_out``: the result goes to a reader,
    its text arrays are freed by :func:`sweep` once the reader drops it."""
    import numpy as np
    import pandas as pd

    columns = list(frames[0].columns)
    if any(list(f.columns) != columns for f in frames) or len(set(columns)) != len(columns):
        return pd.concat(frames, ignore_index=True)
    taken = [columns_of(f) for f in frames]
    arrays = [_join([t[i] for t in taken]) for i in range(len(columns))]
    out = frame(columns, arrays, sum(len(f) for f in frames))
    if hand_out:
        with _handed.lock:
            _handed.arrays.extend(a for a in arrays if isinstance(a, np.ndarray) and a.dtype.hasobject)
        weakref.finalize(out, _Sweeper.wake).atexit = False  # dropped: freed soon, in steps
    return out


class _Sweeper:
    """A daemon thread that sweeps shortly after a handed-out frame is dropped (a finalizer runs
    while the frame still holds its arrays, so it only wakes the thread)."""

    lock = threading.Lock()
    woken = threading.Event()
    thread: threading.Thread | None = None

    @classmethod
    def wake(cls) -> None:
        with cls.lock:
            if cls.thread is None:
                cls.thread = threading.Thread(target=cls.run, name="jambonz-lab-sweep", daemon=True)
                cls.thread.start()
        cls.woken.set()

    @classmethod
    def run(cls) -> None:
        while True:
            cls.woken.wait()
            time.sleep(0.05)  # the dropped frame's deallocation is over by then
            cls.woken.clear()
            try:
                sweep()
            except Exception:  # the sweeper must live on; a view read sweeps too
                logging.getLogger("jambonz_lab.lab").exception("freeing a dropped view failed")


class _Handed:
    """The text arrays of frames handed out, until their readers drop them."""

    lock = threading.Lock()
    arrays: list[Any] = []


_handed = _Handed()


def sweep() -> int:
    """Free, a step at a time, the values of the handed-out arrays no frame uses any more; returns
    how many arrays. Any thread but the loop's (a view read, the event log's keeper).

    An array still in a frame (or in a view of one) has references beyond ours, and is kept.
    """
    with _handed.lock:
        held, _handed.arrays = _handed.arrays, []
    kept, freed = [], 0
    while held:
        array = held.pop()
        # ``array`` and getrefcount's argument: any more, and a frame (or a view of it) holds it
        if sys.getrefcount(array) > 2:
            kept.append(array)
            continue
        for start in range(0, len(array), STEP):
            array[start : start + STEP] = None
            pause(STEP)
        del array
        freed += 1
    with _handed.lock:
        _handed.arrays.extend(kept)
    return freed


def dump(data: pd.DataFrame, file: IO[bytes]) -> None:
    """Write ``data`` (its columns and values; not its index) to ``file`` as pickled slices."""
    columns = list(data.columns)
    arrays = [values(data[c]) for c in columns]
    pickle.dump((columns, len(data)), file, protocol=5)
    for start in range(0, max(len(data), 1), SLICE_ROWS):  # an empty frame: one empty slice (its dtypes)
        pickle.dump([a[start : start + SLICE_ROWS] for a in arrays], file, protocol=5)
        pause(SLICE_ROWS * len(arrays))


def load(file: IO[bytes]) -> pd.DataFrame:
    """Read back a frame written by :func:`dump` (with a RangeIndex)."""
    columns, n = pickle.load(file)  # noqa: S301 - our own file, written by dump
    pieces: list[list[Any]] = [[] for _ in columns]
    for _ in range(0, max(n, 1), SLICE_ROWS):
        for column, piece in zip(pieces, pickle.load(file), strict=True):  # noqa: S301
            column.append(piece)
        pause(SLICE_ROWS * len(columns))
    return frame(columns, [_join(p) if len(p) > 1 else p[0] for p in pieces], n)


def release(data: pd.DataFrame, *, keep: pd.DataFrame | None = None) -> None:
    """Empty the text columns of ``data``, a frame made here, a step at a time.

    Dropping a frame frees its Python objects in one C call (a cascade of deallocations the
    interpreter never interrupts: 10–25 ms for the inputs of ``lab.hooks`` at 100 k calls).
    Setting its values to ``None`` slice by slice frees the same objects in bounded steps; the
    frame itself is dropped afterwards. A column that may share memory with a column of ``keep``
    (the result made from ``data``) is left alone. Only for frames no one else holds.
    """
    import numpy as np

    kept = [] if keep is None else [values(keep[c]) for c in keep.columns]
    for col in data.columns:
        array = values(data[col])
        if not isinstance(array, np.ndarray) or array.dtype != object or not array.flags.writeable:
            continue
        if any(isinstance(k, np.ndarray) and np.may_share_memory(array, k) for k in kept):
            continue
        for start in range(0, len(array), STEP):
            array[start : start + STEP] = None
            pause()
