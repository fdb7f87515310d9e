"""The price catalogs: dated, sourced prices for renting hardware, owning it, and buying tokens from an API.

- `instances.csv`: on-demand $/hour per hardware profile (a cloud instance or a rented GPU).
- `ownership.csv`: purchase price and power draw per hardware profile, for the ownership mode.
- `api.csv`: $ per million input, output and reasoning tokens per API model. `api_prices_path` may instead
  point at LiteLLM's `model_prices_and_context_window.json` (the de-facto table) when a copy is on disk.

Every row carries a date and a source; a row without them is refused, because an undated price is a guess.
"""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.cost.pricing import MILLION, ApiPrice, InstancePrice, OwnedHardwarePrice, Ownership

PRICE_DIR = Path(__file__).parent / "prices"
DEFAULT_INSTANCE_PRICES = str(PRICE_DIR / "instances.csv")
DEFAULT_OWNERSHIP_PRICES = str(PRICE_DIR / "ownership.csv")
DEFAULT_API_PRICES = str(PRICE_DIR / "api.csv")
INSTANCE_COLUMNS = ("hardware", "usd_per_hour", "price_date", "source")
OWNERSHIP_COLUMNS = ("hardware", "purchase_usd", "power_kw", "price_date", "source")
API_COLUMNS = ("model", "input_usd_per_million", "output_usd_per_million", "price_date", "source")
# The numbers of each catalog: finite and not negative, parsed when it loads (a price of -0.08 $/h or `inf` would
# price everything nonsensically, `cheap` would fail later as a TypeError). Optional ones may be empty.
NUMERIC_COLUMNS = ("usd_per_hour", "gpus", "gpu_memory_gb", "purchase_usd", "power_kw", "input_usd_per_million",
                   "output_usd_per_million", "reasoning_usd_per_million", "cached_input_usd_per_million")


class PriceCatalogError(ValueError):
    """A price file is missing, malformed, undated or unsourced, or has no row for what was asked."""


def read_catalog(path: str, key: str, required: tuple[str, ...]) -> pd.DataFrame:
    """A CSV price table whose every row has a key, a date and a source."""
    if not Path(path).is_file():
        raise PriceCatalogError(f"price catalog {path} does not exist")
    lines = [line for line in Path(path).read_text().splitlines() if not line.startswith("#")]
    frame = pd.read_csv(io.StringIO("\n".join(lines)), dtype={"price_date": str, key: str}, skipinitialspace=True)
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise PriceCatalogError(f"price catalog {path} lacks column(s) {missing}; it needs {list(required)}")
    incomplete = frame[frame[list(required)].isna().any(axis=1)]
    if len(incomplete):
        raise PriceCatalogError(
            f"price catalog {path}: rows without a value, date or source: {list(incomplete[key])}")
    today = datetime.now(UTC).date()
    for row, (name, value) in enumerate(zip(frame[key], frame["price_date"], strict=True)):
        where = f"price catalog {path}, row {row + 1} ({key} {name!r})"
        try:
            day = price_day(value)
        except ValueError:
            raise PriceCatalogError(f"{where}: price_date {value!r} is not a date written YYYY-MM-DD") from None
        if day > today:
            raise PriceCatalogError(f"{where}: price_date {value} is in the future (today is {today}); a price "
                                    "is dated by the day it was read from its source")
    duplicated = frame[frame[key].duplicated()][key]
    if len(duplicated):
        raise PriceCatalogError(f"price catalog {path}: {key} listed twice: {sorted(set(duplicated))}")
    return _numbers(frame, key, required, f"price catalog {path}")


def price_day(value: str) -> date:
    """A catalog's price_date, written YYYY-MM-DD, as a date; ValueError when it is not one."""
    return datetime.strptime(value.strip(), "%Y-%m-%d").date()


def _numbers(frame: pd.DataFrame, key: str, required: tuple[str, ...], what: str) -> pd.DataFrame:
    """The catalog with its numeric columns as floats; a value that is not a finite, non-negative number (or is
    missing where required) refused, naming the row."""
    frame = frame.copy()
    for column in [name for name in NUMERIC_COLUMNS if name in frame.columns]:
        parsed = []
        for row, (name, value) in enumerate(zip(frame[key], frame[column], strict=True)):
            if column not in required and (value is None or (isinstance(value, float) and math.isnan(value))):
                parsed.append(math.nan)
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not math.isfinite(number) or number < 0:
                raise PriceCatalogError(f"{what}, row {row + 1} ({key} {name!r}): {column} {value!r} is not a finite, "
                                        "non-negative number")
            parsed.append(number)
        if not pd.api.types.is_numeric_dtype(frame[column]):   # numbers read as text ("1e-3 ") become numbers
            frame[column] = parsed
    return frame


def _per_million(per_token: object) -> object:
    """A price per token as per million, or as it was when it is not a number (refused with its row by _numbers)."""
    try:
        return float(per_token) * MILLION
    except (TypeError, ValueError):
        return per_token


def read_litellm_prices(path: str) -> pd.DataFrame:
    """LiteLLM's model_prices_and_context_window.json as an api.csv-shaped table. The file carries no dates,
    so each row is dated by the file's modification day and sourced to the file itself."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise PriceCatalogError(f"cannot read LiteLLM price file {path}: {error}") from error
    day = datetime.fromtimestamp(Path(path).stat().st_mtime, UTC).date().isoformat()
    rows = []
    for model, entry in document.items():
        if model == "sample_spec" or not isinstance(entry, dict):
            continue
        if entry.get("input_cost_per_token") is None or entry.get("output_cost_per_token") is None:
            continue
        reasoning = entry.get("output_cost_per_reasoning_token")
        cached = entry.get("cache_read_input_token_cost")
        rows.append({
            "model": model, "provider": entry.get("litellm_provider"),
            "input_usd_per_million": _per_million(entry["input_cost_per_token"]),
            "output_usd_per_million": _per_million(entry["output_cost_per_token"]),
            "reasoning_usd_per_million": None if reasoning is None else _per_million(reasoning),
            "cached_input_usd_per_million": None if cached is None else _per_million(cached),
            "price_date": day, "source": f"LiteLLM model_prices_and_context_window.json ({path})",
        })
    if not rows:
        raise PriceCatalogError(f"{path} has no entry with input_cost_per_token and output_cost_per_token")
    return _numbers(pd.DataFrame(rows), "model", API_COLUMNS, f"LiteLLM price file {path}")


class PriceCatalogResource(dg.ConfigurableResource):
    """The three price catalogs and the assumptions of the ownership mode (recorded with every rollup)."""

    instances_path: str = DEFAULT_INSTANCE_PRICES
    ownership_path: str = DEFAULT_OWNERSHIP_PRICES
    api_prices_path: str = DEFAULT_API_PRICES   # api.csv, or a LiteLLM model_prices_and_context_window.json
    ownership_years: float = 3.0                # write the purchase off over this many years
    usd_per_kwh: float = 0.15                   # electricity price, an assumption: set your own tariff
    utilisation: float = 0.5                    # share of the hours the hardware does paid work
    pue: float = 1.0                            # power usage effectiveness of the room (1.0: none counted)
    # APIs a self-hosted variant's token use is also priced at (api_alternatives, the break_even view), beside
    # the matrix's own API baselines; names the API catalog lacks are skipped with a warning.
    compare_apis: list[str] = ["deepseek-reasoner", "together_ai/deepseek-ai/DeepSeek-R1-0528", "o4-mini"]

    def instances(self) -> pd.DataFrame:
        return read_catalog(self.instances_path, "hardware", INSTANCE_COLUMNS)

    def instance(self, hardware: str) -> dict:
        return _row(self.instances(), "hardware", hardware, self.instances_path)

    def instance_price(self, hardware: str) -> InstancePrice:
        row = self.instance(hardware)
        return InstancePrice(hardware=hardware, usd_per_hour=float(row["usd_per_hour"]),
                             price_date=price_day(row["price_date"]), source=str(row["source"]))

    def gpu_label(self, hardware: str | None) -> str | None:
        """The `gpu` column of a hardware profile (what memory plans size against), or None."""
        rows = self.instances()
        found = rows[rows["hardware"] == hardware] if hardware else rows.iloc[0:0]
        if found.empty or pd.isna(found.iloc[0].get("gpu")):
            return None
        return str(found.iloc[0]["gpu"])

    def ownership_rows(self) -> pd.DataFrame:
        return read_catalog(self.ownership_path, "hardware", OWNERSHIP_COLUMNS)

    def ownership(self, hardware: str) -> OwnedHardwarePrice | None:
        """The ownership costs of `hardware`, or None when the catalog has no purchase price for it."""
        frame = self.ownership_rows()
        rows = frame[frame["hardware"] == hardware]
        if rows.empty:
            return None
        row = rows.iloc[0].to_dict()
        terms = Ownership(purchase_usd=float(row["purchase_usd"]), power_kw=float(row["power_kw"]),
                          years=self.ownership_years, usd_per_kwh=self.usd_per_kwh,
                          utilisation=self.utilisation, pue=self.pue)
        return OwnedHardwarePrice(hardware=hardware, terms=terms, price_date=price_day(row["price_date"]),
                                  source=str(row["source"]))

    def api_prices(self) -> pd.DataFrame:
        if self.api_prices_path.endswith(".json"):
            return read_litellm_prices(self.api_prices_path)
        return read_catalog(self.api_prices_path, "model", API_COLUMNS)

    def api_price(self, model: str) -> ApiPrice:
        row = _row(self.api_prices(), "model", model, self.api_prices_path)
        optional = {name: None if value is None or pd.isna(value) else float(value) for name, value in (
            ("reasoning", row.get("reasoning_usd_per_million")),
            ("cached_input", row.get("cached_input_usd_per_million")))}
        return ApiPrice(model=model, input=float(row["input_usd_per_million"]),
                        output=float(row["output_usd_per_million"]), price_date=price_day(row["price_date"]),
                        source=str(row["source"]), **optional)


def _row(frame: pd.DataFrame, key: str, value: str, path: str) -> dict:
    rows = frame[frame[key] == value]
    if rows.empty:
        known = ", ".join(frame[key].head(40))
        raise PriceCatalogError(f"{key} '{value}' has no price in {path}; known: {known}")
    return {k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in rows.iloc[0].to_dict().items()}
