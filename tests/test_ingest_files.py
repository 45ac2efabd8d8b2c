"""One-off file imports: column guessing (names first, then values), explicit overrides,
Parquet and CSV side by side, idempotency and the run record."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from ingest.api import ingest_file, stats
from ingest.guess import guess_mapping

ROWS = [
    ("O-1", "Receive", "2024-03-01 08:00:00", "2024-03-01 08:10:00", "ann"),
    ("O-1", "Check", "2024-03-01 09:00:00", "2024-03-01 09:30:00", "bob"),
    ("O-2", "Receive", "2024-03-02 08:00:00", "2024-03-02 08:05:00", "ann"),
    ("O-2", "Ship", "2024-03-03 10:00:00", "2024-03-03 12:00:00", "cid"),
    ("O-3", "Receive", "2024-03-04 08:00:00", "2024-03-04 08:01:00", "bob"),
    ("O-3", "Check", "2024-03-04 09:00:00", "2024-03-04 09:20:00", "ann"),
]


def write_csv(path: Path, header: list[str], rows=ROWS, sep: str = ",") -> Path:
    path.write_text(sep.join(header) + "\n" + "\n".join(sep.join(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (["Order Number", "Step", "Started", "Completed At", "Who"],
         {"case": "Order Number", "activity": "Step", "start_timestamp": "Started", "timestamp": "Completed At",
          "resource": "Who"}),
        (["caseId", "activityName", "startTime", "endTime", "userName"],
         {"case": "caseId", "activity": "activityName", "start_timestamp": "startTime", "timestamp": "endTime",
          "resource": "userName"}),
        (["Ticket", "Status", "Begin", "Finished", "Assignee"],
         {"case": "Ticket", "activity": "Status", "start_timestamp": "Begin", "timestamp": "Finished",
          "resource": "Assignee"}),
    ],
)
def test_guess_by_names(store, tmp_path, header, expected):
    imp = ingest_file(store, write_csv(tmp_path / "log.csv", header), progress=False)
    got = {k: getattr(imp.mapping, k) for k in expected}
    assert got == expected
    assert imp.result.rows_loaded == len(ROWS)


def test_guess_by_values_when_names_say_nothing(store, tmp_path):
    # names that match no hint: the values decide (times parse; an activity has few labels that
    # repeat across cases; a case id repeats a few times; people are in between)
    people = ["ann", "bob", "cid", "dan", "eve", "fay"]
    rows = []
    for c in range(40):
        for a, act in enumerate(["Receive", "Check", "Approve", "Ship"]):
            start = datetime(2024, 3, 1, 8) + pd.Timedelta(days=c, hours=a)
            rows.append((f"R{c:03d}", act, str(start), str(start + pd.Timedelta(minutes=20)), people[(c + a) % 6]))
    imp = ingest_file(store, write_csv(tmp_path / "odd.csv", ["Ref", "What", "From", "Until", "Person"], rows),
                      progress=False)
    m = imp.mapping
    assert (m.case, m.activity, m.timestamp, m.start_timestamp) == ("Ref", "What", "Until", "From")
    assert imp.result.rows_loaded == len(rows)
    ts = store.execute("SELECT start_ts, ts FROM event_log ORDER BY ts LIMIT 1").fetchall()[0]
    assert ts == (datetime(2024, 3, 1, 8), datetime(2024, 3, 1, 8, 20))


def test_guess_prefers_names_over_values(store, tmp_path):
    rows = [(str(i % 3), f"A{i % 2}", "2024-01-01 10:00:00", f"2024-01-0{1 + i % 5} 10:00:00") for i in range(12)]
    path = tmp_path / "n.csv"
    path.write_text("case,activity,created,timestamp\n" + "\n".join(",".join(r) for r in rows) + "\n")
    assert ingest_file(store, path, progress=False).mapping.timestamp == "timestamp"


def test_explicit_options_override_the_guess(store, tmp_path):
    path = write_csv(tmp_path / "x.csv", ["case", "activity", "start", "timestamp", "resource"])
    imp = ingest_file(store, path, case="resource", activity="case", timestamp="start", resource="activity",
                      source="My ERP", progress=False)
    m = imp.mapping
    assert (m.case, m.activity, m.timestamp, m.resource) == ("resource", "case", "start", "activity")
    assert m.start_timestamp is None or m.start_timestamp not in {"start"}
    assert "case" not in imp.guessed and "timestamp" not in imp.guessed
    assert sorted(r[0] for r in store.execute("SELECT case_id FROM cases").fetchall()) == ["ann", "bob", "cid"]
    assert list(stats(store)["sources"]) == ["My ERP"]


def test_guess_mapping_reports_nothing_it_cannot_tell(store):
    store.execute("CREATE TEMP TABLE t AS SELECT range AS n FROM range(10)")
    assert guess_mapping(store, "t", {"n": "BIGINT"}) == {}


def test_epoch_seconds_column_named_explicitly(store, tmp_path):
    path = tmp_path / "epoch.csv"
    path.write_text("case,activity,at\n1,A,1704103200\n1,B,1704106800\n")
    ingest_file(store, path, timestamp="at", progress=False)
    assert [r[0] for r in store.execute("SELECT ts FROM events ORDER BY ts").fetchall()] == [
        datetime(2024, 1, 1, 10), datetime(2024, 1, 1, 11)]


def frame() -> pd.DataFrame:
    df = pd.DataFrame(ROWS, columns=["case:concept:name", "concept:name", "start_timestamp", "time:timestamp",
                                     "org:resource"])
    df["time:timestamp"] = pd.to_datetime(df["time:timestamp"])
    df["start_timestamp"] = pd.to_datetime(df["start_timestamp"])
    df["amount"] = [1.5, 2.0, None, 4.25, 5.0, 6.0]
    return df


def test_parquet_with_naive_times_in_a_time_zone(store, tmp_path):
    path = tmp_path / "log.parquet"
    frame().to_parquet(path)
    imp = ingest_file(store, path, timezone="America/New_York", progress=False)
    assert imp.kind == "parquet" and imp.result.rows_loaded == len(ROWS)
    first = store.execute("SELECT ts, start_ts, attrs->>'amount' FROM events ORDER BY ts LIMIT 1").fetchall()[0]
    assert first == (datetime(2024, 3, 1, 13, 10), datetime(2024, 3, 1, 13), "1.5")


def test_parquet_with_zoned_times(store, tmp_path):
    df = frame()
    df["time:timestamp"] = df["time:timestamp"].dt.tz_localize("Asia/Tokyo")
    path = tmp_path / "tz.parquet"
    df.to_parquet(path)
    ingest_file(store, path, progress=False)
    assert store.execute("SELECT min(ts) FROM events").fetchall()[0][0] == datetime(2024, 2, 29, 23, 10)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_second_import_loads_nothing(store, tmp_path, kind):
    path = tmp_path / f"log.{kind}"
    if kind == "csv":
        frame().to_csv(path, index=False)
    else:
        frame().to_parquet(path)
    first = ingest_file(store, path, progress=False).result
    second = ingest_file(store, path, progress=False).result
    assert (first.rows_loaded, first.duplicates_skipped) == (len(ROWS), 0)
    assert (second.rows_read, second.rows_loaded, second.duplicates_skipped) == (len(ROWS), 0, len(ROWS))
    runs = store.execute("SELECT status, rows_loaded, duplicates_skipped FROM ingest_runs ORDER BY run_id").fetchall()
    assert runs == [("succeeded", len(ROWS), 0), ("succeeded", 0, len(ROWS))]
    assert store.execute("SELECT count(*) FROM events").fetchall()[0][0] == len(ROWS)


def test_appended_rows_load_on_reimport(store, tmp_path):
    path = write_csv(tmp_path / "grow.csv", ["case", "activity", "start", "timestamp", "resource"], ROWS[:4])
    ingest_file(store, path, progress=False)
    write_csv(path, ["case", "activity", "start", "timestamp", "resource"], ROWS)
    res = ingest_file(store, path, progress=False).result
    assert (res.rows_loaded, res.duplicates_skipped) == (2, 4)


def test_genuinely_repeated_rows_are_both_kept(store, tmp_path):
    path = tmp_path / "rep.csv"
    path.write_text("case,activity,timestamp\n1,A,2024-01-01 10:00:00\n1,A,2024-01-01 10:00:00\n")
    assert ingest_file(store, path, progress=False).result.rows_loaded == 2
    assert ingest_file(store, path, progress=False).result.rows_loaded == 0


def test_json_lines_and_json_documents_import_with_guessed_columns(tmp_path, store):
    """`ingest file` reads plain JSON records too (JSON lines, and a document with nested records)."""
    import json

    from ingest.api import ingest_file

    lines = tmp_path / "payments.jsonl"
    rows = [{"payment_id": f"P{i}", "order_ref": f"SO-{i // 2}", "type": ["Authorised", "Captured"][i % 2],
             "created": f"2024-03-0{1 + i // 2}T10:0{i % 2}:00Z", "amount": 10.5 * i} for i in range(6)]
    lines.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n", encoding="utf-8")
    imp = ingest_file(store, lines, case="order_ref", activity="type")
    assert imp.kind == "json" and imp.mapping.timestamp == "created"
    assert (imp.result.rows_loaded, imp.result.rows_rejected) == (6, 1)
    assert store.execute("SELECT line FROM rejects").fetchall() == [(7,)]
    got = store.execute("SELECT case_id, activity, ts FROM event_log ORDER BY ts, event_id").fetchall()
    assert [(c, a) for c, a, _ in got] == [(r["order_ref"], r["type"]) for r in rows]
    assert str(got[0][2]) == "2024-03-01 10:00:00"

    doc = tmp_path / "tickets.json"
    doc.write_text(json.dumps({"tickets": [
        {"ticket_id": "T1", "order_ref": "SO-9", "events": [{"what": "Open Ticket", "at": "2024-03-02 08:00:00"},
                                                           {"what": "Resolve Ticket", "at": "2024-03-03 09:00:00"}]}]}))
    imp = ingest_file(store, doc, case="order_ref", activity="what", timestamp="at", records_path="tickets[].events")
    assert imp.result.rows_loaded == 2
    assert ingest_file(store, doc, case="order_ref", activity="what", timestamp="at",
                       records_path="tickets[].events").result.duplicates_skipped == 2
