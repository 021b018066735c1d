"""The state of the platform sources widget, built from event-log rows (loop thread only).

Fed the rows whose ``source`` is not ``"jambonz"``: Kazoo, Basix and Wazo events and the
lab's notes about their connections. Keeps, bounded: one line per connection (state,
events, errors), the live calls of every platform, the newest events.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict, deque
from typing import Any

from ...records import Row
from ..platform_views import PLATFORMS, flat_of, is_control

__all__ = ["MAX_CALLS", "MAX_EVENTS", "SourcesModel", "call_ended"]

#: newest events kept for the widget
MAX_EVENTS = 30
#: calls listed (live first, then the most recent ended ones)
MAX_CALLS = 30

_STATES = {
    "open": "open",
    "reconnect": "open",
    "dropped": "reconnecting",
    "reconnect-failed": "reconnecting",
    "close": "closed",
    "connect-failed": "failed",
}
_FROM = ("caller_id_number", "calling_number")
_TO = ("callee_id_number", "called_number", "peer_caller_id_number")
_STATUS = ("status", "state")


def call_ended(source: str, kind: str, flat: dict[str, Any]) -> bool:
    """True when this event ends the call on its platform."""
    if source == "kazoo":
        return kind.upper() == "CHANNEL_DESTROY"
    if source == "basix":
        return kind == "channel.removed" or flat.get("last_event") == "CHANNEL_HANGUP"
    if source == "wazo":
        return kind == "call_ended"
    return False


def _first(flat: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = flat.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


class SourcesModel:
    """Connections, calls and recent events of the platform sources (loop thread)."""

    def __init__(self) -> None:
        self.connections: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self.calls: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.version = 0

    def apply(self, row: Row) -> None:
        """Take one platform row (loop thread)."""
        source = str(row.source)
        path = str(row.path or "")
        kind = str(row.type)
        direction = row.direction
        conn = self.connections.get((source, path))
        if conn is None:
            conn = {"source": source, "path": path, "state": "", "events": 0, "errors": 0, "note": ""}
            self.connections[(source, path)] = conn
        self.version += 1
        if direction == "lab":
            if kind in _STATES:
                conn["state"] = _STATES[kind]
            if kind in ("bad-frame", "connect-failed", "reconnect-failed", "dropped"):
                conn["errors"] += 1
            conn["note"] = str(row.note or kind)
            self._event(row, source, kind, "", conn["note"])
            return
        if direction != "in" or is_control(source, kind):
            return
        if not conn["state"]:
            conn["state"] = "receiving"  # webhooks: no connection of ours
        conn["events"] += 1
        payload = _parse(row.payload)
        flat: dict[str, Any] = {}
        if source in PLATFORMS and isinstance(payload, dict):
            try:
                flat = flat_of(source, payload)[1](kind, payload)
            except Exception:  # flat() must not raise; a widget never breaks on odd data
                flat = {}
        call_id = row.call_sid
        caller, callee = _first(flat, _FROM), _first(flat, _TO)
        detail = f"{caller or '?'} → {callee or '?'}" if caller or callee else ""
        cause = flat.get("hangup_cause")
        status = " ".join(str(x) for x in (_first(flat, _STATUS) or flat.get("name") or kind, cause) if x)
        self._event(row, source, kind, str(call_id or ""), f"{detail} {status}".strip())
        if isinstance(call_id, str) and call_id:
            self._call(source, call_id, kind, flat, status, float(row.ts or 0.0))

    def _call(
        self, source: str, call_id: str, kind: str, flat: dict[str, Any], status: str, ts: float
    ) -> None:
        call = self.calls.get((source, call_id))
        if call is None:
            call = {"source": source, "call_id": call_id, "from": "", "to": "", "status": "", "live": True}
            self.calls[(source, call_id)] = call
        call["from"] = call["from"] or _first(flat, _FROM)
        call["to"] = call["to"] or _first(flat, _TO)
        call["status"] = status or kind
        call["last"] = kind
        call["ts"] = ts
        if call_ended(source, kind, flat):
            call["live"] = False
            reason = flat.get("hangup_cause") or flat.get("last_event_data") or flat.get("reason_code")
            name = flat.get("name") or kind  # a Kazoo webhook and its blackhole frame read the same
            call["status"] = f"{name} {reason}" if reason not in (None, "") else name
        self.calls.move_to_end((source, call_id))
        ended = [key for key, c in self.calls.items() if not c["live"]]
        for key in ended[: max(0, len(self.calls) - MAX_CALLS)]:
            del self.calls[key]

    def _event(self, row: Row, source: str, kind: str, call_id: str, detail: str) -> None:
        ts = row.ts
        clock = time.strftime("%H:%M:%S", time.localtime(float(ts))) if isinstance(ts, int | float) else ""
        self.events.append(
            {
                "time": clock,
                "source": source,
                "dir": str(row.direction),
                "type": kind,
                "call": call_id,
                "detail": detail[:160],
            }
        )

    def lab_stopped(self) -> None:
        """The lab stopped: its connections and receivers are closed, and no platform call is
        watched any more (they show as not live, their last status marked ``(not watched)``)."""
        for conn in self.connections.values():
            if conn["state"] != "failed":
                conn["state"] = "closed"
                conn["note"] = "the lab stopped"
        for call in self.calls.values():
            if call["live"]:
                call["live"] = False
                call["status"] = f"{call['status']} (not watched)".strip()
        self.version += 1

    def state(self) -> dict[str, Any]:
        """The widget's trait values (fresh lists)."""
        calls = sorted(self.calls.values(), key=lambda c: (not c["live"], -c.get("ts", 0.0)))
        return {
            "connections": [dict(c) for c in self.connections.values()],
            "calls": [{k: v for k, v in c.items() if k != "ts"} for c in calls[:MAX_CALLS]],
            "events": list(self.events)[::-1],
            "live": sum(1 for c in self.calls.values() if c["live"]),
        }


def _parse(text: Any) -> Any:
    if isinstance(text, str):
        try:
            return json.loads(text)
        except ValueError:
            return None
    return text
