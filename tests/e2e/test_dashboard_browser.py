"""The dashboard in a real browser: Debian's Chromium driven by Playwright against the real
server (``dashboard.server``) on a free port. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import free_port
from e2e.worlds import demo_info, demo_store

CHROMIUM = os.environ.get("PROCESSLENS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PAGES = {"": "Process health", "stuck": "Stuck work", "case": "Case", "actions": "Actions",
         "process-map": "Process map", "conformance": "Conformance & exceptions", "bottlenecks": "Bottlenecks",
         "data": "Data"}

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set PROCESSLENS_CHROMIUM)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    from dashboard.server import start, wait_until_up
    from processlens.config import load_settings

    db, config = demo_store(tmp_path_factory.getbasetemp())
    port = free_port()
    # the screenshots show Health's model-based tiles filled in, not "computing"
    saved = os.environ.get("PROCESSLENS_DASHBOARD_MODEL_WAIT")
    os.environ["PROCESSLENS_DASHBOARD_MODEL_WAIT"] = "60"
    try:
        proc = start(load_settings(db, config), port=port, quiet=not os.environ.get("PROCESSLENS_E2E_VERBOSE"))
    finally:
        if saved is None:
            os.environ.pop("PROCESSLENS_DASHBOARD_MODEL_WAIT", None)
        else:
            os.environ["PROCESSLENS_DASHBOARD_MODEL_WAIT"] = saved
    try:
        wait_until_up(port, proc=proc, timeout=90)
        yield f"http://127.0.0.1:{port}", db
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except Exception:  # noqa: BLE001
            proc.kill()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    pg = ctx.new_page()
    yield pg
    ctx.close()


def wait_ready(pg, timeout: float = 90_000) -> None:
    """Until the script run finished and no element is still a loading skeleton."""
    pg.wait_for_selector("h1", timeout=timeout)
    pg.wait_for_function(
        "(() => { const a = document.querySelector('[data-test-script-state]');"
        " return a && a.getAttribute('data-test-script-state') !== 'running'"
        " && !document.querySelector('[data-testid=stSkeleton]'); })()", timeout=timeout)
    pg.wait_for_timeout(400)


def shot(pg, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def metric_values(pg) -> dict[str, str]:
    out = {}
    for m in pg.locator('[data-testid="stMetric"]').all():
        label = m.locator('[data-testid="stMetricLabel"]').inner_text().strip()
        out[label.lstrip("●").strip()] = m.locator('[data-testid="stMetricValue"]').inner_text().strip()
    return out


def test_every_page_renders_in_the_browser(server, page):
    base, _ = server
    for path, title in PAGES.items():
        page.goto(f"{base}/{path}")
        wait_ready(page)
        assert page.locator("h1").first.inner_text().strip() == title
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0, path
        shot(page, path or "health")


def test_open_a_stuck_case_from_the_stuck_work_page(server, page):
    base, db = server
    page.goto(f"{base}/stuck")
    wait_ready(page)
    truth = demo_info(db)["world"]["counts"]
    assert metric_values(page)["Stuck cases"] == f"{truth['stuck']:,}"
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 18, box["y"] + 35 + 17)  # the first row's selection box
    button = page.get_by_role("button", name=re.compile(r"^Open case "))
    button.wait_for(timeout=30_000)
    case_id = button.inner_text().split()[-1]
    button.click()
    page.wait_for_url(re.compile(r"/case\?case="), timeout=30_000)
    wait_ready(page)
    assert case_id in page.url
    assert page.get_by_text("Stuck", exact=False).first.is_visible()
    shot(page, "stuck-case")


def test_a_filter_changes_the_url_and_the_numbers(server, page):
    base, _ = server
    page.goto(f"{base}/bottlenecks")
    wait_ready(page)
    before = metric_values(page)
    box = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').first
    box.click()
    page.get_by_role("option", name="Helpdesk").click()
    page.keyboard.press("Escape")
    page.wait_for_url(re.compile(r"source=Helpdesk"), timeout=30_000)
    wait_ready(page)
    after = metric_values(page)
    assert after != before
    assert "source Helpdesk" in page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').first.inner_text()
    shot(page, "filtered")
    # the link reproduces the view for a colleague
    page.goto(page.url)
    wait_ready(page)
    assert metric_values(page) == after


def test_a_tab_draws_its_content_when_it_is_picked(server, page):
    """Tabs are lazy: only the open tab's content is drawn; picking another one draws it."""
    base, _ = server
    page.goto(f"{base}/process-map")
    wait_ready(page)
    assert page.locator('[data-testid="stGraphVizChart"]').count() == 1
    main = page.locator('[data-testid="stMain"]')
    assert main.get_by_text("The 50 most frequent variants").count() == 0
    page.get_by_role("tab", name="Variants").click()
    main.get_by_text("The 50 most frequent variants").wait_for(timeout=30_000)
    wait_ready(page)
    assert page.locator('[data-testid="stGraphVizChart"]').count() == 0
    assert main.locator('[data-testid="stDataFrame"]').count() == 1
    shot(page, "process-map-variants")


def test_a_plotly_page_loads_the_plotly_bundle_first_and_a_landing_page_preloads_it(server, page):
    base, _ = server
    page.goto(f"{base}/case")  # a page with a Plotly chart: it starts the bundle before its queries
    wait_ready(page)
    assert page.evaluate("window.__plPlotlyEager === true")
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1
    page.goto(f"{base}/data")  # a new session landing on a page without Plotly: idle preload is armed
    wait_ready(page)
    assert page.evaluate("window.__plPlotlyPreload === true")
    assert not page.evaluate("window.__plPlotlyEager === true")
