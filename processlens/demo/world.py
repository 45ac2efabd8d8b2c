"""Build the demo world into a folder: the four systems' files, the job config, ``world.json`` and
``truth.json``."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from processlens.demo import generate as g
from processlens.demo import spec as s
from processlens.demo import writers
from processlens.demo.calendar import Calendar
from processlens.errors import ConfigError

#: The shipped demo files: the job config, and what it includes (models, rules) beside it.
TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "data" / "demo"
#: What build_world writes into its folder (and removes from a previous world there).
OWNED = ["erp.sqlite", "wms", "helpdesk", "psp", "world.json", "truth.json", "processlens.toml"]
GENERATOR_VERSION = 1


@dataclass
class World:
    """A generated demo world on disk."""

    dir: Path
    config_path: Path
    truth: dict[str, dict[str, Any]]
    now: datetime
    counts: dict[str, Any]
    seed: int = 7
    cases: int = 0
    days: int = s.HISTORY_DAYS
    seconds: dict[str, float] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        """What ``world.json`` holds."""
        return {
            "now": iso_z(self.now), "seed": self.seed, "cases": self.cases, "days": self.days, "counts": self.counts,
            "generator_version": GENERATOR_VERSION, "config": self.config_path.name,
        }


def iso_z(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _normalise_now(now: datetime | None) -> datetime:
    if now is None:
        return g.utc_now()
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).replace(microsecond=0)


def clear(out_dir: Path) -> None:
    """Remove a previous world's files (only the names a world consists of)."""
    for name in OWNED:
        p = out_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def copy_config(out_dir: Path, template_dir: Path = TEMPLATE_DIR) -> Path:
    """Copy ``processlens.toml`` and the files it includes (models, rules and their folders).

    Included files that are not shipped (yet) are dropped from the copy's ``include`` list, so
    the copied config always loads.
    """
    src = template_dir / "processlens.toml"
    if not src.exists():
        raise ConfigError(f"the demo job config {src} is missing", hint="reinstall processlens from its repository",
                          where={"file": str(src)})
    for item in template_dir.iterdir():
        if item.name in {"processlens.toml", "README.md"} or item.name.startswith("."):
            continue
        target = out_dir / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
    text = src.read_text(encoding="utf-8")
    match = re.search(r"^include\s*=\s*\[(.*?)\]", text, flags=re.M | re.S)
    if match:
        names = re.findall(r"\"([^\"]+)\"|'([^']+)'", match.group(1))
        present = [a or b for a, b in names if (template_dir / (a or b)).exists()]
        line = "include = [" + ", ".join(f'"{n}"' for n in present) + "]" if present else "# include = []  (none shipped yet)"
        text = text[: match.start()] + line + text[match.end():]
    dst = out_dir / "processlens.toml"
    dst.write_text(text, encoding="utf-8")
    return dst


def build_world(out_dir: Path, cases: int = 5000, seed: int = 7, now: datetime | None = None,
                log: Callable[[str], None] | None = None, days: int = s.HISTORY_DAYS) -> World:
    """Generate the order-to-cash business with ``cases`` orders created over the last ``days``
    days into ``out_dir``."""
    if cases < 1:
        raise ConfigError(f"--cases must be at least 1, not {cases}", hint="pass a positive number of cases")
    if days < 7:
        raise ConfigError(f"--days must be at least 7, not {days}", hint="pass a longer history")
    say = log or (lambda msg: None)
    now = _normalise_now(now)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clear(out_dir)
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    say(f"generating {cases:,} orders over {days} days (seed {seed}, now {iso_z(now)})")
    gen = g.generate(cases, seed, now, log=say, days=days)
    seconds["generate"] = time.monotonic() - t0
    truth = g.truth(gen)
    now_date = now.date()
    cal = Calendar(now_date - timedelta(days=s.HISTORY_DAYS + 700), now_date + timedelta(days=400))
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        writers.register(con, gen, cal)
        t = time.monotonic()
        erp = writers.write_erp(con, out_dir / "erp.sqlite")
        say(f"ERP: {cases:,} orders, {erp:,} status changes -> erp.sqlite")
        wms, files = writers.write_wms(con, out_dir / "wms")
        say(f"WMS: {wms:,} warehouse events in {files} daily exports -> wms/")
        tickets, ticket_events = writers.write_helpdesk(con, out_dir / "helpdesk" / "tickets.json")
        say(f"Helpdesk: {tickets:,} tickets with {ticket_events:,} events -> helpdesk/tickets.json")
        psp = writers.write_psp(con, out_dir / "psp" / "events.jsonl")
        say(f"PSP: {psp:,} payment events -> psp/events.jsonl")
        seconds["write"] = time.monotonic() - t
    finally:
        con.close()
    counts = {
        "cases": cases,
        "events": int(len(gen.events) + ticket_events),
        "by_system": {"ERP": erp, "WMS": wms, "Helpdesk": int(ticket_events), "PSP": psp},
        "tickets": int(tickets),
        "wms_files": files,
        "open": _open_cases(gen),
        "stuck": sum(1 for v in truth.values() if v["stuck"]),
        "unhandled_exceptions": sum(1 for v in truth.values() if v["unhandled_exception"]),
        "deviating": sum(1 for v in truth.values() if v["deviations"]),
    }
    config_path = copy_config(out_dir)
    world = World(dir=out_dir, config_path=config_path, truth=truth, now=now, counts=counts, seed=seed,
                  cases=cases, days=days, seconds=seconds)
    (out_dir / "truth.json").write_text(json.dumps(truth, separators=(",", ":")), encoding="utf-8")
    (out_dir / "world.json").write_text(json.dumps(world.info(), indent=2), encoding="utf-8")
    seconds["total"] = time.monotonic() - t0
    return world


def _open_cases(gen: g.Generated) -> int:
    ev = gen.events
    n = len(gen.cases)
    count = np.bincount(ev.row, minlength=n)
    last = np.cumsum(count) - 1
    return int((~np.isin(ev.act[last], list(s.FINAL))).sum())
