"""Who belongs to which team: a configured resource -> team map, or an event attribute."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pandas as pd

from analytics.filters import event_attr_expr
from processlens.errors import ConfigError

TEAM_TABLE = "_pl_team_map"


@dataclass
class Teams:
    """``mapping`` resource -> team wins; else ``attribute`` names an event attribute holding the team."""

    mapping: dict[str, str] = field(default_factory=dict)
    attribute: str | None = None

    @classmethod
    def from_settings(cls, settings) -> Teams:
        """``[analytics.teams]`` resource = "team" entries and/or ``[analytics] team_attribute = "org:group"``."""
        sec = settings.raw.get("analytics", {}) if settings is not None else {}
        teams = sec.get("teams", {})
        if not isinstance(teams, dict) or not all(isinstance(v, str) for v in teams.values()):
            raise ConfigError("[analytics.teams] must map resource names to team names",
                              where={"field": "analytics.teams"}, hint='write e.g. alice = "Finance"')
        return cls(dict(teams), sec.get("team_attribute"))

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        con.register(TEAM_TABLE, pd.DataFrame({"resource": list(self.mapping), "team": list(self.mapping.values())},
                                              dtype=object))

    def team_sql(self, resource: str, event_alias: str | None = None) -> str:
        """SQL for the team of a resource expression (register first when a mapping is used)."""
        parts = []
        if self.mapping:
            parts.append(f"(SELECT team FROM {TEAM_TABLE} t WHERE t.resource = {resource})")
        if self.attribute and event_alias:
            parts.append(event_attr_expr(event_alias, self.attribute))
        parts.append("NULL")
        return f"coalesce({', '.join(parts)})" if len(parts) > 1 else "CAST(NULL AS VARCHAR)"
