"""Measuring helpers shared by the benchmarks.

Peak memory is the peak resident set size (RSS) of a separate child process, read from the
kernel's resource usage of that child (``os.wait4``): each measured tool runs alone in a fresh
interpreter, so one tool's memory never counts against another's.

    m = run_measured([sys.executable, "-m", "bench.bench_ingest", "--child", ...])
    m.seconds, m.peak_rss_mb, m.result      # result: the JSON the child printed last
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Measurement:
    """One child run: wall seconds of the whole process, its peak RSS and its JSON result."""

    seconds: float
    peak_rss_mb: float
    returncode: int
    result: dict[str, Any] = field(default_factory=dict)
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_measured(argv: Sequence[str], timeout: float = 1800, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None) -> Measurement:
    """Run ``argv`` as a child process; return its wall time, peak RSS (MB) and last JSON line.

    The peak RSS is what the child reports of itself with ``child_report`` (``VmHWM``), else the
    kernel's ``ru_maxrss`` of that child (``os.wait4``), which includes the driver's size at fork.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, cwd=cwd or ROOT)
    chunks: dict[str, list[str]] = {"out": [], "err": []}
    readers = [threading.Thread(target=lambda s=s, k=k: chunks[k].append(s.read()), daemon=True)
               for s, k in ((proc.stdout, "out"), (proc.stderr, "err"))]
    for r in readers:
        r.start()
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    for r in readers:
        r.join()
    out, err = "".join(chunks["out"]), "".join(chunks["err"])
    result = _last_json(out)
    # the child's own report (VmHWM) when it gives one; the kernel's ru_maxrss includes the driver's
    # memory at fork time (see peak_rss_kb)
    own = result.pop("_peak_rss_kb", None)
    peak_kb = own if own else usage.ru_maxrss
    return Measurement(seconds=seconds, peak_rss_mb=peak_kb / 1024, returncode=proc.returncode,
                       result=result, stderr=err[-4000:])


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return {}


def peak_rss_kb() -> int:
    """Peak RSS of this process so far, in KiB (``VmHWM``; see processlens.procinfo)."""
    from processlens.procinfo import peak_rss_kb as own_peak

    return own_peak()


def child_report(**result: Any) -> None:
    """Print the child's result as the last JSON line, with this process's peak RSS."""
    result["_peak_rss_kb"] = peak_rss_kb()
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def timer() -> Iterator[dict[str, float]]:
    """``with timer() as t: ...`` then ``t["seconds"]``."""
    box: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - start


def parse_size(text: str) -> int:
    """'100k' -> 100_000, '1M' -> 1_000_000, '2500' -> 2500."""
    text = text.strip().lower().replace("_", "")
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


def human_size(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; numbers are right-aligned."""
    def cell(v: Any) -> str:
        return "" if v is None else str(v).replace("|", "\\|")

    numeric = [all(isinstance(r[i], int | float) or r[i] in (None, "") for r in rows) if rows else False
               for i in range(len(headers))]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def write_section(part: str, body: str) -> Path:
    """Write ``docs/perf/<part>.md`` (assembled into docs/performance.md by bench.assemble)."""
    path = ROOT / "docs" / "perf" / f"{part}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body.rstrip() + "\n", encoding="utf-8")
    return path
