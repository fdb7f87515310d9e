"""The HTML page (assets/leaderboard/page.py) from frames shaped by the warehouse's own views: what it says with
nothing published, with an API-only matrix of one variant, and that it references nothing outside itself. The page
in a real browser, over the results of real runs, is tested in tests/test_browser.py."""

import re
from datetime import UTC, datetime

import duckdb
import pandas as pd
import plotly.offline
import pytest

from assets.leaderboard.page import render_page
from assets.leaderboard.page_charts import pareto_front
from assets.leaderboard.page_data import PageData, read_page_data
from warehouse import apply_schema

pytestmark = pytest.mark.unit
AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
# A reference to anything outside the page: a script, style, image or font fetched from elsewhere. Plotly's own
# JavaScript holds addresses of map tiles, used only by map charts (the browser test shows the page asks none).
OUTSIDE = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|@import|url\(\s*["']?(?:https?:)?//""", re.I)


def outside(page: str) -> list[str]:
    return OUTSIDE.findall(page.replace(plotly.offline.get_plotlyjs(), ""))


@pytest.fixture
def empty(tmp_path) -> PageData:
    """The page's frames from an empty warehouse: every column the views give, no row."""
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        apply_schema(connection)
        return read_page_data(connection)


def with_rows(frame: pd.DataFrame, *rows: dict) -> pd.DataFrame:
    return pd.concat([frame, pd.DataFrame([{column: None for column in frame.columns} | row for row in rows])],
                     ignore_index=True)


def sections(page: str) -> dict[str, tuple[bool, int]]:
    """Each chart section's id: (drawn, marks)."""
    return {key: (drawn == "true", int(marks)) for key, marks, drawn
            in re.findall(r'<section class="chart" id="([^"]+)" data-marks="(\d+)" data-drawn="(\w+)"', page)}


def test_a_warehouse_with_nothing_published_says_so(empty):
    page = render_page(empty, "/w.duckdb", AT)
    assert "Nothing is published in this warehouse yet: run `make run` first." in page
    assert sections(page) == {} and not outside(page)


def test_an_api_only_matrix_of_one_variant_draws_what_it_can_and_names_what_is_missing(empty):
    run = {"variant": "r1-api", "run_id": "a" * 32, "published_at": pd.Timestamp("2026-12-05 11:00"),
           "source": "external", "repo": "deepseek-reasoner", "quantization": "none", "engine": "external",
           "grader_version": "rules 1", "price_date": pd.Timestamp("2026-06-17"), "api_model": "deepseek-reasoner",
           "priced_host_condition": None}
    score = {"variant": "r1-api", "benchmark": "aime24", "pass_at_1": 0.7, "pass_at_1_low": 0.6,
             "pass_at_1_high": 0.8, "usd_per_million_output_tokens": 2.19, "engine": "external",
             "quantization": "none", "n_items": 30, "k": 4, "run_id": "a" * 32}
    data = PageData(runs=with_rows(empty.runs, run), leaderboard=with_rows(empty.leaderboard, score),
                    levels=empty.levels, loss=empty.loss, curve=empty.curve, crossovers=empty.crossovers,
                    overthinking=empty.overthinking,
                    history=with_rows(empty.history, {"variant": "r1-api", "run_id": "a" * 32, "pass_at_1": 0.7,
                                                      "evaluated_at": pd.Timestamp("2026-12-05 11:00")}))
    page = render_page(data, "/w.duckdb", AT)
    assert sections(page) == {"accuracy-cost": (True, 1), "throughput-interactivity": (False, 0),
                              "quantization-loss": (False, 0), "break-even": (False, 0),
                              "overthinking": (False, 0), "history": (True, 1)}
    assert "No serving level was measured: every variant is an API priced per token" in page
    assert "No variant has a baseline in the published results" in page
    assert "so there is no break-even to draw" in page and "No reasoning tokens were counted" in page
    # The header says what the page claims: the variant, its model, API, grader and price date.
    assert all(word in page for word in ("r1-api", "deepseek-reasoner", "rules 1", "2026-06-17", "aaaaaaaa"))
    assert "2026-06-17 00:00" not in page   # a date shown as a date
    assert not outside(page) and "Plotly" in page and len(page) > 3_000_000   # its JavaScript inlined


def test_a_busy_host_is_named_in_the_header(empty):
    run = {"variant": "v", "run_id": "b" * 32, "published_at": pd.Timestamp("2026-12-05 11:00"),
           "source": "generated", "priced_host_condition": "contended",
           "priced_host_contention": "other processes used 1.00 cores (more than 0.25): stress (pid 7) 1.00 cores"}
    page = render_page(PageData(**{**empty.__dict__, "runs": with_rows(empty.runs, run)}), "/w.duckdb", AT)
    assert '<span class="busy" title="other processes used 1.00 cores (more than 0.25): stress (pid 7) 1.00 cores">' \
           "busy host</span>" in page


def test_the_pareto_front_keeps_what_nothing_cheaper_beats():
    points = pd.DataFrame({"cost": [1.0, 2.0, 3.0, 0.5, 4.0, 2.0], "score": [0.5, 0.4, 0.7, 0.2, 0.7, 0.6]})
    front = pareto_front(points, "cost", "score")
    assert front[["cost", "score"]].values.tolist() == [[0.5, 0.2], [1.0, 0.5], [2.0, 0.6], [3.0, 0.7]]
