"""One module per page; :data:`PAGES` lists them with their place in the navigation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: A page's main question: (query ref, keyword arguments), asked with the page's filter. The
#: router starts a page's main questions as soon as the filter is known (``PageSpec.early``), so
#: they compute while the filter bar and the page's header draw; the page asks the same ones.
Question = tuple[str, tuple[tuple[str, Any], ...]]
PROCESS_MAP: Question = ("dashboard.engines:process_map", ())
MAP_VARIANTS: Question = ("top_variants", (("top", 50),))
#: Bottlenecks' tabs and the table (``queries.bottleneck_waits`` part) each shows
BOTTLENECK_TABS = {"By hand-off": "handoffs", "By activity and week": "weeks", "By resource": "resources"}
BOTTLENECK_TAB_KEY = "bn_tab"


def bottleneck_waits(part: str) -> Question:
    """The question behind one Bottlenecks tab."""
    return ("bottleneck_waits", (("handoff_top", 30), ("activity_top", 15), ("resource_top", 30), ("parts", (part,))))


def bottlenecks_early(state: Mapping[str, Any]) -> tuple[Question, ...]:
    """The open Bottlenecks tab's question (the first tab's before any was picked)."""
    return (bottleneck_waits(BOTTLENECK_TABS.get(state.get(BOTTLENECK_TAB_KEY), "handoffs")),)


#: Process map's tabs and the questions each asks
PROCESS_MAP_TABS: dict[str, tuple[Question, ...]] = {
    "Map": (PROCESS_MAP,), "Variants": (MAP_VARIANTS,), "Reference model": (PROCESS_MAP,), "Discover a model": ()}
PROCESS_MAP_TAB_KEY = "pm_tab"


def process_map_early(state: Mapping[str, Any]) -> tuple[Question, ...]:
    """The open Process map tab's questions (the map's before any tab was picked)."""
    return PROCESS_MAP_TABS.get(state.get(PROCESS_MAP_TAB_KEY), (PROCESS_MAP,))


@dataclass(frozen=True)
class PageSpec:
    path: str  # relative to dashboard/app.py
    title: str
    icon: str
    url_path: str
    section: str
    permission: str = "read"
    default: bool = False
    plotly: bool = False  # draws Plotly charts: its browser side needs Plotly's front-end bundle
    # main questions, started before the page runs; or a function of the session state giving them
    # (a page whose tabs ask different questions starts the open tab's)
    early: tuple[Question, ...] | Callable[[Mapping[str, Any]], tuple[Question, ...]] = ()


PAGES = [
    PageSpec("views/health.py", "Health", ":material/monitor_heart:", "health", "Leadership", default=True),
    PageSpec("views/stuck.py", "Stuck work", ":material/pending_actions:", "stuck", "Operations"),
    PageSpec("views/case.py", "Case", ":material/receipt_long:", "case", "Operations", plotly=True),
    PageSpec("views/actions.py", "Actions", ":material/bolt:", "actions", "Operations"),
    PageSpec("views/process_map.py", "Process map", ":material/account_tree:", "process-map", "Analysis",
             early=process_map_early),
    PageSpec("views/conformance.py", "Conformance & exceptions", ":material/rule:", "conformance", "Analysis", plotly=True),
    PageSpec("views/bottlenecks.py", "Bottlenecks", ":material/hourglass_bottom:", "bottlenecks", "Analysis", plotly=True,
             early=bottlenecks_early),
    PageSpec("views/data_sources.py", "Data", ":material/database:", "data", "Admin"),
]

#: url_path -> file, for links between pages.
BY_URL = {p.url_path: p.path for p in PAGES}
#: titles of the pages that draw Plotly charts
PLOTLY_TITLES = {p.title for p in PAGES if p.plotly}
#: title -> the page's main questions (see PageSpec.early)
EARLY = {p.title: p.early for p in PAGES if p.early}


def early_questions(title: str, state: Mapping[str, Any]) -> tuple[Question, ...]:
    """The main questions of page ``title`` in a session with this state."""
    early = EARLY.get(title, ())
    return early(state) if callable(early) else early
#: file -> title
TITLES_BY_PATH = {p.path: p.title for p in PAGES}
