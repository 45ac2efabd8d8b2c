"""Bottlenecks: where cases wait — by hand-off, by activity and week, by resource."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import data
from dashboard.components import fmt, layout
from dashboard.views import BOTTLENECK_TABS

flt, ov = layout.analysis_page("Bottlenecks", "Where cases wait, and between whom")

# Only the open tab's table is computed (each is a pass of exact quantiles over every wait) and
# drawn (layout.tabs); the others' follow in the background.
tabs = layout.tabs(BOTTLENECK_TABS)
tab_edge, tab_week, tab_res = tabs
waits: dict = {}
for tab, ((ref, kwargs),) in zip(tabs, BOTTLENECK_TABS.questions.values(), strict=True):
    if tab.open:
        with tab:
            waits = layout.outcome(data.attempt(ref, flt, **dict(kwargs)), "Waiting times") or {}
hw, wk, rs = waits.get("handoffs"), waits.get("weeks"), waits.get("resources")
with tab_edge:
    if hw is not None and not hw.empty:
        hw["hand-off"] = hw["source"] + " → " + hw["target"]
        hw["between systems"] = hw["source_system"] != hw["target_system"]
        hw["total wait (days)"] = hw["total_wait_seconds"] / 86400
        cross = hw[hw["between systems"]]["share_of_waiting"].sum()
        m = st.columns(3)
        m[0].metric("Biggest hand-off", fmt.share(hw["share_of_waiting"].iloc[0]), border=True,
                    help=f"{hw['hand-off'].iloc[0]}: share of all waiting time")
        m[1].metric("Waiting between systems", fmt.share(cross), border=True,
                    help="Share of all waiting that happens where a case moves from one source system to another "
                         "(among the top 30 hand-offs)")
        m[2].metric("Median wait, top hand-off", fmt.duration(hw["median_seconds"].iloc[0]), border=True)
        def handoff_figure():
            # graph_objects, not plotly.express: 5 ms instead of 80 ms per figure on every new filter
            top = hw.head(15).iloc[::-1]
            fig = go.Figure()
            for between, colour in ((False, "#4a6fa5"), (True, "#c62828")):
                part = top[top["between systems"] == between]
                if not part.empty:
                    fig.add_trace(go.Bar(x=part["total wait (days)"], y=part["hand-off"], orientation="h",
                                         name=str(between), marker_color=colour,
                                         hovertemplate="%{y}<br>total wait %{x:.1f} days<extra></extra>"))
            fig.update_layout(height=480, margin=dict(l=10, r=10, t=10, b=10), legend_title_text="between systems",
                              xaxis_title="total wait (days)", barmode="overlay",
                              yaxis=dict(categoryorder="array", categoryarray=list(top["hand-off"])))
            return fig

        st.plotly_chart(data.memo("bottlenecks.handoffs", flt, handoff_figure), key="handoffs")
        show = hw.assign(median=hw["median_seconds"].map(fmt.duration), p90=hw["p90_seconds"].map(fmt.duration),
                         share=hw["share_of_waiting"] * 100)
        st.dataframe(show[["hand-off", "source_system", "target_system", "frequency", "median", "p90", "share"]],
                     hide_index=True, column_config={"share": st.column_config.ProgressColumn(
                         "share of waiting", format="%.1f%%", min_value=0, max_value=100)})
with tab_week:
    if wk is not None and not wk.empty:
        wk["median wait (days)"] = wk["median_seconds"] / 86400
        def week_figure():
            grid = wk.pivot_table(index="activity", columns="week", values="median wait (days)", aggfunc="mean")
            fig = go.Figure(go.Heatmap(z=grid.to_numpy(), x=list(grid.columns), y=list(grid.index), colorscale="OrRd",
                                       colorbar=dict(title="median wait (days)"),
                                       hovertemplate="%{y}, week of %{x|%Y-%m-%d}<br>median wait %{z:.2f} days"
                                                     "<extra></extra>"))
            fig.update_layout(height=520, margin=dict(l=10, r=10, t=10, b=10))
            return fig

        st.caption("Median waiting time before each activity, per week: the darker, the longer cases waited.")
        st.plotly_chart(data.memo("bottlenecks.weeks", flt, week_figure), key="week_heat")
with tab_res:
    if rs is not None and not rs.empty:
        rs["total wait (days)"] = rs["total_wait_seconds"] / 86400
        def resource_figure():
            top = rs.head(20).iloc[::-1]
            fig = go.Figure(go.Bar(x=top["total wait (days)"], y=top["resource"], orientation="h",
                                   marker=dict(color=top["median_seconds"], colorscale="OrRd",
                                               colorbar=dict(title="median s")),
                                   hovertemplate="%{y}<br>total wait %{x:.1f} days<extra></extra>"))
            fig.update_layout(height=480, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="total wait (days)")
            return fig

        st.caption("Waiting time before the events each resource performed (the queue in front of them).")
        st.plotly_chart(data.memo("bottlenecks.resources", flt, resource_figure), key="resources")
        st.dataframe(rs.assign(median=rs["median_seconds"].map(fmt.duration), share=rs["share_of_waiting"] * 100)[
            ["resource", "events", "median", "share"]], hide_index=True,
            column_config={"share": st.column_config.ProgressColumn("share of waiting", format="%.1f%%",
                                                                    min_value=0, max_value=100)})

layout.warm_closed_tabs(BOTTLENECK_TABS, tabs, flt)
