"""Jobs from processlens.toml (parsing, errors, run_jobs, the CLI) and the scheduler."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.jobs import load_jobs, run_jobs
from ingest.scheduler import due_jobs, parse_schedule, run_scheduler
from ingest.store import open_store
from processlens.cli import cli
from processlens.config import load_settings
from processlens.errors import ConfigError

CSV_JOB = """
[jobs.wms]
kind = "csv"
source = "WMS"
path = "wms.csv"
sep = ";"
{extra}
[jobs.wms.mapping]
case = "order"
activity = "step"
timestamp = "time"
"""

JSON_JOB = """
[jobs.psp]
kind = "json"
path = "psp.jsonl"
[jobs.psp.mapping]
case = "order_id"
activity = "type"
timestamp = "at"
record_id = "payment_id"
"""


def write(tmp_path: Path, body: str):
    (tmp_path / "processlens.toml").write_text('[store]\npath = "store.duckdb"\n' + body, encoding="utf-8")
    return load_settings(config=tmp_path / "processlens.toml")


def data_files(tmp_path: Path) -> None:
    (tmp_path / "wms.csv").write_text("order;step;time\nO-1;Pick Goods;2024-03-01 09:00:00\nO-1;Ship Goods;2024-03-02 09:00:00\n")
    lines = [{"payment_id": "p1", "order_id": "O-1", "type": "Payment Received", "at": "2024-03-05T10:00:00Z"},
             {"payment_id": "p2", "order_id": "O-2", "type": "Payment Failed", "at": "2024-03-05T11:00:00Z"}]
    (tmp_path / "psp.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n{broken\n")


# -- parsing ---------------------------------------------------------------------------------------
def test_jobs_parse_with_defaults(tmp_path: Path):
    settings = write(tmp_path, CSV_JOB.format(extra='schedule = "every 5m"') + JSON_JOB)
    wms, psp = load_jobs(settings)
    assert (wms.name, wms.kind, wms.source, wms.schedule, wms.options["sep"]) == ("wms", "csv", "WMS", "every 5m", ";")
    assert wms.path == tmp_path / "wms.csv"  # relative to the config file
    assert psp.source == "psp"  # defaults to the job name
    assert psp.mapping.record_id == "payment_id"


@pytest.mark.parametrize("body, words", [
    (CSV_JOB.format(extra='colour = "red"'), ["wms", "colour", "valid keys"]),
    (CSV_JOB.replace('kind = "csv"', 'kind = "excel"').format(extra=""), ["wms", "excel", "kind"]),
    (CSV_JOB.replace('path = "wms.csv"', "").format(extra=""), ["wms", "'path'"]),
    (CSV_JOB.format(extra='schedule = "every now and then"'), ["wms", "schedule", "cron"]),
    (CSV_JOB.format(extra="sep = 3").replace('sep = ";"\n', ""), ["wms", "sep", "string"]),
    (CSV_JOB.replace('activity = "step"\n', "").format(extra=""), ["activity", "jobs.wms.mapping"]),
    ("[jobs.x]\nkind = \"csv\"\npath = \"a.csv\"\n", ["x", "mapping"]),
    (CSV_JOB.format(extra="") + 'timezone = "Europe/Berln"\n', ["Europe/Berln", "jobs.wms.mapping", "IANA"]),
    (CSV_JOB.format(extra="") + 'correlation = { column = "t" }\n', ["correlation", "key", "jobs.wms.mapping"]),
])
def test_config_errors_name_job_key_and_file(tmp_path: Path, body: str, words: list[str]):
    settings = write(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_jobs(settings)
    text = str(err.value)
    for w in words:
        assert w in text, (w, text)
    assert str(tmp_path / "processlens.toml") in text  # where it looked


def test_unknown_job_names_list_the_known_ones(tmp_path: Path):
    settings = write(tmp_path, CSV_JOB.format(extra="") + JSON_JOB)
    with pytest.raises(ConfigError) as err:
        run_jobs(settings, ["wms", "nope"])
    assert "nope" in err.value.message and "wms, psp" in err.value.hint


def test_no_jobs_configured(tmp_path: Path):
    settings = write(tmp_path, "")
    with pytest.raises(ConfigError) as err:
        run_jobs(settings)
    assert "no ingest jobs" in err.value.message and "[jobs.NAME]" in err.value.hint


# -- running ---------------------------------------------------------------------------------------
def test_run_jobs_one_failing_does_not_stop_the_others(tmp_path: Path):
    data_files(tmp_path)
    broken = CSV_JOB.format(extra="").replace("[jobs.wms", "[jobs.broken").replace("wms.csv", "missing.csv")
    settings = write(tmp_path, broken + CSV_JOB.format(extra="") + JSON_JOB)
    results = {r.job: r for r in run_jobs(settings)}
    assert results["broken"].status == "failed" and "missing.csv" in results["broken"].error
    assert results["wms"].rows_loaded == 2
    assert (results["psp"].rows_loaded, results["psp"].rows_rejected) == (2, 1)
    with open_store(settings.db_path, read_only=True) as con:
        assert con.execute("SELECT line, reason LIKE 'malformed JSON%' FROM rejects").fetchall() == [(3, True)]
        assert con.execute("SELECT job, status FROM ingest_runs ORDER BY run_id").fetchall() == [
            ("broken", "failed"), ("wms", "succeeded"), ("psp", "succeeded")]
    again = {r.job: r for r in run_jobs(settings, ["wms", "psp"])}
    assert again["wms"].rows_loaded == 0 and again["wms"].duplicates_skipped == 2
    assert again["psp"].rows_loaded == 0 and again["psp"].duplicates_skipped == 2


def test_cli_ingest_run_json(tmp_path: Path):
    data_files(tmp_path)
    write(tmp_path, CSV_JOB.format(extra="") + JSON_JOB)
    runner = CliRunner()
    out = runner.invoke(cli, ["--config", str(tmp_path / "processlens.toml"), "ingest", "run", "wms", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert [(r["job"], r["status"], r["rows_loaded"]) for r in data] == [("wms", "succeeded", 2)]
    bad = runner.invoke(cli, ["--config", str(tmp_path / "processlens.toml"), "ingest", "run", "zzz"])
    assert bad.exit_code == 2 and "zzz" in bad.output and "wms, psp" in bad.output


# -- scheduler -------------------------------------------------------------------------------------
def test_parse_schedule():
    assert parse_schedule("every 30s").interval == 30
    assert parse_schedule("every 5m").interval == 300
    assert parse_schedule("every 2 hours").interval == 7200
    cron = parse_schedule("*/10 * * * *")
    assert cron.next_after(datetime(2024, 1, 1, 10, 3)) == datetime(2024, 1, 1, 10, 10)
    with pytest.raises(ConfigError):
        parse_schedule("sometimes")


def test_due_jobs_by_last_start(tmp_path: Path):
    body = CSV_JOB.format(extra='schedule = "every 10m"') + JSON_JOB.replace('[jobs.psp]\n', '[jobs.psp]\nschedule = "0 * * * *"\n')
    jobs = load_jobs(write(tmp_path, body))
    now = datetime(2024, 1, 1, 12, 30)
    assert [j.name for j in due_jobs(jobs, {}, now)] == ["wms", "psp"]  # never ran: due at once
    last = {"wms": datetime(2024, 1, 1, 12, 25), "psp": datetime(2024, 1, 1, 11, 10)}
    assert [j.name for j in due_jobs(jobs, last, now)] == ["psp"]  # psp's 12:00 slot passed
    last = {"wms": datetime(2024, 1, 1, 12, 20), "psp": datetime(2024, 1, 1, 12, 1)}
    assert [j.name for j in due_jobs(jobs, last, now)] == ["wms"]


def test_scheduler_runs_due_jobs_and_survives_failures(tmp_path: Path):
    data_files(tmp_path)
    broken = CSV_JOB.format(extra='schedule = "every 1h"').replace("[jobs.wms", "[jobs.broken").replace("wms.csv", "gone.csv")
    settings = write(tmp_path, broken + CSV_JOB.format(extra='schedule = "every 1h"') + JSON_JOB)
    lines: list[str] = []
    cycles = run_scheduler(settings, max_cycles=2, tick=0.01, log=lines.append)
    assert cycles == 2
    assert sum(" wms: read" in ln for ln in lines) == 1  # ran in cycle 1, not due in cycle 2
    assert sum("broken: FAILED" in ln and "gone.csv" in ln for ln in lines) == 1  # failed once, retried in 1h
    assert not any("psp" in ln for ln in lines[1:])  # unscheduled jobs only run by 'ingest run'
    with open_store(settings.db_path, read_only=True) as con:
        assert con.execute("SELECT job, status FROM ingest_runs ORDER BY run_id").fetchall() == [
            ("broken", "failed"), ("wms", "succeeded")]


HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
sys.stdin.readline()
"""


def test_scheduler_survives_a_busy_store(tmp_path: Path, monkeypatch):
    data_files(tmp_path)
    settings = write(tmp_path, "[scheduler]\nbusy_timeout = 0.3\n" + CSV_JOB.format(extra='schedule = "every 1h"'))
    with open_store(settings.db_path):
        pass
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(settings.db_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        lines: list[str] = []
        released = []

        def sleep(_seconds: float) -> None:  # between cycles: the other process finishes
            if not released:
                holder.stdin.write("\n")
                holder.stdin.flush()
                holder.wait(timeout=30)
                released.append(time.monotonic())

        run_scheduler(settings, max_cycles=2, tick=0.01, log=lines.append, sleep=sleep)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert any("store busy" in ln for ln in lines)
    assert sum(" wms: read 2" in ln for ln in lines) == 1


# -- JSON jobs -------------------------------------------------------------------------------------
def run_psp(tmp_path: Path, content: bytes, extra: str = "", name: str = "psp.jsonl"):
    (tmp_path / name).write_bytes(content)
    body = JSON_JOB.replace('path = "psp.jsonl"', f'path = "{name}"\n{extra}')
    settings = write(tmp_path, body)
    [res] = run_jobs(settings)
    return settings, res


def rejects(settings) -> list[tuple]:
    with open_store(settings.db_path, read_only=True) as con:
        return con.execute("SELECT line, record_key, reason FROM rejects ORDER BY line, record_key").fetchall()


def rec(i: int, **extra) -> dict:
    return {"payment_id": f"p{i}", "order_id": f"O-{i}", "type": "Payment Received", "at": f"2024-03-05T10:{i:02d}:00Z", **extra}


def test_json_lines_reject_exact_lines_around_blank_and_bad_ones(tmp_path: Path):
    lines = [json.dumps(rec(1)), "", json.dumps(rec(2, amount=5)), "[1, 2]", '{"payment_id": "p3", oops',
             json.dumps(rec(4, amount="n/a")), "   ", json.dumps({"payment_id": "p5", "order_id": "O-5", "at": "x"})]
    settings, res = run_psp(tmp_path, ("\n".join(lines) + "\n").encode())
    assert (res.rows_loaded, res.rows_rejected) == (3, 3)
    got = rejects(settings)
    assert [(line, reason.split(":")[0]) for line, _, reason in got] == [
        (4, "line is not a JSON object"), (5, "malformed JSON"), (8, "missing activity in column type")]


def test_json_lines_all_good_keep_their_line_numbers(tmp_path: Path):
    lines = [json.dumps(rec(1)), "", json.dumps(rec(2)), json.dumps({"payment_id": "p3", "order_id": "O-3", "type": "T"})]
    settings, res = run_psp(tmp_path, ("\n".join(lines) + "\n").encode())
    assert res.rows_loaded == 2
    assert [r[0] for r in rejects(settings)] == [4]  # the record without a timestamp, on line 4


def test_json_lines_with_invalid_utf8_reject_only_that_line(tmp_path: Path):
    content = (json.dumps(rec(1)) + "\n").encode() + b'{"payment_id": "p2", "type": "\xff\xfe"}\n' + (json.dumps(rec(3)) + "\n").encode()
    settings, res = run_psp(tmp_path, content)
    assert (res.rows_loaded, res.rows_rejected) == (2, 1)
    assert rejects(settings)[0][0] == 2 and "UTF-8" in rejects(settings)[0][2]


def test_json_document_errors_name_file_line_and_column(tmp_path: Path):
    settings, res = run_psp(tmp_path, b'[\n {"payment_id": "p1"},\n {"payment_id": }\n]\n', name="psp.json")
    assert res.status == "failed" and "psp.json" in res.error and "line 3" in res.error


def test_json_records_path_missing_names_what_was_found(tmp_path: Path):
    doc = {"meta": {}, "payments": [rec(1)]}
    settings, res = run_psp(tmp_path, json.dumps(doc).encode(), extra='records_path = "items"', name="psp.json")
    assert res.status == "failed" and "'items'" in res.error and "payments" in res.error


def test_json_document_with_bom_and_a_single_list(tmp_path: Path):
    doc = {"exported": "2024-03-06", "payments": [rec(1), rec(2), "garbage"]}
    settings, res = run_psp(tmp_path, b"\xef\xbb\xbf" + json.dumps(doc).encode(), name="psp.json")
    assert (res.rows_loaded, res.rows_rejected) == (2, 1)
    assert rejects(settings) == [(None, "payments[2]", "record is not a JSON object")]


def test_running_jobs_keeps_the_analytics_aggregates_current(tmp_path):
    """After `run_jobs` the maintained aggregates cover every event, so readers need not rescan."""
    import analytics
    from analytics.incremental import is_fresh
    from ingest.jobs import run_jobs
    from ingest.store import open_store
    from processlens.config import load_settings

    log = tmp_path / "log.csv"
    log.write_text("case,activity,time\nA,start,2024-01-01 10:00\nA,end,2024-01-01 11:00\nB,start,2024-01-02 09:00\n")
    config = tmp_path / "processlens.toml"
    config.write_text('[jobs.log]\nkind = "csv"\npath = "log.csv"\n'
                      '[jobs.log.mapping]\ncase = "case"\nactivity = "activity"\ntimestamp = "time"\n')
    settings = load_settings(db=tmp_path / "s.duckdb", config=config)
    run_jobs(settings)
    with open_store(settings.db_path, read_only=True) as con:
        assert is_fresh(con)
        assert analytics.dfg(con).edges[["source", "target", "frequency"]].values.tolist() == [["start", "end", 1]]
    log.write_text(log.read_text() + "B,end,2024-01-02 12:00\n")
    run_jobs(settings)
    with open_store(settings.db_path, read_only=True) as con:
        assert is_fresh(con)
        assert analytics.dfg(con).edges["frequency"].tolist() == [2]
