"""Benchmark generation over the OpenAI API: k separate requests per item, bounded concurrency, written as
they finish so a crash loses at most one unflushed batch and a rerun skips every finished sample."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import openai

from assets.engine.retry import (
    RetryBudget,
    RetryPolicy,
    StalledRequestError,
    describe,
    retry_after_s,
    retryable,
    within_deadline,
)
from assets.grading.extraction import split_reasoning
from warehouse import utc_now

FLUSH_EVERY = 8


class GenerationError(RuntimeError):
    """Generation stopped: the engine failed or became unreachable. Finished samples were kept."""


@dataclass(frozen=True)
class SampleRequest:
    benchmark: str
    item_id: str
    sample_index: int
    messages: list[dict[str, str]]
    seed: int | None = None   # sent with the request when set; see `assets.engine.requests.sample_seed`


def reasoning_of(message: object) -> str | None:
    """The reasoning an engine returned beside the content (`reasoning_content`, or vLLM's newer `reasoning`)."""
    extra = getattr(message, "model_extra", None) or {}
    for name in ("reasoning_content", "reasoning"):
        value = getattr(message, name, None) or extra.get(name)
        if value:
            return str(value)
    return None


def reported_reasoning_tokens(usage: object) -> int | None:
    """Reasoning tokens when the API counts them (OpenAI's completion_tokens_details); else None."""
    details = getattr(usage, "completion_tokens_details", None)
    return getattr(details, "reasoning_tokens", None) if details else None


def reported_cached_prompt_tokens(usage: object) -> int | None:
    """Prompt tokens the API served from its prompt cache, when it says: OpenAI's (and vLLM's)
    prompt_tokens_details.cached_tokens, or DeepSeek's prompt_cache_hit_tokens. Else None."""
    if usage is None:
        return None
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details else None
    if cached is None:
        cached = (getattr(usage, "model_extra", None) or {}).get("prompt_cache_hit_tokens")
    return None if cached is None else int(cached)


def with_token_split(row: dict, count_tokens: Callable[[str], int] | None, reasoning_prefilled: bool) -> dict:
    """Fill reasoning_tokens (counted when the engine did not report them) and answer_tokens. vLLM reports
    reasoning_tokens 0 beside a non-empty reasoning_content (measured: 200 of 200 samples of its CPU build), so a
    reported 0 with reasoning text is counted too."""
    reasoning = row.get("reasoning_tokens")
    if not reasoning and count_tokens is not None:
        split = split_reasoning(row["response"], row["reasoning_content"], reasoning_prefilled, row["finish_reason"])
        reasoning = count_tokens(split.reasoning) if split.reasoning else 0
    completion = row.get("completion_tokens")
    if reasoning is not None and completion is not None:
        reasoning = min(reasoning, completion)
    answer = completion - reasoning if reasoning is not None and completion is not None else None
    return {**row, "reasoning_tokens": reasoning, "answer_tokens": answer}


async def _one(client: openai.AsyncOpenAI, model: str, request: SampleRequest, sampling: dict) -> dict:
    started = time.perf_counter()
    seeded = sampling if request.seed is None else {**sampling, "seed": request.seed}
    completion = await client.chat.completions.create(model=model, messages=request.messages, **seeded)
    latency = time.perf_counter() - started
    choice = completion.choices[0]
    usage = completion.usage
    return {
        "benchmark": request.benchmark,
        "item_id": request.item_id,
        "sample_index": request.sample_index,
        "response": choice.message.content or "",
        "reasoning_content": reasoning_of(choice.message),
        "finish_reason": choice.finish_reason,
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "cached_prompt_tokens": reported_cached_prompt_tokens(usage),
        "completion_tokens": usage.completion_tokens if usage else None,
        "reasoning_tokens": reported_reasoning_tokens(usage),
        "latency_seconds": latency,
        "sampling": json.dumps(sampling, sort_keys=True),
        "seed": request.seed,
        "created_at": utc_now(),
    }


@dataclass
class GenerationReport:
    """What a generation did: samples finished, and the retries it spent (by kind of error) to finish them."""

    finished: int = 0
    retries: int = 0
    retries_by_error: dict[str, int] = field(default_factory=dict)
    retried_samples: int = 0


class _SampleFailedError(Exception):
    def __init__(self, request: SampleRequest, attempts: int, reason: str) -> None:
        super().__init__(reason)
        self.request, self.attempts, self.reason = request, attempts, reason


class _BudgetSpentError(Exception):
    pass


class _AbandonedError(Exception):
    """A sample not asked again because the retry budget is spent."""


def _sample_name(request: SampleRequest) -> str:
    return f"{request.benchmark}/{request.item_id} sample {request.sample_index}"


@dataclass
class _Asker:
    """Asks for one sample with retries under the step's policy and budget; once the budget is spent (`stopping`)
    no request is sent any more."""

    client: openai.AsyncOpenAI
    model: str
    sampling: dict
    policy: RetryPolicy
    budget: RetryBudget
    semaphore: asyncio.Semaphore
    url: str
    rng: random.Random
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def ask(self, request: SampleRequest) -> dict:
        attempts, last_error = 0, None
        while True:
            attempts += 1
            try:
                async with self.semaphore:
                    if self.stopping.is_set():
                        raise _AbandonedError
                    row = await within_deadline(_one(self.client, self.model, request, self.sampling),
                                                self.policy.request_deadline_s)
                return {**row, "attempts": attempts, "last_error": last_error}
            except (openai.APIError, StalledRequestError) as error:
                last_error = describe(error, self.url)
                await self._after_failure(request, error, attempts, last_error)

    async def _after_failure(self, request: SampleRequest, error: Exception, attempts: int, last_error: str) -> None:
        """Give up on the sample (raise) or back off before its next attempt."""
        if not retryable(error):
            raise _SampleFailedError(request, attempts, f"{last_error} (not retried: a retry cannot fix it)") \
                from error
        if attempts >= self.policy.max_attempts:
            raise _SampleFailedError(request, attempts, f"failed {attempts} times; last: {last_error}") from error
        if not self.budget.spend(error):
            self.stopping.set()
            raise _BudgetSpentError(
                f"the retry budget of {self.budget.total} retries is spent (last error: {last_error}); raise "
                "the engine setting retry.budget if the endpoint is only slow to recover") from error
        try:   # back off, but not past the moment the budget is spent
            await asyncio.wait_for(self.stopping.wait(),
                                   self.policy.delay_s(attempts, retry_after_s(error), self.rng))
        except TimeoutError:
            pass


async def generate(
    client: openai.AsyncOpenAI,
    model: str,
    requests: Sequence[SampleRequest],
    sampling: dict,
    concurrency: int,
    write_batch: Callable[[list[dict]], None],
    progress: Callable[[int, int], None] | None = None,
    policy: RetryPolicy | None = None,
    url: str = "",
    rng: random.Random | None = None,
) -> GenerationReport:
    """Run every request; `write_batch` receives finished rows (with `attempts` and the `last_error` retried past)
    in small batches.

    Failed attempts are retried under `policy` (see `assets.engine.retry`), outside the concurrency limit while
    they back off. A request that fails for good (not retryable, or out of attempts) leaves its sample missing
    and the others go on. Once the step's retry budget is spent nothing more is asked: the requests already
    being answered finish (their tokens are already spent), the others are abandoned. Either way what finished
    is written first and GenerationError says what failed, so a rerun resumes from there.
    """
    policy = policy or RetryPolicy()
    budget = RetryBudget(policy.budget_for(len(requests)))
    asker = _Asker(client, model, sampling, policy, budget, asyncio.Semaphore(concurrency), url,
                   rng or random.Random())
    report = GenerationReport()
    pending_rows: list[dict] = []
    failed: list[_SampleFailedError] = []
    spent: list[_BudgetSpentError] = []

    def flush() -> None:
        if pending_rows:
            write_batch(list(pending_rows))
            pending_rows.clear()

    tasks = [asyncio.create_task(asker.ask(request)) for request in requests]
    try:
        for next_done in asyncio.as_completed(tasks):
            try:
                row = await next_done
            except _SampleFailedError as failure:
                failed.append(failure)
                continue
            except _BudgetSpentError as error:
                spent.append(error)
                continue
            except _AbandonedError:
                continue
            pending_rows.append(row)
            report.finished += 1
            report.retried_samples += row["attempts"] > 1
            if len(pending_rows) >= FLUSH_EVERY:
                flush()
            if progress:
                progress(report.finished, len(requests))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        flush()
        report.retries, report.retries_by_error = budget.spent, dict(budget.by_error)
    _raise_for_missing(report, len(requests), spent, failed)
    return report


def _raise_for_missing(report: GenerationReport, total: int, spent: list[_BudgetSpentError],
                       failed: list[_SampleFailedError]) -> None:
    """GenerationError, saying why, when a sample is missing: the budget was spent, or some failed for good."""
    if spent:
        raise GenerationError(
            f"generation stopped after {report.finished} of {total} samples: {spent[0]}; finished "
            "samples are saved and a rerun resumes from them") from spent[0]
    if failed:
        first = failed[0]
        raise GenerationError(
            f"generation finished {report.finished} of {total} samples; {len(failed)} failed, the first "
            f"({_sample_name(first.request)}) after {first.attempts} attempt(s): {first.reason}; finished samples "
            "are saved and a rerun retries only the missing ones")
