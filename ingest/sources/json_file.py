"""JSON sources: JSON lines (one object per line) or one JSON document with the records at a path.

``records_path`` says where the records are in a document (or in each line's object):

- ``""`` / not given: the document is the list of records (or a single record); for an object
  with exactly one list of objects in it, that list;
- ``"tickets"`` or ``"data.items"``: the list under that key (dots walk into objects);
- ``"tickets[].events"``: every ticket's ``events`` list; each event record also gets the ticket's
  other fields (parent fields). When a child has a field of the same name, the child's value wins
  and the parent's is kept as ``tickets.<field>``. ``"[].events"`` does the same for a document
  that is a list of tickets.

Flat JSON lines are read in DuckDB (fast path, ~1 million lines in a few seconds): lines that are
not valid JSON objects become rejects with their line number, the others load. Everything else
(documents, nested paths, files that are not UTF-8) is parsed in Python and typed by DuckDB the
same way. A file that is unusable as a whole (empty, not JSON at all, no records at the path)
raises :class:`SourceError` naming the file.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ingest.loader import Batch
from ingest.timestamps import quote_literal
from processlens.errors import SourceError

LINES_EXTENSIONS = (".jsonl", ".ndjson", ".jsonlines", ".jsonl.gz", ".ndjson.gz")
MAX_LINE_BYTES = 64 << 20
MAX_REASONS_PARSED = 1000  # malformed lines explained by Python's parser; the rest get a generic reason

_MISSING = object()


def _fail(path: str | Path, message: str, hint: str, **where: Any) -> SourceError:
    return SourceError(f"{path} {message}", hint=hint, where={"file": str(path), **where})


# -- records_path --------------------------------------------------------------------------------
def parse_records_path(records_path: str | None) -> list[tuple[str, bool]]:
    """``"tickets[].events"`` -> ``[("tickets", True), ("events", False)]`` (name, expand)."""
    if not records_path:
        return []
    segments = []
    for part in records_path.split("."):
        expand = part.endswith("[]")
        name = part[:-2] if expand else part
        segments.append((name, expand))
    for name, _ in segments[1:]:
        if not name:
            raise SourceError(f"records_path {records_path!r} has an empty segment",
                              hint='write it like "tickets", "data.items" or "tickets[].events"')
    return segments


def _merge(parent: dict[str, Any], parent_name: str, record: dict[str, Any]) -> dict[str, Any]:
    if not parent:
        return record
    out = dict(record)
    for key, value in parent.items():
        out[f"{parent_name}.{key}" if key in record else key] = value
    return out


def iter_records(doc: Any, records_path: str | None, key: str = "") -> Iterator[tuple[str, Any, str | None]]:
    """Yield ``(record_key, record, reject_reason)`` for every record at ``records_path``.

    ``record_key`` locates the record in the document (``tickets[3].events[0]``); a reason is set
    when the record (or its parent) cannot be used, e.g. it is not an object.
    """
    segments = parse_records_path(records_path)
    if not segments:
        if isinstance(doc, dict):
            lists = [k for k, v in doc.items() if isinstance(v, list) and any(isinstance(x, dict) for x in v)]
            segments = [(lists[0], False)] if len(lists) == 1 and len(doc) <= 3 else []
    if not segments:
        items = doc if isinstance(doc, list) else [doc]
        for i, rec in enumerate(items):
            k = f"{key}[{i}]" if isinstance(doc, list) else (key or "$")
            yield (k, rec, None) if isinstance(rec, dict) else (k, rec, "record is not a JSON object")
        return
    yield from _walk(doc, segments, key, {}, "", top=True)


def _walk(node: Any, segments: list[tuple[str, bool]], key: str, parent: dict[str, Any], parent_name: str,
          top: bool = False) -> Iterator[tuple[str, Any, str | None]]:
    (name, expand), rest = segments[0], segments[1:]
    if name:
        value = node.get(name, _MISSING) if isinstance(node, dict) else _MISSING
        here = f"{key}.{name}" if key else name
    else:
        value, here = node, key
    if value is _MISSING:
        if top:
            found = list(node)[:20] if isinstance(node, dict) else type(node).__name__
            raise SourceError(f"the JSON has no {name!r} at the top (found: {found})",
                              hint="set records_path to the key that holds the records")
        yield (key or "$", node, f"has no field {name!r}")
        return
    if not rest:
        items = value if isinstance(value, list) else [value] if isinstance(value, dict) else None
        if items is None:
            yield (here, value, f"{name or 'the document'} is not a list of records")
            return
        for i, rec in enumerate(items):
            k = f"{here}[{i}]" if isinstance(value, list) else here
            if isinstance(rec, dict):
                yield (k, _merge(parent, parent_name, rec), None)
            else:
                yield (k, rec, "record is not a JSON object")
        return
    child = rest[0][0]
    if expand or isinstance(value, list):
        if not isinstance(value, list):
            yield (here, value, f"{name or 'the document'} is not a list")
            return
        for i, item in enumerate(value):
            k = f"{here}[{i}]"
            if not isinstance(item, dict):
                yield (k, item, "parent record is not a JSON object")
                continue
            fields = {f: v for f, v in item.items() if f != child}
            yield from _walk(item, rest, k, _merge(parent, parent_name, fields), name or "parent")
    else:
        yield from _walk(value, rest, here, parent, parent_name)


def arrow_table(con: duckdb.DuckDBPyConnection, query: str) -> pa.Table:
    """The whole result of ``query`` as an Arrow table (DuckDB 1.x and 2.x names)."""
    rel = con.sql(query)
    fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
    return fetch()


# -- typing records in DuckDB ---------------------------------------------------------------------
def _materialise(con: duckdb.DuckDBPyConnection, lines_table: str, out: str, location: str) -> None:
    """``lines_table(line, j)`` with one JSON object per row -> ``out(__pl_line, fields...)``."""
    structure = con.execute(f"SELECT json_group_structure(j::JSON) FROM {lines_table}").fetchone()[0]
    if not structure or not structure.startswith("{") or structure == "{}":
        # records without any field: keep one row each so counts stay honest
        con.execute(f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT line AS __pl_line FROM {lines_table}")
        return
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {out} AS "
            f"SELECT line AS __pl_line, unnest(from_json(j, {quote_literal(structure)})) FROM {lines_table}"
        )
    except duckdb.Error as exc:
        raise _fail(location, f"has records DuckDB cannot type: {str(exc).splitlines()[0]}",
                    "field names must be unique ignoring case; rename the clashing fields in the export") from exc


def records_to_table(con: duckdb.DuckDBPyConnection, out: str, records: list[dict[str, Any]],
                     lines: list[int | None] | None = None, location: str = "records") -> None:
    """Create temp table ``out`` from Python records (typed by DuckDB; ``__pl_line`` per record)."""
    if lines is None:
        lines = [None] * len(records)
    texts = [json.dumps(r, default=str, ensure_ascii=False) for r in records]
    src = pa.table({"line": pa.array(lines, pa.int64()), "j": pa.array(texts, pa.string())})
    name = f"{out}_src"
    con.register(name, src)
    try:
        _materialise(con, name, out, location)
    finally:
        con.unregister(name)


# -- files ---------------------------------------------------------------------------------------
def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def detect_format(path: Path) -> str:
    """``lines`` (JSON lines) or ``document`` (one JSON value), from the name and the first line."""
    if path.name.lower().endswith(LINES_EXTENSIONS):
        return "lines"
    with _open(path) as fh:
        head = fh.read(1 << 20)
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if not text:
        raise _fail(path, "is empty", "export the data again; a JSON file needs at least one record")
    if text.startswith(b"["):
        return "document"
    first, _, rest = text.partition(b"\n")
    try:
        value = json.loads(first)
    except ValueError:
        return "document"
    return "lines" if isinstance(value, dict) and rest.strip() else "document"


def _load_document(path: Path) -> Any:
    try:
        with _open(path) as fh:
            text = fh.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(path, f"is not UTF-8 text (byte {exc.start})", "JSON must be UTF-8; export it again as UTF-8") from exc
    if not text.strip():
        raise _fail(path, "is empty", "export the data again; a JSON file needs at least one record")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(
            path, f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            "the file is malformed or cut off; export it again (for one object per line use format = \"lines\")",
            line=exc.lineno,
        ) from exc


def _python_records(path: Path, fmt: str, records_path: str | None) -> tuple[list[dict], list[int | None], list[dict]]:
    """Parse in Python: records, their lines (or None) and rejects."""
    records: list[dict] = []
    lines: list[int | None] = []
    rejects: list[dict] = []

    def take(items: Iterator[tuple[str, Any, str | None]], line: int | None) -> None:
        for key, rec, reason in items:
            if reason:
                rejects.append({"line": line, "record_key": key, "reason": reason, "raw": rec})
            else:
                records.append(rec)
                lines.append(line)

    if fmt == "document":
        try:
            take(iter_records(_load_document(path), records_path), None)
        except SourceError as exc:
            if exc.where.get("file"):
                raise
            raise _fail(path, exc.message, exc.hint or "") from exc
        return records, lines, rejects
    with _open(path) as fh:
        for n, raw in enumerate(fh, start=1):
            if n == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if not raw.strip():
                continue
            try:
                value = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                rejects.append({"line": n, "reason": f"not UTF-8 (byte {exc.start} of the line)",
                                "raw": {"line": raw[:1000].decode("utf-8", "replace")}})
                continue
            except json.JSONDecodeError as exc:
                rejects.append({"line": n, "reason": f"malformed JSON: {exc.msg} at column {exc.colno}",
                                "raw": {"line": raw[:1000].decode("utf-8", "replace")}})
                continue
            if records_path:
                try:
                    take(iter_records(value, records_path, key=f"line {n}"), n)
                except SourceError as exc:
                    rejects.append({"line": n, "reason": exc.message, "raw": value})
            elif isinstance(value, dict):
                records.append(value)
                lines.append(n)
            else:
                rejects.append({"line": n, "reason": "line is not a JSON object", "raw": value})
    return records, lines, rejects


def _fast_lines(con: duckdb.DuckDBPyConnection, path: Path, out: str) -> list[dict]:
    """Flat JSON lines in DuckDB: good lines into ``out``, malformed ones returned as rejects.

    A file whose every line is an object is read by ``read_json`` (all records typed, timestamps
    detected) and its records are paired with their lines positionally; with malformed lines the
    good ones are typed through ``json_group_structure`` instead (slower, exact).
    """
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _json_lines_all AS
        SELECT line, j, json_valid(j) AND starts_with(ltrim(j, ' ' || chr(9) || chr(13)), '{{') AS ok
        FROM (SELECT row_number() OVER () AS line, j
              FROM read_csv({quote_literal(str(path))}, columns={{'j': 'VARCHAR'}},
                  delim='\x1f', quote='', escape='', header=false, auto_detect=false, strict_mode=false,
                  max_line_size={MAX_LINE_BYTES}))
        WHERE j IS NOT NULL AND trim(j) <> ''"""
    )
    bad = con.execute("SELECT line, j FROM _json_lines_all WHERE NOT ok ORDER BY line").fetchall()
    rejects = []
    for i, (line, text) in enumerate(bad):
        reason = "malformed JSON"
        if i < MAX_REASONS_PARSED:
            try:
                json.loads(text)
                reason = "line is not a JSON object"
            except json.JSONDecodeError as exc:
                reason = f"malformed JSON: {exc.msg} at column {exc.colno}"
        rejects.append({"line": line, "reason": reason, "raw": {"line": text[:1000]}})
    try:
        if bad or not _read_json_whole(con, path, out):
            _materialise_good(con, out, str(path))
    finally:
        con.execute("DROP TABLE IF EXISTS _json_lines_all")
        con.execute("DROP TABLE IF EXISTS _json_lines_ok")
    return rejects


def _materialise_good(con: duckdb.DuckDBPyConnection, out: str, location: str) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE _json_lines_ok AS SELECT line, j FROM _json_lines_all WHERE ok")
    _materialise(con, "_json_lines_ok", out, location)


def _read_json_whole(con: duckdb.DuckDBPyConnection, path: Path, out: str) -> bool:
    """``read_json`` over a clean file, lines attached positionally; False when it cannot be used."""
    rel = (f"read_json({quote_literal(str(path))}, format='newline_delimited', sample_size=-1, "
           f"maximum_object_size={MAX_LINE_BYTES})")
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT l.line AS __pl_line, r.* FROM {rel} r "
            "POSITIONAL JOIN (SELECT line FROM _json_lines_all ORDER BY line) l"
        )
        n_records, n_lines, unpaired = con.execute(
            f"SELECT count(*) FILTER (WHERE __pl_line IS NOT NULL), (SELECT count(*) FROM _json_lines_all), "
            f"count(*) FILTER (WHERE __pl_line IS NULL) FROM {out}"
        ).fetchone()
    except duckdb.Error:
        con.execute(f"DROP TABLE IF EXISTS {out}")
        return False
    if unpaired or n_records != n_lines:
        con.execute(f"DROP TABLE IF EXISTS {out}")
        return False
    return True


def batches(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    records_path: str | None = None,
    fmt: str = "auto",
    table: str = "_json_data",
) -> Iterator[Batch]:
    """One batch with every record of the file; malformed lines and records are rejects."""
    path = Path(path)
    if not path.exists():
        raise _fail(path, "does not exist", "check the path")
    if path.stat().st_size == 0:
        raise _fail(path, "is empty (0 bytes)", "export the data again; a JSON file needs at least one record")
    fmt = {"array": "document", "json": "document", "jsonl": "lines", "ndjson": "lines"}.get(fmt, fmt)
    if fmt not in ("auto", "lines", "document"):
        raise SourceError(f"unknown JSON format {fmt!r}", hint='use "lines", "document" or "auto"', where={"file": str(path)})
    if fmt == "auto":
        fmt = detect_format(path)
    with open(path, "rb") as fh:
        bom = fh.read(3) == b"\xef\xbb\xbf"
    # All DuckDB work happens on a cursor of its own: an error there (a line DuckDB cannot read)
    # must not abort the transaction the loader holds open on ``con``.
    work = con.cursor()
    try:
        rejects: list[dict] | None = None
        if fmt == "lines" and not records_path and not bom and not path.name.lower().endswith(".gz"):
            try:
                rejects = _fast_lines(work, path, table)
            except duckdb.Error:
                rejects = None  # e.g. invalid UTF-8: the Python reader rejects exactly the bad lines
        if rejects is None:
            records, lines, rejects = _python_records(path, fmt, records_path)
            if not records:
                if rejects:
                    _no_usable_record(path, rejects)
                return  # an empty export ([] or only blank lines): nothing to load
            records_to_table(work, table, records, lines, location=str(path))
        data = arrow_table(work, f"SELECT * FROM {table}")
    finally:
        work.close()
    if data.num_rows == 0:
        if rejects:
            _no_usable_record(path, rejects)
        return
    yield Batch(relation=table, data=data, location=str(path), line_offset=None, source_rejects=rejects,
                schemaless=True)


def _no_usable_record(path: Path, rejects: list[dict]) -> None:
    first = rejects[0]
    raise _fail(
        path, f"has no usable record ({len(rejects)} rejected; first: {first['reason']}"
        + (f" at line {first['line']}" if first.get("line") else "") + ")",
        "check that this is a JSON or JSON lines export and that records_path points at the records",
    )
