"""Worker of the parallel XES reader: parse one run of whole traces of a log into an Arrow file.

    python -m ingest.sources.xes_part LOG FIRST_TRACE START END OUT

writes the log's header (everything before its first trace), the bytes START..END (whole traces)
and the closing tag to a temporary .xes beside OUT, parses it with rustxes and writes the events
to OUT (Arrow IPC). Exits non-zero on any failure; the caller then parses the log whole.
"""

from __future__ import annotations

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


def main(argv: list[str]) -> int:
    log, first, start, end, out = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), Path(argv[4])
    part = out.with_suffix(".xes")
    with open(log, "rb") as src, open(part, "wb") as dst:
        copy_range(src, dst, 0, first)  # the header: log attributes, extensions, globals
        copy_range(src, dst, start, end - start)
        dst.write(b"</log>\n")
    import pyarrow as pa
    import rustxes

    from processlens.procinfo import peak_rss_kb

    table = rustxes.import_xes(str(part))[0].to_arrow()
    part.unlink()
    with pa.OSFile(str(out), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    out.with_suffix(".peak").write_text(str(peak_rss_kb()))  # for benchmarks: this worker's peak memory
    return 0


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except BaseException as exc:  # rustxes panics are BaseExceptions; the caller falls back
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)
