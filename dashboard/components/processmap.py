"""Directly-follows maps as Graphviz DOT, rendered in the browser by ``st.graphviz_chart``."""

from __future__ import annotations

import pandas as pd

from dashboard.components import fmt

START, END = "▶", "■"


def simplify(activities: pd.DataFrame, edges: pd.DataFrame, activity_share: float = 1.0,
             path_share: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the most frequent activities and edges (like Disco's sliders), never disconnecting a kept activity."""
    n_acts = max(1, round(len(activities) * activity_share))
    kept = set(activities.nlargest(n_acts, "frequency")["activity"]) | {START, END}
    e = edges[edges["source"].isin(kept) & edges["target"].isin(kept)].sort_values("frequency", ascending=False)
    if e.empty:
        return activities[activities["activity"].isin(kept)], e
    n_edges = max(1, round(len(e) * path_share))
    chosen = e.head(n_edges)
    # Every kept activity keeps its strongest incoming and outgoing edge so the map stays connected.
    best_in = e.loc[e.groupby("target")["frequency"].idxmax()]
    best_out = e.loc[e.groupby("source")["frequency"].idxmax()]
    chosen = pd.concat([chosen, best_in, best_out]).drop_duplicates(subset=["source", "target"])
    return activities[activities["activity"].isin(kept)], chosen


def _color(ratio: float) -> str:
    """Light to dark blue (frequency) by ratio 0..1."""
    ratio = max(0.0, min(1.0, ratio))
    r, g, b = int(222 - 190 * ratio), int(235 - 150 * ratio), int(247 - 90 * ratio)
    return f"#{r:02x}{g:02x}{b:02x}"


def _heat(ratio: float) -> str:
    """Yellow to red (performance) by ratio 0..1."""
    ratio = max(0.0, min(1.0, ratio))
    return f"#{int(250 - 20 * ratio):02x}{int(220 - 180 * ratio):02x}{int(120 - 100 * ratio):02x}"


def _q(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(activities: pd.DataFrame, edges: pd.DataFrame, overlay: str = "frequency") -> str:
    """DOT source: activity boxes shaded by frequency; edges labelled and coloured by frequency or median wait."""
    # square boxes: the browser's d3-graphviz redraws a map of rounded ones (paths) in 0.55-1 s after
    # each filter change on 2 cores, one of plain boxes (polygons) in 0.11-0.17 s
    lines = ["digraph G {", 'rankdir=TB; bgcolor="transparent"; nodesep=0.35; ranksep=0.45;',
             'node [shape=box, style="filled", fontname="Helvetica", fontsize=11, color="#4a6fa5"];',
             'edge [fontname="Helvetica", fontsize=9, color="#6b7b8c"];',
             f'{_q(START)} [shape=circle, label="", width=0.25, style=filled, fillcolor="#2e7d32", color="#2e7d32"];',
             f'{_q(END)} [shape=doublecircle, label="", width=0.2, style=filled, fillcolor="#c62828", color="#c62828"];']
    top = max(activities["frequency"].max(), 1) if len(activities) else 1
    for row in activities.itertuples():
        ratio = row.frequency / top
        font = "white" if ratio > 0.55 else "black"
        label = _q(row.activity)[:-1] + "\\n" + f'{row.frequency:,}"'
        lines.append(f'{_q(row.activity)} [label={label}, '
                     f'fillcolor="{_color(ratio)}", fontcolor="{font}"];')
    top_f = max(edges["frequency"].max(), 1) if len(edges) else 1
    waits = edges["median_seconds"].dropna() if "median_seconds" in edges else pd.Series(dtype=float)
    top_w = max(waits.max(), 1) if len(waits) else 1
    for row in edges.itertuples():
        width = 0.8 + 4 * (row.frequency / top_f)
        wait = getattr(row, "median_seconds", None)
        if overlay == "performance" and wait is not None and wait == wait:
            label, color = fmt.duration(wait), _heat(wait / top_w)
        else:
            label, color = f"{row.frequency:,}", "#6b7b8c"
        if row.source == START or row.target == END:
            label, color = f"{row.frequency:,}", "#9aa5b1"
        lines.append(f'{_q(row.source)} -> {_q(row.target)} [label={_q(label)}, penwidth={width:.2f}, color="{color}"];')
    lines.append("}")
    return "\n".join(lines)
