"""``processlens ingest`` and ``processlens stats``."""

from __future__ import annotations

import click

from ingest.store import open_store
from processlens.cli.common import emit, json_option, settings


@click.group()
def ingest() -> None:
    """Load event logs into the store: one-off files, or the jobs in processlens.toml."""


@ingest.command("file")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--case", help="Column with the case id (guessed when omitted).")
@click.option("--activity", help="Column with the activity name (guessed when omitted).")
@click.option("--timestamp", help="Column with the (completion) timestamp (guessed when omitted).")
@click.option("--start-timestamp", help="Column with the start timestamp, if any (guessed when omitted).")
@click.option("--resource", help="Column with the resource (guessed when omitted).")
@click.option("--lifecycle", help="Column with the lifecycle transition (start/complete; guessed when omitted).")
@click.option("--sep", help=r"CSV delimiter, e.g. ';' or '\t' (sniffed when omitted).")
@click.option("--timezone", help="Time zone of naive timestamps in this file, e.g. Europe/Amsterdam (default UTC).")
@click.option("--source", help="Name of the source system (default: the file name).")
@click.option("--object-type", help="OCEL logs: the object type whose objects become cases (default: the most used).")
@click.option("--records-path", help="JSON: where the records are, e.g. 'items' or 'tickets[].events' (default: the top level).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when interactive).")
@json_option
@click.pass_context
def ingest_file_cmd(ctx, path, case, activity, timestamp, start_timestamp, resource, lifecycle, sep, timezone, source,
                    object_type, records_path, progress, as_json):
    """Import one file (CSV, Parquet, XES, .xes.gz, JSON/JSON lines, OCEL 2.0), guessing its columns.

    Bad rows are quarantined with file, line, field and reason ('processlens ingest rejects');
    importing the same file again loads nothing new.
    """
    from ingest.api import ingest_file

    s = settings(ctx)
    with open_store(s.db_path) as con:
        imp = ingest_file(con, path, case=case, activity=activity, timestamp=timestamp, start_timestamp=start_timestamp,
                          resource=resource, lifecycle=lifecycle,
                          sep=sep.encode().decode("unicode_escape") if sep else None,
                          timezone=timezone, source=source, object_type=object_type, records_path=records_path,
                          progress=False if as_json else progress)
        if imp.result.rows_loaded:
            from processlens.maintenance import after_ingest

            after_ingest(con)
    mapping = {k: getattr(imp.mapping, k) for k in MAPPING_ROLES if getattr(imp.mapping, k)}
    data = {"file": str(imp.path), "kind": imp.kind, "mapping": mapping, "guessed": sorted(imp.guessed),
            **imp.result.to_dict(), **imp.extra}
    roles = " ".join(f"{k}={v!r}" + ("*" if k in imp.guessed else "") for k, v in mapping.items())
    text = f"{imp.path.name} ({imp.kind}): {roles}" + ("  (* guessed)" if imp.guessed else "")
    if imp.extra.get("object_type"):
        text += f"\ncases are objects of type {imp.extra['object_type']!r} (others: "
        text += ", ".join(t for t in imp.extra.get("object_types", {}) if t != imp.extra["object_type"]) + ")"
    text += "\n" + imp.result.summary()
    if imp.result.rows_rejected:
        text += "\nRejected rows are kept with file, line and reason: see 'processlens ingest rejects'."
    emit(data, as_json, text)


MAPPING_ROLES = ("case", "activity", "timestamp", "start_timestamp", "resource", "lifecycle", "timezone")


@ingest.command("run")
@click.argument("jobs", nargs=-1)
@json_option
@click.pass_context
def ingest_run_cmd(ctx, jobs, as_json):
    """Run the jobs declared in processlens.toml (all of them when none are named)."""
    from ingest.jobs import run_jobs

    s = settings(ctx)
    results = run_jobs(s, list(jobs) or None, progress=not as_json)
    emit([r.to_dict() for r in results], as_json, "\n".join(r.summary() if r.status == "succeeded" else
                                                             f"{r.job}: FAILED: {r.error}" for r in results))
    if any(r.status != "succeeded" for r in results):
        ctx.exit(1)


@ingest.command("schedule")
@click.option("--once", is_flag=True, help="Run the jobs that are due now, then exit.")
@click.option("--max-cycles", type=int, default=None, help="Stop after this many scheduler cycles (for scripts).")
@click.pass_context
def ingest_schedule_cmd(ctx, once, max_cycles):
    """Run the jobs on their schedules (e.g. 'every 5m' or a cron expression) until stopped."""
    from ingest.scheduler import run_scheduler

    run_scheduler(settings(ctx), once=once, max_cycles=max_cycles)


@ingest.command("runs")
@click.option("--limit", default=20, show_default=True)
@json_option
@click.pass_context
def ingest_runs_cmd(ctx, limit, as_json):
    """List the latest ingest runs with their counts and errors."""
    with open_store(settings(ctx).db_path, read_only=True) as con:
        df = con.execute("SELECT r.*, s.name AS source FROM ingest_runs r LEFT JOIN sources s USING (source_id) "
                         "ORDER BY run_id DESC LIMIT ?", [limit]).df()
    emit(df.to_dict(orient="records"), as_json, df.to_string(index=False) if len(df) else "no ingest runs yet")


@ingest.command("rejects")
@click.option("--limit", default=50, show_default=True)
@json_option
@click.pass_context
def ingest_rejects_cmd(ctx, limit, as_json):
    """Show quarantined records with file, line, field and reason."""
    with open_store(settings(ctx).db_path, read_only=True) as con:
        df = con.execute("SELECT run_id, location, line, record_key, field, reason, raw FROM rejects "
                         "ORDER BY rejected_at DESC, line LIMIT ?", [limit]).df()
    emit(df.to_dict(orient="records"), as_json, df.to_string(index=False) if len(df) else "no rejected records")


@click.command()
@json_option
@click.pass_context
def stats(ctx, as_json):
    """Counts of cases, events and activities, per source, with data freshness."""
    from ingest.api import stats as store_stats

    with open_store(settings(ctx).db_path, read_only=True) as con:
        data = store_stats(con)
    lines = [f"cases {data['cases']:,}  events {data['events']:,}  activities {data['activities']:,}  "
             f"rejected {data['rejected_records']:,}  waiting for correlation {data['pending_correlation']:,}"]
    for name, s in data["sources"].items():
        lines.append(f"  {name} ({s['kind']}): {s['events']:,} events, {s['cases']:,} cases, last event {s['last_event']}")
    emit(data, as_json, "\n".join(lines))


@click.group()
def store() -> None:
    """Maintain the store: schema version, compaction."""


@store.command("info")
@json_option
@click.pass_context
def store_info(ctx, as_json):
    """Schema version, data version and file size of the store."""
    from ingest.store import data_version, schema_version

    s = settings(ctx)
    with open_store(s.db_path) as con:
        data = {"path": str(s.db_path), "schema_version": schema_version(con), "data_version": data_version(con),
                "size_bytes": s.db_path.stat().st_size if s.db_path.exists() else 0}
    emit(data, as_json)


@store.command("compact")
@click.pass_context
def store_compact(ctx):
    """Rewrite events in case/time order (done automatically after large appends)."""
    from ingest.store import compact_events

    with open_store(settings(ctx).db_path) as con:
        compact_events(con)
    click.echo("events rewritten in case/time order")
