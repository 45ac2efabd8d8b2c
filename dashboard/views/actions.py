"""Actions: what the coordinator and operators did, whether it helped, and the rules behind it."""

from __future__ import annotations

import streamlit as st

from dashboard import auth, data, engines
from dashboard.components import fmt, layout, nav
from dashboard.components.rule_editor import rule_editor
from processlens.errors import ProcesslensError

layout.header("Actions", "Corrective actions: queued, delivered, failed — and whether they helped")
counts = data.attempt("dashboard.engines:action_status_counts").value or {}
m = st.columns(5)
for col, (label, keys) in zip(m, [("Queued", ("pending",)), ("Awaiting approval", ("awaiting_approval",)),
                                  ("Delivered", ("delivered",)), ("Dead letters", ("dead",)),
                                  ("Refused", ("refused", "rejected"))], strict=True):
    col.metric(label, fmt.count(sum(counts.get(k, 0) for k in keys)), border=True)

tab_list, tab_effect, tab_rules = st.tabs(["Actions", "Effect", "Rules"])
user = auth.current_user()
with tab_list:
    acts = layout.outcome(data.attempt("dashboard.engines:actions", limit=500), "The action list")
    if acts is not None:
        if acts.empty:
            st.info("No action yet. Rules in processlens.toml create them when cases get stuck or exceptions go "
                    "unhandled (`processlens coordinator run`); operators dispatch them from **Stuck work** or a "
                    "**Case**.", icon=":material/bolt:")
        else:
            status = st.multiselect("Status", sorted(acts["status"].unique()), key="act_status")
            view = acts[acts["status"].isin(status)] if status else acts
            ev = st.dataframe(view.reset_index(drop=True), hide_index=True, on_select="rerun",
                              selection_mode="multi-row", key="act_table")
            rows = nav.selected_rows(ev)
            chosen = view.reset_index(drop=True).iloc[rows] if rows else view.iloc[0:0]
            if len(chosen):
                c = st.columns(4)
                if len(chosen) == 1 and c[0].button("Open case", icon=":material/open_in_new:"):
                    nav.open_case(chosen.iloc[0]["case_id"])
                can_act = user is not None and user.can("act")
                dead = chosen[chosen["status"].isin(["dead", "pending"])]
                waiting = chosen[chosen["status"] == "awaiting_approval"]
                if c[1].button(f"Retry {len(dead)}", disabled=not (can_act and len(dead)), icon=":material/replay:"):
                    if auth.require("act"):
                        try:
                            for aid in dead["action_id"]:
                                data.run_write(lambda con, a=int(aid): engines.engine("coordinator", "retry")(
                                    con, a, user.name, engines._settings(nav.config())))
                            st.success(f"Re-queued {len(dead)} action(s).")
                        except ProcesslensError as exc:
                            st.error(f"{exc.message}\n\n**What to do:** {exc.hint or 'see the action list'}")
                for label, approved, column in (("Approve", True, c[2]), ("Reject", False, c[3])):
                    if column.button(f"{label} {len(waiting)}", disabled=not (can_act and len(waiting))):
                        if auth.require("act"):
                            ids = [int(x) for x in waiting["action_id"]]
                            n = data.run_write(lambda con, ids=ids, ok=approved: engines.engine("coordinator", "approve")(
                                con, ids, user.name, ok))
                            st.success(f"{label}d {n} action(s).")
with tab_effect:
    eff = layout.outcome(data.attempt("dashboard.engines:effect", now=data.now().isoformat()), "The effect analysis")
    if eff is not None:
        if eff.empty:
            st.caption("No delivered action to measure yet.")
        else:
            st.caption("Per rule and action: how often and how fast the case moved on after the action, against "
                       "comparable cases that waited as long at the same step without an action.")
            show = eff.copy()
            for col in [c for c in show.columns if c.endswith("_seconds_to_move_on")]:
                show[col] = show[col].map(fmt.duration)
            st.dataframe(show, hide_index=True)
with tab_rules:
    rules = layout.outcome(data.attempt("dashboard.engines:rules", config=nav.config()), "The rules")
    if rules is not None:
        if user is not None and user.can("edit") and nav.config():
            rule_editor(lambda: engines._settings(nav.config()), [] if rules.empty else list(rules["rule"]))
        if rules.empty:
            st.info("No rule is configured. Add `[rules.NAME]` tables to processlens.toml (see docs/coordinator.md), "
                    "then test one with `processlens rules test NAME`.", icon=":material/settings:")
        else:
            st.dataframe(rules, hide_index=True)
            if user is not None and user.can("edit"):
                c = st.columns([2, 1, 1])
                rule = c[0].selectbox("Rule", list(rules["rule"]), key="rule_pick")
                enabled = bool(rules.set_index("rule").loc[rule, "enabled"])
                if c[1].button("Disable" if enabled else "Enable", key="rule_toggle"):
                    if auth.require("edit"):
                        data.run_write(lambda con: engines.engine("coordinator", "set_rule_enabled")(
                            con, rule, not enabled, user.name))
                        st.rerun()
                if c[2].button("Dry run", key="rule_dry"):
                    try:
                        out = data.run_read(lambda con: engines.engine("coordinator", "dry_run")(
                            con, engines._settings(nav.config()), rule, data.now()), data.db_path())
                        st.json(out.to_dict() if hasattr(out, "to_dict") else out, expanded=False)
                    except ProcesslensError as exc:
                        st.error(f"{exc.message}\n\n**What to do:** {exc.hint or ''}")
