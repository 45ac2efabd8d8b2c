"""Dispatch a corrective action for one case or a selection: preview count first, role-checked."""

from __future__ import annotations

import streamlit as st

from dashboard import auth, data, engines
from dashboard.components import nav
from processlens.errors import ProcesslensError


def panel(case_ids: list[str], key: str) -> None:
    """Let an operator queue an action for ``case_ids`` through the coordinator."""
    user = auth.current_user()
    if user is None or not user.can("act"):
        st.caption("Dispatching actions needs the operator role or higher.")
        return
    choices = data.attempt("dashboard.engines:manual_actions", config=nav.config())
    if not choices.ok:
        st.info(f"Actions are not available: {choices.message}. {choices.hint or ''}", icon=":material/construction:")
        return
    if not choices.value:
        st.info("No rule defines where actions go yet. Add a `[rules.NAME]` with `do = \"escalate\"` and a target "
                "to processlens.toml (`mode = \"dry_run\"` keeps it from firing by itself).", icon=":material/settings:")
        return
    cols = st.columns([2, 3])
    action = cols[0].selectbox("Action", choices.value, key=f"{key}_action")
    note = cols[1].text_input("Note for the recipient (optional)", key=f"{key}_note")
    now = data.now().isoformat()
    try:
        preview = data.run_read(engines.preview_dispatch, data.db_path(), case_ids, action, nav.config(), now)
    except ProcesslensError as exc:
        st.error(f"{exc.message}" + (f"\n\n**What to do:** {exc.hint}" if exc.hint else ""))
        return
    text = f"This queues **{preview['cases']:,} {preview['action']}** action(s), sent to the target of rule `{preview['rule']}`."
    if preview.get("acted_on_in_last_day"):
        text += f" {preview['acted_on_in_last_day']:,} of these cases already got an action in the last day."
    if preview.get("unknown"):
        text += f" Unknown case ids are skipped: {', '.join(preview['unknown'][:5])}."
    st.markdown(text)
    if st.button(f"Dispatch to {preview['cases']:,} case(s)", type="primary", key=f"{key}_go",
                 disabled=not preview["cases"], icon=":material/send:"):
        if not auth.require("act"):  # checked again on the server at the moment of the action
            return
        try:
            ids = data.run_write(engines.dispatch, None, case_ids, action, user.name, nav.config(), now, note or None)
        except ProcesslensError as exc:
            st.error(f"Nothing was queued: {exc.message}" + (f"\n\n**What to do:** {exc.hint}" if exc.hint else ""))
            return
        st.success(f"Queued {len(ids):,} action(s) (ids {', '.join(map(str, ids[:10]))}"
                   f"{' …' if len(ids) > 10 else ''}). The coordinator delivers them; follow them on the Actions page.",
                   icon=":material/check_circle:")
