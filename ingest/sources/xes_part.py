"""Worker of the parallel XES reader: parse runs of whole traces of a log into Arrow files.

    python -m ingest.sources.xes_part LOG FIRST_TRACE FOLDER

``FOLDER/plan.json`` lists the runs (``[[start, end], ...]``, byte offsets of whole traces). The
worker claims runs one at a time (:func:`claim`, shared with the importing process, which parses
runs too), writes each as a small XES (the log's header, everything before ``FIRST_TRACE``, the
run and the closing tag), parses it with rustxes and writes the events to ``FOLDER/part<i>.arrow``
(Arrow IPC). Claiming one run at a time balances the work whatever each process's speed: the
importing process starts parsing at once while a worker is still starting Python. It stops when
no run is left or ``FOLDER/stop`` exists, and exits non-zero on any failure; the importing process
then parses the log whole.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def copy_range(src, dst, offset: int, count: int) -> None:
    """Copy ``count`` bytes at ``offset`` of ``src`` to the end of ``dst`` in the kernel (no copy
    in this process's memory, which would count towards the import's peak)."""
    dst.flush()
    while count > 0:
        sent = os.sendfile(dst.fileno(), src.fileno(), offset, count)
        if sent == 0:
            raise OSError(f"{src.name} ended before byte {offset + count}")
        offset, count = offset + sent, count - sent


def write_run(log: str | Path, first: int, start: int, end: int, out: Path) -> None:
    """``out``: a well-formed XES of the log's header and the traces in bytes ``start..end``."""
    with open(log, "rb") as src, open(out, "wb") as dst:
        copy_range(src, dst, 0, first)  # the header: log attributes, extensions, globals
        copy_range(src, dst, start, end - start)
        dst.write(b"</log>\n")


def claim(folder: Path, index: int) -> bool:
    """Take run ``index`` for this process: True for exactly one of the processes that ask."""
    try:
        os.close(os.open(folder / f"claim{index}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def main(argv: list[str]) -> int:
    log, first, folder = argv[0], int(argv[1]), Path(argv[2])
    runs = json.loads((folder / "plan.json").read_text())
    import pyarrow as pa
    import rustxes

    from processlens.procinfo import peak_rss_kb

    for i, (start, end) in enumerate(runs):
        if (folder / "stop").exists():
            break
        if not claim(folder, i):
            continue
        part = folder / f"run{i}-worker.xes"
        write_run(log, first, start, end, part)
        table = rustxes.import_xes(str(part))[0].to_arrow()
        part.unlink()
        out = folder / f"part{i}.arrow"
        with pa.OSFile(str(out) + ".tmp", "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(str(out) + ".tmp", out)  # complete or absent
        del table
    peak = folder / f"peak{os.getpid()}"
    peak.write_text(str(peak_rss_kb()))  # for benchmarks: this worker's peak memory
    return 0


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except BaseException as exc:  # rustxes panics are BaseExceptions; the caller falls back
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)
