"""The HTML page's charts (Plotly figures), each from one frame of PageData: a Chart with its figure, or with what
is missing in words where the published results cannot draw it (never a blank chart). `marks` is how many data
points the chart draws as markers, which the browser tests count on the rendered page."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

BUSY = "measured on a busy host: not to be trusted"
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22")


@dataclass(frozen=True)
class Chart:
    key: str                        # the section's id
    title: str
    explanation: str                # how to read it
    figure: go.Figure | None = None
    missing: str | None = None      # why it is not drawn
    marks: int = 0


def colors_for(names: list[str]) -> dict[str, str]:
    return {name: COLORS[index % len(COLORS)] for index, name in enumerate(sorted(set(names)))}


def _number(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def pareto_front(points: pd.DataFrame, cost: str, score: str) -> pd.DataFrame:
    """The points no other point beats on both: cheaper and at least as accurate. Sorted by cost."""
    front, best = [], -math.inf
    for _, row in points.sort_values([cost, score], ascending=[True, False]).iterrows():
        if row[score] > best:
            front.append(row)
            best = row[score]
    return pd.DataFrame(front)


def accuracy_against_cost(board: pd.DataFrame) -> Chart:
    title, key = "Accuracy against $ per million output tokens", "accuracy-cost"
    explanation = ("pass@1 of each variant with its 95% interval, against what a million output tokens cost it "
                   "(rented by the hour at its priced load, or an API's list price), log scale. The dashed line is "
                   "the Pareto front: no variant is both cheaper and more accurate than one on it. A cross marks "
                   "figures measured on a busy host.")
    points = board.dropna(subset=["pass_at_1", "usd_per_million_output_tokens"])
    points = points[points["usd_per_million_output_tokens"] > 0]
    if points.empty:
        return Chart(key, title, explanation, missing="No variant has both a score and a price: the cost rollup "
                                                      "has not priced any published run.")
    benchmarks = sorted(points["benchmark"].unique())
    columns = min(3, len(benchmarks))
    figure = make_subplots(rows=math.ceil(len(benchmarks) / columns), cols=columns, subplot_titles=benchmarks)
    colors = colors_for(list(points["engine"].fillna("api")))
    seen_engines: set[str] = set()
    for index, benchmark in enumerate(benchmarks):
        row, col = index // columns + 1, index % columns + 1
        group = points[points["benchmark"] == benchmark]
        for engine, rows in group.groupby(group["engine"].fillna("api")):
            busy = rows["host_condition"].eq("contended")
            figure.add_trace(go.Scatter(
                x=rows["usd_per_million_output_tokens"], y=rows["pass_at_1"], mode="markers", name=engine,
                legendgroup=engine, showlegend=engine not in seen_engines,
                marker={"color": colors[engine], "size": 10, "symbol": ["x" if b else "circle" for b in busy]},
                error_y={"type": "data", "symmetric": False, "array": rows["pass_at_1_high"] - rows["pass_at_1"],
                         "arrayminus": rows["pass_at_1"] - rows["pass_at_1_low"]},
                customdata=list(zip(rows["variant"], rows["quantization"].fillna("none"), rows["pass_at_1_low"],
                                    rows["pass_at_1_high"], [BUSY if b else "" for b in busy], strict=True)),
                hovertemplate="<b>%{customdata[0]}</b><br>" + benchmark + ": pass@1 %{y:.3f} [%{customdata[2]:.3f}, "
                              "%{customdata[3]:.3f}]<br>$%{x:.4g} per M output tokens<br>quantization "
                              "%{customdata[1]}<br>%{customdata[4]}<extra>" + engine + "</extra>"), row=row, col=col)
            seen_engines.add(engine)
        front = pareto_front(group, "usd_per_million_output_tokens", "pass_at_1")
        figure.add_trace(go.Scatter(x=front["usd_per_million_output_tokens"], y=front["pass_at_1"], mode="lines",
                                    line={"dash": "dash", "color": "#555"}, name="Pareto front",
                                    legendgroup="front", showlegend=index == 0, hoverinfo="skip"), row=row, col=col)
    figure.update_xaxes(type="log", title_text="$ / M output tokens")
    figure.update_yaxes(title_text="pass@1", rangemode="tozero")
    figure.update_layout(height=380 * math.ceil(len(benchmarks) / columns))
    return Chart(key, title, explanation, figure, marks=len(points))


def throughput_against_interactivity(levels: pd.DataFrame) -> Chart:
    title, key = "Throughput per instance against interactivity", "throughput-interactivity"
    explanation = ("Each load level of each variant: output tokens per second the instance served, against the "
                   "tokens per second one user sees (1000 / TPOT p50). One curve per variant, named by its engine "
                   "and quantization; the shaded region meets the TPOT objective. Hover for the $/M at each point.")
    points = levels.dropna(subset=["tpot_ms_p50", "output_throughput"])
    points = points[(points["tpot_ms_p50"] > 0) & (points["output_throughput"] > 0)]
    if points.empty:
        return Chart(key, title, explanation, missing="No serving level was measured: every variant is an API "
                                                      "priced per token, or its serving concurrency and "
                                                      "request_rates are empty.")
    figure = go.Figure()
    colors = colors_for(list(points["variant"]))
    for variant, rows in points.groupby("variant"):
        rows = rows.sort_values("output_throughput")
        interactivity = 1000 / rows["tpot_ms_p50"]
        usd = [(_number(hour) or math.nan) / (tput * 3600) * 1e6
               for hour, tput in zip(rows["usd_per_hour"], rows["output_throughput"], strict=True)]
        busy = rows["host_condition"].eq("contended")
        label = f"{variant} ({rows['engine'].iloc[0]}, {rows['quantization'].iloc[0] or 'none'})"
        figure.add_trace(go.Scatter(
            x=interactivity, y=rows["output_throughput"], mode="lines+markers", name=label,
            marker={"color": colors[variant], "size": 9, "symbol": ["x" if b else "circle" for b in busy]},
            line={"color": colors[variant]},
            customdata=list(zip([variant] * len(rows), rows["profile"], rows["load"], usd, rows["ttft_ms_p99"],
                                [BUSY if b else "" for b in busy], strict=True)),
            hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]} %{customdata[2]}<br>%{y:.0f} output tok/s, "
                          "%{x:.1f} tok/s per user<br>$%{customdata[3]:.4g} per M output tokens<br>TTFT p99 "
                          "%{customdata[4]:.0f} ms<br>%{customdata[5]}<extra></extra>"))
    slo = float(points["slo_tpot_ms"].min())
    left, right = 1000 / slo, max(float((1000 / points["tpot_ms_p50"]).max()), 1000 / slo) * 1.5
    low, high = float(points["output_throughput"].min()) / 1.5, float(points["output_throughput"].max()) * 1.5
    figure.add_trace(go.Scatter(x=[left, right, right, left, left], y=[low, low, high, high, low], mode="lines",
                                fill="toself", fillcolor="rgba(44, 160, 44, 0.08)", line={"width": 0},
                                name=f"meets TPOT ≤ {slo:g} ms", hoverinfo="skip"))
    figure.update_xaxes(type="log", title_text="interactivity: tok/s per user (1000 / TPOT p50)")
    figure.update_yaxes(type="log", title_text="output tok/s per instance")
    figure.update_layout(height=520)
    return Chart(key, title, explanation, figure, marks=len(points))


def quantization_forest(loss: pd.DataFrame) -> Chart:
    title, key = "Quantization loss", "quantization-loss"
    explanation = ("Each variant's pass@1 minus its baseline's on the same items, with the 95% paired bootstrap "
                   "interval: against its unquantized twin on the same engine, and against the matrix's common "
                   "reference (another engine's world). Left of zero is a loss; an interval across zero is no "
                   "measured difference.")
    points = loss.dropna(subset=["delta", "delta_low", "delta_high"])
    if points.empty:
        return Chart(key, title, explanation, missing="No variant has a baseline in the published results: "
                                                      "quantization loss needs an unquantized twin or a common "
                                                      "reference evaluated on the same items.")
    benchmarks = sorted(points["benchmark"].unique())
    figure = make_subplots(rows=1, cols=len(benchmarks), subplot_titles=benchmarks, shared_yaxes=True)
    colors = colors_for(list(points["engine"].fillna("api")))
    shown: set[str] = set()
    for col, benchmark in enumerate(benchmarks, start=1):
        group = points[points["benchmark"] == benchmark]
        for engine, rows in group.groupby(group["engine"].fillna("api")):
            labels = [f"{variant} vs {relation} {baseline}" for variant, relation, baseline
                      in zip(rows["variant"], rows["relation"], rows["baseline"], strict=True)]
            figure.add_trace(go.Scatter(
                x=rows["delta"], y=labels, mode="markers", name=f"served by {engine}", legendgroup=engine,
                showlegend=engine not in shown, marker={"color": colors[engine], "size": 9},
                error_x={"type": "data", "symmetric": False, "array": rows["delta_high"] - rows["delta"],
                         "arrayminus": rows["delta"] - rows["delta_low"]},
                customdata=list(zip(rows["delta_low"], rows["delta_high"], rows["n_items"], strict=True)),
                hovertemplate="<b>%{y}</b><br>" + benchmark + ": %{x:+.3f} [%{customdata[0]:+.3f}, "
                              "%{customdata[1]:+.3f}] on %{customdata[2]} items<extra></extra>"), row=1, col=col)
            shown.add(engine)
        figure.add_vline(x=0, line_dash="dot", line_color="#555", row=1, col=col)
    figure.update_xaxes(title_text="Δ pass@1")
    figure.update_layout(height=max(320, 40 * points.groupby("benchmark").size().max() + 160))
    return Chart(key, title, explanation, figure, marks=len(points))
