"""``processlens mine ...`` and ``processlens discover`` through the real command line parser."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from defusedxml import ElementTree as ET

from processlens.cli import cli
from tests.conftest import real_log


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    from ingest.api import ingest_file
    from ingest.store import open_store

    path = tmp_path_factory.mktemp("cli") / "store.duckdb"
    with open_store(path) as con:
        ingest_file(con, real_log("pm4py-running-example/running-example.xes"), progress=False)
    return path


def run(db, *args) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["--db", str(db), *args], catch_exceptions=False)
    return res.exit_code, res.output


def test_dfg_json_matches_the_api(db):
    from analytics import dfg
    from ingest.store import open_store

    code, out = run(db, "mine", "dfg", "--json")
    assert code == 0
    data = json.loads(out)
    with open_store(db, read_only=True) as con:
        api = dfg(con)
    assert {(e["source"], e["target"]): e["frequency"] for e in data["edges"]} == dict(
        zip(zip(api.edges.source, api.edges.target, strict=True), api.edges.frequency, strict=True))
    assert data["start_activities"] == {"register request": 6}
    assert {"mean_seconds", "median_seconds", "p90_seconds", "min_seconds", "max_seconds", "cases"} <= set(data["edges"][0])


def test_filters_reach_every_command(db):
    code, out = run(db, "mine", "variants", "--json", "--end-activity", "reject request")
    variants = json.loads(out)["variants"]
    assert code == 0 and sum(v["cases"] for v in variants) == 3
    assert all(v["activities"][-1] == "reject request" for v in variants)
    code, out = run(db, "mine", "cases", "--json", "--follows", "check ticket>decide", "--min-duration", "7d")
    rows = json.loads(out)["cases"]
    assert code == 0 and rows and all(r["duration_seconds"] >= 7 * 86400 for r in rows)
    url = "end_activities=pay+compensation&variants_top=1"
    code, out = run(db, "mine", "cases", "--json", "--filter", url)
    assert code == 0 and len(json.loads(out)["cases"]) == 1
    for sub in ("activities", "bottlenecks", "kpis", "resources"):
        code, out = run(db, "mine", sub, "--json", "--present", "decide")
        assert code == 0, out
        assert json.loads(out)


def test_discover_writes_bpmn_and_pnml(db, tmp_path):
    code, out = run(db, "discover", "--out", str(tmp_path / "m.bpmn"), "--noise", "0.0")
    assert code == 0, out
    assert ET.parse(tmp_path / "m.bpmn").getroot().tag.endswith("definitions")
    code, out = run(db, "discover", "--out", str(tmp_path / "m.pnml"), "--json", "--miner", "dfg")
    assert code == 0 and json.loads(out)["transitions"] > 0
    assert ET.parse(tmp_path / "m.pnml").getroot().tag == "pnml"


def test_bad_input_gets_a_clear_message(db, tmp_path):
    code, out = run(db, "mine", "cases", "--from", "last tuesday")
    assert code == 2 and "not a date" in out
    code, out = run(db, "discover", "--out", str(tmp_path / "model.png"))
    assert code == 2 and ".bpmn" in out
    code, out = run(db, "mine", "dfg", "--min-duration", "soon")
    assert code == 2 and "duration" in out


def test_every_command_has_help(db):
    for args in (["mine"], ["mine", "dfg"], ["mine", "variants"], ["mine", "cases"], ["mine", "activities"],
                 ["mine", "bottlenecks"], ["mine", "kpis"], ["mine", "resources"], ["mine", "refresh"], ["discover"]):
        code, out = run(db, *args, "--help")
        assert code == 0 and "Usage" in out
