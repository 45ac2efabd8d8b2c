"""The demo's rules end to end: a fresh demo store, ``processlens coordinator run --once`` as a real
process, and a real receiver. Expected cases come from the generator's ground truth (truth.json)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from receiver import Receiver

SECRET = "demo-secret"
CLI = [sys.executable, "-c", "from processlens.cli import main; main()"]
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    from ingest.jobs import run_jobs
    from processlens.config import load_settings
    from processlens.demo.world import build_world

    root = tmp_path_factory.mktemp("demo")
    world = build_world(root / "world", cases=300, seed=11, now=NOW)
    db = root / "demo.duckdb"
    results = run_jobs(load_settings(db=db, config=world.config_path), progress=False)
    assert all(r.status == "succeeded" for r in results), [r.error for r in results]
    truth = json.loads((world.dir / "truth.json").read_text())
    return db, world.config_path, truth


def run_once(db: Path, config: Path, url: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROCESSLENS_WEBHOOK_SECRET": SECRET}
    env.pop("PROCESSLENS_DEMO_WEBHOOK", None)
    if url:
        env["PROCESSLENS_DEMO_WEBHOOK"] = url
    return subprocess.run([*CLI, "--db", str(db), "--config", str(config), "coordinator", "run", "--once", "--json"],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_demo_rules_send_one_signed_request_per_stuck_case_and_unhandled_exception(demo_store):
    db, config, truth = demo_store
    stuck = {c for c, t in truth.items() if t["stuck"]}
    unhandled = {c for c, t in truth.items() if t["unhandled_exception"]}
    assert stuck and unhandled, "the demo world should contain both"
    with Receiver() as r:
        p = run_once(db, config, None)  # without the target the rules are not ready and nothing is sent
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        assert all("PROCESSLENS_DEMO_WEBHOOK" in x["skipped_reason"] for x in out["evaluation"]["rules"])
        assert r.requests == []

        p = run_once(db, config, r.url + "/hook")
        assert p.returncode == 0, p.stderr
        got = r.succeeded()
        assert len(got) == len(r.requests) == len(stuck) + len(unhandled)
        for req in got:
            assert req.headers["x-processlens-signature"] == "sha256=" + hmac.new(
                SECRET.encode(), req.body, hashlib.sha256).hexdigest()
        by_kind: dict[str, list[str]] = {"stuck": [], "unhandled_exception": []}
        for req in got:
            by_kind[req.json["kind"]].append(req.json["case_id"])
        assert sorted(by_kind["stuck"]) == sorted(stuck)  # one each, no duplicates
        assert sorted(by_kind["unhandled_exception"]) == sorted(unhandled)
        exc = {req.json["case_id"]: req.json for req in got if req.json["kind"] == "unhandled_exception"}
        assert all(exc[c]["type"] == truth[c]["unhandled_exception"] for c in exc)

        esc = [req.json for req in got if req.json["kind"] == "stuck"]
        assert all(e["action"] == "escalate" and e["owner"] and "case?case_id=" in e["link"] for e in esc)
        check_escalations(db, truth)

        p = run_once(db, config, r.url + "/hook")  # second run: cool-down
        assert p.returncode == 0, p.stderr
        assert len(r.requests) == len(got)
        second = json.loads(p.stdout)["evaluation"]["rules"]
        assert sum(x["created"] for x in second) == 0
        assert all(x["cooldown"] == x["matched"] for x in second)  # whatever still matches is in cool-down
        assert sum(x["cooldown"] for x in second) >= len(unhandled)
        # the action events are not process steps: the escalated cases are still stuck, at the same step
        still = [x for x in second if x["rule"] == "escalate_stuck"] if "rule" in second[0] else second
        assert sum(x["matched"] for x in still) >= len(stuck)
        check_still_stuck(db, config, truth)


def check_still_stuck(db: Path, config: Path, truth: dict) -> None:
    """After the escalations became events of their cases, conformance still sees the same stuck cases."""
    import models
    from ingest.store import open_store
    from processlens.config import load_settings

    settings = load_settings(db=db, config=config)
    model = models.model_from_settings(settings)
    now = datetime.fromisoformat(json.loads((Path(config).parent / "world.json").read_text())["now"].replace("Z", "+00:00"))
    with open_store(db, read_only=True) as con:
        found = models.stuck(con, model, now=now)
    found = found[found["stuck"]] if "stuck" in found.columns else found
    assert dict(zip(found["case_id"], found["step"], strict=True)) == {
        c: t["stuck_at"] for c, t in truth.items() if t["stuck"]}


def check_escalations(db: Path, truth: dict) -> None:
    """Each escalation went once, to the owner's escalation contact, and is an event of its case."""
    from coordinator import list_actions
    from ingest.store import open_store

    with open_store(db, read_only=True) as con:
        acts = list_actions(con, rule="escalate_stuck")
        events = con.execute("SELECT count(*) FROM event_log WHERE source = 'processlens' AND activity = 'Action: escalate'"
                             ).fetchone()[0]
    assert len(acts) and set(acts["status"]) == {"delivered"} and set(acts["attempts"]) == {1}
    assert events == len(acts)
    for one in acts.head(20).to_dict(orient="records"):
        details = json.loads(one["details"]) if isinstance(one["details"], str) else one["details"]
        assert truth[one["case_id"]]["stuck_at"] == one["step"]
        assert details["owner"], "the escalation names the owner of the step"
        assert details["values"]["contact_email"].endswith("-lead@example.com")  # the owner's escalation contact
