"""Retrying requests the way real endpoints need: rate limits (429), server errors (5xx), dropped connections and
stalled requests are retried with exponential backoff and full jitter, honouring the server's `Retry-After`; a
request that keeps failing gives up after `max_attempts`, and a step gives up when its retry `budget` is spent.
Anything else (400, 401, 404, ...) is a mistake a retry cannot fix and fails at once.

The settings come from the variant's engine settings (`retry:`), all optional:

    engine: {kind: external, ..., retry: {max_attempts: 6, budget: 100, base_delay_s: 1, max_delay_s: 60,
                                         request_deadline_s: 1800}}
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass, fields

import openai

# Status codes a later attempt can succeed on: timeout, conflict, too early, rate limit, and every 5xx.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
LONGEST_RETRY_AFTER_S = 600.0   # a Retry-After beyond this is a misconfigured server, not advice


class RetrySettingsError(ValueError):
    """The engine settings' `retry` block is not valid."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6             # per request, the first one included
    budget: int | None = None         # retries one step may spend in all; None: half its requests, at least 10
    base_delay_s: float = 1.0         # the first backoff's upper bound; it doubles with each attempt
    max_delay_s: float = 60.0         # backoff cap (a longer Retry-After is still honoured)
    request_deadline_s: float = 1800.0   # one attempt's wall-clock limit: past it the request counts as stalled

    @classmethod
    def parse(cls, given: dict | None) -> RetryPolicy:
        """The policy a variant's engine settings give (`retry:`, here `settings.retry`), defaults for what it
        leaves out."""
        given = given or {}
        if not isinstance(given, dict):
            raise RetrySettingsError(f"engine setting 'retry' maps names to numbers, got {given!r}")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise RetrySettingsError(f"unknown retry settings {unknown}; known: {sorted(known)}")
        try:
            policy = cls(**{name: (None if value is None else (int(value) if name in ("max_attempts", "budget")
                                                               else float(value)))
                            for name, value in given.items()})
        except (TypeError, ValueError) as error:
            raise RetrySettingsError(f"retry settings must be numbers: {error}") from None
        if policy.max_attempts < 1 or (policy.budget is not None and policy.budget < 0):
            raise RetrySettingsError("retry max_attempts must be at least 1 and budget at least 0")
        if min(policy.base_delay_s, policy.max_delay_s) < 0 or policy.request_deadline_s <= 0:
            raise RetrySettingsError("retry delays cannot be negative and request_deadline_s must be positive")
        return policy

    def budget_for(self, requests: int) -> int:
        return self.budget if self.budget is not None else max(10, requests // 2)

    def delay_s(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """How long to wait after failed attempt number `attempt` (1-based): full jitter over an exponentially
        growing window, but never less than what the server asked for."""
        window = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        jittered = rng.uniform(0, window)
        return max(jittered, min(retry_after_s, LONGEST_RETRY_AFTER_S)) if retry_after_s is not None else jittered


class StalledRequestError(TimeoutError):
    """One attempt ran past the request deadline."""


def retry_after_s(error: BaseException, now: float | None = None) -> float | None:
    """The wait a server asked for: `retry-after-ms`, or `Retry-After` in seconds or as an HTTP date."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retryable(error: BaseException) -> bool:
    """Whether another attempt can succeed: stalls, lost connections, rate limits and server errors."""
    if isinstance(error, StalledRequestError | openai.APIConnectionError):   # APITimeoutError is a connection error
        return True
    if isinstance(error, openai.APIStatusError):
        return error.status_code in RETRYABLE_STATUS or error.status_code >= 500
    return False


def describe(error: BaseException, url: str) -> str:
    """One line for the warehouse and the log: what failed and where, never the reply's whole body."""
    if isinstance(error, StalledRequestError):
        return f"stalled: {error} ({url})"
    if isinstance(error, openai.APITimeoutError):
        return f"timed out waiting for {url}"
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__
        detail = f": {type(cause).__name__}: {cause}" if cause else ""
        return f"connection error at {url}{detail}"[:300]
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code} from {url}: {error.message}"[:300]
    return f"{type(error).__name__}: {error}"[:300]


class RetryBudget:
    """The retries a step may still spend, shared by its concurrent requests, and what they were spent on."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.spent = 0
        self.by_error: dict[str, int] = {}

    def spend(self, error: BaseException) -> bool:
        """Take one retry for `error`; False when none are left."""
        if self.spent >= self.total:
            return False
        self.spent += 1
        kind = error_kind(error)
        self.by_error[kind] = self.by_error.get(kind, 0) + 1
        return True


def error_kind(error: BaseException) -> str:
    """A short class of error for counting: stall, connection, timeout, or the HTTP status."""
    if isinstance(error, StalledRequestError):
        return "stall"
    if isinstance(error, openai.APITimeoutError):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "connection"
    if isinstance(error, openai.APIStatusError):
        return str(error.status_code)
    return type(error).__name__


async def within_deadline(awaitable, deadline_s: float):
    """`awaitable`, or StalledRequestError when it has not finished within `deadline_s`."""
    try:
        return await asyncio.wait_for(awaitable, deadline_s)
    except TimeoutError:
        raise StalledRequestError(f"no reply within {deadline_s:g} s") from None
