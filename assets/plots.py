"""Charts for materialization metadata, as markdown with the PNG inline (the Dagster UI renders it)."""

from __future__ import annotations

import base64
import io

import pandas as pd


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, 4.0), dpi=100)


def as_markdown(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return f"![chart](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


def throughput_latency_chart(levels: pd.DataFrame, title: str) -> str:
    """Output throughput against p99 end-to-end latency, one point per load level, labelled with its load."""
    figure, axes = _figure()
    for profile, group in levels.sort_values("load").groupby("profile"):
        axes.plot(group["e2el_ms_p99"], group["output_throughput"], marker="o", label=profile)
        for row in group.itertuples():
            axes.annotate(f"{row.load:g}", (row.e2el_ms_p99, row.output_throughput), textcoords="offset points",
                          xytext=(4, 4), fontsize=8)
    axes.set_xlabel("p99 end-to-end latency (ms)")
    axes.set_ylabel("output tokens / s")
    axes.set_title(title)
    axes.legend()
    return as_markdown(figure)


def pareto_front(points: pd.DataFrame, cost: str, accuracy: str) -> pd.DataFrame:
    """The points no other point beats on both cheaper cost and higher accuracy."""
    ordered = points.sort_values([cost, accuracy], ascending=[True, False])
    best, keep = float("-inf"), []
    for index, row in ordered.iterrows():
        if row[accuracy] > best:
            keep.append(index)
            best = row[accuracy]
    return ordered.loc[keep]


def pareto_chart(board: pd.DataFrame, benchmark: str) -> str:
    """Accuracy against $ per million output tokens for one benchmark; the Pareto front joined by a line."""
    points = board[(board["benchmark"] == benchmark) & board["usd_per_million_output_tokens"].notna()]
    figure, axes = _figure()
    axes.scatter(points["usd_per_million_output_tokens"], points["pass_at_1"])
    for row in points.itertuples():
        axes.annotate(row.variant, (row.usd_per_million_output_tokens, row.pass_at_1), textcoords="offset points",
                      xytext=(4, 4), fontsize=8)
    front = pareto_front(points, "usd_per_million_output_tokens", "pass_at_1")
    axes.plot(front["usd_per_million_output_tokens"], front["pass_at_1"], linestyle="--")
    axes.set_xlabel("$ per million output tokens")
    axes.set_ylabel(f"pass@1 on {benchmark}")
    axes.set_title(f"accuracy against cost: {benchmark}")
    return as_markdown(figure)


def reasoning_chart(overthinking: pd.DataFrame) -> str:
    """Accuracy against mean reasoning tokens per sample, one point per variant and benchmark (the overthinking
    view's 'all' rows); a variant's benchmarks joined by a line."""
    points = overthinking[(overthinking["grouping"] == "all") & overthinking["reasoning_tokens_mean"].notna()]
    figure, axes = _figure()
    for variant, group in points.sort_values("reasoning_tokens_mean").groupby("variant"):
        axes.plot(group["reasoning_tokens_mean"], group["accuracy"], marker="o", label=variant)
        for row in group.itertuples():
            axes.annotate(row.benchmark, (row.reasoning_tokens_mean, row.accuracy), textcoords="offset points",
                          xytext=(4, 4), fontsize=7)
    axes.set_xlabel("reasoning tokens per sample (mean)")
    axes.set_ylabel("accuracy (share of samples correct)")
    axes.set_title("accuracy against reasoning length")
    if len(points):
        axes.legend(fontsize=7)
    return as_markdown(figure)


def break_even_chart(curve: pd.DataFrame, crossovers: pd.DataFrame, variant: str) -> str:
    """$ per month against monthly output tokens (log-log) for renting, owning and each API, for one variant,
    with the volumes where renting or owning starts to beat an API marked."""
    figure, axes = _figure()
    for option, group in curve[curve["variant"] == variant].sort_values("tokens_per_month").groupby("option"):
        axes.plot(group["tokens_per_month"], group["usd_per_month"], label=option,
                  linestyle="-" if option in ("rented", "owned") else "--")
    for row in crossovers[crossovers["variant"] == variant].itertuples():
        for volume, marker in ((row.rented_beats_api_above, "o"), (row.owned_beats_api_above, "s")):
            if pd.notna(volume):
                axes.scatter([volume], [volume * row.api_usd_per_million_output_tokens / 1e6], marker=marker,
                             color="black", zorder=3)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("output tokens per month")
    axes.set_ylabel("$ per month")
    axes.set_title(f"break-even volumes: {variant} (o rented, □ owned beats the API)")
    axes.legend(fontsize=7)
    return as_markdown(figure)
