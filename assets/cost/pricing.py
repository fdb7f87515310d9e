"""Cost arithmetic: what a million output tokens and a correct answer cost, rented, owned, or bought by the
token from an API. Plain functions of typed prices, each dated and sourced as its catalog quoted it, so every
formula is checked against hand calculations and cost_rollup only reads, calls these, and writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import pandas as pd

SECONDS_PER_HOUR = 3600
HOURS_PER_YEAR = 8760
HOURS_PER_MONTH = HOURS_PER_YEAR / 12   # 730: what an instance kept up for a month is billed
MILLION = 1_000_000


def usd_per_million_tokens(usd_per_hour: float, tokens_per_second: float) -> float:
    """$/h ÷ (tok/s × 3600) × 10^6: the price of a million tokens at a sustained throughput."""
    if tokens_per_second <= 0:
        raise ValueError(f"throughput must be positive to price tokens, got {tokens_per_second}")
    return usd_per_hour / (tokens_per_second * SECONDS_PER_HOUR) * MILLION


def usd_for_tokens(tokens: int, usd_per_million: float) -> float:
    """What `tokens` cost at a price per million tokens."""
    return tokens * usd_per_million / MILLION


def usd_per_correct(usd_spent: float, correct_answers: int) -> float | None:
    """What was spent ÷ correct answers; None when nothing was correct."""
    if correct_answers <= 0:
        return None
    return usd_spent / correct_answers


@dataclass(frozen=True)
class Ownership:
    """Owning the hardware instead of renting it: what one busy hour costs.

    The purchase is written off over `years`, but only the `utilisation` share of those hours does work, so
    each working hour carries purchase ÷ (years × 8760 × utilisation); power is paid for the working hours at
    `power_kw` × `usd_per_kwh` (× `pue` for the cooling and conversion overhead of the room it stands in).
    """

    purchase_usd: float
    power_kw: float
    years: float = 3.0
    usd_per_kwh: float = 0.15
    utilisation: float = 0.5
    pue: float = 1.0

    def __post_init__(self) -> None:
        if self.purchase_usd < 0 or self.power_kw < 0 or self.usd_per_kwh < 0:
            raise ValueError(f"ownership costs cannot be negative: {self}")
        if self.years <= 0:
            raise ValueError(f"ownership years must be positive, got {self.years}")
        if not 0 < self.utilisation <= 1:
            raise ValueError(f"utilisation is a share of the hours, in (0, 1], got {self.utilisation}")
        if self.pue < 1:
            raise ValueError(f"PUE is at least 1 (1 = no overhead), got {self.pue}")

    @property
    def capital_usd_per_hour(self) -> float:
        return self.purchase_usd / (self.years * HOURS_PER_YEAR * self.utilisation)

    @property
    def power_usd_per_hour(self) -> float:
        return self.power_kw * self.pue * self.usd_per_kwh

    @property
    def usd_per_hour(self) -> float:
        return self.capital_usd_per_hour + self.power_usd_per_hour


@dataclass(frozen=True)
class InstancePrice:
    """One on-demand hour of a hardware profile (a whole instance, or the one rented GPU), as quoted on
    `price_date` by `source`."""

    hardware: str
    usd_per_hour: float
    price_date: date
    source: str


@dataclass(frozen=True)
class OwnedHardwarePrice:
    """Owning a hardware profile: its purchase price and nameplate power, with the ownership assumptions they
    are written off under, in `terms`; quoted on `price_date` by `source`."""

    hardware: str
    terms: Ownership
    price_date: date
    source: str


@dataclass(frozen=True)
class Electricity:
    """What a kWh the GPUs draw costs: the tariff, and the room's PUE, which the wall meter sees on top of it."""

    usd_per_kwh: float
    pue: float


@dataclass(frozen=True)
class ApiPrice:
    """An API's list prices in $ per million tokens. Reasoning tokens are part of the completion tokens the
    API bills; they cost `reasoning` when the provider prices them apart, else the output price. Prompt tokens
    the API served from its prompt cache cost `cached_input` where it has one, else the input price."""

    model: str
    input: float
    output: float
    price_date: date
    source: str
    reasoning: float | None = None
    cached_input: float | None = None

    def usd(self, prompt_tokens: int, completion_tokens: int, reasoning_tokens: int = 0,
            cached_prompt_tokens: int = 0) -> float:
        """What a call with this token usage costs; reasoning tokens are counted inside completion_tokens, and
        cached prompt tokens inside prompt_tokens."""
        if (min(prompt_tokens, completion_tokens, reasoning_tokens, cached_prompt_tokens) < 0
                or reasoning_tokens > completion_tokens or cached_prompt_tokens > prompt_tokens):
            raise ValueError(f"impossible token usage: prompt {prompt_tokens} (cached {cached_prompt_tokens}), "
                             f"completion {completion_tokens}, of which reasoning {reasoning_tokens}")
        reasoning_price = self.output if self.reasoning is None else self.reasoning
        cached_price = self.input if self.cached_input is None else self.cached_input
        return ((prompt_tokens - cached_prompt_tokens) * self.input + cached_prompt_tokens * cached_price
                + (completion_tokens - reasoning_tokens) * self.output + reasoning_tokens * reasoning_price) / MILLION


def failed_share(level: dict) -> float:
    """The share of a level's measured requests that failed."""
    total = int(level["completed"]) + int(level["failed"])
    return int(level["failed"]) / total if total else 1.0


def best_level(levels: list[dict], max_failed_share: float = 0.0) -> tuple[dict, bool]:
    """The load level to price: the highest output throughput among levels whose failed share is within
    `max_failed_share` where every request met the SLOs (goodput equals request throughput); if none did, the
    fastest such level, flagged. Raises ValueError, naming each level's failures, when none is within bound."""
    usable = [level for level in levels
              if failed_share(level) <= max_failed_share + 1e-12 and level["output_throughput"] > 0]
    if not usable:
        seen = ", ".join(f"{level['profile']} {level['load']:g}: {level['failed']} of "
                         f"{int(level['completed']) + int(level['failed'])} failed" for level in levels)
        raise ValueError(f"no load level finished with at most {max_failed_share:.1%} of its requests failed "
                         f"({seen}); the serving benchmark has nothing to price")
    within_slo = [level for level in usable if level["goodput"] >= level["request_throughput"] * (1 - 1e-9)]
    pool = within_slo or usable
    return max(pool, key=lambda level: level["output_throughput"]), bool(within_slo)


CONTENDED = "contended"


def priced_level(levels: list[dict], max_failed_share: float = 0.0) -> tuple[dict, bool, dict]:
    """best_level among the levels measured on a quiet host (`host_condition` not contended; a level measured
    before conditions were recorded counts as quiet), and its host condition as cost_rollup columns. Only where
    every level was contended is the best of those priced, with `priced_host_condition` contended and why."""
    quiet = [level for level in levels if level.get("host_condition") != CONTENDED]
    level, meets_slo = best_level(quiet or levels, max_failed_share)
    condition = level.get("host_condition")
    return level, meets_slo, {
        "priced_host_condition": condition if isinstance(condition, str) else None,
        "priced_host_contention": level.get("host_contention") if condition == CONTENDED else None}


def benchmark_spend(usage: Sequence[dict], api_price: ApiPrice | None, usd_per_million_output: float) -> list[dict]:
    """What each benchmark's samples cost and cost per correct answer: an API's tokens at its list prices, else the
    output tokens at the rented (or owned) $/M. `usage` rows carry the token sums and correct answers."""
    rows = []
    for bench in usage:
        prompt, cached = int(bench["prompt_tokens"]), int(bench["cached_prompt_tokens"])
        output, reasoning = int(bench["output_tokens"]), int(bench["reasoning_tokens"])
        correct = int(bench["correct_answers"])
        spent = (api_price.usd(prompt, output, reasoning, cached) if api_price
                 else usd_for_tokens(output, usd_per_million_output))
        rows.append({"benchmark": bench["benchmark"], "samples": int(bench["samples"]), "prompt_tokens": prompt,
                     "cached_prompt_tokens": cached, "output_tokens": output, "reasoning_tokens": reasoning,
                     "correct_answers": correct, "usd_spent": spent,
                     "usd_per_correct_answer": usd_per_correct(spent, correct)})
    return rows


def rented_usd_per_hour(price: InstancePrice, nodes: int) -> float:
    """What a deployment's hour costs rented: a multi-node deployment rents the instance once per node."""
    return price.usd_per_hour * nodes


def deployment_label(hardware: str, nodes: int) -> str:
    """The hardware a rollup names: the profile, and the node count where the deployment spans several."""
    return hardware if nodes == 1 else f"{hardware} x{nodes}"


def energy_per_million_tokens(gpu_kwh_per_million: float, electricity: Electricity) -> tuple[float, float]:
    """The kWh and $ a million output tokens took at the wall, from what the GPUs drew for them."""
    kwh = gpu_kwh_per_million * electricity.pue
    return kwh, kwh * electricity.usd_per_kwh


def measured_power_kw(level: dict) -> float | None:
    """The GPUs' mean power over a load level in kW, from the energy NVML measured; None where it was not."""
    energy, duration = level.get("gpu_energy_j"), level.get("duration_s")
    if energy is None or pd.isna(energy) or not duration or duration <= 0:
        return None
    return float(energy) / float(duration) / 1000


def owned_costs(owned: OwnedHardwarePrice, level: dict, nodes: int) -> dict:
    """The owned columns of a rollup at the priced load level: one owned hour per node, at the power the GPUs
    drew there where NVML measured it (the nameplate says what a board may draw, not what this load made it
    draw), and the terms it was priced on."""
    measured_kw = measured_power_kw(level)
    terms = owned.terms if measured_kw is None else replace(owned.terms, power_kw=measured_kw)
    usd_per_hour = terms.usd_per_hour * nodes
    return {"owned_usd_per_hour": usd_per_hour,
            "owned_usd_per_million_output_tokens": usd_per_million_tokens(usd_per_hour,
                                                                          float(level["output_throughput"])),
            "ownership_terms": json.dumps({
                "purchase_usd": terms.purchase_usd, "power_kw": terms.power_kw, "years": terms.years,
                "usd_per_kwh": terms.usd_per_kwh, "utilisation": terms.utilisation, "pue": terms.pue,
                "nodes": nodes, "power_source": ("measured: NVML energy at the priced level"
                                                  if measured_kw is not None else "nameplate"),
                "price_date": owned.price_date.isoformat(), "source": owned.source})}


def instance_costs(price: InstancePrice, level: dict, meets_slo: bool, nodes: int, electricity: Electricity,
                   owned: OwnedHardwarePrice | None) -> dict:
    """The cost_rollup columns of a variant that runs its own engine on `nodes` nodes, priced at `level`, the
    serving_load_levels row best_level chose (`meets_slo` as it said): rented, with the energy where NVML
    measured it, and owned where the hardware's purchase price is known."""
    usd_per_hour = rented_usd_per_hour(price, nodes)
    throughput = float(level["output_throughput"])
    row = {"pricing": "instance", "hardware": deployment_label(price.hardware, nodes), "usd_per_hour": usd_per_hour,
           "price_date": price.price_date, "price_source": price.source,
           "best_profile": level["profile"], "best_load": float(level["load"]), "meets_slo": meets_slo,
           "priced_failed_share": failed_share(level),
           "output_tokens_per_s": throughput,
           "usd_per_million_output_tokens": usd_per_million_tokens(usd_per_hour, throughput)}
    energy = level.get("gpu_kwh_per_million_output_tokens")
    if energy is not None and not pd.isna(energy):
        kwh, usd = energy_per_million_tokens(float(energy), electricity)
        row.update(energy_kwh_per_million_output_tokens=kwh, energy_usd_per_million_output_tokens=usd)
    if owned:
        row.update(owned_costs(owned, level, nodes))
    return row


def api_costs(price: ApiPrice) -> dict:
    """The cost_rollup columns of a variant bought by the token from an API: its list prices."""
    return {"pricing": "api", "api_model": price.model, "price_date": price.price_date,
            "price_source": price.source, "usd_per_million_input_tokens": price.input,
            "usd_per_million_output_tokens": price.output, "usd_per_million_reasoning_tokens": price.reasoning,
            "usd_per_million_cached_input_tokens": price.cached_input}


def spend_totals(benchmarks: Sequence[dict]) -> dict:
    """What a variant spent over benchmark_spend's rows, and what a correct answer cost over all of them."""
    def total(column: str) -> int:
        return int(sum(bench[column] for bench in benchmarks))

    # numpy's pairwise sum, as pandas sums the benchmark_costs column: the total is that column's to the last bit
    usd_spent = float(np.sum([bench["usd_spent"] for bench in benchmarks]))
    correct = total("correct_answers")
    return {"prompt_tokens_spent": total("prompt_tokens"), "cached_prompt_tokens_spent": total("cached_prompt_tokens"),
            "output_tokens_spent": total("output_tokens"), "reasoning_tokens_spent": total("reasoning_tokens"),
            "usd_spent": usd_spent, "correct_answers": correct,
            "usd_per_correct_answer": usd_per_correct(usd_spent, correct)}


def api_alternative(price: ApiPrice, spent: dict) -> dict:
    """What the tokens a variant spent (spend_totals) would have cost at an API's list prices."""
    return {"api_model": price.model, "usd_per_million_input_tokens": price.input,
            "usd_per_million_output_tokens": price.output, "price_date": price.price_date,
            "price_source": price.source,
            "usd_spent": price.usd(spent["prompt_tokens_spent"], spent["output_tokens_spent"],
                                   spent["reasoning_tokens_spent"], spent["cached_prompt_tokens_spent"]),
            "output_tokens_spent": spent["output_tokens_spent"]}
