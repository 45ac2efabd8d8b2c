"""Process-map simplification like Disco's activity and path sliders, without disconnecting the map.

- **Activities** (0..1): keep the most frequent share of activities (at least one). :func:`map_for`
  does what Disco does — the log is projected on the kept activities (events of the others are
  dropped, so their neighbours become directly connected) and the DFG recomputed in DuckDB.
  :func:`simplify` on an existing DFG only removes nodes and their edges.
- **Paths** (0..1): keep the most frequent share of edges, plus for every kept activity the edges of
  its widest path from the start and to the end (the path whose weakest edge is strongest). So
  every activity stays reachable from the start and can reach the end whenever the DFG allows it.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import replace

import duckdb

from analytics.dfg import DFGResult, dfg
from analytics.filters import Filter

START, END = "__start__", "__end__"


def _kept_activities(result: DFGResult, share: float) -> list[str]:
    ranked = sorted(result.activities.items(), key=lambda kv: (-kv[1], kv[0]))
    k = max(1, math.ceil(max(0.0, min(1.0, share)) * len(ranked)))
    return [a for a, _ in ranked[:k]]


def _widest_tree(nodes: set[str], weights: dict[tuple[str, str], int], root: str, reverse: bool) -> set[tuple[str, str]]:
    """Edges of the widest-path tree from ``root`` (max-min frequency; ties by name for determinism)."""
    adj: dict[str, list[tuple[str, int, tuple[str, str]]]] = {}
    for (a, b), w in weights.items():
        u, v = (b, a) if reverse else (a, b)
        adj.setdefault(u, []).append((v, w, (a, b)))
    best = {root: math.inf}
    via: dict[str, tuple[str, str]] = {}
    heap = [(-math.inf, root)]
    done: set[str] = set()
    while heap:
        neg, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        for v, w, edge in sorted(adj.get(u, []), key=lambda t: (t[0], t[2])):
            width = min(-neg, w)
            if v not in done and width > best.get(v, -1):
                best[v] = width
                via[v] = edge
                heapq.heappush(heap, (-width, v))
    return {via[n] for n in nodes if n in via}


def simplify(result: DFGResult, activities: float = 1.0, paths: float = 1.0) -> DFGResult:
    """A smaller map: the most frequent activities and paths, every kept activity still connected."""
    keep = set(_kept_activities(result, activities))
    edges = result.edges[result.edges["source"].isin(keep) & result.edges["target"].isin(keep)]
    weights = {(s, t): int(f) for s, t, f in zip(edges["source"], edges["target"], edges["frequency"], strict=True)}
    weights.update({(START, a): n for a, n in result.start_activities.items() if a in keep})
    weights.update({(a, END): n for a, n in result.end_activities.items() if a in keep})
    ranked = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
    n_keep = math.ceil(max(0.0, min(1.0, paths)) * len(ranked))
    chosen = {e for e, _ in ranked[:n_keep]}
    chosen |= _widest_tree(keep, weights, START, reverse=False)
    chosen |= _widest_tree(keep, weights, END, reverse=True)
    mask = [(s, t) in chosen for s, t in zip(edges["source"], edges["target"], strict=True)]
    return replace(
        result,
        edges=edges[mask].reset_index(drop=True),
        start_activities={a: n for a, n in result.start_activities.items() if (START, a) in chosen},
        end_activities={a: n for a, n in result.end_activities.items() if (a, END) in chosen},
        activities={a: n for a, n in result.activities.items() if a in keep},
    )


def map_for(con: duckdb.DuckDBPyConnection, flt: Filter | None = None, activities: float = 1.0, paths: float = 1.0,
            **kwargs) -> DFGResult:
    """Disco's sliders: project the log on the most frequent activities, recompute the DFG, then simplify paths."""
    flt = flt or Filter()
    full = dfg(con, flt, **kwargs)
    if activities < 1.0:
        keep = _kept_activities(full, activities)
        if len(keep) < len(full.activities):
            full = dfg(con, replace(flt, activities_keep=sorted(set(keep) & set(flt.activities_keep or keep))), **kwargs)
    return simplify(full, 1.0, paths)
