"""Cost arithmetic: what a million output tokens and a correct answer cost, rented, owned, or bought by the
token from an API. Plain functions so every formula is checked against hand calculations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
class ApiPrice:
    """An API's list prices in $ per million tokens. Reasoning tokens are part of the completion tokens the
    API bills; they cost `reasoning` when the provider prices them apart, else the output price. Prompt tokens
    the API served from its prompt cache cost `cached_input` where it has one, else the input price."""

    model: str
    input: float
    output: float
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
