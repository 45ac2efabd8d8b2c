"""One case's events across source systems as a Plotly timeline."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.components import fmt

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def figure(events: pd.DataFrame, now=None) -> go.Figure:
    """Lanes per source system, one marker per event, a line through them in case order."""
    ev = events.reset_index(drop=True)
    systems = list(dict.fromkeys(ev["source"]))
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(systems)}
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ev["ts"], y=ev["source"], mode="lines", line=dict(color="#b0bec5", width=1.5),
                             hoverinfo="skip", showlegend=False))
    for system in systems:
        part = ev[ev["source"] == system]
        hover = [f"<b>{r.activity}</b><br>{fmt.when(r.ts)}<br>{r.source}" + (f" · {r.resource}" if r.resource else "")
                 + (f"<br>after {fmt.duration(r.wait_seconds)}" if pd.notna(r.wait_seconds) else "")
                 for r in part.itertuples()]
        fig.add_trace(go.Scatter(x=part["ts"], y=part["source"], mode="markers+text", name=system,
                                 text=part["activity"], textposition="top center", textfont=dict(size=10),
                                 marker=dict(size=12, color=colour[system], line=dict(width=1, color="white")),
                                 hovertext=hover, hoverinfo="text"))
        starts = part[part["start_ts"].notna()] if "start_ts" in part else part.iloc[0:0]
        for r in starts.itertuples():
            fig.add_shape(type="line", x0=r.start_ts, x1=r.ts, y0=r.source, y1=r.source,
                          line=dict(color=colour[system], width=6), opacity=0.4)
    if now is not None and len(ev):
        fig.add_vline(x=now, line=dict(color="#c62828", dash="dot"))
    fig.update_layout(height=max(220, 90 * len(systems) + 120), margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=1.12), yaxis=dict(title=None, categoryorder="array",
                                                                         categoryarray=systems[::-1]),
                      xaxis=dict(title=None))
    return fig
