"""TTS token streaming with backpressure, sans I/O (protocol doc §2.10).

One ``tts:tokens`` command is in flight at a time. Its ``tts:tokens-result``
releases the next one; ``failed`` with reason ``full`` (or a
``stream_paused`` event) pauses the queue, keeping the refused tokens at its
head, and ``stream_resumed`` sends them again. ``user_interruption`` (a
barge-in) empties the queue. A flush is a marker in the queue: it goes out
when the tokens before it have been accepted. Every token frame carries an
``id`` (jambonz drops tokens without one, silently).

jambonz refuses a chunk whenever its buffer plus the chunk exceeds 1000
characters, even into an empty buffer, and only a chunk it sends on resumes
a paused stream (``tts-streaming-buffer.js`` ~111, ~324): a single chunk over
:data:`MAX_TOKENS` would be refused forever and stall the queue, so
:meth:`TtsQueue.push` splits longer text, at the last whitespace that fits
(or hard, inside a word longer than the limit).

A result that matches nothing is reported, never fatal: the queue carries on.

Example::

    q = TtsQueue()
    q.push("Hello ")              # [("tts:tokens", {"id": 1, "tokens": "Hello "})]
    q.push("world")               # [] (one in flight)
    q.on_result({"id": 1, "status": "ok"})   # [("tts:tokens", {"id": 2, …})]
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_TOKENS", "TtsQueue", "TtsState", "split_tokens"]

#: jambonz's buffer size (HIGH_WATER_BUFFER_SIZE): no chunk may be longer
MAX_TOKENS = 1000

Command = tuple[str, Any]


class TtsState(enum.Enum):
    IDLE = "idle"  #: nothing in flight
    WAITING = "waiting"  #: one tts:tokens in flight
    PAUSED = "paused"  #: jambonz's buffer is full; waiting for stream_resumed


@dataclass
class _Item:
    tokens: str | None  # None = flush marker
    id: int = 0


@dataclass
class TtsQueue:
    """The token queue of one call (see the module doc)."""

    problems: list[str] = field(default_factory=list)
    _queue: deque[_Item] = field(default_factory=deque)
    _in_flight: _Item | None = None
    _paused: bool = False
    _next_id: int = 1

    @property
    def state(self) -> TtsState:
        if self._paused:
            return TtsState.PAUSED
        return TtsState.WAITING if self._in_flight else TtsState.IDLE

    @property
    def queued(self) -> int:
        """Token chunks not yet accepted by jambonz (in flight included)."""
        return len(self._queue) + (1 if self._in_flight else 0)

    def push(self, tokens: str) -> list[Command]:
        """Queue text for the TTS stream; returns the commands to send now."""
        for part in split_tokens(tokens):
            self._queue.append(_Item(part, self._take_id()))
        return self._pump()

    def flush(self) -> list[Command]:
        """Queue a flush behind the tokens already queued."""
        self._queue.append(_Item(None))
        return self._pump()

    def clear(self) -> list[Command]:
        """Drop everything queued and tell jambonz to drop its buffer."""
        self._reset()
        return [("tts:clear", None)]

    def on_result(self, data: Mapping[str, Any]) -> list[Command]:
        """Take a ``tts:tokens-result``."""
        item = self._in_flight
        if item is None or data.get("id") != item.id:
            self.problems.append(f"tts:tokens-result for id {data.get('id')!r} matches nothing in flight")
            return []
        self._in_flight = None
        if data.get("status") != "ok":
            reason = str(data.get("reason", "unknown"))
            if reason == "full":
                self._queue.appendleft(item)
                self._paused = True
            else:
                self.problems.append(f"tts:tokens id {item.id} failed: {reason}")
        return self._pump()

    def on_event(self, event_type: str) -> list[Command]:
        """Take the ``event_type`` of a ``tts:streaming-event``."""
        if event_type == "stream_paused":
            self._paused = True
        elif event_type == "stream_resumed":
            self._paused = False
            return self._pump()
        elif event_type == "user_interruption":
            self._reset()
        return []

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _reset(self) -> None:
        self._queue.clear()
        self._in_flight = None
        self._paused = False

    def _pump(self) -> list[Command]:
        out: list[Command] = []
        while not self._paused and self._in_flight is None and self._queue:
            item = self._queue.popleft()
            if item.tokens is None:
                out.append(("tts:flush", None))
                continue
            self._in_flight = item
            out.append(("tts:tokens", {"id": item.id, "tokens": item.tokens}))
        return out


def split_tokens(text: str, limit: int = MAX_TOKENS) -> list[str]:
    """``text`` in chunks of at most ``limit`` characters, cut after whitespace where possible.

    Joined again they give ``text`` back exactly; ``""`` gives no chunk.
    """
    parts: list[str] = []
    while len(text) > limit:
        head = text[:limit]
        cut = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t")) + 1
        if cut <= 0:
            cut = limit  # one word longer than the limit: cut it
        parts.append(text[:cut])
        text = text[cut:]
    if text:
        parts.append(text)
    return parts
