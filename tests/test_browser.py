"""The results as people look at them, in a real browser: Debian's Chromium (`make test` installs it) driven by
playwright, whose own browser download is never used, on a machine with no network. Two variants (tiny-test and
its W8A16 twin) are run twice each through `yardstick materialize`, with a Dagster instance of their own so the
UI lists their runs; then the self-contained HTML page of their results, and the Dagster UI over the same runs.

The matrix sets the serving check's cost threshold below any change (`regression_cost_rise: -1`), so the second
run of each variant has a WARN regression whose findings there are to open."""

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pytest
import yaml

from resources.launchers.readiness import free_port
from tests.conftest import ROOT, STATE, needs_shared

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BIN = Path(sys.executable).parent
VARIANTS = ("tiny-test", "tiny-test-w8a16")
pytestmark = [
    pytest.mark.integration, needs_shared,
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None or not Path(CHROMIUM).exists(),
                       reason="the browser tests need Chromium and playwright (`make test` installs both as root: "
                              "apt-get install chromium; pip install playwright)"),
]


@pytest.fixture(scope="module")
def published(tiny_model, tmp_path_factory) -> dict[str, str]:
    """The environment of two runs of each variant: its warehouse, Dagster home and matrix."""
    folder = tmp_path_factory.mktemp("browser")
    matrix = yaml.safe_load((ROOT / "tests" / "matrix.test.yaml").read_text())
    matrix["defaults"]["serving"] = {**matrix["defaults"]["serving"], "regression_cost_rise": -1.0}
    matrix["variants"] = {name: matrix["variants"][name] for name in VARIANTS}
    (folder / "matrix.yaml").write_text(yaml.safe_dump(matrix))
    (folder / "dagster").mkdir()
    shutil.copy(ROOT / "pipelines" / "dagster.yaml", folder / "dagster" / "dagster.yaml")
    env = {**os.environ, "YARDSTICK_MATRIX": str(folder / "matrix.yaml"), "YARDSTICK_HOME": str(STATE),
           "YARDSTICK_WAREHOUSE": str(folder / "warehouse.duckdb"), "DAGSTER_HOME": str(folder / "dagster")}
    for _ in range(2):
        done = subprocess.run([str(BIN / "yardstick"), "materialize", *VARIANTS], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return env


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def test_the_html_page_opens_offline_with_every_chart_drawn_and_every_variant_named(published, browser, tmp_path):
    out = tmp_path / "report.html"
    done = subprocess.run([str(BIN / "yardstick"), "report", "--html", str(out)], env=published, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.search(r"wrote .*report.html: 2 variant\(s\), \d+\.\d MB, in \d+\.\d s", done.stdout)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors, requests = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(out.as_uri())
    page.wait_for_load_state("load")
    page.wait_for_selector(".js-plotly-plot .scatterlayer")
    assert errors == [] and requests == [out.as_uri()]   # the file itself, nothing else

    sections = page.query_selector_all("section.chart")
    drawn = {section.get_attribute("id"): (int(section.get_attribute("data-marks")),
                                           len(section.query_selector_all(".scatterlayer path.point")))
             for section in sections if section.get_attribute("data-drawn") == "true"}
    assert len(drawn) >= 6, [section.get_attribute("id") for section in sections]
    assert all(expected == shown > 0 for expected, shown in drawn.values()), drawn
    text = page.inner_text("body")
    assert all(variant in text for variant in VARIANTS)

    # Hovering a point shows its values: the variant and its figures.
    point = page.query_selector("#accuracy-cost .scatterlayer path.point")
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector(".hoverlayer .hovertext", timeout=5000)
    hover = page.text_content(".hoverlayer")   # SVG text
    assert any(variant in hover for variant in VARIANTS) and "pass@1" in hover and "per M output tokens" in hover

    # The leaderboard sorts by a column and keeps the rows a filter matches.
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == 2 * 5   # two variants, five benchmarks
    page.fill("#filter", "w8a16 arith")
    assert page.locator("#leaderboard tbody tr:not([hidden])").count() == 1
    page.screenshot(path=str(STATE / "report-page.png"))


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"dagster-webserver exited with {process.returncode}"
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"dagster-webserver not ready at {url} after {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def ui(published):
    port = free_port()
    process = subprocess.Popen([str(BIN / "dagster-webserver"), "-w", str(ROOT / "workspace.yaml"), "-h",
                                "127.0.0.1", "-p", str(port)], cwd=ROOT, env=published, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def open_page(browser, address: str, *clicks: str):
    """A page of the UI, after the first visit's dialog is dismissed and each text in `clicks` clicked in turn."""
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(address)
    page.wait_for_load_state("networkidle")
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()
    for text in clicks:
        page.get_by_text(text, exact=True).first.click()
        page.wait_for_load_state("networkidle")
    return page


def open_metadata(page, status: re.Pattern, key: str) -> str:
    """The metadata entry `key` of the first check execution with `status` in the execution history on `page`:
    the text of the dialog that shows it (a JSON or Markdown entry opens a dialog of its own)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_role("row").filter(has_text=status).first.get_by_role("button").last.click(timeout=30_000)
    except PlaywrightTimeout:
        page.screenshot(path=str(STATE / "ui-no-execution.png"))
        raise AssertionError(f"no {status.pattern} execution with metadata on {page.url} (screenshot "
                             f"{STATE / 'ui-no-execution.png'}): {page.inner_text('body')}") from None
    metadata = page.get_by_role("dialog").last
    entry = metadata.get_by_role("row").filter(has_text=key).first
    for label in ("[Show JSON]", "[Show Markdown]"):
        expander = entry.get_by_text(label, exact=True)
        if not expander.count():
            continue
        expander.first.click()
        page.wait_for_timeout(500)
        return page.get_by_role("dialog").last.inner_text()
    return entry.inner_text()


GROUPS = ("models", "serving", "generation", "grading", "scoring", "cost", "leaderboard")


def test_the_dagster_ui_shows_the_graph_charts_checks_and_runs(published, browser, ui):
    graph = open_page(browser, f"{ui}/asset-groups")
    for group in GROUPS:   # the global lineage draws each group of assets as a node
        graph.get_by_text(group, exact=True).first.wait_for(timeout=60_000)

    # The leaderboard asset's charts: each a picture in its metadata, which loads (a broken one has no width).
    board = open_page(browser, f"{ui}/assets/leaderboard")
    board.get_by_role("row").filter(has_text="pareto_arith").get_by_text("[Show Markdown]").click()
    board.locator("[role=dialog] img").first.wait_for(timeout=30_000)
    widths = board.eval_on_selector_all("[role=dialog] img", "images => images.map(image => image.naturalWidth)")
    assert widths and all(width > 0 for width in widths), widths

    # The blocking check's evidence: the Great Expectations results of a run that passed.
    scores = open_page(browser, f"{ui}/assets/benchmark_scores?view=checks", "benchmark_scores_are_valid",
                       "Execution history")
    assert "pass_at_1 in [0, 1]" in open_metadata(scores, re.compile("Succeeded|Passed"), "expectations")

    # A WARN regression's findings: the second run's cost, against the first.
    serving = open_page(browser, f"{ui}/assets/published_evaluation?view=checks", "serving_did_not_regress",
                        "Execution history")
    findings = open_metadata(serving, re.compile("Failed|Warning"), "findings")
    assert "cost" in findings and "regressed" in findings

    # A variant's evaluation runs: both of tiny-test's are listed among the runs.
    with duckdb.connect(published["YARDSTICK_WAREHOUSE"], read_only=True) as connection:
        run_ids = [row[0] for row in connection.execute(
            "SELECT run_id FROM evaluation_runs WHERE variant = 'tiny-test' ORDER BY evaluated_at").fetchall()]
    assert len(run_ids) == 2, json.dumps(run_ids)
    runs = open_page(browser, f"{ui}/runs?q%5B0%5D=tag%3Adagster%2Fpartition%3Dtiny-test")
    for run_id in run_ids:
        runs.get_by_text(run_id[:8]).first.wait_for(timeout=30_000)
