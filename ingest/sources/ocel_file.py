"""OCEL 2.0 logs (SQLite, JSON, XML) and OCEL 1.0 JSON: object-centric tables kept as they are,
and a flattened case view for one object type (the user picks it, default: the most used)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd

from ingest.loader import Batch, Loader, RunResult, ensure_source
from ingest.mapping import Mapping
from processlens.errors import SourceError


def read_ocel(path: Path):
    """Read with pm4py's OCEL readers; returns pm4py's OCEL object."""
    import pm4py

    from ingest.sources.xes_file import check_safe

    name = path.name.lower()
    try:
        if name.endswith(".sqlite"):
            return pm4py.read_ocel2_sqlite(str(path))
        if name.endswith(".xmlocel") or name.endswith(".xml"):
            with open(path, "rb") as fh:
                head = fh.read(1 << 20)
            if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
                check_safe(path)
            return pm4py.read_ocel2_xml(str(path))
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        if "ocel:events" in doc or "ocel:global-log" in doc:
            return pm4py.read_ocel_json(str(path))
        return pm4py.read_ocel2_json(str(path))
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(
            f"cannot read {path} as an OCEL log: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            hint="supported: OCEL 2.0 as .sqlite, .jsonocel or .xmlocel, and OCEL 1.0 JSON",
            where={"file": str(path)},
        ) from exc


def object_types(ocel) -> dict[str, int]:
    """Object types with the number of events that touch them, most used first."""
    rel = ocel.relations
    counts = rel.groupby(ocel.object_type_column)[ocel.event_id_column].nunique().sort_values(ascending=False)
    return {str(k): int(v) for k, v in counts.items()}


def _attrs_json(df: pd.DataFrame, exclude: set[str]) -> pd.Series:
    cols = [c for c in df.columns if c not in exclude]
    if not cols:
        return pd.Series([None] * len(df), index=df.index)
    return df[cols].apply(lambda r: json.dumps({k: v for k, v in r.items() if pd.notna(v)}, default=str), axis=1)


def ingest(con: duckdb.DuckDBPyConnection, path: Path, object_type: str | None, source: str, progress: bool | None = None):
    from ingest.api import FileImport

    ocel = read_ocel(path)
    types = object_types(ocel)
    if not types:
        raise SourceError(f"{path} has no event-object relations", hint="check the export", where={"file": str(path)})
    if object_type is None:
        object_type = next(iter(types))
    elif object_type not in types:
        raise SourceError(
            f"object type {object_type!r} is not in {path.name}",
            hint=f"choose one of: {', '.join(types)} (with --object-type)",
            where={"file": str(path)},
        )
    ev, rel, obj = ocel.events.copy(), ocel.relations.copy(), ocel.objects.copy()
    eid, act, ts, oid, otype = (ocel.event_id_column, ocel.event_activity, ocel.event_timestamp,
                                ocel.object_id_column, ocel.object_type_column)
    qual = getattr(ocel, "qualifier", "ocel:qualifier")
    for frame in (ev, rel):
        frame[ts] = pd.to_datetime(frame[ts], utc=True).dt.tz_localize(None) if ts in frame else None
    # 1. the object-centric tables, kept as they are
    con.execute("BEGIN TRANSACTION")
    try:
        sid = ensure_source(con, source, "ocel", "UTC", {"path": str(path.resolve())})
        events_tbl = pd.DataFrame({
            "source_id": sid, "event_id": ev[eid].astype(str), "activity": ev[act].astype(str), "ts": ev[ts],
            "attrs": _attrs_json(ev, {eid, act, ts}),
        })
        objects_tbl = pd.DataFrame({
            "source_id": sid, "object_id": obj[oid].astype(str), "object_type": obj[otype].astype(str),
            "attrs": _attrs_json(obj, {oid, otype}),
        })
        e2o = pd.DataFrame({
            "source_id": sid, "event_id": rel[eid].astype(str), "object_id": rel[oid].astype(str),
            "qualifier": rel[qual].astype(str) if qual in rel else None,
        })
        o2o_src = getattr(ocel, "o2o", None)
        con.register("_ev", events_tbl)
        con.register("_obj", objects_tbl)
        con.register("_e2o", e2o)
        con.execute("INSERT INTO ocel_events SELECT * FROM _ev ON CONFLICT DO NOTHING")
        con.execute("INSERT INTO ocel_objects SELECT * FROM _obj ON CONFLICT DO NOTHING")
        con.execute("DELETE FROM ocel_event_objects WHERE source_id = ?", [sid])
        con.execute("INSERT INTO ocel_event_objects SELECT * FROM _e2o")
        if o2o_src is not None and len(o2o_src):
            o2o = pd.DataFrame({
                "source_id": sid, "from_object_id": o2o_src[oid].astype(str),
                "to_object_id": o2o_src[oid + "_2"].astype(str) if oid + "_2" in o2o_src else None,
                "qualifier": o2o_src[qual].astype(str) if qual in o2o_src else None,
            })
            con.register("_o2o", o2o)
            con.execute("DELETE FROM ocel_object_objects WHERE source_id = ?", [sid])
            con.execute("INSERT INTO ocel_object_objects SELECT * FROM _o2o")
            con.unregister("_o2o")
        for name in ("_ev", "_obj", "_e2o"):
            con.unregister(name)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    # 2. the flattened log for the chosen object type, through the ordinary loader
    # as pm4py's ocel_flattening: each event once per object of the type, in the events table's
    # order, so equal timestamps keep the order of the source
    links = rel[rel[otype] == object_type][[oid, eid]].drop_duplicates()
    flat = ev.merge(links, on=eid, how="inner")
    flat = flat.sort_values(ts, kind="stable").reset_index(drop=True)
    flat = flat.rename(columns={oid: "case:concept:name", act: "concept:name", ts: "time:timestamp"})
    flat["record_id"] = flat[eid].astype(str) + "@" + flat["case:concept:name"].astype(str)
    mapping = Mapping(case="case:concept:name", activity="concept:name", timestamp="time:timestamp",
                      record_id="record_id", drop=[eid])
    batch = Batch(relation="_ocel_flat", data=flat, location=str(path), line_offset=None)
    loader = Loader(con, job=f"file:{path.name}:{object_type}", source=source, kind="ocel", mapping=mapping,
                    progress=progress, config={"path": str(path.resolve()), "object_type": object_type})
    result: RunResult = loader.run([batch])
    result_extra = {"object_type": object_type, "object_types": types}
    imp = FileImport(path=path, kind="ocel", mapping=mapping, result=result, guessed={})
    imp.extra = result_extra  # type: ignore[attr-defined]
    return imp
