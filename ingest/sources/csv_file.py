"""CSV files: delimiter, quoting, encoding and header sniffed; read by DuckDB's CSV reader.

Every record keeps its exact physical line in the file (header = line 1), also when records
span several lines (quoted newlines), blank lines sit between them, or DuckDB's reader skipped
malformed rows: good rows carry it in the reserved column ``__pl_line``, reader rejects in
their ``line``.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb

from ingest.loader import Batch
from ingest.timestamps import quote_literal
from processlens.errors import SourceError

SNIFF_BYTES = 1 << 20
LINE_COLUMN = "__pl_line"  # reserved prefix: never an attribute, never part of the content hash
_CHUNK = 1 << 24


def _fail(path: Path, message: str, hint: str, **where) -> SourceError:
    return SourceError(f"{path.name}: {message}", hint=hint, where={"file": str(path), **where})


def _unreadable(path: Path, encoding: str, sep: str, exc: duckdb.Error) -> SourceError:
    """DuckDB's reader refused the file as a whole."""
    return _fail(path, f"cannot be read as CSV ({encoding}, separator {sep!r}): {str(exc).splitlines()[0]}",
                 "check the separator (--sep) and that the file is UTF-8, UTF-16 or latin-1 text")


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), UTF-16 (BOM or NUL pattern), or latin-1; binary files fail."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    sample = head[:4096]
    if sample and sample.count(b"\x00") > len(sample) // 4:
        # UTF-16 without a byte-order mark: ASCII characters have a NUL in every other byte
        if sample[1::2].count(b"\x00") > sample[0::2].count(b"\x00"):
            return "utf-16"  # little-endian, which is what DuckDB (and Windows) assume without a BOM
        raise _fail(path, "is UTF-16 big-endian without a byte-order mark",
                    "save the export as UTF-8 (or UTF-16 with a BOM) and import it again")
    if b"\x00" in head:
        raise _fail(path, "is not a text file in a known encoding (it contains NUL bytes)",
                    "save the export as CSV in UTF-8 (or latin-1 / UTF-16) and import it again")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the buffer's end
            return _latin1_or_fail(path, head)
    return "utf-8"


def _latin1_or_fail(path: Path, head: bytes) -> str:
    """latin-1 decodes any byte; refuse data that is mostly control characters (binary)."""
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 13)) + sum(1 for b in head if 0x7F <= b < 0xA0)
    if controls > max(8, len(head) // 100):
        raise _fail(path, "is neither UTF-8, UTF-16 nor latin-1 text (it is full of control bytes)",
                    "save the export as CSV in UTF-8 and import it again")
    return "latin-1"


def python_encoding(path: Path, encoding: str) -> str:
    """The codec name for Python's reader (BOM-less UTF-16 is little-endian, as for DuckDB)."""
    if encoding == "utf-8":
        return "utf-8-sig"
    if encoding == "utf-16":
        with open(path, "rb") as fh:
            bom = fh.read(2)
        if bom not in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            return "utf-16-le"
    return encoding


def _decoded_sample(path: Path, encoding: str, size: int = 256 * 1024) -> str:
    with open(path, encoding=python_encoding(path, encoding), errors="replace", newline="") as fh:
        return fh.read(size)


def header_and_delimiter(path: Path, encoding: str, sep: str | None) -> tuple[list[str], str, str]:
    """Read the header row with Python's csv module (``,`` ``;`` tab and ``|`` sniffed)."""
    sample = _decoded_sample(path, encoding)
    if not sample.strip():
        raise _fail(path, "is empty", "export the log again; a CSV needs a header row and at least one event")
    quote = '"'
    lines = sample.lstrip("\r\n").splitlines()
    first = lines[0]
    if sep is None:
        counts = {d: first.count(d) for d in [",", ";", "\t", "|"]}
        sep = max(counts, key=counts.get)
        if counts[sep] == 0:
            try:
                sep = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
            except csv.Error:
                sep = ","
    header = next(csv.reader(io.StringIO(sample.lstrip("\r\n")), delimiter=sep, quotechar=quote))
    return [h.strip() for h in header], sep, quote


def duplicate_headers(header: list[str]) -> list[str]:
    return [name for name, n in Counter(header).items() if n > 1]


def relation(path: Path, sep: str, encoding: str, quote: str = '"', varchar_columns: list[str] | None = None) -> str:
    """The DuckDB ``read_csv`` expression for this file.

    Identifier-like columns are forced to VARCHAR so ``007`` stays ``007`` and ``NA`` stays an id;
    other columns keep DuckDB's detected types (typed attributes). Rows that do not fit the
    detected shape are skipped into DuckDB's reject tables, from which they are quarantined.
    """
    opts = [
        f"delim={quote_literal(sep)}",
        f"quote={quote_literal(quote)}",
        f"escape={quote_literal(quote)}",
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
    """Rows DuckDB's reader skipped (wrong column count, unconvertible values), one per record.

    ``line`` is DuckDB's record ordinal (header, records and blank lines count one each); the
    caller turns it into the physical line.
    """
    if not _has_reject_tables(con):
        return []
    rows = con.execute(
        """
        SELECT line, string_agg(DISTINCT column_name, ', ') AS fields,
               string_agg(DISTINCT lower(replace(error_type, '_', ' ')), '; ') AS kinds,
               first(csv_line), first(error_message)
        FROM reject_errors GROUP BY line ORDER BY line
        """
    ).fetchall()
    out = []
    for line, fields, kinds, csv_line, message in rows:
        detail = message.splitlines()[0] if message else kinds
        out.append({
            "line": int(line),
            "field": fields,
            "reason": f"{kinds}: {detail}",
            "raw": {"line": (csv_line or "").strip("\r\n")},
        })
    _clear_reader_rejects(con)
    return out


def _byte_encoded(encoding: str) -> bool:
    """One byte per newline: lines can be counted in the raw bytes."""
    return encoding.replace("_", "-").lower() in {"utf-8", "latin-1", "iso-8859-1"}


def count_physical_lines(path: Path) -> int:
    """Lines in a byte-oriented (UTF-8 / latin-1) file; a last line without newline counts."""
    n, last = 0, b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (0 if last == b"\n" else 1)


def record_lines(path: Path, encoding: str, sep: str, quote: str) -> tuple[list[int], list[int]]:
    """Physical start line of every record after the header, and its DuckDB ordinal.

    Used only when records span lines or blank lines are present; Python's csv module walks the
    file once (the same dialect DuckDB was given).
    """
    starts: list[int] = []
    ordinals: list[int] = []
    with open(path, encoding=python_encoding(path, encoding), newline="") as fh:
        reader = csv.reader(fh, delimiter=sep, quotechar=quote)
        prev = 0
        ordinal = 0
        header_seen = False
        for row in reader:
            start = prev + 1
            prev = reader.line_num
            ordinal += 1
            if not row:
                continue
            if not header_seen:
                header_seen = True
                if start > 1:  # blank lines before the header: DuckDB does not count them
                    ordinal = 1
                continue
            starts.append(start)
            ordinals.append(ordinal)
    return starts, ordinals


def _attach_lines(con: duckdb.DuckDBPyConnection, path: Path, encoding: str, sep: str, quote: str,
                  rejects: list[dict]) -> int | None:
    """Give good rows their physical line; fix reject lines. Returns a line offset when rows are
    simply consecutive (no column needed), else None after adding ``__pl_line``."""
    n_good = con.execute("SELECT count(*) FROM _csv_data").fetchall()[0][0]
    reject_ordinals = [r["line"] for r in rejects]
    if _byte_encoded(encoding) and count_physical_lines(path) == 1 + n_good + len(rejects):
        # one line per record, no blank lines: DuckDB's ordinals are physical lines
        if not rejects:
            return 2
        good_lines = sorted(set(range(2, 2 + n_good + len(rejects))) - set(reject_ordinals))
    else:
        starts, ordinals = record_lines(path, encoding, sep, quote)
        by_ordinal = dict(zip(ordinals, starts, strict=True))
        rejected = set(reject_ordinals)
        good_lines = [s for s, o in zip(starts, ordinals, strict=True) if o not in rejected]
        if len(good_lines) != n_good or not rejected <= by_ordinal.keys():
            return None  # the two parsers disagree (malformed quoting): lines are unknown
        for r in rejects:
            r["line"] = by_ordinal[r["line"]]
    import pyarrow as pa

    con.register("_csv_lines", pa.table({LINE_COLUMN: pa.array(good_lines, type=pa.int64())}))
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _csv_data AS SELECT * FROM _csv_data POSITIONAL JOIN _csv_lines")
    finally:
        con.unregister("_csv_lines")
    return None


PREVIEW_TABLE = "_csv_preview"
PREVIEW_ROWS = 20_480  # as many rows as the type sniffer samples; enough for guessing the columns


def preview_relation(con: duckdb.DuckDBPyConnection, path: Path, sep: str | None = None) -> str:
    """A temp table of the file's first rows for looking at the columns (guessing), with the
    types the full read will give them; fails clearly on files that are empty, binary or not CSV.

    Sampling a table instead of the file spares each look a new sniff of the file. The caller
    drops it (``PREVIEW_TABLE``)."""
    if path.stat().st_size == 0:
        raise _fail(path, "is empty (0 bytes)", "export the log again with a header row and events")
    encoding = detect_encoding(path)
    _header, sep, quote = header_and_delimiter(path, encoding, sep)
    rel = relation(path, sep, encoding, quote).replace("store_rejects=true", "store_rejects=false")
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {PREVIEW_TABLE} AS SELECT * FROM {rel} LIMIT {PREVIEW_ROWS}")
    except duckdb.Error as exc:
        raise _unreadable(path, encoding, sep, exc) from exc
    return PREVIEW_TABLE


def _materialise(con: duckdb.DuckDBPyConnection, path: Path, rel: str, encoding: str, sep: str) -> None:
    """Read the whole file into ``_csv_data`` (the reader's rejects land in ``reject_errors``)."""
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _csv_data AS SELECT * FROM {rel}")
    except duckdb.Error as exc:
        raise _unreadable(path, encoding, sep, exc) from exc


def pinned(con: duckdb.DuckDBPyConnection, path: Path, rel: str, encoding: str, sep: str) -> str:
    """``rel`` with what DuckDB's sniffer finds written out (``auto_detect=false``, the columns and
    their types, the date formats), so that the statements reading it do not sniff the file
    again, each (about 0.02-0.05 s a time). Unchanged if this DuckDB words its findings otherwise."""
    try:
        prompt = con.execute(f"SELECT Prompt FROM {rel.replace('read_csv(', 'sniff_csv(', 1)}").fetchall()[0][0].strip()
    except duckdb.Error as exc:
        raise _unreadable(path, encoding, sep, exc) from exc
    if prompt.startswith("FROM read_csv(") and prompt.endswith(");") and "auto_detect=false" in prompt:
        return prompt[len("FROM "):-1]
    return rel


def _has_reject_tables(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a read with ``store_rejects`` made DuckDB's reject tables (asked without an error,
    which would abort the loader's transaction)."""
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'reject_errors'").fetchall()[0][0])


def _clear_reader_rejects(con: duckdb.DuckDBPyConnection) -> None:
    if _has_reject_tables(con):
        con.execute("DELETE FROM reject_errors")
        con.execute("DELETE FROM reject_scans")


def _read_cleanly(con: duckdb.DuckDBPyConnection, path: Path, n_rows: int, allow_empty: bool) -> bool:
    """Whether a streamed read gave every record of the file: the reader skipped none, and the
    file has one line per record after the header (so record i is on line i + 2)."""
    if not n_rows and not allow_empty:
        return False  # the careful path says what is wrong with the file
    if _has_reject_tables(con) and con.execute("SELECT count(*) FROM reject_errors").fetchall()[0][0]:
        return False
    return count_physical_lines(path) == 1 + n_rows


def batches(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    key_columns: list[str],
    sep: str | None = None,
    encoding: str | None = None,
    allow_empty: bool = True,
    stream: bool = False,
) -> Iterator[Batch]:
    """One batch for the whole file: DuckDB reads it in parallel; the loader inserts set-wise.

    ``allow_empty=False`` turns a header-only file into an error (one-off imports); jobs that
    poll exports may accept empty ones.

    ``stream=True`` (for a consumer that honours ``Batch.verify``, i.e. the loader) first offers
    the file streamed: read once, straight into the mapped rows. Most exports read cleanly and
    are done then. If the loader withdraws it (the reader skipped rows, records span lines, a row
    is rejected or a key has edge spaces), the file is read again into a table, the careful path
    that keeps every source row for rejects and finds each record's physical line.
    """
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path} does not exist", hint="check the path", where={"file": str(path)})
    if path.stat().st_size == 0:
        raise _fail(path, "is empty (0 bytes)", "export the log again with a header row and events")
    encoding = encoding or detect_encoding(path)
    header, sep, quote = header_and_delimiter(path, encoding, sep)
    dups = duplicate_headers(header)
    clash = [c for c in key_columns if c in dups]
    if clash:
        raise _fail(
            path, f"the column name(s) {clash} appear more than once in the header, and the mapping uses them",
            "rename the duplicate columns in the export so each name is unique, then import again", line=1,
        )
    varchar = [c for c in key_columns if c in header]
    extra = {"duplicate_headers": dups, "encoding": encoding, "sep": sep}
    if stream and _byte_encoded(encoding) and not path.name.lower().endswith(".gz"):
        _clear_reader_rejects(con)
        rel = pinned(con, path, relation(path, sep, encoding, quote, varchar_columns=varchar), encoding, sep)
        batch = Batch(relation=rel, location=str(path),
                      line_offset=2, verify=lambda n: _read_cleanly(con, path, n, allow_empty))
        batch.extra = extra  # type: ignore[attr-defined]
        yield batch
        if not batch.withdrawn:
            return
        _clear_reader_rejects(con)
    for _attempt in range(4):
        _materialise(con, path, relation(path, sep, encoding, quote, varchar_columns=varchar), encoding, sep)
        # a value that does not fit the type DuckDB inferred from its sample is no reason to lose
        # the row: read such columns as text instead
        cast_cols = [r[0] for r in con.execute(
            "SELECT DISTINCT column_name FROM reject_errors WHERE error_type = 'CAST' AND column_name IS NOT NULL"
        ).fetchall() if r[0] not in varchar]
        if not cast_cols:
            break
        varchar += cast_cols
        _clear_reader_rejects(con)
    source_rejects = collect_csv_rejects(con)
    n_good = con.execute("SELECT count(*) FROM _csv_data").fetchall()[0][0]
    if not allow_empty and n_good + len(source_rejects) == 0:
        raise _fail(path, "has a header but no events", "export the log again with its rows; the header alone was found",
                    line=1)
    line_offset = _attach_lines(con, path, encoding, sep, quote, source_rejects)
    batch = Batch(relation="_csv_data", location=str(path), line_offset=line_offset, source_rejects=source_rejects,
                  disposable=True)
    batch.extra = extra  # type: ignore[attr-defined]
    try:
        yield batch
    finally:
        con.execute("DROP TABLE IF EXISTS _csv_data")
        con.execute("DROP VIEW IF EXISTS _csv")
