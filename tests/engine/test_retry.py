"""The retry policy's arithmetic and classification (assets/engine/retry.py)."""

import email.utils
import random

import httpx
import openai
import pytest

from assets.engine.retry import (
    LONGEST_RETRY_AFTER_S,
    RetryBudget,
    RetryPolicy,
    RetrySettingsError,
    StalledRequestError,
    describe,
    retry_after_s,
    retryable,
)

pytestmark = pytest.mark.unit


URL = "http://127.0.0.1:9/v1"


def status_error(status: int, headers: dict | None = None) -> openai.APIStatusError:
    request = httpx.Request("POST", f"{URL}/chat/completions")
    response = httpx.Response(status, headers=headers or {}, request=request)
    return openai.APIStatusError(f"status {status}", response=response, body=None)


def test_what_is_retried():
    request = httpx.Request("POST", URL)
    assert retryable(status_error(429)) and retryable(status_error(500)) and retryable(status_error(503))
    assert retryable(status_error(408)) and retryable(openai.APIConnectionError(request=request))
    assert retryable(openai.APITimeoutError(request)) and retryable(StalledRequestError("no reply"))
    for status in (400, 401, 403, 404, 422):
        assert not retryable(status_error(status))
    assert not retryable(ValueError("a bug"))


def test_retry_after_in_seconds_milliseconds_and_http_dates():
    assert retry_after_s(status_error(429, {"Retry-After": "7"})) == 7
    assert retry_after_s(status_error(429, {"retry-after-ms": "250"})) == 0.25
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_s(status_error(503, {"Retry-After": date}), now=now) == pytest.approx(30)
    assert retry_after_s(status_error(503, {"Retry-After": email.utils.formatdate(now - 30, usegmt=True)}),
                         now=now) == 0
    assert retry_after_s(status_error(429, {"Retry-After": "soon"})) is None
    assert retry_after_s(status_error(429)) is None
    assert retry_after_s(StalledRequestError("no reply")) is None


def test_backoff_is_jittered_exponential_capped_and_honours_retry_after():
    policy = RetryPolicy(base_delay_s=1, max_delay_s=8)
    rng = random.Random(3)
    for attempt in range(1, 8):
        window = min(8, 2 ** (attempt - 1))
        delays = [policy.delay_s(attempt, None, rng) for _ in range(200)]
        assert all(0 <= delay <= window for delay in delays)
        assert max(delays) > 0.8 * window   # the whole window is used: full jitter, not a fixed step
    assert all(policy.delay_s(1, 5.0, rng) >= 5.0 for _ in range(50))   # never sooner than the server asked
    assert policy.delay_s(1, 10**6, rng) == LONGEST_RETRY_AFTER_S


def test_budget_counts_retries_by_kind_and_runs_out():
    budget = RetryBudget(3)
    assert budget.spend(status_error(429)) and budget.spend(status_error(429))
    assert budget.spend(StalledRequestError("no reply"))
    assert not budget.spend(status_error(500))
    assert budget.spent == 3 and budget.by_error == {"429": 2, "stall": 1}
    assert RetryPolicy().budget_for(200) == 100 and RetryPolicy().budget_for(4) == 10
    assert RetryPolicy(budget=0).budget_for(200) == 0


def test_retry_settings_are_validated():
    assert RetryPolicy.parse(None) == RetryPolicy()
    policy = RetryPolicy.parse({"max_attempts": 3, "budget": 5, "request_deadline_s": 2})
    assert (policy.max_attempts, policy.budget, policy.request_deadline_s) == (3, 5, 2.0)
    with pytest.raises(RetrySettingsError, match="unknown retry settings"):
        RetryPolicy.parse({"attempts": 3})
    with pytest.raises(RetrySettingsError, match="must be numbers"):
        RetryPolicy.parse({"budget": "lots"})
    with pytest.raises(RetrySettingsError, match="at least 1"):
        RetryPolicy.parse({"max_attempts": 0})


def test_errors_are_described_with_the_url():
    request = httpx.Request("POST", URL)
    assert URL in describe(openai.APIConnectionError(request=request), URL)
    assert describe(status_error(503), URL).startswith(f"HTTP 503 from {URL}")
    assert describe(StalledRequestError("no reply within 3 s"), URL) == f"stalled: no reply within 3 s ({URL})"
