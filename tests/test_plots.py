"""Charts render, and the Pareto front keeps exactly the points nothing else beats."""

import base64

import pandas as pd
import pytest

from assets.plots import pareto_chart, pareto_front, throughput_latency_chart

pytestmark = pytest.mark.unit


def test_pareto_front():
    points = pd.DataFrame({"cost": [1.0, 2.0, 3.0, 2.5, 0.5], "acc": [0.5, 0.7, 0.9, 0.6, 0.2],
                           "name": ["a", "b", "c", "dominated", "cheapest"]})
    assert pareto_front(points, "cost", "acc")["name"].tolist() == ["cheapest", "a", "b", "c"]


def _png(markdown: str) -> bytes:
    return base64.b64decode(markdown.split("base64,", 1)[1].rstrip(")"))


def test_charts_are_png_markdown():
    levels = pd.DataFrame({"profile": ["concurrency"] * 3 + ["rate"], "load": [1, 4, 16, 10.0],
                           "e2el_ms_p99": [300.0, 350, 800, 320], "output_throughput": [120.0, 400, 800, 240]})
    board = pd.DataFrame({"benchmark": ["arith", "arith"], "variant": ["bf16", "w8a16"], "pass_at_1": [0.2, 0.15],
                          "usd_per_million_output_tokens": [0.027, 0.024]})
    for markdown in (throughput_latency_chart(levels, "t"), pareto_chart(board, "arith")):
        assert markdown.startswith("![chart](data:image/png;base64,")
        assert _png(markdown).startswith(b"\x89PNG")
