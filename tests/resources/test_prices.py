"""The price catalogs' promise: every row dated and sourced, every price a finite, non-negative number, read as the
typed, dated prices the cost formulas (tests/cost/test_pricing.py) take."""

import json
import os
from datetime import UTC, date, datetime, timedelta

import pytest

from assets.cost.pricing import InstancePrice, OwnedHardwarePrice, Ownership
from resources.prices import (
    PriceCatalogError,
    PriceCatalogResource,
    read_catalog,
    read_litellm_prices,
)

pytestmark = pytest.mark.unit


def test_every_shipped_catalog_row_has_a_date_and_a_source():
    prices = PriceCatalogResource()
    for frame in (prices.instances(), prices.ownership_rows(), prices.api_prices()):
        assert len(frame)
        assert frame["price_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
        assert (frame["source"].str.len() > 10).all()
    # the seeds' hardware and the offline default are all priced
    for hardware in ("cpu-2vcpu", "a100-8x", "h100-8x", "h200-8x", "rtx3090-1x", "rtx4090-1x"):
        assert prices.instance(hardware)["usd_per_hour"] > 0
    reasoner = prices.api_price("deepseek-reasoner")
    assert reasoner.output > 0 and 0 < reasoner.cached_input < reasoner.input


def test_an_undated_or_unknown_price_is_refused_with_the_fix(tmp_path):
    catalog = tmp_path / "instances.csv"
    catalog.write_text("hardware,usd_per_hour,price_date,source\nbox,1.0,,somewhere\n")
    with pytest.raises(PriceCatalogError, match=r"without a value, date or source: \['box'\]"):
        read_catalog(str(catalog), "hardware", ("hardware", "usd_per_hour", "price_date", "source"))
    catalog.write_text("hardware,usd_per_hour,price_date,source\nbox,1.0,June 2026,somewhere\n")
    with pytest.raises(PriceCatalogError, match="is not a date written YYYY-MM-DD"):
        PriceCatalogResource(instances_path=str(catalog)).instances()
    with pytest.raises(PriceCatalogError, match="has no price .* known: cpu-2vcpu"):
        PriceCatalogResource().instance("tpu-v9")


def test_catalog_rows_are_read_as_typed_prices_with_their_date_and_source(tmp_path):
    instances, ownership = tmp_path / "instances.csv", tmp_path / "ownership.csv"
    instances.write_text("hardware,usd_per_hour,price_date,source\nbox,1.25,2026-06-01,somewhere\n")
    ownership.write_text("hardware,purchase_usd,power_kw,price_date,source\nbox,9000,0.4,2025-02-03,a shop\n")
    prices = PriceCatalogResource(instances_path=str(instances), ownership_path=str(ownership), ownership_years=4,
                                  usd_per_kwh=0.2, utilisation=0.6, pue=1.3)
    assert prices.instance_price("box") == InstancePrice("box", 1.25, date(2026, 6, 1), "somewhere")
    assert prices.ownership("box") == OwnedHardwarePrice(
        "box", Ownership(9000, 0.4, years=4, usd_per_kwh=0.2, utilisation=0.6, pue=1.3), date(2025, 2, 3), "a shop")
    assert prices.ownership("other") is None   # no purchase price: the hardware is only rented


HEADER = "hardware,usd_per_hour,gpus,price_date,source\n"


@pytest.mark.parametrize(("row", "refusal"), [
    ("box,-0.08,1,2026-06-01,somewhere", "row 2 \\(hardware 'box'\\): usd_per_hour -0.08 is not a finite, non-neg"),
    ("box,inf,1,2026-06-01,somewhere", "usd_per_hour inf is not a finite"),
    ("box,cheap,1,2026-06-01,somewhere", "usd_per_hour 'cheap' is not a finite"),
    ("box,1.0,-2,2026-06-01,somewhere", "gpus -2 is not a finite"),
    ("box,1.0,many,2026-06-01,somewhere", "gpus 'many' is not a finite"),
])
def test_a_price_that_is_not_a_finite_non_negative_number_is_refused_naming_its_row(tmp_path, row, refusal):
    catalog = tmp_path / "instances.csv"
    catalog.write_text(HEADER + "ok,1.0,1,2026-06-01,somewhere\n".replace("ok", "fine") + row + "\n")
    with pytest.raises(PriceCatalogError, match=refusal):
        PriceCatalogResource(instances_path=str(catalog)).instances()


def test_numbers_written_as_text_are_read_as_numbers(tmp_path):
    catalog = tmp_path / "api.csv"
    catalog.write_text("model,input_usd_per_million,output_usd_per_million,reasoning_usd_per_million,price_date,"
                       "source\nm,\" 0.5\",2,,2026-06-01,somewhere\n")
    price = PriceCatalogResource(api_prices_path=str(catalog)).api_price("m")
    assert (price.input, price.output, price.reasoning) == (0.5, 2.0, None)
    assert (price.price_date, price.source) == (date(2026, 6, 1), "somewhere")


def test_litellm_price_table_is_read_when_a_copy_is_on_disk(tmp_path):
    # The shape of LiteLLM's model_prices_and_context_window.json: a sample_spec template, models keyed by
    # name with prices per token, and non-model entries without prices.
    table = {
        "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "litellm_provider": "..."},
        "reasoner-x": {"input_cost_per_token": 5.5e-07, "output_cost_per_token": 2.19e-06,
                       "cache_read_input_token_cost": 1.4e-07, "litellm_provider": "acme", "mode": "chat"},
        "flash-y": {"input_cost_per_token": 3e-07, "output_cost_per_token": 2.5e-06,
                    "output_cost_per_reasoning_token": 3.5e-06, "litellm_provider": "acme", "mode": "chat"},
        "embedder": {"input_cost_per_token": 1e-08, "litellm_provider": "acme", "mode": "embedding"},
        "fallback_generalizations": {"rules": []},
    }
    path = tmp_path / "model_prices_and_context_window.json"
    path.write_text(json.dumps(table))
    os.utime(path, (1_780_000_000, 1_780_000_000))   # 2026-05-28 UTC
    frame = read_litellm_prices(str(path))
    assert sorted(frame["model"]) == ["flash-y", "reasoner-x"]
    prices = PriceCatalogResource(api_prices_path=str(path))
    reasoner = prices.api_price("reasoner-x")
    assert (reasoner.input, reasoner.output, reasoner.reasoning) == pytest.approx((0.55, 2.19, None))
    assert reasoner.price_date == date(2026, 5, 28) and "LiteLLM" in reasoner.source
    assert prices.api_price("flash-y").reasoning == pytest.approx(3.5)
    table["broken-z"] = {"input_cost_per_token": -1e-6, "output_cost_per_token": 1e-6, "litellm_provider": "acme"}
    path.write_text(json.dumps(table))
    with pytest.raises(PriceCatalogError, match=r"LiteLLM price file .* \(model 'broken-z'\): input_usd_per_mil"):
        read_litellm_prices(str(path))


def _instances(tmp_path, *rows):
    catalog = tmp_path / "instances.csv"
    catalog.write_text("hardware,usd_per_hour,price_date,source\n" + "".join(row + "\n" for row in rows))
    return PriceCatalogResource(instances_path=str(catalog))


@pytest.mark.parametrize("date", ["June 2026", "2026-13-01", "2026/06/01", "01-06-2026", "yesterday"])
def test_a_price_date_that_is_not_a_date_is_refused_naming_the_row(tmp_path, date):
    prices = _instances(tmp_path, "box-a,1.0,2026-06-01,list price", f"box-b,2.0,{date},list price")
    with pytest.raises(PriceCatalogError, match=rf"row 2 \(hardware 'box-b'\): price_date '{date}' is not a date"):
        prices.instances()


def test_a_price_dated_in_the_future_is_refused_naming_the_row(tmp_path):
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    prices = _instances(tmp_path, f"box-a,1.0,{tomorrow},list price", "box-b,2.0,2026-06-01,list price")
    with pytest.raises(PriceCatalogError, match=rf"row 1 \(hardware 'box-a'\): price_date {tomorrow} is in the future"):
        prices.instances()


def test_a_price_dated_today_is_accepted(tmp_path):
    today = datetime.now(UTC).date().isoformat()
    assert list(_instances(tmp_path, f"box-a,1.0,{today},list price").instances()["hardware"]) == ["box-a"]
