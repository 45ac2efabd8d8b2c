"""Health: how the process is doing, for leadership."""

from __future__ import annotations

import os
from concurrent.futures import wait
from datetime import timedelta

import streamlit as st

from dashboard import data, engines, queries
from dashboard.components import charts, filter_bar, fmt, kpi, layout, nav

DEFAULT_ON_TIME = {"green": 0.9, "red": 0.7}  # used when [dashboard.targets] does not set one
DEFAULT_CONF = {"green": 0.9, "red": 0.75}
#: seconds the page waits for the model-based tiles before drawing them as "computing"
MODEL_WAIT = float(os.environ.get("PROCESSLENS_DASHBOARD_MODEL_WAIT", "1"))

flt = filter_bar.current()
now = data.now()
cfg = data.dashboard_config()
targets = cfg.get("targets", {})
idle_days = float(cfg.get("idle_days", 30))
ends = data.attempt("dashboard.engines:end_activities", config=nav.config()).value
# The period ends with the day of the store's last event (or the filter's range), whatever the other
# filters keep: every view compares the same days, and no question waits for the filtered overview.
bounds = data.attempt("time_bounds").value or (None, None)
start, end = queries.period_bounds(bounds[1], flt, days=int(cfg.get("period_days", 28)))
common = dict(end_activities=ends, idle_days=idle_days, now=now.isoformat())
# After a filter change every query below runs anew: start them all in the background now, so that
# DuckDB computes them beside the overview and while this script draws (each is cached per data
# version and filter).
sla = data.attempt("dashboard.engines:sla_by_activity", config=nav.config())
if not flt.is_empty:
    data.prefetch_selection(flt)  # the model tiles narrow the engine results to these cases first
    data.prefetch("flow_kpis", flt, start=start.isoformat(), end=end.isoformat(), **common)
    if sla.ok and sla.value:
        data.prefetch("on_time_share", flt, start=start.isoformat(), end=end.isoformat(), sla=sla.value, **common)
    data.prefetch("weekly_flow", flt, freq=cfg.get("trend_freq", "week"))
    data.prefetch("open_by", flt, by="last_source", **common)
    data.prefetch("kpi_cases", flt, kind=st.session_state.get("health_cases_kind", "wip") or "wip",
                  start=start.isoformat(), end=end.isoformat(), **common)
# The model-based tiles (stuck, exceptions, conformance) cost seconds on a large store the first
# time per data version: they compute in the background, and the page waits for them only up to
# MODEL_WAIT seconds; after that the tiles say "computing" and a fragment reruns the page once
# they are ready.
model_calls = {"stuck": ("dashboard.engines:stuck", dict(now=now.isoformat(), config=nav.config())),
               "exceptions": ("dashboard.engines:exceptions", dict(now=now.isoformat(), config=nav.config())),
               "conformance": ("dashboard.engines:conformance", dict(config=nav.config()))}
futures = [data.prefetch(ref, **kw) for ref, kw in model_calls.values()]
computing = data.Outcome(kind="busy", message="still computing — the tile fills in by itself in a moment")


def model_tiles(timeout: float) -> tuple:
    """(ready, stuck, exceptions, conformance, stuck count, unhandled count, conformance rate) for the filter,
    waiting up to ``timeout`` seconds for the engines."""
    ready = not wait(futures, timeout=timeout).not_done
    # stuck cases are few and drawn below: narrowed to the filter; exceptions and conformance (a row per
    # exception or case, a million at 10M events) are only counted here, without narrowing their frames
    stuck, exc, conf = (data.attempt_filtered(ref, flt if name == "stuck" else None, **kw) if ready else computing
                        for name, (ref, kw) in model_calls.items())
    n_unhandled = None
    if exc.ok and "handled" in exc.value:
        n_unhandled = data.memo("health.unhandled", flt,
                                lambda: data.count_in_filter(exc.value, flt, engines.unhandled_rows(exc.value)),
                                **model_calls["exceptions"][1])
    conf_rate = None
    if conf.ok:
        def conformance_rate(c: dict) -> float | None:
            pc = c.get("per_case")
            rows = data.rows_in_filter(pc, flt) if not flt.is_empty and pc is not None and "fitting" in pc else None
            if rows is not None:
                return engines.fitting_share(pc, rows)
            return c.get("fitting_cases", 0) / c["cases"] if c.get("cases") else None

        conf_rate = data.memo("health.conformance_rate", flt, lambda: conformance_rate(conf.value),
                              **model_calls["conformance"][1])
    return ready, stuck, exc, conf, (len(stuck.value) if stuck.ok else None), n_unhandled, conf_rate


# Engines already computed (every visit after the first of a data version): narrow them to the filter
# now, while DuckDB answers the questions above, instead of after them.
models = model_tiles(0)
flt, ov = layout.analysis_page("Process health", "How the process is doing against its targets", narrows=True)
k = layout.outcome(data.attempt("flow_kpis", flt, start=start.isoformat(), end=end.isoformat(), **common), "Flow KPIs")
if k is None:
    st.stop()
cur, prev = k["current"], k["previous"]
st.caption(f"Period {start:%Y-%m-%d} to {(end - timedelta(days=1)):%Y-%m-%d}; changes against the "
           f"{(end - start).days} days before. Closed = " + (f"ended in {', '.join(ends)}" if ends else
           f"no event for {idle_days:.0f} days (set [dashboard] end_activities or a reference model to be exact)"))
if not models[0]:  # the first visit of a data version: wait for them a little
    models = model_tiles(MODEL_WAIT)
models_ready, stuck, exc, conf, n_stuck, n_unhandled, conf_rate = models

on_time = {"current": None, "previous": None}
if sla.ok and sla.value:
    on_time = data.attempt("on_time_share", flt, start=start.isoformat(), end=end.isoformat(), sla=sla.value,
                           **common).value or on_time

med_d, prev_med_d = fmt.days(cur["median_seconds"]), fmt.days(prev["median_seconds"])
p90_d, prev_p90_d = fmt.days(cur["p90_seconds"]), fmt.days(prev["p90_seconds"])
row1 = st.columns(4)
with row1[0]:
    kpi.tile("Cases started", fmt.count(cur["started"]), kpi.change(cur["started"], prev["started"]),
             help="Cases whose first event falls in the period")
with row1[1]:
    kpi.tile("Cases completed", fmt.count(cur["completed"]), kpi.change(cur["completed"], prev["completed"]),
             help="Cases closed in the period")
with row1[2]:
    kpi.tile("Median case time", f"{med_d:.1f} d" if med_d is not None else "—",
             kpi.change(med_d, prev_med_d, "d"), lower_is_better=True,
             status=kpi.rag(med_d, targets.get("median_throughput_days")),
             help="First to last event of the cases completed in the period")
with row1[3]:
    kpi.tile("P90 case time", f"{p90_d:.1f} d" if p90_d is not None else "—", kpi.change(p90_d, prev_p90_d, "d"),
             lower_is_better=True, status=kpi.rag(p90_d, targets.get("p90_throughput_days")),
             help="9 in 10 completed cases took at most this long")
row2 = st.columns(5)
with row2[0]:
    kpi.tile("Work in progress", fmt.count(cur["wip"]), kpi.change(cur["wip"], prev["wip"]), lower_is_better=True,
             status=kpi.rag(cur["wip"], targets.get("wip")), help="Cases open at the end of the period")
with row2[1]:
    kpi.tile("On time", fmt.share(on_time["current"]), kpi.change(on_time["current"], on_time["previous"],
             as_percent_points=True), status=kpi.rag(on_time["current"], targets.get("on_time_share", DEFAULT_ON_TIME)),
             help="Completed cases in which no step waited longer than its SLA" if sla.ok else
             f"Not available: {sla.message}")
with row2[2]:
    kpi.tile("Conformance", fmt.share(conf_rate), status=kpi.rag(conf_rate, targets.get("conformance_rate", DEFAULT_CONF)),
             help="Share of cases that fit the reference model" if conf.ok else f"Not available: {conf.message}")
with row2[3]:
    kpi.tile("Stuck cases", fmt.count(n_stuck), lower_is_better=True, status=kpi.rag(n_stuck, targets.get("stuck_cases")),
             help="Open cases waiting longer than their step's SLA or than is normal" if stuck.ok else
             f"Not available: {stuck.message}")
with row2[4]:
    kpi.tile("Unhandled exceptions", fmt.count(n_unhandled), lower_is_better=True,
             status=kpi.rag(n_unhandled, targets.get("unhandled_exceptions")),
             help="Exception events not followed by their handler" if exc.ok else f"Not available: {exc.message}")
if not stuck.ok and stuck.kind in ("unconfigured", "missing"):
    st.caption(f"Stuck cases, exceptions and conformance: {stuck.message}. " + (stuck.hint or ""))
if not models_ready:
    @st.fragment(run_every=1)
    def await_models() -> None:
        """Polls the background computation; reruns the whole page once the model-based results are in."""
        if not wait(futures, timeout=0).not_done:
            st.rerun(scope="app")
        st.caption(":material/hourglass_top: Computing stuck cases, exceptions and conformance for the "
                   "latest data…")

    await_models()

@st.fragment(run_every=int(cfg.get("refresh_seconds", 60)))
def right_now() -> None:
    """The live board: re-reads the store's version every minute and redraws when data changed."""
    st.subheader("Right now")
    live = data.attempt("flow_kpis", flt, start=start.isoformat(), end=end.isoformat(), **common).value or k
    live_stuck = (data.attempt_filtered("dashboard.engines:stuck", flt, now=now.isoformat(), config=nav.config())
                  if models_ready else stuck)
    n_live = len(live_stuck.value) if live_stuck.ok else None
    acts = data.attempt("dashboard.engines:action_status_counts").value or {}
    board = st.columns(4)
    board[0].metric("Waiting", fmt.count(live["open"] - (n_live or 0)), border=True,
                    help="Open cases within their normal time")
    board[1].metric("Blocked (stuck)", fmt.count(n_live), border=True)
    board[2].metric("Completed in period", fmt.count(live["current"]["completed"]), border=True)
    board[3].metric("Escalated (actions)", fmt.count(sum(acts.values()) if acts else None), border=True,
                    help="Corrective actions created by the coordinator and operators")


right_now()

# Vega-Lite charts (components.charts): Plotly's 4.7 MB front-end bundle costs 2–2.6 s of the
# browser's time on the first Plotly chart of a session, which would land on this landing page.
left, right = st.columns(2)
with left:
    st.subheader("Throughput trend")
    flow = data.attempt("weekly_flow", flt, freq=cfg.get("trend_freq", "week")).value
    if flow is not None and not flow.empty:
        long = flow.melt(id_vars="period", value_vars=["started", "last_activity"], var_name="series", value_name="cases")
        long["series"] = long["series"].map({"started": "started", "last_activity": "last event (ended or paused)"})
        st.vega_lite_chart(long, charts.lines(x="period", y="cases", color="series", height=320), key="trend")
with right:
    st.subheader("Open cases by source system")
    by_src = data.attempt("open_by", flt, by="last_source", **common).value
    if by_src is not None and not by_src.empty:
        by_src = by_src.assign(**{"median wait (days)": by_src["median_wait_seconds"] / 86400})
        st.vega_lite_chart(by_src, charts.hbars(x="open_cases", y="group", color="median wait (days)", scheme="orangered",
                                                x_title="open cases", height=320), key="by_source")
    else:
        st.caption("No open case.")

if stuck.ok and not stuck.value.empty and "owner" in stuck.value:
    st.subheader("Stuck cases by owner")
    owners = stuck.value.groupby(stuck.value["owner"].fillna("(no owner)")).size().reset_index(name="stuck")
    st.vega_lite_chart(owners, charts.hbars(x="stuck", y="owner", fill="#c62828", height=280), key="by_owner")

st.subheader("The cases behind the numbers")
kinds = {"started": "Cases started", "completed": "Cases completed", "wip": "Work in progress", "open": "Open now"}
kind = st.segmented_control("Show", list(kinds), format_func=kinds.get, default="wip", key="health_cases_kind")
if kind:
    cases = data.attempt("kpi_cases", flt, kind=kind, start=start.isoformat(), end=end.isoformat(), **common).value
    if cases is not None:
        st.caption(f"{len(cases):,} cases" + (" (first 500)" if len(cases) >= 500 else "") + " · select one to open it")
        ev = st.dataframe(cases, hide_index=True, on_select="rerun", selection_mode="single-row", key="health_cases",
                          column_config={"duration_days": st.column_config.NumberColumn("duration (days)", format="%.1f")})
        rows = nav.selected_rows(ev)
        if rows:
            nav.open_case(cases.iloc[rows[0]]["case_id"])
if stuck.ok and n_stuck:
    st.page_link("views/stuck.py", label=f"See the {n_stuck:,} stuck cases", icon=":material/pending_actions:")
