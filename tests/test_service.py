"""The service runs the coordinator loop beside the dashboard, and stops it with the dashboard."""

from __future__ import annotations

import subprocess
import sys

from processlens.config import load_settings
from processlens.service import coordinator_command, has_rules, start_coordinator, stop


def test_python_dash_m_processlens_is_the_command():
    out = subprocess.run([sys.executable, "-m", "processlens", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "coordinator" in out.stdout


def test_no_rules_no_coordinator(tmp_path):
    settings = load_settings(db=tmp_path / "s.duckdb", config=_config(tmp_path, rules=False))
    assert not has_rules(settings) and start_coordinator(settings) is None


def test_the_loop_starts_with_the_settings_and_stops_on_request(tmp_path):
    settings = load_settings(db=tmp_path / "s.duckdb", config=_config(tmp_path, rules=True))
    cmd = coordinator_command(settings)
    assert cmd[-2:] == ["coordinator", "run"] and str(settings.db_path) in cmd and str(settings.config_path) in cmd
    from coordinator import load_rules

    assert [r.name for r in load_rules(settings)] == ["notify_stuck"]  # a valid rule: the loop has work to run
    child = start_coordinator(settings)
    assert child is not None
    try:
        try:
            child.wait(timeout=8)  # a loop that dies on start-up (bad config, import error) shows here
        except subprocess.TimeoutExpired:
            pass
        assert child.poll() is None, "the coordinator loop exited instead of running"
    finally:
        stop(child, timeout=60)
    assert child.returncode is not None


def _config(tmp_path, rules: bool):
    path = tmp_path / "processlens.toml"
    text = ""
    if rules:
        text = """
[coordinator]
interval = "1s"
allowlist = ["127.0.0.1"]

[rules.notify_stuck]
when = "stuck"
do = "webhook"
mode = "automatic"
[rules.notify_stuck.target]
url = "http://127.0.0.1:9/hook"
"""
    path.write_text(text)
    return path
