"""Replay a recorded call against an app and report what the app now answers differently.

A regression test for voice apps: record a call against version 1 of an app
(:meth:`Session.save <jambonz_lab.Session.save>`, or a lab's ``log_path``
file), change the app, replay, read the divergences.

:func:`replay` plays jambonz's side of the recorded call: it connects as the
simulator does (subprotocol ``ws.jambonz.org``), sends the recorded incoming
messages (``session:new``, ``verb:hook``, ``call:status``, …) in order with
fresh msgids and a fresh ``call_sid``, and collects the app's replies. The
recording's order is kept: a message is sent once the replies recorded before
it have arrived (or their time ran out: the ack timeout, 5 s as in jambonz);
messages nobody waited for go out right away. Nothing is simulated (no verb
runs); the recorded messages are sent as they were.

Then each reply is compared with the recorded one: acks by msgid (the
recorded msgid ↔ the fresh one), commands by order. Verb lists, command names
and command data must be equal; every difference is a :class:`Divergence`.

Example::

    session.save("echo-v1.jsonl")              # a call against version 1
    ...                                        # change the app
    report = sim.replay("echo-v1.jsonl", lab.url + "/echo")
    report.ok                                  # False: something changed
    print(report)                              # step by step
    report.to_dataframe()

Threads: :func:`replay` runs on the lab's loop thread and waits for it from any
other thread; :func:`areplay` is its awaitable twin.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import ClientConnection

from .. import loop
from ..protocol import MessageType
from ..protocol.feature import Acked, Command, FeatureProtocol, StrayAck
from .engine import SimOptions
from .transport import open_socket

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ACK_DATA_DIFFERS",
    "CLOSED_EARLY",
    "COMMAND_DIFFERS",
    "EXTRA_REPLY",
    "MISSING_REPLY",
    "VERBS_DIFFER",
    "Divergence",
    "Recording",
    "ReplayReport",
    "ReplayStep",
    "areplay",
    "replay",
]

#: an ack's or a redirect's verb list is not the recorded one
VERBS_DIFFER = "verbs differ"
#: a recorded reply did not come (in time)
MISSING_REPLY = "missing reply"
#: a reply the recording does not have
EXTRA_REPLY = "extra reply"
#: an ack's data differs and is not a verb list on both sides
ACK_DATA_DIFFERS = "ack data differs"
#: a command's name or other fields differ at the same position
COMMAND_DIFFERS = "command differs"
#: the app closed the socket while recorded messages were still to send
CLOSED_EARLY = "closed early"


@dataclass(frozen=True)
class Divergence:
    """One way the app's replies differ from the recording.

    Attributes:
        step: the recorded incoming message (1-based) the reply answers, or the
            last one sent before it (commands).
        msgid: that message's recorded msgid.
        hook: that message's hook, else its type (``session:new``, ``call:status``).
        what: ``verbs differ``, ``missing reply``, ``extra reply``, ``ack data differs``,
            ``command differs`` or ``closed early``.
        expected: the recorded reply's data (a verb list for acks and redirects; the
            whole command otherwise), ``None`` for an extra reply.
        actual: the app's reply now, ``None`` for a missing reply.
        reply: ``ack`` or the command's name.
    """

    step: int
    msgid: str | None
    hook: str | None
    what: str
    expected: Any
    actual: Any
    reply: str = "ack"

    def __str__(self) -> str:
        where = f"step {self.step} {self.hook or '?'}"
        lines = [f"{where}: {self.what} ({self.reply})"]
        if self.expected is not None:
            lines.append(f"    expected: {_describe(self.expected)}")
        if self.actual is not None:
            lines.append(f"    actual:   {_describe(self.actual)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ReplayStep:
    """One recorded incoming message and what became of it in the replay."""

    step: int
    type: str
    hook: str | None
    msgid: str
    new_msgid: str
    sent: bool


@dataclass
class ReplayReport:
    """What a replay found: :attr:`divergences` (empty when the app answers as recorded).

    Example::

        report = sim.replay("v1.jsonl", url)
        assert report.ok, str(report)
    """

    path: str
    url: str
    call_sid: str
    replay_call_sid: str
    steps: list[ReplayStep] = field(default_factory=list)
    divergences: list[Divergence] = field(default_factory=list)
    #: every frame the app sent, as received (msgids and call_sid still the replay's)
    replies: list[Any] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every reply matched the recording."""
        return not self.divergences

    def to_dataframe(self) -> pd.DataFrame:
        """The divergences, one row each (``step``, ``msgid``, ``hook``, ``reply``, ``what``, …)."""
        import pandas as pd

        columns = ["step", "msgid", "hook", "reply", "what", "expected", "actual"]
        return pd.DataFrame.from_records(
            [{c: getattr(d, c) for c in columns} for d in self.divergences], columns=columns
        )

    def __str__(self) -> str:
        sent = sum(s.sent for s in self.steps)
        head = (
            f"replay of {Path(self.path).name} (call {self.call_sid}, {len(self.steps)} messages, "
            f"{sent} sent) against {self.url}"
        )
        if self.ok:
            return f"{head}\n  ok: every reply matches the recording"
        n = len(self.divergences)
        lines = [f"{head}\n  {n} divergence{'s' if n != 1 else ''}:"]
        lines.extend("  " + str(d).replace("\n", "\n  ") for d in self.divergences)
        return "\n".join(lines)

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"{len(self.divergences)} divergence(s)"
        return f"<ReplayReport {self.call_sid} → {self.url}: {state}>"


# -- the recording --------------------------------------------------------------------------


@dataclass(frozen=True)
class _In:
    step: int
    message: dict[str, Any]
    type: str
    msgid: str
    hook: str | None
    path: str | None
    ts: float
    needs_ack: bool


@dataclass(frozen=True)
class _Out:
    frame: dict[str, Any]
    after: int  # steps recorded before it
    ts: float
    order: int  # its place among the recorded replies


@dataclass
class Recording:
    """One call of an event-log file: its incoming messages and the app's replies, in order."""

    path: str
    call_sid: str
    steps: list[_In]
    acks: dict[str, _Out]  # recorded msgid → its ack
    commands: list[_Out]
    #: for each step, the recorded acks and commands that came before it
    before: list[tuple[list[str], int]]

    @classmethod
    def load(cls, path: str | os.PathLike[str], call_sid: str | None = None) -> Recording:
        """Read a ``Session.save`` file or a lab ``log_path`` file (``call_sid`` picks a call).

        Raises:
            ValueError: not an event-log file, no such call, or several calls and no ``call_sid``.
        """
        rows: list[dict[str, Any]] = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    raise ValueError(f"{path}:{n}: not a JSON line; is this a jambonz_lab log?") from None
                if not isinstance(row, dict) or "direction" not in row:
                    raise ValueError(f"{path}:{n}: not an event-log row")
                rows.append(row)
        sids = list(dict.fromkeys(r.get("call_sid") for r in rows if r.get("call_sid")))
        if call_sid is None:
            if len(sids) != 1:
                found = ", ".join(map(str, sids[:5])) or "none"
                raise ValueError(f"{path} holds {len(sids)} calls ({found}); pick one with call_sid=")
            call_sid = str(sids[0])
        elif call_sid not in sids:
            raise ValueError(f"{path} has no call {call_sid!r}")
        steps: list[_In] = []
        acks: dict[str, _Out] = {}
        commands: list[_Out] = []
        before: list[tuple[list[str], int]] = []
        acked: list[str] = []
        for row in rows:
            if row.get("call_sid") != call_sid or row.get("direction") not in ("in", "out"):
                continue
            payload = row.get("payload")
            frame = json.loads(payload) if isinstance(payload, str) else payload
            if not isinstance(frame, dict):
                continue
            ts = float(row.get("ts") or 0.0)
            if row["direction"] == "in":
                kind = str(frame.get("type") or row.get("type"))
                before.append((list(acked), len(commands)))
                steps.append(
                    _In(
                        step=len(steps) + 1,
                        message=frame,
                        type=kind,
                        msgid=str(frame.get("msgid") or row.get("msgid")),
                        hook=frame.get("hook") if isinstance(frame.get("hook"), str) else None,
                        path=row.get("path"),
                        ts=ts,
                        needs_ack=kind in {t.value for t in MessageType if t.needs_ack},
                    )
                )
            elif frame.get("type") == "ack" and isinstance(frame.get("msgid"), str):
                acks[frame["msgid"]] = _Out(frame, len(steps), ts, len(acks) + len(commands))
                acked.append(frame["msgid"])
            else:
                commands.append(_Out(frame, len(steps), ts, len(acks) + len(commands)))
        if not steps:
            raise ValueError(f"{path}: call {call_sid} has no incoming messages to replay")
        return cls(str(path), call_sid, steps, acks, commands, before)


# -- replaying ------------------------------------------------------------------------------


def replay(
    path: str | os.PathLike[str],
    url: str,
    *,
    options: SimOptions | None = None,
    call_sid: str | None = None,
    settle: float = 0.3,
    timeout: float = 600.0,
) -> ReplayReport:
    """Replay the jambonz side of a recorded call against the app at ``url``.

    Args:
        path: a file written by :meth:`Session.save <jambonz_lab.Session.save>` (or a
            lab's ``log_path`` file, with ``call_sid``).
        url: the app's ``ws://`` URL. Without a path (``lab.url``) the recorded
            path is used.
        options: :class:`SimOptions`: ``ack_timeout`` (how long a reply may take,
            5 s), ``handshake_timeout``, ``username``/``password`` (Basic auth).
        call_sid: which call of the file to replay (needed when it holds several).
        settle: real seconds without any reply, after the last message, before the
            replay hangs up (replies after that are not seen).
        timeout: real seconds to wait for the whole replay.

    Returns:
        A :class:`ReplayReport`; ``report.ok`` when the app answered as recorded.

    Example::

        report = sim.replay("echo-v1.jsonl", lab.url + "/echo")
        print(report)
    """
    recording = Recording.load(path, call_sid)
    return loop.submit(_Replay(recording, url, options or SimOptions(), settle).run()).result(timeout)


async def areplay(
    path: str | os.PathLike[str],
    url: str,
    *,
    options: SimOptions | None = None,
    call_sid: str | None = None,
    settle: float = 0.3,
) -> ReplayReport:
    """The awaitable twin of :func:`replay`."""
    recording = Recording.load(path, call_sid)
    run = _Replay(recording, url, options or SimOptions(), settle).run()
    if loop.in_loop_thread():
        return await run
    return await asyncio.wrap_future(loop.submit(run))


@dataclass
class _Ack:
    frame: dict[str, Any]
    at: float
    seq: int


class _Replay:
    """One replay (loop thread)."""

    def __init__(self, rec: Recording, url: str, options: SimOptions, settle: float) -> None:
        self.rec = rec
        self.url = url
        self.options = options
        self.settle = settle
        self.sid = str(uuid.uuid4())
        self._ids = itertools.count()
        self._tag = uuid.uuid4().hex[:14]
        self.new_ids: dict[str, str] = {}  # recorded msgid → replay msgid
        self.old_ids: dict[str, str] = {}
        self.sent_at: dict[int, float] = {}  # step → monotonic time sent
        self.sent_on: dict[int, ClientConnection | None] = {}  # step → the socket it went on
        self.acks: dict[str, _Ack] = {}  # recorded msgid → first ack
        self.commands: list[tuple[dict[str, Any], int, int]] = []  # (frame, step when it came, seq)
        self.extras: list[tuple[int, int, Divergence]] = []  # (step, seq, divergence)
        self.replies: list[Any] = []
        self.step = 0  # steps sent so far
        self.changed = asyncio.Event()
        self.ws: ClientConnection | None = None
        self.readers: list[asyncio.Task[None]] = []
        self.closed_by_app: int | None = None
        self._seq = itertools.count()
        self.by_msgid = {s.msgid: s for s in rec.steps}
        # reads the app's frames as jambonz does; the recorded messages go out verbatim, not through it
        self.core = FeatureProtocol(limit=sys.maxsize)

    # -- sockets --------------------------------------------------------------------

    def _url_for(self, recorded_path: str | None) -> str:
        parts = urlsplit(self.url)
        first = self.rec.steps[0].path
        if not parts.path and recorded_path:
            return urlunsplit(parts._replace(path=recorded_path))
        if recorded_path and first and recorded_path != first:  # a redirect to another path
            return urlunsplit(parts._replace(path=recorded_path))
        return self.url

    async def _connect(self, url: str) -> None:
        try:
            ws = await open_socket(url, self.options)
        except ConnectionError as exc:
            raise ConnectionError(f"{url}: {exc}") from None
        self.ws = ws
        self.closed_by_app = None
        self.readers.append(asyncio.get_running_loop().create_task(self._read(ws)))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                self._on_frame(frame if isinstance(frame, str) else frame.decode(errors="replace"))
        except websockets.ConnectionClosed:
            pass
        if self.ws is ws:  # not closed by us
            self.closed_by_app = ws.close_code if ws.close_code is not None else 1006
            self.ws = None
        self.changed.set()

    def _on_frame(self, text: str) -> None:
        seq = next(self._seq)
        (event,) = self.core.receive(text)
        raw: Any = event.message if isinstance(event, Acked | StrayAck | Command) else _json_or_text(text)
        self.replies.append(raw)
        frame = self._restore(raw)
        here = self.rec.steps[self.step - 1] if self.step else self.rec.steps[0]
        if isinstance(event, Acked | StrayAck):
            old = frame.get("msgid")
            target = self.by_msgid.get(old) if isinstance(old, str) else None
            if isinstance(old, str) and old in self.rec.acks and old not in self.acks:
                self.acks[old] = _Ack(frame, time.monotonic(), seq)
            else:
                where = target or here
                d = Divergence(where.step, where.msgid, _name(where), EXTRA_REPLY, None, frame.get("data"))
                self.extras.append((where.step, seq, d))
        elif isinstance(event, Command):
            self.commands.append((frame, self.step, seq))
        else:  # what jambonz would answer with jambonz:error InvalidMessage
            d = Divergence(here.step, here.msgid, _name(here), EXTRA_REPLY, None, frame, "?")
            self.extras.append((here.step, seq, d))
        self.changed.set()

    def _restore(self, value: Any) -> Any:
        """The app's reply in the recording's terms (recorded msgids and call_sid)."""
        if isinstance(value, str):
            if value == self.sid:
                return self.rec.call_sid
            return self.old_ids.get(value, value)
        if isinstance(value, list):
            return [self._restore(v) for v in value]
        if isinstance(value, dict):
            return {k: self._restore(v) for k, v in value.items()}
        return value

    def _fresh(self, value: Any) -> Any:
        """A recorded message with the replay's call_sid."""
        if isinstance(value, str):
            return self.sid if value == self.rec.call_sid else value
        if isinstance(value, list):
            return [self._fresh(v) for v in value]
        if isinstance(value, dict):
            return {k: self._fresh(v) for k, v in value.items()}
        return value

    # -- the run ----------------------------------------------------------------------

    async def run(self) -> ReplayReport:
        rec = self.rec
        report = ReplayReport(rec.path, self.url, rec.call_sid, self.sid)
        first = rec.steps[0]
        try:
            await self._connect(self._url_for(first.path))
            for s in rec.steps:
                acks, commands = rec.before[s.step - 1]
                await self._wait(acks, commands)
                if s.step > 1 and s.type in ("session:reconnect", "session:redirect"):
                    await self._reopen(s)
                new = f"{self._tag}{next(self._ids):04d}"
                self.new_ids[s.msgid] = new
                self.old_ids[new] = s.msgid
                message = self._fresh(s.message)
                message["msgid"] = new
                self.step = s.step
                self.sent_at[s.step] = time.monotonic()
                self.sent_on[s.step] = self.ws
                sent = await self._send(message)
                if not sent:
                    del self.sent_at[s.step]
                report.steps.append(ReplayStep(s.step, s.type, s.hook, s.msgid, new, sent))
            await self._wait(list(rec.acks), len(rec.commands))
            await self._quiet()
        finally:
            ws, self.ws = self.ws, None
            if ws is not None:
                await ws.close(1000)
            await asyncio.gather(*self.readers, return_exceptions=True)
        report.replies = self.replies
        report.divergences = self._compare(report.steps)
        return report

    async def _reopen(self, s: _In) -> None:
        """A reconnect or a redirect comes on a new socket: close the old one first."""
        ws, self.ws = self.ws, None
        if ws is not None:
            await ws.close(1000 if s.type == "session:redirect" else 1001)
        await self._connect(self._url_for(s.path))

    async def _send(self, message: dict[str, Any]) -> bool:
        ws = self.ws
        if ws is None:
            return False
        try:
            await ws.send(json.dumps(message))
        except websockets.ConnectionClosed:
            return False
        return True

    def _ack_deadline(self, msgid: str) -> float | None:
        """When the ack of a recorded msgid is overdue (None: never sent, or its socket is gone)."""
        s = self.by_msgid.get(msgid)
        sent = self.sent_at.get(s.step) if s is not None else None
        if s is None or sent is None or self.sent_on.get(s.step) is not self.ws:
            return None  # an ack cannot come on a closed socket (jambonz abandons it)
        return sent + self.options.ack_timeout

    def _command_deadline(self, out: _Out) -> float | None:
        """A command may take as long as it took in the recording, plus the ack timeout."""
        sent = self.sent_at.get(out.after)
        if sent is None:
            return None
        recorded_delay = max(0.0, out.ts - self.rec.steps[out.after - 1].ts)
        return sent + recorded_delay + self.options.ack_timeout

    async def _wait(self, acks: list[str], commands: int) -> None:
        """Until these recorded replies came, their time ran out, or the app hung up."""
        while True:
            self.changed.clear()
            if self.ws is None:
                return
            deadlines: list[float] = []
            for old in acks:
                if old not in self.acks:
                    d = self._ack_deadline(old)
                    if d is not None:
                        deadlines.append(d)
            for out in self.rec.commands[len(self.commands) : commands]:
                d = self._command_deadline(out)
                if d is not None:
                    deadlines.append(d)
            if not deadlines:
                return
            left = max(deadlines) - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                return

    async def _quiet(self) -> None:
        """Wait until the app has said nothing for ``settle`` seconds."""
        while self.ws is not None:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), self.settle)
            except TimeoutError:
                return

    # -- comparing -------------------------------------------------------------------------

    def _compare(self, steps: list[ReplayStep]) -> list[Divergence]:
        rec = self.rec
        # within a step: the recorded replies in their recorded order, then the extra ones as they came
        late = 10**9
        found: list[tuple[int, int, Divergence]] = [(step, late + seq, d) for step, seq, d in self.extras]
        for old, out in rec.acks.items():
            s = self.by_msgid.get(old)
            if s is None:
                continue
            got = self.acks.get(old)
            sent = self.sent_at.get(s.step)
            expected = out.frame.get("data")
            if got is None or sent is None or got.at > sent + self.options.ack_timeout:
                d = Divergence(s.step, s.msgid, _name(s), MISSING_REPLY, expected, None)
                found.append((s.step, out.order, d))
                continue
            actual = got.frame.get("data")
            if _same(expected, actual):
                continue
            if isinstance(expected, list | None) and isinstance(actual, list | None):
                what = VERBS_DIFFER  # an ack without data carries no verbs
                expected, actual = expected or [], actual or []
            else:
                what = ACK_DATA_DIFFERS
            found.append((s.step, out.order, Divergence(s.step, s.msgid, _name(s), what, expected, actual)))
        for i in range(max(len(rec.commands), len(self.commands))):
            if i >= len(self.commands):
                out = rec.commands[i]
                s = rec.steps[max(out.after, 1) - 1]
                name = str(out.frame.get("command"))
                d = Divergence(s.step, s.msgid, _name(s), MISSING_REPLY, _command_view(out.frame), None, name)
                found.append((s.step, out.order, d))
                continue
            frame, at_step, seq = self.commands[i]
            name = str(frame.get("command"))
            if i >= len(rec.commands):
                s = rec.steps[max(at_step, 1) - 1]
                d = Divergence(s.step, s.msgid, _name(s), EXTRA_REPLY, None, _command_view(frame), name)
                found.append((s.step, late + seq, d))
                continue
            out = rec.commands[i]
            s = rec.steps[max(out.after, 1) - 1]
            exp = out.frame
            if _command_key(exp) == _command_key(frame):
                continue
            same_kind = exp.get("command") == name == "redirect"
            rest_same = _command_key({**exp, "data": None}) == _command_key({**frame, "data": None})
            if same_kind and rest_same:
                d = Divergence(
                    s.step, s.msgid, _name(s), VERBS_DIFFER, exp.get("data"), frame.get("data"), name
                )
            else:
                d = Divergence(
                    s.step, s.msgid, _name(s), COMMAND_DIFFERS, _command_view(exp), _command_view(frame), name
                )
            found.append((s.step, out.order, d))
        unsent = next((st for st in steps if not st.sent), None)
        if unsent is not None:
            code = self.closed_by_app
            what = f"app closed the socket ({code})"
            d = Divergence(
                unsent.step, unsent.msgid, unsent.hook or unsent.type, CLOSED_EARLY, "socket open", what
            )
            d = dataclasses.replace(d, reply="close")
            found.append((unsent.step, -1, d))
        found.sort(key=lambda item: (item[0], item[1]))
        return [d for _, _, d in found]


# -- helpers --------------------------------------------------------------------------------


def _json_or_text(text: str) -> Any:
    """An invalid reply as the report shows it: its JSON value if it has one, else the text."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _name(s: _In) -> str:
    return s.hook or s.type


def _same(expected: Any, actual: Any) -> bool:
    """Equal replies; an ack without data is the same as an empty verb list."""
    if expected in (None, []) and actual in (None, []):
        return True
    return bool(expected == actual)


def _command_key(frame: Mapping[str, Any]) -> dict[str, Any]:
    key = dict(frame)
    if not key.get("queueCommand"):
        key.pop("queueCommand", None)
    return key


def _command_view(frame: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in frame.items() if k != "type"}


def _describe(value: Any, limit: int = 160) -> str:
    """A one-line view: verb lists as ``say {"text": …}, gather {…}``."""
    if isinstance(value, list) and all(isinstance(v, Mapping) and "verb" in v for v in value):
        text = ", ".join(_verb_text(v) for v in value) or "(no verbs)"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _verb_text(verb: Mapping[str, Any]) -> str:
    rest = {k: v for k, v in verb.items() if k != "verb"}
    if not rest:
        return str(verb["verb"])
    return f"{verb['verb']} {json.dumps(rest, default=str, ensure_ascii=False, separators=(', ', ': '))}"
