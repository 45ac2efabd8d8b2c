"""Coordinator benchmark: dispatch throughput and ingest-to-delivery latency.

* **Throughput**: N queued actions delivered by ``processlens coordinator run --once`` (a separate
  process) to a local HTTP receiver (in this process, answering 200 at once), signed, with
  idempotency keys, leases and one timeline event per action. Reported: actions/s over the whole
  run (process start to exit, including Python start-up) and over the sending phase (first to
  last request), and the coordinator process's peak RSS (``wait4`` rusage).
* **Latency**: a coordinator loop runs (``interval`` 1 s); a CSV with a new event is ingested in
  a separate process; we time from the ingest's commit to the signed request's arrival. The trigger
  is a rule on the arriving event (``when = "event"``) and, when the conformance engine is present,
  an unhandled-exception rule on a tiny reference model (the ingested event is an exception
  nobody handles).

No pm4py counterpart exists for delivery; the table reports our own numbers only.

    python -m bench.bench_dispatch                 # full: 500, 2000, 10000 actions; 10 latency samples
    python -m bench.bench_dispatch --sizes 200     # quick (< 1 min)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from receiver import Receiver, write_config  # noqa: E402

CLI = [sys.executable, "-c", "from processlens.cli import main; main()"]
SECRET = "bench-secret"
MODEL = """process tiny
lane Sales: Create Order, Approve Order, Close Order
lane Finance: Payment Failed, Retry Payment
start Create Order
Create Order -> Approve Order
Approve Order -> Close Order
exception Payment Failed instead of Close Order -> Retry Payment
Retry Payment -> Close Order
final Close Order
"""


def _env(cfg: Path) -> dict[str, str]:
    return {**os.environ, "PROCESSLENS_CONFIG": str(cfg), "PROCESSLENS_WEBHOOK_SECRET": SECRET,
            "PYTHONPATH": str(ROOT)}


def _store(tmp: Path, n_cases: int) -> Path:
    from ingest.api import ingest_file
    from ingest.store import open_store

    db = tmp / "bench.duckdb"
    csv = tmp / "cases.csv"
    csv.write_text("case,activity,timestamp\n" + "".join(
        f"b{i:06d},Create Order,2026-01-01 08:00:00\nb{i:06d},Approve Order,2026-01-01 09:00:00\n" for i in range(n_cases)))
    with open_store(db) as con:
        ingest_file(con, csv, case="case", activity="activity", timestamp="timestamp", source="ERP", progress=False)
    return db


def _config(url: str, extra: str = "") -> str:
    return f"""
[coordinator]
allowlist = ["127.0.0.1"]
batch_size = 100
concurrency = 8
interval = "1s"
lease = "30s"
[rules.hook]
when = "event"
types = ["Payment Failed"]
do = "webhook"
cooldown = "1s"
[rules.hook.target]
url = "{url}/hook"
{extra}"""


def throughput(n: int) -> dict[str, float]:
    from coordinator import enqueue_manual
    from ingest.store import open_store

    with tempfile.TemporaryDirectory() as d, Receiver() as rec:
        tmp = Path(d)
        db = _store(tmp, n)
        cfg = tmp / "processlens.toml"
        s = write_config(cfg, db, _config(rec.url))
        t0 = time.perf_counter()
        with open_store(db) as con:
            enqueue_manual(con, [f"b{i:06d}" for i in range(n)], "webhook", "bench", s)
        enqueue_s = time.perf_counter() - t0
        start = time.perf_counter()
        proc = subprocess.Popen([*CLI, "coordinator", "run", "--once", "--no-evaluate", "--json"], env=_env(cfg),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        total = time.perf_counter() - start
        out = json.loads(proc.stdout.read())
        assert out["dispatch"]["delivered"] == n, out
        keys = rec.keys()
        assert len(keys) == len(set(keys)) == n
        first, last = rec.requests[0].at, rec.requests[-1].at
        return {"actions": n, "enqueue_s": enqueue_s, "total_s": total, "send_phase_s": last - first,
                "per_s_total": n / total, "per_s_sending": n / max(last - first, 1e-9),
                "peak_rss_mb": usage.ru_maxrss / 1024}


def latency(samples: int, with_model: bool) -> list[float]:
    """Seconds from an ingest's commit to the delivered action, one new case per sample."""
    from ingest.store import open_store
    with tempfile.TemporaryDirectory() as d, Receiver() as rec:
        tmp = Path(d)
        db = _store(tmp, 5)
        extra = ""
        if with_model:
            (tmp / "tiny.txt").write_text(MODEL)
            extra = """
[models.tiny]
path = "tiny.txt"
[rules.exc]
when = "unhandled_exception"
do = "webhook"
cooldown = "1s"
[rules.exc.target]
url = "{url}/exc"
""".replace("{url}", rec.url)
        cfg = tmp / "processlens.toml"
        write_config(cfg, db, _config(rec.url, extra))
        loop = subprocess.Popen([*CLI, "coordinator", "run"], env=_env(cfg), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        path = "/exc" if with_model else "/hook"
        out = []
        try:
            time.sleep(3)  # first cycle sets the event watermark
            for i in range(samples):
                case = f"b{i % 5:06d}x{i}"
                csv = tmp / f"new{i}.csv"
                csv.write_text(f"case,activity,timestamp\n{case},Create Order,2026-01-02 08:00:00\n"
                               f"{case},Approve Order,2026-01-02 09:00:00\n{case},Payment Failed,2026-01-02 10:00:00\n")
                returned = time.time()
                subprocess.run([*CLI, "--db", str(db), "ingest", "file", str(csv), "--case", "case", "--activity",
                                "activity", "--timestamp", "timestamp", "--source", "PSP", "--json"],
                               env=_env(cfg), check=True, capture_output=True)
                with open_store(db, read_only=True) as con:  # the run's end is written just before its commit
                    ended = con.execute("SELECT max(ended_at) FROM ingest_runs WHERE job = ?", [f"file:{csv.name}"]
                                        ).fetchone()[0]
                # the commit happened before the process exited; fall back to the start of the command
                committed = ended.replace(tzinfo=UTC).timestamp() if ended else returned
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    arrived = [r for r in rec.succeeded() if r.path == path and r.json.get("case_id") == case]
                    if arrived:
                        out.append(arrived[0].at - committed)
                        break
                    time.sleep(0.01)
        finally:
            loop.terminate()
            loop.wait(timeout=60)
        return out


def _has_models() -> bool:
    try:
        import models

        models.stuck, models.exceptions  # noqa: B018
        return True
    except (ImportError, AttributeError):
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="500,2000,10000", help="comma-separated numbers of actions")
    ap.add_argument("--samples", type=int, default=10, help="latency samples per trigger")
    ap.add_argument("--out", default=str(ROOT / "docs" / "perf" / "dispatch.md"))
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        r = throughput(n)
        rows.append(r)
        print(json.dumps(r))
    lat = {"event rule": latency(args.samples, with_model=False)}
    if _has_models():
        lat["unhandled exception (model)"] = latency(args.samples, with_model=True)
    for k, v in lat.items():
        print(k, [round(x, 2) for x in v])
    lines = [
        "## Dispatch (coordinator)",
        "",
        "`python -m bench.bench_dispatch` — actions delivered by `processlens coordinator run --once` (its own process) to a",
        "local HTTP receiver; each request signed (HMAC-SHA256) with an idempotency key, leased, recorded with its attempt,",
        "audit record and timeline event. Batch 100, 8 concurrent requests. Peak RSS of the coordinator process (wait4).",
        "No pm4py counterpart exists for delivery.",
        f"Load average (1 min) on the machine: {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        f"({os.cpu_count()} cores; other work was running, so absolute numbers are pessimistic).",
        "",
        "| actions | queue (s) | run incl. start-up (s) | sending phase (s) | actions/s (run) | actions/s (sending) | peak RSS (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['actions']:,} | {r['enqueue_s']:.2f} | {r['total_s']:.2f} | {r['send_phase_s']:.2f} | "
                     f"{r['per_s_total']:.0f} | {r['per_s_sending']:.0f} | {r['peak_rss_mb']:.0f} |")
    lines += [
        "",
        "Latency from the commit of an ingest (`processlens ingest file`, separate process) to the arrival of the signed",
        "request, with the coordinator loop running at `interval = 1s` (the loop's wait dominates):",
        "",
        "| trigger | samples | median (s) | p90 (s) | max (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, v in lat.items():
        if v:
            q = sorted(v)
            lines.append(f"| {k} | {len(v)} | {statistics.median(v):.2f} | {q[max(int(len(q) * 0.9) - 1, 0)]:.2f} | {max(v):.2f} |")
        else:
            lines.append(f"| {k} | 0 | – | – | – |")
    if not _has_models():
        lines.append("| unhandled exception (model) | – | not measured: the conformance engine was not installed | | |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
