"""Drop folders: every new file matching a glob pattern is loaded once, in name order.

A file is "new" when its SHA-256 is not yet in ``ingested_files`` for the job, so a renamed copy
of a file already loaded is skipped, and a file whose content changed is loaded again (records
already in the store are skipped as duplicates). Each file is read by the source of its kind
(``file_kind`` or its extension: csv, parquet, xes, json/jsonl) and marked as taken in the same
transaction as its data: a run that fails leaves its files to the next run.

A file that is unusable as a whole (empty, not the format its name says, lacking the mapped
columns) does **not** fail the run: it is recorded as a reject (location = the file, with the
reason) and marked as taken by its hash, so the other files still load and the same broken bytes
are not retried on every run; a corrected file (new content) is picked up again. A file that
cannot be read at all (permissions, vanished) is skipped with a reject and retried next run.

Files are read one by one (each on a DuckDB cursor of its own, into Arrow) and consecutive small
files are combined into one loader batch of up to ``GROUP_ROWS`` rows, each row keeping its file
(``__pl_location``) and line (``__pl_line``) for rejects: a folder of hundreds of daily exports
loads in a few set-wise steps instead of hundreds of small ones.

Hidden and temporary files (``.name``, ``~name``, ``*.tmp``, ``*.part``, ``*.crdownload``) are
ignored, and so are files modified less than ``min_age`` seconds ago (still being written).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from ingest.loader import Batch
from ingest.mapping import Mapping
from ingest.sources.json_file import arrow_table
from processlens.errors import SourceError

GROUP_ROWS = 500_000  # rows of small files combined into one loader batch
TEMP_SUFFIXES = (".tmp", ".part", ".crdownload", ".partial", ".swp")
KIND_BY_SUFFIX = {
    ".csv": "csv", ".txt": "csv", ".tsv": "csv", ".csv.gz": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".xes": "xes", ".xes.gz": "xes",
    ".json": "json", ".jsonl": "json", ".ndjson": "json", ".jsonl.gz": "json", ".json.gz": "json",
}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def kind_of(path: Path, file_kind: str | None) -> str:
    if file_kind:
        return file_kind
    name = path.name.lower()
    for suffix in sorted(KIND_BY_SUFFIX, key=len, reverse=True):
        if name.endswith(suffix):
            return KIND_BY_SUFFIX[suffix]
    raise SourceError(f"cannot tell the kind of {path.name} from its name",
                      hint="set file_kind (csv, parquet, xes or json) for the folder job, or narrow its pattern",
                      where={"file": str(path)})


def candidates(folder: Path, pattern: str, min_age: float = 0.0) -> list[Path]:
    """Files matching ``pattern`` (recursive with ``**``), in name order, without temporary ones."""
    now = time.time()
    out = []
    for p in folder.glob(pattern):
        name = p.name
        if not p.is_file() or name.startswith((".", "~")) or name.lower().endswith(TEMP_SUFFIXES):
            continue
        if min_age and now - p.stat().st_mtime < min_age:
            continue
        out.append(p)
    return sorted(out, key=lambda p: (str(p.relative_to(folder).parent), p.name))


def taken(con: duckdb.DuckDBPyConnection, job: str) -> set[str]:
    return {r[0] for r in con.execute("SELECT sha256 FROM ingested_files WHERE job = ?", [job]).fetchall()}


def _file_batches(con: duckdb.DuckDBPyConnection, path: Path, kind: str, mapping: Mapping, options: dict) -> Iterator[Batch]:
    if kind == "csv":
        from ingest.sources import csv_file

        return csv_file.batches(con, path, mapping.key_columns, sep=options.get("sep"), encoding=options.get("encoding"))
    if kind == "parquet":
        from ingest.sources import parquet_file

        return parquet_file.batches(con, path)
    if kind == "xes":
        from ingest.sources import xes_file

        return xes_file.batches(con, path)
    if kind == "json":
        from ingest.sources import json_file

        return json_file.batches(con, path, records_path=options.get("records_path"), fmt=options.get("format", "auto"))
    raise SourceError(f"unknown file_kind {kind!r}", hint="use csv, parquet, xes or json", where={"file": str(path)})


def _check_columns(batch: Batch, mapping: Mapping) -> None:
    if not batch.relation:
        return
    cols = set(batch.data.column_names)
    needed = mapping.key_columns
    if batch.schemaless:  # JSON: absent optional fields are NULL (see Batch.schemaless)
        needed = [c for c in (mapping.activity, mapping.timestamp, mapping.record_id,
                              None if mapping.correlation else mapping.case) if c]
    missing = [c for c in needed if c not in cols]
    if missing:
        raise SourceError(f"{batch.location} lacks the mapped column(s) {missing}",
                          hint=f"its columns are {sorted(cols)[:30]}; fix the file or the job's mapping",
                          where={"file": batch.location})


def _whole_file_reject(path: Path, reason: str, sha: str | None, size: int | None) -> Batch:
    return Batch(relation="", location=str(path), source_rejects=[{"reason": reason, "record_key": path.name}],
                 file_sha256=sha, file_size=size)


@dataclass
class _FileRows:
    """One file read to Arrow, waiting to be combined with its neighbours into a batch."""

    path: Path
    sha: str
    size: int
    table: pa.Table | None  # None: the file had no records
    rejects: list[dict]
    schemaless: bool


def _with_row_columns(batch: Batch, path: Path) -> pa.Table:
    """The file's rows with ``__pl_line`` (its line numbers) and ``__pl_location`` (its path)."""
    table = batch.data
    n = table.num_rows
    if "__pl_line" not in table.column_names:
        if batch.line_offset is not None:
            lines = pa.array(range(batch.line_offset, batch.line_offset + n), pa.int64())
        else:
            lines = pa.nulls(n, pa.int64())
        table = table.append_column("__pl_line", lines)
    return table.append_column("__pl_location", pa.array([str(path)] * n, pa.string()).dictionary_encode())


def _combine(group: list[_FileRows], offset: int) -> Iterator[Batch]:
    """One batch for a run of files (or one per file when their columns cannot be unified)."""
    files = [(str(f.path), f.sha, f.size) for f in group]
    rejects = [{**r, "location": str(f.path)} for f in group for r in f.rejects]
    tables = [f.table for f in group if f.table is not None]
    schemaless = any(f.schemaless for f in group)
    if not tables:
        yield Batch(relation="", location=files[0][0], source_rejects=rejects, files=files)
        return
    try:
        data = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        for f in group:  # incompatible column types between files: one batch each
            yield from _combine([f], offset)
            offset += f.table.num_rows if f.table is not None else 0
        return
    yield Batch(relation="_drop_files", data=data, location=files[0][0], position_offset=offset, line_offset=None,
                source_rejects=rejects, files=files, schemaless=schemaless)


def _read_file(con: duckdb.DuckDBPyConnection, path: Path, sha: str, size: int, mapping: Mapping,
               file_kind: str | None, options: dict) -> _FileRows:
    """Read one file on a cursor of its own (a DuckDB error must not abort the run's transaction)."""
    work = con.cursor()
    gen = None
    try:
        kind = kind_of(path, file_kind)
        gen = _file_batches(work, path, kind, mapping, options)
        tables, rejects, schemaless = [], [], False
        for batch in gen:
            rejects += batch.source_rejects
            if not batch.relation:
                continue
            if batch.data is None:
                batch.data = arrow_table(work, f"SELECT * FROM {batch.relation}")
            _check_columns(batch, mapping)
            schemaless = schemaless or batch.schemaless
            tables.append(_with_row_columns(batch, path))
        table = None
        if tables:
            table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
        return _FileRows(path, sha, size, table, rejects, schemaless)
    except (SourceError, duckdb.Error, pa.ArrowException) as exc:
        if gen is not None:
            gen.close()
        if isinstance(exc, SourceError):
            reason = exc.message + (f" - what to do: {exc.hint}" if exc.hint else "")
        else:
            reason = f"cannot be read: {str(exc).splitlines()[0]}"
        return _FileRows(path, sha, size, None, [{"reason": reason, "record_key": path.name}], False)
    finally:
        work.close()


def batches(
    con: duckdb.DuckDBPyConnection,
    job: str,
    folder: str | Path,
    mapping: Mapping,
    pattern: str = "*",
    file_kind: str | None = None,
    min_age: float = 0.0,
    group_rows: int = GROUP_ROWS,
    **options: str,
) -> Iterator[Batch]:
    """Batches of the new files in ``folder``, in name order; small files are combined (up to
    ``group_rows`` rows) so a folder of many daily exports loads in a few set-wise steps."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"drop folder {folder} does not exist", hint="create it or fix the job's path",
                          where={"folder": str(folder)})
    done = taken(con, job)
    group: list[_FileRows] = []
    rows = offset = 0
    for path in candidates(folder, pattern, min_age):
        try:
            size = path.stat().st_size
            sha = sha256_of(path)
        except OSError as exc:
            yield _whole_file_reject(path, f"cannot read the file: {exc.strerror or exc}; retried next run", None, None)
            continue
        if sha in done:
            continue
        done.add(sha)
        f = _read_file(con, path, sha, size, mapping, file_kind, options)
        n = f.table.num_rows if f.table is not None else 0
        if group and (rows + n > group_rows or f.schemaless != group[-1].schemaless):
            yield from _combine(group, offset)
            offset += rows
            group, rows = [], 0
        group.append(f)
        rows += n
    if group:
        yield from _combine(group, offset)
