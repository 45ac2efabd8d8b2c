"""processlens dashboard entry point: ``streamlit run dashboard/app.py``.

Signs the visitor in (when a login is configured), draws the navigation grouped by who uses
each page, the global filters, and runs the selected page.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="processlens", page_icon=":material/insights:", layout="wide",
                   initial_sidebar_state="expanded")

from dashboard import auth  # noqa: E402
from dashboard.components import filter_bar  # noqa: E402
from dashboard.pages import PAGES  # noqa: E402

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

filter_bar.render()
page.run()
