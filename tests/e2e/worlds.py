"""Stores the dashboard tests run against: the demo world, a real log, an empty store.

Built once per test session with the real commands (``processlens demo``, ``processlens ingest
file``), cached under pytest's base temp folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: A fixed clock so the demo world (and what the dashboard shows) is the same on every run.
DEMO_NOW = "2026-01-15T12:00:00Z"


def run_cli(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run([sys.executable, "-c", "from processlens.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"processlens {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def demo_store(base: Path, cases: int = 300, days: int = 45) -> tuple[Path, Path]:
    """(store, config) of a small demo world, built once under ``base``."""
    folder = base / f"demo-{cases}-{days}"
    db, world = folder / "demo.duckdb", folder / "world"
    config = world / "processlens.toml"
    if not (folder / "done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        out = run_cli("--db", str(db), "demo", "--cases", str(cases), "--days", str(days), "--dir", str(world),
                      "--now", DEMO_NOW, "--no-dashboard", "--json")
        (folder / "demo.json").write_text(out)
        (folder / "done").write_text("ok")
    return db, config


def demo_info(db: Path) -> dict:
    return json.loads((db.parent / "demo.json").read_text())


def file_store(base: Path, log: Path) -> Path:
    """A store holding one real log imported with ``processlens ingest file``."""
    folder = base / f"log-{log.name}"
    db = folder / "store.duckdb"
    if not (folder / "done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        run_cli("--db", str(db), "ingest", "file", str(log), "--json")
        (folder / "done").write_text("ok")
    return db
