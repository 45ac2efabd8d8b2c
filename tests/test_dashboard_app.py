"""Every dashboard page rendered with Streamlit's AppTest on real stores: the demo world, a real
log, and an empty store. Expected numbers come from the store itself or the demo's ground truth."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from conftest import real_log
from e2e.worlds import demo_info, demo_store, file_store

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGES = ["views/health.py", "views/stuck.py", "views/case.py", "views/actions.py", "views/process_map.py",
         "views/conformance.py", "views/bottlenecks.py", "views/data_sources.py"]
TITLES = {"views/health.py": "Process health", "views/stuck.py": "Stuck work", "views/case.py": "Case",
          "views/actions.py": "Actions", "views/process_map.py": "Process map",
          "views/conformance.py": "Conformance & exceptions", "views/bottlenecks.py": "Bottlenecks",
          "views/data_sources.py": "Data"}

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    return demo_store(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def receipt(tmp_path_factory):
    return file_store(tmp_path_factory.getbasetemp(), real_log("receipt/08_receipt.xes.gz"))


def run_page(monkeypatch, db: Path, page: str, config: Path | None = None, params: dict | None = None,
             state: dict | None = None):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PROCESSLENS_DB", str(db))
    if config is not None:
        monkeypatch.setenv("PROCESSLENS_CONFIG", str(config))
    else:
        monkeypatch.delenv("PROCESSLENS_CONFIG", raising=False)
    monkeypatch.delenv("PROCESSLENS_NOW", raising=False)
    # Health draws its model-based tiles as "computing" after a short wait; tests check their numbers
    monkeypatch.setenv("PROCESSLENS_DASHBOARD_MODEL_WAIT", "120")
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.run()
    at.switch_page(page).run()
    return at


def assert_clean(at, page: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.title] == [TITLES[page]]


def metrics(at) -> dict[str, str]:
    return {m.label.split("] ", 1)[-1]: m.value for m in at.metric}


def count(db: Path, sql: str, params=None):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchone()[0]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_store(monkeypatch, tmp_path, page):
    at = run_page(monkeypatch, tmp_path / "nothing-yet.duckdb", page)
    assert_clean(at, page)
    if page not in ("views/actions.py", "views/data_sources.py"):
        assert any("no events yet" in i.value for i in at.info), [i.value for i in at.info]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_the_demo_store(monkeypatch, demo, page):
    db, config = demo
    at = run_page(monkeypatch, db, page, config)
    assert_clean(at, page)
    truth = demo_info(db)["world"]["counts"]
    m = metrics(at)
    if page == "views/health.py":
        assert m["Stuck cases"] == f"{truth['stuck']:,}"
        assert m["Unhandled exceptions"] == f"{truth['unhandled_exceptions']:,}"
        assert m["Conformance"].endswith("%")
    elif page == "views/stuck.py":
        assert m["Stuck cases"] == f"{truth['stuck']:,}"
        assert at.dataframe[0].value.shape[0] == truth["stuck"]
    elif page == "views/data_sources.py":
        assert m["Events"] == f"{count(db, 'SELECT count(*) FROM events'):,}"
        assert m["Source systems"] == "4"
    elif page == "views/process_map.py":
        dot = at.get("graphviz_chart")[0].proto.spec
        assert "Create Order" in dot and "Close Order" in dot
    elif page == "views/conformance.py":
        assert "Cases fitting the model" in m
    elif page == "views/bottlenecks.py":
        assert "Biggest hand-off" in m
    elif page == "views/actions.py":
        assert "Delivered" in m


TABS = {  # page: (tab key, {tab: check(at, db) of what the tab draws})
    "views/bottlenecks.py": ("bn_tab", {
        "By hand-off": lambda at, db: "Biggest hand-off" in metrics(at) and len(at.get("plotly_chart")) == 1,
        "By activity and week": lambda at, db: len(at.get("plotly_chart")) == 1 and not at.metric,
        "By resource": lambda at, db: len(at.get("plotly_chart")) == 1 and len(at.dataframe) == 1,
    }),
    "views/conformance.py": ("conf_tab", {
        "Deviations": lambda at, db: "Cases fitting the model" in metrics(at) and "Unhandled" not in metrics(at)
        and len(at.get("plotly_chart")) == 1,
        "Exceptions": lambda at, db: "Cases fitting the model" not in metrics(at) and len(at.get("plotly_chart")) == 3
        and int(metrics(at)["Unhandled"].replace(",", "")) >= demo_info(db)["world"]["counts"]["unhandled_exceptions"],
    }),
    "views/process_map.py": ("pm_tab", {
        "Map": lambda at, db: len(at.get("graphviz_chart")) == 1 and len(at.dataframe) == 1,
        "Variants": lambda at, db: not at.get("graphviz_chart") and len(at.dataframe) == 1
        and at.dataframe[0].value["cases"].sum() > 0,
        "Reference model": lambda at, db: not at.get("graphviz_chart") and "Check Credit" in set(at.dataframe[0].value["step"]),
        "Discover a model": lambda at, db: not at.dataframe and at.button(key="disc_go") is not None,
    }),
}


@pytest.mark.parametrize("page", list(TABS))
def test_only_the_open_tab_runs_and_every_tab_draws(monkeypatch, demo, page):
    """Tabs are lazy (layout.tabs): the page draws the open tab's content and nothing of the others."""
    db, config = demo
    at = run_page(monkeypatch, db, page, config)
    key, checks = TABS[page]
    for label, check in checks.items():
        at.session_state[key] = label
        at.run()
        assert_clean(at, page)
        assert check(at, db), (label, [type(e).__name__ for e in at.main])


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_real_log_without_a_model(monkeypatch, receipt, page):
    at = run_page(monkeypatch, receipt, page)
    assert_clean(at, page)
    if page == "views/data_sources.py":
        assert metrics(at)["Cases"] == f"{count(receipt, 'SELECT count(*) FROM cases'):,}"
    if page == "views/stuck.py":  # no reference model: says so, and ranks open cases instead
        assert any("model" in i.value for i in at.info)


def test_case_page_shows_the_case_from_the_link(monkeypatch, demo):
    db, config = demo
    case_id = "SO-0000007"
    at = run_page(monkeypatch, db, "views/case.py", config, params={"case": case_id})
    assert_clean(at, "views/case.py")
    events = count(db, "SELECT count(*) FROM event_log WHERE case_id = ?", [case_id])
    assert metrics(at)["Events"] == str(events)
    assert at.dataframe[-2].value.shape[0] == events  # the events table
    assert at.query_params["case"] in (case_id, [case_id])


def test_filters_in_the_link_change_the_numbers(monkeypatch, demo):
    db, config = demo
    all_cases = run_page(monkeypatch, db, "views/data_sources.py", config)
    region = count(db, "SELECT json_extract_string(attrs, '$.region') FROM cases GROUP BY 1 ORDER BY count(*) LIMIT 1")
    filtered = run_page(monkeypatch, db, "views/health.py", config, params={"attr": f"region={region}"})
    assert_clean(filtered, "views/health.py")
    unfiltered = run_page(monkeypatch, db, "views/health.py", config)
    assert metrics(filtered)["Cases started"] != metrics(unfiltered)["Cases started"]
    assert "region" in filtered.caption[0].value
    # the filtered view's case count equals the store's count of cases with that region
    data_page = run_page(monkeypatch, db, "views/bottlenecks.py", config, params={"attr": f"region={region}"})
    assert_clean(data_page, "views/bottlenecks.py")
    assert all_cases.metric[0].value != ""
    expected = count(db, "SELECT count(*) FROM cases WHERE json_extract_string(attrs, '$.region') = ?", [region])
    pm = run_page(monkeypatch, db, "views/process_map.py", config, params={"attr": f"region={region}"})
    assert f"{expected:,} cases" in " ".join(c.value for c in pm.caption)


def test_changing_a_filter_widget_updates_the_link_and_the_numbers(monkeypatch, demo):
    db, config = demo
    at = run_page(monkeypatch, db, "views/bottlenecks.py", config)
    before = metrics(at)
    at.sidebar.multiselect(key="flt_sources").set_value(["Helpdesk"]).run()
    assert at.query_params["source"] in ("Helpdesk", ["Helpdesk"])
    assert_clean(at, "views/bottlenecks.py")
    assert metrics(at) != before
    assert "source Helpdesk" in at.caption[0].value


def test_the_variant_picker_drawn_after_the_page_lists_the_variants_and_filters_by_one(monkeypatch, demo):
    db, config = demo
    at = run_page(monkeypatch, db, "views/process_map.py", config)
    picker = at.sidebar.selectbox(key="flt_variant")
    top = count(db, "SELECT count(*) FROM an_cases GROUP BY variant_id ORDER BY 1 DESC LIMIT 1")
    assert len(picker.options) == 21 and f"{top:,} cases" in picker.options[1]  # (any) and the top 20
    before = [c.value for c in at.caption]
    picker.select_index(1).run()
    assert_clean(at, "views/process_map.py")
    assert at.query_params["variant"]
    assert at.sidebar.selectbox(key="flt_variant").index == 1
    assert f"{top:,} cases" in " ".join(c.value for c in at.caption) and [c.value for c in at.caption] != before


def test_an_operator_dispatches_an_action_from_the_case_page(monkeypatch, demo, tmp_path):
    import shutil

    db, config = demo
    work = tmp_path / "copy"
    shutil.copytree(config.parent, work / "world")
    shutil.copy(db, work / "demo.duckdb")
    db, config = work / "demo.duckdb", work / "world" / "processlens.toml"
    monkeypatch.setenv("PROCESSLENS_DEMO_WEBHOOK", "http://127.0.0.1:9/hook")
    case_id = "SO-0000007"
    at = run_page(monkeypatch, db, "views/case.py", config, params={"case": case_id})
    buttons = [b for b in at.button if b.label.startswith("Dispatch to")]
    assert buttons, [b.label for b in at.button]
    buttons[0].click().run()
    assert not at.exception
    assert any("Queued 1 action" in s.value for s in at.success), [e.value for e in at.error]
    assert count(db, "SELECT count(*) FROM actions WHERE case_id = ? AND origin = 'manual'", [case_id]) == 1
    assert count(db, "SELECT actor FROM actions WHERE case_id = ?", [case_id]) == "local-admin"


def test_a_login_guards_everything_and_roles_limit_actions(monkeypatch, receipt, tmp_path):
    from streamlit.testing.v1 import AppTest

    from dashboard import auth

    config = tmp_path / "processlens.toml"
    config.write_text('[dashboard.auth]\nmode = "local"\nusers_file = "users.toml"\n')
    auth.save_user(tmp_path / "users.toml", "lea", "leadership", "board-room-2024")
    monkeypatch.setenv("PROCESSLENS_DB", str(receipt))
    monkeypatch.setenv("PROCESSLENS_CONFIG", str(config))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert [t.value for t in at.title] == ["processlens"]
    assert not at.metric and not at.dataframe  # nothing but the login form
    at.text_input[0].input("lea")
    at.text_input[1].input("wrong password")
    at.button[0].click().run()
    assert any("Wrong user name or password" in e.value for e in at.error)
    assert not at.metric
    at.text_input[1].input("board-room-2024")
    at.button[0].click().run()
    assert [t.value for t in at.title] == ["Process health"]
    assert any("lea" in c.value and "leadership" in c.value for c in at.sidebar.caption)
    at.switch_page("views/case.py").run()
    assert not [b for b in at.button if b.label.startswith("Dispatch")]
    assert any("operator role" in c.value for c in at.caption)


def test_stuck_work_under_a_filter_lists_exactly_the_stuck_cases_it_selects(monkeypatch, demo):
    import json

    db, config = demo
    truth = json.loads((config.parent / "truth.json").read_text())
    with duckdb.connect(str(db), read_only=True) as con:
        region = dict(con.execute("SELECT case_id, json_extract_string(attrs, '$.region') FROM cases").fetchall())
    stuck_regions = sorted({region[c] for c, t in truth.items() if t["stuck"] and c in region})
    assert stuck_regions, "the demo world has stuck cases"
    chosen = stuck_regions[0]
    expected = sorted(c for c, t in truth.items() if t["stuck"] and region.get(c) == chosen)
    at = run_page(monkeypatch, db, "views/stuck.py", config, params={"attr": f"region={chosen}"})
    assert_clean(at, "views/stuck.py")
    assert sorted(at.dataframe[0].value["case_id"]) == expected
    assert metrics(at)["Stuck cases"] == str(len(expected))


def test_health_under_a_filter_counts_only_the_cases_it_selects(monkeypatch, demo):
    """Health counts the unhandled exceptions and the conformance rate of the filter's cases from the
    all-cases results (without narrowing them): the same numbers as the ground truth and the
    Conformance page, which narrows."""
    import json

    db, config = demo
    truth = json.loads((config.parent / "truth.json").read_text())
    with duckdb.connect(str(db), read_only=True) as con:
        region = dict(con.execute("SELECT case_id, json_extract_string(attrs, '$.region') FROM cases").fetchall())
    unhandled = {region.get(c) for c, t in truth.items() if t["unhandled_exception"]}
    everywhere = sum(1 for t in truth.values() if t["unhandled_exception"])
    assert everywhere, "the demo world has unhandled exceptions"
    regions = sorted(set(region.values()) - {None})
    chosen = {"with": sorted(unhandled - {None})[0], "without": sorted(set(regions) - unhandled)[0]}
    for which, value in chosen.items():
        expected = sum(1 for c, t in truth.items() if t["unhandled_exception"] and region.get(c) == value)
        assert (expected > 0) == (which == "with")
        health = run_page(monkeypatch, db, "views/health.py", config, params={"attr": f"region={value}"})
        assert_clean(health, "views/health.py")
        assert metrics(health)["Unhandled exceptions"] == f"{expected:,}"
        conf = run_page(monkeypatch, db, "views/conformance.py", config, params={"attr": f"region={value}"})
        assert_clean(conf, "views/conformance.py")
        assert metrics(health)["Conformance"] == metrics(conf)["Cases fitting the model"]
    unfiltered = run_page(monkeypatch, db, "views/health.py", config)
    assert metrics(unfiltered)["Unhandled exceptions"] == f"{everywhere:,}"


def test_pages_with_filtered_waiting_times_build_their_pair_indexes_in_the_background(monkeypatch, demo):
    from concurrent.futures import wait

    from analytics import pair_index
    from dashboard import data
    from ingest.store import open_store

    db, config = demo
    pair_index.forget()
    data._INDEX_BUILDS.clear()
    try:
        # a page with tabs builds its open tab's (the first until another is picked)
        for page, state, groupings, all_built in (
                ("views/health.py", {}, (), set()),
                ("views/bottlenecks.py", {}, ("handoffs",), {"handoffs"}),
                ("views/bottlenecks.py", {"bn_tab": "By resource"}, ("resources",), {"handoffs", "resources"}),
                ("views/bottlenecks.py", {"bn_tab": "By activity and week"}, ("weeks",), {"handoffs", "resources", "weeks"}),
                ("views/process_map.py", {}, ("edge",), set(pair_index.GROUPINGS))):
            assert_clean(run_page(monkeypatch, db, page, config, state=state), page)
            wait(list(data._INDEX_BUILDS.values()), timeout=120)
            built = {g for (_db, _version, g) in data._INDEX_BUILDS}
            assert built == all_built, (page, state)
            with open_store(db, read_only=True) as con:
                for grouping in groupings:
                    assert pair_index.lookup(con, grouping) is not None, grouping
        assert built == set(pair_index.GROUPINGS)
    finally:
        pair_index.forget()
        data._INDEX_BUILDS.clear()


def test_an_analyst_edits_a_rule_on_the_actions_page(monkeypatch, demo, tmp_path):
    """The rule editor validates like processlens.toml: a bad edit is refused, a good one is saved beside it."""
    import shutil

    from processlens.config import EDITS_FILE, load_settings

    db, config = demo
    work = tmp_path / "copy"
    shutil.copytree(config.parent, work / "world")
    shutil.copy(db, work / "demo.duckdb")
    db, config = work / "demo.duckdb", work / "world" / "processlens.toml"
    at = run_page(monkeypatch, db, "views/actions.py", config)
    assert_clean(at, "views/actions.py")
    at.selectbox(key="rule_edit_pick").select("escalate_stuck").run()
    body = at.text_area(key="rule_edit_body_escalate_stuck")
    assert 'cooldown = "1d"' in body.value
    body.set_value(body.value.replace('mode = "automatic"', 'mode = "whenever"')).run()
    at.button(key="rule_edit_save").click().run()
    assert any("mode" in e.value for e in at.error), "an invalid mode is refused with the field named"
    assert not (config.parent / EDITS_FILE).exists()
    body = at.text_area(key="rule_edit_body_escalate_stuck")
    body.set_value(body.value.replace('mode = "whenever"', 'mode = "approval"')).run()
    at.button(key="rule_edit_save").click().run()
    assert not at.exception and any("saved" in s.value for s in at.success), [e.value for e in at.error]
    assert load_settings(db=db, config=config).section("rules")["escalate_stuck"]["mode"] == "approval"


@pytest.mark.parametrize(("page", "state"), [("views/bottlenecks.py", {}), ("views/process_map.py", {}),
                                             ("views/bottlenecks.py", {"bn_tab": "By resource"}),
                                             ("views/bottlenecks.py", {"bn_tab": "By activity and week"}),
                                             ("views/process_map.py", {"pm_tab": "Variants"})])
def test_a_pages_main_questions_start_before_it_runs_and_are_the_ones_it_asks(monkeypatch, demo, page, state):
    """The router starts a page's main questions with the filter as soon as the filter bar knows it
    (PageSpec.tabs: the open tab's); each must be the very question the page asks,
    or the head start is wasted."""
    from dashboard import data

    db, config = demo
    started, asked = [], []
    real_prefetch, real_get = data.prefetch, data.get

    def prefetch(ref, flt=None, **kwargs):
        started.append((data._qualified(ref), flt.key() if flt is not None else "", json_key(kwargs)))
        return real_prefetch(ref, flt, **kwargs)

    def get(ref, flt=None, **kwargs):
        asked.append((data._qualified(ref), flt.key() if flt is not None else "", json_key(kwargs)))
        return real_get(ref, flt, **kwargs)

    monkeypatch.setattr(data, "prefetch", prefetch)
    monkeypatch.setattr(data, "get", get)
    at = run_page(monkeypatch, db, page, config, params={"source": "WMS"}, state=state)
    assert_clean(at, page)
    from dashboard.views import TITLES_BY_PATH, early_questions

    early = {(data._qualified(ref), json_key(dict(kwargs)))
             for ref, kwargs in early_questions(TITLES_BY_PATH[page], state)}
    assert early
    for ref, kwargs in early:
        filt = [k for r, k, a in started if (r, a) == (ref, kwargs)]
        assert filt and all('"WMS"' in k for k in filt), (ref, started)
        assert any((r, a) == (ref, kwargs) and k in filt for r, k, a in asked), (ref, asked)


def json_key(kwargs: dict) -> str:
    import json

    return json.dumps(kwargs, sort_keys=True, default=str)


def test_the_closed_tabs_questions_are_computed_in_the_background_after_the_page(monkeypatch, demo):
    """Picking another Bottlenecks tab after a filter change finds its table computed (a moment after the page)."""
    import json
    from concurrent.futures import wait

    from dashboard import data
    from dashboard.filters import ViewFilter
    from dashboard.views import BOTTLENECK_TABS

    db, config = demo
    at = run_page(monkeypatch, db, "views/bottlenecks.py", config, params={"source": "WMS"})
    assert_clean(at, "views/bottlenecks.py")
    closed = [q for label, qs in BOTTLENECK_TABS.questions.items() if label != "By hand-off" for q in qs]
    pending = [f for key, f in list(data._PENDING.items()) if key[0] == "dashboard.queries:bottleneck_waits"]
    wait(pending, timeout=120)
    flt_key = ViewFilter(sources=("WMS",)).key()
    answered = {(key[0], json.loads(key[4])["parts"][0]) for key in data._ANSWERED
                if key[0] == "dashboard.queries:bottleneck_waits" and key[3] == flt_key}
    assert {("dashboard.queries:" + ref, dict(kwargs)["parts"][0]) for ref, kwargs in closed} <= answered


def test_health_compares_the_same_period_under_every_filter(monkeypatch, demo):
    """The period ends with the store's last event day, not with the filtered cases' last event: a source
    whose events end earlier is compared over the same days as the whole store."""
    from datetime import timedelta

    db, config = demo
    with duckdb.connect(str(db), read_only=True) as con:
        last = con.execute("SELECT max(ts) FROM events").fetchone()[0]
        source, source_last = con.execute("SELECT s.name, max(e.ts) FROM events e JOIN sources s USING (source_id) "
                                          "GROUP BY 1 ORDER BY 2 LIMIT 1").fetchone()
    assert source_last.date() < last.date(), "the demo has a source whose events end before the store's"
    expected = f"Period {last.date() - timedelta(days=27):%Y-%m-%d} to {last.date():%Y-%m-%d}"

    def period(at) -> str:
        found = [c.value for c in at.caption if c.value.startswith("Period ")]
        assert found, [c.value for c in at.caption]
        return found[0].split(";")[0]

    whole = run_page(monkeypatch, db, "views/health.py", config)
    filtered = run_page(monkeypatch, db, "views/health.py", config, params={"source": source})
    assert_clean(filtered, "views/health.py")
    assert period(whole) == period(filtered) == expected
    assert metrics(whole)["Work in progress"] != metrics(filtered)["Work in progress"]
