"""Page frame: titles, captions, notices, empty states and error messages (never tracebacks)."""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from dashboard import data
from dashboard.components import fmt

INGEST_HELP = """\
**The store has no events yet.** Load an event log to see your process:

```bash
processlens ingest file orders.csv          # CSV, Parquet, XES/.xes.gz or OCEL 2.0; columns are guessed
processlens ingest run                      # or run the jobs declared in processlens.toml
processlens demo --no-dashboard             # or build the order-to-cash demo world
```
Then reload this page. The **Data** page shows what was loaded, what was rejected and why.
"""

MODEL_HELP = """\
**No reference model is configured.** Stuck work, conformance and exceptions compare cases with
the workflow the business expects. Add one to `processlens.toml`:

```toml
[models.order_to_cash]
path = "order-to-cash.bpmn"          # BPMN 2.0, PNML, or the short text format
annotations = "order-to-cash.toml"   # owners, SLAs, exception paths
```
Check it with `processlens model validate` and reload this page.
"""


def header(title: str, purpose: str, flt=None) -> None:
    """The page title, one line saying what the page is for, and the scope it shows."""
    st.title(title)
    scope = f"Cases: {flt.describe()}" if flt is not None else ""
    try:
        as_of = fmt.when(data.now())
    except data.NotConfigured as exc:
        as_of = f"now (ignored invalid setting: {exc.message})"
    st.caption(" · ".join(x for x in (purpose, scope, f"as of {as_of}") if x))
    busy_notice()


def busy_notice() -> None:
    if st.session_state.pop("_store_busy", False):
        st.info("The store is busy with an ingest or the coordinator; showing the numbers from just before. "
                "They refresh by themselves once it is free.", icon=":material/hourglass_top:")


def outcome(result: data.Outcome, what: str) -> Any:
    """Show why ``what`` is unavailable, or return its value."""
    if result.ok:
        return result.value
    hint = f"\n\n**What to do:** {result.hint}" if result.hint else ""
    if result.kind == "missing":
        st.info(f"**{what}** is not available yet: {result.message}{hint}", icon=":material/construction:")
    elif result.kind == "unconfigured":
        if "model" in result.message.lower():
            st.info(MODEL_HELP, icon=":material/account_tree:")
        else:
            st.info(f"**{what}**: {result.message}{hint}", icon=":material/settings:")
    elif result.kind == "busy":
        st.warning(f"**{what}**: {result.message}{hint}", icon=":material/hourglass_top:")
    else:
        st.error(f"**{what}** could not be computed: {result.message}{hint}", icon=":material/error:")
    return None


def require_events(overview: dict[str, Any] | None) -> bool:
    """Show how to load data and return False when the store (or the filtered view) is empty."""
    if overview is None:
        return False
    if not overview.get("events"):
        if overview.get("filtered"):
            st.info("No case matches the filters in the sidebar. Widen the time range or clear a filter.",
                    icon=":material/filter_alt_off:")
        else:
            st.info(INGEST_HELP, icon=":material/upload_file:")
        return False
    return True


def analysis_page(title: str, purpose: str, narrows: bool = False) -> tuple[Any, dict[str, Any]]:
    """The frame every analysis page starts with: the global filters, the header, and the store's
    overview; stops the page with the how-to-ingest empty state when there are no events.

    ``narrows``: the page narrows all-cases engine results to the filter, so the filter's case
    keys are selected in the background meanwhile.
    """
    from dashboard.components import filter_bar

    flt = filter_bar.current()
    if narrows:
        data.prefetch_selection(flt)
    header(title, purpose, flt)
    ov = outcome(data.attempt("overview", flt), "Overview")
    if ov is not None:
        ov["filtered"] = not flt.is_empty
    if not require_events(ov):
        st.stop()
    return flt, ov


def tabs(spec) -> list[Any]:
    """The tabs of ``spec`` (a ``dashboard.views.PageTabs``), whose content runs only while the tab
    is open (``tab.open``): a filter change then computes and draws one tab instead of all of them
    (each Plotly chart costs the browser 0.1-0.3 s to draw); picking another tab reruns the page
    for it. The selection is kept in the session under ``spec.key``; the router starts the open
    tab's questions early."""
    return list(st.tabs(list(spec.questions), key=spec.key, on_change="rerun"))


#: seconds after a page's script ends before its closed tabs' questions start computing: the browser
#: draws the open tab meanwhile (0.2-0.6 s at 10M events on two cores), without DuckDB beside it
CLOSED_TABS_DELAY = float(os.environ.get("PROCESSLENS_DASHBOARD_CLOSED_TABS_DELAY", "1.0"))


def warm_closed_tabs(spec, drawn: list[Any], flt) -> None:
    """Compute the questions of the closed tabs in the background, once the open one is drawn
    (:data:`CLOSED_TABS_DELAY`), so that picking another tab finds its answers ready."""
    asked = {q for tab, questions in zip(drawn, spec.questions.values(), strict=True) if tab.open for q in questions}
    for ref, kwargs in dict.fromkeys(q for questions in spec.questions.values() for q in questions if q not in asked):
        data.prefetch_later(CLOSED_TABS_DELAY, ref, flt, **dict(kwargs))
