"""processlens dashboard entry point: ``streamlit run dashboard/app.py``.

Signs the visitor in (when a login is configured), draws the navigation grouped by who uses
each page, the global filters, and runs the selected page.
"""

from __future__ import annotations

import logging

import streamlit as st

st.set_page_config(page_title="processlens", page_icon=":material/insights:", layout="wide",
                   initial_sidebar_state="expanded")

from dashboard import auth  # noqa: E402
from dashboard.components import filter_bar, nav  # noqa: E402
from dashboard.views import PAGES, PLOTLY_TITLES, early_questions, open_pair_indexes  # noqa: E402

try:
    user = auth.login_gate()
except Exception as exc:  # noqa: BLE001 - a broken auth config must say what to fix, not crash
    message = getattr(exc, "message", str(exc))
    hint = getattr(exc, "hint", None)
    st.error(f"The dashboard cannot start: {message}" + (f"\n\n**What to do:** {hint}" if hint else ""))
    st.stop()

sections: dict[str, list] = {}
for spec in PAGES:
    if not user.can(spec.permission):
        continue
    sections.setdefault(spec.section, []).append(
        st.Page(spec.path, title=spec.title, icon=spec.icon, url_path=spec.url_path, default=spec.default))

page = st.navigation(sections, expanded=True)

with st.sidebar:
    st.caption(f"Signed in as **{user.display or user.name}** ({user.role})")
    if auth.auth_config(__import__("dashboard.data", fromlist=["settings"]).settings())["mode"] != "none":
        if st.button("Sign out", icon=":material/logout:"):
            auth.logout()

try:
    import time as _time

    from dashboard import data as _data

    _t0 = _time.perf_counter()
    nav.warm_up()
    _data.warm_pair_indexes(open_pair_indexes(page.title, st.session_state))
    if page.title in PLOTLY_TITLES:
        nav.load_plotly_now()
    else:
        nav.preload_plotly()
    filter_bar.render(early=early_questions(page.title, st.session_state))
    _data.timing("filter bar", _t0)
    try:
        page.run()
    finally:
        filter_bar.finish()  # the variant picker, whose list computed while the page ran
    _data.timing(f"page {page.title}", _t0)
except Exception as exc:  # noqa: BLE001 - users get a message, the server log gets the traceback
    logging.getLogger("processlens.dashboard").exception("page %s failed", page.title)
    message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    hint = getattr(exc, "hint", None) or ("reload the page; if it happens again, the server log has the details "
                                          "for a bug report")
    st.error(f"**This page hit a problem:** {message}\n\n**What to do:** {hint}", icon=":material/error:")
