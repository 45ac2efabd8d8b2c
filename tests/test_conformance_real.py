"""Fitness equals pm4py's on the real public logs with their models; per-case results equal
pm4py's per-trace diagnostics (our per-variant computation expanded back to cases)."""

from __future__ import annotations

import os
import warnings

import pandas as pd
import pytest

from tests.conftest import real_log

warnings.filterwarnings("ignore")

CASES = [
    ("pm4py-running-example/running-example.xes", "pm4py-running-example/running-example.bpmn"),
    ("pm4py-running-example/running-example.xes", "pm4py-running-example/running-example.pnml"),
    ("road-traffic-fines/roadtraffic100traces.xes", "road-traffic-fines/roadtraffic.pnml"),
    ("receipt/08_receipt.xes.gz", "receipt/receipt.bpmn"),
]
SLOW = os.environ.get("PROCESSLENS_SLOW_TESTS") == "1"


def _pm4py_model(path):
    import pm4py

    if str(path).endswith(".bpmn"):
        return pm4py.convert_to_petri_net(pm4py.read_bpmn(str(path)))
    return pm4py.read_pnml(str(path))


def _ours(store, log_path, model_path, method):
    from ingest.api import ingest_file
    from models import check, load_model

    ingest_file(store, log_path, progress=False)
    # deviations (alignments of the non-fitting variants) are not part of pm4py's figures: skip them here
    return check(store, load_model(model_path), method, precision=False, deviations=method == "alignments")


@pytest.mark.parametrize("log,model", CASES, ids=[m.split("/")[-1] for _, m in CASES])
def test_token_replay_equals_pm4py(store, log, model) -> None:
    import pm4py

    log_path, model_path = real_log(log), real_log(model)
    res = _ours(store, log_path, model_path, "token-replay")
    df = pm4py.read_xes(str(log_path))
    net, im, fm = _pm4py_model(model_path)
    ref = pm4py.fitness_token_based_replay(df, net, im, fm)
    assert res.log_fitness == pytest.approx(ref["log_fitness"], abs=1e-12)
    assert res.cases == df["case:concept:name"].nunique()
    assert res.fitting_cases / res.cases * 100 == pytest.approx(ref["perc_fit_traces"])
    # per case: our variant results equal pm4py's per-trace diagnostics
    diag = pm4py.conformance_diagnostics_token_based_replay(df, net, im, fm)
    case_ids = list(dict.fromkeys(df["case:concept:name"]))
    theirs = pd.DataFrame({"case_id": case_ids, "pm4py_fit": [d["trace_is_fit"] for d in diag],
                           "pm4py_fitness": [d["trace_fitness"] for d in diag]})
    merged = theirs.merge(res.cases_df, on="case_id", validate="one_to_one")
    assert len(merged) == len(theirs)
    assert (merged["pm4py_fit"] == merged["fitting"]).all()
    assert merged["fitness"].to_numpy() == pytest.approx(merged["pm4py_fitness"].to_numpy(), abs=1e-12)


@pytest.mark.parametrize("log,model", CASES[:3] + ([CASES[3]] if SLOW else []),
                         ids=[m.split("/")[-1] for _, m in CASES[:3] + ([CASES[3]] if SLOW else [])])
def test_alignments_equal_pm4py(store, log, model) -> None:
    import pm4py

    log_path, model_path = real_log(log), real_log(model)
    res = _ours(store, log_path, model_path, "alignments")
    df = pm4py.read_xes(str(log_path))
    net, im, fm = _pm4py_model(model_path)
    ref = pm4py.fitness_alignments(df, net, im, fm)
    assert res.log_fitness == pytest.approx(ref["log_fitness"], abs=1e-12)
    assert not res.not_computed
    diag = pm4py.conformance_diagnostics_alignments(df, net, im, fm)
    case_ids = list(dict.fromkeys(df["case:concept:name"]))
    ours = dict(zip(res.cases_df["case_id"], res.cases_df["fitness"], strict=True))
    for cid, d in zip(case_ids, diag, strict=True):
        assert ours[cid] == pytest.approx(d["fitness"], abs=1e-12), cid


def test_receipt_alignments_per_variant_equal_pm4py(store) -> None:
    """Receipt alignments take minutes in pm4py; compare the 15 most frequent variants trace by trace."""
    import pm4py
    from pm4py.objects.log.obj import Event, EventLog, Trace

    from models import load_model
    from models.conformance import alignment_variants, case_traces

    log_path, model_path = real_log("receipt/08_receipt.xes.gz"), real_log("receipt/receipt.bpmn")
    from ingest.api import ingest_file

    ingest_file(store, log_path, progress=False)
    model = load_model(model_path)
    _, variants = case_traces(store, model)
    top = sorted(variants, key=lambda v: -v.cases)[:15]
    ours = alignment_variants(model, [v.activities for v in top])
    net, im, fm = _pm4py_model(model_path)
    log = EventLog([Trace([Event({"concept:name": a}) for a in v.activities]) for v in top])
    theirs = pm4py.conformance_diagnostics_alignments(log, net, im, fm)
    for o, t in zip(ours, theirs, strict=True):
        assert o["fitness"] == pytest.approx(t["fitness"], abs=1e-12)
        assert o["cost"] == t["cost"]


def test_precision_equals_pm4py(store) -> None:
    import pm4py

    from ingest.api import ingest_file
    from models import check, load_model

    log_path = real_log("road-traffic-fines/roadtraffic100traces.xes")
    model_path = real_log("road-traffic-fines/roadtraffic.pnml")
    ingest_file(store, log_path, progress=False)
    res = check(store, load_model(model_path))
    net, im, fm = _pm4py_model(model_path)
    assert res.precision == pytest.approx(pm4py.precision_token_based_replay(pm4py.read_xes(str(log_path)), net, im, fm), abs=1e-12)
