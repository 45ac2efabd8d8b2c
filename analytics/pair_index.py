"""Exact grouped duration statistics of the directly-follows pairs for any selection of whole cases.

Filters in processlens keep whole cases (time range, source systems, case attributes, variant).
Grouping the pairs of the kept cases with exact quantiles costs DuckDB a hash aggregate and a
sort per group over every kept pair: 0.4-0.6 s for the 9 million pairs of a 10M-event store, on
every filter change. A :class:`PairIndex` keeps one grouping's pair durations in memory, sorted
by (group, duration) once per data version. For a selection the kept pairs of a group are then
still sorted, so counts, sums, minimum, maximum and any quantile are a few vectorised passes
over the arrays (0.05-0.07 s for a selection at 10M events) and equal DuckDB's results:

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
from functools import cached_property

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

    @cached_property
    def _sums(self) -> np.ndarray:
        """Each group's total duration (microseconds)."""
        return _segment_sums(self.micros, self.starts)

    @cached_property
    def _firsts(self) -> np.ndarray:
        """Each group's pairs flagged ``first`` (the edge grouping's cases)."""
        return _segment_sums(self.first, self.starts)

    @cached_property
    def _top(self) -> int:
        """One more than the largest case key (the length a selection mask must have)."""
        return int(self.case_key.max()) + 1 if self.pairs else 0

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
            before = self.starts  # kept pairs before each group's start: all of them
            sums, firsts = self._sums, (self._firsts if cases else None)

            def position(ranks: np.ndarray) -> np.ndarray:  # where the kept pairs of these ranks are
                return ranks
        else:
            if len(selected) < self._top:  # cases beyond the selection's end are not kept
                selected = np.concatenate((selected, np.zeros(self._top - len(selected), dtype=bool)))
            keep = selected[self.case_key]
            # One pass over the positions of the kept pairs or of the dropped ones, whichever are fewer.
            # A group's kept pairs stay sorted by duration: its kept pair of rank r is the kept pair of
            # rank ``before[group] + r`` overall.
            if 2 * int(np.count_nonzero(keep)) <= self.pairs:
                at = np.flatnonzero(keep)
                before = np.searchsorted(at, self.starts)
                sums = _segment_sums(self.micros[at], before)
                firsts = _segment_sums(self.first[at], before) if cases else None

                def position(ranks: np.ndarray) -> np.ndarray:
                    return at[ranks]
            else:
                drop = np.flatnonzero(~keep)
                dropped = np.searchsorted(drop, self.starts)
                before = self.starts - dropped
                sums = self._sums - _segment_sums(self.micros[drop], dropped)
                firsts = self._firsts - _segment_sums(self.first[drop], dropped) if cases else None
                # kept pairs before each dropped one: the kept pair of rank R follows R of them and
                # every dropped pair with at most R kept pairs before it
                gaps = drop - np.arange(len(drop))

                def position(ranks: np.ndarray) -> np.ndarray:
                    return ranks + np.searchsorted(gaps, ranks, side="right")
        counts = np.diff(before)
        has = counts > 0
        n, lo = counts[has], before[:-1][has]  # ``lo``: each kept group's first rank among the kept pairs
        micros = self.micros
        out = self.groups[has].reset_index(drop=True)
        out["frequency"] = n
        if cases:
            out["cases"] = firsts[has]
        out["total_seconds"] = sums[has] / 1e6
        out["mean_seconds"] = sums[has] / n / 1e6
        out["min_seconds"] = micros[position(lo)] / 1e6
        out["max_seconds"] = micros[position(lo + n - 1)] / 1e6
        for q in quantiles:
            h = (n - 1) * float(q)
            below = np.floor(h).astype(np.int64)
            a, b = micros[position(lo + below)] / 1e6, micros[position(lo + np.ceil(h).astype(np.int64))] / 1e6
            values, frac = a.copy(), h - below
            for i in np.flatnonzero(frac > 0):  # between two ranks (a few per group at most)
                values[i] = self.interpolate(float(a[i]), float(frac[i]), float(b[i]))
            out[f"q{q:g}"] = values
        return out


def _segment_sums(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The int64 sums of ``values[bounds[i]:bounds[i + 1]]`` (0 for an empty segment)."""
    counts = np.diff(bounds)
    out = np.zeros(len(counts), dtype=np.int64)
    full = counts > 0
    if full.any():  # reduceat sums from one listed start to the next: empty segments are left out
        out[full] = np.add.reduceat(values, bounds[:-1][full], dtype=np.int64)
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
