"""TOML annotations beside a model: what the drawing lacks.

```toml
[model]
name = "order_to_cash"
final = ["Close Order", "Reject Order"]     # final states (default: tasks before end events)
ignore = ["Open Ticket", "Resolve Ticket"]  # source activities not checked
abandoned_after = "90d"                     # open case without events this long: ended in a non-final state

[calendar]                                  # working time for SLAs counted in working time
timezone = "Europe/Berlin"
workdays = ["Mon", "Tue", "Wed", "Thu", "Fri"]
hours = ["08:00", "17:00"]
holidays = ["2026-12-25"]

[steps."Approve Order"]
owner = "Sales"
sla = "2d"
sla_time = "working"                        # or "calendar" (default)

[exceptions."Address Invalid"]              # exception event -> handler step
owner = "Warehouse"
handler = "Correct Address"

[mapping]                                   # source activity -> model task
"Credit check done" = "Check Credit"

[[allow]]                                   # accepted deviations
type = "repeated step"
step = "Pick Goods"
```
"""

from __future__ import annotations

import tomllib
from datetime import date, time
from pathlib import Path
from typing import Any

from models.model import DEVIATION_TYPES, AllowedDeviation, Calendar, ReferenceModel, parse_duration
from processlens.errors import ModelError

DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
KNOWN = {"model", "calendar", "steps", "exceptions", "mapping", "allow"}


def read_annotations(path: str | Path) -> tuple[dict[str, Any], str]:
    path = Path(path)
    if not path.exists():
        raise ModelError(f"annotations file {path} does not exist", where={"file": str(path)},
                         hint="create it or drop the annotations setting")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        data = _read_yaml(text, path)
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ModelError(f"{path.name} is not valid TOML: {exc}", where={"file": str(path)},
                             hint="fix the syntax at the line named above") from exc
    unknown = set(data) - KNOWN
    if unknown:
        raise ModelError(f"unknown table(s) {', '.join(sorted(unknown))} in {path.name}", where={"file": str(path)},
                         hint=f"known tables: {', '.join(sorted(KNOWN))}")
    return data, text


def _read_yaml(text: str, path: Path) -> dict[str, Any]:
    """The same tables in YAML (``steps: {"Approve Order": {owner: Sales}}``, ``allow: [...]``)."""
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - PyYAML comes with the dashboard dependencies
        raise ModelError(f"{path.name} is YAML, but PyYAML is not installed", where={"file": str(path)},
                         hint="pip install pyyaml, or write the annotations as TOML") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ModelError(f"{path.name} is not valid YAML: {exc}", where={"file": str(path), "line": mark.line + 1 if mark else None},
                         hint="fix the syntax at the line named above") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path.name} must hold a mapping of tables (model, steps, ...)", where={"file": str(path)})
    return data


def _time(text: str, where: dict[str, Any]) -> time:
    try:
        return time.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"cannot read the time {text!r}", where=where, hint='write hours like "08:00"') from exc


def parse_calendar(data: dict[str, Any], where: dict[str, Any]) -> Calendar:
    days = data.get("workdays", ["Mon", "Tue", "Wed", "Thu", "Fri"])
    bad = [d for d in days if str(d)[:3].lower() not in DAYS]
    if bad:
        raise ModelError(f"unknown weekday(s) {bad} in [calendar] workdays", where=where, hint="use Mon, Tue, ... Sun")
    hours = data.get("hours", ["08:00", "17:00"])
    if not isinstance(hours, list) or len(hours) != 2:
        raise ModelError("[calendar] hours must be two times like [\"08:00\", \"17:00\"]", where=where)
    try:
        holidays = frozenset(date.fromisoformat(str(h)) for h in data.get("holidays", []))
    except ValueError as exc:
        raise ModelError(f"[calendar] holidays: {exc}", where=where, hint="write dates as 2026-12-25") from exc
    import zoneinfo

    tz = data.get("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ModelError(f"unknown time zone {tz!r} in [calendar]", where=where, hint="use an IANA name like Europe/Berlin") from exc
    return Calendar(timezone=tz, workdays=tuple(sorted({DAYS[str(d)[:3].lower()] for d in days})),
                    start=_time(hours[0], where), end=_time(hours[1], where), holidays=holidays)


def apply_annotations(model: ReferenceModel, data: dict[str, Any], text: str = "", path: str | None = None) -> ReferenceModel:
    """Fill owners, SLAs, exceptions, final states, mapping, ignore list and allowlist into ``model``."""
    where = {"file": path}
    labels = model.labels
    meta = data.get("model", {})
    if "name" in meta:
        model.name = str(meta["name"])
    if "calendar" in data:
        model.calendar = parse_calendar(data["calendar"], {**where, "table": "calendar"})
    for name, spec in data.get("steps", {}).items():
        w = {**where, "table": f'steps."{name}"'}
        if name not in labels:
            raise ModelError(f"[steps.\"{name}\"] names a step that is not in the model", where=w,
                             hint=_suggest(name, labels))
        step = model.step(name)
        if "owner" in spec:
            step.owner = str(spec["owner"])
        if "sla" in spec:
            step.sla_seconds = parse_duration(spec["sla"], w)
        basis = spec.get("sla_time", "calendar")
        if basis not in ("calendar", "working"):
            raise ModelError(f"sla_time must be \"calendar\" or \"working\", not {basis!r}", where=w)
        step.sla_working = basis == "working"
    for name, spec in data.get("exceptions", {}).items():
        w = {**where, "table": f'exceptions."{name}"'}
        handler = spec.get("handler")
        if handler is not None and handler not in labels:
            raise ModelError(f"handler {handler!r} of exception {name!r} is not a model step", where=w,
                             hint=_suggest(handler, labels))
        model.exceptions[name] = handler
        step = model.step(name)
        step.exception = True
        if "owner" in spec:
            step.owner = str(spec["owner"])
        if handler:
            model.step(handler).handles = name
    if "final" in meta:
        finals = set(meta["final"])
        missing = finals - labels
        if missing:
            raise ModelError(f"final state(s) {sorted(missing)} are not model steps", where={**where, "table": "model"},
                             hint=_suggest(sorted(missing)[0], labels))
        model.final_steps = finals
    model.ignored |= set(meta.get("ignore", []))
    if "abandoned_after" in meta:
        model.abandoned_after = parse_duration(meta["abandoned_after"], {**where, "table": "model"})
    for source, task in data.get("mapping", {}).items():
        if task not in labels:
            raise ModelError(f"[mapping] maps {source!r} to {task!r}, which is not a model task",
                             where={**where, "table": "mapping"}, hint=_suggest(task, labels))
        model.activity_map[str(source)] = str(task)
    for i, spec in enumerate(data.get("allow", []), start=1):
        w = {**where, "table": f"allow #{i}"}
        dev = spec.get("type")
        if dev not in DEVIATION_TYPES:
            raise ModelError(f"allowlist entry {i} has type {dev!r}", where=w, hint=f"use one of {', '.join(DEVIATION_TYPES)}")
        model.allowlist.append(AllowedDeviation(dev, spec.get("step"), spec.get("reason")))
    model.annotations_text = text
    model.annotations_path = path
    return model


def _suggest(name: str, labels: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(labels), n=3, cutoff=0.5)
    if close:
        return f"did you mean {', '.join(repr(c) for c in close)}?"
    return f"model steps are: {', '.join(sorted(labels))}"
