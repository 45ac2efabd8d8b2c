"""XES and .xes.gz files, read with the Rust-based ``rustxes`` importer (the one pm4py uses).

Before parsing, the document prolog is checked: a DOCTYPE with entity declarations (billion
laughs) or external entities is refused, since no real event log needs them.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import sys
import tempfile
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


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Capture what native code writes to file descriptor 2 (the Rust importer's panic text)."""
    out: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read(1 << 16).decode("utf-8", "replace"))


def _panic_reason(text: str) -> str:
    for line in text.splitlines():
        if "Err" in line or "error" in line.lower():
            return line.strip()
    return text.strip().splitlines()[0] if text.strip() else ""


def read_frame(path: Path):
    """Read the log as a pyarrow table, one row per event, in document order."""
    import rustxes

    check_safe(path)
    with _captured_stderr() as err:
        try:
            df, _meta = rustxes.import_xes(str(path))
            failure = None
        except BaseException as exc:  # the Rust importer raises PanicException (a BaseException) on bad XML
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            failure = exc
    if failure is not None:
        detail = str(failure).splitlines()[0] if str(failure) else _panic_reason(err[0]) or type(failure).__name__
        truncated = "UnexpectedEof" in detail or "EOF" in detail
        raise SourceError(
            f"cannot parse {path.name} as XES: " + ("the file ends in the middle (truncated). " if truncated else "")
            + detail,
            hint="the download or export was cut off; copy or export the file again" if truncated
            else "the XML is malformed; validate it or export it again",
            where={"file": str(path)},
        ) from failure
    table = df.to_arrow()
    # the importer returns attribute columns in a varying order; a fixed order keeps the content
    # hash of each event (its record id) stable, so a re-import is recognised as duplicates
    return table.select(sorted(table.column_names))


def batches_from(table, path: Path) -> Iterator[Batch]:
    """One batch over an already read table (``read_frame``), its rows numbered in an extra
    column so the loader reads the Arrow data in place instead of copying it."""
    import numpy as np
    import pyarrow as pa

    if "__pl_rn" not in table.column_names:
        table = table.append_column("__pl_rn", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    yield Batch(relation="_xes_data", data=table, location=str(path), line_offset=None)


def batches(con: duckdb.DuckDBPyConnection, path: str | Path) -> Iterator[Batch]:
    path = Path(path)
    table = read_frame(path)
    if table.num_rows == 0:
        raise SourceError(f"{path} contains no events", hint="check that the export is complete", where={"file": str(path)})
    yield from batches_from(table, path)
