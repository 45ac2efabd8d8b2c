"""XES and .xes.gz files, read with the Rust-based ``rustxes`` importer (the one pm4py uses).

Before parsing, the document prolog is checked: a DOCTYPE with entity declarations (billion
laughs) or external entities is refused, since no real event log needs them.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb

from ingest.loader import Batch
from processlens.errors import SourceError

_DANGEROUS = re.compile(rb"<!DOCTYPE|<!ENTITY|SYSTEM\s+[\"']|PUBLIC\s+[\"']", re.IGNORECASE)


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def check_safe(path: Path, scan_bytes: int = 1 << 20) -> None:
    """Refuse XML with a DOCTYPE or entity declarations; fail clearly on a file that is not XES."""
    try:
        with _open(path) as fh:
            head = fh.read(scan_bytes)
    except (OSError, EOFError) as exc:
        raise SourceError(
            f"cannot read {path}: {exc}",
            hint="the file is damaged or not gzip-compressed; export it again",
            where={"file": str(path)},
        ) from exc
    if not head.strip():
        raise SourceError(f"{path} is empty", hint="export the log again", where={"file": str(path)})
    if _DANGEROUS.search(head):
        raise SourceError(
            f"{path} declares a DOCTYPE or XML entities, which processlens refuses (entity expansion and "
            "external entities can exhaust memory or read local files)",
            hint="remove the <!DOCTYPE ...> block from the file; XES logs do not need it",
            where={"file": str(path)},
        )
    if b"<log" not in head and b"<trace" not in head:
        raise SourceError(
            f"{path} does not look like an XES log (no <log> element near the start)",
            hint="check the file; for CSV or Parquet use the matching extension",
            where={"file": str(path)},
        )


def read_frame(path: Path):
    """Read the log as a pyarrow table, one row per event, in document order."""
    import rustxes

    check_safe(path)
    try:
        df, _meta = rustxes.import_xes(str(path))
    except BaseException as exc:  # the Rust importer raises PanicException (a BaseException) on bad XML
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise SourceError(
            f"cannot parse {path} as XES: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            hint="the XML is malformed or truncated; validate it or export it again",
            where={"file": str(path)},
        ) from exc
    return df.to_arrow()


def batches(con: duckdb.DuckDBPyConnection, path: str | Path) -> Iterator[Batch]:
    path = Path(path)
    table = read_frame(path)
    if table.num_rows == 0:
        raise SourceError(f"{path} contains no events", hint="check that the export is complete", where={"file": str(path)})
    yield Batch(relation="_xes_data", data=table, location=str(path), line_offset=None)
