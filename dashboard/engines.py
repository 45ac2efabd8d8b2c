"""Adapters from the dashboard to the engines (analytics, models, coordinator).

Each function takes an open connection and plain arguments (so ``dashboard.data`` can cache it)
and returns DataFrames or dicts. Engines are imported lazily: a missing one raises
:class:`EngineMissing` with what it would add, a missing configuration :class:`NotConfigured`.
Where an engine is missing, store-only queries from ``dashboard.queries`` stand in when they can.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from dashboard import queries
from dashboard.data import EngineMissing, NotConfigured
from dashboard.filters import ViewFilter
from processlens.errors import ConfigError

ENGINE_TEXT = {
    "analytics": ("the analytics engine (package `analytics`)", "update processlens to a version with analytics"),
    "models": ("the reference-model engine (package `models`)", "update processlens to a version with conformance"),
    "coordinator": ("the coordinator (package `coordinator`)", "update processlens to a version with the coordinator"),
}


def engine(name: str, attr: str | None = None) -> Any:
    """The engine module (or one of its functions), or :class:`EngineMissing`."""
    what, hint = ENGINE_TEXT[name]
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise EngineMissing(f"it needs {what}, which is not installed", hint=hint) from exc
    if attr is None:
        return module
    fn = getattr(module, attr, None)
    if fn is None:
        raise EngineMissing(f"{what} does not offer `{attr}` yet", hint=hint)
    return fn


def _settings(config: str | None):
    from processlens.config import load_settings

    return load_settings(None, config)


def _now(now: str | None) -> datetime | None:
    return datetime.fromisoformat(now) if now else None


def reference_model(config: str | None = None, name: str | None = None) -> Any:
    load = engine("models", "model_from_settings")
    try:
        return load(_settings(config), name)
    except ConfigError as exc:
        if "no reference model" in exc.message:
            raise NotConfigured("no reference model is configured", hint=exc.hint) from exc
        raise


def _analytics_filter(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None) -> Any:
    if flt is None or flt.is_empty:
        return None
    variant_ids = None
    if flt.variant:
        variant_ids = _analytics_variant_ids(con, flt)
    return flt.to_analytics(variant_ids)


def _analytics_variant_ids(con: duckdb.DuckDBPyConnection, flt: ViewFilter) -> list[int] | None:
    """Translate our short variant id into analytics' variant numbers via the activity sequence."""
    acts = queries.variant_activities(con, flt.variant)
    if acts is None:
        return [-1]
    try:
        table = engine("analytics", "variants")(con, None)
    except EngineMissing:
        return None
    for col in ("activities", "variant"):
        if col in table.columns:
            hits = table[table[col].map(lambda a: list(a) == acts if not isinstance(a, str) else a.split(",") == acts)]
            for id_col in ("variant_id", "id", "rank"):
                if id_col in hits.columns:
                    return [int(v) for v in hits[id_col]]
    return None


# -- analytics ------------------------------------------------------------------------------------
def process_map(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None) -> dict[str, Any]:
    """Activities and directly-follows edges (with ▶ start and ■ end edges) for the map.

    From ``analytics.dfg`` when installed, else from the store-only :func:`dashboard.queries.dfg`.
    """
    try:
        fn = engine("analytics", "dfg")
    except EngineMissing:
        out = queries.dfg(con, flt)
        return {**out, "engine": "store"}
    result = fn(con, _analytics_filter(con, flt))
    edges = result.edges.copy()
    keep = [c for c in ("source", "target", "frequency", "cases", "median_seconds", "mean_seconds", "p90_seconds")
            if c in edges.columns]
    edges = edges[keep]
    starts = pd.DataFrame({"source": "▶", "target": list(result.start_activities),
                           "frequency": list(result.start_activities.values())})
    ends = pd.DataFrame({"source": list(result.end_activities), "target": "■",
                         "frequency": list(result.end_activities.values())})
    for extra in (starts, ends):
        extra["cases"] = extra["frequency"]
    edges = pd.concat([edges, starts, ends], ignore_index=True)
    counts = result.activities or {}
    if not counts:
        counts = edges[edges["target"] != "■"].groupby("target")["frequency"].sum().to_dict()
    acts = pd.DataFrame({"activity": list(counts), "frequency": list(counts.values())})
    acts = acts.sort_values(["frequency", "activity"], ascending=[False, True]).reset_index(drop=True)
    return {"activities": acts, "edges": edges, "engine": "analytics"}


def variants(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None, top: int = 50) -> pd.DataFrame:
    return queries.top_variants(con, flt, top=top)


def kpis(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None, freq: str = "week") -> pd.DataFrame:
    return engine("analytics", "kpis")(con, _analytics_filter(con, flt), freq=freq)


def bottlenecks(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None, by: str = "edge") -> pd.DataFrame:
    return engine("analytics", "bottlenecks")(con, _analytics_filter(con, flt), by=by)


def case_table(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None, now: str | None = None) -> pd.DataFrame:
    return engine("analytics", "cases")(con, _analytics_filter(con, flt), now=_now(now))


def discover_bpmn(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None, noise: float = 0.2) -> dict[str, str]:
    model = engine("analytics", "discover")(con, _analytics_filter(con, flt), noise=noise)
    return {"bpmn": getattr(model, "bpmn_xml", ""), "pnml": getattr(model, "pnml", "")}


# -- models ---------------------------------------------------------------------------------------
def _case_ids(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None) -> set[str] | None:
    if flt is None or flt.is_empty:
        return None
    sql, params = flt.cases_sql()
    return {r[0] for r in con.execute(f"SELECT case_id FROM cases WHERE case_key IN ({sql})", params).fetchall()}


def _restrict(df: pd.DataFrame, ids: set[str] | None) -> pd.DataFrame:
    return df if ids is None or "case_id" not in df.columns else df[df["case_id"].astype(str).isin(ids)]


def _keyed(con: duckdb.DuckDBPyConnection, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``case_key`` column (int64; -1 for an id the store does not know), in place.

    The dashboard narrows these all-cases engine results to a filter's cases by ``case_key``
    (an index into a boolean mask) instead of comparing case-id strings; one join, once per data version.
    """
    if "case_id" not in df.columns or "case_key" in df.columns:
        return df
    ids = pd.DataFrame({"i": np.arange(len(df)), "case_id": df["case_id"].astype(str).to_numpy(dtype=object)})
    cur = con.cursor()  # the engine may have left a result open on ``con``
    try:
        cur.register("_pl_engine_ids", ids)
        keys = cur.execute(
            "SELECT coalesce(c.case_key, -1)::BIGINT AS case_key FROM _pl_engine_ids r "
            "LEFT JOIN cases c USING (case_id) ORDER BY r.i"
        ).fetchnumpy()["case_key"]
    finally:
        cur.close()
    df["case_key"] = keys
    return df


def stuck(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None, now: str | None = None,
          config: str | None = None) -> pd.DataFrame:
    """Stuck open cases with step, owner, waited/SLA/normal seconds and reasons, worst first."""
    model = reference_model(config)
    df = engine("models", "stuck")(con, model, now=_now(now))
    df = _keyed(con, _restrict(pd.DataFrame(df), _case_ids(con, flt)).copy())
    if df.empty:
        return df
    if "reasons" in df.columns:
        df["reasons"] = df["reasons"].map(lambda r: ", ".join(r) if isinstance(r, list | tuple) else r)
    sla = df.get("sla_seconds")
    normal = df.get("normal_seconds")
    ref = pd.concat([x for x in (sla, normal) if x is not None], axis=1).min(axis=1) if sla is not None or normal is not None else None
    df["overdue_ratio"] = df["waited_seconds"] / ref if ref is not None else None
    return df.sort_values(["overdue_ratio", "waited_seconds"], ascending=False, na_position="last")


def exceptions(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None, now: str | None = None,
               config: str | None = None) -> pd.DataFrame:
    model = reference_model(config)
    df = engine("models", "exceptions")(con, model, now=_now(now))
    return _keyed(con, _restrict(pd.DataFrame(df), _case_ids(con, flt)).copy())


def unhandled_rows(ex: pd.DataFrame) -> np.ndarray:
    """Which rows of an :func:`exceptions` result are unhandled exception events (a deviation from the
    model, also listed there, counts in the conformance rate instead)."""
    out = ~ex["handled"].astype(bool).to_numpy()
    if "kind" in ex:
        out &= (ex["kind"] == "exception event").to_numpy()
    return out


def fitting_share(per_case: pd.DataFrame, rows: np.ndarray | None = None) -> float | None:
    """The share of the cases of a :func:`conformance` ``per_case`` table (its ``rows``, a boolean
    array, if given) that fit the model; None without cases."""
    fitting = per_case["fitting"].fillna(False).astype(bool).to_numpy()
    if rows is not None:
        fitting = fitting[rows]
    return float(fitting.mean()) if len(fitting) else None


def _check(con: duckdb.DuckDBPyConnection, config: str | None, method: str) -> Any:
    model = reference_model(config)
    fn = engine("models", "check")
    try:
        return fn(con, model, method=method, precision=False)
    except TypeError:
        return fn(con, model, method=method)


def _dev_types(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return sorted({d.get("type") for d in value if isinstance(d, dict) and d.get("type")})
    return []


def conformance(con: duckdb.DuckDBPyConnection, flt: ViewFilter | None = None, config: str | None = None,
                method: str = "token-replay") -> dict[str, Any]:
    """Fitness, deviation types and deviations (with throughput impact), and a slim per-case table."""
    result = _check(con, config, method)
    out = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    per_case = getattr(result, "cases_df", None)
    if isinstance(per_case, pd.DataFrame) and "case_id" in per_case:
        slim = pd.DataFrame({"case_id": per_case["case_id"].astype(str)})
        for col in ("fitting", "fitness", "conforming", "throughput_seconds"):
            if col in per_case:
                slim[col] = per_case[col].values
        if "deviations" in per_case:
            # categorical: narrowing a 1M-case table to a filter then moves integer codes, not strings
            slim["deviation_types"] = pd.Categorical(per_case["deviations"].map(lambda d: ", ".join(_dev_types(d))).values)
        out["per_case"] = _keyed(con, _restrict(slim, _case_ids(con, flt)).copy())
        if flt is not None and not flt.is_empty:
            pc = out["per_case"]
            out["cases"] = len(pc)
            if "fitting" in pc:
                out["fitting_cases"] = int(pc["fitting"].fillna(False).astype(bool).sum())
    return out


def deviation_breakdown(con: duckdb.DuckDBPyConnection, deviation: str, attribute: str, flt: ViewFilter | None = None,
                        config: str | None = None) -> pd.DataFrame:
    """Per value of a case attribute: cases, cases with the deviation, its rate and lift against all cases."""
    from dashboard.queries import case_attribute

    res = conformance(con, flt, config)
    return breakdown(res.get("per_case"), case_attribute(con, attribute), deviation)


def breakdown(per_case: pd.DataFrame | None, values: pd.DataFrame, deviation: str) -> pd.DataFrame:
    """The deviation breakdown from a conformance result's ``per_case`` table and ``case_attribute`` values.

    Pages pass the cached conformance result, so choosing another deviation or attribute costs a
    join in memory rather than a new conformance check.
    """
    cols = ["value", "cases", "with_deviation", "rate", "lift"]
    if per_case is None or per_case.empty or "deviation_types" not in per_case:
        return pd.DataFrame(columns=cols)
    dev = per_case["deviation_types"].astype(object).fillna("").map(lambda s: deviation in s.split(", "))
    has = pd.DataFrame({"case_id": per_case["case_id"].astype(str).values, "dev": dev.astype(bool).values})
    joined = has.merge(values, on="case_id", how="inner")
    df = (joined.groupby("value", sort=False)
          .agg(cases=("dev", "size"), with_deviation=("dev", "sum")).reset_index()
          .sort_values("cases", ascending=False, kind="stable").head(100))
    df["with_deviation"] = df["with_deviation"].astype(int)
    overall = has["dev"].mean() if len(has) else 0
    df["rate"] = df["with_deviation"] / df["cases"]
    df["lift"] = df["rate"] / overall if overall else None
    return df.sort_values(["lift", "cases"], ascending=False)[cols].reset_index(drop=True)


def case_position(con: duckdb.DuckDBPyConnection, case_id: str, config: str | None = None) -> Any:
    model = reference_model(config)
    pos = engine("models", "case_position")(con, model, case_id)
    if hasattr(pos, "to_dict"):
        return pos.to_dict()
    if hasattr(pos, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(pos)
    return pos


# -- coordinator ------------------------------------------------------------------------------------
def actions(con: duckdb.DuckDBPyConnection, case_id: str | None = None, limit: int = 500) -> pd.DataFrame:
    if not queries.table_exists(con, "actions"):
        raise EngineMissing("it needs the coordinator's tables, which this store does not have yet",
                            hint="run 'processlens coordinator run --once' once, or update processlens")
    where, params = ("WHERE case_id = ?", [case_id]) if case_id else ("", [])
    return con.execute(
        f"""SELECT action_id, created_at, origin, rule, actor, kind, action_type, case_id, step, reason, status,
                   attempts, delivered_at, last_error, approved_by
            FROM actions {where} ORDER BY created_at DESC, action_id DESC LIMIT ?""", params + [limit]).df()


def action_status_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    if not queries.table_exists(con, "actions"):
        return {}
    return dict(con.execute("SELECT status, count(*) FROM actions GROUP BY status").fetchall())


def effect(con: duckdb.DuckDBPyConnection, now: str | None = None) -> pd.DataFrame:
    return pd.DataFrame(engine("coordinator", "effect")(con, now=_now(now)))


def rules(con: duckdb.DuckDBPyConnection, config: str | None = None) -> pd.DataFrame:
    """The configured rules with their runtime state (enabled, failures, last run)."""
    found = engine("coordinator", "load_rules")(_settings(config))
    states: dict[str, tuple] = {}
    if queries.table_exists(con, "rule_state"):
        states = {r[0]: r[1:] for r in con.execute(
            "SELECT rule, enabled, disabled_reason, consecutive_failures, last_run_at, last_matched, last_created "
            "FROM rule_state").fetchall()}
    rows = []
    for rule in found:
        st_ = states.get(rule.name)
        scope = ", ".join(getattr(rule, "steps", []) or getattr(rule, "types", []) or []) or "any"
        target = getattr(rule, "target", None)
        rows.append({
            "rule": rule.name, "when": rule.when, "scope": scope, "do": rule.action,
            "mode": getattr(rule, "mode", ""), "target": _target_text(target), "enabled": bool(st_[0]) if st_ else bool(getattr(rule, "enabled", True)),
            "disabled_reason": st_[1] if st_ else None, "consecutive_failures": st_[2] if st_ else 0,
            "last_run_at": st_[3] if st_ else None, "last_matched": st_[4] if st_ else None,
            "last_created": st_[5] if st_ else None, "description": getattr(rule, "description", ""),
        })
    return pd.DataFrame(rows)


def _target_text(target: Any) -> str:
    if target is None:
        return ""
    if getattr(target, "url", None):
        return str(target.url)
    if getattr(target, "url_env", None):
        return f"${target.url_env}"
    return ", ".join(getattr(target, "to", []) or [])


def manual_actions(con: duckdb.DuckDBPyConnection, config: str | None = None) -> list[str]:
    """Action types an operator can dispatch by hand (those some rule defines a target for)."""
    try:
        found = engine("coordinator", "load_rules")(_settings(config))
    except ConfigError:
        return []
    return sorted({r.action for r in found})


def preview_dispatch(con: duckdb.DuckDBPyConnection, case_ids: list[str], action: str, config: str | None = None,
                     now: str | None = None) -> dict[str, Any]:
    return engine("coordinator", "preview")(con, case_ids, action, _settings(config), now=_now(now))


def dispatch(con: duckdb.DuckDBPyConnection, case_ids: list[str], action: str, actor: str, config: str | None = None,
             now: str | None = None, text: str | None = None) -> list[int]:
    """Queue one action per case (called through ``dashboard.data.run_write`` after the role check)."""
    return engine("coordinator", "enqueue_manual")(con, case_ids, action, actor, _settings(config), now=_now(now),
                                                   text=text)


def end_activities(con: duckdb.DuckDBPyConnection, config: str | None = None) -> list[str] | None:
    """Activities that close a case: ``[dashboard] end_activities``, else the reference model's final steps."""
    s = _settings(config)
    configured = s.section("dashboard").get("end_activities")
    if configured:
        return list(configured)
    try:
        model = reference_model(config)
    except (EngineMissing, NotConfigured, ConfigError):
        return None
    finals = set(getattr(model, "final_steps", set()) or set())
    if not finals:
        return None
    mapped = {a for a, t in (getattr(model, "activity_map", {}) or {}).items() if t in finals}
    return sorted(finals | mapped)


def model_steps(con: duckdb.DuckDBPyConnection, config: str | None = None) -> pd.DataFrame:
    """The reference model's steps: owner, SLA (s), exception and handler flags, final or not."""
    model = reference_model(config)
    rows = []
    for name, step in (getattr(model, "steps", {}) or {}).items():
        rows.append({"step": name, "owner": step.owner, "sla_seconds": step.sla_seconds,
                     "exception": bool(step.exception), "handles": step.handles,
                     "final": name in (getattr(model, "final_steps", set()) or set())})
    return pd.DataFrame(rows, columns=["step", "owner", "sla_seconds", "exception", "handles", "final"])


def sla_by_activity(con: duckdb.DuckDBPyConnection, config: str | None = None) -> dict[str, float]:
    """Maximum waiting time before each log activity (seconds), from the reference model's step SLAs."""
    model = reference_model(config)
    steps = getattr(model, "steps", {}) or {}
    out = {name: float(step.sla_seconds) for name, step in steps.items() if step.sla_seconds}
    for activity, task in (getattr(model, "activity_map", {}) or {}).items():
        if task in out:
            out[activity] = out[task]
    return out
