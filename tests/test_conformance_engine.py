"""Conformance engine on hand-built logs against the demo model: deviations in business terms,
their throughput impact, the per-variant cache, time limits and model versions."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "data" / "demo" / "model" / "order_to_cash.bpmn"
HAPPY = ["Create Order", "Check Credit", "Approve Order", "Pick Goods", "Pack Goods", "Ship Goods", "Create Invoice",
         "Payment Received", "Close Order"]
T0 = datetime(2026, 3, 2, 8, 0)


def write_log(path: Path, cases: dict[str, list[str]], step_hours: dict[str, float] | None = None) -> Path:
    """A CSV log: each case's events one hour apart (or ``step_hours[case]`` apart), cases a day apart."""
    rows = []
    for i, (cid, acts) in enumerate(cases.items()):
        gap = (step_hours or {}).get(cid, 1.0)
        for j, a in enumerate(acts):
            rows.append({"case": cid, "activity": a, "timestamp": (T0 + timedelta(days=i, hours=j * gap)).isoformat()})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def ingest(con, path: Path) -> None:
    from ingest.api import ingest_file

    ingest_file(con, path, case="case", activity="activity", timestamp="timestamp", progress=False)


@pytest.fixture
def model():
    from models import load_model

    return load_model(MODEL)


def _devs(res, case_id):
    return sorted((d["type"], d["step"]) for d in res.cases_df.set_index("case_id").loc[case_id, "deviations"])


def test_deviations_in_business_terms(store, tmp_path, model) -> None:
    from models import check

    cases = {
        "ok": HAPPY,
        "skip": ["Create Order", "Approve Order"] + HAPPY[3:],
        "dup": HAPPY[:7] + ["Create Invoice"] + HAPPY[7:],
        "order": HAPPY[:5] + ["Create Invoice", "Ship Goods"] + HAPPY[7:],
        "extra": HAPPY[:4] + ["Gift Wrap"] + HAPPY[4:],
        "recheck": HAPPY[:2] + ["Check Credit"] + HAPPY[2:],   # allowlisted in the annotations
        "running": HAPPY[:4],                                     # open: nothing is missing yet
    }
    ingest(store, write_log(tmp_path / "log.csv", cases))
    res = check(store, model, precision=False)
    assert _devs(res, "ok") == [] and _devs(res, "running") == []
    assert _devs(res, "skip") == [("skipped step", "Check Credit")]
    assert _devs(res, "dup") == [("repeated step", "Create Invoice")]
    assert len(_devs(res, "order")) == 1 and _devs(res, "order")[0][0] == "wrong order"
    assert _devs(res, "extra") == [("unexpected step", "Gift Wrap")]
    assert _devs(res, "recheck") == [("repeated step", "Check Credit")]
    by_case = res.cases_df.set_index("case_id")
    assert by_case.loc["recheck", "deviations"][0]["allowed"] and by_case.loc["recheck", "conforming"]
    assert not by_case.loc["skip", "conforming"]
    skip = next(d for d in res.deviations if d["type"] == "skipped step")
    assert skip["where"] == "after Create Order" and skip["owner"] == "Finance"
    # as in pm4py, token replay passes over activities the model does not know: "extra" fits
    assert res.cases == 7 and res.fitting_cases == 2
    assert not by_case.loc["extra", "conforming"] and by_case.loc["ok", "conforming"]


def test_throughput_impact_with_vs_without(store, tmp_path, model) -> None:
    from models import check

    cases = {"a": HAPPY, "b": HAPPY, "c": ["Create Order", "Approve Order"] + HAPPY[3:], "d": ["Create Order"] + HAPPY[2:]}
    ingest(store, write_log(tmp_path / "log.csv", cases, step_hours={"a": 1, "b": 3, "c": 10, "d": 4}))
    res = check(store, model, precision=False)
    row = next(d for d in res.deviations if d["type"] == "skipped step" and d["step"] == "Check Credit")
    tp = {"a": 8 * 3600, "b": 8 * 3 * 3600, "c": 7 * 10 * 3600, "d": 7 * 4 * 3600}  # (events - 1) x gap
    assert row["cases"] == 2 and row["share"] == 0.5
    assert row["throughput_with_seconds"] == pytest.approx((tp["c"] + tp["d"]) / 2)
    assert row["throughput_without_seconds"] == pytest.approx((tp["a"] + tp["b"]) / 2)
    assert row["impact_seconds"] == pytest.approx((tp["c"] + tp["d"]) / 2 - (tp["a"] + tp["b"]) / 2)


def test_new_ingest_computes_only_new_variants(db_path, tmp_path, model) -> None:
    from ingest.store import open_store
    from models import check, load_model

    first = {"c1": HAPPY, "c2": HAPPY, "c3": ["Create Order", "Check Credit", "Reject Order"]}
    second = {"c4": HAPPY, "c5": HAPPY[:7] + ["Create Invoice"] + HAPPY[7:], "c6": ["Create Order", "Approve Order"] + HAPPY[3:]}
    with open_store(db_path) as con:
        ingest(con, write_log(tmp_path / "one.csv", first))
        r1 = check(con, model, precision=False)
        assert (r1.variants, r1.variants_computed) == (2, 2)
        ingest(con, write_log(tmp_path / "two.csv", second))
        r2 = check(con, load_model(MODEL), precision=False)  # a fresh load of the same file: same version
        assert r2.model_version == r1.model_version
        assert (r2.variants, r2.variants_computed, r2.variants_cached) == (4, 2, 2)
        again = check(con, model, precision=False)
        assert again.variants_computed == 0
        runs = con.execute("SELECT model_id, variants_computed FROM conformance_runs ORDER BY run_id").fetchall()
        assert [r[1] for r in runs] == [2, 2, 0] and len({r[0] for r in runs}) == 1
    # the cached result equals a computation from scratch on a fresh store
    with open_store(tmp_path / "fresh.duckdb") as con:
        ingest(con, write_log(tmp_path / "all.csv", {**first, **second}))
        fresh = check(con, load_model(MODEL), precision=False)
    assert fresh.log_fitness == pytest.approx(r2.log_fitness, abs=1e-15)
    merged = fresh.cases_df.merge(r2.cases_df, on="case_id")
    assert (merged["fitness_x"] == merged["fitness_y"]).all() and len(merged) == 6


def test_alignments_over_the_time_limit_are_reported_not_dropped(store, tmp_path, model) -> None:
    from models import check

    ingest(store, write_log(tmp_path / "log.csv", {"a": HAPPY, "b": ["Create Order", "Approve Order"] + HAPPY[3:]}))
    res = check(store, model, "alignments", time_limit=0.0, precision=False)
    assert len(res.not_computed) == 2 and sum(v["cases"] for v in res.not_computed) == 2
    assert res.cases == 2 and res.cases_computed == 0 and res.fitting_cases == 0
    assert res.cases_df["fitness"].isna().all()
    assert "time limit" in res.not_computed[0]["reason"] or "limit" in res.not_computed[0]["reason"]
    ok = check(store, model, "alignments", time_limit=30.0, precision=False)
    assert not ok.not_computed and ok.cases == 2  # not-computed variants are retried, not cached as final


def test_model_versions_follow_content(store, tmp_path) -> None:
    from models import check, list_models, load_model, register_model

    src = MODEL.read_text()
    (tmp_path / "m.bpmn").write_text(src)
    (tmp_path / "m.toml").write_text('[model]\nname = "o2c"\n')
    m1 = load_model(tmp_path / "m.bpmn")
    assert register_model(store, m1) == 1
    assert register_model(store, load_model(tmp_path / "m.bpmn")) == 1
    (tmp_path / "m.toml").write_text('[model]\nname = "o2c"\nignore = ["Open Ticket"]\n')
    m2 = load_model(tmp_path / "m.bpmn")
    assert register_model(store, m2) == 2
    ingest(store, write_log(tmp_path / "log.csv", {"a": HAPPY}))
    res = check(store, m2, precision=False)
    assert res.model_version == 2 and res.to_dict()["model_version"] == 2
    versions = list_models(store)
    assert list(versions["version"]) == [1, 2] and versions["last_log_fitness"].iloc[1] == 1.0
