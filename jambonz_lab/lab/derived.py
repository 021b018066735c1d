"""``calls``, ``hooks`` and ``statuses`` of a Parquet log directory, built by DuckDB from the parts.

The lab builds these views in pandas from the rows (:mod:`jambonz_lab.lab.views`): every payload
parsed in Python, a chunk at a time. Over a directory that is most of a first query's time
(65 s at 1 M events, benchmarks/README.md). Here DuckDB reads the parts, lifts the few payload
fields the three views need (``call_status``, ``leg``, ``from``/``to``/``direction`` of a
``session:*``, ``duration``, ``reason``, ``sip_status``) and reduces them per call in SQL; pandas
only turns the small results into the views' columns and types (times through the very same
conversions as the lab's, so they are equal to the nanosecond).

The rules are the lab's (see :func:`jambonz_lab.lab.views.calls`): jambonz rows only; each
``session:new`` starts a call (a second one for the same sid is a new call); ``from``, ``to``,
``direction`` the first values of its ``session:*`` messages; ``answer`` its first own
``in-progress``; ``end`` its last own final status; rows are in the order
:func:`~jambonz_lab.lab.parquet.read_parts` returns them (parts by name, then by ``ts`` within
one batch). An ack's latency is from the first incoming
message with its call sid and msgid.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..protocol.messages import FINAL_STATUSES
from ..records import ERROR_KINDS
from .parquet import require
from .views import CALL_COLUMNS, HOOK_TYPES, whole_numbers

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["build"]

#: the payload's ``data`` fields the three views read
_FIELDS = ("call_status", "call_sid", "reason", "sip_status", "from", "to", "direction", "duration")
_ENDED = tuple(sorted(FINAL_STATUSES))
_ERRORS = tuple(sorted(ERROR_KINDS))


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _rows_sql(files: str) -> str:
    """Every row of the parts (``files``: a SQL list of their paths) in read order (``_i``), with
    the payload fields of incoming rows."""
    scan = (
        f"read_parquet({files}, hive_partitioning = false, union_by_name = true, "
        "filename = true, file_row_number = true)"
    )
    paths = ", ".join(f"'$.data.{name}'" for name in _FIELDS)
    text = {name: f"_s[{i + 1}]" for i, name in enumerate(_FIELDS)}  # each field as text, or NULL
    number = "IN ('UBIGINT', 'BIGINT', 'DOUBLE')"
    opening = "_ok AND starts_with(type, 'session:')"
    incoming = "direction = 'in' AND json_valid(payload)"
    # payloads are parsed where they are read and dropped before the rows are numbered (a sort
    # of narrow rows); each incoming payload is parsed for its fields' text and for their types
    return f"""
    WITH scanned AS (
        SELECT parse_filename(filename) AS _name, filename, file_row_number,
            ts, call_sid, direction, type, msgid, hook, verbs, note, source, call_t,
            CASE WHEN {incoming} THEN json_extract_string(payload, [{paths}]) END AS _s,
            CASE WHEN {incoming}
                 THEN json_type(payload, ['$.data', '$.data.sip_status', '$.data.duration']) END AS _t
        FROM {scan}
    ),
    ordered AS (  -- fields only where the payload's data is an object, as the lab reads them
        SELECT * EXCLUDE (_name, filename, file_row_number),
            row_number() OVER (ORDER BY _name, ts, filename, file_row_number) AS _i,
            coalesce(_t[1] = 'OBJECT', false) AS _ok
        FROM scanned
    )
    SELECT _i, ts, call_sid, direction, type, msgid, hook, verbs, note, source, call_t,
        CASE WHEN _ok THEN {text["call_status"]} END AS call_status,
        CASE WHEN _ok THEN {text["call_sid"]} END AS leg,
        CASE WHEN _ok THEN {text["reason"]} END AS reason,
        CASE WHEN _ok AND _t[2] {number} THEN CAST({text["sip_status"]} AS DOUBLE)
             WHEN _ok AND _t[2] = 'VARCHAR' THEN TRY_CAST({text["sip_status"]} AS DOUBLE) END AS sip_status,
        CASE WHEN {opening} THEN {text["from"]} END AS _from,
        CASE WHEN {opening} THEN {text["to"]} END AS _to,
        CASE WHEN {opening} THEN {text["direction"]} END AS _cdir,
        CASE WHEN _ok AND type = 'call:status' AND _t[3] {number}
             THEN CAST({text["duration"]} AS DOUBLE) END AS _duration
    FROM ordered
    """


def _calls_sql() -> str:
    """One row per call from the table ``r`` (the jambonz rows with a call sid)."""
    return f"""
    WITH marked AS (
        SELECT *,
            greatest(1, sum(CASE WHEN direction = 'in' AND type = 'session:new' THEN 1 ELSE 0 END)
                OVER (PARTITION BY call_sid ORDER BY _i ROWS UNBOUNDED PRECEDING)) AS _seg,
            direction = 'in' AND starts_with(type, 'session:') AS _opening,
            coalesce(type = 'call:status' AND (leg IS NULL OR leg = call_sid), false) AS _own,
            CASE WHEN call_t IS NULL OR isnan(call_t) THEN NULL ELSE call_t END AS _ct
        FROM r WHERE call_sid IS NOT NULL
    ),
    flagged AS (
        SELECT *,
            _own AND call_status = 'in-progress' AS _answered,
            _own AND call_status IN ({_quoted(_ENDED)}) AS _ended
        FROM marked
    ),
    per_call AS (
        SELECT call_sid, _seg, min(_i) AS _first,
            arg_min(ts, _i) AS start,
            arg_min(_from, _i) FILTER (WHERE _opening AND _from IS NOT NULL) AS "from",
            arg_min(_to, _i) FILTER (WHERE _opening AND _to IS NOT NULL) AS "to",
            arg_min(_cdir, _i) FILTER (WHERE _opening AND _cdir IS NOT NULL) AS direction,
            arg_min(ts, _i) FILTER (WHERE _answered) AS answer,
            arg_min(ts, _i) FILTER (WHERE _ct IS NOT NULL) AS _anchor_ts,
            arg_min(_ct, _i) FILTER (WHERE _ct IS NOT NULL) AS _anchor_ct,
            arg_min(_ct, _i) FILTER (WHERE _answered AND _ct IS NOT NULL) AS _ct_answer,
            arg_max(call_status, _i) FILTER (WHERE _own AND call_status IS NOT NULL) AS final_status,
            CAST(count(*) FILTER (WHERE direction = 'in' AND type = 'verb:hook') AS BIGINT) AS hooks,
            CAST(count(*) FILTER (WHERE type = 'jambonz:error'
                 OR (direction = 'lab' AND type IN ({_quoted(_ERRORS)}))) AS BIGINT) AS errors,
            max(_i) FILTER (WHERE _ended) AS _end_i
        FROM flagged GROUP BY call_sid, _seg
    )
    SELECT c.*, e.ts AS "end", e._duration AS _end_duration, e._ct AS _ct_end
    FROM per_call c LEFT JOIN flagged e ON e._i = c._end_i
    ORDER BY c._first
    """


def _hooks_sql() -> str:
    """Every message that wanted an ack, joined to its acks (null-safe keys, as pandas joins)."""
    return f"""
    WITH received AS (
        SELECT call_sid, msgid, arg_min(ts, _i) AS ts_in
        FROM rows_all WHERE direction = 'in' AND msgid IS NOT NULL
        GROUP BY call_sid, msgid
    ),
    acks AS (
        SELECT a._i, a.call_sid, a.msgid, a.ts, a.note, a.verbs, rc.ts_in
        FROM r a LEFT JOIN received rc
            ON a.call_sid IS NOT DISTINCT FROM rc.call_sid AND a.msgid = rc.msgid
        WHERE a.direction = 'out' AND a.type = 'ack'
    )
    SELECT h.call_sid, h.type, h.hook, h.msgid, h.ts AS received, a.ts AS acked, a.ts_in,
        a.note, a.verbs, h.reason
    FROM r h LEFT JOIN acks a
        ON h.call_sid IS NOT DISTINCT FROM a.call_sid AND h.msgid IS NOT DISTINCT FROM a.msgid
    WHERE h.direction = 'in' AND h.type IN ({_quoted(HOOK_TYPES)})
    ORDER BY h._i, a._i
    """


def _utc(seconds: Any) -> Any:
    import pandas as pd

    # as the lab converts ts (lab/events.py, catch_up); all missing would come out in µs
    times = pd.to_datetime(pd.Series(seconds, dtype="float64"), unit="s", utc=True)
    return times.astype("datetime64[ns, UTC]")


def _text(frame: pd.DataFrame, columns: list[str]) -> None:
    for col in columns:
        values = frame[col].astype(object)
        frame[col] = values.where(values.notna(), None)


def _calls(agg: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    start = _utc(agg["start"])
    anchor = _utc(agg["_anchor_ts"]) - pd.to_timedelta(agg["_anchor_ct"], unit="s")
    wall_answer, wall_end = _utc(agg["answer"]), _utc(agg["end"])
    on_call = anchor.notna()
    answer, end = (
        (anchor + pd.to_timedelta(agg[ct], unit="s")).where(agg[ct].notna(), wall)
        for wall, ct in ((wall_answer, "_ct_answer"), (wall_end, "_ct_end"))
    )
    measured = (end - answer).dt.total_seconds()
    table = pd.DataFrame(
        {
            "call_sid": agg["call_sid"],
            "from": agg["from"],
            "to": agg["to"],
            "direction": agg["direction"],
            "start": start,
            "answer": answer,
            "end": end,
            "duration_s": agg["_end_duration"].astype("float64").fillna(measured),
            "final_status": agg["final_status"],
            "hooks": agg["hooks"].astype("int64"),
            "errors": agg["errors"].astype("int64"),
            "clock": on_call.map({True: "call", False: "wall"}),
        }
    )
    _text(table, ["call_sid", "from", "to", "direction", "final_status"])
    for col in ("call_sid", "from", "to", "direction"):  # as pandas infers them from a group-by
        table[col] = table[col].infer_objects()
    return table[CALL_COLUMNS].reset_index(drop=True)


def _hooks(joined: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    received, acked = _utc(joined["received"]), _utc(joined["acked"])
    ack_ms = (acked - _utc(joined["ts_in"])).dt.total_seconds() * 1000
    verbs = joined["verbs"].astype("float64")
    table = pd.DataFrame(
        {
            "call_sid": joined["call_sid"],
            "type": joined["type"],
            "hook": joined["hook"],
            "msgid": joined["msgid"],
            "received": received,
            "acked": acked,
            "ack_ms": ack_ms,
            "auto": joined["note"].eq("auto").fillna(False).astype(bool),
            "verbs": verbs if verbs.isna().any() else verbs.astype("int64"),
            "reason": joined["reason"],
        }
    )
    _text(table, ["call_sid", "type", "hook", "msgid", "reason"])
    return table.reset_index(drop=True)


def _statuses(frame: pd.DataFrame) -> pd.DataFrame:
    table = frame.assign(ts=_utc(frame["ts"]), sip_status=whole_numbers(frame["sip_status"]))
    _text(table, ["call_sid", "leg", "call_status"])
    return table[["ts", "call_sid", "leg", "call_status", "sip_status"]].reset_index(drop=True)


def build(parts: Sequence[Path], names: set[str]) -> dict[str, pd.DataFrame]:
    """The tables of ``names`` (``calls``, ``hooks``, ``statuses``) of these parts (at least one;
    in :func:`~jambonz_lab.lab.parquet.part_files` order): exactly these files, not a glob, so
    the tables are those of the parts listed, whatever lands meanwhile."""
    duckdb = require("duckdb", "lab.sql")
    if not parts:
        raise ValueError("no parts to build the tables of")
    files = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts) + "]"
    con = duckdb.connect()
    try:
        con.execute(f"CREATE TEMP TABLE rows_all AS {_rows_sql(files)}")
        con.execute("CREATE TEMP VIEW r AS SELECT * FROM rows_all WHERE source = 'jambonz'")
        out: dict[str, pd.DataFrame] = {}
        if "calls" in names:
            out["calls"] = _calls(con.sql(_calls_sql()).df())
        if "hooks" in names:
            out["hooks"] = _hooks(con.sql(_hooks_sql()).df())
        if "statuses" in names:
            rows = con.sql(
                "SELECT ts, call_sid, leg, call_status, sip_status FROM r "
                "WHERE direction = 'in' AND type = 'call:status' ORDER BY _i"
            ).df()
            out["statuses"] = _statuses(rows)
        return out
    finally:
        con.close()
