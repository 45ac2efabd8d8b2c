"""Process map: the as-is flow, its variants, the reference model and discovery, for analysts."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import auth, data
from dashboard.components import fmt, layout, nav, processmap
from dashboard.views import MAP_VARIANTS, PROCESS_MAP, PROCESS_MAP_TABS

flt, ov = layout.analysis_page("Process map", "How cases really flow: the directly-follows map and its variants")


def map_tab() -> None:
    """The directly-follows map of the selected cases, with its overlay and sliders."""
    c = st.columns([2, 3, 3])
    overlay = c[0].segmented_control("Show", ["frequency", "performance"], default="frequency", key="map_overlay",
                                     format_func=lambda x: {"frequency": "Frequency", "performance": "Waiting time"}[x])
    act_pct = c[1].slider("Activities", 5, 100, 100, step=5, format="%d%%", key="map_activities",
                          help="Keep the most frequent activities")
    path_pct = c[2].slider("Paths", 5, 100, 40, step=5, format="%d%%", key="map_paths",
                           help="Keep the most frequent connections (each activity keeps its strongest in and out)")
    pm = layout.outcome(data.attempt(PROCESS_MAP[0], flt, **dict(PROCESS_MAP[1])), "The process map")
    if pm is not None:
        acts, edges = processmap.simplify(pm["activities"], pm["edges"], act_pct / 100, path_pct / 100)
        st.caption(f"{len(acts):,} of {len(pm['activities']):,} activities, "
                   f"{len(edges):,} of {len(pm['edges']):,} connections · {fmt.count(ov['cases'])} cases · "
                   + ("edge labels: median waiting time, red = slow" if overlay == "performance" else
                      "edge labels: how often one activity directly followed the other"))
        st.graphviz_chart(processmap.to_dot(acts, edges, overlay or "frequency"), width="stretch")
        with st.expander("Connections as a table"):
            table = pm["edges"].copy()
            if "median_seconds" in table:
                table["median wait"] = table["median_seconds"].map(fmt.duration)
            st.dataframe(table, hide_index=True)


def variants_tab() -> None:
    """The most frequent variants; picking one filters every page by it."""
    var = layout.outcome(data.attempt(MAP_VARIANTS[0], flt, **dict(MAP_VARIANTS[1])), "Variants")
    if var is not None and not var.empty:
        table = pd.DataFrame({
            "#": range(1, len(var) + 1), "cases": var["cases"], "share": var["share"] * 100,
            "steps": var["length"], "median throughput": var["median_seconds"].map(fmt.duration),
            "p90 throughput": var["p90_seconds"].map(fmt.duration),
            "path": var["activities"].map(lambda a: " → ".join(a)), "variant": var["variant_id"],
        })
        st.caption("The 50 most frequent variants (ignoring the variant filter). Select one to filter every page by it.")
        ev = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="single-row", key="variant_table",
                          column_config={"share": st.column_config.ProgressColumn("share", format="%.1f%%",
                                                                                  min_value=0, max_value=100)})
        rows = nav.selected_rows(ev)
        if rows:
            chosen = table.iloc[rows[0]]["variant"]
            if chosen != flt.variant and st.button(f"Filter by variant #{rows[0] + 1}", type="primary"):
                st.session_state["flt_variant"] = chosen
                st.rerun()


def model_tab() -> None:
    """The reference model's steps, owners and SLAs, with the waits before them."""
    model = data.attempt("dashboard.engines:model_steps", config=nav.config())
    steps = layout.outcome(model, "The reference model")
    if steps is not None:
        waits = data.attempt(PROCESS_MAP[0], flt, **dict(PROCESS_MAP[1])).value
        if waits is not None and not steps.empty:
            e = waits["edges"]
            if "median_seconds" in e:
                into = e[e["source"] != "▶"].groupby("target").apply(
                    lambda g: (g["median_seconds"] * g["frequency"]).sum() / max(g["frequency"].sum(), 1),
                    include_groups=False)
                steps["median wait before"] = steps["step"].map(into).map(fmt.duration)
            steps["SLA"] = steps["sla_seconds"].map(fmt.duration)
        st.caption("The steps the business expects, their owners and SLAs, with the median waiting time before each "
                   "step in the selected cases.")
        st.dataframe(steps.drop(columns=["sla_seconds"], errors="ignore"), hide_index=True)


def discover_tab() -> None:
    """Inductive-miner discovery of the selected cases, with BPMN and PNML download."""
    st.markdown("Discover a BPMN model of the selected cases with the inductive miner (pm4py). "
                "A higher noise threshold gives a simpler model that fits fewer cases.")
    noise = st.slider("Noise threshold", 0.0, 1.0, 0.2, 0.05, key="disc_noise")
    if st.button("Discover", icon=":material/auto_awesome:", key="disc_go"):
        st.session_state["disc_noise_run"] = noise
    if "disc_noise_run" in st.session_state:
        res = layout.outcome(data.attempt("dashboard.engines:discover_bpmn", flt,
                                          noise=st.session_state["disc_noise_run"]), "Model discovery")
        if res is not None and res.get("bpmn"):
            st.success("Model discovered.", icon=":material/check_circle:")
            st.download_button("Download BPMN 2.0", res["bpmn"], file_name="discovered.bpmn",
                               mime="application/xml", icon=":material/download:")
            if res.get("pnml"):
                st.download_button("Download PNML", res["pnml"], file_name="discovered.pnml", mime="application/xml")
            if auth.current_user() and auth.current_user().can("edit"):
                st.caption("To use it as the reference model, save it next to processlens.toml and add it under "
                           "[models.NAME] with its annotations (owners, SLAs).")


# Only the open tab runs and draws (layout.tabs); the others' questions follow in the background.
tabs = layout.tabs(PROCESS_MAP_TABS)
for tab, draw in zip(tabs, (map_tab, variants_tab, model_tab, discover_tab), strict=True):
    if tab.open:
        with tab:
            draw()
layout.warm_closed_tabs(PROCESS_MAP_TABS, tabs, flt)
