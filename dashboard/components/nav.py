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


def _plotly_bundle() -> str | None:
    """File name of Streamlit's lazily loaded Plotly front-end bundle (it carries a content hash)."""
    from pathlib import Path

    folder = Path(st.__file__).parent / "static" / "static" / "js"
    found = sorted(folder.glob("PlotlyChart.*.js"))
    return found[0].name if found else None


_PRELOAD_JS = """<script>
(() => {{
  if (window.__plPlotlyPreload) return;
  window.__plPlotlyPreload = true;
  // Once the page is drawn and nobody clicked or typed for a moment: the user reads, and the
  // bundle's evaluation (which blocks the page) is over before the next click, as a rule.
  let quietSince = performance.now();
  for (const ev of ["pointerdown", "keydown", "wheel"]) addEventListener(ev, () => {{ quietSince = performance.now(); }}, true);
  const timer = setInterval(() => {{
    const state = document.querySelector('[data-test-script-state]');
    const busy = (state && state.getAttribute('data-test-script-state') === 'running')
      || document.querySelector('[data-testid=stSkeleton]');  // a chart of the page is still loading
    if (busy) {{ quietSince = performance.now(); return; }}
    if (performance.now() - quietSince < {quiet}) return;
    clearInterval(timer);
    const s = document.querySelector('script[src*="/static/js/index."]');
    if (s) import(new URL({name!r}, s.src).href).catch(() => {{}});
  }}, 250);
}})();
</script>"""


_EAGER_JS = """<script>
(() => {{
  if (window.__plPlotlyEager) return;
  window.__plPlotlyEager = true;
  const s = document.querySelector('script[src*="/static/js/index."]');
  if (s) import(new URL({name!r}, s.src).href).catch(() => {{}});
}})();
</script>"""


def load_plotly_now() -> None:
    """Start loading Plotly's front-end bundle in the browser now, before this page's queries run.

    Called first on a page with Plotly charts: the browser fetches and evaluates the bundle while
    the server computes the page, instead of after the first chart arrived (about 1.3 s later on
    2 cores). Once per session; a bundle already loaded makes it a no-op.
    """
    name = _plotly_bundle()
    if name is None or st.session_state.get("_plotly_eager"):
        return
    st.session_state["_plotly_eager"] = True
    with st.sidebar:
        st.html(_EAGER_JS.format(name=name), unsafe_allow_javascript=True)


def preload_plotly(quiet_ms: int = 300) -> None:
    """Load Plotly's front-end bundle in the background of a browser session, once, while it is idle.

    Streamlit fetches and evaluates that 4.7 MB bundle with the first Plotly chart of a session,
    which takes 1.3–2 s on a 2-core machine and blocks the page meanwhile. Done once the landing
    page is drawn and ``quiet_ms`` passed without a script run, click or key press, it runs while
    the user reads the landing page, and the pages with Plotly charts opened later do not wait for
    it. (Waiting for 2 s of quiet instead made a click after 2–3.5 s on the landing page, the
    usual moment, wait for the evaluation.) The browser's module map keeps one copy, so the chart's
    own lazy import finds it loaded.
    """
    name = _plotly_bundle()
    if name is None or st.session_state.get("_plotly_preloaded"):
        return
    st.session_state["_plotly_preloaded"] = True
    with st.sidebar:
        st.html(_PRELOAD_JS.format(name=name, quiet=int(quiet_ms)), unsafe_allow_javascript=True)
