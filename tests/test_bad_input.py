"""Bad input never crashes and never half-loads silently: each case either loads with the bad
records quarantined (file, exact physical line, field, reason) or fails as a whole with an error
that names the file and says what to do, leaving the store untouched."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

import pytest

from ingest.api import ingest_file
from processlens.errors import SourceError
from tests.conftest import real_log

HEADER = "case,activity,timestamp\n"


def write(tmp_path: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def events(con) -> list[tuple]:
    return con.execute("SELECT case_id, activity, ts FROM event_log ORDER BY case_id, ts, event_id").fetchall()


def rejects(con) -> list[tuple]:
    return con.execute("SELECT line, field, reason FROM rejects ORDER BY line").fetchall()


def assert_untouched(con) -> None:
    assert con.execute("SELECT count(*) FROM events").fetchall()[0][0] == 0
    assert con.execute("SELECT count(*) FROM cases").fetchall()[0][0] == 0


def fails(con, path: Path, *words: str, **opts) -> SourceError:
    with pytest.raises(SourceError) as info:
        ingest_file(con, path, progress=False, **opts)
    err = info.value
    assert err.where.get("file", "").endswith(path.name) or path.name in err.message
    assert err.hint, "every error says what to do"
    text = (err.message + " " + err.hint).lower()
    for word in words:
        assert word.lower() in text
    assert_untouched(con)
    return err


# -- whole files that cannot be used -------------------------------------------------------------
def test_empty_file_fails_clearly(store, tmp_path):
    fails(store, write(tmp_path, "empty.csv", ""), "empty")


def test_blank_lines_only_fails_clearly(store, tmp_path):
    fails(store, write(tmp_path, "blank.csv", "\n\n  \n"), "empty")


def test_header_only_file_fails_clearly(store, tmp_path):
    err = fails(store, write(tmp_path, "header.csv", HEADER), "no events")
    assert err.where["line"] == 1


def test_binary_file_named_csv_fails_clearly(store, tmp_path):
    fails(store, write(tmp_path, "neither.csv", HEADER.encode() + bytes(range(256)) * 20), "encoding", "utf-8")


def test_control_bytes_neither_utf8_nor_latin1_fail_clearly(store, tmp_path):
    body = HEADER.encode() + b"1,\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c,2024-01-01\n" * 20
    fails(store, write(tmp_path, "ctrl.csv", body), "utf-8")


def test_duplicate_header_used_by_mapping_fails(store, tmp_path):
    path = write(tmp_path, "dup.csv", "case,activity,timestamp,activity\n1,A,2024-01-01 10:00:00,B\n")
    err = fails(store, path, "more than once", "rename", case="case", activity="activity", timestamp="timestamp")
    assert err.where["line"] == 1


def test_duplicate_header_not_used_keeps_both_values(store, tmp_path):
    path = write(tmp_path, "dup2.csv", "case,activity,timestamp,note,note\n1,A,2024-01-01 10:00:00,x,y\n")
    ingest_file(store, path, progress=False)
    attrs = json.loads(store.execute("SELECT attrs FROM events").fetchall()[0][0])
    assert sorted(attrs.values()) == ["x", "y"]


def test_named_column_that_does_not_exist_fails(store, tmp_path):
    path = write(tmp_path, "x.csv", HEADER + "1,A,2024-01-01 10:00:00\n")
    fails(store, path, "Order", "columns are", case="Order")


def test_unknown_time_zone_fails(store, tmp_path):
    path = write(tmp_path, "x.csv", HEADER + "1,A,2024-01-01 10:00:00\n")
    with pytest.raises(SourceError, match="time zone"):
        ingest_file(store, path, timezone="Mars/Olympus", progress=False)
    assert_untouched(store)


def test_truncated_xes_gz_fails_and_loads_nothing(store, tmp_path):
    whole = gzip.decompress(real_log("receipt/08_receipt.xes.gz").read_bytes())
    packed = gzip.compress(whole)
    path = write(tmp_path, "cut.xes.gz", packed[: len(packed) // 2])
    fails(store, path, "truncated", "again")


def test_truncated_plain_xes_fails(store, tmp_path):
    whole = real_log("pm4py-running-example/running-example.xes").read_bytes()
    fails(store, write(tmp_path, "cut.xes", whole[: len(whole) // 2]), "xes")


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<log xes.version="1.0"><trace><string key="concept:name" value="c1"/>
<event><string key="concept:name" value="&lol9;"/><date key="time:timestamp" value="2024-01-01T00:00:00"/></event>
</trace></log>
"""


def test_xes_entity_expansion_is_refused(store, tmp_path):
    fails(store, write(tmp_path, "lol.xes", BILLION_LAUGHS), "entit", "doctype")


def test_xes_external_entity_is_refused(store, tmp_path):
    secret = write(tmp_path, "secret.txt", "TOP-SECRET-VALUE")
    xml = (f'<?xml version="1.0"?>\n<!DOCTYPE log [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
           '<log><trace><string key="concept:name" value="c1"/><event><string key="concept:name" value="&xxe;"/>'
           '<date key="time:timestamp" value="2024-01-01T00:00:00"/></event></trace></log>')
    err = fails(store, write(tmp_path, "xxe.xes", xml), "external")
    assert "TOP-SECRET" not in str(err)


def test_xes_entity_in_gzip_is_refused(store, tmp_path):
    fails(store, write(tmp_path, "lol.xes.gz", gzip.compress(BILLION_LAUGHS.encode())), "doctype")


def test_non_xes_xml_fails_clearly(store, tmp_path):
    fails(store, write(tmp_path, "page.xes", '<?xml version="1.0"?>\n<html><body>hello</body></html>'), "not look like")


def test_corrupt_parquet_fails_clearly(store, tmp_path):
    fails(store, write(tmp_path, "x.parquet", "case,activity\n1,A\n"), "parquet")


def test_unknown_extension_fails_clearly(store, tmp_path):
    fails(store, write(tmp_path, "x.docx", "hello"), "supported")


# -- rows that are quarantined -----------------------------------------------------------------
def test_unparseable_timestamp_row_rejected_with_line_and_field(store, tmp_path):
    path = write(tmp_path, "ts.csv", HEADER + "1,A,2024-01-01 10:00:00\n1,B,not a time\n2,A,2024-01-02 10:00:00\n")
    res = ingest_file(store, path, progress=False).result
    assert (res.rows_read, res.rows_loaded, res.rows_rejected) == (3, 2, 1)
    [(line, field, reason)] = rejects(store)
    assert (line, field) == (3, "timestamp") and "not a time" in reason
    loc = store.execute("SELECT location FROM rejects").fetchall()[0][0]
    assert loc.endswith("ts.csv")


def test_rows_with_too_many_or_too_few_columns_rejected_with_exact_lines(store, tmp_path):
    body = HEADER + "1,A,2024-01-01 10:00:00\n1,B,2024-01-01 11:00:00,extra\n1,C\n2,A,2024-01-01 12:00:00\n2,B,oops\n"
    res = ingest_file(store, write(tmp_path, "cols.csv", body), progress=False).result
    assert (res.rows_read, res.rows_loaded, res.rows_rejected) == (5, 2, 3)
    got = rejects(store)
    assert [r[0] for r in got] == [3, 4, 6]  # line 6 comes after two skipped rows: still exact
    assert "too many" in got[0][2] and "missing" in got[1][2] and got[2][1] == "timestamp"
    raw = json.loads(store.execute("SELECT raw FROM rejects WHERE line = 3").fetchall()[0][0])
    assert "extra" in json.dumps(raw)


def test_reject_lines_are_physical_with_multiline_fields_and_blank_lines(store, tmp_path):
    body = ('case,activity,timestamp,note\n'
            '1,"A, with comma",2024-01-01 10:00:00,"line one\nline two"\n'
            '\n'
            '1,B,2024-01-01 11:00:00,x,extra\n'
            '2,A,nope,"a\nb\nc"\n'
            '3,C\n'
            '4,D,bad,z\n')
    ingest_file(store, write(tmp_path, "ml.csv", body), progress=False)
    assert [r[0] for r in rejects(store)] == [5, 6, 9, 10]
    assert events(store) == [("1", "A, with comma", datetime(2024, 1, 1, 10))]
    note = json.loads(store.execute("SELECT attrs FROM events").fetchall()[0][0])["note"]
    assert note == "line one\nline two"


def test_missing_case_and_activity_values_are_rejected(store, tmp_path):
    body = HEADER + ",A,2024-01-01 10:00:00\n1,,2024-01-01 11:00:00\n1,B,2024-01-01 12:00:00\n1,C,\n"
    res = ingest_file(store, write(tmp_path, "m.csv", body), progress=False).result
    assert (res.rows_loaded, res.rows_rejected) == (1, 3)
    assert [(r[0], r[1]) for r in rejects(store)] == [(2, "case"), (3, "activity"), (5, "timestamp")]


def test_attribute_value_beyond_type_sample_does_not_lose_the_row(store, tmp_path):
    rows = [f"{i},A,2024-01-01 10:00:00,{i}" for i in range(30000)] + ["x,A,2024-01-01 10:00:00,not-a-number"]
    path = write(tmp_path, "typed.csv", "case,activity,timestamp,amount\n" + "\n".join(rows) + "\n")
    res = ingest_file(store, path, progress=False).result
    assert (res.rows_loaded, res.rows_rejected) == (30001, 0)


# -- values that are valid and must survive ----------------------------------------------------
def test_case_id_na_is_an_id(store, tmp_path):
    body = HEADER + "NA,A,2024-01-01 10:00:00\nNA,B,2024-01-01 11:00:00\n007,A,2024-01-01 10:00:00\nnull,A,2024-01-01 09:00:00\n"
    res = ingest_file(store, write(tmp_path, "na.csv", body), progress=False).result
    assert res.rows_rejected == 0
    assert sorted(r[0] for r in store.execute("SELECT case_id FROM cases").fetchall()) == ["007", "NA", "null"]


def test_latin1_file_reads_correctly(store, tmp_path):
    path = write(tmp_path, "l1.csv", HEADER + "1,Café prüfen,2024-01-01 10:00:00\n1,Größe,2024-01-01 11:00:00\n", "latin-1")
    ingest_file(store, path, progress=False)
    assert [e[1] for e in events(store)] == ["Café prüfen", "Größe"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-8-sig"])
def test_utf16_and_bom_files_read_correctly(store, tmp_path, encoding):
    path = write(tmp_path, "u.csv", HEADER + "ü1,Café,2024-01-01 10:00:00\nü1,Bär,2024-01-01 11:00:00\n", encoding)
    imp = ingest_file(store, path, progress=False)
    assert imp.mapping.case == "case"
    assert events(store) == [("ü1", "Café", datetime(2024, 1, 1, 10)), ("ü1", "Bär", datetime(2024, 1, 1, 11))]


def test_semicolon_separated_file(store, tmp_path):
    body = "case;activity;timestamp;amount\n1;A;2024-01-01 10:00:00;1,5\n1;B, C;2024-01-01 11:00:00;2,5\n"
    imp = ingest_file(store, write(tmp_path, "semi.csv", body), progress=False)
    assert imp.result.rows_loaded == 2
    assert [e[1] for e in events(store)] == ["A", "B, C"]
    assert json.loads(store.execute("SELECT attrs FROM events ORDER BY ts").fetchall()[0][0])["amount"] == "1,5"


def test_explicit_separator(store, tmp_path):
    body = "case|activity|timestamp\n1|A|2024-01-01 10:00:00\n"
    assert ingest_file(store, write(tmp_path, "p.txt", body), sep="|", progress=False).result.rows_loaded == 1


def test_quoted_fields_with_delimiters_quotes_and_newlines(store, tmp_path):
    body = HEADER + '"c,1","say ""hi""",2024-01-01 10:00:00\n"c,1","two\nlines",2024-01-01 11:00:00\n'
    ingest_file(store, write(tmp_path, "q.csv", body), progress=False)
    assert events(store) == [("c,1", 'say "hi"', datetime(2024, 1, 1, 10)), ("c,1", "two\nlines", datetime(2024, 1, 1, 11))]


def test_local_clock_time_converted_to_utc(store, tmp_path):
    body = HEADER + "1,A,2024-01-15 12:00:00\n1,B,2024-07-01 12:00:00\n"
    ingest_file(store, write(tmp_path, "local.csv", body), timezone="Europe/Amsterdam", progress=False)
    assert [e[2] for e in events(store)] == [datetime(2024, 1, 15, 11), datetime(2024, 7, 1, 10)]
    assert store.execute("SELECT timezone FROM sources").fetchall()[0][0] == "Europe/Amsterdam"


def test_timestamps_with_offset_are_not_shifted_by_timezone_option(store, tmp_path):
    body = HEADER + "1,A,2024-01-15T12:00:00+01:00\n"
    ingest_file(store, write(tmp_path, "off.csv", body), timezone="America/New_York", progress=False)
    assert events(store)[0][2] == datetime(2024, 1, 15, 11)


def test_timestamps_decades_before_the_rest_are_loaded(store, tmp_path):
    body = HEADER + "1,A,1970-01-01 00:00:00\n1,B,2024-03-31 03:30:00\n2,A,1901-06-01 08:00:00\n2,B,2024-07-01 12:00:00\n"
    res = ingest_file(store, write(tmp_path, "old.csv", body), progress=False).result
    assert (res.rows_loaded, res.rows_rejected) == (4, 0)
    assert min(e[2] for e in events(store)) == datetime(1901, 6, 1, 8)


def test_start_and_complete_lifecycle_rows_are_kept(store, tmp_path):
    body = ("case,activity,timestamp,lifecycle:transition\n1,A,2024-01-01 10:00:00,start\n"
            "1,A,2024-01-01 10:30:00,complete\n1,B,2024-01-01 11:00:00,start\n1,B,2024-01-01 11:30:00,complete\n")
    imp = ingest_file(store, write(tmp_path, "life.csv", body), progress=False)
    assert imp.mapping.lifecycle == "lifecycle:transition"
    got = store.execute("SELECT activity, lifecycle FROM event_log ORDER BY ts, event_id").fetchall()
    assert got == [("A", "start"), ("A", "complete"), ("B", "start"), ("B", "complete")]


def test_start_timestamp_column(store, tmp_path):
    body = "case,activity,begin,finish\n1,A,2024-01-01 10:00:00,2024-01-01 10:30:00\n1,B,2024-01-01 11:00:00,bad\n"
    res = ingest_file(store, write(tmp_path, "s.csv", body), timestamp="finish", start_timestamp="begin",
                      progress=False).result
    assert (res.rows_loaded, res.rows_rejected) == (1, 1)
    assert store.execute("SELECT start_ts, ts FROM events").fetchall() == [
        (datetime(2024, 1, 1, 10), datetime(2024, 1, 1, 10, 30))]
    assert rejects(store)[0][:2] == (3, "finish")


def test_equal_timestamps_keep_file_order(store, tmp_path):
    body = HEADER + "1,Z,2024-01-01 10:00:00\n1,A,2024-01-01 10:00:00\n1,M,2024-01-01 10:00:00\n1,B,2024-01-01 09:00:00\n"
    ingest_file(store, write(tmp_path, "tie.csv", body), progress=False)
    assert [e[1] for e in events(store)] == ["B", "Z", "A", "M"]
