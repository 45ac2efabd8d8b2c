"""``processlens mine ...`` (as-is analytics) and ``processlens discover`` (model discovery)."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import click
import pandas as pd

from processlens.cli.common import emit, json_option, settings
from processlens.errors import ConfigError, ProcesslensError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | None, option: str) -> float | None:
    """``90``, ``90s``, ``15m``, ``4h``, ``2d``, ``1w`` -> seconds."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smhdw]?)\s*", text)
    if not m:
        raise click.BadParameter(f"{text!r} is not a duration like 90, 15m, 4h, 2d", param_hint=option)
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def _pairs(values: tuple[str, ...], option: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in values:
        if "=" not in v:
            raise click.BadParameter(f"{v!r} is not NAME=VALUE", param_hint=option)
        k, val = v.split("=", 1)
        out.setdefault(k.strip(), []).append(val)
    return out


FILTER_OPTIONS = [
    click.option("--from", "time_from", help="Time window start (ISO date/time, UTC)."),
    click.option("--to", "time_to", help="Time window end (ISO date/time, UTC)."),
    click.option("--time-mode", type=click.Choice(["intersecting", "contained", "started", "completed", "trim"]),
                 default="intersecting", show_default=True, help="How cases relate to the window (trim cuts events)."),
    click.option("--case-id", "case_ids", multiple=True, help="Only these cases (repeatable)."),
    click.option("--case-attr", multiple=True, help="Case attribute NAME=VALUE (repeat for several values)."),
    click.option("--event-attr", multiple=True, help="Event attribute NAME=VALUE, e.g. resource=alice (repeatable)."),
    click.option("--event-attr-mode", type=click.Choice(["cases", "events"]), default="cases", show_default=True,
                 help="Keep cases having such an event, or keep only those events."),
    click.option("--present", multiple=True, help="Activity that must occur in the case (repeatable)."),
    click.option("--absent", multiple=True, help="Activity that must not occur in the case (repeatable)."),
    click.option("--follows", multiple=True, help="'A>B': B directly follows A somewhere in the case (repeatable)."),
    click.option("--start-activity", multiple=True, help="Case starts with this activity (repeatable)."),
    click.option("--end-activity", multiple=True, help="Case ends with this activity (repeatable; finds open cases)."),
    click.option("--min-duration", help="Case duration at least, e.g. 2d, 4h, 90."),
    click.option("--max-duration", help="Case duration at most, e.g. 30d."),
    click.option("--source", "sources", multiple=True, help="Keep events of this source system (repeatable)."),
    click.option("--keep-activity", multiple=True, help="Project the log on these activities (repeatable)."),
    click.option("--top-variants", type=int, help="Keep the cases of the k most frequent variants."),
    click.option("--coverage", type=float, help="Keep the most frequent variants covering this share of cases (0-1)."),
    click.option("--filter", "filter_text", help="A whole filter as JSON or as the dashboard's URL query string."),
    click.option("--working-time", is_flag=True, help="Durations in working time ([calendar] of processlens.toml)."),
]


def filter_options(func):
    for opt in reversed(FILTER_OPTIONS):
        func = opt(func)
    return func


def build_filter(opts: dict[str, Any]):
    """A :class:`analytics.Filter` from the CLI options (a ``--filter`` text is the base, options add)."""
    from analytics import Filter

    base: dict[str, Any] = {}
    text = opts.get("filter_text")
    if text:
        text = text.strip()
        base = json.loads(text) if text.startswith("{") else Filter.from_query_params(text).to_dict()
    follows = []
    for f in opts.get("follows") or ():
        if ">" not in f:
            raise click.BadParameter(f"{f!r} is not 'A>B'", param_hint="--follows")
        follows.append([p.strip() for p in f.split(">", 1)])
    given = {
        "time_from": opts.get("time_from"), "time_to": opts.get("time_to"),
        "case_ids": list(opts.get("case_ids") or ()),
        "case_attributes": _pairs(opts.get("case_attr") or (), "--case-attr"),
        "event_attributes": _pairs(opts.get("event_attr") or (), "--event-attr"),
        "activities_present": list(opts.get("present") or ()), "activities_absent": list(opts.get("absent") or ()),
        "follows": follows, "start_activities": list(opts.get("start_activity") or ()),
        "end_activities": list(opts.get("end_activity") or ()),
        "duration_min_seconds": parse_duration(opts.get("min_duration"), "--min-duration"),
        "duration_max_seconds": parse_duration(opts.get("max_duration"), "--max-duration"),
        "sources": list(opts.get("sources") or ()), "activities_keep": list(opts.get("keep_activity") or ()),
        "variants_top": opts.get("top_variants"), "variants_coverage": opts.get("coverage"),
    }
    data = {**base, **{k: v for k, v in given.items() if v not in (None, [], {})}}
    if opts.get("time_mode") and (opts["time_mode"] != "intersecting" or "time_mode" not in base):
        data["time_mode"] = opts["time_mode"]
    if opts.get("event_attr_mode") and (opts["event_attr_mode"] != "cases" or "event_attribute_mode" not in base):
        data["event_attribute_mode"] = opts["event_attr_mode"]
    return Filter.from_dict(data)


def _calendar(ctx: click.Context, opts: dict[str, Any]):
    if not opts.get("working_time"):
        return None
    from analytics import BusinessCalendar

    cal = BusinessCalendar.from_settings(settings(ctx))
    if cal is None:
        raise ConfigError("--working-time needs a business calendar",
                          hint='add a [calendar] table to processlens.toml, e.g. hours = ["09:00-17:00"]')
    return cal


@contextlib.contextmanager
def analysis_store(ctx: click.Context) -> Iterator[Any]:
    """A read-only connection, after bringing the maintained aggregates up to date when possible."""
    from analytics.incremental import is_fresh, refresh
    from ingest.store import open_store

    path = settings(ctx).db_path
    if path.exists():
        with open_store(path, read_only=True) as con:
            fresh = is_fresh(con)
        if not fresh:
            try:
                with open_store(path, timeout=5) as con:
                    refresh(con)
            except ProcesslensError:
                pass  # busy: the analyses compute from the events instead (same numbers, slower)
    with open_store(path, read_only=True) as con:
        yield con


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in df.to_dict(orient="records"):
        clean = {}
        for k, v in row.items():
            if isinstance(v, float) and math.isnan(v):
                v = None
            elif v is pd.NaT:
                v = None
            elif isinstance(v, pd.Timestamp | datetime):
                v = v.isoformat()
            elif hasattr(v, "tolist"):
                v = v.tolist()
            clean[k] = v
        out.append(clean)
    return out


def _table(df: pd.DataFrame, limit: int = 50) -> str:
    if df.empty:
        return "(nothing matches)"
    text = df.head(limit).to_string(index=False)
    if len(df) > limit:
        text += f"\n... {len(df) - limit:,} more rows (use --json or --limit)"
    return text


def command(name: str):
    """A ``mine`` subcommand with the filter options, --json, and the store opened for analysis."""

    def deco(func):
        @mine.command(name)
        @filter_options
        @json_option
        @click.pass_context
        @functools.wraps(func)
        def wrapper(ctx, as_json, **opts):
            flt = build_filter(opts)
            cal = _calendar(ctx, opts)
            with analysis_store(ctx) as con:
                data, text = func(ctx, con, flt, cal, opts)
            emit(data, as_json, text)

        return wrapper

    return deco


@click.group()
def mine() -> None:
    """As-is process analytics: process map (DFG), variants, cases, activities, bottlenecks, KPIs, resources.

    Every command accepts the same filters (see --help of each) and prints JSON with --json.
    """


@command("dfg")
@click.option("--activities", "act_share", type=float, default=1.0, show_default=True,
              help="Activity slider: keep the most frequent share of activities (0-1).")
@click.option("--paths", type=float, default=1.0, show_default=True, help="Path slider: share of edges (0-1).")
@click.option("--dot", "dot_overlay", type=click.Choice(["frequency", "cases", "mean", "median", "p90", "max", "total"]),
              help="Print Graphviz DOT with this overlay instead of a table.")
def dfg_cmd(ctx, con, flt, cal, opts):
    """Directly-follows graph: frequency, cases and durations (mean, median, p90, min, max) per edge."""
    from analytics import map_for, to_dot

    res = map_for(con, flt, activities=opts["act_share"], paths=opts["paths"], calendar=cal)
    data = {"edges": records(res.edges), "start_activities": res.start_activities, "end_activities": res.end_activities,
            "activities": res.activities, "cases": res.cases, "working_time": res.working_time}
    if opts.get("dot_overlay"):
        return data, to_dot(res, overlay=opts["dot_overlay"])
    text = _table(res.edges) + f"\nstart: {res.start_activities}\nend: {res.end_activities}"
    return data, text


@command("variants")
@click.option("--limit", type=int, help="Show only the most frequent N variants.")
def variants_cmd(ctx, con, flt, cal, opts):
    """Variants (activity sequences), most frequent first, with cases, share and throughput times."""
    from analytics import variants

    df = variants(con, flt, top=opts.get("limit"), calendar=cal)
    shown = df.assign(activities=[" > ".join(a) for a in df["activities"]])
    return {"variants": records(df)}, _table(shown)


@command("cases")
@click.option("--limit", type=int, help="Show at most N cases.")
@click.option("--now", "now_text", help="Reference time for ages (ISO, UTC; default: now).")
def cases_cmd(ctx, con, flt, cal, opts):
    """The case table: start, end, duration, events, current activity, age of the last event, open/closed.

    A case is closed when it ended in one of [analytics] end_activities or has been idle longer than
    [analytics] idle_horizon_days (processlens.toml); with neither configured every case is closed.
    """
    from analytics import CaseStatusRule, cases

    now = datetime.fromisoformat(opts["now_text"]) if opts.get("now_text") else None
    df = cases(con, flt, now=now, status=CaseStatusRule.from_settings(settings(ctx)), calendar=cal, limit=opts.get("limit"))
    return {"cases": records(df)}, _table(df)


@command("activities")
def activities_cmd(ctx, con, flt, cal, opts):
    """Per activity: frequency, cases, rework, service time and waiting time before it."""
    from analytics import activities

    df = activities(con, flt, calendar=cal)
    return {"activities": records(df)}, _table(df)


@command("bottlenecks")
@click.option("--by", "by", multiple=True, default=["edge"], show_default=True,
              type=click.Choice(["edge", "activity", "resource", "team", "source", "week", "handoff"]),
              help="Breakdown (repeat to combine, e.g. --by edge --by team).")
@click.option("--limit", type=int, default=None, help="Show the N largest groups.")
def bottlenecks_cmd(ctx, con, flt, cal, opts):
    """Waiting time per edge / activity / resource / team / system / week, ranked by share of all waiting."""
    from analytics import Teams, bottlenecks

    df = bottlenecks(con, flt, by=list(opts["by"]), teams=Teams.from_settings(settings(ctx)), calendar=cal,
                     limit=opts.get("limit"))
    return {"bottlenecks": records(df)}, _table(df)


@command("kpis")
@click.option("--freq", type=click.Choice(["day", "week", "month"]), default="week", show_default=True)
def kpis_cmd(ctx, con, flt, cal, opts):
    """Arrivals, completions, work in progress, median and p90 throughput per period, with the previous period."""
    from analytics import CaseStatusRule, kpis

    df = kpis(con, flt, freq=opts["freq"], status=CaseStatusRule.from_settings(settings(ctx)), calendar=cal)
    return {"kpis": records(df)}, _table(df[["period", "arrivals", "completions", "wip", "throughput_median_seconds",
                                             "throughput_p90_seconds"]], limit=200)


@command("resources")
@click.option("--by", type=click.Choice(["resource", "team"]), default="resource", show_default=True)
def resources_cmd(ctx, con, flt, cal, opts):
    """Workload per resource or team, and handovers of work between them."""
    from analytics import Teams, resources

    res = resources(con, flt, by=opts["by"], teams=Teams.from_settings(settings(ctx)), calendar=cal)
    return res.to_dict(), "workload:\n" + _table(res.workload) + "\n\nhandovers:\n" + _table(res.handovers)


@mine.command("refresh")
@click.option("--full", is_flag=True, help="Rebuild from scratch instead of folding in new events.")
@json_option
@click.pass_context
def refresh_cmd(ctx, full, as_json):
    """Bring the maintained aggregates (an_* tables) up to date with the events."""
    from analytics.incremental import refresh
    from ingest.store import open_store

    with open_store(settings(ctx).db_path) as con:
        r = refresh(con, force_full=full)
    emit(r.__dict__, as_json, f"{r.mode}: {r.touched_cases:,} cases, {r.new_events:,} events in {r.seconds:.2f}s")


@click.command("discover")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Output file: *.bpmn (BPMN 2.0 XML) or *.pnml (Petri net).")
@click.option("--noise", type=float, default=0.2, show_default=True,
              help="Inductive miner noise threshold (0 keeps all behaviour).")
@click.option("--miner", type=click.Choice(["variants", "dfg"]), default="variants", show_default=True,
              help="Mine the variant counts (IMf/IM, as pm4py on the log) or the DFG (IMd, for very many variants).")
@filter_options
@json_option
@click.pass_context
def discover(ctx, out, noise, miner, as_json, **opts):
    """Discover an as-is model with pm4py's inductive miner from the (filtered) log."""
    from analytics import discover as discover_model

    flt = build_filter(opts)
    with analysis_store(ctx) as con:
        model = discover_model(con, flt, noise=noise, miner=miner)
    path = model.write(out)
    emit({"out": str(path), "noise": noise, "places": len(model.net.places), "transitions": len(model.net.transitions)},
         as_json, f"wrote {path} (noise {noise}): {len(model.net.transitions)} transitions, {len(model.net.places)} places")
