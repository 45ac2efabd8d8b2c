"""``processlens demo``: build the order-to-cash demo world, ingest it, open the dashboard."""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

import click

from processlens.cli.common import emit, json_option
from processlens.config import DEFAULT_DB, remember_config
from processlens.errors import ConfigError, ProcesslensError

DEMO_META_KEY = "demo_world"


def _store_path(ctx: click.Context) -> Path:
    """The global ``--db`` (or PROCESSLENS_DB), else the default store; a user's own config is not consulted."""
    db = ctx.find_root().params.get("db")
    return Path(db) if db else DEFAULT_DB


def demo_sources(config_path: Path) -> set[str]:
    """Source names the demo's jobs write (their ``source``, or the job name)."""
    import tomllib

    with open(config_path, "rb") as fh:
        jobs = tomllib.load(fh).get("jobs", {})
    return {str(t.get("source") or name) for name, t in jobs.items() if isinstance(t, dict)}


def foreign_sources(db_path: Path, allowed: set[str]) -> list[str]:
    """Sources in an existing store that the demo did not write (empty for a new or demo store)."""
    if not db_path.exists():
        return []
    from ingest.store import open_store

    with open_store(db_path) as con:
        names = [r[0] for r in con.execute("SELECT name FROM sources ORDER BY name").fetchall()]
    return [n for n in names if n not in allowed]


def remove_store(db_path: Path) -> None:
    for p in (db_path, db_path.with_name(db_path.name + ".wal")):
        p.unlink(missing_ok=True)


def _parse_now(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"--now {value!r} is not an ISO time", hint="write it like 2026-11-24T12:00:00Z") from exc


@click.command("demo")
@click.option("--cases", default=5000, show_default=True, type=click.IntRange(min=1), help="Number of orders.")
@click.option("--seed", default=7, show_default=True, type=int, help="Random seed (same seed and --now: same world).")
@click.option("--days", default=400, show_default=True, type=click.IntRange(min=7),
              help="Days of history: orders are created over this many days before now.")
@click.option("--dir", "out_dir", default="data/demo-world", show_default=True, type=click.Path(file_okay=False),
              help="Folder the four systems' files are written to.")
@click.option("--truth-out", type=click.Path(dir_okay=False), help="Write the ground-truth labels (JSON) here.")
@click.option("--now", "now_text", help="Generate the world as of this UTC time (ISO 8601; default: now).")
@click.option("--no-dashboard", is_flag=True, help="Exit after loading (for scripts and tests).")
@click.option("--port", default=8501, show_default=True, type=int, help="Port of the dashboard.")
@click.option("--force", is_flag=True, help="Replace the store even when it holds sources other than the demo's.")
@json_option
@click.pass_context
def demo(ctx, cases, seed, days, out_dir, truth_out, now_text, no_dashboard, port, force, as_json):
    """Build the order-to-cash demo world, ingest it with its jobs and start the dashboard.

    Four systems in their native forms (ERP SQLite, warehouse CSV exports, help-desk JSON, payment
    provider JSON lines) are written to --dir and loaded into the store (--db) by the same jobs a
    user would configure (--dir/processlens.toml). A previous demo store is replaced; a store with
    other sources is left alone unless --force.
    """
    from ingest.api import stats as store_stats
    from ingest.jobs import run_jobs
    from ingest.store import open_store
    from processlens.config import load_settings
    from processlens.demo.world import TEMPLATE_DIR, build_world

    db_path = _store_path(ctx)
    allowed = demo_sources(TEMPLATE_DIR / "processlens.toml")
    foreign = foreign_sources(db_path, allowed)
    if foreign and not force:
        raise ConfigError(
            f"the store {db_path} holds sources that are not the demo's: {', '.join(foreign)}",
            hint="pass --db with another file for the demo, or --force to replace this store",
            where={"store": str(db_path)},
        )
    say = (lambda msg: None) if as_json else (lambda msg: click.echo(msg, err=True))
    t0 = time.monotonic()
    world = build_world(Path(out_dir), cases=cases, seed=seed, now=_parse_now(now_text), log=say,
                        days=days)
    say(f"world written to {world.dir} in {time.monotonic() - t0:.1f}s; ingesting into {db_path}")
    if truth_out:
        Path(truth_out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(world.dir / "truth.json", truth_out)
    remove_store(db_path)
    settings = load_settings(db=db_path, config=world.config_path)
    t1 = time.monotonic()
    results = run_jobs(settings, progress=not as_json and sys.stderr.isatty())
    failed = [r for r in results if r.status != "succeeded"]
    if failed:
        raise ProcesslensError(
            "demo ingest failed: " + "; ".join(f"{r.job}: {r.error}" for r in failed),
            hint=f"the world is in {world.dir}; run 'processlens --db {db_path} --config {world.config_path} ingest run' to retry",
        )
    for r in results:
        say(r.summary())
    info = {**world.info(), "dir": str(world.dir.resolve())}
    with open_store(db_path) as con:
        con.execute("INSERT INTO store_meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [DEMO_META_KEY, json.dumps(info)])
        remember_config(con, world.config_path)
        loaded = store_stats(con)
    say(f"ingested in {time.monotonic() - t1:.1f}s")
    data = {"world": info, "store": str(db_path), "config": str(world.config_path), "truth": truth_out,
            "jobs": [r.to_dict() for r in results], "stats": loaded}
    c = world.counts
    lines = [
        f"demo world: {c['cases']:,} orders, {c['events']:,} events "
        f"({', '.join(f'{k} {v:,}' for k, v in c['by_system'].items())}), now = {info['now']}",
        f"  ground truth: {c['open']:,} open, {c['stuck']:,} stuck, {c['unhandled_exceptions']:,} unhandled exceptions, "
        f"{c['deviating']:,} with deviations" + (f" -> {truth_out}" if truth_out else ""),
        f"store {db_path}: cases {loaded['cases']:,}  events {loaded['events']:,}  activities {loaded['activities']:,}  "
        f"rejected {loaded['rejected_records']:,}  waiting for correlation {loaded['pending_correlation']:,}",
    ]
    for name, src in loaded["sources"].items():
        lines.append(f"  {name} ({src['kind']}): {src['events']:,} events, {src['cases']:,} cases, last event {src['last_event']}")
    emit(data, as_json, "\n".join(lines))
    if no_dashboard:
        return
    from processlens.service import serve

    say(f"starting the dashboard on http://localhost:{port} with the coordinator loop beside it (Ctrl-C to stop);"
        " set PROCESSLENS_DEMO_WEBHOOK and PROCESSLENS_WEBHOOK_SECRET to watch the demo's actions arrive")
    ctx.exit(serve(settings, port) or 0)
