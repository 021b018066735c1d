"""DataFrame views of the event log: events (flattened), calls, hooks, statuses.

Pure functions of the rows; built lazily by :class:`~jambonz_lab.lab.events.EventLog`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..protocol.messages import best_alternative

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["calls", "flatten", "hooks", "statuses"]

#: payload fields lifted into columns of ``lab.events``
FLAT = ("reason", "call_status", "sip_status", "digits", "transcript", "confidence", "leg")


def _fields(direction: str, payload: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(FLAT)
    if not isinstance(payload, dict):
        return out
    data = payload.get("data")
    if direction == "in" and isinstance(data, dict):
        for key in ("reason", "call_status", "sip_status", "digits"):
            out[key] = data.get(key)
        out["leg"] = data.get("call_sid")
        best = best_alternative(data)
        if best is not None:
            out["transcript"] = best.get("transcript")
            out["confidence"] = best.get("confidence")
    return out


def flatten(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the common payload fields as columns and ``ack_ms`` (hook → ack latency) to out rows."""
    import pandas as pd

    extra = pd.DataFrame.from_records(
        [_fields(d, p) for d, p in zip(frame["direction"], frame["payload"], strict=True)],
        columns=list(FLAT),
        index=frame.index,
    )
    out = pd.concat([frame, extra], axis=1)
    received = out[out["direction"] == "in"].drop_duplicates("msgid").set_index("msgid")["ts"]
    acks = out["direction"].eq("out") & out["msgid"].notna()
    latency = (out.loc[acks, "ts"] - out.loc[acks, "msgid"].map(received)).dt.total_seconds() * 1000
    out["ack_ms"] = latency.reindex(out.index)
    return out


def hooks(events: pd.DataFrame) -> pd.DataFrame:
    """One row per message that wanted an ack: when it came, when it was acked, by whom, how fast."""
    import pandas as pd

    wants = {
        "session:new",
        "session:reconnect",
        "session:redirect",
        "session:adulting",
        "verb:hook",
        "dial:confirm",
    }
    ins = events[(events["direction"] == "in") & events["type"].isin(wants)]
    outs = events[(events["direction"] == "out") & (events["type"] == "ack")]
    merged = ins.merge(
        outs[["msgid", "ts", "note", "verbs", "ack_ms"]], on="msgid", how="left", suffixes=("", "_ack")
    )
    table = pd.DataFrame(
        {
            "call_sid": merged["call_sid"],
            "type": merged["type"],
            "hook": merged["hook"],
            "msgid": merged["msgid"],
            "received": merged["ts"],
            "acked": merged["ts_ack"],
            "ack_ms": merged["ack_ms_ack"],  # the ack row's latency (the hook's own column is empty)
            "auto": merged["note_ack"].eq("auto"),
            "verbs": merged["verbs_ack"],
            "reason": merged["reason"],
        }
    )
    return table.reset_index(drop=True)


def statuses(events: pd.DataFrame) -> pd.DataFrame:
    """Every ``call:status``: which leg, which status, when."""
    rows = events[(events["direction"] == "in") & (events["type"] == "call:status")]
    cols = ["ts", "call_sid", "leg", "call_status", "sip_status"]
    return rows[cols].reset_index(drop=True)


def calls(events: pd.DataFrame) -> pd.DataFrame:
    """One row per call: who, when it started, was answered, ended, how long, how, hooks and errors."""
    import pandas as pd

    records = []
    for sid, rows in events.groupby("call_sid", sort=False, dropna=True):
        opening = rows[(rows["direction"] == "in") & rows["type"].str.startswith("session:")]
        data: dict[str, Any] = {}
        if len(opening):
            payload = opening.iloc[0]["payload"]
            data = payload.get("data", {}) if isinstance(payload, dict) else {}
        own = rows[(rows["type"] == "call:status") & (rows["leg"].isna() | (rows["leg"] == sid))]
        answered = own[own["call_status"] == "in-progress"]["ts"]
        ended = own[own["call_status"].isin(["completed", "failed", "no-answer", "busy"])]
        final = own["call_status"].iloc[-1] if len(own) else None
        answer = answered.iloc[0] if len(answered) else pd.NaT
        end = ended["ts"].iloc[-1] if len(ended) else pd.NaT
        errors = rows[
            (rows["type"] == "jambonz:error")
            | (
                (rows["direction"] == "lab")
                & rows["type"].isin(["handler-error", "bad-frame", "protocol-error", "refused-frame"])
            )
        ]
        records.append(
            {
                "call_sid": sid,
                "from": data.get("from"),
                "to": data.get("to"),
                "direction": data.get("direction"),
                "start": rows["ts"].iloc[0],
                "answer": answer,
                "end": end,
                "duration_s": _duration(ended, answer, end),
                "final_status": final,
                "hooks": int(((rows["direction"] == "in") & (rows["type"] == "verb:hook")).sum()),
                "errors": len(errors),
            }
        )
    columns = [
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
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def _duration(ended: pd.DataFrame, answer: Any, end: Any) -> float | None:
    """jambonz's own ``duration`` of the final status, else end minus answer."""
    if len(ended):
        payload = ended.iloc[-1]["payload"]
        data = payload.get("data", {}) if isinstance(payload, dict) else {}
        if isinstance(data.get("duration"), int | float):
            return float(data["duration"])
    if answer is not None and end is not None and str(answer) != "NaT" and str(end) != "NaT":
        return float((end - answer).total_seconds())
    return None
