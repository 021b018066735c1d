"""What a simulated call produced: the trace both ways, what the caller heard, how it ended."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .audio import CallAudio

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

__all__ = ["CallResult", "TraceEntry"]


@dataclass(frozen=True)
class TraceEntry:
    """One frame or event. ``t``: seconds into the call (clock time); ``ts``: wall clock (UTC epoch).

    ``direction``: ``"sent"`` (jambonz → app), ``"received"`` (app → jambonz) or
    ``"sim"`` (something the simulated jambonz did: a verb ran, a timeout, a reconnect).
    """

    t: float
    ts: float
    direction: str
    type: str
    msgid: str | None
    payload: Any
    note: str | None = None


@dataclass
class CallResult:
    """The outcome of one simulated call.

    Attributes:
        call_sid: the simulated call's sid.
        trace: every frame both ways and every simulator event, in order.
        heard: what the caller heard: ``("say", text)``, ``("play", url)``, …
        final_status: the last ``call_status`` (``completed``, ``failed``, …).
        sip_status: the final SIP status (200, 480, 486, …).
        termination_by: ``caller`` or ``jambonz`` (who ended it).
        duration: seconds from answer to end (0 if never answered).
        errors: ``jambonz:error`` payloads sent and simulator-side problems.
        sessions: the B-legs this call's dials gave a session of their own (``session:adulting``
            on a new socket) and the calls its ``dial`` commands placed (REST calls on their
            ``call_hook``), each with its own trace, in the order they started.
        audio: the call's sound on both sides (:mod:`~jambonz_lab.sim.audio`): what
            :meth:`recording` and :meth:`save_wav` render.
        seed: the seed the call ran with, when :func:`~jambonz_lab.sim.load` placed it
            (``sim.call(url, options=SimOptions(seed=result.seed))`` replays its caller's choices).
    """

    call_sid: str
    trace: list[TraceEntry] = field(default_factory=list)
    heard: list[tuple[str, str]] = field(default_factory=list)
    final_status: str | None = None
    sip_status: int | None = None
    termination_by: str | None = None
    duration: float = 0.0
    errors: list[str] = field(default_factory=list)
    sessions: list[CallResult] = field(default_factory=list)
    audio: CallAudio = field(default_factory=CallAudio, repr=False)
    seed: int | None = None

    def recording(self, rate: int = 8000) -> npt.NDArray[np.int16]:
        """The call as a two-channel recording, ``(2, n)`` int16 at ``rate``: caller (row 0), app
        (row 1), from call time 0 to the call's end; say/play and the caller's speech as
        placeholders of their length, audio as itself, silence where nobody speaks."""
        return self.audio.render(rate)

    def save_wav(self, path: str | Path, rate: int = 8000) -> Path:
        """:meth:`recording` as a two-channel 16-bit WAV file (caller left, app right)."""
        return self.audio.save_wav(path, rate)

    @property
    def ok(self) -> bool:
        """The call completed (answered and ended normally)."""
        return self.final_status == "completed"

    @property
    def said(self) -> list[str]:
        """The texts said to the caller."""
        return [text for kind, text in self.heard if kind == "say"]

    def messages(self, direction: str | None = None, type: str | None = None) -> list[TraceEntry]:
        return [e for e in self.trace if (direction in (None, e.direction)) and (type in (None, e.type))]

    def statuses(self) -> list[str]:
        """The ``call_status`` values of this call's own leg, in order."""
        out = []
        for e in self.messages("sent", "call:status"):
            data = e.payload.get("data", {})
            if data.get("call_sid") == self.call_sid:
                out.append(str(data.get("call_status")))
        return out

    def to_dataframe(self) -> pd.DataFrame:
        import pandas as pd

        rows = [
            {
                "t": e.t,
                "ts": e.ts,
                "direction": e.direction,
                "type": e.type,
                "msgid": e.msgid,
                "hook": e.payload.get("hook") if isinstance(e.payload, dict) else None,
                "note": e.note,
                "payload": e.payload,
            }
            for e in self.trace
        ]
        frame = pd.DataFrame.from_records(
            rows, columns=["t", "ts", "direction", "type", "msgid", "hook", "note", "payload"]
        )
        frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
        return frame

    def to_jsonl(self) -> str:
        """The trace as JSON lines (one object per entry)."""
        return "\n".join(
            json.dumps(
                {
                    "t": round(e.t, 3),
                    "direction": e.direction,
                    "type": e.type,
                    "msgid": e.msgid,
                    "note": e.note,
                    "payload": e.payload,
                },
                default=str,
            )
            for e in self.trace
        )

    def __repr__(self) -> str:
        return (
            f"<CallResult {self.call_sid} {self.final_status} sip={self.sip_status} "
            f"{len(self.trace)} frames, heard {len(self.heard)}>"
        )
