"""Cost arithmetic: what a million output tokens and a correct answer cost on a priced instance."""

from __future__ import annotations

SECONDS_PER_HOUR = 3600
MILLION = 1_000_000


def usd_per_million_tokens(usd_per_hour: float, tokens_per_second: float) -> float:
    """$/h ÷ (tok/s × 3600) × 10^6: the price of a million tokens at a sustained throughput."""
    if tokens_per_second <= 0:
        raise ValueError(f"throughput must be positive to price tokens, got {tokens_per_second}")
    return usd_per_hour / (tokens_per_second * SECONDS_PER_HOUR) * MILLION


def usd_per_correct_answer(tokens_spent: int, usd_per_million: float, correct_answers: int) -> float | None:
    """Tokens spent on a benchmark × $/token ÷ correct answers; None when nothing was correct."""
    if correct_answers <= 0:
        return None
    return tokens_spent * usd_per_million / MILLION / correct_answers


def best_level(levels: list[dict]) -> tuple[dict, bool]:
    """The load level to price: the highest output throughput among levels with no failures where every
    request met the SLOs (goodput equals request throughput); if none did, the fastest clean level, flagged."""
    clean = [level for level in levels if level["failed"] == 0 and level["output_throughput"] > 0]
    if not clean:
        raise ValueError("no load level finished without failures; the serving benchmark has nothing to price")
    within_slo = [level for level in clean if level["goodput"] >= level["request_throughput"] * (1 - 1e-9)]
    pool = within_slo or clean
    return max(pool, key=lambda level: level["output_throughput"]), bool(within_slo)
