"""Case: one case across all source systems — timeline, position in the model, deviations, actions."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.components import dispatch, filter_bar, fmt, layout, nav, timeline

flt = filter_bar.current()
layout.header("Case", "One case across all systems: what happened, where it stands, what was done")

wanted = st.query_params.get("case") or st.session_state.get("case_id") or ""
c1, c2 = st.columns([2, 3])
text = c1.text_input("Find a case by id", value=wanted, key="case_search", placeholder="e.g. ORD-10042")
matches = data.attempt("find_cases", text=text.strip(), limit=50).value or []
if not matches and not text:
    recent = data.attempt("recent_cases", flt, limit=50).value
    matches = list(recent["case_id"]) if recent is not None else []
if not matches:
    st.info("No case id contains that text. Try part of the id, or pick a case on the Stuck work or Health page."
            if text else layout.INGEST_HELP, icon=":material/search:")
    st.stop()
default = matches.index(text) if text in matches else 0
case_id = c2.selectbox("Case", matches, index=default, key=f"case_pick_{text}")
if st.query_params.get("case") != case_id:
    st.query_params["case"] = case_id
st.session_state["case_id"] = case_id

summary = data.attempt("case_summary", case_id=case_id).value
if summary is None:
    st.warning(f"The store has no case {case_id!r}.")
    st.stop()
events = data.attempt("case_events", case_id=case_id).value
now = data.now()


def _rows_of(df: pd.DataFrame) -> pd.DataFrame:
    """This case's rows of an all-cases engine result (by its integer key when the result has one)."""
    if "case_key" in df:
        return df[df["case_key"].to_numpy() == summary["case_key"]]
    return df[df["case_id"].astype(str) == case_id]


m = st.columns(4)
m[0].metric("Events", fmt.count(summary["events"]), border=True)
m[1].metric("Duration so far", fmt.duration(summary["duration_seconds"]), border=True)
m[2].metric("Since last event", fmt.duration((now - summary["last_ts"]).total_seconds()) if summary["last_ts"] else "—",
            border=True)
m[3].metric("Systems", fmt.count(len(summary["sources"])), border=True, help=", ".join(summary["sources"]))
st.markdown(f"**Last step:** {summary['last_activity'] or '—'} at {fmt.when(summary['last_ts'])} · **Systems:** "
            + ", ".join(summary["sources"]))
timeline_now = now if summary["last_ts"] and now - summary["last_ts"] < (summary["last_ts"] - summary["first_ts"]) * 2 \
    + pd.Timedelta(days=1) else None
st.plotly_chart(data.memo("case.timeline", None, lambda: timeline.figure(events, now=timeline_now), case=case_id,
                          now=timeline_now), key="timeline")

left, right = st.columns(2)
with left:
    st.markdown("##### Where it stands in the reference model")
    pos = data.attempt("dashboard.engines:case_position", case_id=case_id, config=nav.config())
    if pos.ok:
        value = pos.value
        if isinstance(value, dict):
            if value.get("open"):
                nxt = ", ".join(value.get("next_steps") or []) or "—"
                st.markdown(f"**Open** · waiting for **{value.get('waiting_for') or nxt}**"
                            + (f" ({value['owner']})" if value.get("owner") else "")
                            + (f" for {fmt.duration(value.get('waited_seconds'))}" if value.get("waited_seconds") else ""))
            elif "open" in value:
                st.markdown("**Closed** · reached a final step of the model.")
            if value.get("steps"):
                st.caption("Model steps done: " + " → ".join(value["steps"]))
            with st.expander("Details"):
                st.json({k: v for k, v in value.items() if v not in (None, [], {}, "")}, expanded=False)
        else:
            st.write(value)
    else:
        st.caption(f"Not available: {pos.message}. {pos.hint or ''}")
    stuck = data.attempt_filtered("dashboard.engines:stuck", None, now=now.isoformat(), config=nav.config())
    if stuck.ok and not stuck.value.empty:
        row = _rows_of(stuck.value)
        if not row.empty:
            r = row.iloc[0]
            st.error(f"**Stuck** waiting for **{r.get('step')}** ({r.get('owner') or 'no owner'}) for "
                     f"{fmt.duration(r['waited_seconds'])}; SLA {fmt.duration(r.get('sla_seconds'))}, normal "
                     f"{fmt.duration(r.get('normal_seconds'))}.", icon=":material/pending_actions:")
with right:
    st.markdown("##### Deviations and exceptions")
    exc = data.attempt_filtered("dashboard.engines:exceptions", None, now=now.isoformat(), config=nav.config())
    shown = False
    if exc.ok and not exc.value.empty:
        mine = _rows_of(exc.value)
        if not mine.empty:
            st.dataframe(mine.drop(columns=["case_key"], errors="ignore"), hide_index=True)
            shown = True
    conf = data.attempt_filtered("dashboard.engines:conformance", None, config=nav.config())
    if conf.ok and isinstance(conf.value.get("per_case"), pd.DataFrame):
        pc = conf.value["per_case"]
        mine = _rows_of(pc) if "case_id" in pc else pc.iloc[0:0]
        if not mine.empty:
            st.dataframe(mine.drop(columns=["case_key"], errors="ignore"), hide_index=True)
            shown = True
    if not shown:
        st.caption("No exception recorded for this case." if exc.ok else f"Not available: {exc.message}.")

st.markdown("##### Actions taken")
acts = data.attempt("dashboard.engines:actions", case_id=case_id)
if acts.ok:
    if acts.value.empty:
        st.caption("No corrective action yet.")
    else:
        st.dataframe(acts.value, hide_index=True)
else:
    st.caption(f"Not available: {acts.message}.")
with st.expander("Dispatch an action for this case"):
    dispatch.panel([case_id], key="case_dispatch")

st.markdown("##### Events")
st.dataframe(events.assign(wait=events["wait_seconds"].map(fmt.duration)).drop(columns=["wait_seconds"]),
             hide_index=True)
st.markdown("##### Case attributes")
if summary["attrs"]:
    st.dataframe(pd.DataFrame({"attribute": list(summary["attrs"]), "value": [str(v) for v in summary["attrs"].values()]}),
                 hide_index=True)
else:
    st.caption("The sources gave no case attributes.")
