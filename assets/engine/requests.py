"""What the engine step sends and stores, as plain functions of the variant: the samples still to generate,
the sampling parameters an endpoint accepts, the load test's levels and prompts, and the rows a level's
measurements become."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pandas as pd

from assets.benchmarks.prompts import build_messages
from assets.engine.engine_metrics import NOT_REPORTED, EngineLevelMetrics
from assets.engine.generation import SampleRequest
from assets.engine.gpu_telemetry import GpuLevelTelemetry, kwh_per_million_tokens, not_measured
from assets.engine.host_load import HostConditions, not_watched
from assets.engine.loadtest import Load, RequestTiming, Slo, flatten_level, load_levels, summarise_level
from assets.matrix import ExternalSettings, Variant


class ServingConfigError(ValueError):
    """The variant's serving block asks for prompts it does not have."""


def sample_seed(benchmark: str, item_id: str, sample_index: int) -> int:
    """The seed of one sample: fixed by what is sampled, never by who samples it, so every variant draws sample i of
    an item with the same seed (common random numbers: paired comparisons between variants lose the noise of
    independent draws) and a rerun draws it again the same way, on engines that honour per-request seeds."""
    digest = hashlib.sha256(f"{benchmark}\0{item_id}\0{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def pending_requests(variant: Variant, items: pd.DataFrame, finished: pd.DataFrame) -> list[SampleRequest]:
    """Every (item, sample) of the variant that has no stored generation for its config yet, each with its seed
    unless the engine is told not to send seeds (`per_request_seed: false`, for an API that refuses them)."""
    done = set(zip(finished["benchmark"], finished["item_id"], finished["sample_index"], strict=True))
    seeded = variant.engine.settings.per_request_seed
    return [
        SampleRequest(row.benchmark, row.item_id, sample, build_messages(row.problem, variant.protocol,
                                                                    getattr(row, "answer_format", None)),
                      sample_seed(row.benchmark, row.item_id, sample) if seeded else None)
        for row in items.itertuples()
        for sample in range(variant.protocol.samples_for(row.benchmark))
        if (row.benchmark, row.item_id, sample) not in done
    ]


def expected_samples(variant: Variant, benchmarks: Sequence[str]) -> int:
    """How many samples the items of `benchmarks` (one entry per item) need under the variant's protocol."""
    return sum(variant.protocol.samples_for(benchmark) for benchmark in benchmarks)


def shared_sampling(variant: Variant) -> dict:
    """The protocol's sampling that generation, warm-up and the load test all send."""
    return {"temperature": variant.protocol.temperature, "top_p": variant.protocol.top_p}


def request_sampling(variant: Variant, sampling: dict) -> dict:
    """The sampling parameters a generation request sends: the protocol's, adapted for APIs that refuse some
    (OpenAI's reasoning models take `max_completion_tokens` and only their own temperature and top_p). What
    was sent is stored with every sample."""
    settings = variant.engine.settings
    if not isinstance(settings, ExternalSettings):
        return dict(sampling)
    adapted = dict(sampling)
    if settings.fixed_sampling:
        adapted.pop("temperature", None)
        adapted.pop("top_p", None)
    limit = settings.token_limit_param
    if "max_tokens" in adapted and limit != "max_tokens":
        adapted[limit] = adapted.pop("max_tokens")
    return adapted


def generation_sampling(variant: Variant) -> dict:
    """What every benchmark sample is requested with: the shared sampling and the protocol's token limit."""
    return request_sampling(variant, {**shared_sampling(variant), "max_tokens": variant.protocol.max_tokens})


def serving_prompts(variant: Variant, items: pd.DataFrame) -> tuple[str, ...]:
    """The load test's prompts: empty for synthetic ones of `input_len` tokens, else the named benchmark's
    items rendered as the evaluation sends them (the protocol's system prompt goes with them, in the Load)."""
    if variant.serving.prompts == "synthetic":
        return ()
    chosen = items[items["benchmark"] == variant.serving.prompts]
    if chosen.empty:
        raise ServingConfigError(f"serving prompts come from benchmark '{variant.serving.prompts}', which has no "
                                 f"items for variant '{variant.name}'")
    return tuple(build_messages(problem, variant.protocol)[-1]["content"] for problem in chosen["problem"])


def serving_loads(variant: Variant, sampling: dict, prompts: tuple[str, ...] = ()) -> list[Load]:
    """The variant's load levels: closed-loop concurrencies, then Poisson request rates."""
    serving = variant.serving
    common = {"num_requests": serving.requests_per_level, "input_len": serving.input_len,
              "output_len": serving.output_len, "warmup": serving.warmup_requests, "sampling": sampling,
              "exact_output_len": variant.engine.settings.FORCES_OUTPUT_LENGTH,
              "per_chunk_usage": variant.engine.settings.USAGE_PER_CHUNK,
              "prompts": prompts,
              "system_prompt": variant.protocol.system_prompt if prompts else None}
    return load_levels(serving.concurrency, serving.request_rates, **common)


def variant_slo(variant: Variant) -> Slo:
    return Slo(variant.serving.slo_ttft_ms, variant.serving.slo_tpot_ms)


def _profile(load: Load) -> tuple[str, float]:
    return ("concurrency", float(load.concurrency)) if load.concurrency else ("rate", float(load.request_rate))


def _input_len(load: Load, timings: Sequence[RequestTiming]) -> int:
    """The prompt length of a level: the synthetic target, or for real prompts the mean the engine counted."""
    if not load.prompts:
        return load.input_len
    counted = [t.prompt_tokens for t in timings if t.ok and t.prompt_tokens]
    return round(sum(counted) / len(counted)) if counted else 0


def level_row(variant: Variant, load: Load, timings: Sequence[RequestTiming], duration_s: float,
              engine_metrics: EngineLevelMetrics = NOT_REPORTED,
              gpus: GpuLevelTelemetry | None = None, host: HostConditions | None = None) -> dict:
    """One `serving_load_levels` row: the level's summary flattened, with what was asked of it, what the engine
    reported about itself meanwhile (`engine_` columns, NULL where it reported nothing), what the GPUs did
    (`gpu_` columns, NULL with the reason in gpu_telemetry where they were not read) and what else the host did
    (`host_` columns: clean or contended, and why)."""
    slo = variant_slo(variant)
    profile, amount = _profile(load)
    return {**flatten_level(summarise_level(load, timings, duration_s, slo)), "profile": profile, "load": amount,
            "input_len": _input_len(load, timings), "output_len": load.output_len,
            "prompts": variant.serving.prompts, "slo_ttft_ms": slo.ttft_ms, "slo_tpot_ms": slo.tpot_ms,
            **engine_metrics.row(), **gpu_columns(gpus or not_measured("not watched"), timings),
            **(host or not_watched("not watched")).row()}


def gpu_columns(gpus: GpuLevelTelemetry, timings: Sequence[RequestTiming]) -> dict:
    """What the GPUs did over a level (`gpu_` columns), with the energy per million output tokens it served."""
    output_tokens = sum(t.output_tokens or 0 for t in timings if t.ok)
    return {**gpus.row(),
            "gpu_kwh_per_million_output_tokens": kwh_per_million_tokens(gpus.gpu_energy_j, output_tokens)}


def request_rows(load: Load, timings: Sequence[RequestTiming]) -> list[dict]:
    """The `serving_request_timings` rows of one level, one per measured request."""
    profile, amount = _profile(load)
    return [{"profile": profile, "load": amount, "request_index": index, "ok": t.ok, "error": t.error,
             "prompt_tokens": t.prompt_tokens, "output_tokens": t.output_tokens, "ttft_ms": t.ttft_ms,
             "tpot_ms": t.tpot_ms, "e2el_ms": t.e2el_ms, "chunks": t.chunks}
            for index, t in enumerate(timings)]
