"""The price catalog: dated, sourced on-demand prices per hardware profile."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

DEFAULT_INSTANCE_PRICES = str(Path(__file__).parent / "prices" / "instances.csv")
REQUIRED_COLUMNS = ("hardware", "usd_per_hour", "price_date", "source")


class PriceCatalogResource(dg.ConfigurableResource):
    """Reads the instance price file; every row must carry a date and a source."""

    instances_path: str = DEFAULT_INSTANCE_PRICES

    def instances(self) -> pd.DataFrame:
        frame = pd.read_csv(self.instances_path, dtype={"price_date": str})
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"price catalog {self.instances_path} lacks column(s) {missing}")
        undated = frame[frame["price_date"].isna() | frame["source"].isna()]
        if len(undated):
            raise ValueError(
                f"price catalog {self.instances_path}: rows without a date or source: {list(undated['hardware'])}"
            )
        return frame

    def instance(self, hardware: str) -> dict:
        frame = self.instances()
        rows = frame[frame["hardware"] == hardware]
        if rows.empty:
            raise ValueError(
                f"hardware '{hardware}' has no price in {self.instances_path}; known: "
                f"{', '.join(frame['hardware'])}"
            )
        return rows.iloc[0].to_dict()
