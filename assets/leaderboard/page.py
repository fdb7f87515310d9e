"""`yardstick report --html`: the published results as one self-contained HTML page, to open from a chat message
on a machine with no network: every script and style inlined (Plotly's own JavaScript among them, no CDN), its
charts interactive, the leaderboard a table to sort and filter, and a header saying what was evaluated (models and
revisions, engines and versions, grader, price date, runs), so a reader knows what the page claims.

A chart the results cannot draw (one variant, no serving levels, an API-only matrix) says what is missing in its
place; a page with no published run says so."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from datetime import UTC, datetime

import pandas as pd
import plotly
import plotly.offline

from assets.leaderboard.page_charts import (
    Chart,
    accuracy_against_cost,
    quantization_forest,
    throughput_against_interactivity,
)
from assets.leaderboard.page_data import PageData
from assets.leaderboard.page_trends import history, monthly_cost, overthinking
from assets.leaderboard.printing import printed_leaderboard

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 1rem 2rem; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.claims { font-size: 0.9rem; border-collapse: collapse; }
.claims td, .claims th, #leaderboard td, #leaderboard th { border: 1px solid #ddd; padding: 0.25rem 0.5rem; }
.missing { background: #fff6e5; border-left: 4px solid #f0a020; padding: 0.6rem 1rem; }
.busy { color: #b00020; font-weight: 600; }
.explain { color: #555; max-width: 70rem; }
#leaderboard { border-collapse: collapse; font-size: 0.82rem; }
#leaderboard th { cursor: pointer; background: #f4f4f4; position: sticky; top: 0; }
#leaderboard th[data-sorted]::after { content: attr(data-sorted); }
nav a { margin-right: 1rem; }
"""
# The leaderboard table: a click on a column's head sorts by it (numbers as numbers), again the other way; the box
# keeps the rows whose text holds every word typed.
TABLE_SCRIPT = """
(function () {
  const table = document.getElementById('leaderboard');
  if (!table) return;
  const body = table.tBodies[0];
  const value = (row, index) => row.cells[index].dataset.value ?? row.cells[index].textContent.trim();
  table.querySelectorAll('th').forEach((head, index) => head.addEventListener('click', () => {
    const up = head.dataset.sorted !== ' ▲';
    table.querySelectorAll('th').forEach(other => delete other.dataset.sorted);
    head.dataset.sorted = up ? ' ▲' : ' ▼';
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = value(a, index), y = value(b, index);
      const nx = parseFloat(x), ny = parseFloat(y);
      const order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return up ? order : -order;
    });
    rows.forEach(row => body.appendChild(row));
  }));
  document.getElementById('filter').addEventListener('input', event => {
    const words = event.target.value.toLowerCase().split(/\\s+/).filter(Boolean);
    Array.from(body.rows).forEach(row => {
      const text = row.textContent.toLowerCase();
      row.hidden = !words.every(word => text.includes(word));
    });
  });
})();
"""


def _text(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp) and value == value.normalize():
        value = value.date()   # a date (the price date) as a date
    return html.escape(str(value))


def charts(data: PageData) -> list[Chart]:
    return [accuracy_against_cost(data.leaderboard), throughput_against_interactivity(data.levels),
            quantization_forest(data.loss), monthly_cost(data.curve, data.crossovers),
            overthinking(data.overthinking), history(data.history)]


def _claims(runs: pd.DataFrame) -> str:
    """The header's table: per variant, what its shown run evaluated."""
    heads = ["variant", "model", "revision", "quantization", "engine", "grader", "priced as", "price date", "run",
             "published (UTC)", "measured"]
    rows = []
    for run in runs.to_dict("records"):
        model = run["repo"] if isinstance(run["repo"], str) else run["source"]
        revision = (run["model_sha"] or "")[:12] if isinstance(run["model_sha"], str) else _text(run["revision"])
        engine = " ".join(_text(part) for part in (run["engine"], run["engine_version"]) if _text(part))
        priced = _text(run["hardware"]) or (f"API {_text(run['api_model'])}" if _text(run["api_model"]) else "")
        busy = run["priced_host_condition"] == "contended"
        measured = (f'<span class="busy" title="{_text(run["priced_host_contention"])}">busy host</span>' if busy
                    else _text(run["priced_host_condition"]) or "not recorded")
        cells = [run["variant"], model, revision, run["quantization"], engine, run["grader_version"], priced,
                 run["price_date"], str(run["run_id"])[:8], f"{run['published_at']:%Y-%m-%d %H:%M}"]
        rows.append("<tr>" + "".join(f"<td>{_text(cell)}</td>" for cell in cells) + f"<td>{measured}</td></tr>")
    return ('<table class="claims"><thead><tr>' + "".join(f"<th>{head}</th>" for head in heads) + "</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _leaderboard_table(board: pd.DataFrame) -> str:
    if board.empty:
        return '<p class="missing">The leaderboard is empty: no variant has a published run with scores.</p>'
    shown = printed_leaderboard(board)
    heads = "".join(f"<th>{html.escape(str(column))}</th>" for column in shown.columns)
    body = []
    for _, row in shown.iterrows():
        cells = "".join(f'<td data-value="{_text(value)}">{_text(value)}</td>' for value in row)
        body.append(f"<tr>{cells}</tr>")
    return ('<p><input id="filter" type="search" placeholder="filter rows: variant, benchmark, engine ..." '
            'size="50"></p><div style="overflow-x: auto"><table id="leaderboard"><thead><tr>'
            f"{heads}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def _section(chart: Chart) -> str:
    if chart.figure is None:
        body = f'<p class="missing">{html.escape(chart.missing or "Nothing to draw.")}</p>'
    else:
        body = chart.figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{chart.key}",
                                    config={"displaylogo": False, "responsive": True})
    return (f'<section class="chart" id="{chart.key}" data-marks="{chart.marks}" '
            f'data-drawn="{json.dumps(chart.figure is not None)}"><h2>{html.escape(chart.title)}</h2>'
            f'<p class="explain">{html.escape(chart.explanation)}</p>{body}</section>')


def _list(values: Iterable[object]) -> str:
    return ", ".join(sorted({_text(value) for value in values if _text(value)})) or "none recorded"


def render_page(data: PageData, warehouse: str, generated_at: datetime | None = None) -> str:
    """The whole page as one string of HTML."""
    generated_at = generated_at or datetime.now(UTC)
    runs = data.runs
    drawn = charts(data) if len(runs) else []
    summary = (f"{len(runs)} variant(s): models {_list(runs['repo'].fillna(runs['source']))}; engines "
               f"{_list(runs['engine'] + ' ' + runs['engine_version'].fillna(''))}; graders "
               f"{_list(runs['grader_version'])}; prices of {_list(runs['price_date'])}") if len(runs) else ""
    nav = "".join(f'<a href="#{chart.key}">{html.escape(chart.title.split(":")[0])}</a>' for chart in drawn)
    body = ("".join(_section(chart) for chart in drawn)
            + f'<section id="table"><h2>Leaderboard</h2>{_leaderboard_table(data.leaderboard)}</section>'
            if len(runs) else '<p class="missing">Nothing is published in this warehouse yet: run `make run` '
                              "first.</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>yardstick: {len(runs)} variant(s)</title><style>{STYLE}</style>
<script>{plotly.offline.get_plotlyjs()}</script></head>
<body><header><h1>yardstick results</h1>
<p>{html.escape(summary)}. Published results only, from <code>{html.escape(warehouse)}</code>, written
{generated_at:%Y-%m-%d %H:%M} UTC with Plotly {plotly.__version__}.</p>
{_claims(runs) if len(runs) else ""}<nav>{nav}<a href="#table">Leaderboard</a></nav></header>
<main>{body}</main><script>{TABLE_SCRIPT}</script></body></html>
"""
