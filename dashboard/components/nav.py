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
