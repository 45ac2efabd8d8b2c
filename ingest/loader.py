"""Load batches of source records into the event store: map, validate, dedupe, commit.

A source yields :class:`Batch` objects (a DuckDB-readable relation plus where it came from). The
:class:`Loader` turns each batch into events in SQL, quarantines bad rows in ``rejects`` with the
reason, skips records already loaded (same source and record id) and commits data, run record and
cursor in **one** transaction: a run that dies half-way leaves the store as it was.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from ingest.mapping import Mapping
from ingest.store import bump_data_version, compact_events
from ingest.timestamps import detect_format, quote_ident, quote_literal, to_utc_expr
from processlens.errors import ProcesslensError, SourceError

RESERVED = "__pl_"
# DuckDB's working memory during a run: beyond it the run's temporary tables and sorts spill to
# disk (next to the store), so an import of any size needs about this much plus the reader's own
# data, instead of growing with the file. Raise it (e.g. "2GB") for speed on big machines.
MEMORY_ENV = "PROCESSLENS_INGEST_MEMORY"
DEFAULT_MEMORY = "384MB"
# with the input's size known, the cap starts lower (a 1M-event CSV loads as fast with 256 MB, and
# its peak memory falls below pandas') and grows with the input
SIZED_MEMORY_FLOOR = 256 << 20  # bytes


def default_memory(input_bytes: int | None) -> str:
    """The working-memory cap of a run: ``DEFAULT_MEMORY`` when the input's size is unknown, else
    about the size of its rows in memory (at least ``SIZED_MEMORY_FLOOR``, at most an eighth of the
    machine's memory), so that a 10-million-event file sorts with less spilling while staying far
    below what pm4py holds for the same file."""
    if not input_bytes:
        return DEFAULT_MEMORY
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return DEFAULT_MEMORY
    limit = max(SIZED_MEMORY_FLOOR, min(int(input_bytes * 1.5), total // 8))
    return f"{limit >> 20}MB"


@dataclass
class Batch:
    """A chunk of source records.

    ``relation`` is a DuckDB table expression (``read_csv(...)``) or, when ``data`` is given
    (Arrow, pandas or polars), the name it is registered under. ``position_offset`` numbers the
    records continuously across batches of one source; ``line_offset`` is the file line of the
    first record (2 for a CSV with a header), or None when lines mean nothing (APIs, tables).
    An empty ``relation`` means a batch without records: only its ``source_rejects`` (and
    ``file_sha256``) are written, e.g. for a drop-folder file that is unusable as a whole.
    ``cursor`` is the watermark reached after this batch; the last one given is committed with
    the run's data.
    """

    relation: str
    location: str
    data: Any = None
    cursor: str | None = None
    position_offset: int = 0
    line_offset: int | None = None
    source_rejects: list[dict[str, Any]] = field(default_factory=list)  # line, field, reason, raw
    file_sha256: str | None = None  # drop folders: mark the file as taken in the same transaction
    file_size: int | None = None
    # drop folders combining several small files in one batch: (path, sha256, size) of each; rows
    # then carry their file in a ``__pl_location`` column (used for rejects and per-file dedupe)
    files: list[tuple[str, str, int | None]] = field(default_factory=list)
    # JSON-like sources: a mapped optional field absent from every record is NULL, not an error,
    # and the content hash (no record_id) ignores null fields, so it does not depend on which
    # other fields happen to appear in the same export.
    schemaless: bool = False
    # the relation is a temp table the source made for this batch only: the loader drops it as
    # soon as its rows are mapped, instead of holding it (and its copies) until the end
    disposable: bool = False
    # Streamed: the relation is read once, straight into the mapped rows, without a copy of the
    # source rows. Records are numbered in the order read (``line_offset`` gives their lines), so
    # the read must turn out clean: ``verify(n_rows)`` says whether it was (the CSV reader skipped
    # nothing, one line per record), and the loader itself requires that no row is rejected and no
    # key value needs trimming. Otherwise the loader sets ``withdrawn`` and loads nothing; the
    # source then yields the same records again, materialised, for the careful path.
    verify: Callable[[int], bool] | None = None
    withdrawn: bool = False


class IngestMemoryError(ProcesslensError):
    """DuckDB ran out of its working memory during a run (the run was rolled back)."""


@dataclass
class RunResult:
    run_id: int
    job: str
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    duplicates_skipped: int = 0
    pending: int = 0
    resolved_pending: int = 0
    seconds: float = 0.0
    error: str | None = None
    cursor: str | None = None
    files: int = 0  # drop folders: files taken in this run (loaded or rejected as a whole)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.job}: read {self.rows_read:,}, loaded {self.rows_loaded:,}, rejected {self.rows_rejected:,}, "
            f"duplicates skipped {self.duplicates_skipped:,}"
            + (f", waiting for correlation {self.pending:,}" if self.pending else "")
            + (f", files {self.files:,}" if self.files else "")
            + f" in {self.seconds:.1f}s"
        )


def failure_message(exc: BaseException) -> str:
    """The error of a failed run as recorded and shown: message, and what to do when known."""
    if isinstance(exc, ProcesslensError):
        return exc.message + (f" - what to do: {exc.hint}" if exc.hint else "")
    return f"{type(exc).__name__}: {exc}"


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def ensure_source(con: duckdb.DuckDBPyConnection, name: str, kind: str, timezone: str = "UTC", config: dict | None = None) -> int:
    rows = con.execute("SELECT source_id FROM sources WHERE name = ?", [name]).fetchall()
    if rows:
        return rows[0][0]
    sid = con.execute("SELECT coalesce(max(source_id), 0) + 1 FROM sources").fetchone()[0]
    con.execute(
        "INSERT INTO sources (source_id, name, kind, timezone, config) VALUES (?, ?, ?, ?, ?)",
        [sid, name, kind, timezone, json.dumps(config or {}, default=str)],
    )
    return sid


class Loader:
    """One ingest run of one job. Use as ``with Loader(...) as run: run.load(batches)``."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        job: str,
        source: str,
        kind: str,
        mapping: Mapping,
        progress: bool | None = None,
        config: dict | None = None,
        memory: str | None = None,
        input_bytes: int | None = None,
    ) -> None:
        self.memory = memory  # None: PROCESSLENS_INGEST_MEMORY, else default_memory(); "off": no cap
        self.input_bytes = input_bytes  # the size of what is read, when known: scales the default cap
        self._cap = ""
        self.con = con
        self.job = job
        self.source = source
        self.kind = kind
        self.mapping = mapping
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.config = config
        self.result: RunResult | None = None
        self._formats: dict[str, str | None] = {}
        self._started = 0.0
        self._empty_before = False
        self._inserted_batches = 0
        self._row_location = False
        self._disposable: str | None = None
        self._padded_cols: set[str] = set()
        self._norm_derived = ""

    # -- run lifecycle -------------------------------------------------------------------------
    def run(self, batches: Iterable[Batch]) -> RunResult:
        """Load every batch in one transaction; on error roll back and record a failed run."""
        con = self.con
        self._started = time.monotonic()
        started_at = now_utc()
        try:
            memory_before = self._limit_memory()
        except duckdb.OutOfMemoryException as exc:  # the connection already holds more than the cap
            self._record_failure(started_at, exc)
            raise IngestMemoryError(f"ingest {self.job}: the working memory cap cannot be applied: "
                                    f"{str(exc).splitlines()[0]}",
                                    hint=f"give the import more working memory, e.g. {MEMORY_ENV}=2GB") from exc
        con.execute("BEGIN TRANSACTION")
        try:
            self.source_id = ensure_source(con, self.source, self.kind, self.mapping.timezone, self.config)
            run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM ingest_runs").fetchone()[0]
            self.result = RunResult(run_id=run_id, job=self.job, status="running")
            con.execute(f"SET TimeZone = {quote_literal(self.mapping.timezone)}")
            bar = None
            if self.progress:
                from tqdm import tqdm

                bar = tqdm(desc=f"ingest {self.job}", unit=" rows", file=sys.stderr)
            last_cursor = None
            # into an empty store the first batch is inserted in case/time order, saving the re-sort
            self._empty_before = con.execute("SELECT count(*) = 0 FROM events").fetchall()[0][0]
            self._inserted_batches = 0
            for batch in batches:
                n = self._load_batch(batch)
                if batch.cursor is not None:
                    last_cursor = batch.cursor
                if bar is not None:
                    bar.update(n)
            if bar is not None:
                bar.close()
            self.result.resolved_pending = resolve_pending(con, run_id)
            if self._empty_before and self._inserted_batches == 1 and not self.result.resolved_pending:
                con.execute(
                    "INSERT INTO store_meta VALUES ('sorted_upto_event_id', (SELECT max(event_id)::VARCHAR FROM events)) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                )
            self.result.pending = con.execute(
                "SELECT count(*) FROM pending_events WHERE source_id = ?", [self.source_id]
            ).fetchone()[0]
            if last_cursor is not None:
                con.execute(
                    "INSERT INTO cursors VALUES (?, ?, ?, ?) ON CONFLICT (job) DO UPDATE SET "
                    "value = excluded.value, updated_at = excluded.updated_at, run_id = excluded.run_id",
                    [self.job, last_cursor, now_utc(), run_id],
                )
            self.result.cursor = last_cursor
            self.result.status = "succeeded"
            self.result.seconds = time.monotonic() - self._started
            self._write_run(started_at)
            if self.result.rows_loaded or self.result.resolved_pending:
                bump_data_version(con)
            con.execute("COMMIT")
        except BaseException as exc:
            con.execute("ROLLBACK")
            con.execute("SET TimeZone = 'UTC'")
            self._restore_memory(memory_before)
            self._record_failure(started_at, exc)
            if isinstance(exc, duckdb.OutOfMemoryException):
                raise IngestMemoryError(
                    f"ingest {self.job} ran out of memory: {str(exc).splitlines()[0]}",
                    hint=f"give the import more working memory, e.g. {MEMORY_ENV}=2GB",
                ) from exc
            raise
        con.execute("SET TimeZone = 'UTC'")
        self._restore_memory(memory_before)
        maybe_compact(con)
        return self.result

    def run_with_fallback(self, make_batches: Callable[[], Iterable[Batch]]) -> RunResult:
        """``run`` under the default memory cap; if one allocation needs more than the cap allows
        (DuckDB cannot spill every buffer), run again without the cap instead of failing.
        A cap the user set explicitly (``PROCESSLENS_INGEST_MEMORY``) is respected."""
        try:
            return self.run(make_batches())
        except IngestMemoryError:
            if self.memory is not None or os.environ.get(MEMORY_ENV):
                raise
            print(f"ingest {self.job}: more memory than the {self._cap} working cap was needed; "
                  "loading again without the cap", file=sys.stderr)
            self.memory = "off"
            return self.run(make_batches())

    def _limit_memory(self) -> str | None:
        """Cap DuckDB's memory for the run (see ``default_memory``); returns the setting to restore."""
        limit = (self.memory or os.environ.get(MEMORY_ENV) or default_memory(self.input_bytes)).strip()
        self._cap = limit
        if not limit or limit.lower() in ("0", "none", "off"):
            return None
        before = self.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        try:
            self.con.execute(f"SET memory_limit = {quote_literal(limit)}")
        except duckdb.OutOfMemoryException:
            raise
        except duckdb.Error as exc:
            raise ProcesslensError(f"{MEMORY_ENV}={limit!r} is not a memory size",
                                   hint="use a size such as 512MB or 2GB") from exc
        return before

    def _restore_memory(self, before: str | None) -> None:
        if before is not None:
            self.con.execute(f"SET memory_limit = {quote_literal(before)}")

    def _write_run(self, started_at: datetime) -> None:
        r = self.result
        self.con.execute(
            "INSERT INTO ingest_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                r.run_id, self.job, self.source_id, started_at, now_utc(), r.status, r.rows_read, r.rows_loaded,
                r.rows_rejected, r.duplicates_skipped, r.error,
                json.dumps({"pending": r.pending, "resolved_pending": r.resolved_pending, "cursor": r.cursor,
                            "files": r.files}),
            ],
        )

    def _record_failure(self, started_at: datetime, exc: BaseException) -> None:
        """A failed run leaves no data, only its record (in a transaction of its own)."""
        if isinstance(exc, KeyboardInterrupt):
            return
        try:
            con = self.con
            con.execute("BEGIN TRANSACTION")
            sid = ensure_source(con, self.source, self.kind, self.mapping.timezone, self.config)
            run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM ingest_runs").fetchone()[0]
            message = failure_message(exc)
            con.execute(
                "INSERT INTO ingest_runs (run_id, job, source_id, started_at, ended_at, status, error) "
                "VALUES (?, ?, ?, ?, ?, 'failed', ?)",
                [run_id, self.job, sid, started_at, now_utc(), message],
            )
            con.execute("COMMIT")
            self.result = RunResult(run_id=run_id, job=self.job, status="failed", error=message)
        except Exception:  # the original error matters more than the bookkeeping
            try:
                self.con.execute("ROLLBACK")
            except Exception:
                pass

    # -- one batch -----------------------------------------------------------------------------
    def _columns(self, relation: str) -> dict[str, str]:
        rows = self.con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        return {r[0]: r[1] for r in rows}

    def _is_table(self, name: str) -> bool:
        return bool(self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND temporary", [name]).fetchall()[0][0])

    def _is_view(self, name: str) -> bool:
        return bool(self.con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND temporary", [name]).fetchall()[0][0])

    def _load_batch(self, batch: Batch) -> int:
        n = self._load_records(batch) if batch.relation else self._reject_only(batch)
        if batch.withdrawn:
            return 0
        if batch.file_sha256:
            self._mark_file(batch.location, batch.file_sha256, batch.file_size)
        for path, sha, size in batch.files:
            self._mark_file(path, sha, size)
        return n

    def _reject_only(self, batch: Batch) -> int:
        """A batch without records: a source that rejects a whole file or record set."""
        n = self._write_source_rejects(batch)
        self.result.rows_read += n
        self.result.rows_rejected += n
        return n

    def _mark_file(self, path: str, sha256: str, size: int | None) -> None:
        """Record a drop-folder file as taken, in the run's transaction (so it is taken iff its data is)."""
        inserted = self.con.execute(
            "INSERT INTO ingested_files (job, path, sha256, size, run_id) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [self.job, path, sha256, size, self.result.run_id],
        ).fetchall()[0][0]
        self.result.files += inserted

    def _load_records(self, batch: Batch) -> int:
        con, m, res = self.con, self.mapping, self.result
        registered = None
        if batch.data is not None:
            registered = batch.relation
            con.execute("SELECT 1").fetchall()  # DuckDB 2 refuses register() while a result is unfinished
            con.register(registered, batch.data)
        try:
            relation = batch.relation
            cols = self._columns(relation)
            missing = [c for c in m.key_columns if c not in cols]
            if missing and batch.schemaless:
                optional = {m.resource, m.start_timestamp, m.lifecycle}
                if m.correlation:
                    optional |= {m.case, m.correlation.key}
                fill = [c for c in missing if c in optional]
                if fill:
                    nulls = ", ".join(f"NULL::VARCHAR AS {quote_ident(c)}" for c in fill)
                    relation = f"(SELECT *, {nulls} FROM {relation})"
                    cols = self._columns(relation)
                missing = [c for c in missing if c not in fill]
            if missing:
                raise SourceError(
                    f"column(s) {missing} named in the mapping are not in {batch.location}",
                    hint=f"the columns found are {list(cols)[:30]}; fix the mapping or pass --case/--activity/--timestamp",
                    where={"file": batch.location},
                )
            n_source_rejects = self._write_source_rejects(batch)
            self._disposable = relation if batch.disposable and relation.isidentifier() else None
            streamed = batch.verify is not None
            if streamed:
                # the relation is read once, by the mapping itself (see Batch.verify)
                con.execute(f"CREATE OR REPLACE TEMP VIEW _raw AS SELECT * FROM {relation}")
                self._normalise(batch, cols, streamed=True)
                n = self._streamed_rows(batch)
                if n is None:
                    batch.withdrawn = True
                    return 0
            elif f"{RESERVED}rn" in cols:
                # the source numbers its rows itself (Parquet's file row number, an Arrow column):
                # read it in place, no copy
                con.execute(f"CREATE OR REPLACE TEMP VIEW _raw AS SELECT * FROM {relation}")
            elif batch.data is None and relation.isidentifier() and self._is_table(relation):
                # a table the source already materialised: number its rows by rowid instead of copying it
                # (rows written in this transaction have row ids counted from an offset: subtract the first)
                first = con.execute(f"SELECT coalesce(min(rowid), 0) FROM {relation}").fetchall()[0][0]
                con.execute(f"CREATE OR REPLACE TEMP VIEW _raw AS SELECT *, rowid - {int(first)} AS {RESERVED}rn FROM {relation}")
            else:
                con.execute(f"CREATE OR REPLACE TEMP TABLE _raw AS SELECT *, row_number() OVER () - 1 AS {RESERVED}rn "
                            f"FROM {relation}")
            if not streamed:
                n = con.execute("SELECT count(*) FROM _raw").fetchone()[0]
            res.rows_read += n + n_source_rejects
            res.rows_rejected += n_source_rejects
            if n:
                if not streamed:
                    self._normalise(batch, cols)
                self._apply()
        finally:
            if registered:
                con.unregister(registered)
            con.execute("DROP VIEW IF EXISTS _raw" if self._is_view("_raw") else "DROP TABLE IF EXISTS _raw")
            con.execute("DROP VIEW IF EXISTS _new" if self._is_view("_new") else "DROP TABLE IF EXISTS _new")
            self._drop_norm()
        return n + n_source_rejects

    def _write_source_rejects(self, batch: Batch) -> int:
        for r in batch.source_rejects:
            self.con.execute(
                "INSERT INTO rejects (run_id, source_id, location, line, record_key, field, reason, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [self.result.run_id, self.source_id, r.get("location") or batch.location, r.get("line"), r.get("record_key"),
                 r.get("field"),
                 r["reason"], json.dumps(r.get("raw"), default=str)],
            )
        return len(batch.source_rejects)

    def _padded(self, columns: list[str | None], cols: dict[str, str], scan: bool = True) -> set[str]:
        """The mapped columns whose text may have leading or trailing spaces (which are trimmed).

        One scan answers it for every text column: values without edge spaces, the usual case,
        then skip ``trim`` (which copies each value and cost more than parsing the timestamps).
        Numbers, times and booleans never print with edge spaces; other types are trimmed.
        ``scan=False`` (a streamed batch, read only once) takes text columns as unpadded; the
        mapped rows are checked afterwards (``_streamed_rows``)."""
        text_cols = sorted({c for c in columns if c and cols.get(c, "").upper() == "VARCHAR"})
        padded = {c for c in columns if c and not _prints_unpadded(cols.get(c, "")) and c not in text_cols}
        if text_cols and scan:
            checks = ", ".join(f"bool_or({_edge_spaces(quote_ident(c))})" for c in text_cols)
            row = self.con.execute(f"SELECT {checks} FROM _raw").fetchall()[0]
            padded |= {c for c, flag in zip(text_cols, row, strict=True) if flag}
        return padded

    def _ts_expr(self, column: str, cols: dict[str, str]) -> str:
        ctype = cols[column]
        if column not in self._formats:
            fmt = self.mapping.timestamp_format
            if fmt is None and ctype.upper() == "VARCHAR":
                sample = [r[0] for r in self.con.execute(
                    f"SELECT {quote_ident(column)} FROM _raw WHERE {quote_ident(column)} IS NOT NULL "
                    f"AND trim({quote_ident(column)}) <> '' LIMIT 2000"
                ).fetchall()]
                fmt = detect_format(self.con, sample)
            self._formats[column] = fmt
        return to_utc_expr(f"r.{quote_ident(column)}", ctype, self._formats[column], self.mapping.timezone,
                           trim=column in self._padded_cols)

    def _normalise(self, batch: Batch, cols: dict[str, str], streamed: bool = False) -> None:
        m = self.mapping
        q = quote_ident

        self._padded_cols = self._padded(
            [m.case, m.activity, m.timestamp, m.start_timestamp, m.lifecycle, m.resource, m.record_id,
             m.correlation.key if m.correlation else None], cols, scan=not streamed)

        def text(col: str | None) -> str:
            if not col:
                return "NULL"
            value = f"CAST(r.{q(col)} AS VARCHAR)"
            return f"NULLIF(trim({value}), '')" if col in self._padded_cols else f"NULLIF({value}, '')"

        case_attr_cols = m.case_attributes if m.case_attributes is not None else [c for c in cols if c.startswith("case:") and c != m.case]
        skip = set(m.key_columns) | set(case_attr_cols) | set(m.drop) | {f"{RESERVED}rn"}
        attr_cols = [c for c in cols if c not in skip and not c.startswith(RESERVED)]

        def struct(columns: list[str], as_json: bool = True) -> str:
            # case attributes stay a STRUCT here: only one row per case is turned into JSON
            if not columns:
                return "NULL"
            parts = ", ".join(f"{quote_literal(c)}: r.{q(c)}" for c in columns)
            return f"CAST({{{parts}}} AS JSON)" if as_json else f"{{{parts}}}"

        ts = self._ts_expr(m.timestamp, cols)
        start = self._ts_expr(m.start_timestamp, cols) if m.start_timestamp else "NULL"
        activity = f"{quote_literal(m.activity_prefix)} || {text(m.activity)}" if m.activity_prefix else text(m.activity)
        raw_from = "_raw r"
        # A source with a record id column is deduplicated by it; one without is deduplicated by
        # the event's content (see _dedupe_by_content), so nothing has to be hashed or stored for it.
        record = text(m.record_id) if m.record_id else "NULL"
        attrs = struct(attr_cols)
        if batch.schemaless and attr_cols:
            # JSON records: a field absent from a record is not an attribute of it (and two exports
            # of one record compare equal whichever other fields appear in the same export)
            attrs = f"json_merge_patch('{{}}', {attrs})"
        corr = text(m.correlation.key) if m.correlation else "NULL"
        mapped = {
            "case_id": text(m.case),
            "activity": activity,
            "ts_raw": text(m.timestamp),
            "ts": ts,
            "start_raw": text(m.start_timestamp),
            "start_ts": start,
            "lifecycle": text(m.lifecycle),
            "resource": text(m.resource),
            "record_id": record,
            "corr_value": corr,
            "attrs": attrs,
            "case_attrs": struct(case_attr_cols, as_json=False),
            "src_location": f"r.{RESERVED}location" if f"{RESERVED}location" in cols else "NULL::VARCHAR",
        }
        # Only what varies is stored. Unmapped roles (constant NULLs), the position and the line
        # (row number plus an offset) are added on read by the view ``_norm`` over ``_norm_rows``:
        # a temp table keeps its columns uncompressed, so each constant would cost 6-16 bytes a row.
        keep = {"activity", "ts", "ts_raw", "start_raw"} | ({"case_id", "corr_value"} if m.correlation else set())
        derived = {name: expr for name, expr in mapped.items()
                   if name not in keep and expr in ("NULL", "NULL::VARCHAR")}
        derived.update(self._numbering(batch, "rn"))
        # [ingest files, issue 2] a source that knows each row's exact physical line (CSV with
        # quoted newlines, blank lines or rows its reader skipped) gives it in __pl_line.
        if f"{RESERVED}line" in cols:
            mapped["line"] = f"r.{RESERVED}line"
            del derived["line"]
        inner = ",\n                ".join(f"{expr} AS {name}" for name, expr in mapped.items())
        drop = ", ".join(["ts_raw", "start_raw", *(n for n in derived if n in mapped)])
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _norm_rows AS
            SELECT * EXCLUDE ({drop}),
              CASE
                WHEN activity IS NULL THEN 'missing activity in column ' || {quote_literal(m.activity)}
                WHEN ts_raw IS NULL THEN 'missing timestamp in column ' || {quote_literal(m.timestamp)}
                WHEN ts IS NULL THEN 'unparseable timestamp ''' || ts_raw || ''' in column ' || {quote_literal(m.timestamp)}
                WHEN start_raw IS NOT NULL AND start_ts IS NULL THEN 'unparseable start timestamp ''' || start_raw || ''''
                WHEN case_id IS NULL AND corr_value IS NULL THEN 'missing case id in column ' || {quote_literal(m.case or m.correlation.key if m.correlation else m.case)}
                WHEN record_id IS NULL AND {bool(m.record_id)} THEN 'missing record id in column ' || {quote_literal(m.record_id or '')}
              END AS reject_reason,
              CASE
                WHEN activity IS NULL THEN {quote_literal(m.activity)}
                WHEN ts IS NULL THEN {quote_literal(m.timestamp)}
                WHEN start_raw IS NOT NULL AND start_ts IS NULL THEN {quote_literal(m.start_timestamp or '')}
                WHEN case_id IS NULL AND corr_value IS NULL THEN {quote_literal(m.case or '')}
                WHEN record_id IS NULL AND {bool(m.record_id)} THEN {quote_literal(m.record_id or '')}
              END AS reject_field
            FROM (
              SELECT
                {inner}{"" if streamed else f", r.{RESERVED}rn AS rn"}
              FROM {raw_from}
            )
            """
        )
        if streamed:
            # a streamed batch numbers its records in the order they were read, which is the
            # order the mapped rows were stored in: their row ids (counted from an offset)
            first = int(self.con.execute("SELECT coalesce(min(rowid), 0) FROM _norm_rows").fetchall()[0][0])
            numbering = self._numbering(batch, f"(rowid - {first})")
            derived.update(rn=f"rowid - {first}", **{k: v for k, v in numbering.items() if k in derived})
        self._norm_derived = ", ".join(f"{expr} AS {name}" for name, expr in derived.items())
        self._norm_view()
        self._location = batch.location
        self._row_location = f"{RESERVED}location" in cols
        self._streamed = streamed  # a streamed batch reaches _apply only without rejects

    @staticmethod
    def _numbering(batch: Batch, rn: str) -> dict[str, str]:
        """The position and line of a record, from its number ``rn`` in the batch (0-based)."""
        return {"position": f"{rn} + {batch.position_offset}",
                "line": f"{rn} + {batch.line_offset}" if batch.line_offset is not None else "NULL"}

    def _streamed_rows(self, batch: Batch) -> int | None:
        """The number of records of a streamed batch, or None when it must be withdrawn: a row
        was rejected (its source record is needed, and only the careful path keeps it), a mapped
        text value has leading or trailing spaces (the careful path trims them), or the source
        says the read was not clean."""
        stored = {r[0] for r in self.con.execute("DESCRIBE _norm_rows").fetchall()}
        text = [c for c in ("case_id", "activity", "resource", "lifecycle", "record_id", "corr_value") if c in stored]
        prefix = self.mapping.activity_prefix
        # a prefixed activity's value starts after its prefix
        checks = [f"bool_or({_edge_spaces(c)})" if not (c == "activity" and prefix) else
                  f"bool_or({_edge_spaces('activity', after=prefix)})" for c in text]
        n, rejected, *padded = self.con.execute(
            f"SELECT count(*), count(reject_reason){''.join(', ' + c for c in checks)} FROM _norm_rows").fetchall()[0]
        if rejected or any(padded) or not batch.verify(n):
            return None
        return n

    def _norm_view(self) -> None:
        """``_norm``: the mapped rows with every column, the derived ones computed on read."""
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW _norm AS SELECT *, {self._norm_derived} FROM _norm_rows")

    def _drop_norm(self) -> None:
        self.con.execute("DROP VIEW IF EXISTS _norm")
        self.con.execute("DROP TABLE IF EXISTS _norm_rows")

    def _apply(self) -> None:
        con, res, sid, run_id = self.con, self.result, self.source_id, self.result.run_id
        location = f"coalesce(r.{RESERVED}location, ?)" if self._row_location else "?"
        rejected = 0 if self._streamed else con.execute(
            f"""
            INSERT INTO rejects (run_id, source_id, location, line, record_key, field, reason, raw)
            SELECT ?, ?, {location}, n.line, n.record_id, n.reject_field, n.reject_reason, to_json(r)
            FROM _norm n JOIN _raw r ON r.__pl_rn = n.rn
            WHERE n.reject_reason IS NOT NULL
            """,
            [run_id, sid, self._location],
        ).fetchone()[0]
        res.rows_rejected += rejected
        self._drop_raw()
        good = con.execute("SELECT count(*) FROM _norm WHERE reject_reason IS NULL").fetchone()[0]
        if self.mapping.correlation:
            self._correlate()
        # nothing of this source is stored yet (first load): no row can be a duplicate of a stored one
        fresh = con.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM events WHERE source_id = $sid) "
            "AND NOT EXISTS (SELECT 1 FROM pending_events WHERE source_id = $sid)", {"sid": sid}
        ).fetchall()[0][0]
        if fresh and not self.mapping.record_id and not self._row_location:
            # every good row is new (identical rows are genuine repeats): read them straight from
            # _norm instead of copying them
            con.execute("CREATE OR REPLACE TEMP VIEW _new AS SELECT * FROM _norm WHERE reject_reason IS NULL")
            new_is_view, new = True, good
        else:
            if self.mapping.record_id:
                self._dedupe_by_record_id(fresh)
            else:
                self._dedupe_by_content(fresh)
            new_is_view = False
            new = con.execute("SELECT count(*) FROM _new").fetchone()[0]
            self._drop_norm()
        res.duplicates_skipped += good - new
        ready = "_new"
        if self.mapping.correlation:
            # records whose case is not known yet wait in pending_events (with a row key of their
            # own when the source has no record id) until their correlation key is linked
            pending = con.execute(
                """
                INSERT INTO pending_events
                SELECT ?, coalesce(record_id, 'row:' || ? || ':' || position), ?, corr_value, activity, ts,
                       start_ts, lifecycle, resource, position, ?, attrs
                FROM _new WHERE case_id IS NULL
                """,
                [sid, run_id, self.mapping.correlation.name, run_id],
            ).fetchone()[0]
            if pending:
                con.execute("CREATE OR REPLACE TEMP VIEW _ready AS SELECT * FROM _new WHERE case_id IS NOT NULL")
                ready = "_ready"
        inserted = insert_events(con, ready, sid, run_id, positions_unique=True,
                                 sort=self._empty_before and not self._inserted_batches)
        self._inserted_batches += 1 if inserted else 0
        res.rows_loaded += inserted
        con.execute("DROP VIEW IF EXISTS _ready")
        con.execute("DROP VIEW _new" if new_is_view else "DROP TABLE _new")

    def _correlate(self) -> None:
        """Register the correlation keys the batch's rows link to cases, then give rows that name
        only a key (a ticket naming an order number) the case that key belongs to."""
        key_name = self.mapping.correlation.name
        self.con.execute(
            """
            INSERT INTO correlation_keys
            SELECT DISTINCT ON (corr_value) ?, corr_value, case_id, ? FROM _norm
            WHERE reject_reason IS NULL AND corr_value IS NOT NULL AND case_id IS NOT NULL
            ORDER BY corr_value, rn
            ON CONFLICT DO NOTHING
            """,
            [key_name, self.source_id],
        )
        self.con.execute("ALTER TABLE _norm_rows ADD COLUMN via_key BOOLEAN DEFAULT false")
        self.con.execute(
            """
            UPDATE _norm_rows SET case_id = k.case_id, via_key = true FROM correlation_keys k
            WHERE _norm_rows.case_id IS NULL AND _norm_rows.reject_reason IS NULL
              AND k.key_name = ? AND k.key_value = _norm_rows.corr_value
            """,
            [key_name],
        )
        self._norm_view()

    def _dedupe_by_record_id(self, fresh: bool) -> None:
        """_new: good rows whose record id is neither stored nor pending, first occurrence in the batch."""
        stored = "" if fresh else """
          AND NOT EXISTS (SELECT 1 FROM events e WHERE e.source_id = $sid AND e.record_id = n.record_id)
          AND NOT EXISTS (SELECT 1 FROM pending_events p WHERE p.source_id = $sid AND p.record_id = n.record_id)"""
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _new AS
            SELECT * EXCLUDE (occ) FROM (
                SELECT n.*, row_number() OVER (PARTITION BY n.record_id ORDER BY n.rn) AS occ
                FROM _norm n WHERE n.reject_reason IS NULL
            ) n
            WHERE occ = 1 {stored}
            """,
            {"sid": self.source_id} if stored else {},
        )

    def _dedupe_by_content(self, fresh: bool) -> None:
        """_new: the good rows that are new, for a source without record ids.

        An event's identity is its content as stored (case, activity, timestamps, lifecycle,
        resource, attributes) plus its occurrence number among equal rows in source order, so
        genuine repeats stay apart: a batch with ``m`` equal rows where ``k`` are stored (or
        waiting for correlation) loads the last ``m - k``. Rows of several files in one batch are
        numbered per file; the same row in two files is one event, as with the files in separate
        runs. Rows that name only a correlation key compare with pending rows by that key.
        """
        via_key = "n.via_key" if self.mapping.correlation else "false"
        per_key = f"CASE WHEN n.case_id IS NULL OR {via_key} THEN n.corr_value END"
        # rows are compared by their case (or key) and a 64-bit hash of the rest of their content,
        # computed in this statement only (never stored, so DuckDB may change hash() freely): two
        # different events of one case would need equal hashes to be mistaken for each other
        def content_hash(case: str, key: str, a: str) -> str:
            return (f"hash({case}, {key}, {a}.activity, {a}.ts, {a}.start_ts, {a}.lifecycle, {a}.resource, "
                    f"CAST({a}.attrs AS VARCHAR))")

        stored_events = "" if fresh else f"""
            LEFT JOIN (
                SELECT case_id, h, count(*) AS k FROM (
                    SELECT cs.case_id, {content_hash("cs.case_id", "NULL::VARCHAR", "x")} AS h
                    FROM (SELECT e.case_key, a.name AS activity, e.ts, e.start_ts, e.lifecycle, e.resource, e.attrs
                          FROM events e JOIN activities a ON a.activity_id = e.activity_id
                          WHERE e.source_id = $sid) x
                    JOIN cases cs ON cs.case_key = x.case_key
                    WHERE cs.case_id IN (SELECT case_id FROM _norm WHERE case_id IS NOT NULL)
                ) GROUP BY ALL
            ) se ON se.case_id = c.case_id AND se.h = c.h"""
        stored_pending = "" if fresh else f"""
            LEFT JOIN (
                SELECT key_value, h, count(*) AS k FROM (
                    SELECT p.key_value, {content_hash("NULL::VARCHAR", "p.key_value", "p")} AS h
                    FROM pending_events p WHERE p.source_id = $sid
                ) GROUP BY ALL
            ) sp ON sp.key_value = c.pkey AND sp.h = c.pkey_h"""
        known = "0" if fresh else "coalesce(se.k, 0) + coalesce(sp.k, 0)"
        # several files in one batch: of equal rows with the same occurrence number, the first
        one_per_occurrence = ("QUALIFY row_number() OVER (PARTITION BY c.case_id, c.pkey, c.h, c.occ ORDER BY c.rn) = 1"
                              if self._row_location else "")
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _new AS
            WITH c0 AS (
                SELECT n.*, {per_key} AS pkey,
                       {content_hash("n.case_id", "NULL::VARCHAR", "n")} AS h,
                       {content_hash("NULL::VARCHAR", per_key, "n")} AS pkey_h
                FROM _norm n WHERE n.reject_reason IS NULL
            ), repeated AS (
                SELECT h FROM c0 GROUP BY h HAVING count(*) > 1
            ), c AS (
                SELECT c0.*, CASE WHEN c0.h IN (SELECT h FROM repeated)
                                  THEN row_number() OVER (PARTITION BY c0.src_location, c0.case_id, c0.pkey, c0.h
                                                          ORDER BY c0.rn)
                                  ELSE 1 END AS occ
                FROM c0
            )
            SELECT c.* EXCLUDE (pkey, h, pkey_h, occ)
            FROM c {stored_events} {stored_pending}
            WHERE c.occ > {known}
            {one_per_occurrence}
            """,
            {} if fresh else {"sid": self.source_id},
        )

    def _drop_raw(self) -> None:
        """Free the source rows once mapped (and, for a disposable source table, that table too)."""
        if self._is_view("_raw"):
            self.con.execute("DROP VIEW _raw")
            if self._disposable:
                self.con.execute(f"DROP TABLE IF EXISTS {self._disposable}")
        else:
            self.con.execute("DROP TABLE IF EXISTS _raw")


_UNPADDED_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                   "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "BOOLEAN", "DATE", "TIME", "TIMESTAMP",
                   "UUID")


def _edge_spaces(text_sql: str, after: str = "") -> str:
    """SQL: whether the text has a leading or trailing space (leading: right after the prefix ``after``)."""
    return f"(starts_with({text_sql}, {quote_literal(after + ' ')}) OR ends_with({text_sql}, ' '))"


def _prints_unpadded(column_type: str) -> bool:
    """Whether a column of this DuckDB type casts to text without leading or trailing spaces."""
    return column_type.upper().startswith(_UNPADDED_TYPES)


def insert_events(con: duckdb.DuckDBPyConnection, table: str, source_id: int, run_id: int,
                  positions_unique: bool = False, sort: bool = False) -> int:
    """Insert rows of ``table`` (case_id, activity, ts, start_ts, lifecycle, resource, record_id,
    position, attrs[, case_attrs as JSON or STRUCT]) as events, creating cases and activities as needed.

    ``event_id`` follows ``position``; with ``positions_unique`` it is derived from the position
    directly (gaps allowed) instead of by a sort of the whole batch. ``sort`` writes the rows in
    case/time order (the store's layout); rows that already come in that order (each case's
    events together and in time order, as most exported logs have them) are written as they are.
    """
    has_case_attrs = "case_attrs" in {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
    con.execute(
        f"""
        INSERT INTO activities
        SELECT (SELECT coalesce(max(activity_id), 0) FROM activities) + row_number() OVER (ORDER BY activity), activity
        FROM (SELECT DISTINCT activity FROM {table}) t
        WHERE activity NOT IN (SELECT name FROM activities)
        """
    )
    case_attrs = ("CAST(arg_min(case_attrs, position) FILTER (WHERE case_attrs IS NOT NULL) AS JSON)"
                  if has_case_attrs else "NULL")
    # case attributes of cases stored before are merged below; with none stored, there is nothing to merge
    had_cases = con.execute("SELECT EXISTS (SELECT 1 FROM cases)").fetchall()[0][0]
    new_cases = con.execute(
        f"""
        INSERT INTO cases
        SELECT (SELECT coalesce(max(case_key), 0) FROM cases) + row_number() OVER (ORDER BY min_pos, case_id),
               case_id, attrs, ?
        FROM (SELECT case_id, min(position) AS min_pos, {case_attrs} AS attrs FROM {table} GROUP BY case_id) t
        WHERE case_id NOT IN (SELECT case_id FROM cases)
        """,
        [run_id],
    ).fetchall()[0][0]
    if had_cases and has_case_attrs:
        con.execute(
            f"""
            UPDATE cases SET attrs = json_merge_patch(coalesce(cases.attrs, '{{}}'), t.attrs)
            FROM (SELECT case_id, CAST(arg_min(case_attrs, position) AS JSON) AS attrs FROM {table}
                  WHERE case_attrs IS NOT NULL GROUP BY case_id) t
            WHERE cases.case_id = t.case_id AND cases.first_run_id <> ?
            """,
            [run_id],
        )
    if positions_unique:
        base, low = con.execute(
            f"SELECT (SELECT coalesce(max(event_id), -1) FROM events), min(position) FROM {table}").fetchall()[0]
        event_id = f"{int(base) + 1 - int(low or 0)} + n.position"
    else:
        event_id = "(SELECT coalesce(max(event_id), -1) FROM events) + row_number() OVER (ORDER BY n.position)"
    return con.execute(
        f"""
        INSERT INTO events
        SELECT {event_id},
               c.case_key, a.activity_id, n.ts, n.start_ts, n.lifecycle, n.resource, ?, n.record_id, n.position, ?, n.attrs
        FROM {table} n
        JOIN cases c ON c.case_id = n.case_id
        JOIN activities a ON a.name = n.activity
        {"ORDER BY c.case_key, n.ts, 1" if sort and not in_case_order(con, table, None if had_cases else new_cases) else ""}
        """,
        [source_id, run_id],
    ).fetchone()[0]


def in_case_order(con: duckdb.DuckDBPyConnection, table: str, cases: int | None = None) -> bool:
    """Whether the rows of ``table``, taken by ``position``, are already in case/time order.

    That is: each case's rows form one run and their timestamps never go back. Case keys are
    numbered by first position, so this order is then the order (case_key, ts, event_id) that a
    sort would give, and the sort (the costliest step of a first load) can be skipped.

    The rows are read as stored (a streaming window, no sort); if they do not come in position
    order, the answer is no. ``cases``: the number of distinct case ids in ``table``, if known.
    """
    runs, backwards, unordered = con.execute(
        f"""
        SELECT count(*) FILTER (WHERE prev_case IS DISTINCT FROM case_id),
               count(*) FILTER (WHERE prev_case = case_id AND prev_ts > ts),
               count(*) FILTER (WHERE prev_pos >= position)
        FROM (SELECT case_id, ts, position, lag(case_id) OVER () AS prev_case, lag(ts) OVER () AS prev_ts,
                     lag(position) OVER () AS prev_pos
              FROM {table})
        """
    ).fetchall()[0]
    if backwards or unordered:
        return False
    if cases is None:
        cases = con.execute(f"SELECT count(DISTINCT case_id) FROM {table}").fetchall()[0][0]
    return runs == cases


def resolve_pending(con: duckdb.DuckDBPyConnection, run_id: int) -> int:
    """Move pending events whose correlation key has since been linked to a case into events."""
    n = con.execute(
        "SELECT count(*) FROM pending_events p JOIN correlation_keys k ON k.key_name = p.key_name AND k.key_value = p.key_value"
    ).fetchone()[0]
    if not n:
        return 0
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _resolved AS
        SELECT k.case_id, p.* EXCLUDE (key_name, key_value) FROM pending_events p
        JOIN correlation_keys k ON k.key_name = p.key_name AND k.key_value = p.key_value
        """
    )
    total = 0
    for (sid,) in con.execute("SELECT DISTINCT source_id FROM _resolved").fetchall():
        con.execute(f"CREATE OR REPLACE TEMP TABLE _res1 AS SELECT * EXCLUDE (source_id, run_id) FROM _resolved WHERE source_id = {int(sid)}")
        total += insert_events(con, "_res1", sid, run_id)
        con.execute("DROP TABLE _res1")
    con.execute(
        "DELETE FROM pending_events WHERE EXISTS (SELECT 1 FROM _resolved r WHERE r.source_id = pending_events.source_id "
        "AND r.record_id = pending_events.record_id)"
    )
    con.execute("DROP TABLE _resolved")
    return total


def maybe_compact(con: duckdb.DuckDBPyConnection, threshold: float = 0.2) -> bool:
    """Re-sort ``events`` when more than ``threshold`` of it was appended since the last sort."""
    row = con.execute("SELECT value FROM store_meta WHERE key = 'sorted_upto_event_id'").fetchone()
    upto = int(row[0]) if row else -1
    total, tail = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE event_id > ?) FROM events", [upto]
    ).fetchone()
    if total and tail / total > threshold:
        compact_events(con)
        return True
    return False
