"""``processlens check``, ``stuck``, ``exceptions`` and ``model ...``: the reference model at work."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pandas as pd

from processlens.cli.common import emit, json_option, settings
from processlens.errors import ConfigError

model_option = click.option("--model", "model_path", type=click.Path(dir_okay=False),
                            help="Model file (.bpmn, .pnml, .txt); default: [models] in processlens.toml.")
name_option = click.option("--name", "model_name", help="Model name in [models] (default: the default model).")
annotations_option = click.option("--annotations", type=click.Path(dir_okay=False),
                                  help="Annotations TOML (default: the .toml beside the model).")
now_option = click.option("--now", help="Reference time (ISO, UTC) for waiting times; default: now.")


def _model(ctx: click.Context, path: str | None, name: str | None, annotations: str | None = None):
    from models import load_model, model_from_settings

    if path:
        return load_model(path, annotations)
    return model_from_settings(settings(ctx), name)


def _now(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not an ISO date/time like 2026-05-01T12:00:00Z", param_hint="--now") from exc
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(df.to_json(orient="records", date_format="iso"))


def _days(seconds: float | None) -> str:
    return "-" if seconds is None or pd.isna(seconds) else f"{seconds / 86400:.1f}d"


@click.command()
@model_option
@name_option
@annotations_option
@click.option("--method", type=click.Choice(["token-replay", "alignments"]), default="token-replay", show_default=True,
              help="Token-based replay (fast) or alignments (exact).")
@click.option("--time-limit", type=float, default=10.0, show_default=True,
              help="Seconds per variant for alignments; slower variants are reported as not computed.")
@click.option("--no-precision", is_flag=True, help="Skip precision (ETConformance), which costs extra time.")
@click.option("--cases", "with_cases", is_flag=True, help="Include the per-case results.")
@json_option
@click.pass_context
def check(ctx, model_path, model_name, annotations, method, time_limit, no_precision, with_cases, as_json):
    """Check every case against the reference model: fitness, precision and deviations."""
    from ingest.store import open_store
    from models import check as run_check

    model = _model(ctx, model_path, model_name, annotations)
    with open_store(settings(ctx).db_path) as con:
        res = run_check(con, model, method, time_limit=time_limit, precision=not no_precision)
    data = res.to_dict(cases=with_cases)
    lines = [f"model {res.model} v{res.model_version} ({res.method}): log fitness {res.log_fitness:.4f}"
             + (f", precision {res.precision:.4f}" if res.precision is not None else ""),
             f"{res.fitting_cases:,} of {res.cases:,} cases fit; {res.variants:,} variants "
             f"({res.variants_computed:,} computed, {res.variants_cached:,} from cache) in {res.seconds:.1f}s"]
    if res.not_computed:
        lines.append(f"{len(res.not_computed)} variant(s) over the time limit, not computed "
                     f"({sum(v['cases'] for v in res.not_computed):,} cases)")
    for d in res.deviations[:20]:
        lines.append(f"  {d['type']:<16} {d['step'] or '':<22} {d['cases']:>7,} cases ({d['share']:.1%}) {d['where']}; "
                     f"throughput {_days(d['throughput_with_seconds'])} vs {_days(d['throughput_without_seconds'])}"
                     + (" [allowed]" if d["allowed"] else ""))
    emit(data, as_json, "\n".join(lines))


@click.command()
@model_option
@name_option
@annotations_option
@now_option
@click.option("--all", "include_all", is_flag=True, help="List every open case, not only the stuck ones.")
@json_option
@click.pass_context
def stuck(ctx, model_path, model_name, annotations, now, include_all, as_json):
    """Open cases waiting longer than the SLA of their next step or than history says is normal."""
    from ingest.store import open_store
    from models import stuck as find_stuck

    model = _model(ctx, model_path, model_name, annotations)
    with open_store(settings(ctx).db_path, read_only=True) as con:
        df = find_stuck(con, model, now=_now(now), include_all=include_all)
    text = "\n".join(f"{r.case_id}: {r.reasons}" for r in df.itertuples()) or "no stuck cases"
    emit({"model": model.name, "cases": len(df), "stuck": _records(df)}, as_json, text)


@click.command()
@model_option
@name_option
@annotations_option
@now_option
@click.option("--unhandled", is_flag=True, help="Only unhandled exceptions.")
@click.option("--kind", type=click.Choice(["exception event", "deviation", "not final"]), multiple=True,
              help="Only these kinds (repeatable).")
@json_option
@click.pass_context
def exceptions(ctx, model_path, model_name, annotations, now, unhandled, kind, as_json):
    """Exception events, deviations outside the model and allowlist, cases ended in a non-final state."""
    from ingest.store import open_store
    from models import exceptions as find_exceptions

    model = _model(ctx, model_path, model_name, annotations)
    with open_store(settings(ctx).db_path) as con:
        df = find_exceptions(con, model, now=_now(now), deviations=not kind or "deviation" in kind)
    if unhandled:
        df = df[~df["handled"].astype(bool)]
    if kind:
        df = df[df["kind"].isin(kind)]
    text = "\n".join(f"{r.case_id}: {r.type} ({r.owner or '-'}) at {r.ts} - {'handled' if r.handled else 'UNHANDLED'}; {r.detail}"
                     for r in df.itertuples()) or "no exceptions"
    emit({"model": model.name, "count": len(df), "unhandled": int((~df["handled"].astype(bool)).sum()),
          "exceptions": _records(df)}, as_json, text)


@click.group()
def model():
    """Reference models: validate and list versions."""


@model.command("validate")
@click.argument("path", type=click.Path(dir_okay=False))
@annotations_option
@click.option("--against-store", is_flag=True, help="Also check the model's tasks against the store's activities.")
@json_option
@click.pass_context
def validate_cmd(ctx, path, annotations, against_store, as_json):
    """Check a model: unsupported elements, soundness, connectedness, activities of the log."""
    from models import load_model
    from models.validate import validate

    m = load_model(path, annotations)
    if against_store:
        from ingest.store import open_store

        with open_store(settings(ctx).db_path, read_only=True) as con:
            report = validate(m, con)
    else:
        report = validate(m)
    lines = [f"{Path(path).name}: {len(m.labels)} tasks, {'valid' if report['valid'] else 'NOT VALID'}"]
    lines += [f"  {i['level']}: {i['message']}" + (f"\n    what to do: {i['hint']}" if i["hint"] else "") for i in report["issues"]]
    emit(report, as_json, "\n".join(lines))
    if not report["valid"]:
        ctx.exit(1)


@model.command("list")
@json_option
@click.pass_context
def list_cmd(ctx, as_json):
    """Configured models and the versions registered in the store."""
    from ingest.store import open_store
    from models import list_models

    st = settings(ctx)
    configured = {k: v for k, v in st.section("models").items() if isinstance(v, dict)}
    with open_store(st.db_path, read_only=True) as con:
        try:
            versions = list_models(con)
        except Exception:  # store without the models tables yet
            versions = pd.DataFrame()
    data = {"default": st.section("models").get("default"), "configured": configured, "versions": _records(versions)}
    lines = [f"{k}: {v.get('path')}" + (" (default)" if k == data["default"] else "") for k, v in configured.items()]
    if not configured:
        lines.append("no models in [models] of processlens.toml")
    if len(versions):
        lines.append(versions.to_string(index=False))
    emit(data, as_json, "\n".join(lines))


__all__ = ["check", "stuck", "exceptions", "model", "ConfigError"]
