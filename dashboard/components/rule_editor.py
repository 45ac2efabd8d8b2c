"""Analysts edit a coordinator rule as TOML, validated exactly like processlens.toml before it is saved."""

from __future__ import annotations

import tomllib

import streamlit as st
import tomli_w

from dashboard import auth
from processlens.errors import ProcesslensError

TEMPLATE = """when = "stuck"                 # stuck | unhandled_exception | deviation | event
do = "webhook"                 # escalate | notify_email | chat | ticket | webhook | reassign | retry
mode = "dry_run"               # dry_run | approval | automatic
cooldown = "1d"
max_per_run = 50
[target]
url = "http://127.0.0.1:9999/hook"
"""


def rule_editor(settings_loader, rule_names: list[str]) -> None:
    """Edit an existing rule or add one; saved to processlens.edited.toml beside processlens.toml."""
    from coordinator.rule_edit import rule_table, save_rule

    with st.expander("Edit or add a rule", icon=":material/edit:"):
        choice = st.selectbox("Rule", ["(new rule)", *rule_names], key="rule_edit_pick")
        settings = settings_loader()
        if choice == "(new rule)":
            name = st.text_input("Name", placeholder="e.g. escalate_late_payments", key="rule_edit_name")
            text = TEMPLATE
        else:
            name = choice
            try:
                text = tomli_w.dumps(rule_table(settings, choice))
            except ProcesslensError as exc:
                st.error(exc.message)
                return
        body = st.text_area("Rule (TOML, as in [rules.NAME] of processlens.toml)", value=text, height=260,
                            key=f"rule_edit_body_{choice}")
        st.caption("Saved beside processlens.toml in processlens.edited.toml, replacing the rule of the same name; "
                   "the hand-written file is not changed.")
        if st.button("Validate and save", key="rule_edit_save", type="primary"):
            if not auth.require("edit"):
                return
            try:
                table = tomllib.loads(body)
            except tomllib.TOMLDecodeError as exc:
                st.error(f"That is not valid TOML: {exc}")
                return
            try:
                rule = save_rule(settings, name, table)
            except ProcesslensError as exc:
                st.error(f"{exc.message}\n\n**What to do:** {exc.hint or 'fix the field named above'}")
                return
            st.cache_data.clear()
            st.success(f"Rule {rule.name} saved. The coordinator picks it up on its next round.")
