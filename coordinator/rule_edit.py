"""Analysts edit rules from the dashboard: validated, saved beside processlens.toml.

A rule is saved only if it parses exactly as a rule in processlens.toml would (same checks,
same errors), into ``processlens.edited.toml`` (see :func:`processlens.config.save_edit`), which
overrides the rule of the same name. The caller checks the analyst role.
"""

from __future__ import annotations

import copy
from typing import Any

from coordinator.rules import Rule, parse_rule
from processlens.config import Settings, save_edit
from processlens.errors import ConfigError


def validate_rule(settings: Settings, name: str, table: dict[str, Any]) -> Rule:
    """Parse ``table`` as ``[rules.NAME]``; raises ConfigError naming the field on a mistake."""
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"rule name {name!r} must be letters, digits, '_' or '-'", hint="e.g. escalate_stuck")
    return parse_rule(name, copy.deepcopy(table), settings.config_path)


def save_rule(settings: Settings, name: str, table: dict[str, Any]) -> Rule:
    """Validate and save a rule (new or replacing one of the same name)."""
    rule = validate_rule(settings, name, table)
    save_edit(settings, "rules", name, table)
    return rule


def rule_table(settings: Settings, name: str) -> dict[str, Any]:
    """The rule's table as configured now (for the editor to start from)."""
    rules = settings.section("rules")
    if name not in rules:
        raise ConfigError(f"there is no rule {name!r}", hint=f"the rules are: {', '.join(rules) or 'none yet'}")
    return copy.deepcopy(rules[name])
