"""Rules against the real conformance engine on a small hand-made store and model: stuck cases,
unhandled exceptions, case filters, dry run, cool-down, and the effect analysis."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from receiver import Receiver, make_store, write_config

from coordinator import dry_run, effect, evaluate, list_actions, run_once
from ingest.store import open_store

NOW = datetime(2026, 3, 1, 12, 0)
MODEL = """process tiny
lane Sales: Create Order, Approve Order, Close Order
lane Finance: Check Credit, Retry Payment, Payment Failed
start Create Order
Create Order -> Check Credit
Check Credit -> Approve Order
Approve Order -> Close Order
exception Payment Failed instead of Close Order -> Retry Payment
Retry Payment -> Close Order
sla Check Credit 1d
sla Approve Order 2d
final Close Order
"""


def _csv() -> str:
    rows = []

    def add(case: str, steps: list[tuple[str, timedelta]]) -> None:
        for activity, before_now in steps:
            rows.append(f"{case},{activity},{(NOW - before_now):%Y-%m-%d %H:%M:%S},r")

    for i in range(8):  # history: completed cases with short waits
        base = timedelta(days=30 + i)
        add(f"h{i}", [("Create Order", base), ("Check Credit", base - timedelta(hours=2)),
                      ("Approve Order", base - timedelta(hours=5)), ("Close Order", base - timedelta(hours=9))])
    # a slow case that finished without any action: Check Credit came 12 days after Create Order
    add("c9", [("Create Order", timedelta(days=20)), ("Check Credit", timedelta(days=8)),
               ("Approve Order", timedelta(days=8) - timedelta(hours=1)), ("Close Order", timedelta(days=8) - timedelta(hours=2))])
    add("s1", [("Create Order", timedelta(days=10))])                     # stuck before Check Credit (SLA 1d)
    add("s3", [("Create Order", timedelta(days=5))])                      # stuck as well
    add("s2", [("Create Order", timedelta(hours=1))])                     # waiting, not stuck
    add("e1", [("Create Order", timedelta(days=3)), ("Check Credit", timedelta(days=3) - timedelta(hours=1)),
               ("Approve Order", timedelta(days=3) - timedelta(hours=3)), ("Payment Failed", timedelta(hours=2))])
    return "case,activity,timestamp,resource\n" + "\n".join(rows) + "\n"


@pytest.fixture
def world(tmp_path, db_path, monkeypatch):
    monkeypatch.setenv("PROCESSLENS_WEBHOOK_SECRET", "s")
    make_store(db_path, tmp_path, csv_text=_csv())
    (tmp_path / "tiny.txt").write_text(MODEL)
    with Receiver() as r:
        body = f"""
[coordinator]
allowlist = ["127.0.0.1"]
now = "{NOW.isoformat()}Z"
dashboard_url = "http://dash.example:8501"
[coordinator.contacts.Finance]
name = "Fiona (Finance lead)"
email = "fiona@example.com"
[models.tiny]
path = "tiny.txt"
[rules.stuck]
when = "stuck"
do = "escalate"
steps = ["Check Credit"]
[rules.stuck.target]
url = "{r.url}/esc/{{owner}}"
[rules.exc]
when = "unhandled_exception"
do = "ticket"
[rules.exc.target]
url = "{r.url}/tickets"
[rules.only_s3]
when = "stuck"
do = "webhook"
mode = "dry_run"
cases = {{ case_ids = ["s3"] }}
[rules.only_s3.target]
url = "{r.url}/x"
"""
        yield write_config(tmp_path / "processlens.toml", db_path, body), db_path, r


def test_stuck_and_unhandled_exception_rules(world):
    s, db, r = world
    with open_store(db) as con:
        preview = dry_run(con, s, "stuck")
        assert sorted(preview.case_ids) == ["s1", "s3"]
        assert list_actions(con).empty  # the dry run wrote nothing
    result = run_once(s)
    outcomes = {o.rule: o for o in result.evaluation.rules}
    assert sorted(outcomes["stuck"].case_ids) == ["s1", "s3"]
    assert outcomes["exc"].case_ids == ["e1"]
    assert outcomes["only_s3"].case_ids == ["s3"] and outcomes["only_s3"].created == 0  # filter + dry_run mode
    esc = {q.json["case_id"]: q for q in r.succeeded() if q.path.startswith("/esc/")}
    assert sorted(esc) == ["s1", "s3"]
    body = esc["s1"].json
    assert esc["s1"].path == "/esc/Finance"
    assert (body["kind"], body["action"], body["step"], body["owner"]) == ("stuck", "escalate", "Check Credit", "Finance")
    assert body["waited_seconds"] == pytest.approx(10 * 86400, abs=1)
    assert body["contact"] == "Fiona (Finance lead)" and body["contact_email"] == "fiona@example.com"
    assert body["link"] == "http://dash.example:8501/case?case_id=s1"
    assert body["sla_seconds"] == 86400 and "10d" in body["text"]
    tickets = [q.json for q in r.succeeded() if q.path == "/tickets"]
    assert len(tickets) == 1 and tickets[0]["case_id"] == "e1" and tickets[0]["type"] == "Payment Failed"
    assert tickets[0]["kind"] == "unhandled_exception" and "e1" in tickets[0]["title"]
    n = len(r.requests)
    again = run_once(s)
    assert again.evaluation.created == 0 and len(r.requests) == n
    with open_store(db) as con:
        later = evaluate(con, s, now=NOW + timedelta(days=2))  # past the one-day cool-down: acted on again
    assert later.created >= 1


def test_effect_compares_with_cases_that_got_no_action(world, tmp_path):
    s, db, r = world
    run_once(s)
    # s1 moves on two hours after its escalation; s3 stays stuck
    from ingest.api import ingest_file

    path = tmp_path / "later.csv"
    path.write_text(f"case,activity,timestamp,resource\ns1,Check Credit,{NOW + timedelta(hours=2):%Y-%m-%d %H:%M:%S},r\n")
    with open_store(db) as con:
        ingest_file(con, path, case="case", activity="activity", timestamp="timestamp", resource="resource",
                    source="ERP", progress=False)
        fx = effect(con, now=NOW + timedelta(days=1)).set_index("rule")
    row = fx.loc["stuck"]
    assert row["actions"] == 2
    assert row["moved_on_share"] == pytest.approx(0.5)
    assert row["median_seconds_to_move_on"] == pytest.approx(2 * 3600, abs=5)
    assert row["on_time_share"] == pytest.approx(0.5)  # within the 1-day SLA of Check Credit
    # comparable waits: after Create Order, longer than the treated case had waited, never acted on.
    # Only c9 qualifies (12 days): for s1 (waited 10d) it moved on 2d later, for s3 (5d) 7d later; both late.
    assert row["comparable_waits"] == 2
    assert row["control_moved_on_share"] == pytest.approx(1.0)
    assert row["control_median_seconds_to_move_on"] == pytest.approx(4.5 * 86400, abs=5)
    assert row["control_on_time_share"] == pytest.approx(0.0)
    assert row["on_time_share_difference"] == pytest.approx(0.5)


def test_deviation_rule_acts_once_on_each_case_that_left_the_model(tmp_path, db_path, monkeypatch):
    """A case that skipped Check Credit (a completed deviation) triggers the deviation rule; fitting cases do not."""
    monkeypatch.setenv("PROCESSLENS_WEBHOOK_SECRET", "s")
    skipped = [("Create Order", timedelta(days=6)), ("Approve Order", timedelta(days=6) - timedelta(hours=3)),
               ("Close Order", timedelta(days=6) - timedelta(hours=4))]
    csv = _csv() + "".join(f"d1,{a},{(NOW - t):%Y-%m-%d %H:%M:%S},r\n" for a, t in skipped)
    make_store(db_path, tmp_path, csv_text=csv)
    (tmp_path / "tiny.txt").write_text(MODEL)
    with Receiver() as r:
        body = f"""
[coordinator]
allowlist = ["127.0.0.1"]
now = "{NOW.isoformat()}Z"
[models.tiny]
path = "tiny.txt"
[rules.deviations]
when = "deviation"
do = "webhook"
[rules.deviations.target]
url = "{r.url}/dev"
"""
        s = write_config(tmp_path / "processlens.toml", db_path, body)
        result = run_once(s)
        (outcome,) = result.evaluation.rules
        got = [q.json for q in r.succeeded() if q.path == "/dev"]
        assert "d1" in outcome.case_ids and {g["case_id"] for g in got} == set(outcome.case_ids)
        assert not {"h0", "h1", "c9", "s2"} & set(outcome.case_ids)  # conforming cases are left alone
        d1 = next(g for g in got if g["case_id"] == "d1")
        assert d1["kind"] == "deviation" and "Check Credit" in str(d1)
        n = len(r.requests)
        assert run_once(s).evaluation.created == 0 and len(r.requests) == n  # cool-down: once per case
