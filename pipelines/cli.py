"""The `yardstick` command: the parts that stand alone, without the Dagster UI."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.matrix import MatrixError, load_matrix


def _variants(args: argparse.Namespace) -> int:
    for name in load_matrix(args.matrix).variants:
        print(name)
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    from resources.warehouse import WarehouseResource, default_warehouse_path

    warehouse = WarehouseResource(path=args.warehouse or default_warehouse_path())
    with warehouse.connect(read_only=True) as connection:
        table = connection.execute("SELECT * FROM leaderboard ORDER BY benchmark, pass_at_1 DESC, variant").df()
    print(f"warehouse: {warehouse.resolved_path}")
    print(table.to_markdown(index=False) if len(table) else "(the leaderboard is empty: run `make run` first)")
    return 0


def _build_tiny_model(args: argparse.Namespace) -> int:
    from assets.models.tiny import build_tiny_model

    print(build_tiny_model(Path(args.output), seed=args.seed))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="yardstick", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    variants = commands.add_parser("variants", help="list the variants of the evaluation matrix")
    variants.add_argument("--matrix", help="matrix YAML (default: $YARDSTICK_MATRIX or pipelines/matrix.yaml)")
    variants.set_defaults(handler=_variants)

    leaderboard = commands.add_parser("leaderboard", help="print the leaderboard view of the warehouse")
    leaderboard.add_argument("--warehouse", help="DuckDB file (default: $YARDSTICK_WAREHOUSE or .yardstick/)")
    leaderboard.set_defaults(handler=_leaderboard)

    tiny = commands.add_parser("build-tiny-model", help="write the offline tiny R1-style qwen2 model to a folder")
    tiny.add_argument("output")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(handler=_build_tiny_model)

    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (MatrixError, FileNotFoundError) as error:
        print(f"yardstick: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
