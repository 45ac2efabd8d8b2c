"""How a source's columns map onto events: case, activity, timestamp, resource and friends."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from processlens.errors import ConfigError


def check_timezone(tz: str, where: str = "mapping") -> None:
    """Refuse a time zone name that is not in the IANA database (e.g. a typo like Europe/Berln)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {tz!r} in {where}",
                          hint="use an IANA name such as UTC, Europe/Berlin or America/New_York") from exc


@dataclass
class Correlation:
    """Join records of one system to cases of another through a shared key.

    A help-desk ticket event carries ``ticket_id``; the ticket's first event also names the order
    (the case). Records that have both register ``key -> case``; records with only the key are
    looked up, and wait in ``pending_events`` until the link arrives.
    """

    key: str  # column in this source holding the correlation value (e.g. ticket_id)
    name: str = ""  # namespace of the key (default: the column name)

    def __post_init__(self) -> None:
        self.name = self.name or self.key


@dataclass
class Mapping:
    activity: str
    timestamp: str
    case: str | None = None
    start_timestamp: str | None = None
    resource: str | None = None
    lifecycle: str | None = None
    record_id: str | None = None  # a column that identifies the record in its source
    case_attributes: list[str] | None = None  # default: columns named case:*
    timestamp_format: str | None = None  # strptime format; detected when absent
    timezone: str = "UTC"  # zone of naive timestamps in this source
    activity_prefix: str = ""  # e.g. "Warehouse: " to keep systems apart
    correlation: Correlation | None = None
    drop: list[str] = field(default_factory=list)  # columns not to keep as attributes

    @property
    def key_columns(self) -> list[str]:
        cols = [self.case, self.activity, self.timestamp, self.start_timestamp, self.resource, self.lifecycle, self.record_id]
        if self.correlation:
            cols.append(self.correlation.key)
        return [c for c in cols if c]

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "mapping") -> Mapping:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(
                f"unknown key(s) {sorted(unknown)} in {where}",
                hint=f"valid keys are {sorted(known)}",
            )
        for required in ("activity", "timestamp"):
            if not data.get(required):
                raise ConfigError(f"{where} needs '{required}' (the column that holds it)", hint="add it to the mapping")
        for key in ("case_attributes", "drop"):
            value = data.get(key)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise ConfigError(f"'{key}' in {where} must be a list of column names, not {value!r}",
                                  hint=f'write it like {key} = ["customer", "region"]')
        for key in ("activity", "timestamp", "case", "start_timestamp", "resource", "lifecycle", "record_id",
                    "timestamp_format", "timezone", "activity_prefix"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ConfigError(f"'{key}' in {where} must be a string (a column name), not {data[key]!r}",
                                  hint=f'write it like {key} = "column"')
        if data.get("timezone"):
            check_timezone(data["timezone"], where)
        data = dict(data)
        corr = data.pop("correlation", None)
        if isinstance(corr, str):
            corr = Correlation(key=corr)
        elif isinstance(corr, dict):
            bad = set(corr) - {"key", "name"}
            if bad or not isinstance(corr.get("key"), str):
                raise ConfigError(f"'correlation' in {where} must be {{ key = \"column\" }} (optionally name = \"...\")",
                                  hint='e.g. correlation = { key = "ticket_id" }')
            corr = Correlation(**corr)
        elif corr is not None:
            raise ConfigError(f"'correlation' in {where} must be a column name or {{ key = \"column\" }}",
                              hint='e.g. correlation = { key = "ticket_id" }')
        mapping = cls(**data, correlation=corr)
        if not mapping.case and not mapping.correlation:
            raise ConfigError(f"{where} needs 'case' or 'correlation'", hint="name the case id column")
        return mapping
