"""Graphviz DOT for a process map (``st.graphviz_chart`` renders it)."""

from __future__ import annotations

import math

from analytics.dfg import DFGResult
from processlens.errors import ProcesslensError

OVERLAYS = {
    "frequency": ("frequency", "count"),
    "cases": ("cases", "count"),
    "mean": ("mean_seconds", "time"),
    "median": ("median_seconds", "time"),
    "p90": ("p90_seconds", "time"),
    "max": ("max_seconds", "time"),
    "total": ("total_seconds", "time"),
}


def human_duration(seconds: float | None) -> str:
    """``93784`` -> ``1d 2h``; compact, two units at most."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "–"
    s = abs(float(seconds))
    for size, unit, sub, subunit in ((86400, "d", 3600, "h"), (3600, "h", 60, "m"), (60, "m", 1, "s")):
        if s >= size:
            major, rest = divmod(s, size)
            minor = int(rest // sub)
            return f"{int(major)}{unit}" + (f" {minor}{subunit}" if minor else "")
    return f"{s:.0f}s" if s >= 1 else f"{s:.2f}s"


def _q(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(result: DFGResult, overlay: str = "frequency", rankdir: str = "TB") -> str:
    """DOT source: activities as boxes (label: events), edges labelled and weighted by ``overlay``."""
    if overlay not in OVERLAYS:
        raise ProcesslensError(f"unknown map overlay {overlay!r}", hint=f"use one of {', '.join(OVERLAYS)}",
                               where={"field": "overlay"})
    column, kind = OVERLAYS[overlay]
    edges = result.edges
    values = [float(v) for v in edges[column]] if len(edges) else []
    top = max([v for v in values if not math.isnan(v)], default=1.0) or 1.0
    node_top = max(result.activities.values(), default=1) or 1
    lines = [
        "digraph processmap {",
        f'  rankdir={rankdir}; bgcolor="transparent"; node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9, color="#4a5568"];',
        '  "__start__" [label="", shape=circle, width=0.3, style=filled, fillcolor="#38a169", color="#38a169"];',
        '  "__end__" [label="", shape=doublecircle, width=0.25, style=filled, fillcolor="#e53e3e", color="#e53e3e"];',
    ]
    nodes = set(result.activities) | set(edges["source"]) | set(edges["target"]) if len(edges) else set(result.activities)
    for name in sorted(nodes):
        n = result.activities.get(name, 0)
        shade = int(235 - 120 * (n / node_top))
        label = _q(f"{name}\n{n:,}")
        lines.append(f'  {_q(name)} [label={label}, shape=box, style="rounded,filled", '
                     f'fillcolor="#{shade:02x}{shade:02x}ff"];')
    for a, n in result.start_activities.items():
        lines.append(f'  "__start__" -> {_q(a)} [label={_q(f"{n:,}")}, style=dashed];')
    for a, n in result.end_activities.items():
        lines.append(f'  {_q(a)} -> "__end__" [label={_q(f"{n:,}")}, style=dashed];')
    for row, v in zip(edges.itertuples(index=False), values, strict=True):
        label = f"{int(v):,}" if kind == "count" else human_duration(v)
        width = 1 + 5 * ((0 if math.isnan(v) else v) / top)
        lines.append(f"  {_q(row.source)} -> {_q(row.target)} [label={_q(label)}, penwidth={width:.2f}];")
    lines.append("}")
    return "\n".join(lines)
