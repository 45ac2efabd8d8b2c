"""Assemble docs/performance.md from the per-part tables in docs/perf/*.md.

Each benchmark writes its own section (ingest, analytics, conformance, dispatch, dashboard);
this script puts them under one page with the machine they were measured on:

    python -m bench.assemble
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["summary", "ingest", "analytics", "conformance", "dispatch", "dashboard"]


def machine() -> str:
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def demote(text: str, top: int = 2) -> str:
    """Shift a section's headings so its highest one is at level ``top`` (code blocks left alone)."""
    lines = text.splitlines()
    fenced = False
    levels = []
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            levels.append(len(line) - len(line.lstrip("#")))
    if not levels:
        return text
    shift = top - min(levels)
    out, fenced = [], False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#") and shift > 0:
            line = "#" * shift + line
        out.append(line)
    return "\n".join(out)


def assemble() -> str:
    parts = {p.stem: p.read_text(encoding="utf-8").strip() for p in (ROOT / "docs" / "perf").glob("*.md")}
    names = [n for n in ORDER if n in parts] + sorted(n for n in parts if n not in ORDER)
    out = [
        "# Performance",
        "",
        "Measured by the benchmarks in `bench/`, each comparing processlens with pm4py on the same data in the",
        f"same run. Machine: {machine()}. Tests never assert timings; these tables are the record.",
        "Regenerate a section with its benchmark (`python -m bench.bench_<part> --help`), then `python -m bench.assemble`.",
        "",
    ]
    for name in names:
        out += [demote(parts[name]), ""]
    if not names:
        out.append("No benchmark has been run yet.")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    target = ROOT / "docs" / "performance.md"
    target.write_text(assemble(), encoding="utf-8")
    print(f"wrote {target}")
