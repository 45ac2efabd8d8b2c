"""Conformance and exceptions: how cases deviate from the reference model, and what goes unhandled."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import data, engines
from dashboard.components import fmt, layout, nav
from dashboard.views import CONFORMANCE_TABS

#: rows of the unhandled-exceptions list sent to the browser (the latest first)
LIST_ROWS = 500

flt, ov = layout.analysis_page("Conformance & exceptions", "Where cases leave the expected path, and what it costs", narrows=True)


def deviations_tab() -> None:
    """How cases deviate from the reference model, what it costs, and which case attributes go with it."""
    method = st.segmented_control("Method", ["token-replay", "alignments"], default="token-replay", key="conf_method",
                                  help="Token replay is fast; alignments are exact (cached per variant)") or "token-replay"
    # computed once for all cases per data version (cached), narrowed to the filter in memory
    by_method = {} if method == "token-replay" else {"method": method}
    res = layout.outcome(data.attempt_filtered("dashboard.engines:conformance", flt, config=nav.config(), **by_method),
                         "Conformance")
    if res is not None:
        m = st.columns(4)
        m[0].metric("Cases fitting the model", fmt.share(res["fitting_cases"] / res["cases"] if res.get("cases") else None),
                    border=True, help=f"{fmt.count(res.get('fitting_cases'))} of {fmt.count(res.get('cases'))} cases")
        m[1].metric("Log fitness", f"{res['log_fitness']:.3f}" if res.get("log_fitness") is not None else "—", border=True,
                    help="pm4py's log fitness (1 = every case replays perfectly), over all cases")
        m[2].metric("Deviation types", fmt.count(len(res.get("deviation_types", []))), border=True)
        m[3].metric("Variants not computed", fmt.count(len(res.get("not_computed", []))), border=True,
                    help="Variants whose alignment exceeded the time limit; never silently dropped")

        types = pd.DataFrame(res.get("deviation_types", []))
        if types.empty:
            st.success("Every case follows the reference model.", icon=":material/check_circle:")
        else:
            st.subheader("Deviation types")
            st.caption("Ranked by the cases they affect; impact = mean throughput time with the deviation minus without.")
            types["impact (days)"] = types["impact_seconds"] / 86400 if "impact_seconds" in types else None
            left, right = st.columns([3, 2])
            with left:
                show = types.assign(share=types["share"] * 100,
                                    **{"with": types["throughput_with_seconds"].map(fmt.duration),
                                       "without": types["throughput_without_seconds"].map(fmt.duration)})
                st.dataframe(show[["type", "cases", "share", "with", "without", "impact (days)"]], hide_index=True,
                             column_config={"share": st.column_config.ProgressColumn("share of cases", format="%.1f%%",
                                                                                     min_value=0, max_value=100),
                                            "impact (days)": st.column_config.NumberColumn(format="%+.1f")})
            with right:
                def dev_figure():
                    fig = px.bar(types, x="cases", y="type", orientation="h", color="impact (days)",
                                 color_continuous_scale="RdYlGn_r", labels={"type": ""})
                    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10))
                    return fig

                st.plotly_chart(data.memo("conformance.dev_types", flt, dev_figure, **by_method), key="dev_types")
            devs = pd.DataFrame(res.get("deviations", []))
            if not devs.empty:
                st.subheader("Deviations by step")
                devs["impact"] = devs["impact_seconds"].map(fmt.duration) if "impact_seconds" in devs else None
                st.dataframe(devs.drop(columns=[c for c in devs.columns if c.endswith("_seconds")]), hide_index=True)

            st.subheader("What makes a deviation more likely")
            attrs = data.attempt("case_attribute_names").value
            if attrs is None or attrs.empty:
                st.caption("The cases have no attributes to break the deviations down by.")
            else:
                c = st.columns(2)
                dev = c[0].selectbox("Deviation", list(types["type"]), key="conf_dev")
                attr = c[1].selectbox("Case attribute", list(attrs["name"]), key="conf_attr")
                values = layout.outcome(data.attempt("case_attribute", name=attr), "The breakdown")
                bd = (data.memo("conformance.breakdown", flt, lambda: engines.breakdown(res.get("per_case"), values, dev),
                                dev=dev, attr=attr, **by_method) if values is not None else None)
                if bd is not None and not bd.empty:
                    st.caption("Lift > 1: cases with this value have the deviation more often than cases overall.")
                    st.dataframe(bd.assign(rate=bd["rate"] * 100), hide_index=True, column_config={
                        "rate": st.column_config.NumberColumn("rate", format="%.1f%%"),
                        "lift": st.column_config.NumberColumn(format="%.2f×")})


def exception_views(exc: pd.DataFrame) -> dict:
    """Counts, the three charts and the unhandled list of the exceptions (built once per data version and filter)."""
    exc = exc.copy()
    exc["handled"] = exc["handled"].astype(bool)
    un = exc[~exc["handled"]].reset_index(drop=True)
    # the list shows the latest ones: tens of thousands of rows would cost seconds in the browser
    latest = (un.sort_values("ts", ascending=False, kind="stable") if "ts" in un else un).head(LIST_ROWS)
    out = {"n": len(exc), "n_unhandled": len(un), "unhandled": latest.drop(columns=["case_key"], errors="ignore").reset_index(drop=True),
           "handled_share": exc["handled"].mean()}
    by = exc.groupby(["type", "handled"]).size().reset_index(name="cases")
    by["status"] = by["handled"].map({True: "handled", False: "unhandled"})
    fig = px.bar(by, x="cases", y="type", color="status", orientation="h", labels={"type": ""},
                 color_discrete_map={"handled": "#2e7d32", "unhandled": "#c62828"})
    fig.update_layout(height=280, margin=dict(l=10, r=10, t=10, b=10), title="By type")
    out["by_type"] = fig
    if "owner" in un and not un.empty:
        own = un.groupby(un["owner"].fillna("(no owner)")).size().reset_index(name="unhandled")
        fig = px.bar(own, x="unhandled", y="owner", orientation="h", color_discrete_sequence=["#c62828"])
        fig.update_layout(height=280, margin=dict(l=10, r=10, t=10, b=10), title="Unhandled by owner")
        out["by_owner"] = fig
    if "ts" in exc:
        trend = exc.assign(week=pd.to_datetime(exc["ts"]).dt.to_period("W").dt.start_time).groupby(
            ["week", "type"]).size().reset_index(name="exceptions")
        fig = px.line(trend, x="week", y="exceptions", color="type", markers=True)
        fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), title="Trend per week")
        out["trend"] = fig
    return out


def exceptions_tab() -> None:
    """Exception events: how many, handled or not, by type, owner and week, and the unhandled ones."""
    exc = layout.outcome(data.attempt_filtered("dashboard.engines:exceptions", flt, now=data.now().isoformat(),
                                               config=nav.config()), "Exceptions")
    if exc is not None:
        if exc.empty:
            st.success("No exception events in the selected cases.", icon=":material/check_circle:")
        else:
            views = data.memo("conformance.exceptions", flt, lambda: exception_views(exc))
            un = views["unhandled"]
            m = st.columns(3)
            m[0].metric("Exceptions", fmt.count(views["n"]), border=True)
            m[1].metric("Unhandled", fmt.count(views["n_unhandled"]), border=True)
            m[2].metric("Handled", fmt.share(views["handled_share"]), border=True)
            left, right = st.columns(2)
            with left:
                st.plotly_chart(views["by_type"], key="exc_type")
            with right:
                if "by_owner" in views:
                    st.plotly_chart(views["by_owner"], key="exc_owner")
            if "trend" in views:
                st.plotly_chart(views["trend"], key="exc_trend")
            st.caption("Unhandled exceptions" + (f" (the latest {len(un):,} of {views['n_unhandled']:,})"
                                                  if len(un) < views["n_unhandled"] else "") + " · select one to open its case")
            ev = st.dataframe(un, hide_index=True, on_select="rerun", selection_mode="single-row", key="exc_table")
            rows = nav.selected_rows(ev)
            if rows:
                nav.open_case(un.iloc[rows[0]]["case_id"])


# Only the open tab runs and draws (layout.tabs): each holds several Plotly charts and tables.
for tab, draw in zip(layout.tabs(CONFORMANCE_TABS), (deviations_tab, exceptions_tab), strict=True):
    if tab.open:
        with tab:
            draw()
