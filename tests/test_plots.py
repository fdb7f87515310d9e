"""Charts render what they are given: the series drawn on the figure before it is saved, and a PNG of the
figure's size that holds each series' colour; the Pareto front keeps exactly the points nothing else beats."""

import base64
import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from assets import plots
from assets.plots import pareto_chart, pareto_front, throughput_latency_chart

pytestmark = pytest.mark.unit

LEVELS = pd.DataFrame({"profile": ["concurrency"] * 3 + ["rate"], "load": [16, 1, 4, 10.0],
                       "e2el_ms_p99": [800.0, 300, 350, 320], "output_throughput": [800.0, 120, 400, 240]})
BOARD = pd.DataFrame({"benchmark": ["arith", "arith", "arith", "gsm8k"],
                      "variant": ["bf16", "w8a16", "dominated", "other benchmark"],
                      "pass_at_1": [0.2, 0.15, 0.1, 0.9], "usd_per_million_output_tokens": [0.027, 0.024, 0.03, 0.01]})


def test_pareto_front():
    points = pd.DataFrame({"cost": [1.0, 2.0, 3.0, 2.5, 0.5], "acc": [0.5, 0.7, 0.9, 0.6, 0.2],
                           "name": ["a", "b", "c", "dominated", "cheapest"]})
    assert pareto_front(points, "cost", "acc")["name"].tolist() == ["cheapest", "a", "b", "c"]


@pytest.fixture
def drawn(monkeypatch) -> list:
    """The figures the charts hand to `as_markdown`, kept to be looked at after they are saved."""
    figures = []
    save = plots.as_markdown

    def keep(figure) -> str:
        figures.append(figure)
        return save(figure)

    monkeypatch.setattr(plots, "as_markdown", keep)
    return figures


def _picture(markdown: str) -> Image.Image:
    assert markdown.startswith("![chart](data:image/png;base64,")
    png = base64.b64decode(markdown.split("base64,", 1)[1].rstrip(")"))
    assert png.startswith(b"\x89PNG")
    return Image.open(io.BytesIO(png)).convert("RGB")


def _holds_colour(picture: Image.Image, colour) -> bool:
    pixels = np.asarray(picture).reshape(-1, 3).astype(int)
    return bool((np.abs(pixels - np.array(to_rgb(colour)) * 255).max(axis=1) <= 2).any())


def test_the_throughput_chart_draws_a_line_per_profile_in_load_order(drawn):
    picture = _picture(throughput_latency_chart(LEVELS, "tiny-bf16"))
    (axes,) = drawn[0].axes
    lines = [(line.get_label(), list(line.get_xdata()), list(line.get_ydata())) for line in axes.get_lines()]
    assert lines == [("concurrency", [300, 350, 800], [120, 400, 800]), ("rate", [320], [240])]
    assert [text.get_text() for text in axes.texts] == ["1", "4", "16", "10"]
    assert axes.get_title() == "tiny-bf16" and [t.get_text() for t in axes.get_legend().get_texts()] == [
        "concurrency", "rate"]
    assert picture.size == (640, 400)   # 6.4 × 4.0 inches at 100 dpi
    assert all(_holds_colour(picture, line.get_color()) for line in axes.get_lines())


def test_the_pareto_chart_draws_the_benchmarks_points_and_joins_its_front(drawn):
    picture = _picture(pareto_chart(BOARD, "arith"))
    (axes,) = drawn[0].axes
    (points,) = axes.collections
    assert sorted(map(tuple, points.get_offsets().tolist())) == [(0.024, 0.15), (0.027, 0.2), (0.03, 0.1)]
    assert sorted(text.get_text() for text in axes.texts) == ["bf16", "dominated", "w8a16"]
    (front,) = axes.get_lines()
    assert (list(front.get_xdata()), list(front.get_ydata()), front.get_linestyle()) == (
        [0.024, 0.027], [0.15, 0.2], "--")
    assert axes.get_title() == "accuracy against cost: arith"
    assert picture.size == (640, 400)
    assert _holds_colour(picture, points.get_facecolor()[0]) and _holds_colour(picture, front.get_color())
