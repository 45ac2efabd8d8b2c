"""Conformance checking: token replay and alignments through pm4py, once per variant, cached.

Variants (sequences of model tasks after mapping and ignoring side activities) come from DuckDB
in the canonical event order. Each variant is replayed once per (model version, method) and the
result is kept in ``conformance_variants``; a later check, after new events arrived, computes only
variants it has not seen. Per-case results are the variant's; the log-level figures are the same
weighted sums pm4py computes (``log_fitness`` equals ``pm4py.fitness_token_based_replay`` /
``pm4py.fitness_alignments``).

Deviations are named in business terms from the alignment of each non-fitting variant:
``skipped step`` (model move), ``unexpected step`` (log move of a step the model does not expect
there), ``wrong order`` (a step done at another place than the model has it: a log move paired with
a model move of the same step) and ``repeated step`` (a log move of a step the case already did).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from models.model import ReferenceModel
from processlens.errors import ModelError

METHODS = ("token-replay", "alignments")
DEFAULT_TIME_LIMIT = 10.0  # seconds per variant for alignments
SEP = "\x1f"


@dataclass
class Variant:
    key: str
    activities: tuple[str, ...]
    cases: int = 0


@dataclass
class ConformanceResult:
    """The outcome of :func:`check`; ``cases_df`` holds one row per case."""

    model: str
    model_version: int | None
    method: str
    log_fitness: float
    precision: float | None
    cases: int
    fitting_cases: int
    cases_computed: int
    variants: int
    variants_computed: int
    variants_cached: int
    not_computed: list[dict[str, Any]]
    deviations: list[dict[str, Any]]
    deviation_types: list[dict[str, Any]]
    cases_df: pd.DataFrame = field(repr=False)
    seconds: float = 0.0
    data_version: int | None = None
    run_id: int | None = None

    def to_dict(self, cases: bool = False) -> dict[str, Any]:
        out = {
            "model": self.model, "model_version": self.model_version, "method": self.method,
            "log_fitness": self.log_fitness, "precision": self.precision, "cases": self.cases,
            "fitting_cases": self.fitting_cases, "cases_computed": self.cases_computed,
            "fitting_share": self.fitting_cases / self.cases_computed if self.cases_computed else None,
            "variants": self.variants, "variants_computed": self.variants_computed,
            "variants_cached": self.variants_cached, "not_computed": self.not_computed,
            "deviations": self.deviations, "deviation_types": self.deviation_types,
            "data_version": self.data_version, "seconds": round(self.seconds, 3),
        }
        if cases:
            out["case_results"] = json.loads(self.cases_df.to_json(orient="records", date_format="iso"))
        return out


# --- variants from the store -------------------------------------------------------------------

def case_traces(con: duckdb.DuckDBPyConnection, model: ReferenceModel) -> tuple[pd.DataFrame, list[Variant]]:
    """Per case its variant index and span; the distinct variants as mapped model-task sequences."""
    names = dict(con.execute("SELECT activity_id, name FROM activities").fetchall())
    ignored = [i for i, n in names.items() if model.task_for(n) is None]
    where = f"WHERE activity_id NOT IN ({', '.join(map(str, ignored))})" if ignored else ""
    df = con.execute(
        f"""
        WITH t AS (
            SELECT case_key, list(activity_id ORDER BY ts, event_id) AS trace, min(ts) AS first_ts, max(ts) AS last_ts
            FROM events {where} GROUP BY case_key)
        SELECT t.case_key, c.case_id, hash(t.trace) AS raw_variant, t.first_ts, t.last_ts,
               CASE WHEN row_number() OVER (PARTITION BY hash(t.trace)) = 1 THEN t.trace END AS trace
        FROM t JOIN cases c USING (case_key)
        """).df()
    variants: list[Variant] = []
    index: dict[tuple[str, ...], int] = {}
    raw_to_idx: dict[int, int] = {}
    for raw, trace in zip(df["raw_variant"].tolist(), df["trace"].tolist(), strict=False):
        if trace is None or not hasattr(trace, "__len__"):
            continue
        acts = tuple(model.task_for(names[a]) for a in trace)
        if acts not in index:
            index[acts] = len(variants)
            variants.append(Variant(variant_key(acts), acts))
        raw_to_idx[raw] = index[acts]
    df["variant"] = df["raw_variant"].map(raw_to_idx).astype("int64")
    df = df.drop(columns=["trace", "raw_variant"])
    counts = df["variant"].value_counts()
    for i, n in counts.items():
        variants[int(i)].cases = int(n)
    df["throughput_seconds"] = (df["last_ts"] - df["first_ts"]).dt.total_seconds()
    return df, variants


def variant_key(activities: tuple[str, ...]) -> str:
    return hashlib.md5(SEP.join(activities).encode("utf-8")).hexdigest()


# --- pm4py per variant -------------------------------------------------------------------------

def _event_log(variants: list[tuple[str, ...]], repeat: list[int] | None = None):
    from pm4py.objects.log.obj import Event, EventLog, Trace

    log = EventLog()
    for i, acts in enumerate(variants):
        trace = Trace([Event({"concept:name": a}) for a in acts])
        trace.attributes["concept:name"] = str(i)
        for _ in range(repeat[i] if repeat else 1):
            log.append(trace)
    return log


def token_replay_variants(model: ReferenceModel, variants: list[tuple[str, ...]]) -> list[dict[str, Any]]:
    """pm4py token-based replay of each variant (same parameters as ``pm4py.fitness_token_based_replay``)."""
    from pm4py.algo.conformance.tokenreplay import algorithm as token_replay

    if not variants:
        return []
    res = token_replay.apply(_event_log(variants), model.net, model.im, model.fm,
                             parameters={"show_progress_bar": False})
    return [{"fit": bool(r["trace_is_fit"]), "fitness": float(r["trace_fitness"]),
             "missing": int(r["missing_tokens"]), "consumed": int(r["consumed_tokens"]),
             "remaining": int(r["remaining_tokens"]), "produced": int(r["produced_tokens"])} for r in res]


def prefix_net(model: ReferenceModel):
    """The model's net where a case may stop anywhere: an invisible "eater" per place, empty final marking.

    Aligning a running case against it finds its deviations so far, not the steps still to come.
    """
    import copy

    from pm4py.objects.petri_net.obj import Marking, PetriNet
    from pm4py.objects.petri_net.utils.petri_utils import add_arc_from_to

    cached = getattr(model, "_prefix_net", None)
    if cached is None:
        net, im, _ = copy.deepcopy((model.net, model.im, model.fm))
        for p in list(net.places):
            t = PetriNet.Transition(f"__stop_{p.name}", None)
            net.transitions.add(t)
            add_arc_from_to(p, t, net)
        cached = (net, im, Marking())
        model._prefix_net = cached
    return cached


def alignment_variants(model: ReferenceModel, variants: list[tuple[str, ...]],
                       time_limit: float = DEFAULT_TIME_LIMIT, prefix: bool = False) -> list[dict[str, Any] | None]:
    """pm4py alignments (A* on the state equation, pm4py's default) per variant; None = over the time limit.

    ``prefix``: align against :func:`prefix_net` (running cases).
    """
    from pm4py.algo.conformance.alignments.petri_net import algorithm as alignments

    if not variants:
        return []
    params = {alignments.Parameters.PARAM_MAX_ALIGN_TIME_TRACE: time_limit, "show_progress_bar": False}
    net, im, fm = prefix_net(model) if prefix else (model.net, model.im, model.fm)
    res = alignments.apply(_event_log(variants), net, im, fm, parameters=params)
    out: list[dict[str, Any] | None] = []
    for r in res:
        if r is None or r.get("alignment") is None:
            out.append(None)
            continue
        out.append({"fit": r["fitness"] == 1.0, "fitness": float(r["fitness"]), "cost": float(r["cost"]),
                    "bwc": float(r.get("bwc", 0.0)),
                    "moves": [[m[0], m[1]] for m in r["alignment"]]})
    return out


def classify_moves(moves: list[list[Any]], model: ReferenceModel) -> list[dict[str, Any]]:
    """Business deviations from alignment moves: skipped, unexpected, wrong order, repeated step."""
    skip = ">>"
    log_moves = [i for i, (lg, md) in enumerate(moves) if md == skip]
    model_moves = [i for i, (lg, md) in enumerate(moves) if lg == skip and md is not None and md != skip]
    paired: dict[int, int] = {}
    for i in log_moves:
        for j in model_moves:
            if j not in paired.values() and moves[j][1] == moves[i][0]:
                paired[i] = j
                break
    paired_model = set(paired.values())
    synced = {lg for lg, md in moves if lg != skip and md != skip}
    done: list[str] = []
    devs: list[dict[str, Any]] = []
    pos = 0
    for i, (lg, md) in enumerate(moves):
        after = done[-1] if done else None
        if md == skip:
            pos += 1
            if i in paired:
                kind = "wrong order"
            elif lg in done or lg in synced:
                kind = "repeated step"
            else:
                kind = "unexpected step"
            devs.append({"type": kind, "step": lg, "position": pos, "after": after})
        elif lg == skip:
            if md is not None and i not in paired_model:
                devs.append({"type": "skipped step", "step": md, "position": pos + 1, "after": after})
        else:
            pos += 1
        if lg != skip:
            done.append(lg)
    for d in devs:
        d["allowed"] = model.is_allowed(d["type"], d["step"])
        d["owner"] = model.owner(d["step"])
    return devs


# --- cache ---------------------------------------------------------------------------------------

def _cached(con, model_id: int, method: str, keys: list[str], time_limit: float) -> dict[str, dict[str, Any] | None]:
    """Cached results; a variant not computed before counts only if it was tried with at least this limit."""
    if not keys:
        return {}
    rows = con.execute(
        "SELECT variant_key, status, result FROM conformance_variants WHERE model_id = ? AND method = ? "
        "AND variant_key IN (SELECT unnest(?))", [model_id, method, keys]).fetchall()
    out: dict[str, dict[str, Any] | None] = {}
    for k, st, r in rows:
        data = json.loads(r) if r else {}
        if st == "computed":
            out[k] = data
        elif data.get("time_limit", 0.0) >= time_limit:
            out[k] = None
    return out


def _store(con, model_id: int, method: str, rows: list[tuple[str, dict[str, Any] | None]], seconds: float,
           time_limit: float) -> None:
    if not rows:
        return
    per = seconds / len(rows)
    data = pd.DataFrame({
        "model_id": model_id, "method": method, "variant_key": [k for k, _ in rows],
        "status": ["computed" if r is not None else "not computed" for _, r in rows],
        "result": [json.dumps(r if r is not None else {"time_limit": time_limit}) for _, r in rows], "seconds": per})
    try:
        con.register("_pl_conf_rows", data)
        con.execute("INSERT OR REPLACE INTO conformance_variants (model_id, method, variant_key, status, result, seconds) "
                    "SELECT model_id, method, variant_key, status, result::JSON, seconds FROM _pl_conf_rows")
        con.unregister("_pl_conf_rows")
    except duckdb.Error:  # a read-only connection: results are still returned, just not kept
        pass


def variant_results(con, model: ReferenceModel, method: str, variants: list[Variant],
                    time_limit: float = DEFAULT_TIME_LIMIT) -> tuple[list[dict[str, Any] | None], int]:
    """Results per variant (None = not computed), from the cache where possible; returns (results, computed)."""
    cache = _cached(con, model.model_id, method, [v.key for v in variants], time_limit) if model.model_id else {}
    todo = [v for v in variants if v.key not in cache]
    t0 = time.perf_counter()
    if method == "token-replay":
        fresh = token_replay_variants(model, [v.activities for v in todo])
    else:
        fresh = alignment_variants(model, [v.activities for v in todo], time_limit, prefix=method == "prefix-alignments")
    elapsed = time.perf_counter() - t0
    if model.model_id:
        _store(con, model.model_id, method, [(v.key, r) for v, r in zip(todo, fresh, strict=False)], elapsed, time_limit)
    cache.update({v.key: r for v, r in zip(todo, fresh, strict=False)})
    return [cache[v.key] for v in variants], len(todo)


# --- the check -----------------------------------------------------------------------------------

def check(con: duckdb.DuckDBPyConnection, model: ReferenceModel, method: str = "token-replay", *,
          time_limit: float = DEFAULT_TIME_LIMIT, precision: bool = True, deviations: bool = True,
          record: bool = True) -> ConformanceResult:
    """Check every case of the store against ``model``; see the module docstring."""
    from ingest.store import data_version
    from models.registry import register_model

    if method not in METHODS:
        raise ModelError(f"unknown conformance method {method!r}", hint=f"use one of {', '.join(METHODS)}")
    t0 = time.perf_counter()
    started = datetime.now(UTC).replace(tzinfo=None)
    try:
        register_model(con, model)
    except duckdb.Error:  # read-only store: work without the cache
        model.model_id = model.model_id or None
    cases_df, variants = case_traces(con, model)
    results, computed = variant_results(con, model, method, variants, time_limit)
    diag: list[dict[str, Any] | None] = [None] * len(variants)
    if deviations:
        # deviations come from alignments: full ones for finished cases, prefix alignments for running ones
        # (token replay passes over activities the model does not know, as pm4py does; they are still deviations)
        running = [bool(v.activities) and v.activities[-1] not in model.final_steps for v in variants]
        labels = model.labels
        suspect = [r is not None and (not r["fit"] or any(a not in labels for a in v.activities))
                   for v, r in zip(variants, results, strict=True)]
        for kind, want in (("alignments", False), ("prefix-alignments", True)):
            todo = [i for i in range(len(variants)) if suspect[i] and running[i] == want]
            if kind == method:
                found = [results[i] for i in todo]
            else:
                found, _ = variant_results(con, model, kind, [variants[i] for i in todo], time_limit)
            for i, r in zip(todo, found, strict=False):
                diag[i] = r
    var_devs = [classify_moves(d["moves"], model) if d is not None else [] for d in diag]
    done = [r is not None for r in results]
    n_cases = int(sum(v.cases for v in variants))
    n_computed = int(sum(v.cases for v, ok in zip(variants, done, strict=True) if ok))
    fitting = int(sum(v.cases for v, r in zip(variants, results, strict=False) if r is not None and r["fit"]))
    log_fitness = _log_fitness(method, variants, results)
    not_computed = [{"variant": list(v.activities), "cases": v.cases, "reason": f"alignment over the {time_limit:g}s limit"}
                    for v, r in zip(variants, results, strict=False) if r is None]
    cases_df["fitting"] = cases_df["variant"].map(lambda i: None if results[i] is None else results[i]["fit"])
    cases_df["fitness"] = cases_df["variant"].map(lambda i: None if results[i] is None else results[i]["fitness"])
    cases_df["deviations"] = cases_df["variant"].map(lambda i: var_devs[i])
    conforming = [None if r is None else (all(x["allowed"] for x in devs) if d is not None else bool(r["fit"]))
                  for r, d, devs in zip(results, diag, var_devs, strict=False)]
    cases_df["conforming"] = cases_df["variant"].map(lambda i: conforming[i])
    dev_rows, type_rows = summarize_deviations(cases_df, variants, var_devs)
    prec = precision_of(model, variants) if precision and variants else None
    out = ConformanceResult(
        model=model.name, model_version=model.version, method=method, log_fitness=log_fitness, precision=prec,
        cases=n_cases, fitting_cases=fitting, cases_computed=n_computed, variants=len(variants), variants_computed=computed,
        variants_cached=len(variants) - computed, not_computed=not_computed, deviations=dev_rows,
        deviation_types=type_rows, cases_df=cases_df[["case_id", "variant", "fitting", "fitness", "conforming",
                                                       "deviations", "first_ts", "last_ts", "throughput_seconds"]],
        seconds=time.perf_counter() - t0, data_version=data_version(con))
    if record and model.model_id:
        out.run_id = _record_run(con, model, out, started)
    return out


def _log_fitness(method: str, variants: list[Variant], results: list[dict[str, Any] | None]) -> float:
    pairs = [(v.cases, r) for v, r in zip(variants, results, strict=False) if r is not None]
    if not pairs:
        return 0.0
    if method == "token-replay":
        m = sum(n * r["missing"] for n, r in pairs)
        c = sum(n * r["consumed"] for n, r in pairs)
        rem = sum(n * r["remaining"] for n, r in pairs)
        p = sum(n * r["produced"] for n, r in pairs)
        return 0.5 * (1 - m / c) + 0.5 * (1 - rem / p) if c > 0 and p > 0 else 0.0
    cost = sum(n * r["cost"] for n, r in pairs)
    bwc = sum(n * r["bwc"] for n, r in pairs)
    return 1.0 - cost / bwc if bwc > 0 else 0.0


def precision_of(model: ReferenceModel, variants: list[Variant]) -> float:
    """ETConformance precision (``pm4py.precision_token_based_replay``) of the log."""
    from pm4py.algo.evaluation.precision import algorithm as precision_evaluator

    log = _event_log([v.activities for v in variants], [v.cases for v in variants])
    return float(precision_evaluator.apply(log, model.net, model.im, model.fm,
                                           variant=precision_evaluator.Variants.ETCONFORMANCE_TOKEN,
                                           parameters={"show_progress_bar": False}))


def summarize_deviations(cases_df: pd.DataFrame, variants: list[Variant],
                         var_devs: list[list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per (type, step) and per type: cases, share of cases, throughput time with vs without."""
    total = len(cases_df)
    tp = cases_df.groupby("variant")["throughput_seconds"].agg(["sum", "count"])
    all_sum, all_n = float(tp["sum"].sum()), int(tp["count"].sum())
    by_pair: dict[tuple[str, str], dict[str, Any]] = {}
    by_type: dict[str, set[int]] = {}
    for i, devs in enumerate(var_devs):
        for d in devs:
            key = (d["type"], d["step"])
            e = by_pair.setdefault(key, {"variants": set(), "after": {}, "allowed": d["allowed"], "owner": d["owner"]})
            e["variants"].add(i)
            e["after"][d["after"]] = e["after"].get(d["after"], 0) + variants[i].cases
            by_type.setdefault(d["type"], set()).add(i)

    def impact(vs: set[int]) -> dict[str, Any]:
        s = sum(float(tp.loc[v, "sum"]) for v in vs if v in tp.index)
        n = sum(int(tp.loc[v, "count"]) for v in vs if v in tp.index)
        with_mean = s / n if n else None
        without_mean = (all_sum - s) / (all_n - n) if all_n - n else None
        return {"cases": n, "share": n / total if total else 0.0,
                "throughput_with_seconds": with_mean, "throughput_without_seconds": without_mean,
                "impact_seconds": (with_mean - without_mean) if with_mean is not None and without_mean is not None else None}

    rows = []
    for (kind, step), e in by_pair.items():
        where = max(e["after"].items(), key=lambda kv: kv[1])[0]
        rows.append({"type": kind, "step": step, "owner": e["owner"], "allowed": e["allowed"],
                     "where": f"after {where}" if where else "at the start", **impact(e["variants"])})
    rows.sort(key=lambda r: (-r["cases"], r["type"], r["step"] or ""))
    types = [{"type": k, **impact(vs)} for k, vs in by_type.items()]
    types.sort(key=lambda r: -r["cases"])
    return rows, types


def _record_run(con, model: ReferenceModel, res: ConformanceResult, started: datetime) -> int | None:
    try:
        run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM conformance_runs").fetchone()[0]
        con.execute(
            "INSERT INTO conformance_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, model.model_id, res.method, res.data_version, started, res.seconds, res.variants,
             res.variants_computed, len(res.not_computed), res.cases, res.fitting_cases, res.log_fitness,
             res.precision, json.dumps({"deviation_types": res.deviation_types}, default=str)])
        return int(run_id)
    except duckdb.Error:
        return None
