"""The ingest library's front door: one-off file imports and statistics of the store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ingest.loader import Batch, Loader, RunResult
from ingest.mapping import Mapping
from processlens.errors import SourceError

FILE_KINDS = {
    ".csv": "csv", ".txt": "csv", ".tsv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".xes": "xes", ".gz": "xes",
    ".sqlite": "ocel", ".jsonocel": "ocel", ".xmlocel": "ocel", ".json": "ocel", ".xml": "ocel",
}


def file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".xes.gz") or name.endswith(".xes"):
        return "xes"
    if name.endswith(".csv.gz"):
        return "csv"
    kind = FILE_KINDS.get(path.suffix.lower())
    if kind is None:
        raise SourceError(
            f"processlens does not know how to read {path.name}",
            hint="supported: .csv, .tsv, .parquet, .xes, .xes.gz, OCEL 2.0 (.sqlite, .jsonocel, .xmlocel)",
            where={"file": str(path)},
        )
    return kind


@dataclass
class FileImport:
    path: Path
    kind: str
    mapping: Mapping
    result: RunResult
    guessed: dict[str, str]


def _relation_for_guess(con: duckdb.DuckDBPyConnection, batch: Batch) -> tuple[str, dict[str, str]]:
    if batch.data is not None:
        con.register(batch.relation, batch.data)
    cols = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {batch.relation}").fetchall()}
    return batch.relation, cols


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
    progress: bool | None = None,
) -> FileImport:
    """Import one file, guessing the mapping where options are not given."""
    from ingest.sources import csv_file, ocel_file, parquet_file, xes_file

    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path} does not exist", hint="check the path and try again", where={"file": str(path)})
    kind = file_kind(path)
    source = source or path.name
    explicit = {k: v for k, v in dict(case=case, activity=activity, timestamp=timestamp, start_timestamp=start_timestamp,
                                       resource=resource, lifecycle=lifecycle).items() if v}
    if kind == "ocel":
        return ocel_file.ingest(con, path, object_type=object_type, source=source, progress=progress)

    def open_batches(keys: list[str]):
        if kind == "csv":
            return csv_file.batches(con, path, keys, sep=sep)
        if kind == "parquet":
            return parquet_file.batches(con, path)
        return xes_file.batches(con, path)

    # First pass: look at the columns to guess the mapping (cheap: DuckDB reads lazily).
    gen = open_batches(list(explicit.values()))
    con.execute("BEGIN TRANSACTION")
    try:
        first = next(gen)
        rel, cols = _relation_for_guess(con, first)
        guessed = guess_mapping_for(con, rel, cols)
    finally:
        gen.close()
        con.execute("ROLLBACK")
    roles = {**guessed, **explicit}
    missing = [r for r in ("case", "activity", "timestamp") if r not in roles]
    if missing:
        raise SourceError(
            f"could not tell which column of {path.name} holds the {', '.join(missing)}",
            hint="name them with " + " ".join(f"--{m.replace('_', '-')} COLUMN" for m in missing)
            + f"; the columns are: {', '.join(list(cols)[:40])}",
            where={"file": str(path)},
        )
    tz = timezone or ("UTC" if kind == "xes" else "UTC")
    mapping = Mapping(**roles, timezone=tz)
    loader = Loader(con, job=f"file:{path.name}", source=source, kind=kind, mapping=mapping, progress=progress,
                    config={"path": str(path.resolve())})
    result = loader.run(open_batches(mapping.key_columns))
    return FileImport(path=path, kind=kind, mapping=mapping, result=result, guessed=guessed)


def guess_mapping_for(con: duckdb.DuckDBPyConnection, relation: str, cols: dict[str, str]) -> dict[str, str]:
    from ingest.guess import guess_mapping

    return guess_mapping(con, relation, cols)


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
