"""What the engine reports about itself while a load level runs, read from its Prometheus endpoint (`GET /metrics`):
vLLM's series, or llama.cpp's where they mean the same thing.

Counters (prefix-cache queries and hits, preemptions, the queue-time histogram's sum and count) are read as the
level's measured requests start and again when they have finished; the level gets their deltas, so the warm-up
is not counted. Gauges (KV-cache usage, running and waiting requests) are sampled every `SAMPLE_INTERVAL_S`
while the requests run; the level gets their max and mean. Each series is combined over its label sets (one
per engine core under data parallelism): counts are summed, the KV-cache fraction is averaged, so it stays a
fraction of the whole cache.

Where each figure comes from (`SERIES`; the names after `vllm:` and `llamacpp:`, llama.cpp's as its build
0c1e57098 writes them, without labels). What llama.cpp does not report stays None in its levels:

| figure                 | vLLM                                   | llama.cpp                                          |
|------------------------|----------------------------------------|----------------------------------------------------|
| running                | num_requests_running                   | requests_processing: slots busy with a request     |
| waiting                | num_requests_waiting                   | requests_deferred: requests waiting for a slot     |
| kv_cache_usage         | kv_cache_usage_perc                    | kv_cache_usage_ratio in older builds; none now     |
| prefix_cache_queries   | prefix_cache_queries_total             | prompt_tokens_total + prompt_tokens_cached_total   |
| prefix_cache_hits      | prefix_cache_hits_total                | prompt_tokens_cached_total: reused from a slot     |
| preemptions            | num_preemptions_total                  | none: a request keeps its slot to the end          |
| queue_time_s_sum/count | request_queue_time_seconds_sum/_count  | none: no per-request queue time                    |

llama.cpp's other series have no column here: tokens_predicted_total and prompt_seconds_total (throughput the
client measures itself), n_decode_total and n_busy_slots_per_decode (its mean batch since it started, not over
a level), n_tokens_max, and the speculative-decoding counters.

An endpoint without /metrics (transformers serve, paid APIs), or one that fails, leaves every figure None:
reading metrics never fails a load test.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Container, Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass

import httpx

SAMPLE_INTERVAL_S = 0.25
SCRAPE_TIMEOUT_S = 5.0

_SERIES_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# name{labels} value [timestamp]; the labels are taken apart by _LABEL, one at a time.
_SAMPLE_LINE = re.compile(
    rf"(?P<name>{_SERIES_NAME.pattern})(?:\{{(?P<labels>.*)\}})?[ \t]+(?P<value>\S+)(?:[ \t]+-?\d+)?[ \t]*")
_LABEL = re.compile(r'[ \t]*(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"(?P<value>(?:[^"\\]|\\.)*)"[ \t]*(?:,|$)')
_LABEL_ESCAPE = re.compile(r"\\(.)")
_UNESCAPED = {"n": "\n"}


@dataclass(frozen=True)
class Sample:
    """One line of the exposition: a series' name, its labels and its value."""

    name: str
    labels: dict[str, str]
    value: float


def parse_exposition(text: str, names: Container[str] | None = None) -> list[Sample]:
    """The samples of a Prometheus text exposition, only those named in `names` when given. Comments (HELP,
    TYPE) and blank lines are skipped, and so is any line that does not parse: a server's odd line must not
    cost the level its figures. Histograms arrive as their own series (`_bucket`, `_sum`, `_count`)."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if names is not None and ((name := _SERIES_NAME.match(line)) is None or name[0] not in names):
            continue
        sample = _parse_sample(line)
        if sample is not None:
            samples.append(sample)
    return samples


def _parse_sample(line: str) -> Sample | None:
    match = _SAMPLE_LINE.fullmatch(line)
    if match is None:
        return None
    try:
        value = float(match["value"])   # also NaN, +Inf and -Inf, as the format writes them
    except ValueError:
        return None
    labels = _parse_labels(match["labels"] or "")
    return None if labels is None else Sample(match["name"], labels, value)


def _parse_labels(text: str) -> dict[str, str] | None:
    labels, position, end = {}, 0, len(text.rstrip())
    while position < end:
        match = _LABEL.match(text, position)
        if match is None:
            return None
        labels[match["key"]] = _LABEL_ESCAPE.sub(lambda m: _UNESCAPED.get(m[1], m[1]), match["value"])
        position = match.end()
    return labels


# One source of a figure: a series' name, or several names whose values add up.
Source = str | tuple[str, ...]


@dataclass(frozen=True)
class Series:
    """Where one figure is read: its sources in order, the first the exposition has wins. vLLM's current name
    comes first and older releases' after it (an external endpoint may run an older vLLM), then llama.cpp's;
    a server writes one engine's names only, so the order matters among one engine's names alone."""

    sources: tuple[Source, ...]
    fraction: bool = False   # a share of each engine's cache: averaged over engines, not summed

    def read(self, values: Mapping[str, list[float]]) -> float | None:
        """The figure from the first source whose series all have values (each series' label sets combined,
        the series of a sum added up); None when no source has."""
        for source in self.sources:
            names = _names(source)
            if all(values.get(name) for name in names):
                return sum(self._combined(values[name]) for name in names)
        return None

    def _combined(self, values: list[float]) -> float:
        return sum(values) / len(values) if self.fraction else sum(values)


def _names(source: Source) -> tuple[str, ...]:
    return (source,) if isinstance(source, str) else source


# llama.cpp counts apart the prompt tokens it computed and those it reused from a slot's cache; together they are
# every prompt token looked up, which is what vLLM's prefix-cache queries count.
LLAMACPP_PROMPT_TOKENS = ("llamacpp:prompt_tokens_total", "llamacpp:prompt_tokens_cached_total")

SERIES = {
    "kv_cache_usage": Series(("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc",
                              "llamacpp:kv_cache_usage_ratio"), fraction=True),
    "running": Series(("vllm:num_requests_running", "llamacpp:requests_processing")),
    "waiting": Series(("vllm:num_requests_waiting", "llamacpp:requests_deferred")),
    "prefix_cache_queries": Series(("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total",
                                    LLAMACPP_PROMPT_TOKENS)),
    "prefix_cache_hits": Series(("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total",
                                 "llamacpp:prompt_tokens_cached_total")),
    "preemptions": Series(("vllm:num_preemptions_total",)),
    "queue_time_s_sum": Series(("vllm:request_queue_time_seconds_sum",)),
    "queue_time_count": Series(("vllm:request_queue_time_seconds_count",)),
}
SERIES_NAMES = frozenset(name for series in SERIES.values() for source in series.sources for name in _names(source))


def read_figures(text: str) -> dict[str, float]:
    """The figures of `SERIES` that an exposition reports, each combined over its label sets; values that are
    not finite (NaN) are left out, and so is a figure with none left."""
    values: dict[str, list[float]] = {}
    for sample in parse_exposition(text, SERIES_NAMES):
        if math.isfinite(sample.value):
            values.setdefault(sample.name, []).append(sample.value)
    figures = {figure: series.read(values) for figure, series in SERIES.items()}
    return {figure: value for figure, value in figures.items() if value is not None}


@dataclass(frozen=True)
class EngineLevelMetrics:
    """What the engine reported over one load level; None where it did not say."""

    prefix_cache_hit_rate: float | None = None   # prompt tokens found in the prefix cache / tokens looked up
    kv_cache_usage_max: float | None = None      # 0..1 of the KV cache
    kv_cache_usage_mean: float | None = None
    running_max: int | None = None               # requests in the running batch
    running_mean: float | None = None
    waiting_max: int | None = None               # requests queued for a place in it
    waiting_mean: float | None = None
    preemptions: int | None = None               # requests evicted from the batch (their cache reclaimed)
    queue_time_ms_mean: float | None = None      # mean wait of the requests that finished during the level

    def row(self) -> dict[str, float | int | None]:
        """The figures as `serving_load_levels` columns: each under an `engine_` prefix."""
        return {f"engine_{name}": value for name, value in asdict(self).items()}


NOT_REPORTED = EngineLevelMetrics()
ENGINE_METRIC_COLUMNS = tuple(NOT_REPORTED.row())


def summarise_engine_metrics(before: Mapping[str, float] | None, during: Sequence[Mapping[str, float]],
                             after: Mapping[str, float] | None) -> EngineLevelMetrics:
    """A level's figures from the counters read before and after it and the gauges sampled while it ran (each a
    `read_figures` result). Nothing read before means no metrics at all: every figure is None."""
    if before is None:
        return NOT_REPORTED

    def delta(figure: str) -> float | None:
        """A counter's growth over the level; None when unread or when it went down (the server restarted)."""
        if after is None or figure not in before or figure not in after or after[figure] < before[figure]:
            return None
        return after[figure] - before[figure]

    def gauge(figure: str) -> list[float]:
        return [sample[figure] for sample in during if figure in sample]

    queries, hits = delta("prefix_cache_queries"), delta("prefix_cache_hits")
    waited_s, finished = delta("queue_time_s_sum"), delta("queue_time_count")
    preempted = delta("preemptions")
    usage, running, waiting = gauge("kv_cache_usage"), gauge("running"), gauge("waiting")
    return EngineLevelMetrics(
        prefix_cache_hit_rate=hits / queries if queries and hits is not None else None,
        kv_cache_usage_max=max(usage, default=None),
        kv_cache_usage_mean=_mean(usage),
        running_max=round(max(running)) if running else None,
        running_mean=_mean(running),
        waiting_max=round(max(waiting)) if waiting else None,
        waiting_mean=_mean(waiting),
        preemptions=round(preempted) if preempted is not None else None,
        queue_time_ms_mean=waited_s / finished * 1000 if finished and waited_s is not None else None,
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def metrics_url(base_url: str) -> str:
    """The Prometheus endpoint of the server behind an OpenAI base URL (which ends in /v1)."""
    return base_url.rstrip("/").removesuffix("/v1") + "/metrics"


class EngineMetricsWatch:
    """Held (`async with`) around a level's measured requests: reads the counters as it is entered, samples the
    gauges every `interval_s` while it is held, reads the counters again as it is left; `summary` then holds
    the level's figures, all None when the endpoint has no metrics. One watch per level."""

    def __init__(self, url: str, interval_s: float = SAMPLE_INTERVAL_S, timeout_s: float = SCRAPE_TIMEOUT_S):
        self.url = url
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.summary = NOT_REPORTED
        self._client: httpx.AsyncClient | None = None
        self._before: dict[str, float] | None = None
        self._during: list[dict[str, float]] = []
        self._sampler: asyncio.Task | None = None

    async def __aenter__(self) -> EngineMetricsWatch:
        self._client = httpx.AsyncClient(timeout=self.timeout_s)
        self._before = await self._read()
        if self._before is not None:
            self._sampler = asyncio.create_task(self._sample_gauges())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with suppress(asyncio.CancelledError):
                await self._sampler
        after = await self._read() if self._before is not None else None
        await self._client.aclose()
        self.summary = summarise_engine_metrics(self._before, self._during, after)

    async def _sample_gauges(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            figures = await self._read()
            if figures is not None:
                self._during.append(figures)

    async def _read(self) -> dict[str, float] | None:
        """The figures the endpoint reports now; None when it cannot be read or reports none of them."""
        try:
            response = await self._client.get(self.url)
        except httpx.HTTPError:   # refused, timed out, not HTTP: no metrics here
            return None
        if response.status_code != 200:
            return None
        return read_figures(response.text) or None
