"""Turn a :class:`~analytics.filters.Filter` into the relations every analysis reads.

:func:`plan` returns a ``WITH`` clause defining

- ``ev``: the events that remain (columns of ``events``),
- ``cs``: their case summaries (columns of ``an_cases``),
- ``ed``: their directly-follows pairs (columns of ``an_edges``),
- ``vt``: ``(variant_id, trace)`` for the variants of ``cs``.

When the filter keeps or drops only whole cases and the maintained aggregates are up to date,
``cs``/``ed`` are the tables ``an_cases``/``an_edges`` restricted to the kept cases (fast path);
otherwise they are computed from the filtered events with the same SQL (:mod:`analytics.queries`).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from analytics.filters import Filter
from analytics.queries import SOURCE_BIT_SQL, SOURCE_MASK_BITS, cases_sql, edges_sql
from processlens import snapshot


@dataclass
class Plan:
    ctes: list[tuple[str, str]]
    fast: bool
    filtered: bool

    def sql(self, body: str) -> str:
        """``WITH <relations> <body>``."""
        return "WITH " + ",\n".join(f"{name} AS ({sql})" for name, sql in self.ctes) + "\n" + body


def plan(con: duckdb.DuckDBPyConnection, flt: Filter | None = None, use_aggregates: bool | None = None) -> Plan:
    """The relations for ``flt``; ``use_aggregates`` forces (True) or forbids (False) the fast path."""
    from analytics.incremental import is_fresh

    flt = flt or Filter()
    fast = not flt.has_event_level and (is_fresh(con) if use_aggregates is None else use_aggregates)
    ctes: list[tuple[str, str]] = []
    if fast:
        ctes += [("ev0", "SELECT * FROM events"), ("cs0", "SELECT * FROM an_cases"), ("ed0", "SELECT * FROM an_edges")]
    else:
        where = flt.event_where()
        ctes.append(("ev0", "SELECT * FROM events e" + ("" if where == "TRUE" else f" WHERE {where}")))
        ctes.append(("cs0t", cases_sql("ev0", with_trace=True)))
        ctes.append(("cs0", "SELECT * EXCLUDE (trace) FROM cs0t"))
        ctes.append(("ed0", edges_sql("ev0", first_in_case=False)))
    case_where = flt.case_where(source_mask=source_mask(con, flt.source_names, fast))
    filtered = case_where != "TRUE" or flt.has_variant_rank
    if filtered:
        ctes.append(("kc1", f"SELECT case_key, variant_id FROM cs0 WHERE {case_where}"))
        if flt.has_variant_rank:
            ctes.append((
                "vr",
                """SELECT variant_id, row_number() OVER (ORDER BY count(*) DESC, variant_id) AS vrank,
                          coalesce(sum(count(*)) OVER (ORDER BY count(*) DESC, variant_id
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                          / sum(count(*)) OVER () AS cum_before
                   FROM kc1 GROUP BY variant_id""",
            ))
            ctes.append(("kc", f"SELECT case_key FROM kc1 WHERE variant_id IN (SELECT variant_id FROM vr WHERE {flt.variant_rank_where()})"))
        else:
            ctes.append(("kc", "SELECT case_key FROM kc1"))
        # the kept cases as a bit string indexed by case_key: a bit test per row is several times
        # faster than a semi-join of millions of events or pairs with a million kept keys
        top = top_case_key(con)
        ctes.append(("kb", f"SELECT bitstring_agg(case_key, 0, {top}) AS bits FROM kc"))
        for name in ("ev", "cs", "ed"):
            ctes.append((name, f"SELECT {name}0.* FROM {name}0, kb WHERE get_bit(kb.bits, {name}0.case_key) = 1"))
    else:
        ctes += [("ev", "SELECT * FROM ev0"), ("cs", "SELECT * FROM cs0"), ("ed", "SELECT * FROM ed0")]
    if fast:
        ctes.append(("vt", "SELECT variant_id, trace FROM an_variants"))
    else:
        ctes.append(("vt", "SELECT DISTINCT variant_id, trace FROM cs0t"))
    return Plan(ctes=ctes, fast=fast, filtered=filtered)


def top_case_key(con: duckdb.DuckDBPyConnection) -> int:
    """The largest ``case_key`` of the store (0 when it has no case; read once per frozen store)."""
    return snapshot.remember("analytics.top_case_key", lambda: int(
        con.execute("SELECT coalesce(max(case_key), 0) FROM cases").fetchone()[0]))


def summaries_have_source_bits(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the maintained case summaries carry ``source_mask`` (migration 0007)."""
    return snapshot.remember("analytics.source_bits", lambda: bool(con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'an_cases' "
        "AND column_name = 'source_mask'").fetchall()[0][0]))


def source_mask(con: duckdb.DuckDBPyConnection, names: list[str] | None, fast: bool) -> int | None:
    """The case-summary bits (``source_mask``) of the sources ``names``; None when one of them has no bit
    (its id is 64 or more) or the summaries read have no such column (a store from before migration 0007)."""
    if names is None:
        return None
    if fast and not summaries_have_source_bits(con):
        return None
    def compute() -> int | None:
        mask, unbitted = con.execute(
            f"SELECT coalesce(bit_or({SOURCE_BIT_SQL}), 0), count(*) FILTER (WHERE source_id >= {SOURCE_MASK_BITS}) "
            "FROM sources WHERE name IN (SELECT unnest(?::VARCHAR[]))", [list(names)]).fetchall()[0]
        return None if unbitted else int(mask)

    return snapshot.remember(("analytics.source_mask", tuple(sorted(names))), compute)


def activity_names(con: duckdb.DuckDBPyConnection) -> dict[int, str]:
    return dict(con.execute("SELECT activity_id, name FROM activities").fetchall())


def fetch_df(con: duckdb.DuckDBPyConnection, sql: str):
    """Run ``sql`` and return a pandas DataFrame through Arrow (much faster than ``.df()`` for wide results)."""
    import warnings

    with warnings.catch_warnings():  # "extra copy" note: con.sql() refuses to run while a result is pending
        warnings.simplefilter("ignore")
        return con.execute(sql).to_arrow_table().to_pandas()
