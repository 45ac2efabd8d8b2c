"""Browser benchmark of the dashboard: page render times and filter response on large stores.

For each size, a synthetic order-to-cash store (``bench/synthetic.py``) is written, the real
dashboard server is started on it (``dashboard.server``) with the demo's reference model, and
Debian's Chromium (Playwright) opens every page twice: **cold** (first visit after the server
started: every query runs) and **warm** (a new browser session: results come from the cache
keyed by the store's data version). A render ends when Streamlit's script run has finished and no
element is still loading. The filter response is the time from picking a source system in the
sidebar to the finished rerun. For scale, pm4py computes the process map's numbers (DFG and
variants) from a pandas frame already in memory, in the same run.

Peak memory: the server process's peak RSS (``VmHWM`` from ``/proc``), and pm4py's peak RSS in a
separate child process (``bench.common.run_measured``).

    python -m bench.bench_dashboard --sizes 100000            # quick, under a minute
    python -m bench.bench_dashboard --sizes 1000000,10000000  # writes docs/perf/dashboard.md
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PAGES = {"": "Health", "stuck": "Stuck work", "case": "Case", "actions": "Actions", "process-map": "Process map",
         "conformance": "Conformance & exceptions", "bottlenecks": "Bottlenecks", "data": "Data"}
READY = ("(() => { const a = document.querySelector('[data-test-script-state]');"
         " return a && a.getAttribute('data-test-script-state') !== 'running' && document.querySelector('h1')"
         " && !document.querySelector('[data-testid=stSkeleton]'); })()")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_store(folder: Path, events: int) -> tuple[Path, Path, str, float]:
    """A synthetic store and a config with the demo's reference model; returns (db, config, now, seconds)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import synthetic

    from analytics import incremental
    from ingest.store import open_store

    t0 = time.perf_counter()
    gen = synthetic.generate(synthetic.n_cases_for(events), 7)
    db = folder / f"o2c-{events}.duckdb"
    with open_store(db) as con:
        n = synthetic.write(con, gen)
        # as ingest does after every commit: the analytics aggregates the dashboard reads
        refreshed = incremental.refresh(con)
    model = ROOT / "data" / "demo" / "model"
    config = folder / "processlens.toml"
    now = gen.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    config.write_text(f'[dashboard]\nnow = "{now}"\n\n[models]\ndefault = "order_to_cash"\n\n'
                      f'[models.order_to_cash]\npath = "{model / "order_to_cash.bpmn"}"\n'
                      f'annotations = "{model / "order_to_cash.toml"}"\n')
    print(f"store with {n:,} events written and aggregates refreshed ({refreshed.mode}) in "
          f"{time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return db, config, now, time.perf_counter() - t0


def peak_rss_mb(pid: int) -> float:
    from processlens.procinfo import status_kb

    kb = status_kb("VmHWM", pid)
    return float("nan") if kb is None else kb / 1024


#: Health draws its model-based tiles as "computing" when they take longer than a second, and a
#: fragment fills them in: this waits for that too.
FILLED = ("(() => !document.body.innerText.includes('Computing stuck cases, exceptions and conformance'))()")


def time_page(browser, url: str, filled: dict[str, float] | None = None) -> float:
    """Seconds to the first finished render; with ``filled``, also records when every tile was filled in."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_function(READY, timeout=600_000)
    seconds = time.perf_counter() - t0
    if filled is not None:
        page.wait_for_function(FILLED, timeout=600_000)
        page.wait_for_function(READY, timeout=600_000)
        filled[url] = time.perf_counter() - t0
    ctx.close()
    return seconds


TITLES = {"Health": "Process health"}
#: seconds a reader looks at a page before clicking the next (third navigation session) or changing a filter
LOOK = 2.5


def time_navigation(browser, base: str, look: float = 0) -> dict[str, float]:
    """In one open session, click each page in the sidebar: the time until it finished rendering.

    ``look``: seconds the reader looks at each page before the next click (not counted).
    """
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    page.goto(f"{base}/data")
    page.wait_for_function(READY, timeout=600_000)
    out = {}
    for name in PAGES.values():
        page.wait_for_timeout(look * 1000)
        title = TITLES.get(name, name)
        t0 = time.perf_counter()
        page.locator('[data-testid="stSidebarNav"]').get_by_text(name, exact=True).click()
        page.wait_for_function(f"document.querySelector('h1') && document.querySelector('h1').innerText.trim() === {title!r}",
                               timeout=600_000)
        page.wait_for_function(READY, timeout=600_000)
        out[name] = time.perf_counter() - t0
    ctx.close()
    return out


def time_filter(browser, url: str, source: str, look: float = 0) -> float:
    """Seconds from picking ``source`` in the sidebar to the re-rendered page, ``look`` seconds after it loaded."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    page.goto(url)
    page.wait_for_function(READY, timeout=600_000)
    page.wait_for_timeout(look * 1000)
    page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').first.click()
    t0 = time.perf_counter()
    page.get_by_role("option", name=source).click()
    page.wait_for_url(re.compile(f"source={source}"), timeout=600_000)
    page.wait_for_timeout(50)
    page.wait_for_function(READY, timeout=600_000)
    seconds = time.perf_counter() - t0
    ctx.close()
    return seconds


PLOTLY_IMPORT = """async (name) => { const s = document.querySelector('script[src*="/static/js/index."]');
  const t = performance.now(); await import(new URL(name, s.src).href); return (performance.now() - t) / 1000; }"""


def time_plotly_bundle(browser, base: str) -> float:
    """Seconds a fresh session takes to load Streamlit's Plotly front-end bundle (paid by the first Plotly chart)."""
    from dashboard.components.nav import _plotly_bundle

    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(f"{base}/data")
    page.wait_for_function(READY, timeout=600_000)
    seconds = page.evaluate(PLOTLY_IMPORT, _plotly_bundle())
    ctx.close()
    return seconds


def time_hello_world(browser, folder: Path) -> float:
    """A new session of a one-line Streamlit app on this machine: the front end's own floor."""
    import subprocess

    app = folder / "hello.py"
    app.write_text('import streamlit as st\nst.title("Hello")\n')
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from dashboard.server import wait_until_up

        wait_until_up(port, proc=proc, timeout=60)
        time_page(browser, f"http://127.0.0.1:{port}/")  # the first visit warms the server
        return min(time_page(browser, f"http://127.0.0.1:{port}/") for _ in range(3))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def pm4py_child(events: int) -> None:
    """In a child process: pm4py's DFG (frequency + performance) and variants on an in-memory frame."""
    sys.path.insert(0, str(ROOT / "bench"))
    import pm4py
    import synthetic

    df = synthetic.to_pm4py_frame(synthetic.generate(synthetic.n_cases_for(events), 7))
    t0 = time.perf_counter()
    df = pm4py.format_dataframe(df, case_id="case_id", activity_key="activity", timestamp_key="timestamp")
    pm4py.discover_dfg(df)
    pm4py.discover_performance_dfg(df)
    pm4py.get_variants(df)
    from bench.common import peak_rss_kb

    print(json.dumps({"seconds": time.perf_counter() - t0, "_peak_rss_kb": peak_rss_kb()}))  # VmHWM, see common


def bench_size(events: int, folder: Path, browser_factory) -> dict:
    from bench.common import run_measured
    from dashboard.server import start, wait_until_up
    from processlens.config import load_settings

    db = folder / f"o2c-{events}.duckdb"
    if db.exists() and (folder / "processlens.toml").exists():  # --stores: a store written by an earlier run
        config, build_s = folder / "processlens.toml", None
    else:
        db, config, _now, build_s = build_store(folder, events)
    port = free_port()
    proc = start(load_settings(db, config), port=port, quiet=True)
    try:
        wait_until_up(port, proc=proc, timeout=120)
        base = f"http://127.0.0.1:{port}"
        load_before = load_average()
        with browser_factory() as browser:
            filled: dict[str, float] = {}
            cold = {name: time_page(browser, f"{base}/{path}", filled if name == "Health" else None)
                    for path, name in PAGES.items()}
            warm = {name: time_page(browser, f"{base}/{path}") for path, name in PAGES.items()}
            nav = time_navigation(browser, base)
            nav2 = time_navigation(browser, base)  # a second session: the figures vary on a shared machine
            looked = time_navigation(browser, base, look=LOOK)
            # a reader looks at the page before changing a filter (the Plotly preload runs meanwhile)
            filt = {"Health": time_filter(browser, f"{base}/", "WMS", look=LOOK),
                    "Bottlenecks": time_filter(browser, f"{base}/bottlenecks", "PSP", look=LOOK),
                    "Process map": time_filter(browser, f"{base}/process-map", "ERP", look=LOOK)}
            filt_warm = {"Health": time_filter(browser, f"{base}/", "WMS", look=LOOK)}
            bundle = [time_plotly_bundle(browser, base) for _ in range(2)]
            hello = time_hello_world(browser, folder)
        load_after = load_average()
        server_rss = peak_rss_mb(_streamlit_pid(proc))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    pm = run_measured([sys.executable, "-m", "bench.bench_dashboard", "--pm4py-child", str(events)])
    return {"events": events, "build_seconds": build_s, "cold": cold, "warm": warm, "nav": nav, "nav2": nav2, "nav_looked": looked, "filter": filt,
            "filter_warm": filt_warm, "health_filled": filled.get(f"{base}/"), "plotly_bundle_seconds": bundle,
            "hello_world_seconds": hello, "load_average": [load_before, load_after], "server_peak_rss_mb": server_rss,
            "pm4py_seconds": pm.result.get("seconds"), "pm4py_peak_rss_mb": pm.peak_rss_mb}


def _streamlit_pid(proc) -> int:
    return proc.pid  # dashboard.server.start runs streamlit as the direct child


def table(results: list[dict]) -> str:
    lines = [
        "## Dashboard",
        "",
        "Page render time in a real browser (Chromium via Playwright) against the real server, from navigation",
        "to the finished script run. *Cold*: first visit after the server started (every query runs);",
        "*warm*: a new browser session afterwards (results cached by the store's data version; includes loading",
        "Streamlit's front end); *in-app navigation*: clicking the page in the sidebar of an open session. *Filter*:",
        "picking a source system in the sidebar until the page re-rendered. pm4py column: pm4py's",
        "`format_dataframe` + DFG (frequency and performance) + variants on a pandas frame in memory — the",
        "numbers behind the process map — in the same run. Peak memory: the dashboard server's peak RSS",
        "(`VmHWM`), and pm4py's in a separate child process. `python -m bench.bench_dashboard --sizes ...`",
        "",
    ]
    for r in results:
        lines += [f"### {r['events']:,} events", "",
                  "| page | cold, new session (s) | warm, new session (s) | warm, in-app navigation (s), two sessions "
                  f"| in-app, after a {LOOK:g} s look at the page before (s) |",
                  "|---|---:|---:|---:|---:|"]
        for name in r["cold"]:
            navs = sorted(x[name] for x in (r["nav"], r.get("nav2") or r["nav"]))
            nav_text = f"{navs[0]:.2f}" if navs[0] == navs[1] else f"{navs[0]:.2f}–{navs[1]:.2f}"
            looked = f"{r['nav_looked'][name]:.2f}" if r.get("nav_looked") else "—"
            lines.append(f"| {name} | {r['cold'][name]:.2f} | {r['warm'][name]:.2f} | {nav_text} | {looked} |")
        lines += ["", "| measure | seconds |", "|---|---:|"]
        if r.get("health_filled") is not None:
            lines.append(f"| Health, cold: until the model-based tiles were filled in | {r['health_filled']:.2f} |")
        for name, s in r["filter"].items():
            lines.append(f"| filter change on {name} (first time) | {s:.2f} |")
        for name, s in r["filter_warm"].items():
            lines.append(f"| filter change on {name} (cached) | {s:.2f} |")
        if r.get("hello_world_seconds") is not None:
            lines.append(f"| floor: a one-line Streamlit app, new session (best of 3) | {r['hello_world_seconds']:.2f} |")
        if r.get("plotly_bundle_seconds"):
            b = r["plotly_bundle_seconds"]
            lines.append(f"| floor: loading Plotly's front-end bundle in a session (paid by its first Plotly chart) | "
                         f"{min(b):.2f}–{max(b):.2f} |")
        pm = r["pm4py_seconds"]
        warm_map = min(r["nav"]["Process map"], (r.get("nav2") or r["nav"])["Process map"])
        lines += [f"| pm4py: DFG + performance DFG + variants | {pm:.2f} |" if pm else "| pm4py | failed |",
                  f"| ratio pm4py / Process map page (in-app navigation) | {pm / warm_map:.1f}× |" if pm else "",
                  "", (f"Load average (2 cores, shared) {r['load_average'][0]:.1f} before and "
                       f"{r['load_average'][1]:.1f} after the browser runs. " if r.get("load_average") else "")
                  + f"Peak RSS: dashboard server {r['server_peak_rss_mb']:.0f} MB; pm4py child "
                  f"{r['pm4py_peak_rss_mb']:.0f} MB." + (f" Store written in {r['build_seconds']:.1f} s."
                                                         if r.get("build_seconds") else ""), ""]
    return "\n".join(x for x in lines if x is not None) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000", help="comma-separated event counts (quick: 100000)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "perf" / "dashboard.md")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    ap.add_argument("--stores", type=Path, help="keep the stores in this folder and reuse them in later runs")
    ap.add_argument("--pm4py-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.pm4py_child:
        pm4py_child(args.pm4py_child)
        return
    from contextlib import contextmanager

    from playwright.sync_api import sync_playwright

    @contextmanager
    def browser_factory():
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                yield b
            finally:
                b.close()

    results = []
    with tempfile.TemporaryDirectory(prefix="pl-bench-dash-") as tmp:
        for size in [int(s) for s in args.sizes.split(",") if s]:
            folder = (args.stores or Path(tmp)) / str(size)
            folder.mkdir(parents=True, exist_ok=True)
            results.append(bench_size(size, folder, browser_factory))
            print(json.dumps(results[-1], default=str), file=sys.stderr)
    text = table(results)
    print(text)
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
