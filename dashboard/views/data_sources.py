"""Data: what was loaded from where, how fresh it is, what was rejected and why, the models in use."""

from __future__ import annotations

import streamlit as st

from dashboard import data
from dashboard.components import fmt, layout

layout.header("Data", "Sources, ingest runs, rejected records and freshness")

ov = layout.outcome(data.attempt("overview"), "Store overview")
now = data.now()
if ov is not None:
    c = st.columns(5)
    c[0].metric("Events", fmt.count(ov["events"]), border=True)
    c[1].metric("Cases", fmt.count(ov["cases"]), border=True)
    c[2].metric("Activities", fmt.count(ov["activities"]), border=True)
    c[3].metric("Source systems", fmt.count(ov["sources"]), border=True)
    c[4].metric("Latest event", fmt.when(ov["last_ts"]).replace(" UTC", ""), border=True,
                help="Timestamp of the newest event in the store (UTC)")
    st.caption(f"Store file: `{data.db_path()}` · data version {ov['data_version']}")
    layout.require_events(ov)

st.subheader("Sources and freshness")
sources = layout.outcome(data.attempt("sources_table", now=now.isoformat()), "Sources")
if sources is not None:
    if sources.empty:
        st.caption("No source yet: every import or ingest job adds one here.")
    else:
        stale_h = float(data.dashboard_config().get("stale_after_hours", 24))
        view = sources.assign(
            status=sources.apply(lambda r: "failed" if r["last_status"] == "failed" else
                                 ("stale" if (r["hours_since_ingest"] or 0) > stale_h else "fresh"), axis=1),
            last_ingest_ago=sources["last_ingest"].map(lambda t: fmt.ago(t, now) if t is not None and t == t else "never"),
        )
        st.dataframe(view[["source", "kind", "status", "events", "cases", "first_event", "last_event",
                           "last_ingest", "last_ingest_ago", "runs", "rejected", "last_error", "timezone"]],
                     hide_index=True, column_config={
                         "status": st.column_config.TextColumn("status", help=f"stale = no successful ingest for {stale_h:.0f} h"),
                         "events": st.column_config.NumberColumn(format="localized"),
                         "cases": st.column_config.NumberColumn(format="localized"),
                     })
        failed = view[view["status"] == "failed"]
        for _, r in failed.iterrows():
            st.error(f"The last ingest of **{r['source']}** failed: {r['last_error']}\n\n**What to do:** fix the "
                     "cause named above and run `processlens ingest run` again; earlier data stays intact.")

st.subheader("Ingest runs")
runs = layout.outcome(data.attempt("ingest_runs", limit=200), "Ingest runs")
if runs is not None:
    if runs.empty:
        st.caption("No ingest has run yet.")
    else:
        st.dataframe(runs, hide_index=True, column_config={"seconds": st.column_config.NumberColumn(format="%.1f s")})

st.subheader("Rejected records")
rej = layout.outcome(data.attempt("reject_summary"), "Rejected records")
if rej is not None:
    if rej.empty:
        st.success("No record was rejected.", icon=":material/check_circle:")
    else:
        st.caption("Rows the loader refused, grouped by reason; the raw records are kept in the store "
                   "(`processlens ingest rejects`).")
        st.dataframe(rej, hide_index=True)
        with st.expander("Latest rejected records"):
            st.dataframe(data.attempt("rejects", limit=500).value, hide_index=True)

pend = data.attempt("pending_correlation").value
if pend is not None and not pend.empty:
    st.subheader("Waiting for correlation")
    st.caption("Records that name only a foreign key (e.g. a ticket id) whose case is not known yet; "
               "they are matched on every ingest run.")
    st.dataframe(pend, hide_index=True)

st.subheader("Reference models")
models_df = data.attempt("models_in_store").value
if models_df is None or models_df.empty:
    st.info(layout.MODEL_HELP, icon=":material/account_tree:")
else:
    st.dataframe(models_df, hide_index=True)
