"""Model validation (soundness, connectedness, log activities) and the CLI commands."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "data" / "demo" / "model"
HAPPY = ["Create Order", "Check Credit", "Approve Order", "Pick Goods", "Pack Goods", "Ship Goods", "Create Invoice",
         "Payment Received", "Close Order"]


def test_unsound_text_model_is_reported(tmp_path: Path) -> None:
    from models import load_model
    from models.validate import validate

    path = tmp_path / "m.txt"
    path.write_text("A -> B + C\nB -> D\nC -> D\nfinal D\n")  # parallel split merged as a choice
    report = validate(load_model(path))
    assert not report["valid"]
    assert any("not sound" in i["message"] for i in report["issues"])
    path.write_text("A -> B + C\nB + C -> D\nfinal D\n")
    assert validate(load_model(path))["valid"]


def test_disconnected_bpmn_task_is_named(tmp_path: Path) -> None:
    from models import load_model
    from models.validate import validate

    src = (MODEL_DIR / "order_to_cash.bpmn").read_text()
    src = src.replace('<bpmn:endEvent id="EndEvent_Rejected"',
                      '<bpmn:task id="Task_Orphan" name="Archive Order" />\n    <bpmn:endEvent id="EndEvent_Rejected"')
    (tmp_path / "m.bpmn").write_text(src)
    report = validate(load_model(tmp_path / "m.bpmn", MODEL_DIR / "order_to_cash.toml"))
    assert not report["valid"]
    assert any("Archive Order" in i["message"] and "cannot be reached" in i["message"] for i in report["issues"])


def test_demo_model_is_valid() -> None:
    from models import load_model
    from models.validate import validate

    for name in ("order_to_cash.bpmn", "order_to_cash.txt"):
        report = validate(load_model(MODEL_DIR / name))
        assert report["valid"], report["issues"]


def _csv(path: Path, cases: dict[str, list[str]]) -> Path:
    t0 = datetime(2026, 2, 2, 9)
    rows = [(cid, a, (t0 + timedelta(days=i, hours=j)).isoformat())
            for i, (cid, acts) in enumerate(cases.items()) for j, a in enumerate(acts)]
    pd.DataFrame(rows, columns=["case", "activity", "timestamp"]).to_csv(path, index=False)
    return path


def test_log_activities_without_task_get_suggestions(store, tmp_path: Path) -> None:
    from ingest.api import ingest_file
    from models import load_model
    from models.validate import validate

    acts = [a if a != "Check Credit" else "Check credit limit" for a in HAPPY]
    ingest_file(store, _csv(tmp_path / "l.csv", {"1": acts}), case="case", activity="activity", timestamp="timestamp",
                progress=False)
    report = validate(load_model(MODEL_DIR / "order_to_cash.bpmn"), store)
    task_issue = next(i for i in report["issues"] if i["where"].get("task") == "Check Credit")
    assert "Check credit limit" in task_issue["hint"]
    act_issue = next(i for i in report["issues"] if i["where"].get("activity") == "Check credit limit")
    assert "Check Credit" in act_issue["hint"]


@pytest.fixture
def cli_env(tmp_path: Path):
    """A store with a few cases and a processlens.toml whose [models] points at the demo model."""
    from ingest.api import ingest_file
    from ingest.store import open_store

    db = tmp_path / "s.duckdb"
    with open_store(db) as con:
        ingest_file(con, _csv(tmp_path / "l.csv", {"ok": HAPPY, "skip": ["Create Order"] + HAPPY[2:],
                                                   "open": HAPPY[:2],
                                                   "exc": HAPPY[:5] + ["Address Invalid", "Ship Goods"] + HAPPY[6:]}),
                    case="case", activity="activity", timestamp="timestamp", progress=False)
    cfg = tmp_path / "processlens.toml"
    cfg.write_text(f'[models]\ndefault = "o2c"\n[models.o2c]\npath = "{MODEL_DIR / "order_to_cash.bpmn"}"\n'
                   f'annotations = "{MODEL_DIR / "order_to_cash.toml"}"\n')
    return ["--db", str(db), "--config", str(cfg)]


def _run(args: list[str]) -> dict:
    from processlens.cli import cli

    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_cli_check_stuck_exceptions(cli_env) -> None:
    import pm4py

    data = _run(cli_env + ["check", "--json"])
    assert data["cases"] == 4 and data["model"] == "o2c" and data["model_version"] == 1
    from models import load_model

    m = load_model(MODEL_DIR / "order_to_cash.bpmn")
    t0 = datetime(2026, 2, 2, 9)
    cases = {"ok": HAPPY, "skip": ["Create Order"] + HAPPY[2:], "open": HAPPY[:2],
             "exc": HAPPY[:5] + ["Address Invalid", "Ship Goods"] + HAPPY[6:]}
    df = pd.DataFrame([(cid, a, t0 + timedelta(days=i, hours=j)) for i, (cid, acts) in enumerate(cases.items())
                       for j, a in enumerate(acts)], columns=["case:concept:name", "concept:name", "time:timestamp"])
    assert data["log_fitness"] == pytest.approx(pm4py.fitness_token_based_replay(df, m.net, m.im, m.fm)["log_fitness"])
    assert data["fitting_cases"] == 1
    assert {(d["type"], d["step"]) for d in data["deviations"]} >= {("skipped step", "Check Credit")}
    al = _run(cli_env + ["check", "--method", "alignments", "--no-precision", "--json"])
    assert al["log_fitness"] == pytest.approx(pm4py.fitness_alignments(df, m.net, m.im, m.fm)["log_fitness"])
    st = _run(cli_env + ["stuck", "--now", "2026-03-01T00:00:00Z", "--json"])
    assert [c["case_id"] for c in st["stuck"]] == ["open"] and st["stuck"][0]["step"] == "Approve Order"
    ex = _run(cli_env + ["exceptions", "--unhandled", "--kind", "exception event", "--json"])
    assert [(e["case_id"], e["type"], e["handled"]) for e in ex["exceptions"]] == [("exc", "Address Invalid", False)]
    listing = _run(cli_env + ["model", "list", "--json"])
    assert listing["default"] == "o2c" and listing["versions"][0]["version"] == 1


def test_cli_model_validate_and_errors(cli_env, tmp_path: Path) -> None:
    from processlens.cli import cli

    ok = _run(cli_env + ["model", "validate", str(MODEL_DIR / "order_to_cash.txt"), "--json"])
    assert ok["valid"]
    bad = tmp_path / "bad.txt"
    bad.write_text("A -> B + C\nB -> D\nC -> D\n")
    res = CliRunner().invoke(cli, ["model", "validate", str(bad)])
    assert res.exit_code == 1 and "not sound" in res.output
    import subprocess

    proc = subprocess.run(["processlens", *cli_env, "check", "--model", str(tmp_path / "nope.bpmn"), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"] == "ModelError"
    assert "nope.bpmn" in json.loads(proc.stdout)["message"]
    for cmd in (["check"], ["stuck"], ["exceptions"], ["model"], ["model", "validate"], ["model", "list"]):
        assert CliRunner().invoke(cli, cmd + ["--help"]).exit_code == 0
