"""The parallel XES reader: a large log cut at trace boundaries and parsed in several processes
gives exactly the table of one whole parse, and falls back to the whole parse when it cannot cut
safely or a part fails."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from conftest import real_log

from ingest.sources import xes_file
from processlens.errors import SourceError


def plain_copy(gz: Path, tmp_path: Path) -> Path:
    out = tmp_path / gz.name.removesuffix(".gz")
    with gzip.open(gz, "rb") as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return out


def read_with(path: Path, workers: int, monkeypatch):
    monkeypatch.setenv(xes_file.WORKERS_ENV, str(workers))
    return xes_file.read_frame(path)


@pytest.mark.parametrize("log", ["receipt/08_receipt.xes.gz", "bpic2013-incidents/07_bpic2013_incidents.xes.gz"])
def test_parts_parsed_at_once_equal_one_whole_parse(log, tmp_path, monkeypatch):
    path = plain_copy(real_log(log), tmp_path)
    whole = read_with(path, 1, monkeypatch)
    with open(path, "rb") as fh:
        assert len(xes_file.split_points(fh.read(), 3)) == 4  # really cut in three
    split = read_with(path, 3, monkeypatch)
    parts = xes_file.read_split(path, 3)  # really parsed in parts, not by the whole-file fallback
    assert parts is not None and parts.num_rows == whole.num_rows
    assert split.num_rows == whole.num_rows > 1000
    assert split.schema == whole.schema
    assert split.equals(whole)


def test_documents_it_cannot_cut_safely_are_read_whole():
    head = b'<?xml version="1.0"?><log><string key="concept:name" value="x"/>'
    assert xes_file.split_points(head + b"</log>", 2) is None  # no traces
    traces = b"".join(b'<trace><event><string key="concept:name" value="a"/></event></trace>\n' for _ in range(50))
    commented = head + traces + b"<!-- <trace> -->" + traces + b"</log>"
    assert xes_file.split_points(commented, 2) is None
    assert xes_file.split_points(head + traces + b"</log>", 2)[1] > len(head)
    assert xes_file._trace_at(b"<traces><trace>", 0) == 8  # <traces> is not a trace


def test_a_malformed_part_reports_the_error_of_the_whole_file(tmp_path, monkeypatch):
    path = plain_copy(real_log("receipt/08_receipt.xes.gz"), tmp_path)
    data = path.read_bytes()
    cut = data.rfind(b"<event>")
    path.write_bytes(data[:cut] + b"<event><string key=broken></event>" + data[cut:])
    with pytest.raises(SourceError) as err:
        read_with(path, 2, monkeypatch)
    assert path.name in err.value.message and "malformed" in (err.value.hint or "")


def test_a_compressed_log_is_unpacked_once_and_parsed_in_parts(monkeypatch):
    gz = real_log("receipt/08_receipt.xes.gz")
    whole = read_with(gz, 1, monkeypatch)
    monkeypatch.delenv(xes_file.WORKERS_ENV)
    assert xes_file.parallel_parts(gz) == 1  # default: too small to pay for a second process
    assert read_with(gz, 2, monkeypatch).equals(whole)
    assert xes_file.read_split(gz, 2) is not None


def test_case_attributes_of_a_real_log_land_on_their_cases(store):
    """Trace attributes (case:*) are stored once per case, as the log gives them."""
    import json

    from ingest.api import ingest_file

    path = real_log("receipt/08_receipt.xes.gz")
    ingest_file(store, path, progress=False)
    table = xes_file.read_frame(path).to_pandas()
    expected = table.groupby("case:concept:name", sort=False)[["case:channel", "case:department"]].first()
    got = dict(store.execute("SELECT case_id, attrs FROM cases").fetchall())
    assert len(got) == len(expected) > 1000
    for case_id, row in expected.iterrows():
        attrs = json.loads(got[case_id])
        assert (attrs.get("case:channel"), attrs.get("case:department")) == (row["case:channel"], row["case:department"])


def test_runs_without_an_attribute_get_its_global_default_as_in_a_whole_parse(tmp_path, monkeypatch):
    """rustxes fills a trace or event lacking an attribute with the log's <global> default, but only
    when it has met the attribute; a run of traces where none has it must be filled the same way."""
    head = (b'<?xml version="1.0" encoding="UTF-8"?>\n<log xes.version="1.0">\n'
            b'<global scope="trace"><string key="group" value="UNKNOWN"/><int key="prio" value="3"/>'
            b'<date key="deadline" value="1970-01-01T00:00:00.000+01:00"/><boolean key="vip" value="false"/></global>\n'
            b'<global scope="event"><string key="org:group" value="NOBODY"/><float key="cost" value="1.5"/></global>\n')
    special = (b'<string key="group" value="g1"/><int key="prio" value="7"/>'
               b'<date key="deadline" value="2024-05-01T10:00:00.000+02:00"/><boolean key="vip" value="true"/>')
    traces = []
    for i in range(3000):
        attrs = special if i == 0 else b""
        event_attrs = b'<string key="org:group" value="team"/><float key="cost" value="9.25"/><string key="note" value="n"/>' \
            if i == 0 else b""
        traces.append(b'<trace><string key="concept:name" value="c%d"/>%s<event><string key="concept:name" value="a"/>'
                      b'<date key="time:timestamp" value="2024-01-01T00:00:00.000+00:00"/>%s</event></trace>\n'
                      % (i, attrs, event_attrs))
    path = tmp_path / "globals.xes"
    path.write_bytes(head + b"".join(traces) + b"</log>\n")
    whole = read_with(path, 1, monkeypatch)
    assert whole.column("case:group").to_pylist()[:2] == ["g1", "UNKNOWN"]  # what rustxes itself does
    split = xes_file.read_split(path, 3)
    assert split is not None  # parsed in runs, not by the whole-file fallback
    assert split.select(sorted(split.column_names)).equals(whole)
