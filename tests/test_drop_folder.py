"""Drop-folder jobs: each new file once, in name order, bad files rejected without stopping the others."""

from __future__ import annotations

import json
from pathlib import Path

from jobrun import run_named_job

from ingest.jobs import load_jobs, run_job
from ingest.store import open_store
from processlens.config import load_settings

CONFIG = """
[store]
path = "store.duckdb"

[jobs.wms]
kind = "folder"
source = "WMS"
path = "drop"
pattern = "*.csv"
[jobs.wms.mapping]
case = "order"
activity = "step"
timestamp = "time"
resource = "worker"
timezone = "Europe/Berlin"
"""


def day_file(folder: Path, name: str, rows: list[tuple[str, str, str, str]]) -> Path:
    path = folder / name
    path.write_text("order;step;time;worker\n" + "".join(";".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def setup(tmp_path: Path, config: str = CONFIG):
    (tmp_path / "drop").mkdir()
    (tmp_path / "processlens.toml").write_text(config, encoding="utf-8")
    return load_settings(config=tmp_path / "processlens.toml")


def run(settings, name: str = "wms"):
    res = run_named_job(settings, name)
    assert res.status == "succeeded", res.error
    return res


def test_each_new_file_once_in_name_order(tmp_path: Path):
    settings = setup(tmp_path)
    drop = tmp_path / "drop"
    # written out of order on purpose: name order decides the load order
    day_file(drop, "wms_2024-03-02.csv", [("O-1", "Ship Goods", "2024-03-02 09:00:00", "w2")])
    day_file(drop, "wms_2024-03-01.csv", [("O-1", "Pick Goods", "2024-03-01 09:00:00", "w1"),
                                          ("O-1", "Pack Goods", "2024-03-01 11:00:00", "w1")])
    (drop / "notes.txt").write_text("not a csv")  # outside the pattern
    (drop / ".wms_2024-03-03.csv").write_text("order;step;time;worker\n")  # hidden, being written
    first = run(settings)
    assert (first.files, first.rows_loaded) == (2, 3)
    with open_store(settings.db_path, read_only=True) as con:
        files = con.execute("SELECT path FROM ingested_files ORDER BY run_id, path").fetchall()
        order = [r[0] for r in con.execute("SELECT record_id FROM events ORDER BY event_id").fetchall()]
        ts = [str(r[0]) for r in con.execute("SELECT ts FROM event_log ORDER BY ts").fetchall()]
        by_file = con.execute("SELECT min(event_id) FROM events GROUP BY run_id").fetchall()
    assert [Path(p).name for (p,) in files] == ["wms_2024-03-01.csv", "wms_2024-03-02.csv"]
    assert len(order) == 3 and by_file
    assert ts == ["2024-03-01 08:00:00", "2024-03-01 10:00:00", "2024-03-02 08:00:00"]  # Berlin -> UTC

    again = run(settings)
    assert (again.files, again.rows_read, again.rows_loaded) == (0, 0, 0)

    day_file(drop, "wms_2024-03-03.csv", [("O-2", "Pick Goods", "2024-03-03 09:00:00", "w1")])
    (drop / "copy_of_day1.csv").write_bytes((drop / "wms_2024-03-01.csv").read_bytes())  # same content
    third = run(settings)
    assert (third.files, third.rows_loaded) == (1, 1)


def test_unusable_file_is_rejected_and_the_others_load(tmp_path: Path):
    settings = setup(tmp_path)
    drop = tmp_path / "drop"
    day_file(drop, "a.csv", [("O-1", "Pick Goods", "2024-03-01 09:00:00", "w1")])
    (drop / "b.csv").write_bytes(b"")  # empty
    (drop / "c.csv").write_text("id,name\n1,x\n", encoding="utf-8")  # lacks the mapped columns
    day_file(drop, "d.csv", [("O-2", "Pick Goods", "2024-03-01 10:00:00", "w2")])
    res = run(settings)
    assert res.rows_loaded == 2 and res.files == 4 and res.rows_rejected == 2
    with open_store(settings.db_path, read_only=True) as con:
        rejects = con.execute("SELECT location, reason FROM rejects ORDER BY location").fetchall()
    assert [Path(loc).name for loc, _ in rejects] == ["b.csv", "c.csv"]
    assert "empty" in rejects[0][1]
    assert "order" in rejects[1][1] and "c.csv" in rejects[1][1]
    again = run(settings)  # the same broken bytes are not retried
    assert (again.rows_rejected, again.files) == (0, 0)
    (drop / "b.csv").write_text("order;step;time;worker\nO-3;Pick Goods;2024-03-02 09:00:00;w1\n")  # fixed
    fixed = run(settings)
    assert (fixed.files, fixed.rows_loaded) == (1, 1)


def test_json_files_in_a_folder(tmp_path: Path):
    config = CONFIG.replace('pattern = "*.csv"', 'pattern = "*.jsonl"')
    settings = setup(tmp_path, config)
    drop = tmp_path / "drop"
    lines = [json.dumps({"order": "O-1", "step": "Payment Received", "time": "2024-03-05T10:00:00Z"}), "{oops"]
    (drop / "psp_1.jsonl").write_text("\n".join(lines) + "\n")
    res = run(settings)
    assert (res.rows_loaded, res.rows_rejected, res.files) == (1, 1, 1)
    with open_store(settings.db_path, read_only=True) as con:
        assert con.execute("SELECT line FROM rejects").fetchall() == [(2,)]


def test_missing_folder_fails_with_its_name(tmp_path: Path):
    (tmp_path / "processlens.toml").write_text(CONFIG)
    settings = load_settings(config=tmp_path / "processlens.toml")
    spec = load_jobs(settings)[0]
    with open_store(settings.db_path) as con:
        res = run_job(con, spec)
    assert res.status == "failed" and "drop" in res.error and "does not exist" in res.error


def test_file_duckdb_cannot_read_does_not_abort_the_run(tmp_path: Path):
    settings = setup(tmp_path, CONFIG.replace('pattern = "*.csv"', 'pattern = "*"'))
    drop = tmp_path / "drop"
    day_file(drop, "a.csv", [("O-1", "Pick Goods", "2024-03-01 09:00:00", "w1")])
    (drop / "b.parquet").write_bytes(b"PAR1 this is not really parquet PAR1")
    (drop / "c.jsonl").write_bytes(b'{"order": "O-2", "step": "Pick Goods", "time": "2024-03-01 10:00:00"}\n\xff\xfe\n')
    day_file(drop, "d.csv", [("O-3", "Pick Goods", "2024-03-01 11:00:00", "w2")])
    res = run(settings)
    assert (res.files, res.rows_loaded, res.rows_rejected) == (4, 3, 2)
    with open_store(settings.db_path, read_only=True) as con:
        rejected = con.execute("SELECT location, line FROM rejects ORDER BY location").fetchall()
    assert [(Path(loc).name, line) for loc, line in rejected] == [("b.parquet", None), ("c.jsonl", 2)]


def test_combined_files_keep_their_own_rejects_and_dedupe(tmp_path: Path):
    settings = setup(tmp_path)
    drop = tmp_path / "drop"
    shared = ("O-1", "Pick Goods", "2024-03-01 09:00:00", "w1")
    day_file(drop, "a.csv", [shared, ("O-1", "Pack Goods", "2024-03-01 10:00:00", "w1")])
    day_file(drop, "b.csv", [shared, ("O-2", "", "2024-03-01 11:00:00", "w2"), ("O-2", "Pick Goods", "bad time", "w2")])
    day_file(drop, "c.csv", [("O-3", "Pick Goods", "2024-03-01 12:00:00", "w3")])
    res = run(settings)
    # the row exported in both a.csv and b.csv is one record, as it would be on separate runs
    assert (res.files, res.rows_loaded, res.duplicates_skipped, res.rows_rejected) == (3, 3, 1, 2)
    with open_store(settings.db_path, read_only=True) as con:
        got = con.execute("SELECT location, line, field FROM rejects ORDER BY line").fetchall()
    assert [(Path(loc).name, line, field) for loc, line, field in got] == [("b.csv", 3, "step"), ("b.csv", 4, "time")]
