"""The ingest library's front door: one-off file imports and statistics of the store."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from ingest.guess import guess_mapping
from ingest.loader import Loader, RunResult
from ingest.mapping import Mapping
from processlens.errors import SourceError

FILE_KINDS = {
    ".csv": "csv", ".txt": "csv", ".tsv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".xes": "xes", ".gz": "xes",
    ".sqlite": "ocel", ".jsonocel": "ocel", ".xmlocel": "ocel", ".json": "json", ".xml": "ocel",
    ".jsonl": "json", ".ndjson": "json",
}


def is_ocel_json(path: Path) -> bool:
    """An OCEL 1.0/2.0 JSON document (rather than plain JSON records), judged by its first bytes."""
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
    return any(key in head for key in (b'"ocel:', b'"objectTypes"', b'"eventTypes"'))


def file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".xes.gz") or name.endswith(".xes"):
        return "xes"
    if name.endswith(".csv.gz"):
        return "csv"
    kind = FILE_KINDS.get(path.suffix.lower())
    if kind == "json" and path.suffix.lower() == ".json" and is_ocel_json(path):
        kind = "ocel"
    if kind is None:
        raise SourceError(
            f"processlens does not know how to read {path.name}",
            hint="supported: .csv, .tsv, .parquet, .xes, .xes.gz, JSON and JSON lines (.json, .jsonl, .ndjson), "
                 "OCEL 2.0 (.sqlite, .jsonocel, .xmlocel)",
            where={"file": str(path)},
        )
    return kind


@dataclass
class FileImport:
    """What ``ingest_file`` did: the mapping it used (guessed or given) and the run's counts."""

    path: Path
    kind: str
    mapping: Mapping
    result: RunResult
    guessed: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)


class QueryProgress:
    """A tqdm bar on stderr fed by DuckDB's progress of the statement running on ``con``.

    DuckDB reports the progress of the running statement only; the bar shows it per loading step.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, desc: str, enabled: bool) -> None:
        self.con, self.desc, self.enabled = con, desc, enabled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> QueryProgress:
        if self.enabled:
            from tqdm import tqdm

            self.con.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false; "
                             "SET progress_bar_time = 0")
            self.bar = tqdm(total=100, desc=self.desc, unit="%", file=sys.stderr, leave=False,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}")
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        step, last = 1, 0.0
        while not self._stop.wait(0.2):
            try:
                pct = float(self.con.query_progress())
            except Exception:  # between statements; never disturb the load
                continue
            if pct < 0:
                continue
            if pct + 20 < last:
                step += 1
                self.bar.set_description(f"{self.desc} (step {step})", refresh=False)
            last = pct
            self.bar.n = min(100.0, pct)
            self.bar.refresh()

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.bar.close()
            try:
                self.con.execute("SET enable_progress_bar = false")
            except duckdb.Error:
                pass


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    *,
    case: str | None = None,
    activity: str | None = None,
    timestamp: str | None = None,
    start_timestamp: str | None = None,
    resource: str | None = None,
    lifecycle: str | None = None,
    sep: str | None = None,
    timezone: str | None = None,
    source: str | None = None,
    object_type: str | None = None,
    records_path: str | None = None,
    progress: bool | None = None,
) -> FileImport:
    """Import one file, guessing the mapping where options are not given.

    The whole file loads in one transaction: it is either loaded (bad rows quarantined in
    ``rejects`` with file, line, field and reason) or, on an error, not at all. Loading the same
    file again loads nothing new (the records are recognised as duplicates).
    """
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path} does not exist", hint="check the path and try again", where={"file": str(path)})
    if path.is_dir():
        raise SourceError(f"{path} is a folder", hint="name one file; for a folder of exports configure a "
                          "'folder' job in processlens.toml", where={"file": str(path)})
    kind = file_kind(path)
    source = source or path.name
    tz = check_timezone(con, timezone or "UTC")
    show = sys.stderr.isatty() if progress is None else progress
    con.execute("SET enable_progress_bar_print = false")  # DuckDB's own bar would go to stdout (breaks --json)
    explicit = {k: v for k, v in dict(case=case, activity=activity, timestamp=timestamp, start_timestamp=start_timestamp,
                                       resource=resource, lifecycle=lifecycle).items() if v}
    if kind == "ocel":
        from ingest.sources import ocel_file  # pandas and pm4py: only for OCEL

        imp = ocel_file.ingest(con, path, object_type=object_type, source=source, progress=False)
        return imp

    from ingest.sources import csv_file, parquet_file, xes_file

    if kind == "csv":
        preview = csv_file.preview_relation(con, path, sep=sep)
        cols = _describe(con, preview)
        open_batches = lambda keys: csv_file.batches(con, path, keys, sep=sep, allow_empty=False, stream=True)  # noqa: E731
    elif kind == "parquet":
        preview = parquet_file.relation(path)
        cols = _describe_or_fail(con, preview, path, "Parquet")
        open_batches = lambda keys: parquet_file.batches(con, path)  # noqa: E731
    elif kind == "json":
        from ingest.sources import json_file

        batch = next(json_file.batches(con, path, records_path=records_path), None)
        if batch is None:
            raise SourceError(f"{path} contains no records", hint="check that the export is complete",
                              where={"file": str(path)})
        preview = "_json_preview"
        con.register(preview, batch.data)
        cols = _describe(con, preview)
        open_batches = lambda keys: iter([batch])  # noqa: E731
    else:
        table = xes_file.read_frame(path)
        if table.num_rows == 0:
            raise SourceError(f"{path} contains no events", hint="check that the export is complete",
                              where={"file": str(path)})
        preview = "_xes_preview"
        con.register(preview, table)
        cols = _describe(con, preview)
        open_batches = lambda keys: xes_file.batches_from(table, path)  # noqa: E731
    try:
        if kind in ("csv", "parquet") and not con.execute(f"SELECT 1 FROM {preview} LIMIT 1").fetchall():
            raise SourceError(f"{path.name} has a header but no events",
                              hint="export the log again with its rows; only the column names were found",
                              where={"file": str(path), "line": 1 if kind == "csv" else None})
        unknown = [f"--{k.replace('_', '-')} {v!r}" for k, v in explicit.items() if v not in cols]
        if unknown:
            raise SourceError(
                f"{path.name} has no column(s) {', '.join(unknown)}",
                hint=f"the columns are: {', '.join(list(cols)[:40])}",
                where={"file": str(path)},
            )
        guessed = guess_mapping(con, preview, cols, fixed=explicit)
    finally:
        if kind in ("xes", "json"):
            con.unregister(preview)
        elif kind == "csv":
            con.execute(f"DROP TABLE IF EXISTS {preview}")
    roles = {**guessed, **explicit}
    missing = [r for r in ("case", "activity", "timestamp") if r not in roles]
    if missing:
        raise SourceError(
            f"could not tell which column of {path.name} holds the {', '.join(missing)}",
            hint="name them with " + " ".join(f"--{m.replace('_', '-')} COLUMN" for m in missing)
            + f"; the columns are: {', '.join(list(cols)[:40])}",
            where={"file": str(path)},
        )
    mapping = Mapping(**roles, timezone=tz)
    # what the rows take in memory, roughly, from the file's size (Parquet packs about 10:1, XES
    # spends about half its bytes on markup): scales the default working-memory cap
    per_byte = {"parquet": 10.0, "xes": 0.5}.get(kind, 1.0) * (10 if path.name.lower().endswith(".gz") else 1)
    loader = Loader(con, job=f"file:{path.name}", source=source, kind=kind, mapping=mapping, progress=False,
                    config={"path": str(path.resolve())}, input_bytes=int(path.stat().st_size * per_byte))
    with QueryProgress(con, f"importing {path.name}", show):
        result = loader.run_with_fallback(lambda: open_batches(mapping.key_columns))
    return FileImport(path=path, kind=kind, mapping=mapping, result=result,
                      guessed={k: v for k, v in guessed.items() if k not in explicit})


def check_timezone(con: duckdb.DuckDBPyConnection, tz: str) -> str:
    """The zone name if DuckDB knows it, else a clear error."""
    known = con.execute("SELECT count(*) FROM pg_timezone_names() WHERE name = ?", [tz]).fetchall()[0][0]
    if not known:
        raise SourceError(f"unknown time zone {tz!r}",
                          hint="use an IANA name such as UTC, Europe/Amsterdam or America/New_York")
    return tz


def _describe(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}


def _describe_or_fail(con: duckdb.DuckDBPyConnection, relation: str, path: Path, what: str) -> dict[str, str]:
    try:
        return _describe(con, relation)
    except duckdb.Error as exc:
        raise SourceError(
            f"cannot read {path.name} as {what}: {str(exc).splitlines()[0]}",
            hint="check that the file is complete (not truncated) and has the right extension",
            where={"file": str(path)},
        ) from exc


def stats(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Counts for ``processlens stats``: cases, events, activities, and per source with freshness."""
    cases, events, activities = con.execute(
        "SELECT (SELECT count(*) FROM cases), (SELECT count(*) FROM events), (SELECT count(*) FROM activities)"
    ).fetchone()
    per_source = con.execute(
        """
        SELECT s.name, s.kind, count(e.event_id) AS events, count(DISTINCT e.case_key) AS cases,
               max(e.ts) AS last_event, (SELECT max(ended_at) FROM ingest_runs r WHERE r.source_id = s.source_id
                                          AND r.status = 'succeeded') AS last_ingest
        FROM sources s LEFT JOIN events e USING (source_id)
        GROUP BY ALL ORDER BY s.name
        """
    ).fetchall()
    pending, rejects = con.execute("SELECT (SELECT count(*) FROM pending_events), (SELECT count(*) FROM rejects)").fetchone()
    return {
        "cases": cases,
        "events": events,
        "activities": activities,
        "rejected_records": rejects,
        "pending_correlation": pending,
        "sources": {
            name: {
                "kind": kind,
                "events": n,
                "cases": c,
                "last_event": last.isoformat() + "Z" if last else None,
                "last_ingest": li.isoformat() + "Z" if li else None,
            }
            for name, kind, n, c, last, li in per_source
        },
    }
