"""The conversation as the caller lived it: turns, their latency, the dialogue.

A **turn** starts when the caller's input ends and jambonz tells the app about it. That is a
``verb:hook`` carrying speech, digits or a timeout (a gather's or a dial's ``actionHook``), or, for an
``llm`` verb, the ``llm:event`` of the user's finished transcription. The turn ends at the next
such input. For each turn :func:`turns` gives:

* what the caller said or pressed (``transcript``, ``digits``, ``confidence``; ``input`` says
  ``speech``, ``digits``, ``timeout`` or ``llm``) and when the input ended (``input_at``: seconds
  since the call started, on the call's own clock when the call was simulated, else wall time);
* the hook and its ack latency (``response_ms``; for an ``llm`` turn, the time to the model's
  reply event);
* what the app said or played next (``reply_verb``, ``reply_text``: the first ``say``/``play``
  after the input, in the hook's ack or a later ``redirect``) and the time to it
  (``first_audio_ms``);
* ``tool_calls`` made in the turn and the time the app took to answer them (``tool_ms``);
* ``barge_in``: the caller spoke or pressed a key over the prompt that led to this input
  (``verb:status`` ``*-bargein-detected``; ``<NA>`` when the call sent no verb:status events);
* ``gap_s``: from the reply's first audio to the next input (the reply and the silence after it).

:func:`summary` reduces turns per call (p50/p95 response, longest gap, barge-ins) and
:func:`compare` reduces them per group of calls, for example two versions of an agent.
:func:`plot_response_times` draws their distributions. :func:`transcript` gives both sides of one
call as a dialogue.

Example::

    t = lab.turns                          # every call's turns
    jl.turns.summary(t)                    # one row per call
    lab.transcript(call_sid)               # a dialogue view; .frame is the DataFrame

Threads: any thread; pure functions of an events frame (``lab.events``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["TURN_COLUMNS", "Transcript", "compare", "plot_response_times", "summary", "transcript", "turns"]

#: the columns of :func:`turns`, in order
TURN_COLUMNS = (
    "call_sid",
    "turn",
    "input",
    "transcript",
    "digits",
    "confidence",
    "input_at",
    "hook",
    "response_ms",
    "reply_verb",
    "reply_text",
    "first_audio_ms",
    "tool_calls",
    "tool_ms",
    "barge_in",
    "gap_s",
)
#: gather / dial results that end a caller's input
_INPUT_REASONS = ("speechDetected", "dtmfDetected", "timeout", "stt-low-confidence")
#: llm:event types: the user's finished input, the model's spoken reply (OpenAI Realtime names)
_LLM_INPUT = "conversation.item.input_audio_transcription.completed"
_LLM_REPLY = "response.audio_transcript.done"
_AUDIO_VERBS = ("say", "play")
_BARGE_EVENTS = ("speech-bargein-detected", "dtmf-bargein-detected")


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return None


def _data(text: Any) -> dict[str, Any]:
    msg = _json(text)
    data = msg.get("data") if isinstance(msg, dict) else None
    return data if isinstance(data, dict) else {}


def _audio(verbs: Any) -> list[tuple[str, str]]:
    """Every (verb, text or url) the caller would hear, in order, from a verb list (prompts nested
    in gather/dial/llm count: a gather's ``say``/``play``)."""
    out: list[tuple[str, str]] = []
    if not isinstance(verbs, list):
        return out
    for verb in verbs:
        if not isinstance(verb, dict):
            continue
        name = verb.get("verb")
        if name in _AUDIO_VERBS:
            out.append((str(name), _spoken(verb)))
        for nested in _AUDIO_VERBS:
            if isinstance(verb.get(nested), dict):
                out.append((str(nested), _spoken(verb[nested])))
    return out


def _seconds(value: Any) -> float:
    return float(value)


def _mask(values: list[bool]) -> Any:
    """A row mask from a list (an empty list would select columns)."""
    import numpy as np

    return np.array(values, dtype=bool)


def _spoken(verb: Mapping[str, Any]) -> str:
    value = verb.get("text", verb.get("url", ""))
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _clocked(events: pd.DataFrame) -> pd.DataFrame:
    """The jambonz rows of calls with ``t``: seconds since the call's first row, on the call's own
    clock (``call_t``) where the row has it, else wall time; and ``pos``, the row's order."""
    import pandas as pd

    ev = events[events["source"].eq("jambonz") & events["call_sid"].notna()]
    ev = ev.assign(pos=range(len(ev)))
    wall = (ev["ts"] - ev.groupby("call_sid", sort=False)["ts"].transform("min")).dt.total_seconds()
    if "call_t" in ev.columns:
        call_t = pd.to_numeric(ev["call_t"], errors="coerce")
        ev = ev.assign(t=call_t.where(call_t.notna(), wall))
    else:
        ev = ev.assign(t=wall)
    return ev


def _inputs(ev: pd.DataFrame) -> pd.DataFrame:
    """The turn-starting rows: hooks with a caller's result, and llm user transcriptions."""
    import pandas as pd

    incoming = ev["direction"].eq("in")
    hook = incoming & ev["type"].eq("verb:hook")
    result = ev["reason"].isin(_INPUT_REASONS) | ev["transcript"].notna() | ev["digits"].notna()
    hooks = ev[hook & result]
    kind = pd.Series("speech", index=hooks.index, dtype=object)
    kind = kind.mask(hooks["digits"].notna(), "digits").mask(
        hooks["transcript"].isna() & hooks["digits"].isna(), "timeout"
    )
    hooks = hooks.assign(input=kind)
    llm = ev[incoming & ev["type"].eq("llm:event")]
    datas = [_data(p) for p in llm["payload"]]
    user = [d.get("type") == _LLM_INPUT for d in datas]
    llm_in = llm[_mask(user)].assign(
        input="llm",
        transcript=[d.get("transcript") for d, u in zip(datas, user, strict=True) if u],
    )
    cols = ["call_sid", "pos", "t", "msgid", "hook", "input", "transcript", "digits", "confidence"]
    both: pd.DataFrame = pd.concat([hooks[cols], llm_in.reindex(columns=cols)], ignore_index=True)
    return both.sort_values("pos")


def _replies(ev: pd.DataFrame) -> pd.DataFrame:
    """Rows that make the caller hear something: acks and redirects with audio, llm replies."""
    import pandas as pd

    out = ev[ev["direction"].eq("out") & ev["type"].isin(["ack", "redirect"]) & ev["verbs"].gt(0)]
    found = [(_audio(_json(p).get("data") if isinstance(_json(p), dict) else None)) for p in out["payload"]]
    keep = [bool(a) for a in found]
    audio = out[_mask(keep)].assign(
        reply_verb=[a[0][0] for a in found if a], reply_text=[a[0][1] for a in found if a]
    )
    llm = ev[ev["direction"].eq("in") & ev["type"].eq("llm:event")]
    datas = [_data(p) for p in llm["payload"]]
    said = [d.get("type") == _LLM_REPLY for d in datas]
    texts = [str(d.get("transcript", "")) for d, s in zip(datas, said, strict=True) if s]
    llm_out = llm[_mask(said)].assign(reply_verb="llm", reply_text=texts)
    cols = ["call_sid", "pos", "t", "reply_verb", "reply_text"]
    both: pd.DataFrame = pd.concat([audio[cols], llm_out[cols]], ignore_index=True)
    return both.sort_values("pos")


def turns(events: pd.DataFrame) -> pd.DataFrame:
    """One row per conversational turn of every call in ``events`` (see the module doc)."""
    import pandas as pd

    if not len(events) or "reason" not in events.columns:
        return pd.DataFrame({c: [] for c in TURN_COLUMNS})
    ev = _clocked(events)
    ins = _inputs(ev).reset_index(drop=True)
    if not len(ins):
        return pd.DataFrame({c: [] for c in TURN_COLUMNS})
    ins["turn"] = ins.groupby("call_sid", sort=False).cumcount() + 1
    nxt = ins.groupby("call_sid", sort=False)
    ins["next_pos"] = nxt["pos"].shift(-1)
    ins["next_t"] = nxt["t"].shift(-1)
    # the hook's ack latency (an llm turn: set from its reply below)
    is_ack = ev["direction"].eq("out") & ev["type"].eq("ack") & ev["msgid"].notna()
    acks = ev.loc[is_ack, ["call_sid", "msgid", "ack_ms"]]
    ins = ins.merge(acks.drop_duplicates(["call_sid", "msgid"]), on=["call_sid", "msgid"], how="left")
    # the first reply with audio after the input, before the next input
    replies = _replies(ev)
    ins = ins.sort_values("pos")
    if len(replies):
        joined = pd.merge_asof(
            ins,
            replies.rename(columns={"pos": "reply_pos", "t": "reply_t"}),
            left_on="pos",
            right_on="reply_pos",
            by="call_sid",
            direction="forward",
        )
        late = joined["next_pos"].notna() & joined["reply_pos"].gt(joined["next_pos"])
        for col in ("reply_pos", "reply_t", "reply_verb", "reply_text"):
            joined[col] = joined[col].where(~late)
    else:
        joined = ins.assign(reply_pos=float("nan"), reply_t=float("nan"), reply_verb=None, reply_text=None)
    first_ms = (joined["reply_t"] - joined["t"]) * 1000
    llm_turn = joined["input"].eq("llm")
    joined["response_ms"] = joined["ack_ms"].where(~llm_turn, first_ms)
    joined["first_audio_ms"] = first_ms
    joined["gap_s"] = joined["next_t"] - joined["reply_t"]
    joined = _tools(ev, joined)
    joined["barge_in"] = _barge_ins(ev, joined)
    joined = joined.sort_values("pos")
    table = joined.rename(columns={"t": "input_at"})
    table["reply_text"] = table["reply_text"].astype(object).where(table["reply_text"].notna(), None)
    table["reply_verb"] = table["reply_verb"].astype(object).where(table["reply_verb"].notna(), None)
    return table[list(TURN_COLUMNS)].reset_index(drop=True)


def _tools(ev: pd.DataFrame, joined: pd.DataFrame) -> pd.DataFrame:
    """``tool_calls`` and ``tool_ms`` per turn: each llm:tool-call paired, in order, with the call's
    next ``llm:tool-output`` command."""
    import pandas as pd

    asks = ev[ev["direction"].eq("in") & ev["type"].eq("llm:tool-call")][["call_sid", "pos", "t"]]
    if not len(asks):
        return joined.assign(tool_calls=0, tool_ms=float("nan"))
    answers = ev[ev["direction"].eq("out") & ev["type"].eq("llm:tool-output")][["call_sid", "t"]]
    asks = asks.assign(n=asks.groupby("call_sid", sort=False).cumcount())
    answers = answers.assign(n=answers.groupby("call_sid", sort=False).cumcount())
    paired = asks.merge(answers.rename(columns={"t": "t_out"}), on=["call_sid", "n"], how="left")
    paired["ms"] = (paired["t_out"] - paired["t"]) * 1000
    owner = pd.merge_asof(
        paired.sort_values("pos"),
        joined[["call_sid", "pos", "turn"]].sort_values("pos"),
        on="pos",
        by="call_sid",
        direction="backward",
    )
    per = (
        owner.dropna(subset=["turn"])
        .groupby(["call_sid", "turn"])
        .agg(tool_calls=("pos", "size"), tool_ms=("ms", "sum"))
    )
    joined = joined.merge(per.reset_index(), on=["call_sid", "turn"], how="left")
    joined["tool_calls"] = joined["tool_calls"].fillna(0).astype("int64")
    return joined


def _barge_ins(ev: pd.DataFrame, joined: pd.DataFrame) -> pd.Series:
    """True where a barge-in event came between the previous input and this one; <NA> for calls
    that sent no verb:status events (nothing to tell)."""
    import pandas as pd

    statuses = ev[ev["direction"].eq("in") & ev["type"].eq("verb:status")]
    reporting = set(statuses["call_sid"].unique())
    result = pd.Series(pd.NA, index=joined.index, dtype="boolean")
    if not reporting:
        return result
    result[joined["call_sid"].isin(reporting)] = False
    barged = statuses[_mask([_data(p).get("event") in _BARGE_EVENTS for p in statuses["payload"]])]
    if not len(barged):
        return result
    owner = pd.merge_asof(
        barged[["call_sid", "pos"]].sort_values("pos"),
        joined[["call_sid", "pos", "turn"]].sort_values("pos"),
        on="pos",
        by="call_sid",
        direction="forward",
    ).dropna(subset=["turn"])
    hit = pd.MultiIndex.from_frame(owner[["call_sid", "turn"]].astype({"turn": "int64"}))
    mine = pd.MultiIndex.from_frame(joined[["call_sid", "turn"]])
    result[mine.isin(hit)] = True
    return result


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per call of a :func:`turns` table: turns, p50/p95/max response, longest gap,
    barge-ins and tool calls."""
    groups = table.groupby("call_sid", sort=False)
    out = groups.agg(
        turns=("turn", "size"),
        p50_ms=("response_ms", "median"),
        p95_ms=("response_ms", lambda s: s.quantile(0.95)),
        max_ms=("response_ms", "max"),
        longest_gap_s=("gap_s", "max"),
        barge_ins=("barge_in", lambda s: int(s.fillna(False).sum())),
        tool_calls=("tool_calls", "sum"),
    )
    return out.reset_index()


def _groups(groups: Mapping[str, Iterable[Any]]) -> dict[str, str]:
    """call_sid -> group name; a group is call sids or CallResults (their ``call_sid``)."""
    owner: dict[str, str] = {}
    for name, members in groups.items():
        for member in members:
            owner[str(getattr(member, "call_sid", member))] = name
    return owner


def compare(table: pd.DataFrame, groups: Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """Per group of calls (``{"v1": results_v1, "v2": results_v2}``, with CallResults or call
    sids): calls, turns, p50/p95/max response, median first audio, barge-ins."""
    owner = _groups(groups)
    mine = table.assign(group=table["call_sid"].map(owner)).dropna(subset=["group"])
    out = mine.groupby("group", sort=False).agg(
        calls=("call_sid", "nunique"),
        turns=("turn", "size"),
        p50_ms=("response_ms", "median"),
        p95_ms=("response_ms", lambda s: s.quantile(0.95)),
        max_ms=("response_ms", "max"),
        first_audio_p50_ms=("first_audio_ms", "median"),
        barge_ins=("barge_in", lambda s: int(s.fillna(False).sum())),
    )
    return out.reindex([g for g in groups if g in out.index])


def plot_response_times(table: pd.DataFrame, groups: Mapping[str, Iterable[Any]] | None = None) -> Figure:
    """Response-time distributions per group (or for all turns): a box and the points per group.

    Each group's name on the x axis says how many turns it drew (``(no turns)`` for a group whose
    calls had none, e.g. callers who hung up during the greeting: an empty slot, explained)."""
    from ..figure import InlineFigure

    owner = _groups(groups) if groups is not None else None
    names = list(groups) if groups is not None else ["all turns"]
    series = []
    for name in names:
        mine = table if owner is None else table[table["call_sid"].map(owner).eq(name)]
        series.append(mine["response_ms"].dropna().to_numpy())
    fig = InlineFigure(figsize=(max(4.0, 1.6 * len(names) + 2), 3.2))
    ax = fig.subplots()
    ax.boxplot(series, showfliers=False)
    counts = [
        f"{len(values)} turn{'' if len(values) == 1 else 's'}" if len(values) else "(no turns)"
        for values in series
    ]
    labels = [f"{name}\n{n}" for name, n in zip(names, counts, strict=True)]
    ax.set_xticks(range(1, len(names) + 1), labels, parse_math=False)  # "$5 plan" stays text
    for i, values in enumerate(series, start=1):
        ax.scatter([i] * len(values), values, s=8, alpha=0.4)
    ax.set_ylabel("response time (ms)")
    ax.set_title("time from the caller's input to the app's answer")
    fig.tight_layout()
    return fig


class Transcript:
    """Both sides of one call as a dialogue: :attr:`frame` (``t``, ``speaker``, ``text``, ``how``) and
    a notebook view. Caller-controlled text is escaped: it is data, never markup."""

    def __init__(self, call_sid: str, frame: pd.DataFrame) -> None:
        self.call_sid = call_sid
        self.frame = frame

    def __repr__(self) -> str:
        lines = [f"Transcript of {self.call_sid} ({len(self.frame)} lines)"]
        for t, speaker, text, how in self.frame.itertuples(index=False, name=None):
            lines.append(f"{t:8.2f}s  {speaker:<6} {text}" + (f"  [{how}]" if how else ""))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = []
        for t, speaker, text, how in self.frame.itertuples(index=False, name=None):
            side = "right" if speaker == "caller" else "left"
            tag = f" <small>({html.escape(str(how))})</small>" if how else ""
            color = "#e3f2fd" if side == "right" else "#f1f1f1"
            bubble = f"display:inline-block;padding:3px 8px;border-radius:8px;background:{color}"
            rows.append(
                f'<div style="text-align:{side};margin:2px 0">'
                f"<small>{t:.2f}s {html.escape(speaker)}</small><br>"
                f'<span style="{bubble}">{html.escape(str(text))}</span>{tag}</div>'
            )
        head = f"<b>Transcript</b> <code>{html.escape(self.call_sid)}</code>"
        return f'<div style="max-width:640px">{head}{"".join(rows)}</div>'


def transcript(events: pd.DataFrame, call_sid: str) -> Transcript:
    """What the caller said or pressed and what the app said or played, in call order."""
    import pandas as pd

    ev = _clocked(events[events["call_sid"].eq(call_sid)])
    lines: list[tuple[float, str, str, str]] = []
    if len(ev):
        for row in _inputs(ev).itertuples(index=False):
            text = row.transcript if isinstance(row.transcript, str) else None
            text = text or (f"pressed {row.digits}" if isinstance(row.digits, str) else "(no input)")
            lines.append((_seconds(row.t), "caller", text, str(row.input)))
        out = ev[ev["direction"].eq("out") & ev["type"].isin(["ack", "redirect"]) & ev["verbs"].gt(0)]
        for t, payload in zip(out["t"], out["payload"], strict=True):
            msg = _json(payload)
            for verb, text in _audio(msg.get("data") if isinstance(msg, dict) else None):
                lines.append((float(t), "app", text, verb))
        for row in _replies(ev).itertuples(index=False):
            if row.reply_verb == "llm":
                lines.append((_seconds(row.t), "app", str(row.reply_text), "llm"))
    frame = pd.DataFrame(lines, columns=["t", "speaker", "text", "how"])
    frame = frame.sort_values("t", kind="stable").reset_index(drop=True)
    return Transcript(call_sid, frame)
