"""On the demo world, stuck cases and unhandled exceptions equal the generator's injected labels.

The definitions both sides follow are in docs/decisions.md ("Definitions shared by the generator
(truth) and the conformance engine"); the engine gets only the store, the shipped model and "now".
"""

from __future__ import annotations

from pathlib import Path

import pytest

SEEDS = [11, 12, 13]


def _world(tmp_path: Path, seed: int):
    from ingest.jobs import run_jobs
    from processlens.config import load_settings
    from processlens.demo.world import build_world

    world = build_world(tmp_path / "world", cases=400, seed=seed, days=40)
    settings = load_settings(config=world.config_path, db=tmp_path / "store.duckdb")
    run_jobs(settings)
    return world, settings


def _precision_recall(found: set, truth: set) -> tuple[float, float]:
    tp = len(found & truth)
    return (tp / len(found) if found else 1.0), (tp / len(truth) if truth else 1.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_stuck_and_unhandled_equal_injected_labels(tmp_path: Path, seed: int) -> None:
    from ingest.store import open_store
    from models import exceptions, model_from_settings, stuck

    world, settings = _world(tmp_path, seed)
    now = world.now.replace(tzinfo=None)
    truth = world.truth
    model = model_from_settings(settings)
    with open_store(settings.db_path, read_only=True) as con:
        st = stuck(con, model, now=now)
        exc = exceptions(con, model, now=now, deviations=False)

    true_stuck = {c for c, v in truth.items() if v["stuck"]}
    found_stuck = set(st["case_id"])
    assert true_stuck, "the world should contain stuck cases"
    assert _precision_recall(found_stuck, true_stuck) == (1.0, 1.0), (
        f"false positives {sorted(found_stuck - true_stuck)[:5]}, missed {sorted(true_stuck - found_stuck)[:5]}")
    steps = dict(zip(st["case_id"], st["step"], strict=True))
    assert {c: truth[c]["stuck_at"] for c in true_stuck} == {c: steps[c] for c in true_stuck}
    assert st["reasons"].str.contains("waiting").all()

    true_unhandled = {c: v["unhandled_exception"] for c, v in truth.items() if v["unhandled_exception"]}
    events = exc[(exc["kind"] == "exception event") & ~exc["handled"].astype(bool)]
    first = events.groupby("case_id", sort=False)["type"].first().to_dict()
    assert _precision_recall(set(first), set(true_unhandled)) == (1.0, 1.0), (
        f"false positives {sorted(set(first) - set(true_unhandled))[:5]}, missed {sorted(set(true_unhandled) - set(first))[:5]}")
    assert first == true_unhandled
    assert events["owner"].isin(["Warehouse", "Finance"]).all()


def test_injected_deviations_are_found(tmp_path: Path) -> None:
    """Every case with an injected deviation is reported as deviating, with the matching type."""
    from ingest.store import open_store
    from models import check, model_from_settings

    world, settings = _world(tmp_path, 21)
    model = model_from_settings(settings)
    with open_store(settings.db_path) as con:
        res = check(con, model, precision=False)
    devs = dict(zip(res.cases_df["case_id"], res.cases_df["deviations"], strict=True))
    expected = {"skipped_credit_check": ("skipped step", "Check Credit"), "duplicate_invoice": ("repeated step", "Create Invoice"),
                "rework_loop": ("repeated step", "Pick Goods"), "wrong_order": ("wrong order", None)}
    injected = [(c, d) for c, v in world.truth.items() for d in v["deviations"]]
    assert injected
    for case_id, name in injected:
        kinds = {(d["type"], d["step"]) for d in devs[case_id]}
        want_type, want_step = expected[name]
        assert any(t == want_type and (want_step is None or s == want_step) for t, s in kinds), (case_id, name, kinds)
    clean = [c for c, v in world.truth.items() if not v["deviations"] and not v["unhandled_exception"]]
    assert all(not devs[c] for c in clean)
