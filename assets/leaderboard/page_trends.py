"""The HTML page's charts of volumes, lengths and time: monthly cost against monthly volume (break_even_curve),
accuracy against reasoning tokens by difficulty (overthinking), and each variant's runs over time (history)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from assets.leaderboard.page_charts import Chart, colors_for

DIFFICULTY_SYMBOLS = {"easy": "circle", "medium": "diamond", "hard": "square"}


def _crossover_points(crossovers: pd.DataFrame) -> list[tuple[str, float, float, str]]:
    """(variant, tokens per month, $ per month, label) of each crossover: where renting or owning starts to beat
    an API, at that API's cost for the volume."""
    points = []
    for row in crossovers.to_dict("records"):
        for column, option in (("rented_beats_api_above", "renting"), ("owned_beats_api_above", "owning")):
            volume = row.get(column)
            if volume is not None and not pd.isna(volume) and volume > 0:
                usd = volume * row["api_usd_per_million_output_tokens"] / 1e6
                points.append((row["variant"], float(volume), float(usd),
                               f"{option} beats {row['api_model']} above {volume:.3g} tokens/month"))
    return points


def monthly_cost(curve: pd.DataFrame, crossovers: pd.DataFrame) -> Chart:
    title, key = "Monthly cost against monthly volume", "break-even"
    explanation = ("What a month of serving V output tokens costs: at an API's all-in price per token, renting "
                   "instances by the hour (one more each time V passes an instance's measured capacity), or owning "
                   "them. Diamonds mark the crossovers. Pick the variant in the menu.")
    if curve.empty:
        return Chart(key, title, explanation, missing="No self-hosted variant has both a measured throughput and "
                                                      "an API to compare with (an API-only matrix, or no API price "
                                                      "in the catalog), so there is no break-even to draw.")
    variants = sorted(curve["variant"].unique())
    figure = go.Figure()
    colors = colors_for(list(curve["option"]))
    visible_marks, owners = 0, []
    points = _crossover_points(crossovers)
    for index, variant in enumerate(variants):
        for option, rows in curve[curve["variant"] == variant].groupby("option"):
            figure.add_trace(go.Scatter(
                x=rows["tokens_per_month"], y=rows["usd_per_month"], mode="lines", name=option,
                visible=index == 0, line={"color": colors[option], "dash": "dot" if option == "owned" else "solid"},
                hovertemplate=f"<b>{variant}</b><br>{option}: $%{{y:,.2f}} a month for %{{x:.3g}} tokens"
                              "<extra></extra>"))
            owners.append(variant)
        mine = [point for point in points if point[0] == variant]
        if mine:
            figure.add_trace(go.Scatter(
                x=[point[1] for point in mine], y=[point[2] for point in mine], mode="markers", name="crossover",
                visible=index == 0, marker={"symbol": "diamond", "size": 11, "color": "#000"},
                customdata=[point[3] for point in mine],
                hovertemplate=f"<b>{variant}</b><br>%{{customdata}}<br>$%{{y:,.2f}} a month<extra></extra>"))
            owners.append(variant)
            visible_marks += len(mine) if index == 0 else 0
    buttons = [{"label": variant, "method": "update",
                "args": [{"visible": [owner == variant for owner in owners]}, {"title.text": variant}]}
               for variant in variants]
    figure.update_layout(updatemenus=[{"buttons": buttons, "direction": "down", "x": 1.0, "xanchor": "right",
                                       "y": 1.15, "yanchor": "top"}], title={"text": variants[0]}, height=480)
    figure.update_xaxes(type="log", title_text="output tokens per month")
    figure.update_yaxes(type="log", title_text="$ per month")
    return Chart(key, title, explanation, figure, marks=visible_marks)


def overthinking(frame: pd.DataFrame) -> Chart:
    title, key = "Overthinking: accuracy against reasoning tokens, by item difficulty", "overthinking"
    explanation = ("Per variant and benchmark, the accuracy and mean reasoning tokens of its samples on easy, "
                   "medium and hard items (an item's difficulty is its mean pass rate over every variant "
                   "evaluated). More tokens on hard items that end wrong is overthinking.")
    points = frame.dropna(subset=["reasoning_tokens_mean", "accuracy"])
    if points.empty:
        return Chart(key, title, explanation, missing="No reasoning tokens were counted in the published samples "
                                                      "(no reasoning split, or no published run).")
    figure = go.Figure()
    colors = colors_for(list(points["variant"]))
    for (variant, benchmark), rows in points.groupby(["variant", "benchmark"]):
        rows = rows.sort_values("bucket_order")
        figure.add_trace(go.Scatter(
            x=rows["reasoning_tokens_mean"], y=rows["accuracy"], mode="lines+markers", name=f"{variant} {benchmark}",
            line={"color": colors[variant], "width": 1},
            marker={"color": colors[variant], "size": 9,
                    "symbol": [DIFFICULTY_SYMBOLS.get(bucket, "circle") for bucket in rows["bucket"]]},
            customdata=list(zip(rows["bucket"], rows["samples"], strict=True)),
            hovertemplate=f"<b>{variant}</b> {benchmark}<br>%{{customdata[0]}} items: accuracy %{{y:.3f}} over "
                          "%{customdata[1]} samples<br>%{x:.0f} reasoning tokens a sample<extra></extra>"))
    figure.update_xaxes(title_text="mean reasoning tokens per sample")
    figure.update_yaxes(title_text="accuracy", rangemode="tozero")
    figure.update_layout(height=480)
    return Chart(key, title, explanation, figure, marks=len(points))


def history(runs: pd.DataFrame) -> Chart:
    title, key = "History: each variant's evaluation runs", "history"
    explanation = ("Mean pass@1 over its benchmarks and priced output throughput of every published run of each "
                   "variant, in time. A red cross marks a run a regression check flagged against the run before.")
    points = runs.dropna(subset=["pass_at_1"])
    if points.empty:
        return Chart(key, title, explanation, missing="No published run has scores yet.")
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                           subplot_titles=["mean pass@1", "output tok/s at the priced level"])
    colors = colors_for(list(points["variant"]))
    marks = 0
    for variant, rows in points.groupby("variant"):
        for row, column in ((1, "pass_at_1"), (2, "output_tokens_per_s")):
            shown = rows.dropna(subset=[column])
            figure.add_trace(go.Scatter(
                x=shown["evaluated_at"], y=shown[column], mode="lines+markers", name=variant, legendgroup=variant,
                showlegend=row == 1, marker={"color": colors[variant], "size": 8}, line={"color": colors[variant]},
                customdata=list(zip(shown["run_id"].str[:8], shown["regressions"].fillna("none"), strict=True)),
                hovertemplate=f"<b>{variant}</b><br>run %{{customdata[0]}}, %{{x}}<br>%{{y:.4g}}<br>regressions: "
                              "%{customdata[1]}<extra></extra>"), row=row, col=1)
            marks += len(shown)
            flagged = shown[shown["regressions"].notna()]
            if len(flagged):
                figure.add_trace(go.Scatter(
                    x=flagged["evaluated_at"], y=flagged[column], mode="markers", name="regression",
                    legendgroup="regression", showlegend=False, marker={"symbol": "x", "size": 14, "color": "red"},
                    customdata=flagged["regressions"], hovertemplate="regressed: %{customdata}<extra></extra>"),
                    row=row, col=1)
                marks += len(flagged)
    figure.update_layout(height=560)
    return Chart(key, title, explanation, figure, marks=marks)
