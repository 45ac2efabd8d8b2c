"""CSV files: delimiter, quoting, encoding and header sniffed; read by DuckDB's CSV reader."""

from __future__ import annotations

import codecs
import csv
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb

from ingest.loader import Batch
from ingest.timestamps import quote_literal
from processlens.errors import SourceError

SNIFF_BYTES = 1 << 20


def detect_encoding(path: Path) -> str:
    """'utf-8' unless a BOM says UTF-16 or the first megabyte is not valid UTF-8 (then latin-1)."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the buffer's end
            return "latin-1"
    return "utf-8"


def header_and_delimiter(path: Path, encoding: str, sep: str | None) -> tuple[list[str], str, str]:
    """Read the header row with Python's sniffer (``;`` and ``,`` and tabs) and return it."""
    with open(path, encoding=encoding if encoding != "utf-8" else "utf-8-sig", errors="replace", newline="") as fh:
        sample = fh.read(64 * 1024)
    if not sample.strip():
        raise SourceError(
            f"{path} is empty",
            hint="export the log again; a CSV needs a header row and at least one event",
            where={"file": str(path)},
        )
    quote = '"'
    if sep is None:
        first = sample.splitlines()[0]
        counts = {d: first.count(d) for d in [",", ";", "\t", "|"]}
        sep = max(counts, key=counts.get)
        if counts[sep] == 0:
            try:
                sep = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
            except csv.Error:
                sep = ","
    header = next(csv.reader([sample.splitlines()[0]], delimiter=sep, quotechar=quote))
    return [h.strip() for h in header], sep, quote


def duplicate_headers(header: list[str]) -> list[str]:
    return [name for name, n in Counter(header).items() if n > 1]


def relation(path: Path, sep: str, encoding: str, quote: str = '"', varchar_columns: list[str] | None = None) -> str:
    """The DuckDB ``read_csv`` expression for this file.

    Identifier-like columns are forced to VARCHAR so ``007`` stays ``007`` and ``NA`` stays an id;
    other columns keep DuckDB's detected types (typed attributes). Rows that do not fit the
    detected shape are skipped into DuckDB's reject tables, from which the loader quarantines them.
    """
    opts = [
        f"delim={quote_literal(sep)}",
        f"quote={quote_literal(quote)}",
        "header=true",
        f"encoding={quote_literal(encoding)}",
        "store_rejects=true",
        "ignore_errors=true",
        "null_padding=false",
        "sample_size=20480",
        "nullstr=['']",
        "normalize_names=false",
    ]
    if varchar_columns:
        types = ", ".join(f"{quote_literal(c)}: 'VARCHAR'" for c in varchar_columns)
        opts.append(f"types={{{types}}}")
    return f"read_csv({quote_literal(str(path))}, {', '.join(opts)})"


def collect_csv_rejects(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Rows DuckDB's reader skipped (wrong column count, unconvertible values), with line numbers."""
    try:
        rows = con.execute(
            "SELECT line, column_name, error_type, csv_line, error_message FROM reject_errors ORDER BY line"
        ).fetchall()
    except duckdb.CatalogException:
        return []
    out = []
    for line, column, etype, csv_line, message in rows:
        out.append({
            "line": line,
            "field": column,
            "reason": f"{etype.lower().replace('_', ' ')}: {message.splitlines()[0] if message else etype}",
            "raw": {"line": csv_line},
        })
    con.execute("DELETE FROM reject_errors")
    con.execute("DELETE FROM reject_scans")
    return out


def batches(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    key_columns: list[str],
    sep: str | None = None,
    encoding: str | None = None,
) -> Iterator[Batch]:
    """One batch for the whole file: DuckDB streams it; the loader inserts set-wise."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path} does not exist", hint="check the path", where={"file": str(path)})
    if path.stat().st_size == 0:
        raise SourceError(f"{path} is empty", hint="export the log again with a header row and events", where={"file": str(path)})
    encoding = encoding or detect_encoding(path)
    header, sep, quote = header_and_delimiter(path, encoding, sep)
    dups = duplicate_headers(header)
    clash = [c for c in key_columns if c in dups]
    if clash:
        raise SourceError(
            f"{path} has the column name(s) {clash} more than once in its header, and the mapping uses them",
            hint="rename the duplicate columns in the export, or map the column by its renamed form (e.g. 'name_1')",
            where={"file": str(path), "line": 1},
        )
    rel = relation(path, sep, encoding, quote, varchar_columns=[c for c in key_columns if c in header])
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW _csv AS SELECT * FROM {rel}")
        con.execute("DESCRIBE SELECT * FROM _csv").fetchall()
    except duckdb.Error as exc:
        raise SourceError(
            f"cannot read {path} as CSV: {str(exc).splitlines()[0]}",
            hint="check the delimiter (--sep) and the encoding (UTF-8 or latin-1 are detected)",
            where={"file": str(path)},
        ) from exc
    # Materialise once so the reader's own rejects are known before the loader runs.
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _csv_data AS SELECT * FROM _csv")
    except duckdb.Error as exc:
        raise SourceError(
            f"cannot read {path}: {str(exc).splitlines()[0]}",
            hint="check the file's encoding and quoting; the line is named above",
            where={"file": str(path)},
        ) from exc
    source_rejects = collect_csv_rejects(con)
    extra = {"duplicate_headers": dups} if dups else {}
    batch = Batch(relation="_csv_data", location=str(path), line_offset=2, source_rejects=source_rejects)
    batch.extra = extra  # type: ignore[attr-defined]
    try:
        yield batch
    finally:
        con.execute("DROP TABLE IF EXISTS _csv_data")
        con.execute("DROP VIEW IF EXISTS _csv")
