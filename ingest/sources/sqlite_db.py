"""SQLite databases: a query with an incremental cursor column, streamed in batches.

The query may use the placeholder ``:cursor`` (``WHERE changed_at > :cursor``). On a job's first
run there is no cursor yet: the job's ``initial_cursor`` is used when configured, otherwise every
comparison ``<column> > :cursor`` / ``>= :cursor`` in the query is replaced by ``1=1`` (no
restriction) and any other ``:cursor`` is bound to NULL. A query without ``:cursor`` but with a
``cursor`` column is wrapped as ``SELECT * FROM (query) WHERE <cursor> > :cursor``.

Every batch carries ``cursor`` = the largest cursor value seen so far; the loader commits the last
one with the run's data, so a failed run leaves the watermark where it was. Rows with the same
cursor value as the watermark committed *later* are missed by ``>``: where that can happen, write
``>=`` in the query and give a ``record_id`` - re-read rows are then skipped as duplicates.

The helpers here (query preparation, rows to Arrow, cursor values) are shared with PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from ingest.loader import Batch
from processlens.errors import SourceError

DEFAULT_BATCH_SIZE = 50_000
PLACEHOLDER = re.compile(r"(?<![:\w]):cursor\b")
COMPARISON = re.compile(r"((?:\"[^\"]+\"|[\w.]+))\s*(>=|>)\s*(?<![:\w]):cursor\b")
_INT = re.compile(r"^-?(0|[1-9]\d*)$")
_FLOAT = re.compile(r"^-?(0|[1-9]\d*)\.\d+$")


# -- shared with postgres_db ---------------------------------------------------------------------
def prepare_query(query: str, cursor_column: str | None, cursor: Any, quote: str = '"') -> tuple[str, bool]:
    """Return the query to run and whether it still binds ``:cursor``.

    With a cursor value the placeholder stays (or a wrapper adds it); without one the cursor
    comparisons are neutralised so the first run reads everything.
    """
    query = query.strip().rstrip(";").strip()
    if PLACEHOLDER.search(query):
        if cursor is not None:
            return query, True
        query = COMPARISON.sub("1=1", query)
        return query, bool(PLACEHOLDER.search(query))
    if cursor_column and cursor is not None:
        col = quote + cursor_column.replace(quote, quote * 2) + quote
        return f"SELECT * FROM ({query}) AS _pl_q WHERE {col} > :cursor", True
    return query, False


def decode_cursor(value: str | None) -> Any:
    """A stored watermark (text) back to the value to bind: integers and decimals as numbers."""
    if value is None:
        return None
    if _INT.match(value):
        return int(value)
    if _FLOAT.match(value):
        return float(value)
    return value


def encode_cursor(value: Any) -> str | None:
    """A cursor value as the text stored in ``cursors`` (ISO 8601 for times)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def max_value(current: Any, values: Sequence[Any]) -> Any:
    """The larger of ``current`` and the non-null ``values`` (mixed types compare as text)."""
    present = [v for v in values if v is not None]
    if current is not None:
        present.append(current)
    if not present:
        return None
    try:
        return max(present)
    except TypeError:
        return max(present, key=lambda v: encode_cursor(v) or "")


def _plain(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _column_array(values: Sequence[Any]) -> pa.Array:
    try:
        arr = pa.array(values)
        if pa.types.is_decimal(arr.type) and arr.type.precision > 38:
            raise pa.ArrowInvalid("decimal too wide")
        return arr
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    plain = [_plain(v) for v in values]  # JSON values as text, memoryviews as bytes
    try:
        return pa.array(plain)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed types: text
        return pa.array([None if v is None else (format(v, "f") if isinstance(v, Decimal) else str(v)) for v in plain],
                        pa.string())


def rows_to_table(columns: list[str], rows: list[Sequence[Any]]) -> pa.Table:
    """Rows (tuples) to an Arrow table; a column whose values Arrow cannot type becomes text."""
    arrays = [_column_array(col) for col in zip(*rows, strict=True)] if rows else [pa.nulls(0) for _ in columns]
    return pa.Table.from_arrays(arrays, names=unique_names(columns))


def unique_names(columns: list[str]) -> list[str]:
    """Make result column names unique ignoring case (``a``, ``a_1``), as a join can repeat them."""
    seen: set[str] = set()
    out = []
    for c in columns:
        name, k = c, 1
        while name.lower() in seen:
            name, k = f"{c}_{k}", k + 1
        seen.add(name.lower())
        out.append(name)
    return out


def batches_from_cursor(
    fetch: Any, columns: list[str], cursor_column: str | None, location: str, batch_size: int, table: str,
) -> Iterator[Batch]:
    """Turn a DB-API cursor (``fetch(n)`` = fetchmany) into batches carrying the running watermark."""
    if cursor_column and cursor_column not in columns:
        raise SourceError(
            f"the cursor column {cursor_column!r} is not in the query's result",
            hint=f"select it in the query; the result has {columns}", where={"query": location},
        )
    idx = columns.index(cursor_column) if cursor_column else None
    high = None
    offset = 0
    while True:
        rows = fetch(batch_size)
        if not rows:
            break
        if idx is not None:
            high = max_value(high, [r[idx] for r in rows])
        yield Batch(relation=f"{table}", data=rows_to_table(columns, rows), location=location,
                    cursor=encode_cursor(high) if idx is not None else None, position_offset=offset, line_offset=None)
        offset += len(rows)


# -- SQLite --------------------------------------------------------------------------------------
def batches(
    path: str | Path,
    query: str,
    cursor_column: str | None = None,
    cursor: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[Batch]:
    """Stream ``query`` from the SQLite file at ``path`` (opened read-only) in batches."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"SQLite database {path} does not exist", hint="check the job's path",
                          where={"file": str(path)})
    value = decode_cursor(cursor)
    sql, binds = prepare_query(query, cursor_column, value)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise SourceError(f"cannot open SQLite database {path}: {exc}", hint="check the path and its permissions",
                          where={"file": str(path)}) from exc
    try:
        try:
            cur = db.execute(sql, {"cursor": value} if binds else {})
        except sqlite3.Error as exc:
            raise SourceError(
                f"the query failed on {path}: {exc}",
                hint="check the job's query (it may use :cursor for the watermark)",
                where={"file": str(path), "query": sql[:200]},
            ) from exc
        columns = [d[0] for d in cur.description or []]
        yield from batches_from_cursor(cur.fetchmany, columns, cursor_column, str(path), batch_size, "_sqlite_rows")
    finally:
        db.close()
