"""The coordinator: rules decide corrective actions, an outbox in the store delivers them reliably,
the audit trail and the effect analysis show what was done and whether it helped.

Public API (see docs/decisions.md): :func:`load_rules`, :func:`evaluate`, :func:`run_once`,
:func:`enqueue_manual`, :func:`list_actions`, :func:`effect`; plus :func:`dry_run`,
:func:`preview`, :func:`retry`, :func:`approve`, :func:`set_rule_enabled`, :func:`audit_trail`.
"""

from coordinator.audit import trail as audit_trail
from coordinator.effect import effect
from coordinator.engine import Evaluation, RuleOutcome, dry_run, evaluate
from coordinator.manual import approve, enqueue_manual, preview, retry, set_rule_enabled
from coordinator.outbox import list_actions, rule_states, status_counts
from coordinator.rules import CoordinatorSettings, Rule, load_rules
from coordinator.service import run_loop, run_once

__all__ = [
    "CoordinatorSettings", "Evaluation", "Rule", "RuleOutcome", "approve", "audit_trail", "dry_run", "effect",
    "enqueue_manual", "evaluate", "list_actions", "load_rules", "preview", "retry", "rule_states", "run_loop",
    "run_once", "set_rule_enabled", "status_counts",
]
