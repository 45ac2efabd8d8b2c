"""One case's events across source systems as a Plotly timeline."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.components import fmt

PALETTE = ["#1f5fa8", "#e07b00", "#2e7d32", "#c62828", "#7b1fa2", "#00838f", "#6d4c41", "#ad1457", "#9e9d24"]


def figure(events: pd.DataFrame, now=None) -> go.Figure:
    """Activities on the y axis (in order of first occurrence), time on x, colour = source system.

    A grey line joins the events in case order, so hand-offs between systems show as jumps between
    colours; bars show service time where the source gave start timestamps.
    """
    ev = events.reset_index(drop=True)
    systems = list(dict.fromkeys(ev["source"]))
    acts = list(dict.fromkeys(ev["activity"]))
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(systems)}
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ev["ts"], y=ev["activity"], mode="lines", line=dict(color="#b0bec5", width=1.5,
                             shape="hv"), hoverinfo="skip", showlegend=False))
    for system in systems:
        part = ev[ev["source"] == system]
        hover = [f"<b>{r.activity}</b><br>{fmt.when(r.ts)}<br>{r.source}" + (f" · {r.resource}" if r.resource else "")
                 + (f"<br>after {fmt.duration(r.wait_seconds)}" if pd.notna(r.wait_seconds) else "")
                 for r in part.itertuples()]
        fig.add_trace(go.Scatter(x=part["ts"], y=part["activity"], mode="markers", name=system,
                                 marker=dict(size=13, color=colour[system], line=dict(width=1.5, color="white")),
                                 hovertext=hover, hoverinfo="text"))
        if "start_ts" in part:
            for r in part[part["start_ts"].notna()].itertuples():
                fig.add_shape(type="line", x0=r.start_ts, x1=r.ts, y0=r.activity, y1=r.activity,
                              line=dict(color=colour[system], width=8), opacity=0.35)
    if now is not None and len(ev):
        fig.add_vline(x=now, line=dict(color="#c62828", dash="dot"))
        fig.add_annotation(x=now, y=1, yref="paper", text="now", showarrow=False, font=dict(color="#c62828"))
    fig.update_layout(height=max(260, 34 * len(acts) + 120), margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0, title_text="System: "),
                      yaxis=dict(title=None, categoryorder="array", categoryarray=acts[::-1]), xaxis=dict(title=None))
    return fig
