"""As-is process analytics in DuckDB SQL: maps, variants, cases, activities, bottlenecks, KPIs, resources.

Every function takes an open store connection and an optional :class:`Filter`; durations are in
seconds of calendar time, or of working time when a :class:`BusinessCalendar` is passed. See
docs/analytics.md for what each number means.
"""

from analytics.activities import activities
from analytics.bottlenecks import bottlenecks
from analytics.calendar import BusinessCalendar
from analytics.cases import CaseStatusRule, cases
from analytics.dfg import DFGResult, dfg
from analytics.filters import Filter, FilterError
from analytics.incremental import is_fresh, rebuild, refresh
from analytics.kpis import kpis
from analytics.render import to_dot
from analytics.resources import ResourcesResult, resources
from analytics.simplify import map_for, simplify
from analytics.teams import Teams
from analytics.variants import variants


def discover(con, flt=None, noise: float = 0.2, miner: str = "variants"):
    """Inductive-miner model of the filtered log (see :mod:`analytics.pm4py_bridge`); imports pm4py lazily."""
    from analytics.pm4py_bridge import discover as _discover

    return _discover(con, flt, noise, miner)


__all__ = [
    "BusinessCalendar", "CaseStatusRule", "DFGResult", "Filter", "FilterError", "ResourcesResult", "Teams",
    "activities", "bottlenecks", "cases", "dfg", "discover", "is_fresh", "kpis", "map_for", "rebuild", "refresh",
    "resources", "simplify", "to_dot", "variants",
]
