"""Timestamp detection and parsing, done in SQL so that it runs at DuckDB speed."""

from __future__ import annotations

import duckdb

# Tried in order after ISO 8601; the first that parses every sampled value wins.
CANDIDATE_FORMATS = [
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%d/%m/%Y %I:%M:%S %p",
    "%Y-%m-%d",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%Y/%m/%d",
    "%Y%m%d%H%M%S",
]

ISO = "iso"
EPOCH = "epoch"  # seconds (or milliseconds) since 1970 written as text
_EPOCH_RE = r"^-?[0-9]{9,13}(\.[0-9]+)?$"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def parse_expr(column_sql: str, fmt: str, trim: bool = True) -> str:
    """SQL giving TIMESTAMPTZ (in the session's zone for naive values) from a VARCHAR column.

    ``trim=False`` when the column is known to have no leading or trailing spaces (the loader
    checks each batch): trimming every value costs more than parsing it. The ISO cast ignores
    surrounding spaces by itself."""
    if fmt == ISO:
        return f"TRY_CAST({column_sql} AS TIMESTAMPTZ)"
    value = f"trim({column_sql})" if trim else column_sql
    if fmt == EPOCH:
        num = f"(CASE WHEN regexp_matches({value}, '{_EPOCH_RE}') THEN TRY_CAST({value} AS DOUBLE) END)"
        return f"(CASE WHEN abs({num}) > 1e11 THEN to_timestamp({num} / 1000.0) ELSE to_timestamp({num}) END)"
    return f"TRY_CAST(try_strptime({value}, {quote_literal(fmt)}) AS TIMESTAMPTZ)"


def detect_format(con: duckdb.DuckDBPyConnection, values: list[str], allow_epoch: bool = True) -> str | None:
    """Pick the format that parses the most of ``values`` (ISO 8601 preferred on ties).

    ``allow_epoch`` also accepts numbers of seconds/milliseconds since 1970 written as text (only
    for a column the user named as a timestamp: ids look like that too).
    """
    sample = [v for v in values if v is not None and str(v).strip()][:2000]
    if not sample:
        return None
    con.execute("CREATE OR REPLACE TEMP TABLE _ts_sample AS SELECT unnest(?::VARCHAR[]) AS v", [sample])
    best, best_ok = None, 0
    for fmt in [ISO, *CANDIDATE_FORMATS, *([EPOCH] if allow_epoch else [])]:
        ok = con.execute(f"SELECT count({parse_expr('v', fmt)}) FROM _ts_sample").fetchone()[0]
        if ok > best_ok:
            best, best_ok = fmt, ok
        if ok == len(sample):
            break
    con.execute("DROP TABLE IF EXISTS _ts_sample")
    return best if best_ok else None


def to_utc_expr(column_sql: str, column_type: str, fmt: str | None, timezone: str = "UTC", trim: bool = True) -> str:
    """SQL expression turning a source column into a UTC TIMESTAMP (NULL when unparseable).

    Naive values are read in ``timezone``, which the loader also sets as the session time zone.
    The result is taken from the TIMESTAMPTZ's instant (``epoch_us``) rather than through ICU's
    ``timezone()``; typed naive columns of a UTC source need no conversion at all.
    """
    t = column_type.upper()
    if t.startswith("TIMESTAMP WITH TIME ZONE") or t == "TIMESTAMPTZ":
        tz = column_sql
    elif t.startswith("TIMESTAMP") or t == "DATE":
        if timezone.upper() in {"UTC", "ETC/UTC", "Z", "GMT"}:
            return f"CAST({column_sql} AS TIMESTAMP)"
        tz = f"CAST({column_sql} AS TIMESTAMPTZ)"
    elif t in {"BIGINT", "INTEGER", "DOUBLE", "HUGEINT", "UBIGINT", "FLOAT", "DECIMAL"} or t.startswith("DECIMAL"):
        # epoch seconds, or milliseconds when the values are too large to be seconds
        tz = f"CASE WHEN abs({column_sql}) > 1e11 THEN to_timestamp({column_sql} / 1000.0) ELSE to_timestamp({column_sql}) END"
    else:
        tz = parse_expr(f"CAST({column_sql} AS VARCHAR)", fmt or ISO, trim=trim)
    return f"make_timestamp(epoch_us({tz}))"
