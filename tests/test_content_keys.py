"""Sources without record ids: events are recognised by their content plus occurrence number.

Exports overlap (yesterday's rows again with today's), repeat genuine identical rows, arrive in
several files of one batch, or name a case only through a correlation key; in every case a
re-run loads exactly the rows not stored yet, and nothing twice.
"""

from __future__ import annotations

import pyarrow as pa

from ingest.loader import Batch, Loader
from ingest.mapping import Correlation, Mapping

M = Mapping(case="case", activity="activity", timestamp="ts", resource="who")


def rows(*recs: tuple) -> pa.Table:
    return pa.table({
        "case": [r[0] for r in recs], "activity": [r[1] for r in recs],
        "ts": [r[2] for r in recs], "who": [r[3] if len(r) > 3 else None for r in recs],
    })


def run(con, *tables: pa.Table, mapping: Mapping = M, location: str = "export.csv"):
    return Loader(con, "job", "S", "test", mapping, progress=False).run(
        [Batch(f"_t{i}", data=t, location=location) for i, t in enumerate(tables)])


def stored(con) -> list[tuple]:
    return con.execute(
        "SELECT case_id, activity, CAST(ts AS VARCHAR), resource FROM event_log ORDER BY case_id, ts, event_id").fetchall()


def test_overlapping_export_loads_only_the_new_rows(store):
    day1 = rows(("o1", "A", "2024-01-01 09:00:00", "ann"), ("o1", "B", "2024-01-01 10:00:00", "bob"),
                ("o2", "A", "2024-01-01 11:00:00", "ann"))
    day2 = rows(("o1", "B", "2024-01-01 10:00:00", "bob"), ("o2", "A", "2024-01-01 11:00:00", "ann"),
                ("o2", "B", "2024-01-02 09:00:00", "cy"), ("o3", "A", "2024-01-02 10:00:00", None))
    first, second = run(store, day1), run(store, day2)
    assert (first.rows_loaded, second.rows_loaded, second.duplicates_skipped) == (3, 2, 2)
    assert len(stored(store)) == 5
    assert record_ids(store) == {None}  # nothing is hashed or stored for content-keyed rows


def record_ids(con) -> set:
    return {r[0] for r in con.execute("SELECT DISTINCT record_id FROM events").fetchall()}


def test_genuine_repeats_load_only_the_extra_occurrences(store):
    a = ("o1", "Scan", "2024-01-01 09:00:00", "ann")
    assert run(store, rows(a, a)).rows_loaded == 2
    again = run(store, rows(a, a, a))  # one more scan of the same item at the same second
    assert (again.rows_loaded, again.duplicates_skipped) == (1, 2)
    assert run(store, rows(a)).rows_loaded == 0
    assert len(stored(store)) == 3


def test_a_differing_attribute_or_resource_makes_a_different_event(store):
    assert run(store, rows(("o1", "A", "2024-01-01 09:00:00", "ann"))).rows_loaded == 1
    assert run(store, rows(("o1", "A", "2024-01-01 09:00:00", "bob"))).rows_loaded == 1
    t = rows(("o1", "A", "2024-01-01 09:00:00", "ann")).append_column("amount", pa.array([5.0]))
    assert run(store, t).rows_loaded == 1  # a new column with a value is new content
    assert run(store, t).rows_loaded == 0


def test_same_rows_in_two_files_of_one_batch_are_one_event(store):
    a, b = ("o1", "A", "2024-01-01 09:00:00", "ann"), ("o1", "B", "2024-01-01 10:00:00", "ann")
    t = rows(a, b, a, b, b).append_column("__pl_location", pa.array(["f1", "f1", "f2", "f2", "f2"]))
    res = Loader(store, "job", "S", "test", M, progress=False).run([Batch("_t", data=t, location="folder")])
    # f1 holds a, b; f2 holds a, b, b: the union is a once and b twice
    assert (res.rows_loaded, res.duplicates_skipped) == (3, 2)
    assert sorted(stored(store)) == sorted([a, b, b])


def test_rows_named_by_a_correlation_key_are_not_loaded_twice(store):
    corr = Mapping(case="order", activity="activity", timestamp="ts", correlation=Correlation(key="ticket"))

    def tickets(*recs):
        return pa.table({"order": [r[0] for r in recs], "ticket": [r[1] for r in recs],
                         "activity": [r[2] for r in recs], "ts": [r[3] for r in recs]})

    later = ("", "T1", "Reply", "2024-01-02 09:00:00")  # names only the ticket
    first = run(store, tickets(later), mapping=corr)
    assert (first.rows_loaded, first.pending) == (0, 1)
    assert run(store, tickets(later), mapping=corr).duplicates_skipped == 1  # still pending, not twice
    # the ticket's first event links it to order o1: the pending row joins, the re-read one is skipped
    linked = run(store, tickets(("o1", "T1", "Open", "2024-01-01 09:00:00"), later), mapping=corr)
    assert (linked.rows_loaded, linked.resolved_pending, linked.pending) == (1, 1, 0)
    assert run(store, tickets(("o1", "T1", "Open", "2024-01-01 09:00:00"), later), mapping=corr).rows_loaded == 0
    got = store.execute("SELECT case_id, activity FROM event_log ORDER BY ts").fetchall()
    assert got == [("o1", "Open"), ("o1", "Reply")]


def test_stores_written_with_hashed_record_ids_still_deduplicate(store):
    """Stores from before content keys hold a hash in record_id: the content decides, not the id."""
    t = rows(("o1", "A", "2024-01-01 09:00:00", "ann"), ("o1", "B", "2024-01-01 10:00:00", "ann"))
    run(store, t)
    store.execute("UPDATE events SET record_id = '123456789#1'")
    assert run(store, t).rows_loaded == 0
