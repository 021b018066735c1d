"""DataFrame views of the event log: events (flattened), calls, hooks, statuses.

Built incrementally by :class:`Views`: each new chunk of rows is flattened once
(its payloads parsed once, then dropped), and what the views need from it is
kept as small frames (hook messages, acks, statuses) and a per-call aggregate
that later chunks update with vectorised group-bys. The module functions
(:func:`flatten`, :func:`calls`, :func:`hooks`, :func:`statuses`) build the same
views at once from any frame of rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..protocol.messages import FINAL_STATUSES, best_alternative
from ..records import ERROR_KINDS
from . import slices

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FLAT", "Chunk", "Views", "calls", "flatten", "hooks", "statuses"]

#: payload fields lifted into columns of ``lab.events``
FLAT = ("reason", "call_status", "sip_status", "digits", "transcript", "confidence", "leg")
#: what ``lab.calls`` reads from payloads (internal columns, never in ``lab.events``)
_FACTS = ("_from", "_to", "_cdir", "_duration")
#: the messages jambonz waits an ack for
HOOK_TYPES = (
    "session:new",
    "session:reconnect",
    "session:redirect",
    "session:adulting",
    "verb:hook",
    "dial:confirm",
)
_ENDED = tuple(sorted(FINAL_STATUSES))
_ERRORS = tuple(sorted(ERROR_KINDS))
#: calls per block of the per-call aggregate (a chunk re-reduces only the blocks it touches)
_BLOCK_CALLS = 4_000
#: hooks still waiting for their ack carried from one chunk to the next (oldest dropped beyond)
_PENDING_MAX = 50_000
#: payloads parsed between two hand-overs of the GIL (see :func:`slices.pause`)
_PARSE_STEP = 500

_HOOK_COLS = ["call_sid", "type", "hook", "msgid", "ts", "reason"]
_ACK_COLS = ["call_sid", "msgid", "ts", "note", "verbs", "ack_ms"]
_STATUS_COLS = ["ts", "call_sid", "leg", "call_status", "sip_status"]
#: the columns of ``lab.calls``, in order
CALL_COLUMNS = [
    "call_sid",
    "from",
    "to",
    "direction",
    "start",
    "answer",
    "end",
    "duration_s",
    "final_status",
    "hooks",
    "errors",
    "clock",
]


_NO_FIELDS: tuple[Any, ...] = (None,) * (len(FLAT) + len(_FACTS))


def _fields(direction: str, kind: Any, payload: Any) -> tuple[Any, ...]:
    """The FLAT fields and the call facts of one row's parsed payload."""
    if direction != "in" or not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        return _NO_FIELDS
    data = payload["data"]
    best = best_alternative(data)
    transcript, confidence = (best.get("transcript"), best.get("confidence")) if best else (None, None)
    opening = isinstance(kind, str) and kind.startswith("session:")
    duration = data.get("duration") if kind == "call:status" else None
    return (
        data.get("reason"),
        data.get("call_status"),
        data.get("sip_status"),
        data.get("digits"),
        transcript,
        confidence,
        data.get("call_sid"),
        data.get("from") if opening else None,
        data.get("to") if opening else None,
        data.get("direction") if opening else None,
        float(duration) if isinstance(duration, int | float) and not isinstance(duration, bool) else None,
    )


#: text columns stay ``object`` (None when absent) in every chunk, so chunks concatenate alike
_TEXT = ("call_sid", "direction", "type", "msgid", "hook", "payload", "note", "path", "source", "transport")
_TEXT_FLAT = ("reason", "call_status", "digits", "transcript", "leg")


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """One dtype per column whatever a chunk holds: text as objects, numbers as floats, SIP
    status codes as whole numbers (``Int64``: 486, not 486.0; missing or not a whole number: NA)."""
    import pandas as pd

    for col in (*_TEXT, *_TEXT_FLAT):
        if col in frame.columns:
            values = frame[col].astype(object)
            frame[col] = values.where(values.notna(), None)
    for col in ("confidence", "call_t"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    frame["sip_status"] = whole_numbers(frame["sip_status"])
    return frame


def whole_numbers(column: pd.Series) -> pd.Series:
    """``column`` as nullable integers (``Int64``): numbers and numeric text that are whole; NA for
    the rest (missing, fractional, not a number)."""
    import pandas as pd

    numbers = pd.to_numeric(column, errors="coerce").astype("float64")
    return numbers.where(numbers.round() == numbers).astype("Int64")


def _parse(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:  # a truncated or foreign payload: no fields, the row stays
        return None


@dataclass
class Chunk:
    """What one chunk of rows adds: its flattened events and the small inputs of the other views."""

    events: pd.DataFrame
    hook_ins: pd.DataFrame
    acks: pd.DataFrame
    statuses: pd.DataFrame

    def __len__(self) -> int:
        return len(self.events)


def _unreferenced(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` that pandas tracks no views of.

    pandas keeps a weak reference to every view of a frame's blocks and index (each column taken
    is one), dead or alive, until a few hundred pile up on one of them. Building a chunk takes
    each column many times: the chunk kept 300 dead references on its index and 15–20 on each
    column, 10–25 k objects in all for the in-memory chunks, which every garbage collection walked.
    The copy costs one pass over the chunk's values (about 1 ms for 5,000 rows).
    """
    import pandas as pd

    out = frame.copy(deep=True)
    index = frame.index
    if isinstance(index, pd.RangeIndex):
        out.index = pd.RangeIndex(index.start, index.stop, index.step, name=index.name)
    return out


class Views:
    """The incremental state: acks still owed, sessions per call sid, the per-call aggregate.

    Feed it chunks in order with :meth:`add`; read :meth:`calls`. Not thread-safe: one builder.
    """

    def __init__(self) -> None:
        import pandas as pd

        self._pending = pd.DataFrame(
            {"call_sid": [], "msgid": [], "ts": pd.Series([], dtype="datetime64[ns, UTC]")}
        )
        self._opened: dict[Any, int] = {}  # session:new seen per call sid
        # the per-call aggregate in blocks of about _BLOCK_CALLS calls, oldest first: a chunk's
        # rows are folded into the blocks their calls are in, never into the whole aggregate
        self._blocks: list[pd.DataFrame] = []
        self._home: dict[Any, int] = {}  # call sid -> the block of its latest call

    def add(self, frame: pd.DataFrame) -> Chunk:
        """Flatten ``frame`` (rows in COLUMNS order, ``ts`` as datetimes, payload as JSON text or
        parsed) and fold it into the calls aggregate."""
        import pandas as pd

        frame = frame.drop(columns=[c for c in (*FLAT, "ack_ms") if c in frame.columns])
        if "call_t" not in frame.columns:  # a frame of rows from before call times: wall time
            frame = frame.assign(call_t=float("nan"))
        # plain object arrays: iterating a pandas string column costs a __getitem__ per value;
        # only incoming payloads carry fields, so only they are parsed
        directions = frame["direction"].to_numpy(dtype=object)
        kinds = frame["type"].to_numpy(dtype=object)
        payloads = frame["payload"].to_numpy(dtype=object)
        records: list[tuple[Any, ...]] = []
        for start in range(0, len(payloads), _PARSE_STEP):  # a builder hands the GIL over between
            end = start + _PARSE_STEP
            records += [
                _fields(d, k, _parse(p)) if d == "in" else _NO_FIELDS
                for d, k, p in zip(directions[start:end], kinds[start:end], payloads[start:end], strict=True)
            ]
            slices.pause(_PARSE_STEP)
        facts = pd.DataFrame.from_records(records, columns=[*FLAT, *_FACTS], index=frame.index)
        slices.pause(len(frame))
        out = _typed(pd.concat([frame, facts[list(FLAT)]], axis=1))
        slices.pause(len(frame))
        out["ack_ms"] = self._ack_ms(out)
        slices.pause(len(frame))
        jambonz = out["source"].eq("jambonz").to_numpy()
        mine, own_facts = out[jambonz], facts[jambonz]
        incoming = mine["direction"] == "in"
        chunk = Chunk(
            events=_unreferenced(out),
            hook_ins=_keyed(mine.loc[incoming & mine["type"].isin(HOOK_TYPES), _HOOK_COLS]),
            acks=_keyed(mine.loc[mine["direction"].eq("out") & mine["type"].eq("ack"), _ACK_COLS]),
            statuses=mine.loc[incoming & mine["type"].eq("call:status"), _STATUS_COLS],
        )
        slices.pause(len(frame))
        self._fold(mine, own_facts)
        slices.pause(len(frame))
        return chunk

    def _ack_ms(self, out: pd.DataFrame) -> pd.Series:
        """Each ack's latency from its message (same call, same msgid; the message may be in an
        earlier chunk)."""
        import pandas as pd

        keys = ["call_sid", "msgid"]
        ins = out.loc[out["direction"].eq("in") & out["msgid"].notna(), [*keys, "ts", "type"]]
        received = pd.concat([self._pending, ins[[*keys, "ts"]]]).drop_duplicates(keys)
        acks = out["direction"].eq("out") & out["msgid"].notna()
        acked = (
            out.loc[acks, [*keys, "ts"]]
            .rename_axis("_row")
            .reset_index()
            .merge(received, on=keys, how="left", suffixes=("", "_in"))
        )
        latency = (acked["ts"] - acked["ts_in"]).dt.total_seconds() * 1000
        # carry the hooks still owed an ack to the next chunk
        owed = pd.concat([self._pending, ins.loc[ins["type"].isin(HOOK_TYPES), [*keys, "ts"]]])
        done = pd.MultiIndex.from_frame(acked[keys]) if len(acked) else None
        if done is not None and len(owed):
            owed = owed[~pd.MultiIndex.from_frame(owed[keys]).isin(done)]
        self._pending = owed.tail(_PENDING_MAX)
        return pd.Series(latency.to_numpy(), index=acked["_row"]).reindex(out.index)

    def _fold(self, rows: pd.DataFrame, facts: pd.DataFrame) -> None:
        """Per-call facts of ``rows`` (jambonz rows), merged into the aggregate so far.

        Each ``session:new`` starts a call: a second one for a call sid whose session ended is a
        new call (a new row with the same ``call_sid``); rows before the first belong to it.
        """
        import pandas as pd

        has_sid = rows["call_sid"].notna().to_numpy()
        rows, facts = rows[has_sid], facts[has_sid]
        if not len(rows):
            return
        sid = rows["call_sid"]
        kind = rows["type"].fillna("")
        incoming = rows["direction"].eq("in")
        starts = (incoming & kind.eq("session:new")).astype("int64")
        # the sessions opened before this chunk, looked up for this chunk's sids only (mapping
        # the whole dict would cost a pass over every call seen so far)
        unique = pd.unique(sid.to_numpy(dtype=object))
        before = {s: self._opened.get(s, 0) for s in unique}
        seen = starts.groupby(sid, sort=False).cumsum() + sid.map(before).astype("int64")
        last = seen.groupby(sid, sort=False).last()
        self._opened.update(last[last > 0].to_dict())
        opening = incoming & kind.str.startswith("session:")
        own = kind.eq("call:status") & (rows["leg"].isna() | rows["leg"].eq(sid))
        ended = own & rows["call_status"].isin(_ENDED)
        errors = kind.eq("jambonz:error") | (rows["direction"].eq("lab") & kind.isin(_ERRORS))
        call_t = rows["call_t"].astype("float64")
        answered = own & rows["call_status"].eq("in-progress")
        part = pd.DataFrame(
            {
                "call_sid": sid,
                "_seg": seen.clip(lower=1),
                "start": rows["ts"],
                "from": facts["_from"].where(opening),
                "to": facts["_to"].where(opening),
                "direction": facts["_cdir"].where(opening),
                "answer": rows["ts"].where(answered),
                "end": rows["ts"].where(ended),
                "_end_duration": facts["_duration"].where(ended),
                # a simulated call's clock: the wall time its zero was at, and its answer and end
                "_anchor": rows["ts"] - pd.to_timedelta(call_t, unit="s"),
                "_ct_answer": call_t.where(answered),
                "_ct_end": call_t.where(ended),
                "final_status": rows["call_status"].where(own),
                "hooks": (incoming & kind.eq("verb:hook")).astype("int64"),
                "errors": errors.astype("int64"),
            }
        )
        self._merge_calls(_reduce(part), before)

    def _merge_calls(self, new: pd.DataFrame, before: dict[Any, int]) -> None:
        """Fold a chunk's per-call aggregate into the blocks: a call already in a block is reduced
        with that block's rows (it keeps its place), a new call joins the last block.

        Rows always belong to a sid's latest call (the count of its sessions only grows): a sid
        seen before is at home in its block while ``_seg`` is still its sessions before this chunk
        (at least 1); a higher ``_seg`` is a new call, a new row in the last block.
        """
        import pandas as pd

        if not self._blocks or len(self._blocks[-1]) >= _BLOCK_CALLS:
            self._blocks.append(new.iloc[:0])
        last = len(self._blocks) - 1
        homes = []
        for sid, seg in zip(new["call_sid"].to_numpy(dtype=object), new["_seg"].to_numpy(), strict=True):
            home = self._home.get(sid)
            block = home if home is not None and seg == max(before[sid], 1) else last
            homes.append(block)
            self._home[sid] = block
        blocks = pd.Series(homes, index=new.index)
        for block in blocks.unique():
            mine = new[blocks.eq(block).to_numpy()]
            old = self._blocks[block]
            self._blocks[block] = _reduce(pd.concat([old, mine], ignore_index=True) if len(old) else mine)

    def calls(self) -> pd.DataFrame:
        """One row per call so far (see :func:`calls`); the blocks joined in bounded steps."""
        import pandas as pd

        blocks = [b for b in self._blocks if len(b)]
        if not blocks:
            return pd.DataFrame({c: [] for c in CALL_COLUMNS})
        # one block too: concat takes its columns once (see slices.columns_of) and copies them
        return _calls_table(slices.concat(blocks))


def _calls_table(agg: pd.DataFrame) -> pd.DataFrame:
    """The rows of :meth:`Views.calls` from the per-call aggregate."""
    import pandas as pd

    on_call = agg["_anchor"].notna()
    # on the call's clock: its zero's wall time plus the call time (a row without one: wall)
    answer, end = (
        (agg["_anchor"] + pd.to_timedelta(agg[ct], unit="s")).where(agg[ct].notna(), agg[wall])
        for wall, ct in (("answer", "_ct_answer"), ("end", "_ct_end"))
    )
    agg = agg.assign(answer=answer, end=end, clock=on_call.map({True: "call", False: "wall"}))
    measured = (agg["end"] - agg["answer"]).dt.total_seconds()
    table = agg.assign(duration_s=agg["_end_duration"].astype("float64").fillna(measured))
    # text as objects: done a slice at a time (over every call at once, one long C call)
    table["final_status"] = slices.by_steps(table["final_status"], _none_for_missing)
    return table[CALL_COLUMNS].reset_index(drop=True)


def _none_for_missing(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), None)


def _reduce(part: pd.DataFrame) -> pd.DataFrame:
    """One row per call of ``part`` (rows or partial aggregates, in order): first, last, sums."""
    keys = ["call_sid", "_seg"]
    groups = part.groupby(keys, sort=False)
    out = groups.agg(
        start=("start", "first"),
        **{"from": ("from", "first")},
        to=("to", "first"),
        direction=("direction", "first"),
        answer=("answer", "first"),
        _anchor=("_anchor", "first"),
        _ct_answer=("_ct_answer", "first"),
        final_status=("final_status", "last"),
        hooks=("hooks", "sum"),
        errors=("errors", "sum"),
    )
    ended = (
        part.loc[part["end"].notna(), [*keys, "end", "_end_duration", "_ct_end"]]
        .groupby(keys, sort=False)
        .tail(1)
    )
    out = out.join(ended.set_index(keys), how="left")
    return out.reset_index()


# -- the views over any frame of rows ---------------------------------------------------------


def flatten(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the common payload fields as columns and ``ack_ms`` (hook → ack latency) to out rows."""
    return Views().add(frame).events


def hooks(events: pd.DataFrame) -> pd.DataFrame:
    """One row per message that wanted an ack: when it came, when it was acked, by whom, how fast."""
    incoming = events["direction"] == "in"
    return hooks_table(
        events.loc[incoming & events["type"].isin(HOOK_TYPES), _HOOK_COLS],
        events.loc[events["direction"].eq("out") & events["type"].eq("ack"), _ACK_COLS],
    )


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``_key``: the hash of its (call_sid, msgid), an int64 that joins hooks to
    their acks without hashing two text columns at read time (one long C call at 100 k calls)."""
    import numpy as np

    sids = frame["call_sid"].to_numpy(dtype=object)
    msgids = frame["msgid"].to_numpy(dtype=object)
    keys = np.fromiter((hash(k) for k in zip(sids, msgids, strict=True)), dtype="int64", count=len(frame))
    return frame.assign(_key=keys)


def hooks_table(ins: pd.DataFrame, acks: pd.DataFrame, *, hand_out: bool = False) -> pd.DataFrame:
    """:func:`hooks` from its inputs: the hook messages and the acks (each with ``_key`` or not).

    The left join of the hooks to their acks on (call_sid, msgid). When every ack's key is its
    own (one ack per message, as jambonz's protocol has it) it is a lookup of int64 keys, checked
    against the text keys; otherwise (a repeated msgid, a hash collision) the merge on the text.
    ``hand_out`` as in :func:`~jambonz_lab.lab.slices.concat`.

    The int64 lookups run without the GIL; every step on text (the check, the acks' columns taken
    for the hooks, the table's columns) covers at most ``slices.STEP`` rows, so a cell thread
    reading it leaves the loop thread the GIL between steps. The merge (the rare case) is one long
    pandas call.
    """
    import pandas as pd

    ins = ins if "_key" in ins.columns else _keyed(ins)
    acks = acks if "_key" in acks.columns else _keyed(acks)
    index = pd.Index(acks["_key"].to_numpy())
    found = index.get_indexer(ins["_key"].to_numpy()) if index.is_unique else None
    if found is None or not _same_messages(ins, acks, found):  # a collision: not the same messages
        return _hooks_of(
            ins.merge(acks.drop(columns="_key"), on=["call_sid", "msgid"], how="left", suffixes=("", "_ack"))
        )
    step = slices.STEP
    theirs = acks[["ts", "note", "verbs", "ack_ms"]].reset_index(drop=True)
    ins = ins.drop(columns="_key").reset_index(drop=True)
    pieces = []
    for start in range(0, max(len(ins), 1), step):
        right = theirs.reindex(found[start : start + step]).rename(columns={"ts": "ts_ack"})
        right.index = pd.RangeIndex(start, start + len(right))
        pieces.append(_hooks_of(pd.concat([ins.iloc[start : start + step], right], axis=1)))
        slices.pause()
    return slices.concat(pieces, hand_out=hand_out) if len(pieces) > 1 else pieces[0]


def _same_messages(ins: pd.DataFrame, acks: pd.DataFrame, found: Any) -> bool:
    """Whether each hook found by its key has the ack of its own (call_sid, msgid)."""
    step = slices.STEP
    for col in ("call_sid", "msgid"):
        mine, theirs = ins[col].to_numpy(dtype=object), acks[col].to_numpy(dtype=object)
        for start in range(0, len(found), step):
            at = found[start : start + step]
            hit = at >= 0
            if (mine[start : start + step][hit] != theirs[at[hit]]).any():
                return False
            slices.pause()
    return True


def _hooks_of(merged: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    table = pd.DataFrame(
        {
            "call_sid": merged["call_sid"],
            "type": merged["type"],
            "hook": merged["hook"],
            "msgid": merged["msgid"],
            "received": merged["ts"],
            "acked": merged["ts_ack"],
            "ack_ms": merged["ack_ms"],
            "auto": merged["note"].eq("auto"),
            "verbs": merged["verbs"],
            "reason": merged["reason"],
        },
        copy=False,  # a block per column, not one copy of every text column (copy on write keeps
        # ``merged`` safe)
    )
    return table.reset_index(drop=True)


def statuses(events: pd.DataFrame) -> pd.DataFrame:
    """Every ``call:status``: which leg, which status, when."""
    rows = events[(events["direction"] == "in") & (events["type"] == "call:status")]
    return rows[_STATUS_COLS].reset_index(drop=True)


def calls(events: pd.DataFrame) -> pd.DataFrame:
    """One row per call: who, when it started, was answered, ended, how long, how, hooks and errors.

    Each ``session:new`` starts a call: a second one for a call sid whose session ended is a new
    call (a new row with the same ``call_sid``), never merged with the first. ``duration_s`` is
    jambonz's own ``duration`` of the final status, else end minus answer.

    ``clock`` says which clock ``answer`` and ``end`` are on: ``"call"`` for a simulated call (its
    rows have ``call_t``): its start (the wall time it came in) plus the call time, so a 38 s call
    on the virtual clock ends 38 s after its start, though it took milliseconds; ``"wall"`` for a
    real jambonz call: the wall times its statuses arrived.
    """
    state = Views()
    state.add(events.assign(source="jambonz") if "source" not in events.columns else events)
    return state.calls()
