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


#: runs of traces per process: each process claims the next run when it is done with one, so all
#: end within about one run's parse of each other (this process starts at once; a worker first
#: starts Python and imports the parser, 0.3-0.7 s)
RUNS_PER_PROCESS = 6


def split_points(buf, parts: int) -> list[int] | None:
    """Offsets cutting the traces of an XES document into ``parts`` runs of whole traces of about
    equal size: the first trace's start, the starts in between, and the ``</log>`` end tag. Fewer
    runs when traces are too large for that many. None when the document does not have that
    simple shape (no traces, comments or CDATA near a cut): it is then read whole."""
    first = _trace_at(buf, 0)
    end = buf.rfind(b"</log>")
    if first < 0 or end < first:
        return None
    points = [first]
    for i in range(1, parts):
        cut = _trace_at(buf, first + int((end - first) * i / parts))
        if cut < 0 or cut >= end:
            break
        if cut <= points[-1]:
            continue
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
    """Parse the log's runs of traces in this process and ``parts - 1`` workers
    (``ingest.sources.xes_part``), each claiming the next run when done; None if any run fails."""
    import json
    import subprocess

    import pyarrow as pa

    from ingest.sources.xes_part import claim, write_run

    points = split_points(buf, parts * RUNS_PER_PROCESS)
    if points is None:
        return None
    runs = list(zip(points[:-1], points[1:], strict=True))  # run 0 starts at the first trace, after the header
    (tmp / "plan.json").write_text(json.dumps(runs))
    # each worker is one of ``parts`` processes sharing the cores: its parser's own thread pools (polars,
    # rayon) would only contend with the other processes (same table, 0.4-1.3 s less CPU at 1M events)
    env = {**os.environ, "POLARS_MAX_THREADS": "1", "RAYON_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "ingest.sources.xes_part", str(path), str(points[0]), str(tmp)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
               for _ in range(parts - 1)]
    tables: dict[int, object] = {}
    failed = False
    try:
        # this process starts at once, so it usually takes the first runs while the workers start
        for i, (start, end) in enumerate(runs):
            if claim(tmp, i):
                run = tmp / f"run{i}.xes"
                write_run(path, points[0], start, end, run)
                tables[i] = _parse(run)
                run.unlink()
    except SourceError:
        failed = True
        (tmp / "stop").touch()  # the workers take no further run
    for proc in workers:
        proc.communicate()
        failed = failed or proc.returncode != 0
    if failed:
        return None
    ordered = []
    for i in range(len(runs)):
        if i in tables:
            ordered.append(tables[i])
            continue
        out = tmp / f"part{i}.arrow"
        if not out.exists():
            return None
        with pa.memory_map(str(out)) as source:
            ordered.append(pa.ipc.open_file(source).read_all())
    global last_worker_peak_kb
    for peak in tmp.glob("peak*"):
        last_worker_peak_kb = max(last_worker_peak_kb, int(peak.read_text() or 0))
    ordered = _with_global_defaults(ordered, bytes(buf[:points[0]]), tmp)
    if ordered is None:
        return None
    # the runs stay separate chunks (no copy); the workers' runs are read from their memory-mapped files
    return pa.concat_tables(ordered, promote_options="permissive")


_GLOBAL = re.compile(rb"<global\s+scope\s*=\s*[\"'](trace|event)[\"']\s*>(.*?)</global\s*>", re.DOTALL)


def _with_global_defaults(tables: list, header: bytes, tmp: Path) -> list | None:
    """Give each run's table the attribute columns it lacks, as a whole parse does.

    rustxes makes a column of every attribute it meets and fills the traces or events without
    it with the log's ``<global>`` default for it, else null. A run in which no trace has the
    attribute has no such column. The defaults are read by parsing one trace and event made of
    the ``<global>`` declarations themselves (so they are converted exactly as rustxes does);
    None when that fails (the log is then parsed whole)."""
    import pyarrow as pa

    names = {n for t in tables for n in t.column_names}
    if all(len(t.column_names) == len(names) for t in tables):
        return tables
    declared = {scope: body for scope, body in _GLOBAL.findall(header)}
    defaults = None
    if declared:
        probe = tmp / "globals.xes"
        probe.write_bytes(header + b"<trace>" + declared.get(b"trace", b"") + b"<event>" + declared.get(b"event", b"")
                          + b"</event></trace></log>\n")
        try:
            defaults = _parse(probe)
        except SourceError:
            return None
        if defaults.num_rows != 1:
            return None
    types = {f.name: f.type for t in tables for f in t.schema if not pa.types.is_null(f.type)}
    filled = []
    for t in tables:
        for name in sorted(names - set(t.column_names)):
            if defaults is not None and name in defaults.column_names:
                column = pa.repeat(defaults[name][0], t.num_rows)
            else:
                column = pa.nulls(t.num_rows, types.get(name, pa.null()))
            t = t.append_column(name, column)
        filled.append(t)
    return filled


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
