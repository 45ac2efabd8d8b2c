"""Exact grouped duration statistics of the directly-follows pairs for any selection of whole cases.

Filters in processlens keep whole cases (time range, source systems, case attributes, variant).
Grouping the pairs of the kept cases with exact quantiles costs DuckDB a hash aggregate and a
sort per group over every kept pair: 0.4-0.6 s for the 9 million pairs of a 10M-event store, on
every filter change. A :class:`PairIndex` keeps one grouping's pair durations in memory, sorted
by (group, duration) once per data version. For a selection the kept pairs of a group are then
still sorted, so counts, sums, minimum, maximum and any quantile are a few vectorised passes
over the arrays (about 0.1 s at 10M events) and equal DuckDB's results:

- a quantile is DuckDB's ``quantile_cont`` between the sorted durations at ranks floor(h) and
  ceil(h), ``h = (n - 1) * q``, interpolated the way this DuckDB build does it bit for bit
  (:func:`analytics.incremental.interpolation`, as the maintained edge statistics do);
- durations are whole microseconds (``epoch_us``), in seconds divided by 10^6;
- "cases" (edge grouping only) counts the pairs flagged ``first_in_case`` (the first of its edge in
  its case), which is exact because a selection keeps all or none of a case's pairs.

Memory: 12 bytes per pair and grouping, 13 for the edge grouping (about 110 MB at 10M events). The registry keeps the
indexes of the latest data version of each store; nothing builds them by itself: the dashboard
builds the ones its pages use, in the background, and the queries use them once they are there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from processlens import snapshot

#: the groupings the dashboard asks for: name -> key columns (SQL expressions over ``an_edges``);
#: only the edge grouping counts cases (``first_in_case`` marks the first pair of an edge in a case)
GROUPINGS: dict[str, dict[str, str]] = {
    "edge": {"src_id": "src_id", "tgt_id": "tgt_id"},
    "handoffs": {"src_id": "src_id", "tgt_id": "tgt_id", "src_source_id": "src_source_id",
                 "tgt_source_id": "tgt_source_id"},
    "weeks": {"week": "date_trunc('week', tgt_ts)", "tgt_id": "tgt_id"},
    "resources": {"tgt_resource": "tgt_resource"},
}


@dataclass(frozen=True)
class PairIndex:
    """One grouping's pair durations, sorted by (group, duration)."""

    groups: pd.DataFrame  # the key columns, one row per group, in group order
    starts: np.ndarray  # int64 offsets of the groups in the arrays below (one more than groups)
    micros: np.ndarray  # int64 durations in microseconds
    case_key: np.ndarray  # int32
    first: np.ndarray | None  # bool: the first pair of its edge in its case (the edge grouping only)
    interpolate: Callable[[float, float, float], float]  # quantile_cont's, of the DuckDB build that read the pairs

    @property
    def pairs(self) -> int:
        return len(self.micros)

    @classmethod
    def build(cls, con: duckdb.DuckDBPyConnection, grouping: str) -> PairIndex:
        """Read ``an_edges`` grouped by ``grouping`` (a name of :data:`GROUPINGS`)."""
        return build_many(con, [grouping])[grouping]

    def stats(self, selected: np.ndarray | None = None, quantiles: Sequence[float] = (0.5, 0.9),
              cases: bool = True) -> pd.DataFrame:
        """Per group with kept pairs: its keys, ``frequency``, ``cases`` (edge grouping, if asked for),
        ``total_seconds``, ``mean_seconds``, ``min_seconds``, ``max_seconds`` and ``q<q>`` (e.g.
        ``q0.5``) for each quantile, in group order.

        ``selected``: a boolean array indexed by ``case_key`` (True = kept); None keeps every case.
        """
        cases = cases and self.first is not None
        if selected is None:
            micros, first, counts = self.micros, self.first, np.diff(self.starts)
        else:
            top = int(self.case_key.max()) + 1 if self.pairs else 0
            if len(selected) < top:  # cases beyond the selection's end are not kept
                selected = np.concatenate((selected, np.zeros(top - len(selected), dtype=bool)))
            keep = selected[self.case_key]
            at = np.flatnonzero(keep)
            micros, first = self.micros[at], (self.first[at] if cases else None)
            # every group has pairs in the full index, so each reduceat segment is non-empty
            counts = np.add.reduceat(keep, self.starts[:-1], dtype=np.int64) if len(self.groups) else np.zeros(0, np.int64)
        has = counts > 0
        n = counts[has]
        lo = np.concatenate(([0], np.cumsum(counts)))[:-1][has]  # each kept group's start in ``micros``
        hi = lo + n - 1
        sums = np.add.reduceat(micros, lo) if len(lo) else np.zeros(0, dtype=np.int64)
        out = self.groups[has].reset_index(drop=True)
        out["frequency"] = n
        if cases:
            out["cases"] = np.add.reduceat(first.astype(np.int64), lo) if len(lo) else np.zeros(0, dtype=np.int64)
        out["total_seconds"] = sums / 1e6
        out["mean_seconds"] = sums / n / 1e6
        out["min_seconds"] = micros[lo] / 1e6
        out["max_seconds"] = micros[hi] / 1e6
        for q in quantiles:
            h = (n - 1) * float(q)
            below = np.floor(h).astype(np.int64)
            a, b = micros[lo + below] / 1e6, micros[lo + np.ceil(h).astype(np.int64)] / 1e6
            values, frac = a.copy(), h - below
            for i in np.flatnonzero(frac > 0):  # between two ranks (a few per group at most)
                values[i] = self.interpolate(float(a[i]), float(frac[i]), float(b[i]))
            out[f"q{q:g}"] = values
        return out


def build_many(con: duckdb.DuckDBPyConnection, groupings: Sequence[str]) -> dict[str, PairIndex]:
    """The indexes of ``groupings``, one sorted read of ``an_edges`` each (1.3-1.9 s at 10M events).

    DuckDB numbers the grouping's groups (a join with its few distinct keys) and sorts the pairs by
    (group, duration). (One read sorted by duration for all groupings, then a stable radix sort per
    grouping by group number, took longer: the joins and the gathers cost more than the sorts saved.)
    """
    from analytics.incremental import interpolation

    interpolate = interpolation(con)
    out = {}
    for grouping in dict.fromkeys(groupings):
        keys = GROUPINGS[grouping]
        names = ", ".join(keys)
        exprs = ", ".join(f"{sql} AS {name}" for name, sql in keys.items())
        match = " AND ".join(f"p.{name} IS NOT DISTINCT FROM g.{name}" for name in keys)
        edge = grouping == "edge"
        try:
            con.execute(f"""CREATE OR REPLACE TEMP TABLE pl_pair_groups AS
                SELECT {names}, (row_number() OVER (ORDER BY {names} NULLS LAST) - 1)::INTEGER AS gid
                FROM (SELECT DISTINCT {exprs} FROM an_edges)""")
            groups = con.execute(f"SELECT {names} FROM pl_pair_groups ORDER BY gid").df()
            arrays = con.execute(f"""
                WITH p AS (SELECT {exprs}, epoch_us(tgt_ts) - epoch_us(src_ts) AS us, case_key,
                                  coalesce(first_in_case, false) AS first FROM an_edges)
                SELECT g.gid, p.us, p.case_key{", p.first" if edge else ""}
                FROM p JOIN pl_pair_groups g ON {match}
                ORDER BY g.gid, p.us""").fetchnumpy()
        finally:
            con.execute("DROP TABLE IF EXISTS temp.pl_pair_groups")
        gid = np.asarray(arrays["gid"], dtype=np.int64)
        out[grouping] = PairIndex(
            groups=groups.reset_index(drop=True),
            starts=np.searchsorted(gid, np.arange(len(groups) + 1), side="left").astype(np.int64),
            micros=np.asarray(arrays["us"], dtype=np.int64), case_key=np.asarray(arrays["case_key"], dtype=np.int32),
            first=np.asarray(arrays["first"], dtype=bool) if edge else None, interpolate=interpolate)
    return out


# -- the registry: the latest data version's indexes of each store -----------------------------------
_INDEXES: dict[tuple[str, str], tuple[int, PairIndex]] = {}
_LOCK = threading.Lock()


def store_key(con: duckdb.DuckDBPyConnection) -> tuple[str, int]:
    """(file path, data version) of the store behind ``con`` (``store_meta.data_version``, bumped by
    every committed change to the events); read once per handle the dashboard holds read-only."""
    return snapshot.remember("pair_index.store_key", lambda: _read_store_key(con))


def _read_store_key(con: duckdb.DuckDBPyConnection) -> tuple[str, int]:
    path = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()[0]
    row = con.execute("SELECT value FROM store_meta WHERE key = 'data_version'").fetchone()
    return str(path or ":memory:"), int(row[0]) if row else 0


def lookup(con: duckdb.DuckDBPyConnection, grouping: str) -> PairIndex | None:
    """The index of ``grouping`` for the store behind ``con`` at its current data version, if built."""
    path, version = store_key(con)
    with _LOCK:
        hit = _INDEXES.get((path, grouping))
    return hit[1] if hit is not None and hit[0] == version else None


def ensure(con: duckdb.DuckDBPyConnection, *groupings: str) -> dict[str, PairIndex]:
    """The indexes of ``groupings`` for the store behind ``con``; the missing ones are built now, in the
    order asked, each usable by other threads as soon as it is built (a page lists its first tab's first)."""
    found = {g: lookup(con, g) for g in groupings}
    path, version = store_key(con)
    for g in [g for g, index in found.items() if index is None]:
        found[g] = build_many(con, [g])[g]
        if _read_store_key(con)[1] == version:  # the store did not change meanwhile
            with _LOCK:
                _INDEXES[(path, g)] = (version, found[g])
    return found


def forget() -> None:
    """Drop every index (tests; memory)."""
    with _LOCK:
        _INDEXES.clear()


def selection_mask(keys: np.ndarray) -> np.ndarray:
    """A boolean array indexed by case key, True at ``keys``."""
    keys = np.asarray(keys, dtype=np.int64)
    mask = np.zeros(int(keys.max()) + 1 if len(keys) else 0, dtype=bool)
    mask[keys] = True
    return mask
