"""Evaluate rules against the conformance engine and write the decided actions into the outbox.

Detection (which cases are stuck, which exceptions are unhandled, ...) is read first; then the
decision — rule enabled, case filter, cool-down, rate limits — and the resulting outbox rows,
audit records and rule state are written in **one** transaction. A crash before the commit
leaves no action behind; after it, every decided action is in the outbox for the dispatcher.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from coordinator import audit, outbox
from coordinator.payload import build_action
from coordinator.rules import CoordinatorSettings, Rule, load_rules
from processlens.errors import ActionError, ConfigError, ProcesslensError

log = logging.getLogger("processlens.coordinator")


@dataclass
class RuleOutcome:
    """What one rule did in one evaluation."""

    rule: str
    when: str
    mode: str
    matched: int = 0
    created: int = 0
    refused: int = 0
    cooldown: int = 0
    rate_limited: int = 0
    skipped_reason: str | None = None
    case_ids: list[str] = field(default_factory=list)   # the cases that would be / were acted on
    action_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Evaluation:
    now: datetime
    rules: list[RuleOutcome]

    @property
    def created(self) -> int:
        return sum(r.created for r in self.rules)

    def to_dict(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "created": self.created, "rules": [r.to_dict() for r in self.rules]}


def evaluation_now(settings: Any, now: datetime | None = None) -> datetime:
    """The clock of an evaluation: the argument, ``[coordinator] now`` (demo, replays), or UTC now."""
    if now is not None:
        return now.replace(tzinfo=None) if now.tzinfo is None else now.astimezone(tz=None).replace(tzinfo=None)
    cs = CoordinatorSettings.from_settings(settings)
    return cs.now or outbox.now_utc()


# -- detection ---------------------------------------------------------------------------------
class _Models:
    """Loads reference models once per evaluation and calls the conformance engine."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._cache: dict[str | None, Any] = {}

    def model(self, name: str | None) -> Any:
        if name not in self._cache:
            try:
                import models
            except ImportError as exc:
                raise ConfigError("the conformance engine (package models) is not installed",
                                  hint="install processlens completely") from exc
            self._cache[name] = models.model_from_settings(self.settings, name)
        return self._cache[name]


def _engine_fn(name: str):
    import models

    fn = getattr(models, name, None)
    if fn is None:
        raise ConfigError(f"the conformance engine has no {name}() yet", hint="update processlens")
    return fn


def detect(con: duckdb.DuckDBPyConnection, rule: Rule, settings: Any, now: datetime, models_: _Models) -> pd.DataFrame:
    """Rows the rule's condition matches, one per case (first match), with case_id, step, owner, ..."""
    if rule.when == "stuck":
        df = _engine_fn("stuck")(con, models_.model(rule.model or _default_model(settings)), now)
        if rule.steps:
            df = df[df["step"].isin(rule.steps)]
        if rule.min_waited_seconds is not None:
            df = df[df["waited_seconds"] >= rule.min_waited_seconds]
        df = df.sort_values(["waited_seconds", "case_id"], ascending=[False, True])
    elif rule.when == "unhandled_exception":
        df = _exceptions(con, models_.model(rule.model or _default_model(settings)), now,
                         deviations="deviation" in rule.kinds)
        if "kind" in df:
            df = df[df["kind"].isin(rule.kinds)]
        df = df[~df["handled"].astype(bool)]
        types = rule.types or rule.steps
        if types:
            df = df[df["type"].isin(types)]
        df = df.sort_values(["ts", "case_id"]).assign(step=lambda d: d["type"])
        if "ts" in df:
            df = df.assign(waited_seconds=(pd.Timestamp(now) - pd.to_datetime(df["ts"])).dt.total_seconds(),
                           last_ts=df["ts"])
    elif rule.when == "deviation":
        df = _exceptions(con, models_.model(rule.model or _default_model(settings)), now, deviations=True)
        df = df[(df["kind"] == "deviation") & ~df["handled"].astype(bool)].sort_values(["ts", "case_id"])
        types = rule.types or rule.steps
        if types:
            df = df[df["type"].isin(types)]
    else:
        df = _new_events(con, rule)
    if rule.owners and "owner" in df:
        df = df[df["owner"].isin(rule.owners)]
    if rule.cases:
        df = df[df["case_id"].astype(str).isin(filter_case_ids(con, rule.cases, now))]
    return df.drop_duplicates("case_id", keep="first").reset_index(drop=True)


def _default_model(settings: Any) -> str | None:
    return CoordinatorSettings.from_settings(settings).model


def _exceptions(con: duckdb.DuckDBPyConnection, model: Any, now: datetime, deviations: bool) -> pd.DataFrame:
    """The engine's exceptions: exception events, deviations outside the allowlist, abandoned cases."""
    fn = _engine_fn("exceptions")
    try:
        return fn(con, model, now, deviations=deviations)
    except TypeError:  # an engine without the switch computes everything
        return fn(con, model, now)


def _new_events(con: duckdb.DuckDBPyConnection, rule: Rule) -> pd.DataFrame:
    """Events that arrived since the rule last looked (``rule_state.last_event_id``)."""
    row = con.execute("SELECT last_event_id FROM rule_state WHERE rule = ?", [rule.name]).fetchone()
    if row is None or row[0] is None:
        return pd.DataFrame({"case_id": [], "type": [], "step": [], "event_id": []})  # first look: watermark only
    params: list[Any] = [row[0]]
    where = ""
    if rule.types:
        where += f" AND activity IN ({', '.join('?' for _ in rule.types)})"
        params += rule.types
    if rule.steps:  # for event rules 'steps' may name source systems
        where += f" AND source IN ({', '.join('?' for _ in rule.steps)})"
        params += rule.steps
    df = con.execute(
        f"SELECT case_id, activity AS type, activity AS step, source, ts AS last_ts, resource, event_id FROM event_log "
        f"WHERE event_id > ? AND source <> '{audit.SOURCE}'{where} ORDER BY event_id",
        params,
    ).df()
    return df


def filter_case_ids(con: duckdb.DuckDBPyConnection, flt: dict[str, Any], now: datetime) -> set[str]:
    """Case ids selected by an analytics filter dict (``analytics.Filter.from_dict``)."""
    try:
        import analytics
    except ImportError as exc:
        raise ConfigError("case filters in rules need the analytics package", hint="install processlens completely") from exc
    try:
        f = analytics.Filter.from_dict(flt)
    except ProcesslensError:
        raise
    except Exception as exc:
        raise ConfigError(f"invalid case filter {flt!r}: {exc}", hint="use the keys of analytics.Filter") from exc
    return set(analytics.cases(con, f, now=now)["case_id"].astype(str))


# -- decision -------------------------------------------------------------------------------------
def evaluate(con: duckdb.DuckDBPyConnection, settings: Any, now: datetime | None = None, *,
             rules: list[Rule] | None = None, dry_run: bool = False) -> Evaluation:
    """Evaluate the rules and (unless ``dry_run``) write the decided actions into the outbox.

    Dry run (and rules in mode ``dry_run``) report which cases would be hit, writing nothing.
    """
    now = evaluation_now(settings, now)
    cs = CoordinatorSettings.from_settings(settings)
    rules = load_rules(settings) if rules is None else rules
    models_ = _Models(settings)
    detected: dict[str, pd.DataFrame] = {}
    outcomes: dict[str, RuleOutcome] = {}
    for rule in rules:
        out = outcomes[rule.name] = RuleOutcome(rule.name, rule.when, "dry_run" if dry_run else rule.mode)
        problems = rule.problems(cs)
        if problems and not dry_run:
            out.skipped_reason = "; ".join(problems)
            log.warning("%s", out.skipped_reason)
            continue
        detected[rule.name] = detect(con, rule, settings, now, models_)
    states = outbox.rule_states(con)
    con.execute("BEGIN TRANSACTION")
    try:
        for rule in rules:
            out = outcomes[rule.name]
            if rule.name not in detected:
                continue
            _decide(con, rule, detected[rule.name], out, states.get(rule.name), cs, now, dry_run)
        if dry_run:
            con.execute("ROLLBACK")
        else:
            con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return Evaluation(now, [outcomes[r.name] for r in rules])


def _decide(con: duckdb.DuckDBPyConnection, rule: Rule, df: pd.DataFrame, out: RuleOutcome,
            state: dict[str, Any] | None, cs: CoordinatorSettings, now: datetime, dry_run: bool) -> None:
    out.matched = len(df)
    if not rule.enabled:
        out.skipped_reason = "disabled in the configuration (enabled = false)"
        return
    if state and not state.get("enabled", True):
        out.skipped_reason = f"disabled: {state.get('disabled_reason') or 'by an operator'}"
        return
    cooling = outbox.cases_in_cooldown(con, rule.name, now, rule.cooldown_seconds)
    budget = rule.max_per_run if rule.max_per_run is not None else None
    if rule.max_per_hour is not None:
        used = outbox.created_since(con, rule.name, outbox.now_utc() - timedelta(hours=1))
        left = max(rule.max_per_hour - used, 0)
        budget = left if budget is None else min(budget, left)
    rows, audits = [], []
    for match in df.to_dict(orient="records"):
        case_id = str(match["case_id"])
        if case_id in cooling:
            out.cooldown += 1
            continue
        if budget is not None and len(out.case_ids) >= budget:
            out.rate_limited += 1
            continue
        out.case_ids.append(case_id)
        if dry_run or rule.mode == "dry_run":
            continue
        try:
            rows.append(build_action(match=match, action=rule.action, target=rule.target, kind=rule.when, rule=rule.name,
                                     actor=f"rule:{rule.name}", origin="rule", mode=rule.mode, cs=cs, now=now,
                                     text=rule.text, extra=rule.payload))
        except ActionError as exc:
            out.refused += 1
            audits.append({"actor": f"rule:{rule.name}", "event": "refused", "rule": rule.name, "case_id": case_id,
                           "detail": exc.message})
    ids = outbox.insert_actions(con, rows)
    out.action_ids.extend(ids)
    for action_id, row in zip(ids, rows, strict=True):
        refused = row["status"] == "refused"
        out.refused += refused
        out.created += not refused
        audits.append({"actor": row["actor"], "event": "refused" if refused else "created", "action_id": action_id,
                       "rule": rule.name, "case_id": row["case_id"], "payload_sha256": outbox.sha256(row["payload"]),
                       "detail": row["last_error"] if refused else row["reason"]})
    audit.write_many(con, audits)
    if not dry_run:
        values: dict[str, Any] = {"last_run_at": outbox.now_utc(), "last_matched": out.matched, "last_created": out.created}
        if rule.when == "event":
            # nobody else writes while this process holds the store: the top now is the top detection saw
            values["last_event_id"] = con.execute("SELECT coalesce(max(event_id), -1) FROM events").fetchone()[0]
        outbox.upsert_rule_state(con, rule.name, **values)


def dry_run(con: duckdb.DuckDBPyConnection, settings: Any, rule_name: str, now: datetime | None = None) -> RuleOutcome:
    """Which cases a rule would act on now, honouring cool-downs and rate limits; writes nothing."""
    from coordinator.rules import get_rule

    rule = get_rule(settings, rule_name)
    ev = evaluate(con, settings, now, rules=[rule], dry_run=True)
    return ev.rules[0]
