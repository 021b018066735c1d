"""A simulated call read back for a test: its transcript, its hooks and its turn latencies.

Everything here is computed from a :class:`~jambonz_lab.sim.CallResult` alone (the simulator's own
trace, on the call's clock), so it works the same for WebSocket and HTTP webhook apps, and for a
result loaded from anywhere.

* :func:`transcript`: both sides in order — what the caller said or pressed (the hooks that carried
  it) and what the app said or played (``result.heard``, at the time of the frame that queued it).
* :func:`hooks`: every request jambonz made to the app, with the fields a test cares about and how
  long the app took to answer it.
* :func:`turn_latencies`: for each ``verb:hook`` the app answered, the seconds from the caller's end
  of input (the hook going out) to the app's answer (the ack, or the HTTP response).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag, urlsplit, urlunsplit

if TYPE_CHECKING:
    from ..sim import CallResult, TraceEntry

__all__ = ["Hook", "Line", "describe", "hooks", "transcript", "turn_latencies"]

#: messages jambonz sends that the app does not answer with verbs
UNANSWERED = frozenset({"call:status", "verb:status", "jambonz:error"})
ANSWERS = frozenset({"ack", "http-response"})


@dataclass(frozen=True)
class Line:
    """One line of a transcript: ``t`` seconds into the call (None: not placed), who, what."""

    t: float | None
    who: str  # "caller", "app" or "call"
    what: str


@dataclass(frozen=True)
class Hook:
    """One request to the app: when, which hook, its key fields; its answer and the answer's delay."""

    t: float
    type: str
    hook: str
    fields: str
    answered: bool
    latency: float | None  # seconds from the request to the answer (None: no answer)
    answer: str  # the answered verbs' names, or why there is no answer


def _plain_url(url: str) -> str:
    """A hook URL as the HTTP response names it: no fragment (``#rc=..``), no credentials."""
    clean = urldefrag(url)[0]
    parts = urlsplit(clean)
    if parts.username is None and parts.password is None:
        return clean
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _data(entry: TraceEntry) -> dict[str, Any]:
    payload = entry.payload if isinstance(entry.payload, dict) else {}
    data = payload.get("data")
    return data if isinstance(data, dict) else {}


def _answers(result: CallResult) -> dict[int, TraceEntry]:
    """Index of each request in ``result.trace`` → its answer: by msgid (a socket), by URL in order (HTTP)."""
    by_msgid: dict[str, int] = {}
    waiting_http: list[tuple[int, str]] = []
    found: dict[int, TraceEntry] = {}
    for i, e in enumerate(result.trace):
        if e.direction == "sent" and e.type not in UNANSWERED:
            if e.msgid is not None:
                by_msgid[e.msgid] = i
            elif isinstance(e.payload, dict) and isinstance(e.payload.get("hook"), str):
                waiting_http.append((i, _plain_url(e.payload["hook"])))
        elif e.direction == "received" and e.type == "ack" and e.msgid in by_msgid:
            found[by_msgid.pop(e.msgid)] = e
        elif e.direction == "received" and e.type == "http-response" and isinstance(e.payload, dict):
            url = _plain_url(str(e.payload.get("hook", "")))
            match = next((n for n, (_, u) in enumerate(waiting_http) if u == url), None)
            if match is not None:
                found[waiting_http.pop(match)[0]] = e
    return found


def _verbs(entry: TraceEntry) -> list[dict[str, Any]]:
    payload = entry.payload if isinstance(entry.payload, dict) else {}
    data = payload.get("data")
    return [v for v in data if isinstance(v, dict)] if isinstance(data, list) else []


def describe(data: dict[str, Any]) -> str:
    """A hook payload's key fields: ``reason``, the transcript, the digits."""
    parts = []
    if "reason" in data:
        parts.append(f"reason={data['reason']}")
    speech = data.get("speech")
    if isinstance(speech, dict):
        alternatives = speech.get("alternatives") or [{}]
        parts.append(f"transcript={alternatives[0].get('transcript', '')!r}")
    if data.get("digits"):
        parts.append(f"digits={data['digits']!r}")
    return " ".join(parts)


def hooks(result: CallResult) -> list[Hook]:
    """Every request jambonz made to the app that wants verbs back, in order, with its answer."""
    answers = _answers(result)
    out = []
    for i, e in enumerate(result.trace):
        if e.direction != "sent" or e.type in UNANSWERED:
            continue
        payload = e.payload if isinstance(e.payload, dict) else {}
        hook = str(payload.get("hook") or e.type)
        answer = answers.get(i)
        if answer is None:
            out.append(Hook(e.t, e.type, hook, describe(_data(e)), False, None, "no answer"))
            continue
        names = ", ".join(str(v.get("verb")) for v in _verbs(answer)) or "(no verbs)"
        out.append(Hook(e.t, e.type, hook, describe(_data(e)), True, _delay(e, answer), names))
    return out


def _delay(request: TraceEntry, answer: TraceEntry) -> float:
    """Seconds the app took to answer: on the call clock, or the wall clock's if the trace's stood still.

    The app's time is real on both clocks. An HTTP response is traced after the virtual clock moved
    by it; a socket's ack is traced as it arrives, before the simulator adds the wait to the clock
    (``SimCall.wait_real``), so its ``t`` is the request's: its ``ts`` holds the wait.
    """
    return max(answer.t - request.t, answer.ts - request.ts, 0.0)


def turn_latencies(result: CallResult) -> list[float]:
    """Seconds from each ``verb:hook`` (the caller's end of input) to the app's answer (call clock)."""
    return [h.latency for h in hooks(result) if h.type == "verb:hook" and h.latency is not None]


def _spoken(verbs: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """The ``(kind, text)`` a caller would hear from these verbs, a gather's nested say/play too."""
    for verb in verbs:
        name = verb.get("verb")
        if name == "gather":
            nested = [dict(v, verb=k) for k in ("say", "play") if isinstance(v := verb.get(k), dict)]
            yield from _spoken(nested)
        elif name == "say":
            texts = verb.get("text")
            for text in texts if isinstance(texts, list) else [texts]:
                yield "say", str(text)
        elif name == "play":
            urls = verb.get("url")
            for url in urls if isinstance(urls, list) else [urls]:
                yield "play", str(url)


def _caller_line(data: dict[str, Any]) -> str | None:
    reason = data.get("reason")
    speech = data.get("speech")
    if isinstance(speech, dict):
        alternatives = speech.get("alternatives") or [{}]
        return f"said {alternatives[0].get('transcript', '')!r}"
    if data.get("digits"):
        return f"pressed {data['digits']}"
    if reason == "timeout":
        return "(silence: the gather timed out)"
    return None


def transcript(result: CallResult) -> list[Line]:
    """Both sides of the call in order, with call times (seconds into the call)."""
    queued: list[tuple[float, str, str]] = []  # (t, kind, text) of each say/play the app sent
    caller: list[Line] = []
    for e in result.trace:
        if e.direction == "received":
            queued.extend((e.t, kind, text) for kind, text in _spoken(_verbs(e)))
        elif e.direction == "sent" and e.type == "verb:hook":
            line = _caller_line(_data(e))
            if line is not None:
                caller.append(Line(e.t, "caller", line))
    app: list[Line] = []
    start, last = 0, 0.0
    for kind, text in result.heard:  # what was heard, placed at the frame that queued it
        match = next((n for n in range(start, len(queued)) if queued[n][1:] == (kind, text)), None)
        if match is not None:
            last, start = queued[match][0], match + 1
        app.append(Line(last if match is not None else None, "app", f"{kind} {text!r}"))
    lines = _merge(app, caller)
    end = result.final_status or "(no final status)"
    by = f" (ended by {result.termination_by})" if result.termination_by else ""
    lines.append(Line(result.trace[-1].t if result.trace else None, "call", f"{end}{by}"))
    return lines


def _merge(app: list[Line], caller: list[Line]) -> list[Line]:
    """Caller lines go before the app lines queued after them; an unplaced app line keeps its place."""
    out: list[Line] = []
    pending = list(caller)
    for line in app:
        while pending and line.t is not None and pending[0].t is not None and pending[0].t <= line.t:
            out.append(pending.pop(0))
        out.append(line)
    return out + pending
