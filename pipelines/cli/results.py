"""The commands that read the warehouse: `report`, `leaderboard`, `history`, `regressions`, and `compact`, which
tidies it."""

from __future__ import annotations

import argparse
import sys

from pipelines.cli.common import WAREHOUSE_HELP, InputError, warehouse


def leaderboard(args: argparse.Namespace) -> int:
    from assets.leaderboard.printing import (
        FAILED_SQL,
        LEADERBOARD_SQL,
        engine_notes,
        failure_lines,
        printed_leaderboard,
    )

    store = warehouse(args.warehouse)
    upgraded = store.upgrade()
    if upgraded:
        print(f"warehouse: brought up to the current schema ({upgraded} migrations)", file=sys.stderr)
    with store.connect(read_only=True) as connection:
        table = connection.execute(LEADERBOARD_SQL).df()
        failed = connection.execute(FAILED_SQL).df()
    print(f"warehouse: {store.location} (published results only)")
    print(printed_leaderboard(table).to_markdown(index=False) if len(table)
          else "(the leaderboard is empty: run `make run` first)")
    for line in engine_notes(table):
        print(line)
    for line in failure_lines(failed):
        print(f"warning: {line}", file=sys.stderr)
    return 0


def report(args: argparse.Namespace) -> int:
    """The compact summary of each variant's latest published run (assets.leaderboard.report)."""
    from assets.leaderboard.printing import FAILED_SQL, failure_lines
    from assets.leaderboard.report import UNSERVED_SQL
    from assets.leaderboard.report import report as report_lines

    store = warehouse(args.warehouse)
    store.upgrade()
    if args.html:
        return html_report(store, args.html, args.variants)
    with store.connect(read_only=True) as connection:
        lines = report_lines(connection, args.variants)
        failed = connection.execute(FAILED_SQL).df()
        reported = {*connection.execute("SELECT variant FROM latest_published_runs").df()["variant"],
                    *connection.execute(UNSERVED_SQL).df()["variant"]}
    missing = [name for name in args.variants if name not in reported]
    if missing:
        raise InputError(f"no published run of {', '.join(missing)} in {store.location}; "
                         f"`make run VARIANTS=\"{' '.join(missing)}\"` makes one")
    if not lines:
        print("(nothing published yet: run `make run` first)")
    print("\n".join(lines).rstrip())
    for line in failure_lines(failed):
        print(f"warning: {line}", file=sys.stderr)
    return 0


def regressions(args: argparse.Namespace) -> int:
    """What the regression checks flagged between each variant's latest published run and the one before."""
    store = warehouse(args.warehouse)
    store.upgrade()
    with store.connect(read_only=True) as connection:
        found = connection.execute("SELECT * FROM regressions ORDER BY variant, kind, subject").df()
    if found.empty:
        print("no regression between each variant's last two published runs")
        return 0
    shown = found.assign(run=found["run_id"].str[:8], previous=found["previous_run_id"].str[:8])
    columns = ["variant", "kind", "subject", "value_before", "value_after", "previous", "run", "evidence"]
    print(shown[columns].round(4).to_markdown(index=False, disable_numparse=_text_columns(columns, "previous", "run")))
    return 1 if args.fail_on_regression else 0


def compact(args: argparse.Namespace) -> int:
    """A lake's many small files merged and its old snapshots let go; a file checkpointed."""
    store = warehouse(args.warehouse)
    before, after = store.compact(args.keep_days)
    if store.is_lake:
        print(f"{store.location}: {before} data files before, {after} after; snapshots older than "
              f"{args.keep_days:g} days expired")
    else:
        print(f"{store.location}: checkpointed")
    return 0


def _text_columns(columns: list[str], *names: str) -> list[int]:
    """The positions of columns printed as text as they are: a run id like 9589e131 is not the number 9.589e+131."""
    return [columns.index(name) for name in names if name in columns]


def history(args: argparse.Namespace) -> int:
    """A variant's evaluation runs, oldest first: when, what changed, scores, throughput, cost."""
    from assets.leaderboard.history import HISTORY_SCORES_SQL, HISTORY_SQL, history_table

    store = warehouse(args.warehouse)
    store.upgrade()
    with store.connect(read_only=True) as connection:
        runs = connection.execute(HISTORY_SQL, [args.variant]).df()
        scores = connection.execute(HISTORY_SCORES_SQL, [args.variant]).df()
    if runs.empty:
        raise InputError(f"variant '{args.variant}' has no evaluation run in {store.location}; "
                         f"`make run VARIANTS={args.variant}` makes one")
    table = history_table(runs, scores).round(4)
    table = table.astype(object).where(table.notna(), None)   # a benchmark a run did not have: "-", not "nan"
    print(table.to_markdown(index=False, missingval="-", disable_numparse=_text_columns(list(table.columns), "run")))
    return 0


def html_report(store, path: str, variants: list[str]) -> int:
    """`report --html PATH`: the self-contained page (assets.leaderboard.page) written to PATH."""
    import time
    from pathlib import Path

    from assets.leaderboard.page import render_page
    from assets.leaderboard.page_data import read_page_data

    started = time.monotonic()
    with store.connect(read_only=True) as connection:
        data = read_page_data(connection, variants)
    missing = [name for name in variants if name not in data.variants]
    if missing:
        raise InputError(f"no published run of {', '.join(missing)} in {store.location}; "
                         f"`make run VARIANTS=\"{' '.join(missing)}\"` makes one")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(render_page(data, store.location), encoding="utf-8")
    partial.replace(out)
    print(f"wrote {out}: {len(data.variants)} variant(s), {out.stat().st_size / 1e6:.1f} MB, in "
          f"{time.monotonic() - started:.1f} s (open it in a browser; it needs no network)")
    return 0


def add_history(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("history", help="a variant's evaluation runs: when, what changed, scores, cost")
    parser.add_argument("variant")
    parser.add_argument("--warehouse", help=WAREHOUSE_HELP)
    parser.set_defaults(handler=history)


def add_report(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report", help="a compact summary of variants' latest published runs: accuracy, tokens per correct "
                       "answer, throughput, $/M tokens, break-even volumes against APIs")
    parser.add_argument("variants", nargs="*", help="variants (default: every variant with a published run)")
    parser.add_argument("--html", metavar="PATH", help="write the results as one self-contained HTML page "
                                                        "(interactive charts, no network needed) instead")
    parser.add_argument("--warehouse", help=WAREHOUSE_HELP)
    parser.set_defaults(handler=report)


def add_regressions(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("regressions", help="what regressed between each variant's last two runs")
    parser.add_argument("--fail-on-regression", action="store_true", help="exit 1 when anything regressed")
    parser.add_argument("--warehouse", help=WAREHOUSE_HELP)
    parser.set_defaults(handler=regressions)


def add_compact(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("compact", help="merge a DuckLake warehouse's small files and expire its old "
                                                 "snapshots (a file: checkpoint); safe while runs write")
    parser.add_argument("--keep-days", type=float, default=7.0,
                        help="keep the snapshots (time travel) of the last N days (default: 7)")
    parser.add_argument("--warehouse", help=WAREHOUSE_HELP)
    parser.set_defaults(handler=compact)


def add_leaderboard(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("leaderboard", help="print the leaderboard view of the warehouse")
    parser.add_argument("--warehouse", help=WAREHOUSE_HELP)
    parser.set_defaults(handler=leaderboard)
