"""The code base stays clean under ruff (configured in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    if shutil.which("ruff") is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' installs it)")
    proc = subprocess.run(["ruff", "check", "--output-format", "concise", str(ROOT)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pm4py_stays_behind_our_module_boundary():
    """pm4py is imported only by analytics' bridge, models/, and the ingest readers that mirror it."""
    allowed = {"analytics/pm4py_bridge.py", "ingest/sources/ocel_file.py"}
    offenders = []
    for path in ROOT.glob("*/**/*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("tests/", "bench/", "models/", "build/")) or rel in allowed:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "import pm4py" in text or "from pm4py" in text:
            offenders.append(rel)
    assert not offenders, f"pm4py imported outside its boundary: {offenders}"
