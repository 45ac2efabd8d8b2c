"""A CSV file is first offered streamed (read once, straight into the mapped rows).

A clean file is loaded that way; any file the streamed read cannot load exactly is withdrawn and
read again the careful way. Either way the store must come out identical to the careful path's:
the same events, positions, lines, rejects and run counts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.loader import Batch, Loader
from ingest.mapping import Mapping
from ingest.sources import csv_file
from ingest.store import open_store
from processlens.errors import SourceError

MAPPING = Mapping(case="case", activity="activity", timestamp="timestamp", resource="resource")
HEADER = "case,activity,timestamp,resource,amount,n"


def _lines(n: int) -> list[str]:
    """Records whose last field is the record's own line number in the file (header = line 1)."""
    acts = ["Receive", "Check", "Approve", "Ship"]
    return [f"C{i // 4:06d},{acts[i % 4]},2024-03-{1 + (i // 4) % 27:02d} {8 + i % 4:02d}:{i % 60:02d}:00,"
            f"user{i % 7},{i % 900},{i + 2}" for i in range(n)]


def _write(path: Path, lines: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _load(db: Path, csv: Path, stream: bool, allow_empty: bool = True) -> tuple[dict, list[Batch]]:
    seen: list[Batch] = []

    def spy():
        for b in csv_file.batches(con, csv, MAPPING.key_columns, allow_empty=allow_empty, stream=stream):
            seen.append(b)
            yield b

    with open_store(db) as con:
        Loader(con, job="j", source="S", kind="csv", mapping=MAPPING, progress=False).run(spy())
        snapshot = {
            "events": con.execute(
                """SELECT c.case_id, a.name, e.ts, e.resource, e.position, e.record_id, CAST(e.attrs AS VARCHAR)
                   FROM events e JOIN cases c USING (case_key) JOIN activities a USING (activity_id)
                   ORDER BY e.event_id""").fetchall(),
            "rejects": con.execute(
                "SELECT location, line, record_key, field, reason, raw FROM rejects ORDER BY line").fetchall(),
            "run": con.execute("SELECT status, rows_read, rows_loaded, rows_rejected, duplicates_skipped "
                               "FROM ingest_runs").fetchall(),
            "cases": con.execute("SELECT case_key, case_id FROM cases ORDER BY case_key").fetchall(),
        }
    return snapshot, seen


def _both(tmp_path: Path, csv: Path, **kw) -> tuple[dict, list[Batch], dict]:
    streamed, seen = _load(tmp_path / "streamed.duckdb", csv, stream=True, **kw)
    careful, _ = _load(tmp_path / "careful.duckdb", csv, stream=False, **kw)
    return streamed, seen, careful


def test_a_clean_file_bigger_than_a_read_buffer_is_streamed_with_every_line_right(tmp_path, monkeypatch):
    """~25 MB: DuckDB reads it in parallel pieces; the rows must still be numbered in file order."""
    csv = _write(tmp_path / "big.csv", _lines(400_000))
    careful, _ = _load(tmp_path / "careful.duckdb", csv, stream=False)

    def no_copy(*a, **k):
        raise AssertionError("a clean file must not be read into a table")

    monkeypatch.setattr(csv_file, "_materialise", no_copy)
    streamed, seen = _load(tmp_path / "streamed.duckdb", csv, stream=True)
    assert len(seen) == 1 and seen[0].verify is not None and not seen[0].withdrawn
    assert streamed == careful
    events = streamed["events"]
    assert len(events) == 400_000
    # each record carries its own line: position + 2 is that line
    assert all(f'"n":{pos + 2}' in attrs for *_, pos, _rid, attrs in events)


def _replace(lines: list[str], i: int, new: str) -> list[str]:
    return lines[:i] + [new] + lines[i + 1:]


def _with_note(lines: list[str], multiline_at: int) -> tuple[str, list[str]]:
    """A note column; one record's note is quoted and spans two lines."""
    out = [ln.replace(",user", ",x,user", 1) for ln in lines]
    out[multiline_at] = lines[multiline_at].replace(",user", ',"two\nlines",user', 1)
    return "case,activity,timestamp,note,resource,amount,n", out


def _pad_case(line: str) -> str:
    case, rest = line.split(",", 1)
    return f"{case} ,{rest}"


def _text_amount(line: str) -> str:
    *head, _amount, n = line.split(",")
    return ",".join([*head, "n/a", n])


BAD_FILES = {  # name: (records, header and records)
    "a row with a field too many": (200, lambda ls: (HEADER, _replace(ls, 50, ls[50] + ",extra"))),
    "an unparseable timestamp": (200, lambda ls: (HEADER, _replace(ls, 70, ls[70].replace("2024-03-", "2024-13-")))),
    "a case id with a trailing space": (200, lambda ls: (HEADER, _replace(ls, 30, _pad_case(ls[30])))),
    "a quoted field spanning two lines": (200, lambda ls: _with_note(ls, 40)),
    "a blank line between records": (200, lambda ls: (HEADER, ls[:60] + [""] + ls[60:])),
    # beyond the 20,480 rows DuckDB samples for types: the column was typed a number
    "a number column with text after the type sample": (
        30_000, lambda ls: (HEADER, _replace(ls, 25_000, _text_amount(ls[25_000])))),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_file_the_stream_cannot_load_exactly_is_read_again_the_careful_way(tmp_path, case):
    n, make = BAD_FILES[case]
    header, lines = make(_lines(n))
    csv = _write(tmp_path / "bad.csv", lines, header=header)
    streamed, seen, careful = _both(tmp_path, csv)
    assert seen[0].verify is not None and seen[0].withdrawn
    assert len(seen) == 2 and seen[1].verify is None  # the same file again, materialised
    assert streamed == careful
    assert streamed["run"][0][:2] == ("succeeded", n)


def test_a_header_only_file_fails_the_same_way_streamed_or_not(tmp_path):
    csv = _write(tmp_path / "empty.csv", [])
    messages = []
    for stream in (True, False):
        with pytest.raises(SourceError) as err:
            _load(tmp_path / f"{stream}.duckdb", csv, stream=stream, allow_empty=False)
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "no events" in messages[0]


def test_a_withdrawn_batch_leaves_nothing_behind(tmp_path):
    """The streamed attempt's rows are not counted or kept: only the careful read's are."""
    lines = _lines(120)
    lines[10] = lines[10].replace("2024-03-", "not a date ")
    csv = _write(tmp_path / "bad.csv", lines)
    streamed, seen, _ = _both(tmp_path, csv)
    assert seen[0].withdrawn
    assert streamed["run"] == [("succeeded", 120, 119, 1, 0)]
    assert [r[1] for r in streamed["rejects"]] == [12]
    assert len(streamed["events"]) == 119
