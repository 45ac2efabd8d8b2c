"""Take the README screenshots of every dashboard page (not a test).

    python tests/e2e/screenshots.py --db data/processlens.duckdb --config data/demo-world/processlens.toml

Starts the real server on the store, opens each page in Chromium and writes docs/screenshots/*.png.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = {"health": "", "stuck": "stuck", "case": "case", "process-map": "process-map", "conformance": "conformance",
         "bottlenecks": "bottlenecks", "actions": "actions", "data": "data"}
READY = ("(() => { const a = document.querySelector('[data-test-script-state]');"
         " return a && a.getAttribute('data-test-script-state') !== 'running' && document.querySelector('h1')"
         " && !document.querySelector('[data-testid=stSkeleton]'); })()")


def worst_stuck_case(db: str, config: str | None) -> str | None:
    """The most overdue stuck case (for the Case page), or None without a model."""
    import json

    from dashboard import engines
    from ingest.store import open_store

    settings_now = None
    if config:
        world = Path(config).parent / "world.json"
        if world.exists():
            settings_now = json.loads(world.read_text()).get("now", "").replace("Z", "")
    try:
        with open_store(db, read_only=True) as con:
            df = engines.stuck(con, None, now=settings_now, config=config)
    except Exception:  # noqa: BLE001 - no model: the Case page shows the most recent case
        return None
    return str(df.iloc[0]["case_id"]) if len(df) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--config")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from dashboard.server import start, wait_until_up
    from processlens.config import load_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = start(load_settings(args.db, args.config), port=port, quiet=True)
    try:
        wait_until_up(port, proc=proc, timeout=120)
        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = b.new_page(viewport={"width": 1440, "height": 1000})
            case = worst_stuck_case(args.db, args.config)
            for name, path in PAGES.items():
                url = f"http://127.0.0.1:{port}/{path}" + (f"?case={case}" if name == "case" and case else "")
                page.goto(url)
                page.wait_for_function(READY, timeout=300_000)
                page.wait_for_timeout(1500)
                page.screenshot(path=str(args.out / f"{name}.png"), full_page=False)
                print(name, url)
            b.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
