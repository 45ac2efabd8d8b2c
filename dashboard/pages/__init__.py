"""One module per page; :data:`PAGES` lists them with their place in the navigation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    path: str  # relative to dashboard/app.py
    title: str
    icon: str
    url_path: str
    section: str
    permission: str = "read"
    default: bool = False


PAGES = [
    PageSpec("pages/health.py", "Health", ":material/monitor_heart:", "health", "Leadership", default=True),
    PageSpec("pages/stuck.py", "Stuck work", ":material/pending_actions:", "stuck", "Operations"),
    PageSpec("pages/case.py", "Case", ":material/receipt_long:", "case", "Operations"),
    PageSpec("pages/actions.py", "Actions", ":material/bolt:", "actions", "Operations"),
    PageSpec("pages/process_map.py", "Process map", ":material/account_tree:", "process-map", "Analysis"),
    PageSpec("pages/conformance.py", "Conformance & exceptions", ":material/rule:", "conformance", "Analysis"),
    PageSpec("pages/bottlenecks.py", "Bottlenecks", ":material/hourglass_bottom:", "bottlenecks", "Analysis"),
    PageSpec("pages/data_sources.py", "Data", ":material/database:", "data", "Admin"),
]

#: url_path -> file, for links between pages.
BY_URL = {p.url_path: p.path for p in PAGES}
