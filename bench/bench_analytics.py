"""Benchmark: processlens analytics (DuckDB) against pm4py on the same synthetic order-to-cash log.

For every size the log is generated once (bench/synthetic.py) into a store and into a Parquet file;
then separate worker processes measure, each reporting its own peak RSS (``ru_maxrss``):

- ``pm4py``: reads the Parquet into a pandas DataFrame (not timed), then times ``format_dataframe``,
  ``discover_dfg`` + ``discover_performance_dfg``, ``get_variants`` and ``get_all_case_durations``;
- ``ours``: opens the store read-only and times ``dfg`` (with performance), ``variants`` and ``cases``
  on the maintained aggregates (best of 3), plus the same three computed straight from the events;
- ``build``: the full (re)build of the aggregates, i.e. what a recomputation from scratch costs;
- ``append``: on a copy of the store, ``--rounds`` times: appends 1 % new events and times the incremental
  refresh plus the three queries, against a full rebuild plus the three queries.

The results of both sides are compared (edge counts, variant counts, total case duration) so a
fast wrong answer cannot pass. Writes a Markdown table to docs/perf/analytics.md.

    python -m bench.bench_analytics --sizes 100k            # quick run, under a minute
    python -m bench.bench_analytics --sizes 100k,1M,10M
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

SEED = 7


def peak_mb() -> float:
    """This process's peak RSS (VmHWM, see processlens.procinfo)."""
    from processlens.procinfo import peak_rss_kb

    return peak_rss_kb() / 1024.0


CPU: dict[str, float] = {}  # CPU seconds (all threads of this process) of the last timed() call per label


def timed(fn, repeat: int = 1, label: str | None = None):
    """Best wall-clock seconds of ``repeat`` runs and the last result; CPU seconds of the best run go to CPU."""
    best, result, best_cpu = None, None, None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if best is None or dt < best:
            best, best_cpu = dt, dc
    if label:
        CPU[label] = best_cpu
    return best, result


def digest_dfg(edges: dict) -> dict:
    return {f"{a}>{b}": int(n) for (a, b), n in sorted(edges.items())}


# -- workers -------------------------------------------------------------------------------------
def worker_pm4py(parquet: str) -> dict:
    import pandas as pd

    warnings.simplefilter("ignore")
    import pm4py

    df = pd.read_parquet(parquet)
    loaded_mb = peak_mb()
    t_fmt, df = timed(lambda: pm4py.format_dataframe(df, case_id="case_id", activity_key="activity",
                                                      timestamp_key="timestamp"), label="format_dataframe")
    t_dfg, (freq, _, _) = timed(lambda: pm4py.discover_dfg(df), label="dfg1")
    t_perf, _ = timed(lambda: pm4py.discover_performance_dfg(df), label="dfg2")
    t_var, var = timed(lambda: pm4py.get_variants(df), label="variants")
    t_cases, durations = timed(lambda: pm4py.get_all_case_durations(df), label="cases")
    cpu = {"format_dataframe": CPU["format_dataframe"], "dfg": CPU["dfg1"] + CPU["dfg2"], "variants": CPU["variants"],
           "cases": CPU["cases"]}
    return {
        "format_dataframe": t_fmt, "dfg": t_dfg + t_perf, "variants": t_var, "cases": t_cases, "cpu": cpu,
        "peak_mb": peak_mb(), "loaded_mb": loaded_mb,
        "check": {"edges": digest_dfg(dict(freq)), "variants": len(var), "cases": len(durations),
                  "duration_sum": float(sum(durations))},
    }


def _ours_queries(con, use_aggregates: bool | None, repeat: int) -> tuple[dict, dict]:
    from analytics import cases, dfg, variants

    t_dfg, d = timed(lambda: dfg(con, use_aggregates=use_aggregates), repeat, "dfg")
    t_var, v = timed(lambda: variants(con, use_aggregates=use_aggregates), repeat, "variants")
    t_cases, c = timed(lambda: cases(con, use_aggregates=use_aggregates), repeat, "cases")
    check = {"edges": digest_dfg({(a, b): n for a, b, n in zip(d.edges.source, d.edges.target, d.edges.frequency,
                                                                strict=True)}),
             "variants": len(v), "cases": len(c), "duration_sum": float(c.duration_seconds.sum())}
    return {"dfg": t_dfg, "variants": t_var, "cases": t_cases}, check


def worker_ours(db: str) -> dict:
    from analytics import is_fresh
    from ingest.store import open_store

    with open_store(db, read_only=True) as con:
        assert is_fresh(con), "aggregates must be built before the query benchmark"
        times, check = _ours_queries(con, None, repeat=3)
    return {**times, "cpu": {k: CPU[k] for k in ("dfg", "variants", "cases")}, "peak_mb": peak_mb(), "check": check}


def worker_ours_events(db: str) -> dict:
    from ingest.store import open_store

    with open_store(db, read_only=True) as con:
        times, _ = _ours_queries(con, False, repeat=1)
    return {**times, "peak_mb": peak_mb()}


def worker_build(db: str) -> dict:
    from analytics import rebuild
    from ingest.store import open_store

    with open_store(db) as con:
        t, _ = timed(lambda: rebuild(con))
        con.execute("CHECKPOINT")
    return {"build": t, "peak_mb": peak_mb()}


def worker_append(db: str, n_cases: int, rounds: int = 3) -> dict:
    """``rounds`` times, each on a fresh copy of the store: append the same 1 % of new events, then time the
    incremental refresh plus the three queries, then a full rebuild plus the three queries (one process)."""
    import synthetic

    from analytics import rebuild, refresh
    from ingest.store import open_store

    now0 = synthetic.EPOCH + timedelta(days=synthetic.SPAN_DAYS)
    new_now = synthetic.now_for_append(n_cases, SEED, now0, 0.01)
    out: dict = {"rounds": []}
    copy = Path(db).with_name(Path(db).stem + "_round.duckdb")
    for _ in range(rounds):
        shutil.copy(db, copy)
        with open_store(copy) as con:
            events = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
            added = synthetic.append(con, n_cases, SEED, now0, new_now)
            con.execute("CHECKPOINT")  # the ingest's own work: its events reach the data file before timing
            load = os.getloadavg()[0]

            def incremental():
                r = refresh(con)
                assert r.mode == "incremental", r
                return r, _ours_queries(con, True, 1)[0]

            t_inc, (r, q_inc) = timed(incremental, label="inc")
            t_ckpt, _ = timed(lambda: con.execute("CHECKPOINT"))  # writes the refresh's changes to the data file

            def full():
                rb = rebuild(con)
                return rb, _ours_queries(con, True, 1)[0]

            t_full, (rb, q_full) = timed(full, label="full")
        copy.unlink()
        out["rounds"].append({
            "events_before": events, "appended": added, "touched_cases": r.touched_cases,
            "rewritten_cases": r.rewritten_cases, "refresh": r.seconds, "full_refresh": rb.seconds,
            "checkpoint_after_refresh": t_ckpt,
            "incremental_total": t_inc, "full_total": t_full, "cpu_inc": CPU["inc"], "cpu_full": CPU["full"],
            "queries_after_incremental": q_inc, "queries_after_full": q_full, "load": load})
    out["peak_mb"] = peak_mb()
    return out


def append_summary(a: dict) -> dict:
    """The median round of an append measurement (by the ratio with queries), plus the ranges of the ratios."""
    rounds = a.get("rounds") or [a]  # results of older runs had one round, flat
    ratio = [x["incremental_total"] / x["full_total"] for x in rounds]
    agg = [x["refresh"] / x["full_refresh"] for x in rounds]
    mid = sorted(range(len(rounds)), key=lambda i: ratio[i])[len(rounds) // 2]
    return {**rounds[mid], "n_rounds": len(rounds), "ratio_range": (min(ratio), max(ratio)),
            "agg_range": (min(agg), max(agg)), "ratio": ratio[mid], "agg_ratio": agg[mid],
            "cpu_ratio": (rounds[mid]["cpu_inc"] / rounds[mid]["cpu_full"]) if "cpu_inc" in rounds[mid] else None,
            "loads": [x.get("load") for x in rounds]}


WORKERS = {"pm4py": worker_pm4py, "ours": worker_ours, "ours_events": worker_ours_events, "build": worker_build,
           "append": worker_append}


def run_worker(name: str, *args: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- driver --------------------------------------------------------------------------------------
def prepare(size: int, work: Path) -> tuple[Path, Path, int, int]:
    import synthetic

    from ingest.store import open_store

    n_cases = synthetic.n_cases_for(size)
    gen = synthetic.generate(n_cases, SEED)
    db = work / f"o2c_{size}.duckdb"
    parquet = work / f"o2c_{size}.parquet"
    for p in (db, parquet):
        if p.exists():
            p.unlink()
    with open_store(db) as con:
        events = synthetic.write(con, gen)
    synthetic.to_pm4py_frame(gen).to_parquet(parquet)
    return db, parquet, events, n_cases


def bench_size(size: int, work: Path, with_pm4py: bool, log, rounds: int = 3) -> dict:
    load_before = os.getloadavg()[0]
    log(f"== {size:,} events: generating (load average {load_before:.1f})")
    db, parquet, events, n_cases = prepare(size, work)
    log("   build aggregates")
    build = run_worker("build", str(db))
    log(f"   build {build['build']:.2f}s; queries on aggregates")
    ours = run_worker("ours", str(db))
    log(f"   ours dfg {ours['dfg']:.3f}s variants {ours['variants']:.3f}s cases {ours['cases']:.3f}s; from events")
    direct = run_worker("ours_events", str(db))
    log("   append 1 % and refresh")
    append = run_worker("append", str(db), str(n_cases), str(rounds))
    summary = append_summary(append)
    log(f"   append: ratio with queries {summary['ratio']:.3f} (rounds {summary['ratio_range'][0]:.3f}–"
        f"{summary['ratio_range'][1]:.3f}), aggregates only {summary['agg_ratio']:.3f}")
    theirs = None
    if with_pm4py:
        log("   pm4py")
        theirs = run_worker("pm4py", str(parquet))
        for key in ("edges", "variants", "cases"):
            if theirs["check"][key] != ours["check"][key]:
                raise AssertionError(f"results differ from pm4py at {size} events: {key}")
        if abs(theirs["check"]["duration_sum"] - ours["check"]["duration_sum"]) > 1e-6 * max(1.0, theirs["check"]["duration_sum"]):
            raise AssertionError("total case duration differs from pm4py")
        log(f"   pm4py format {theirs['format_dataframe']:.2f}s dfg {theirs['dfg']:.2f}s variants {theirs['variants']:.2f}s "
            f"cases {theirs['cases']:.2f}s peak {theirs['peak_mb']:.0f} MB")
    db.unlink()
    parquet.unlink()
    return {"size": size, "events": events, "cases": n_cases, "ours": ours, "direct": direct, "build": build,
            "append": append, "pm4py": theirs, "load": [load_before, os.getloadavg()[0]]}


def markdown(results: list[dict]) -> str:
    out = [
        "# Analytics performance: processlens (DuckDB) vs pm4py",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python {platform.python_version()}. "
        "Generated by `python bench/bench_analytics.py` on the synthetic order-to-cash log of `bench/synthetic.py` "
        "(16 activities, 4 source systems, rework, exceptions, open cases at the cut). Each figure comes from a separate "
        "process; peak memory is that process's peak RSS (`VmHWM`), which for pm4py includes the DataFrame it is "
        "given (read from Parquet before timing) and for processlens DuckDB's buffers and the returned DataFrames.",
        "",
        "Our side reads the maintained aggregates (`an_edges`, `an_cases`, `an_variants`, kept up to date "
        "incrementally after each ingest); \"from events\" computes the same results straight from the events table "
        "with window functions, as happens when a filter drops single events. pm4py's side times `format_dataframe` "
        "separately and then `discover_dfg` + `discover_performance_dfg` (DFG), `get_variants`, "
        "`get_all_case_durations` (case table). Both sides' results are compared in the run (edge counts, variant "
        "counts, number of cases, total case duration).",
        "",
        "## DFG with performance, variants, case table",
        "",
        "| events | cases | ours DFG s | ours variants s | ours cases s | ours total s | ours peak MB | pm4py format s "
        "| pm4py DFG s | pm4py variants s | pm4py cases s | pm4py total s | pm4py peak MB | speed-up (excl. format) "
        "| speed-up (incl. format) | memory ratio |",
        "|" + "---|" * 16,
    ]
    loads = [f"{r['events']:,} events: {r['load'][0]:.1f} → {r['load'][1]:.1f}" for r in results if "load" in r]
    if loads:
        out[3:3] = ["", "1-minute load average of the machine (2 cores, shared with other work) at the start → end of "
                    "each size: " + "; ".join(loads) + ". Figures taken under a load well above 2 are slower than on "
                    "an idle machine, for both sides.", ""]
    for r in results:
        o, p = r["ours"], r["pm4py"]
        tot = o["dfg"] + o["variants"] + o["cases"]
        if p:
            ptot = p["dfg"] + p["variants"] + p["cases"]
            extra = (f"{p['format_dataframe']:.2f} | {p['dfg']:.2f} | {p['variants']:.2f} | {p['cases']:.2f} | {ptot:.2f} | "
                     f"{p['peak_mb']:,.0f} | {ptot / tot:.1f}× | {(ptot + p['format_dataframe']) / tot:.1f}× | "
                     f"{o['peak_mb'] / p['peak_mb']:.2f} |")
        else:
            extra = "– | – | – | – | – | – | – | – | – |"
        out.append(f"| {r['events']:,} | {r['cases']:,} | {o['dfg']:.3f} | {o['variants']:.3f} | {o['cases']:.3f} | "
                   f"{tot:.3f} | {o['peak_mb']:,.0f} | " + extra)
    if any(r["pm4py"] and "cpu" in r["pm4py"] and "cpu" in r["ours"] for r in results):
        out += ["", "## CPU seconds (all threads of the measuring process)", "",
                "CPU time is what the work costs regardless of how busy the machine was; DuckDB spreads it over both "
                "cores, pm4py/pandas mostly use one.", "",
                "| events | ours DFG | ours variants | ours cases | ours total | pm4py format | pm4py DFG | pm4py variants "
                "| pm4py cases | pm4py total (excl. format) | ratio |", "|" + "---|" * 11]
        for r in results:
            o, p = r["ours"].get("cpu"), (r["pm4py"] or {}).get("cpu")
            if not (o and p):
                continue
            ot = o["dfg"] + o["variants"] + o["cases"]
            pt = p["dfg"] + p["variants"] + p["cases"]
            out.append(f"| {r['events']:,} | {o['dfg']:.2f} | {o['variants']:.2f} | {o['cases']:.2f} | {ot:.2f} | "
                       f"{p['format_dataframe']:.2f} | {p['dfg']:.2f} | {p['variants']:.2f} | {p['cases']:.2f} | {pt:.2f} | "
                       f"{pt / ot:.1f}× |")
    out += ["", "## Without the maintained aggregates, and their cost", "",
            "| events | from events: DFG s | variants s | cases s | peak MB | full build of aggregates s | build peak MB |",
            "|---|---|---|---|---|---|---|"]
    for r in results:
        d, b = r["direct"], r["build"]
        out.append(f"| {r['events']:,} | {d['dfg']:.2f} | {d['variants']:.2f} | {d['cases']:.2f} | {d['peak_mb']:,.0f} | "
                   f"{b['build']:.2f} | {b['peak_mb']:,.0f} |")
    out += ["", "## After appending 1 % new events: incremental refresh vs full recomputation", "",
            "Each round appends 1 % new events (new events of running cases and first events of new ones, as a "
            "new ingest run), then times in the same process the incremental refresh plus DFG, variants and case "
            "table, and right after it a full rebuild plus the same three queries. The row shows the median round "
            "(by the ratio with queries); the ranges cover all rounds. CPU ratio: CPU seconds of all threads of the "
            "process, incremental vs full, median round. The appended events are checkpointed into the data file "
            "before timing (that is the ingest's work); the checkpoint that later writes the refresh's own changes "
            "from the write-ahead log into the data file is timed separately (last but one column, not in the "
            "ratios; the full rebuild's large inserts go to the data file directly and are in its time).", "",
            "| events | rounds | appended | touched cases (recomputed in full) | incremental refresh s | full rebuild s | ratio (aggregates) "
            "| incremental + queries s | full rebuild + queries s | ratio (with queries) | range (with queries) "
            "| CPU ratio (with queries) | checkpoint after the refresh s | load average (rounds) |",
            "|" + "---|" * 14]
    for r in results:
        a = append_summary(r["append"])
        lo, hi = a["ratio_range"]
        cpu = f"{a['cpu_ratio']:.3f}" if a["cpu_ratio"] is not None else "–"
        loads = ", ".join(f"{x:.1f}" for x in a["loads"] if x is not None) or "–"
        out.append(f"| {a['events_before']:,} | {a['n_rounds']} | {a['appended']:,} | {a['touched_cases']:,} "
                   f"({a.get('rewritten_cases', '–')}) | "
                   f"{a['refresh']:.2f} | {a['full_refresh']:.2f} | {a['agg_ratio']:.3f} | {a['incremental_total']:.2f} | "
                   f"{a['full_total']:.2f} | {a['ratio']:.3f} | {lo:.3f}–{hi:.3f} | {cpu} | "
                   f"{a.get('checkpoint_after_refresh', float('nan')):.2f} | {loads} |")
    out += ["", "Queries after each refresh (s, median round): DFG / variants / case table.", "",
            "| events | after incremental | after full rebuild |", "|---|---|---|"]
    for r in results:
        a = append_summary(r["append"])
        qi, qf = a["queries_after_incremental"], a["queries_after_full"]
        out.append(f"| {a['events_before']:,} | {qi['dfg']:.3f} / {qi['variants']:.3f} / {qi['cases']:.3f} | "
                   f"{qf['dfg']:.3f} / {qf['variants']:.3f} / {qf['cases']:.3f} |")
    out += ["", "## Targets (largest size measured)", ""] + targets(results[-1])
    out += ["", "## Reading the figures", "",
            "- The machine is shared: when the load average is far above the 2 cores, wall-clock times of both sides "
            "grow, pm4py's (one busy thread) more than DuckDB's (two threads), which inflates the wall-clock speed-up. "
            "The CPU-seconds table is the conservative comparison.",
            "- Our query times are the time for the Python API call, including opening the result as a pandas "
            "DataFrame (1.1 million rows for the case table at 10 M events) and the freshness check of the aggregates.",
            "- The incremental refresh reads only the new events: a case whose new events all come after its last "
            "one is continued from its summary row (`an_cases`) and its variant's activity sequence; only a case "
            "that gets an event before its last one is recomputed from all its events (in parentheses in the table). "
            "The per-edge statistics (`an_edge_stats`: counts, sums, min, median, p90, max) change by the pairs "
            "added and removed; the quantiles stay exact through a histogram per edge and the kept contents of "
            "the buckets around each quantile, so the unfiltered DFG reads 31 rows instead of 9 million pairs. "
            "The case table reads `an_case_rows` (the case summaries with their case id, maintained with them) "
            "instead of joining a million case ids.",
            "- Measured, not explained yet: the case table is slower right after an incremental refresh than after "
            "a full rebuild (second table above). A likely cause, not verified: the refresh replaces the touched "
            "cases' rows by deleting and appending, which leaves deleted rows spread over the table's row groups.",
            "- The ratio is reached at 10 million events; at 100 thousand and 1 million events the fixed cost of "
            "the refresh's thirty-odd statements (a few milliseconds each) is a large share of a rebuild that "
            "itself takes under three seconds.",
            "- The wall-clock ratio depends on how busy the machine is: the full rebuild is a few large parallel "
            "queries that use both cores when they are free, the incremental refresh about thirty small ones, so a "
            "quieter machine shortens the rebuild more. The CPU-seconds ratio does not depend on it.",
            "- Before this (first measurement, load average about 8): at 9,995,824 events the incremental refresh "
            "took 2.27 s and with the three queries 4.64 s, against 31.20 s and 33.50 s for the full rebuild: "
            "0.073 without and 0.14 with the queries.",
            "- pm4py's results are checked against ours in every run; a mismatch aborts the benchmark."]
    return "\n".join(out) + "\n"


def targets(r: dict) -> list[str]:
    """The issue's targets, checked against one size's figures."""
    o, p = r["ours"], r["pm4py"]
    a = append_summary(r["append"])
    tot = o["dfg"] + o["variants"] + o["cases"]

    def mark(ok: bool) -> str:
        return "met" if ok else "**not met**"

    lines = [f"At {r['events']:,} events:", ""]
    for key in ("dfg", "variants", "cases"):
        lines.append(f"- {key} under 1 s: {o[key]:.3f} s — {mark(o[key] < 1.0)}")
    if p:
        ptot = p["dfg"] + p["variants"] + p["cases"]
        lines.append(f"- together at least 10× faster than pm4py: {ptot / tot:.1f}× without `format_dataframe`, "
                     f"{(ptot + p['format_dataframe']) / tot:.1f}× with it — {mark(ptot / tot >= 10)}")
        lines.append(f"- at most a third of pm4py's peak memory: {o['peak_mb']:,.0f} MB vs {p['peak_mb']:,.0f} MB "
                     f"({o['peak_mb'] / p['peak_mb']:.2f}) — {mark(o['peak_mb'] <= p['peak_mb'] / 3)}")
    def every(ratio: float, lo: float, hi: float) -> str:
        if hi < 0.1:
            return "met in every round"
        return f"met in the median round, not in every round (up to {hi:.3f})" if ratio < 0.1 else "**not met**"

    lo, hi = a["agg_range"]
    lines.append(f"- refreshing the aggregates after appending 1 % under a tenth of a full recomputation (wall clock): "
                 f"{a['agg_ratio']:.3f}, rounds {lo:.3f}–{hi:.3f} — {every(a['agg_ratio'], lo, hi)}")
    lo, hi = a["ratio_range"]
    cpu = f"; CPU seconds {a['cpu_ratio']:.3f}" if a.get("cpu_ratio") is not None else ""
    lines.append(f"- the same including the three queries the dashboard then runs on them (wall clock): {a['ratio']:.3f}, "
                 f"rounds {lo:.3f}–{hi:.3f}{cpu} — {every(a['ratio'], lo, hi)}")
    return lines


def parse_size(text: str) -> int:
    """``100000``, ``100k``, ``1M``, ``1e6`` -> events."""
    t = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if scale > 1 else t) * scale)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100k,1M", help="comma-separated event counts, e.g. 100k,1M,10M (default 100k,1M)")
    ap.add_argument("--rounds", type=int, default=3, help="append-and-refresh rounds per size (default 3)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "perf" / "analytics.md")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--workdir", type=Path, help="where to put the generated stores (default: a temp folder)")
    ap.add_argument("--no-pm4py", action="store_true", help="skip the pm4py side")
    ap.add_argument("--report", type=Path, help="only rewrite the Markdown from a --json file of an earlier run")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        fn = WORKERS[a.worker]
        args = [int(x) if x.isdigit() else x for x in a.args]
        print(json.dumps(fn(*args), default=float))
        return
    if a.report:
        a.out.write_text(markdown(json.loads(a.report.read_text())))
        return
    sizes = [parse_size(s) for s in a.sizes.split(",") if s]

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    work = a.workdir or Path(tempfile.mkdtemp(prefix="pl-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results = [bench_size(s, work, not a.no_pm4py, log, a.rounds) for s in sizes]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(markdown(results))
    if a.json:
        a.json.write_text(json.dumps(results, indent=2, default=float))
    log(f"wrote {a.out}")
    print(markdown(results))


if __name__ == "__main__":
    main()
