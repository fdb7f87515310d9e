"""What every `yardstick` command shares: the error that stops one with exit status 2, and the warehouse it reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines import settings

if TYPE_CHECKING:
    from resources.warehouse import WarehouseResource

WAREHOUSE_HELP = "DuckDB file or ducklake:postgres:<libpq string> (default: $YARDSTICK_WAREHOUSE, else .yardstick/)"
MATRIX_HELP = "matrix YAML (default: $YARDSTICK_MATRIX or pipelines/matrix.yaml)"


class InputError(ValueError):
    """A line of the input file is not what the command needs."""


def warehouse(path: str | None = None) -> WarehouseResource:
    """The warehouse a command reads or writes: `path` (its --warehouse), else the configured one."""
    from resources.warehouse import WarehouseResource

    return WarehouseResource(path=path or settings.warehouse_path(), lake_data=settings.lake_data())
