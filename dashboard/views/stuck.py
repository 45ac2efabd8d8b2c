"""Stuck work: the open cases that wait too long, ranked, for operators to act on."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.components import dispatch, fmt, layout, nav

flt, ov = layout.analysis_page("Stuck work", "Open cases waiting longer than their SLA or than is normal, worst first", narrows=True)
now = data.now()
res = data.attempt_filtered("dashboard.engines:stuck", flt, now=now.isoformat(), config=nav.config())

if not res.ok:
    layout.outcome(res, "Stuck-case detection")
    st.subheader("Open cases by time since their last event")
    st.caption("Without a reference model processlens cannot tell what a case waits for or its SLA; this list "
               "ranks open cases by how long nothing happened.")
    cfg = data.dashboard_config()
    ends = data.attempt("dashboard.engines:end_activities", config=nav.config()).value
    cases = data.attempt("kpi_cases", flt, kind="open", start=now.isoformat(), end=now.isoformat(), end_activities=ends,
                         idle_days=float(cfg.get("idle_days", 30)), now=now.isoformat(), limit=500).value
    if cases is None or cases.empty:
        st.success("No open case.", icon=":material/check_circle:")
        st.stop()
    cases = cases.assign(waited_days=(pd.Timestamp(now) - pd.to_datetime(cases["last_ts"])).dt.total_seconds() / 86400)
    cases = cases.sort_values("waited_days", ascending=False)[["case_id", "last_activity", "last_source", "last_ts", "waited_days"]]
    ev = st.dataframe(cases, hide_index=True, on_select="rerun", selection_mode="single-row", key="open_cases",
                      column_config={"waited_days": st.column_config.NumberColumn("waited (days)", format="%.1f")})
    rows = nav.selected_rows(ev)
    if rows:
        nav.open_case(cases.iloc[rows[0]]["case_id"])
    st.stop()

df: pd.DataFrame = res.value
if df.empty:
    st.success("Nothing is stuck: every open case is within its SLA and its normal waiting time.",
               icon=":material/check_circle:")
    st.stop()

# Page filters: owner, step, source, age.
cols = st.columns(4)
owners = sorted(df["owner"].dropna().astype(str).unique()) if "owner" in df else []
steps = sorted(df["step"].dropna().astype(str).unique()) if "step" in df else []
sources = sorted(df["source"].dropna().astype(str).unique()) if "source" in df else []
sel_owner = cols[0].multiselect("Owner", owners, key="stuck_owner")
sel_step = cols[1].multiselect("Waiting for", steps, key="stuck_step")
sel_source = cols[2].multiselect("Source system", sources, key="stuck_source")
max_days = float(df["waited_seconds"].max() / 86400)
min_age = cols[3].number_input("Waited at least (days)", min_value=0.0, max_value=max(max_days, 0.0), value=0.0,
                               step=1.0, key="stuck_age")
view = df
if sel_owner:
    view = view[view["owner"].astype(str).isin(sel_owner)]
if sel_step:
    view = view[view["step"].astype(str).isin(sel_step)]
if sel_source:
    view = view[view["source"].astype(str).isin(sel_source)]
view = view[view["waited_seconds"] >= min_age * 86400]

m = st.columns(4)
m[0].metric("Stuck cases", fmt.count(len(view)), border=True)
over_sla = (view["waited_seconds"] > view["sla_seconds"]).sum() if "sla_seconds" in view else None
m[1].metric("Past SLA", fmt.count(over_sla), border=True)
m[2].metric("Median wait", fmt.duration(view["waited_seconds"].median()), border=True)
m[3].metric("Owners affected", fmt.count(view["owner"].nunique() if "owner" in view else None), border=True)

table = pd.DataFrame({
    "case_id": view["case_id"].astype(str),
    "waiting for": view.get("step"),
    "owner": view.get("owner"),
    "waited": view["waited_seconds"].map(fmt.duration),
    "SLA": view.get("sla_seconds", pd.Series(index=view.index, dtype=float)).map(fmt.duration),
    "normal (p95)": view.get("normal_seconds", pd.Series(index=view.index, dtype=float)).map(fmt.duration),
    "× over": view.get("overdue_ratio"),
    "why": view.get("reasons"),
    "last step": view.get("last_activity"),
    "source": view.get("source"),
    "last event": view.get("last_ts"),
}).reset_index(drop=True)
st.caption("Select one case to open it, or several to dispatch a corrective action.")
ev = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="multi-row", key="stuck_table",
                  column_config={"× over": st.column_config.ProgressColumn(
                      "× over limit", help="waited ÷ the smaller of SLA and normal", format="%.1f×", min_value=0,
                      max_value=float(max(table["× over"].max() or 1, 1)))})
rows = nav.selected_rows(ev)
chosen = [table.iloc[r]["case_id"] for r in rows]
if len(chosen) == 1:
    c = st.columns([1, 4])
    if c[0].button(f"Open case {chosen[0]}", type="primary", icon=":material/open_in_new:", key="open_stuck"):
        nav.open_case(chosen[0])
if chosen:
    with st.container(border=True):
        st.markdown(f"**Act on {len(chosen)} selected case(s)**")
        dispatch.panel(chosen, key="stuck_dispatch")
