"""``processlens coordinator``, ``processlens actions`` and ``processlens rules``."""

from __future__ import annotations

import getpass
import json
import logging

import click

from processlens.cli.common import emit, json_option, settings


def _now_option(f):
    return click.option("--now", "now", default=None, metavar="ISO",
                        help="Evaluate as of this UTC time (default: [coordinator] now, else the current time).")(f)


def _parse_now(now: str | None):
    if now is None:
        return None
    from coordinator.rules import parse_time

    return parse_time(now, {"option": "--now"})


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except Exception:
        return "cli"


def _records(df) -> list[dict]:
    out = []
    for rec in df.to_dict(orient="records"):
        for k in ("target", "details"):
            if isinstance(rec.get(k), str):
                rec[k] = json.loads(rec[k])
        out.append({k: (None if v != v else v) if isinstance(v, float) else v for k, v in rec.items()})
    return out


# -- coordinator ---------------------------------------------------------------------------------
@click.group()
def coordinator() -> None:
    """Evaluate rules and deliver corrective actions (the outbox dispatcher)."""


@coordinator.command("run")
@click.option("--once", is_flag=True, help="One cycle: evaluate the rules, deliver what is due, exit.")
@click.option("--no-evaluate", is_flag=True, help="Only deliver queued actions; do not evaluate rules.")
@click.option("--max-cycles", type=int, default=None, help="Stop after this many cycles (for scripts).")
@_now_option
@json_option
@click.pass_context
def run_cmd(ctx, once, no_evaluate, max_cycles, now, as_json):
    """Run the coordinator loop (or one cycle with --once)."""
    from coordinator.service import run_loop, run_once

    s = settings(ctx)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("httpx", "httpcore"):  # they log request URLs, and webhook URLs can be secrets
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if once:
        result = run_once(s, now=_parse_now(now), evaluate_first=not no_evaluate)
        d = result.to_dict()
        lines = []
        if result.evaluation:
            for r in result.evaluation.rules:
                lines.append(f"rule {r.rule} ({r.when}, {r.mode}): matched {r.matched}, created {r.created}, "
                             f"cool-down {r.cooldown}, rate-limited {r.rate_limited}, refused {r.refused}"
                             + (f" — skipped: {r.skipped_reason}" if r.skipped_reason else ""))
        st = result.dispatch
        lines.append(f"delivered {st.delivered}, failed attempts {st.failed}, dead-lettered {st.dead}, refused {st.refused}"
                     + (f"; rules disabled: {', '.join(st.rules_disabled)}" if st.rules_disabled else ""))
        emit(d, as_json, "\n".join(lines))
        return

    def on_cycle(result):
        st = result.dispatch
        created = result.evaluation.created if result.evaluation else 0
        if as_json:
            click.echo(json.dumps(result.to_dict(), default=str))
        elif created or st.claimed or result.error:
            click.echo(f"created {created}, delivered {st.delivered}, failed {st.failed}, dead {st.dead}"
                       + (f", error: {result.error}" if result.error else ""))

    run_loop(s, max_cycles=max_cycles, on_cycle=on_cycle)


# -- actions ---------------------------------------------------------------------------------------
@click.group()
def actions() -> None:
    """List, inspect, retry, approve and dispatch corrective actions."""


@actions.command("list")
@click.option("--status", type=click.Choice(["awaiting_approval", "pending", "delivered", "dead", "refused", "rejected"]))
@click.option("--rule", help="Only actions of this rule.")
@click.option("--case", "case_id", help="Only actions on this case.")
@click.option("--limit", default=200, show_default=True)
@json_option
@click.pass_context
def list_cmd(ctx, status, rule, case_id, limit, as_json):
    """The outbox, newest first."""
    from coordinator.outbox import list_actions
    from ingest.store import open_store

    with open_store(settings(ctx).db_path, read_only=True) as con:
        df = list_actions(con, status=status, rule=rule, case_id=case_id, limit=limit)
    cols = ["action_id", "created_at", "rule", "actor", "kind", "action_type", "case_id", "step", "status", "attempts",
            "last_error"]
    emit(_records(df), as_json, df[cols].to_string(index=False) if len(df) else "no actions")


@actions.command("show")
@click.argument("action_id", type=int)
@json_option
@click.pass_context
def show_cmd(ctx, action_id, as_json):
    """One action with its attempts and audit trail."""
    from coordinator.audit import trail
    from coordinator.outbox import attempts_of, get_action
    from ingest.store import open_store
    from processlens.errors import ActionError

    with open_store(settings(ctx).db_path, read_only=True) as con:
        a = get_action(con, action_id)
        if a is None:
            raise ActionError(f"no action with id {action_id}", hint="list them with: processlens actions list")
        att, aud = attempts_of(con, action_id), trail(con, action_id=action_id)
    data = {**a, "attempts_log": _records(att), "audit": _records(aud)}
    text = "\n".join(f"{k}: {v}" for k, v in a.items()) + "\n\nattempts:\n" + (att.to_string(index=False) if len(att) else "none")
    emit(data, as_json, text)


@actions.command("retry")
@click.argument("action_id", type=int)
@click.option("--actor", help="Who asks (default: the OS user).")
@json_option
@click.pass_context
def retry_cmd(ctx, action_id, actor, as_json):
    """Queue a dead-lettered action again with a fresh attempt budget."""
    from coordinator.manual import retry
    from ingest.store import open_store

    with open_store(settings(ctx).db_path) as con:
        a = retry(con, action_id, _actor(actor), settings(ctx))
    emit({"action_id": action_id, "status": a["status"]}, as_json,
         f"action {action_id} queued again; the next 'processlens coordinator run' delivers it")


def _approval(ctx, ids, actor, as_json, approved: bool):
    from coordinator.manual import approve
    from ingest.store import open_store

    with open_store(settings(ctx).db_path) as con:
        n = approve(con, list(ids), _actor(actor), approved)
    emit({"changed": n}, as_json, f"{'approved' if approved else 'rejected'} {n} action(s)")


@actions.command("approve")
@click.argument("action_ids", type=int, nargs=-1, required=True)
@click.option("--actor", help="Who approves (default: the OS user).")
@json_option
@click.pass_context
def approve_cmd(ctx, action_ids, actor, as_json):
    """Approve actions of rules with mode = "approval"."""
    _approval(ctx, action_ids, actor, as_json, True)


@actions.command("reject")
@click.argument("action_ids", type=int, nargs=-1, required=True)
@click.option("--actor", help="Who rejects (default: the OS user).")
@json_option
@click.pass_context
def reject_cmd(ctx, action_ids, actor, as_json):
    """Reject actions awaiting approval (they are never sent)."""
    _approval(ctx, action_ids, actor, as_json, False)


@actions.command("dispatch")
@click.argument("case_ids", nargs=-1, required=True)
@click.option("--action", "action", type=click.Choice(["escalate", "reassign", "retry", "email", "chat", "ticket", "webhook"]),
              required=True, help="The action to take.")
@click.option("--rule", help="Take target and text from this rule (default: the first rule with this action).")
@click.option("--text", help="Message text (template fields like {case_id} allowed).")
@click.option("--actor", help="Who dispatches (default: the OS user).")
@click.option("--yes", is_flag=True, help="Queue without showing the preview first.")
@json_option
@click.pass_context
def dispatch_cmd(ctx, case_ids, action, rule, text, actor, yes, as_json):
    """Dispatch an action by hand to one or more cases (shows a preview count first)."""
    from coordinator.manual import enqueue_manual, preview
    from ingest.store import open_store

    s = settings(ctx)
    with open_store(s.db_path) as con:
        p = preview(con, list(case_ids), action, s, rule=rule)
        if not yes and not as_json:
            click.echo(f"{p['action']} via rule {p['rule']} for {p['cases']} case(s)"
                       + (f"; unknown: {', '.join(p['unknown'])}" if p["unknown"] else "")
                       + (f"; {p['acted_on_in_last_day']} already acted on in the last day" if p["acted_on_in_last_day"] else ""))
            if not click.confirm("Queue these actions?"):
                return
        ids = enqueue_manual(con, list(case_ids), action, _actor(actor), s, rule=rule, text=text)
    emit({"preview": p, "action_ids": ids}, as_json, f"queued {len(ids)} action(s): {', '.join(map(str, ids))}")


@actions.command("effect")
@json_option
@click.pass_context
def effect_cmd(ctx, as_json):
    """Did actions help? Time to move on and on-time share against comparable cases without action."""
    from coordinator.effect import effect
    from ingest.store import open_store

    with open_store(settings(ctx).db_path, read_only=True) as con:
        df = effect(con)
    emit(_records(df), as_json, df.to_string(index=False) if len(df) else "no delivered actions yet")


# -- rules ----------------------------------------------------------------------------------------
@click.group()
def rules() -> None:
    """Coordinator rules from processlens.toml: list, dry-run test, enable, disable."""


@rules.command("list")
@json_option
@click.pass_context
def rules_list_cmd(ctx, as_json):
    """The rules with their guardrails, problems and runtime state."""
    from coordinator.outbox import rule_states
    from coordinator.rules import CoordinatorSettings, load_rules
    from ingest.store import open_store

    s = settings(ctx)
    cs = CoordinatorSettings.from_settings(s)
    rs = load_rules(s)
    with open_store(s.db_path, read_only=True) as con:
        states = rule_states(con)
    data = []
    for r in rs:
        st = states.get(r.name, {})
        data.append({
            "rule": r.name, "when": r.when, "do": r.action, "mode": r.mode, "steps": r.steps, "types": r.types,
            "cases": r.cases, "max_per_run": r.max_per_run, "max_per_hour": r.max_per_hour,
            "cooldown_seconds": r.cooldown_seconds, "disable_after": r.disable_after,
            "enabled": r.enabled and st.get("enabled", True), "disabled_reason": st.get("disabled_reason"),
            "consecutive_failures": st.get("consecutive_failures", 0), "problems": r.problems(cs),
        })
    text = "\n".join(
        f"{d['rule']}: when {d['when']} do {d['do']} ({d['mode']}, cool-down {d['cooldown_seconds']:g}s)"
        + ("" if d["enabled"] else f" DISABLED: {d['disabled_reason'] or 'enabled = false'}")
        + "".join(f"\n  problem: {p}" for p in d["problems"]) for d in data) or "no rules: add [rules.NAME] tables"
    emit(data, as_json, text)


@rules.command("test")
@click.argument("rule")
@_now_option
@json_option
@click.pass_context
def rules_test_cmd(ctx, rule, now, as_json):
    """Dry run: which cases RULE would act on now (nothing is written or sent)."""
    from coordinator.engine import dry_run
    from ingest.store import open_store

    s = settings(ctx)
    with open_store(s.db_path) as con:
        out = dry_run(con, s, rule, _parse_now(now))
    text = (f"rule {rule}: {out.matched} case(s) match; {len(out.case_ids)} would be acted on, "
            f"{out.cooldown} in cool-down, {out.rate_limited} over the rate limit")
    if out.case_ids:
        text += "\n  " + "\n  ".join(out.case_ids[:50]) + ("\n  …" if len(out.case_ids) > 50 else "")
    emit(out.to_dict(), as_json, text)


def _set_enabled(ctx, rule, enabled, reason, actor, as_json):
    from coordinator.manual import set_rule_enabled
    from coordinator.rules import get_rule
    from ingest.store import open_store

    s = settings(ctx)
    get_rule(s, rule)
    with open_store(s.db_path) as con:
        set_rule_enabled(con, rule, enabled, _actor(actor), reason)
    emit({"rule": rule, "enabled": enabled}, as_json, f"rule {rule} {'enabled' if enabled else 'disabled'}")


@rules.command("enable")
@click.argument("rule")
@click.option("--actor", help="Who (default: the OS user).")
@json_option
@click.pass_context
def rules_enable_cmd(ctx, rule, actor, as_json):
    """Enable a rule again (after an auto-disable), clearing its failure count."""
    _set_enabled(ctx, rule, True, None, actor, as_json)


@rules.command("disable")
@click.argument("rule")
@click.option("--reason", help="Why (shown in rules list).")
@click.option("--actor", help="Who (default: the OS user).")
@json_option
@click.pass_context
def rules_disable_cmd(ctx, rule, reason, actor, as_json):
    """Stop a rule from creating and sending actions."""
    _set_enabled(ctx, rule, False, reason, actor, as_json)
