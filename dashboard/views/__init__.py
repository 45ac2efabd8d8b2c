"""One module per page; :data:`PAGES` lists them with their place in the navigation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: A page's main question: (query ref, keyword arguments), asked with the page's filter. The
#: router starts the open tab's main questions as soon as the filter is known (``PageTabs``), so
#: they compute while the filter bar and the page's header draw; the page asks the same ones.
Question = tuple[str, tuple[tuple[str, Any], ...]]
PROCESS_MAP: Question = ("dashboard.engines:process_map", ())
MAP_VARIANTS: Question = ("top_variants", (("top", 50),))


def bottleneck_waits(part: str) -> Question:
    """The question behind one Bottlenecks tab: its table (a ``queries.bottleneck_waits`` part)."""
    return ("bottleneck_waits", (("handoff_top", 30), ("activity_top", 15), ("resource_top", 30), ("parts", (part,))))


@dataclass(frozen=True)
class PageTabs:
    """A page's lazy tabs (``layout.tabs``): the session-state key of the open one, and the
    questions each tab asks, in tab order. The first tab is open until another is picked."""

    key: str
    questions: dict[str, tuple[Question, ...]]
    #: the analytics.pair_index groupings each tab's filtered questions read (tabs not named: the page's)
    pair_indexes: dict[str, tuple[str, ...]] | None = None

    def open_tab(self, state: Mapping[str, Any]) -> str:
        """The label of the tab open in a session with this state."""
        label = state.get(self.key)
        return label if label in self.questions else next(iter(self.questions))

    def open_questions(self, state: Mapping[str, Any]) -> tuple[Question, ...]:
        """The questions of the tab open in a session with this state."""
        return self.questions[self.open_tab(state)]


BOTTLENECK_TABS = PageTabs("bn_tab", {"By hand-off": (bottleneck_waits("handoffs"),),
                                      "By activity and week": (bottleneck_waits("weeks"),),
                                      "By resource": (bottleneck_waits("resources"),)},
                           pair_indexes={"By hand-off": ("handoffs",), "By activity and week": ("weeks",),
                                         "By resource": ("resources",)})
PROCESS_MAP_TABS = PageTabs("pm_tab", {"Map": (PROCESS_MAP,), "Variants": (MAP_VARIANTS,),
                                       "Reference model": (PROCESS_MAP,), "Discover a model": ()})
CONFORMANCE_TABS = PageTabs("conf_tab", {"Deviations": (), "Exceptions": ()})


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
    tabs: PageTabs | None = None  # lazy tabs: the open tab's questions are started before the page runs
    pair_indexes: tuple[str, ...] = ()  # analytics.pair_index groupings its filtered questions read


PAGES = [
    PageSpec("views/health.py", "Health", ":material/monitor_heart:", "health", "Leadership", default=True),
    PageSpec("views/stuck.py", "Stuck work", ":material/pending_actions:", "stuck", "Operations"),
    PageSpec("views/case.py", "Case", ":material/receipt_long:", "case", "Operations", plotly=True),
    PageSpec("views/actions.py", "Actions", ":material/bolt:", "actions", "Operations"),
    PageSpec("views/process_map.py", "Process map", ":material/account_tree:", "process-map", "Analysis",
             tabs=PROCESS_MAP_TABS, pair_indexes=("edge",)),
    PageSpec("views/conformance.py", "Conformance & exceptions", ":material/rule:", "conformance", "Analysis", plotly=True,
             tabs=CONFORMANCE_TABS),
    PageSpec("views/bottlenecks.py", "Bottlenecks", ":material/hourglass_bottom:", "bottlenecks", "Analysis", plotly=True,
             tabs=BOTTLENECK_TABS, pair_indexes=("handoffs", "weeks", "resources")),
    PageSpec("views/data_sources.py", "Data", ":material/database:", "data", "Admin"),
]

#: url_path -> file, for links between pages.
BY_URL = {p.url_path: p.path for p in PAGES}
#: titles of the pages that draw Plotly charts
PLOTLY_TITLES = {p.title for p in PAGES if p.plotly}
#: title -> the page
BY_TITLE = {p.title: p for p in PAGES}
#: file -> title
TITLES_BY_PATH = {p.path: p.title for p in PAGES}


def open_pair_indexes(title: str, state: Mapping[str, Any]) -> tuple[str, ...]:
    """The pair indexes page ``title`` reads in a session with this state: its open tab's, if its tabs
    name them (each index costs 1.3-1.9 s to build at 10M events, which a filter change right after
    would share the cores with), else the page's."""
    spec = BY_TITLE.get(title)
    if spec is None:
        return ()
    if spec.tabs is not None and spec.tabs.pair_indexes is not None:
        return spec.tabs.pair_indexes.get(spec.tabs.open_tab(state), spec.pair_indexes)
    return spec.pair_indexes


def early_questions(title: str, state: Mapping[str, Any]) -> tuple[Question, ...]:
    """The main questions of page ``title`` in a session with this state: its open tab's."""
    spec = BY_TITLE.get(title)
    return spec.tabs.open_questions(state) if spec is not None and spec.tabs else ()
