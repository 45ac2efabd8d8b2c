"""XES and .xes.gz files, read with the Rust-based ``rustxes`` importer (the one pm4py uses).

Before parsing, the document prolog is checked: a DOCTYPE with entity declarations (billion
laughs) or external entities is refused, since no real event log needs them.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
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
    """Read the log as a pyarrow table, one row per event, in document order.

    A large log is cut at trace boundaries into as many parts as there are cores, and the parts
    are parsed at the same time (the Rust parser holds Python's lock, so each extra part runs in
    a process of its own); see ``parallel_parts``. The result is the same table either way.
    """
    check_safe(path)
    parts = parallel_parts(path)
    if parts > 1:
        table = read_split(path, parts)
        if table is not None:
            return table.select(sorted(table.column_names))
    table = _parse(path)
    # the importer returns attribute columns in a varying order: fix one
    return table.select(sorted(table.column_names))


def _parse(path: Path):
    """One rustxes parse of a whole file, its failures turned into a SourceError about ``path``."""
    import rustxes

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
    return df.to_arrow()


# -- parallel parsing of large logs ---------------------------------------------------------------
last_worker_peak_kb = 0  # the largest peak memory of a part worker in this process (for benchmarks)
WORKERS_ENV = "PROCESSLENS_XES_WORKERS"  # parts to parse at once; 1 turns parallel parsing off
SPLIT_MIN_BYTES = 48 << 20  # below this (about 200k events) starting a second process does not pay


def parallel_parts(path: Path) -> int:
    """How many parts to parse ``path`` in: one per core (at most 4) for a large log (.xes or .xes.gz)."""
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if configured.isdigit():
        parts = int(configured)
    else:
        parts = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1), 4)
    if parts < 2:
        return 1
    return parts if _plain_size(path) >= SPLIT_MIN_BYTES or configured.isdigit() else 1


def _trace_at(buf, pos: int) -> int:
    """Offset of the first ``<trace>`` start tag at or after ``pos`` (-1 if none)."""
    while True:
        pos = buf.find(b"<trace", pos)
        if pos < 0 or buf[pos + 6:pos + 7] in (b">", b" ", b"\t", b"\r", b"\n", b"/"):
            return pos
        pos += 6


# The first part is parsed by this process, which starts at once; each worker first starts Python
# and imports the parser (0.3-0.5 s, about 4 % of a large log's parse). The first part is that much
# larger, so that all parts end together (a 1M-event log: 3.0 s to 2.8 s).
HEAD_START = 0.08


def split_points(buf, parts: int) -> list[int] | None:
    """Offsets cutting the traces of an XES document into ``parts`` runs of whole traces: the first
    trace's start, the starts in between, and the ``</log>`` end tag. The first run is larger by
    ``HEAD_START / parts`` of the traces. None when the document does not have that simple shape
    (no traces, comments or CDATA near a cut): it is then read whole."""
    first = _trace_at(buf, 0)
    end = buf.rfind(b"</log>")
    if first < 0 or end < first:
        return None
    points = [first]
    head = 1 / parts + HEAD_START / parts
    for i in range(1, parts):
        share = head + (1 - head) * (i - 1) / (parts - 1)
        cut = _trace_at(buf, first + int((end - first) * share))
        if cut < 0 or cut >= end or cut <= points[-1]:
            break
        before = buf[max(points[-1], cut - 4096):cut]
        if b"<![CDATA[" in before or b"<!--" in before:
            return None
        points.append(cut)
    points.append(end)
    return points if len(points) > 2 else None


def _scratch_dir(size: int) -> str | None:
    """Memory-backed /dev/shm for the part files when it has room for them twice over, else the
    system's temporary folder."""
    try:
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize > 2 * size:
            return "/dev/shm"
    except OSError:
        pass
    return None


def read_split(path: Path, parts: int):
    """Parse ``path`` in ``parts`` pieces at once (this process takes the first); the tables are
    concatenated in document order. None if the file cannot be cut safely or a part fails, so
    the caller parses it whole (and reports any error against the real file)."""
    import mmap

    with tempfile.TemporaryDirectory(prefix="processlens-xes-", dir=_scratch_dir(_plain_size(path))) as tmp:
        if path.name.lower().endswith(".gz"):  # unpacked once here, instead of by the parser
            plain = Path(tmp) / "log.xes"
            try:
                with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
            except (OSError, EOFError):
                return None  # the whole parse reports it
            path = plain
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse_parts(path, buf, parts, Path(tmp))


def _plain_size(path: Path) -> int:
    """The log's size unpacked (XES packs about 10:1 with gzip)."""
    return path.stat().st_size * (10 if path.name.lower().endswith(".gz") else 1)


def _parse_parts(path: Path, buf, parts: int, tmp: Path):
    import subprocess

    import pyarrow as pa

    points = split_points(buf, parts)
    if points is None:
        return None
    workers = []
    for i in range(1, len(points) - 1):
        out = tmp / f"part{i}.arrow"
        workers.append((out, subprocess.Popen(
            [sys.executable, "-m", "ingest.sources.xes_part", str(path), str(points[0]), str(points[i]),
             str(points[i + 1]), str(out)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
    try:
        head = tmp / "part0.xes"
        from ingest.sources.xes_part import copy_range

        with open(path, "rb") as src, open(head, "wb") as dst:
            copy_range(src, dst, 0, points[1])
            dst.write(b"</log>\n")
        tables = [_parse(head)]
    except SourceError:
        tables = None
    for out, proc in workers:
        _, err = proc.communicate()
        if proc.returncode != 0 or tables is None:
            tables = None
            continue
        with pa.memory_map(str(out)) as source:
            tables.append(pa.ipc.open_file(source).read_all())
        peak = out.with_suffix(".peak")
        if peak.exists():
            global last_worker_peak_kb
            last_worker_peak_kb = max(last_worker_peak_kb, int(peak.read_text() or 0))
    if tables is None:
        return None
    # the parts stay separate chunks (no copy); the workers' parts are read from their memory-mapped files
    return pa.concat_tables(tables, promote_options="permissive")


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
