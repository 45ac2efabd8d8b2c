"""Coordinators as real processes: SIGKILL mid-dispatch, two coordinators at once, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from receiver import Receiver, make_store, write_config

from coordinator import enqueue_manual, list_actions
from ingest.store import open_store

SECRET = "proc-secret"
CLI = [sys.executable, "-c", "from processlens.cli import main; main()"]


def config(receiver_url: str, lease: str = "2s", batch: int = 5, concurrency: int = 2) -> str:
    return f"""
[coordinator]
allowlist = ["127.0.0.1"]
lease = "{lease}"
batch_size = {batch}
concurrency = {concurrency}
backoff_base = "50ms"
interval = "1s"
[rules.hook]
when = "event"
types = ["Approve Order"]
do = "webhook"
[rules.hook.target]
url = "{receiver_url}/hook"
"""


@pytest.fixture
def setup(tmp_path, db_path):
    make_store(db_path, tmp_path, csv_text="case,activity,timestamp,resource\n" + "".join(
        f"k{i:03d},Create Order,2026-01-01 08:00:00,a\n" for i in range(60)))
    with Receiver() as r:
        yield tmp_path, db_path, r


def env_for(cfg) -> dict[str, str]:
    return {**os.environ, "PROCESSLENS_CONFIG": str(cfg), "PROCESSLENS_WEBHOOK_SECRET": SECRET}


def queue(db, settings, n: int) -> list[str]:
    with open_store(db) as con:
        enqueue_manual(con, [f"k{i:03d}" for i in range(n)], "webhook", "ops", settings)
        return list(list_actions(con)["idempotency_key"])


def test_sigkill_mid_dispatch_loses_nothing(setup):
    tmp, db, receiver = setup
    cfg = tmp / "processlens.toml"
    s = write_config(cfg, db, config(receiver.url, lease="2s", batch=5, concurrency=1))
    keys = queue(db, s, 30)
    receiver.delay = 0.15
    proc = subprocess.Popen([*CLI, "coordinator", "run"], env=env_for(cfg), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert receiver.wait_for(7, timeout=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = len(set(receiver.keys()))
    assert before < 30  # killed mid-dispatch
    with open_store(db, read_only=True) as con:
        leased = con.execute("SELECT count(*) FROM actions WHERE status = 'pending' AND lease_owner IS NOT NULL").fetchone()[0]
    assert leased >= 1  # the dead worker still holds a lease
    receiver.delay = 0.0
    proc = subprocess.Popen([*CLI, "coordinator", "run"], env=env_for(cfg), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert receiver.wait_for(30, timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open_store(db, read_only=True) as con:
                if set(list_actions(con)["status"]) == {"delivered"}:
                    break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert set(receiver.keys()) == set(keys)
    duplicates = len(receiver.keys()) - len(set(receiver.keys()))
    assert duplicates <= 5  # only sends in flight at the kill can repeat, with the same idempotency key
    with open_store(db, read_only=True) as con:
        assert set(list_actions(con)["status"]) == {"delivered"}
        events = con.execute("SELECT count(*), count(DISTINCT record_id) FROM event_log WHERE source = 'processlens'").fetchone()
    assert events == (30, 30)


def test_two_coordinators_at_once_send_no_duplicate(setup):
    tmp, db, receiver = setup
    cfg = tmp / "processlens.toml"
    s = write_config(cfg, db, config(receiver.url, lease="10s", batch=5, concurrency=2))
    keys = queue(db, s, 40)
    receiver.delay = 0.05
    procs = [subprocess.Popen([*CLI, "coordinator", "run", "--once", "--no-evaluate", "--json"], env=env_for(cfg),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1].decode()[-2000:] for o in outs]
    got = receiver.keys()
    assert sorted(got) == sorted(keys)  # each action exactly once
    delivered = [json.loads(o[0])["dispatch"]["delivered"] for o in outs]
    assert sum(delivered) == 40
    with open_store(db, read_only=True) as con:
        workers = con.execute("SELECT count(DISTINCT worker) FROM action_attempts").fetchone()[0]
        per_action = con.execute("SELECT max(n) FROM (SELECT count(*) n FROM action_attempts GROUP BY action_id)").fetchone()[0]
    assert per_action == 1
    assert workers == 2 or min(delivered) == 0  # both worked unless one started after all was done


def test_cli_actions_and_rules(setup, monkeypatch):
    from click.testing import CliRunner

    from processlens.cli import cli as root

    tmp, db, receiver = setup
    cfg = tmp / "processlens.toml"
    write_config(cfg, db, config(receiver.url) + """
[rules.broken]
when = "event"
do = "webhook"
[rules.broken.target]
url = "https://not-allowed.example.org/x"
""")
    monkeypatch.setenv("PROCESSLENS_WEBHOOK_SECRET", SECRET)
    runner = CliRunner()

    def cli(*args, ok=True):
        res = runner.invoke(root, ["--config", str(cfg), *args], catch_exceptions=False)
        assert (res.exit_code == 0) is ok, res.output
        return res

    listed = json.loads(cli("rules", "list", "--json").stdout)
    by = {r["rule"]: r for r in listed}
    assert by["hook"]["problems"] == [] and "allowlist" in by["broken"]["problems"][0]
    test = json.loads(cli("rules", "test", "hook", "--json").stdout)
    assert test["matched"] == 0 and test["mode"] == "dry_run"
    receiver.status = 503
    out = json.loads(cli("actions", "dispatch", "k001", "k002", "--action", "webhook", "--rule", "hook", "--json",
                         "--actor", "alice").stdout)
    assert out["preview"]["cases"] == 2 and len(out["action_ids"]) == 2
    cli("coordinator", "run", "--once", "--no-evaluate")
    rows = json.loads(cli("actions", "list", "--json").stdout)
    assert {r["status"] for r in rows} == {"pending"} and all(r["attempts"] == 1 for r in rows)
    assert all(r["actor"] == "alice" for r in rows)
    shown = json.loads(cli("actions", "show", str(rows[0]["action_id"]), "--json").stdout)
    assert shown["attempts_log"][0]["status_code"] == 503
    err = cli("actions", "retry", "999", ok=False)
    assert "no action with id 999" in err.stderr and "what to do" in err.stderr
    for group in (["coordinator", "run"], ["actions", "list"], ["actions", "retry"], ["rules", "test"]):
        assert "Usage" in cli(*group, "--help").stdout
    # as a real process, errors with --json come out as JSON
    p = subprocess.run([*CLI, "rules", "test", "nope", "--json"], env=env_for(cfg), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2 and json.loads(p.stdout)["error"] == "ConfigError"


def test_heartbeats_keep_a_slow_send_leased(setup):
    """A send that outlasts the lease keeps it by heartbeats: another dispatcher cannot take the action."""
    from coordinator.dispatcher import Dispatcher

    tmp, db, receiver = setup
    cfg = tmp / "processlens.toml"
    # lease and delay leave the heartbeats room on a loaded 2-core machine (a 1.5 s lease was lost there)
    s = write_config(cfg, db, config(receiver.url, lease="3s", batch=5, concurrency=1))
    (key,) = queue(db, s, 1)
    receiver.delay = 8.0  # much longer than the lease
    proc = subprocess.Popen([*CLI, "coordinator", "run", "--once", "--no-evaluate"], env=env_for(cfg),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not receiver.requests and time.monotonic() < deadline:  # recorded when the slow answer is sent
            with open_store(db, read_only=True) as con:
                if con.execute("SELECT count(*) FROM actions WHERE lease_owner IS NOT NULL").fetchone()[0]:
                    break
            time.sleep(0.05)
        time.sleep(4.0)  # now past the first lease: only heartbeats keep it
        other = Dispatcher.from_settings(s)
        try:
            assert other.claim() == []
        finally:
            other.close()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert receiver.keys() == [key]
    with open_store(db, read_only=True) as con:
        assert con.execute("SELECT status, attempts FROM actions").fetchall() == [("delivered", 1)]
