"""The command line: every command answers --help, every command is documented, docs/cli.md is
current, and `ingest file` prints a summary, JSON and clear errors (no tracebacks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from processlens.cli import cli
from processlens.cli.docs import render, walk

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [path for path, _cmd in walk(cli)]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "processlens")
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert (cli if not path else _command(path)).help, f"{' '.join(path)} has no help text"


def _command(path):
    cmd = cli
    for name in path:
        cmd = cmd.commands[name]
    return cmd


def test_every_command_is_documented():
    docs = (ROOT / "README.md").read_text(encoding="utf-8") + (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = [" ".join(("processlens", *p)) for p in COMMANDS if p and " ".join(("processlens", *p)) not in docs]
    assert not missing, f"undocumented commands: {missing}"


def test_cli_reference_is_up_to_date():
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == render(cli), "docs/cli.md is stale: run  python -m processlens.cli.docs > docs/cli.md"


def run(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from processlens.cli import main; main()", "--db", str(db), *args],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def log_csv(tmp_path: Path) -> Path:
    path = tmp_path / "orders.csv"
    path.write_text("Order Number;Step;Completed At;Who\nNA;Create;2024-01-01 10:00:00;ann\nNA;Ship;2024-01-02 10:00:00;bob\n"
                    "7;Create;2024-01-01 11:00:00;ann\n7;Ship;yesterday;bob\n", encoding="utf-8")
    return path


def test_ingest_file_text_summary(tmp_path, log_csv):
    res = run(tmp_path / "s.duckdb", "ingest", "file", str(log_csv), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "case='Order Number'*" in res.stdout and "timestamp='Completed At'*" in res.stdout
    assert "read 4, loaded 3, rejected 1, duplicates skipped 0" in res.stdout
    assert "processlens ingest rejects" in res.stdout


def test_ingest_file_json_and_rejects_and_stats(tmp_path, log_csv):
    db = tmp_path / "s.duckdb"
    res = run(db, "ingest", "file", str(log_csv), "--json", "--timezone", "Europe/Amsterdam", "--source", "ERP")
    data = json.loads(res.stdout)
    assert data["mapping"] == {"case": "Order Number", "activity": "Step", "timestamp": "Completed At",
                               "resource": "Who", "timezone": "Europe/Amsterdam"}
    assert (data["rows_read"], data["rows_loaded"], data["rows_rejected"]) == (4, 3, 1)
    assert res.stderr == ""  # no progress bar with --json
    rejects = json.loads(run(db, "ingest", "rejects", "--json").stdout)
    assert [(r["line"], r["field"]) for r in rejects] == [(5, "Completed At")]
    stats = json.loads(run(db, "stats", "--json").stdout)
    assert (stats["cases"], stats["events"], stats["activities"]) == (2, 3, 2)
    assert stats["sources"]["ERP"]["last_event"] == "2024-01-02T09:00:00Z"
    runs = json.loads(run(db, "ingest", "runs", "--json").stdout)
    assert runs[0]["rows_loaded"] == 3 and runs[0]["status"] == "succeeded"


def test_ingest_file_error_is_a_message_not_a_traceback(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    res = run(tmp_path / "s.duckdb", "ingest", "file", str(empty))
    assert res.returncode == 2
    assert "Error:" in res.stderr and "empty.csv" in res.stderr and "what to do:" in res.stderr
    assert "Traceback" not in res.stderr
    res = run(tmp_path / "s.duckdb", "ingest", "file", str(empty), "--json")
    err = json.loads(res.stdout)
    assert err["error"] == "SourceError" and err["where"]["file"].endswith("empty.csv") and err["hint"]


def test_progress_bar_on_request(tmp_path, log_csv):
    res = run(tmp_path / "s.duckdb", "ingest", "file", str(log_csv), "--progress")
    assert res.returncode == 0
    assert "importing orders.csv" in res.stderr
