"""Ingest throughput and peak memory: processlens vs pm4py's own readers, same files, same run.

    python -m bench.bench_ingest --sizes 100k,1M          # writes docs/perf/ingest.md
    python -m bench.bench_ingest --sizes 100k --formats csv --no-write

For each size an order-to-cash-like log (about nine events per order, realistic columns) is
generated with DuckDB as CSV, Parquet and (up to --xes-max events) XES. Every measurement runs in
a fresh child process: events/s counts the work inside the child (reading and, for processlens,
loading into a new DuckDB store file, committed); peak memory is the child's peak RSS (kernel
``ru_maxrss`` via ``os.wait4``), interpreter included for both sides.

pm4py readers: ``pandas.read_csv`` + ``pm4py.format_dataframe``; ``pandas.read_parquet`` +
``pm4py.format_dataframe``; ``pm4py.read_xes`` with its default (``iterparse``) and ``rustxes``
variants.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from bench.common import (
    child_report,
    human_size,
    markdown_table,
    parse_size,
    run_measured,
    timer,
    write_section,
)

ACTIVITIES = ["Create Order", "Check Credit", "Approve Order", "Pick Goods", "Pack Goods", "Ship Goods",
              "Create Invoice", "Payment Received", "Close Order"]
CASE, ACT, TS = "order_id", "activity", "timestamp"


# -- input generation ------------------------------------------------------------------------
def _events_sql(n: int) -> str:
    acts = "[" + ", ".join(f"'{a}'" for a in ACTIVITIES) + "]"
    return f"""
        SELECT 'SO-' || lpad((i // 9)::VARCHAR, 8, '0') AS order_id,
               {acts}[(i % 9)::BIGINT + 1] AS activity,
               TIMESTAMP '2023-01-02 08:00:00' + to_seconds((i // 9) * 613 + (i % 9) * 5400 + (hash(i) % 900)::BIGINT) AS timestamp,
               'user' || lpad((hash(i // 3) % 60)::VARCHAR, 2, '0') AS resource,
               ['North', 'South', 'East', 'West'][(hash(i // 9) % 4)::BIGINT + 1] AS region,
               'C' || lpad((hash(i // 9) % 5000)::VARCHAR, 5, '0') AS customer,
               round(((hash(i // 9) % 100000) / 100.0)::DOUBLE, 2) AS amount
        FROM range({n}) t(i)
    """


def generate(folder: Path, n: int, xes: bool) -> dict[str, Path]:
    """CSV, Parquet (and XES) files of ``n`` events in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / f"o2c_{n}.csv", "parquet": folder / f"o2c_{n}.parquet"}
    con = duckdb.connect()
    con.execute(f"CREATE TABLE ev AS {_events_sql(n)}")
    con.execute(f"COPY (SELECT * REPLACE (strftime(timestamp, '%Y-%m-%d %H:%M:%S') AS timestamp) FROM ev) "
                f"TO '{paths['csv']}' (HEADER)")
    con.execute(f"COPY ev TO '{paths['parquet']}' (FORMAT parquet)")
    if xes:
        paths["xes"] = folder / f"o2c_{n}.xes"
        write_xes(con, paths["xes"])
    con.close()
    return paths


def write_xes(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Write the events as XES 1.0 (traces in order id order, events in time order)."""
    cur = con.execute(
        "SELECT order_id, activity, strftime(timestamp, '%Y-%m-%dT%H:%M:%S.000+00:00'), resource, region, customer, amount "
        "FROM ev ORDER BY order_id, timestamp"
    )
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n<log xes.version="1.0" xes.features="nested-attributes" '
                 'xmlns="http://www.xes-standard.org/">\n')
        current = None
        while rows := cur.fetchmany(100_000):
            buf = []
            for case, act, ts, res, region, customer, amount in rows:
                if case != current:
                    if current is not None:
                        buf.append("</trace>\n")
                    buf.append(f'<trace><string key="concept:name" value="{case}"/>'
                               f'<string key="region" value="{region}"/><string key="customer" value="{customer}"/>\n')
                    current = case
                buf.append(f'<event><string key="concept:name" value="{act}"/><string key="org:resource" value="{res}"/>'
                           f'<date key="time:timestamp" value="{ts}"/><float key="amount" value="{amount}"/></event>\n')
            fh.write("".join(buf))
        if current is not None:
            fh.write("</trace>\n")
        fh.write("</log>\n")


# -- children ----------------------------------------------------------------------------------
class TreeSampler:
    """Peak of the summed RSS of this process and its child processes (the XES parser's workers),
    sampled every 10 ms from /proc while the block runs."""

    def __init__(self) -> None:
        import threading

        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import os

        from processlens.procinfo import status_kb

        me = os.getpid()
        while not self._stop.wait(0.01):
            pids = [me]
            try:
                for task in os.listdir(f"/proc/{me}/task"):
                    with open(f"/proc/{me}/task/{task}/children", encoding="ascii") as fh:
                        pids += [int(p) for p in fh.read().split()]
            except OSError:
                pass
            total = sum(status_kb("VmRSS", pid) or 0 for pid in pids)
            self.peak_kb = max(self.peak_kb, total)


def child(tool: str, path: Path, db: Path | None) -> None:
    """Run one measurement in this (fresh) process and print its JSON result."""
    if tool == "processlens":
        import resource

        # imports are outside the timed work, as pm4py's are: the XES reader's (rustxes, and pandas,
        # which pyarrow imports on its first table, as ``import pm4py`` does); CSV and Parquet need none
        if path.suffix.lower() in (".xes", ".gz"):
            import pandas  # noqa: F401
            import pyarrow  # noqa: F401
            import rustxes  # noqa: F401

        import ingest.sources.csv_file  # noqa: F401
        import ingest.sources.parquet_file  # noqa: F401
        import ingest.sources.xes_file  # noqa: F401
        from ingest.api import ingest_file
        from ingest.store import open_store

        cpu = time.process_time()
        tree = TreeSampler()
        with tree, timer() as t, open_store(db) as con:
            res = ingest_file(con, path, progress=False).result
        # large XES logs are parsed partly in worker processes: their CPU time counts, and their
        # peak memory is added to ours (an upper bound of what ran at the same time)
        workers = resource.getrusage(resource.RUSAGE_CHILDREN)
        child_report(seconds=t["seconds"], cpu=time.process_time() - cpu + workers.ru_utime + workers.ru_stime,
                     events=res.rows_loaded, rejected=res.rows_rejected,
                     worker_peak_kb=ingest.sources.xes_file.last_worker_peak_kb,  # VmHWM, not ru_maxrss
                     tree_peak_kb=tree.peak_kb)
        return
    import pandas as pd
    import pm4py

    cpu = time.process_time()
    with timer() as t:
        if tool == "pm4py-csv":
            df = pm4py.format_dataframe(pd.read_csv(path), case_id=CASE, activity_key=ACT, timestamp_key=TS)
        elif tool == "pm4py-parquet":
            df = pm4py.format_dataframe(pd.read_parquet(path), case_id=CASE, activity_key=ACT, timestamp_key=TS)
        else:
            df = pm4py.read_xes(str(path), variant=tool.split(":", 1)[1])
        n = len(df)
    child_report(seconds=t["seconds"], cpu=time.process_time() - cpu, events=n)


# -- driver ------------------------------------------------------------------------------------
def tools_for(fmt: str, n: int, iterparse_max: int) -> list[str]:
    if fmt == "csv":
        return ["processlens", "pm4py-csv"]
    if fmt == "parquet":
        return ["processlens", "pm4py-parquet"]
    slow = ["pm4py-xes:iterparse"] if n <= iterparse_max else []
    return ["processlens", *slow, "pm4py-xes:rustxes"]


def measure(tool: str, path: Path, work: Path) -> dict:
    db = work / f"store_{tool}_{path.stem}_{path.suffix[1:]}.duckdb"
    db.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "bench.bench_ingest", "--child", tool, "--file", str(path), "--db", str(db)]
    m = run_measured(argv, timeout=1800)
    db.unlink(missing_ok=True)
    if not m.ok:
        return {"tool": tool, "error": (m.stderr.strip().splitlines() or ["failed"])[-1]}
    sec = m.result["seconds"]
    return {"tool": tool, "seconds": sec, "cpu": m.result.get("cpu"), "events": m.result["events"], "eps": m.result["events"] / sec,
            "rss_mb": max(m.peak_rss_mb, m.result.get("tree_peak_kb", 0) / 1024),
            "rss_bound_mb": m.peak_rss_mb + m.result.get("worker_peak_kb", 0) / 1024, "wall": m.seconds}


def run(sizes: list[int], formats: list[str], xes_max: int, work: Path, iterparse_max: int = 100_000) -> list[dict]:
    rows = []
    for n in sizes:
        files = generate(work / "data", n, xes="xes" in formats and n <= xes_max)
        for fmt in formats:
            if fmt not in files:
                continue
            results = [measure(tool, files[fmt], work) for tool in tools_for(fmt, n, iterparse_max)]
            ours = results[0]
            rivals = [r for r in results[1:] if "eps" in r]
            best = max(rivals, key=lambda r: r["eps"], default=None)
            least_mem = min(rivals, key=lambda r: r["rss_mb"], default=None)
            for r in results:
                r.update(format=fmt, size=n)
                if "eps" in r and best and r is ours:
                    r["speed_vs_pm4py"] = ours["eps"] / best["eps"]
                    r["mem_vs_pm4py"] = ours["rss_mb"] / least_mem["rss_mb"]
                rows.append(r)
                print(_line(r), file=sys.stderr, flush=True)
        for p in files.values():
            p.unlink(missing_ok=True)
    return rows


def _line(r: dict) -> str:
    if "error" in r:
        return f"{r['format']:8} {human_size(r['size']):>5} {r['tool']:22} ERROR {r['error']}"
    return (f"{r['format']:8} {human_size(r['size']):>5} {r['tool']:22} {r['seconds']:8.2f}s {r['eps']:>12,.0f} ev/s "
            f"{r['rss_mb']:8.0f} MB")


def report(rows: list[dict], load: str) -> str:
    table = []
    for r in rows:
        if "error" in r:
            table.append([r["format"], human_size(r["size"]), r["tool"], "", "", "", "", "", r["error"]])
            continue
        table.append([
            r["format"], human_size(r["size"]), r["tool"], round(r["seconds"], 2),
            round(r["cpu"], 2) if r.get("cpu") is not None else "", f"{r['eps']:,.0f}",
            round(r["rss_mb"]), f"{r['speed_vs_pm4py']:.2f}×" if "speed_vs_pm4py" in r else "",
            f"{r['mem_vs_pm4py']:.2f}×" if "mem_vs_pm4py" in r else "",
        ])
    headers = ["format", "events", "reader", "seconds", "CPU s", "events/s", "peak RSS MB", "speed vs best pm4py",
               "memory vs leanest pm4py"]
    verdicts = []
    for r in rows:
        if r.get("tool") != "processlens" or "eps" not in r:
            continue
        label = f"{r['format']} {human_size(r['size'])}"
        if r["format"] in ("csv", "parquet"):
            speed = f"{r['eps']:,.0f} events/s ({'met' if r['eps'] >= 1_000_000 else 'missed'}: target 1,000,000)"
        else:
            ratio = r.get("speed_vs_pm4py", 0)
            speed = f"{ratio:.2f}× pm4py's fastest reader ({'met' if ratio >= 1 else 'missed'}: target ≥ 1×)"
        mem = r.get("mem_vs_pm4py", 0)
        bound = ""
        if r.get("rss_bound_mb") and r["rss_bound_mb"] > r["rss_mb"] + 1 and r.get("mem_vs_pm4py"):
            bound = (f" (upper bound, parent's and largest worker's peaks added: {r['rss_bound_mb']:.0f} MB, "
                     f"{mem * r['rss_bound_mb'] / r['rss_mb']:.2f}×)")
        verdicts.append(f"- {label}: {speed}; memory {mem:.2f}× pm4py's ({'met' if mem < 1 else 'missed'}: "
                        f"target < 1×){bound}")
    return "\n".join([
        "## Ingest",
        "",
        "`python -m bench.bench_ingest` (bench/bench_ingest.py). Order-to-cash-like logs generated with DuckDB",
        "(about nine events per order; columns order_id, activity, timestamp, resource, region, customer, amount).",
        "processlens: `ingest_file` into a new DuckDB store file, one committed transaction, column guessing,",
        "validation, dedupe keys, rejects and the case/time layout (sorted, or checked to be in order) included. pm4py: `pandas.read_csv` /",
        "`pandas.read_parquet` + `pm4py.format_dataframe`, and `pm4py.read_xes` (variants `rustxes`, and the",
        "pure-Python `iterparse` up to `--iterparse-max` events: it took 391 s for 1M events here).",
        "Seconds are the wall time of the work inside each child process, CPU s its CPU time (all threads;",
        "steadier than wall time on this shared machine; for processlens it includes the XES parser's worker",
        "processes); peak RSS is the child's own peak (`VmHWM`; each reader in its own fresh process,",
        "interpreter included), for processlens the larger of that and the peak of its process tree's summed",
        "RSS sampled every 10 ms (parent plus XES workers at the same moment); the sum of the parent's and the",
        "largest worker's peaks, an upper bound, is given below the table.",
        "Ratios > 1 mean faster / more memory than pm4py's best.",
        "processlens runs with its default ingest memory cap (`PROCESSLENS_INGEST_MEMORY`: for a file 1.5× its",
        "rows' size in memory, at least 256 MB, at most 1/8 of RAM; beyond it sorts spill to disk next to the store).",
        f"Machine load during the run: {load}. The host's speed varies: single runs of the same build differ by",
        "up to ±20 % here (a fixed pure-Python loop took 0.93-1.74 s within minutes), so compare ratios in one run.",
        "",
        markdown_table(headers, table),
        "",
        "Targets (CSV and Parquet ≥ 1M events/s into the store; XES at least as fast as pm4py's fastest reader;",
        "peak memory below pm4py's):",
        "",
        *verdicts,
        "",
        "Where the time goes (statement profile of a 1M-event CSV import under the default cap, wall seconds on",
        "a quiet machine, 1.4 s in all): reading and mapping the file in one pass (CSV parsing, timestamp parsing,",
        "attributes as JSON: 0.43), the insert into `events` with its dictionary joins and compression (0.41),",
        "new cases (0.08), the commit (0.06), sniffing the file for guessing and for the read (0.07), the order",
        "check (0.04). A CSV file is read once, straight into the mapped rows, and read again the careful way",
        "(a copy that keeps every source record for rejects and finds multi-line records' lines) only when",
        "that read was not exact (docs/decisions.md, \"A CSV file is first read streamed\"). The first load of",
        "a source also skips three costs when it can: text columns are trimmed only if some value has edge",
        "spaces (one scan decides), the mapped rows keep only the columns that vary (a temp table is",
        "uncompressed), and rows that already come in case/time order (as exported logs usually do: checked by",
        "one streaming pass) are written as they are instead of sorted (docs/decisions.md, \"First loads\").",
        "Case ids are unique without an index (migration 0009: its upkeep cost 0.8 s of cases and 0.8 s of",
        "commit at 10M). A source without record ids costs nothing extra: its events are recognised by content",
        "(docs/decisions.md, \"Content keys\"). XES: the Rust parser (the one pm4py uses) is most of the time;",
        "large logs are cut at trace boundaries into six runs per core, which this process and parser workers",
        "claim one at a time, so all cores parse at once and end together (docs/decisions.md, \"XES in",
        "parallel\"), while pm4py parses on one (its parser's own threads help it a little); the remaining gap is",
        "the load into the store (about 1.2 s per million events), which pm4py does not do, and the workers'",
        "start (0.3-0.7 s each). Library imports are outside the timed work on both sides",
        "(pandas, which pyarrow imports for the XES reader, as `import pm4py` does). Small files pay a fixed",
        "0.3-0.4 s (a new store's migrations, sniffing, the commit and the checkpoint).",
        "",
    ])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100k,1M", help="comma-separated event counts, e.g. 100k,1M,10M")
    ap.add_argument("--formats", default="csv,parquet,xes")
    ap.add_argument("--xes-max", default="1M", help="largest XES size to generate (XES is big and slow for pm4py)")
    ap.add_argument("--iterparse-max", default="100k",
                    help="largest size for pm4py's pure-Python XES reader (about 400 s per million events here)")
    ap.add_argument("--work", help="folder for generated files (default: a temporary folder)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not write docs/perf/ingest.md")
    ap.add_argument("--rows-json", help="also save the measured rows as JSON here")
    ap.add_argument("--render", help="re-render docs/perf/ingest.md from a --rows-json file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.render:
        rows = json.loads(Path(args.render).read_text())
        text = report(rows, rows[0].get("load", "not recorded") if rows else "")
        print(text)
        if not args.no_write:
            write_section("ingest", text)
        return
    if args.child:
        child(args.child, Path(args.file), Path(args.db) if args.db else None)
        return
    import os

    sizes = [parse_size(s) for s in args.sizes.split(",")]
    formats = [f.strip() for f in args.formats.split(",")]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        rows = run(sizes, formats, parse_size(args.xes_max), Path(tmp), parse_size(args.iterparse_max))
    load = f"load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end on {os.cpu_count()} cores"
    text = report(rows, load)
    print(text)
    if args.rows_json:
        Path(args.rows_json).write_text(json.dumps([{**r, "load": load} for r in rows], indent=1))
    if not args.no_write:
        print(f"written to {write_section('ingest', text)}", file=sys.stderr)


if __name__ == "__main__":
    main()
