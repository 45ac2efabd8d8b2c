"""Links between pages and common page context (filter, clock, config path)."""

from __future__ import annotations

import streamlit as st

from dashboard import data


def open_case(case_id: str) -> None:
    """Go to the Case page showing ``case_id`` (kept in the URL as ``?case=``)."""
    st.session_state["case_id"] = str(case_id)
    st.switch_page("views/case.py", query_params={"case": str(case_id)})


def config() -> str | None:
    cp = data.settings().config_path
    return str(cp) if cp else None


def selected_rows(event) -> list[int]:
    """Row positions selected in a ``st.dataframe(on_select="rerun")``."""
    try:
        return list(event.selection.rows)
    except AttributeError:
        return []


def warm_up() -> None:
    """Start the slow, model-based results (stuck, exceptions, conformance) in the background.

    They are computed once per data version for all cases (pages narrow them to the filter), so
    whichever page asks first finds them computed or in progress rather than starting from zero.
    Failures are not raised here: the page that shows the result reports them.
    """
    try:
        now = data.now().isoformat()
        cfg = config()
        data.prefetch("dashboard.engines:end_activities", config=cfg)
        data.prefetch("dashboard.engines:stuck", now=now, config=cfg)
        data.prefetch("dashboard.engines:conformance", config=cfg)
        data.prefetch("dashboard.engines:exceptions", now=now, config=cfg)
    except Exception:  # noqa: BLE001 - a warm-up must never break a page
        pass
