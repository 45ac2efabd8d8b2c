"""The global filters in the sidebar, kept in the URL so a view can be bookmarked and shared.

The session holds the filter; every run writes it to ``st.query_params``. A URL that differs
from what this session last wrote (a first visit, a bookmark, a link from a colleague) replaces
the session's filter. Page switches drop the query string, so an empty one keeps the filter.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import streamlit as st

from dashboard import data
from dashboard.filters import FilterError, ViewFilter

KEYS = ("from", "to", "source", "attr", "variant")
OTHER_KEYS = ("case",)
WIDGET_KEYS = ("flt_range", "flt_attr_name", "flt_attr_values", "flt_variant")  # page parameters that survive filter rewrites


def _url_params() -> dict[str, list[str]]:
    return {k: st.query_params.get_all(k) for k in KEYS if st.query_params.get_all(k)}


def _normalise(params: dict) -> dict[str, list[str]]:
    return {k: (v if isinstance(v, list) else [v]) for k, v in params.items()}


def _adopt(flt: ViewFilter, only_missing: bool = False) -> None:
    """Put ``flt`` into the widgets' session state (only into keys Streamlit dropped, if ``only_missing``)."""
    name, values = (flt.attrs[0] if flt.attrs else ("", ()))
    state = {
        "flt_range": tuple(d for d in (flt.start, flt.end) if d) if (flt.start and flt.end) else (),
        "flt_sources": list(flt.sources),
        "flt_attr_name": name,
        "flt_attr_values": list(values),
        "flt_attr_extra": flt.attrs[1:],
        "flt_variant": flt.variant or "",
        "_flt_open_bounds": (flt.start if not flt.end else None, flt.end if not flt.start else None),
    }
    for key, value in state.items():
        if not only_missing or key not in st.session_state:
            st.session_state[key] = value


def _clear() -> None:
    _adopt(ViewFilter())


def current() -> ViewFilter:
    """The filter of this session (after :func:`render` ran in this script run)."""
    return st.session_state.get("_flt", ViewFilter())


def render(early: tuple[tuple[str, tuple], ...] = ()) -> ViewFilter:
    """Draw the filters in the sidebar, sync them with the URL and return the current filter.

    ``early``: the page's main questions ``(ref, kwargs)``, started in the background with the
    filter as soon as it is known, so they compute while the rest of the bar draws."""
    url = _url_params()
    first = "_flt_written" not in st.session_state
    if first or (url and url != st.session_state.get("_flt_written")):
        try:
            _adopt(ViewFilter.from_query_params(url))
        except FilterError as exc:
            st.sidebar.warning(f"{exc.message}. {exc.hint or ''}")
            _adopt(ViewFilter())
    else:
        # Streamlit drops the state of widgets it did not draw (e.g. around a page switch): refill
        # what is missing from our own copy of the filter, never overwriting a fresh change.
        _adopt(st.session_state.get("_flt", ViewFilter()), only_missing=True)

    bounds = data.attempt("time_bounds")
    lo, hi = bounds.value if bounds.ok and bounds.value else (None, None)
    sb = st.sidebar
    sb.markdown("#### Filters")
    if lo is None:
        sb.caption("Filters appear once the store has events.")
        flt = ViewFilter()
    else:
        lo_d, hi_d = lo.date(), hi.date()
        rng = st.session_state.get("flt_range", ())
        if rng and (rng[0] < lo_d - timedelta(days=3650) or len(rng) == 2 and rng[1] > hi_d + timedelta(days=3650)):
            st.session_state["flt_range"] = ()
        rng = sb.date_input("Time range (cases active in)", key="flt_range", min_value=min(lo_d, *(rng[:1] or [lo_d])),
                            max_value=max(hi_d, *(rng[1:2] or [hi_d])), help="Keeps the cases whose first-to-last "
                            "event span overlaps this range (UTC days).", format="YYYY-MM-DD")
        start, end = (rng[0], rng[1]) if isinstance(rng, tuple | list) and len(rng) == 2 else (None, None)
        if start is None:
            open_start, open_end = st.session_state.get("_flt_open_bounds", (None, None))
            start, end = open_start, open_end
        sources = data.attempt("source_names").value or []
        if len(sources) > 1 or st.session_state.get("flt_sources"):
            st.session_state["flt_sources"] = [s for s in st.session_state.get("flt_sources", []) if s in sources]
            sel_sources = sb.multiselect("Source systems", sources, key="flt_sources",
                                         help="Keeps the cases with at least one event from these systems.")
        else:
            sel_sources = []
        attrs_df = data.attempt("case_attribute_names").value
        names = [""] + (list(attrs_df["name"]) if attrs_df is not None and len(attrs_df) else [])
        if st.session_state.get("flt_attr_name", "") not in names:
            names.append(st.session_state.get("flt_attr_name", ""))
        attr_name = sb.selectbox("Case attribute", names, key="flt_attr_name",
                                 format_func=lambda n: n or "(any)") if len(names) > 1 else ""
        attrs: list[tuple[str, tuple[str, ...]]] = []
        if attr_name:
            values = data.attempt("case_attribute_values", name=attr_name).value or []
            chosen = [v for v in st.session_state.get("flt_attr_values", [])]
            options = list(dict.fromkeys(values + chosen))
            sel = sb.multiselect(f"{attr_name} is", options, key="flt_attr_values")
            if sel:
                attrs.append((attr_name, tuple(sel)))
        attrs.extend(st.session_state.get("flt_attr_extra", ()))
        base = ViewFilter(start=start, end=end, sources=tuple(sel_sources), attrs=tuple(attrs))
        full = replace(base, variant=st.session_state.get("flt_variant") or None)
        if not full.is_empty:
            # every analysis page starts with the overview of the filtered cases: compute it meanwhile
            data.prefetch("overview", full)
        for ref, kwargs in early:
            data.prefetch(ref, full, **dict(kwargs))  # the page asks with this filter, empty or not
        # the variant picker's list is the one question of the bar that scans the case summaries: it
        # computes in the background and the picker is drawn in its place after the page (finish)
        data.prefetch("top_variants", base, top=20, times=False)
        st.session_state["_flt_picker"] = (sb.empty(), base)
        flt = full
        if not flt.is_empty:
            sb.button("Clear filters", on_click=_clear, icon=":material/filter_alt_off:")

    params = _normalise(flt.to_query_params())
    if params != _url_params():
        keep = {k: st.query_params.get_all(k) for k in OTHER_KEYS if st.query_params.get_all(k)}
        st.query_params.from_dict({**keep, **params})
    st.session_state["_flt_written"] = params
    st.session_state["_flt"] = flt
    return flt


def finish() -> None:
    """Draw the variant picker in the place :func:`render` kept for it (call after the page ran).

    Its list (the 20 most frequent variants of the other filters' cases) is computed meanwhile,
    so a filter change does not wait for it before the page's own questions.
    """
    pending = st.session_state.pop("_flt_picker", None)
    if pending is None:
        return
    slot, base = pending
    variants = data.attempt("top_variants", base, top=20, times=False).value
    options = [""]
    labels = {"": "(any)"}
    if variants is not None:
        for i, row in enumerate(variants.itertuples(), start=1):
            options.append(row.variant_id)
            labels[row.variant_id] = f"#{i} · {row.cases:,} cases · {' → '.join(row.activities[:4])}" + (
                " → …" if len(row.activities) > 4 else "")
    chosen_v = st.session_state.get("flt_variant", "")
    if chosen_v and chosen_v not in options:
        options.append(chosen_v)
        labels[chosen_v] = f"variant {chosen_v}"
    slot.selectbox("Variant", options, key="flt_variant", format_func=lambda v: labels.get(v, v))


def previous_period(start: date, end: date) -> tuple[date, date]:
    """The period of the same length right before ``start``..``end`` (inclusive days)."""
    length = (end - start) + timedelta(days=1)
    return start - length, start - timedelta(days=1)
