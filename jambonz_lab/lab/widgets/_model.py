"""What a session card shows, kept in plain Python: one :class:`CallModel` per call.

The model is fed event-log rows (:class:`jambonz_lab.records.Row`, payload as
JSON text) on the lab's loop thread and turned into the
card's trait values by :meth:`CallModel.state`. No widget library is imported
here, so the model can be tested and reused on its own.

Example::

    model = CallModel("call-1")
    for row in lab.log.select("call-1"):
        model.apply(row)
    model.state()["statuses"]        # ['trying', 'in-progress', 'completed']

Threads: one writer, the loop thread; :meth:`CallModel.state` returns copies.
"""

from __future__ import annotations

import json
import math
from collections import deque
from typing import Any

from ...protocol.messages import FINAL_STATUSES
from ...records import ERROR_KINDS, Row

__all__ = [
    "MAX_EVENTS",
    "MAX_STATUSES",
    "MAX_VERBS",
    "CallModel",
    "clock_text",
    "is_error",
    "summarize",
]

#: the card keeps the last MAX_EVENTS events (the whole history is ``session.events``)
MAX_EVENTS = 20
#: verb names kept, newest last
MAX_VERBS = 50
#: statuses of the call's own leg kept, in order
MAX_STATUSES = 20
#: longest one-line event detail
MAX_DETAIL = 160

_OPENINGS = frozenset({"session:new", "session:adulting", "session:redirect", "session:reconnect"})


def is_error(direction: str, kind: str) -> bool:
    """True for a ``jambonz:error`` from jambonz or a lab row reporting a failure."""
    return (direction == "in" and kind == "jambonz:error") or (direction == "lab" and kind in ERROR_KINDS)


class CallModel:
    """The card's state of one call, built from its event-log rows (loop thread only).

    Attributes:
        call_sid, from_, to, caller_name, direction: from the opening payload
            (caller-controlled strings, kept verbatim: they are data).
        status: the latest ``call_status`` of this leg (B-leg statuses are events only).
        statuses, verbs, events: bounded tails (see the ``MAX_*`` constants).
        hooks, errors: counters over the whole call.
    """

    def __init__(self, call_sid: str) -> None:
        self.call_sid = call_sid
        self.from_ = ""
        self.to = ""
        self.caller_name = ""
        self.direction = ""
        self.status = ""
        self.statuses: deque[str] = deque(maxlen=MAX_STATUSES)
        self.verbs: deque[str] = deque(maxlen=MAX_VERBS)
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.hooks = 0
        self.errors = 0
        self.t0: float | None = None
        #: which clock the events' ``t`` is on: ``"call"`` (a simulated call: its rows' ``call_t``,
        #: the call's own clock) or ``"wall"`` (seconds since the call's first row)
        self.clock = "wall"
        self._call_t = 0.0  # the latest call time seen
        self._ts = 0.0  # the latest wall time seen
        #: bumped on every applied row
        self.version = 0

    def apply(self, row: Row) -> None:
        """Take one event-log row of this call (loop thread)."""
        ts, direction, kind, hook, payload, note = (
            row.ts,
            row.direction,
            row.type,
            row.hook,
            row.payload,
            row.note,
        )
        ts = float(ts) if isinstance(ts, int | float) else 0.0
        if self.t0 is None:
            self.t0 = ts
        self._ts = max(self._ts, ts)
        call_t = row.call_t
        if isinstance(call_t, int | float) and not math.isnan(call_t):
            self.clock, self._call_t = "call", float(call_t)
        t = self._call_t if self.clock == "call" else ts - self.t0
        msg = _parse(payload)
        data = msg.get("data") if isinstance(msg, dict) else None
        if direction == "in":
            self._incoming(kind, data)
        elif direction == "out" and kind in ("ack", "redirect") and isinstance(data, list):
            self.verbs.extend(str(v.get("verb", "?")) for v in data if isinstance(v, dict))
        if is_error(direction, kind):
            self.errors += 1
        self.events.append(
            {
                "t": round(t, 6),
                "dir": str(direction),
                "type": str(kind),
                "hook": hook if isinstance(hook, str) else "",
                "detail": summarize(direction, kind, msg, note, self.call_sid),
            }
        )
        self.version += 1

    def _incoming(self, kind: str, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if kind in _OPENINGS or (kind == "call:status" and not self.from_):
            self._take_info(data)
        if kind == "call:status" and data.get("call_sid") in (None, self.call_sid):
            status = data.get("call_status")
            if isinstance(status, str) and status:
                self.status = status
                self.statuses.append(status)
        elif kind == "verb:hook":
            self.hooks += 1
        elif kind in _OPENINGS and not self.status and isinstance(data.get("call_status"), str):
            self.status = data["call_status"]

    def _take_info(self, data: dict[str, Any]) -> None:
        for attr, key in (
            ("from_", "from"),
            ("to", "to"),
            ("caller_name", "caller_name"),
            ("direction", "direction"),
        ):
            value = data.get(key)
            if isinstance(value, str) and value:
                setattr(self, attr, value)

    @property
    def ended(self) -> bool:
        """A final status of this leg arrived."""
        return self.status in FINAL_STATUSES

    def state(self) -> dict[str, Any]:
        """The card's trait values (fresh lists and dicts; the caller may keep them)."""
        return {
            "call_sid": self.call_sid,
            "from_": self.from_,
            "to": self.to,
            "caller_name": self.caller_name,
            "direction": self.direction,
            "status": self.status,
            "statuses": list(self.statuses),
            "verbs": list(self.verbs),
            "events": [dict(e) for e in self.events],
            "clock": self.clock,
            "hooks": self.hooks,
            "errors": self.errors,
        }

    @property
    def duration(self) -> float:
        """Seconds from the call's first event to its latest, on its clock (see ``clock``)."""
        if self.clock == "call":
            return round(self._call_t, 6)
        return round(self._ts - self.t0, 6) if self.t0 is not None else 0.0

    def summary(self) -> dict[str, Any]:
        """One line of the lab panel's call list (``last``: the latest event, one line)."""
        last = self.events[-1] if self.events else None
        return {
            "call_sid": self.call_sid,
            "from": self.from_,
            "to": self.to,
            "caller_name": self.caller_name,
            "direction": self.direction,
            "status": self.status,
            "hooks": self.hooks,
            "errors": self.errors,
            "duration": self.duration,
            "clock": self.clock,
            "last": _clip(f"{last['type']} {last['detail']}") if last is not None else "",
        }


def clock_text(seconds: float) -> str:
    """An event's time, readable: ``"2.8 ms"``, ``"14.92 s"``, ``"2:05.3"`` (card.js writes the same)."""
    if not math.isfinite(seconds):
        return ""
    if seconds == 0:
        return "0 s"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


def summarize(direction: str, kind: str, msg: Any, note: Any, call_sid: str | None = None) -> str:
    """A one-line description of an event (plain text, at most MAX_DETAIL characters)."""
    data = msg.get("data") if isinstance(msg, dict) else None
    text = ""
    if direction == "lab":
        text = note if isinstance(note, str) else ""
    elif direction == "out":
        text = _outgoing(kind, msg, data)
        if note == "auto":
            text += " (automatic)"
    elif isinstance(data, dict):
        text = _incoming_detail(kind, data, call_sid)
    return _clip(text)


def _outgoing(kind: str, msg: Any, data: Any) -> str:
    if isinstance(data, list):
        names = [str(v.get("verb", "?")) for v in data if isinstance(v, dict)]
        if kind == "ack":
            return "ack: " + ", ".join(names) if names else "empty ack"
        return f"{kind}: " + ", ".join(names)
    if data is None:
        return str(kind)
    return f"{kind} {_compact(data)}"


def _incoming_detail(kind: str, data: dict[str, Any], call_sid: str | None) -> str:
    if kind in _OPENINGS:
        text = f"{data.get('from') or '?'} → {data.get('to') or '?'}"
        return text + (f" ({data['caller_name']})" if data.get("caller_name") else "")
    if kind == "call:status":
        text = f"{data.get('call_status')}"
        if data.get("sip_status") is not None:
            text += f" {data.get('sip_status')}"
        leg = data.get("call_sid")
        return f"leg {str(leg)[:8]}: {text}" if leg not in (None, call_sid) else text
    if kind == "verb:hook":
        parts = [str(data["reason"])] if data.get("reason") else []
        speech = data.get("speech")
        if isinstance(speech, dict):
            alts = speech.get("alternatives") or [{}]
            if isinstance(alts, list) and alts and isinstance(alts[0], dict) and alts[0].get("transcript"):
                parts.append(f"“{alts[0]['transcript']}”")
        if data.get("digits"):
            parts.append(f"digits {data['digits']}")
        return " ".join(parts) or _compact(_without(data, "call_sid"))
    if kind == "verb:status":
        bits = [data.get("event") or data.get("status"), data.get("name") or data.get("verb")]
        return " ".join(str(b) for b in bits if b) or _compact(data)
    if kind == "jambonz:error":
        return str(data.get("error") or data.get("message") or _compact(data))
    return _compact(_without(data, "call_sid"))


def _without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


def _compact(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), default=str)[: MAX_DETAIL + 1]
    except (TypeError, ValueError):
        return repr(value)[: MAX_DETAIL + 1]


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _parse(payload: Any) -> Any:
    if isinstance(payload, str):
        try:
            return json.loads(payload)
        except ValueError:
            return None
    return payload
