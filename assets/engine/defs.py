"""One step, one engine: deploy the variant's engine, generate every benchmark sample, load-test it, stop it.

Loading a large model takes minutes, so the three assets come from one step that holds the engine for its
whole life; the step runs in the `engine` pool so two never share an accelerator.
"""

import asyncio
import json
from collections.abc import Callable

import dagster as dg
import openai
import pandas as pd

from assets.benchmarks.defs import benchmark_items
from assets.benchmarks.prompts import build_messages
from assets.engine.generation import SampleRequest, generate, with_token_split
from assets.engine.loadtest import Endpoint, Load, Slo, flatten_level, run_level, summarise_level
from assets.models.defs import quantized_model
from assets.models.memory import PlanError, gpu_named, plan_variant
from assets.plots import throughput_latency_chart
from assets.variants import config_hash
from assets.matrix import Variant
from assets.partitions import variant_partitions
from resources.engines import Deployment, EngineResource
from resources.matrix import MatrixResource
from resources.prices import PriceCatalogResource
from resources.warehouse import WarehouseResource
from warehouse import utc_now

ENGINE_POOL = "engine"
REQUEST_TIMEOUT_S = 1800.0



def pending_requests(variant: Variant, items: pd.DataFrame, finished: pd.DataFrame) -> list[SampleRequest]:
    """Every (item, sample) of the variant that has no stored generation for its config yet."""
    done = set(zip(finished["benchmark"], finished["item_id"], finished["sample_index"]))
    return [
        SampleRequest(row.benchmark, row.item_id, sample, build_messages(row.problem, variant.protocol))
        for row in items.itertuples()
        for sample in range(variant.protocol.samples_for(row.benchmark))
        if (row.benchmark, row.item_id, sample) not in done
    ]


def _client(deployment: Deployment) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=deployment.base_url, api_key=deployment.api_key,
                              timeout=REQUEST_TIMEOUT_S, max_retries=1)


def request_sampling(variant: Variant, sampling: dict) -> dict:
    """The sampling parameters a generation request sends: the protocol's, adapted for APIs that refuse some
    (OpenAI's reasoning models take `max_completion_tokens` and only their own temperature and top_p). What
    was sent is stored with every sample."""
    options = variant.engine.options
    adapted = dict(sampling)
    if options.get("fixed_sampling"):
        adapted.pop("temperature", None)
        adapted.pop("top_p", None)
    limit = options.get("token_limit_param", "max_tokens")
    if "max_tokens" in adapted and limit != "max_tokens":
        adapted[limit] = adapted.pop("max_tokens")
    return adapted


def planned_memory(context, variant: Variant, checkpoint: str | None, gpu_label: str | None) -> dict | None:
    """The memory plan made before the engine starts, stored with the deployment; None for external endpoints
    or architectures the planner does not know (logged, not fatal: the engine itself is the judge)."""
    if variant.engine.kind == "external":
        return None
    try:
        planned = plan_variant(variant, checkpoint)
    except (PlanError, TypeError, ValueError) as error:   # a config the planner does not understand
        context.log.warning(f"no memory plan: {type(error).__name__}: {error}")
        return None
    plan = planned.plan
    record = {"weight_bytes": plan.weight_bytes, "weight_source": plan.weight_source,
              "kv_bytes_per_token": plan.kv_bytes_per_token, "max_model_len": plan.max_model_len,
              "sequences": plan.concurrency, "tensor_parallel": planned.tensor_parallel,
              "pipeline_parallel": planned.pipeline_parallel, "overhead_per_gpu": plan.overhead_per_gpu}
    gpu = gpu_named(gpu_label)
    if gpu:
        fit = planned.rows([gpu])[0]
        record.update(gpu=gpu.name, needed_gib_per_gpu=round(fit["needed_gib"], 3),
                      usable_gib_per_gpu=round(fit["usable_gib"], 3), fits=fit["fits"],
                      full_length_sequences=fit["full_length_sequences"])
        if not fit["fits"]:
            context.log.warning(f"memory plan: {fit['needed_gib']:.1f} GiB per {gpu.name} with every sequence at "
                                f"full length, {fit['usable_gib']:.1f} usable; {fit['full_length_sequences']} "
                                "full-length sequences fit at once")
    return record


def token_counter(model_path: str, engine_kind: str) -> Callable[[str], int] | None:
    """Counts tokens with the served model's own tokenizer; None for external endpoints (no local files)."""
    if engine_kind == "external":
        return None
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


async def _generate(context, warehouse, variant, deployment, requests, sampling, sample_config, run_id,
                    count_tokens) -> int:
    def write_batch(rows: list[dict]) -> None:
        rows = [with_token_split(row, count_tokens, variant.protocol.reasoning_prefilled) for row in rows]
        frame = pd.DataFrame(rows).assign(variant=variant.name, config_hash=sample_config, run_id=run_id)
        warehouse.insert_new("benchmark_generations", frame)

    step = max(1, len(requests) // 10)

    def progress(finished: int, total: int) -> None:
        if finished % step == 0 or finished == total:
            context.log.info(f"generated {finished}/{total} samples")

    async with _client(deployment) as client:
        return await generate(client, deployment.served_model, requests, sampling,
                              variant.engine.concurrency, write_batch, progress)


def serving_prompts(variant: Variant, items: pd.DataFrame) -> tuple[str, ...]:
    """The load test's prompts: empty for synthetic ones of `input_len` tokens, else the named benchmark's
    items rendered as the evaluation sends them (the protocol's system prompt goes with them, in the Load)."""
    if variant.serving.prompts == "synthetic":
        return ()
    chosen = items[items["benchmark"] == variant.serving.prompts]
    if chosen.empty:
        raise dg.Failure(f"serving prompts come from benchmark '{variant.serving.prompts}', which has no items "
                         f"for variant '{variant.name}'")
    return tuple(build_messages(problem, variant.protocol)[-1]["content"] for problem in chosen["problem"])


def serving_loads(variant: Variant, sampling: dict, prompts: tuple[str, ...] = ()) -> list[Load]:
    serving = variant.serving
    common = {"num_requests": serving.requests_per_level, "input_len": serving.input_len,
              "output_len": serving.output_len, "warmup": serving.warmup_requests, "sampling": sampling,
              "exact_output_len": variant.engine.kind == "vllm", "per_chunk_usage": variant.engine.kind == "vllm",
              "prompts": prompts,
              "system_prompt": variant.protocol.system_prompt if prompts else None}
    return ([Load(concurrency=c, **common) for c in serving.concurrency]
            + [Load(request_rate=r, **common) for r in serving.request_rates])


def _input_len(load: Load, timings: list) -> int:
    """The prompt length of a level: the synthetic target, or for real prompts the mean the engine counted."""
    if not load.prompts:
        return load.input_len
    counted = [t.prompt_tokens for t in timings if t.ok and t.prompt_tokens]
    return round(sum(counted) / len(counted)) if counted else 0


async def _load_test(context, variant: Variant, deployment: Deployment, sampling: dict,
                     prompts: tuple[str, ...]) -> tuple[list[dict], list[dict]]:
    endpoint = Endpoint(deployment.base_url, deployment.served_model, deployment.api_key)
    slo = Slo(variant.serving.slo_ttft_ms, variant.serving.slo_tpot_ms)
    levels, requests = [], []
    loads = serving_loads(variant, sampling, prompts)
    for number, load in enumerate(loads, start=1):
        context.log.info(f"load level {number}/{len(loads)}: "
                         + (f"concurrency {load.concurrency}" if load.concurrency else f"{load.request_rate} req/s")
                         + f", {load.num_requests} requests")
        timings, duration = await run_level(endpoint, load)
        profile, amount = ("concurrency", load.concurrency) if load.concurrency else ("rate", load.request_rate)
        levels.append({**flatten_level(summarise_level(load, timings, duration, slo)), "profile": profile,
                       "load": float(amount), "input_len": _input_len(load, timings),
                       "output_len": load.output_len,
                       "prompts": variant.serving.prompts,
                       "slo_ttft_ms": slo.ttft_ms, "slo_tpot_ms": slo.tpot_ms})
        requests += [
            {"profile": profile, "load": float(amount), "request_index": index, "ok": t.ok, "error": t.error,
             "prompt_tokens": t.prompt_tokens, "output_tokens": t.output_tokens, "ttft_ms": t.ttft_ms,
             "tpot_ms": t.tpot_ms, "e2el_ms": t.e2el_ms, "chunks": t.chunks}
            for index, t in enumerate(timings)
        ]
    return levels, requests


@dg.multi_asset(
    specs=[
        dg.AssetSpec("engine_deployment", group_name="serving", kinds={"vllm", "duckdb"}, deps=[quantized_model],
                     description="The engine that served the variant: engine, version, argv, endpoint, startup "
                                 "time and memory, one row per run. Started and stopped inside this step."),
        dg.AssetSpec("benchmark_generations", group_name="generation", kinds={"openai", "duckdb"},
                     deps=["engine_deployment", benchmark_items],
                     description="k samples per benchmark item through the OpenAI API, with sampling "
                                 "parameters, token counts and latency; resumes where a crashed run stopped."),
        dg.AssetSpec("serving_benchmark", group_name="serving", kinds={"openai", "duckdb"},
                     deps=["engine_deployment"],
                     description="Closed-loop load test per concurrency level: TTFT, TPOT, end-to-end latency "
                                 "percentiles and throughput."),
    ],
    partitions_def=variant_partitions,
    pool=ENGINE_POOL,
    can_subset=False,
)
def engine_step(context: dg.AssetExecutionContext, matrix: MatrixResource, warehouse: WarehouseResource,
                engine: EngineResource, prices: PriceCatalogResource):
    """Start the variant's engine once, generate every missing sample, load-test it, and stop it."""
    variant = matrix.variant(context.partition_key)
    model = warehouse.query("SELECT local_path FROM quantized_models WHERE variant = ?", [variant.name])
    if model.empty:
        raise dg.Failure(f"no quantized_model for variant '{variant.name}'; materialize quantized_model first")
    items = warehouse.query(
        "SELECT benchmark, item_id, problem FROM benchmark_items WHERE variant = ? ORDER BY benchmark, position",
        [variant.name])
    sample_config = config_hash(warehouse, variant)
    finished = warehouse.query(
        "SELECT benchmark, item_id, sample_index FROM benchmark_generations WHERE variant = ? AND config_hash = ?",
        [variant.name, sample_config])
    requests = pending_requests(variant, items, finished)
    expected = sum(variant.protocol.samples_for(benchmark) for benchmark in items["benchmark"])
    context.log.info(f"{expected} samples in all, {expected - len(requests)} already stored, {len(requests)} to go")

    protocol = variant.protocol
    shared_sampling = {"temperature": protocol.temperature, "top_p": protocol.top_p}
    run_id = context.run.run_id
    count_tokens = token_counter(model.iloc[0]["local_path"], variant.engine.kind)
    memory_plan = planned_memory(context, variant, model.iloc[0]["local_path"], prices.gpu_label(variant.hardware))
    with engine.deploy(variant.engine, model.iloc[0]["local_path"], served_name=variant.name,
                       log_name=f"{variant.name}-{run_id[:8]}", trust_remote_code=variant.model.trust_remote_code,
                       warmup_sampling=shared_sampling) as deployment:
        context.log.info(f"{deployment.engine} ready at {deployment.base_url} after {deployment.startup_seconds:.1f} s")
        record = {"variant": variant.name, "run_id": run_id, "engine": deployment.engine,
                  "engine_version": deployment.engine_version, "argv": " ".join(deployment.argv),
                  "base_url": deployment.base_url, "served_model": deployment.served_model,
                  "startup_seconds": deployment.startup_seconds, "peak_rss_bytes": None,
                  "memory_plan": json.dumps(memory_plan) if memory_plan else None, "gpu_memory_bytes": None,
                  "started_at": utc_now(), "stopped_at": None, "status": "running"}
        warehouse.upsert("engine_deployments", pd.DataFrame([record]))
        try:
            generated = asyncio.run(_generate(context, warehouse, variant, deployment, requests,
                                              request_sampling(variant, {**shared_sampling,
                                                                         "max_tokens": protocol.max_tokens}),
                                              sample_config, run_id, count_tokens))
            levels, timings = asyncio.run(_load_test(context, variant, deployment, shared_sampling,
                                                     serving_prompts(variant, items)))
            record["status"] = "stopped"
        except BaseException:
            record["status"] = "failed"
            raise
        finally:
            record["stopped_at"] = utc_now()
            deployment.measure_memory()   # before the block ends and the server with it
            record["peak_rss_bytes"] = deployment.peak_rss_bytes
            record["gpu_memory_bytes"] = deployment.gpu_memory_bytes
            warehouse.upsert("engine_deployments", pd.DataFrame([record]))

    now = utc_now()
    warehouse.replace_partition("serving_load_levels", variant.name,
                                pd.DataFrame(levels).assign(variant=variant.name, measured_at=now))
    warehouse.replace_partition("serving_request_timings", variant.name,
                                pd.DataFrame(timings).assign(variant=variant.name))
    stored = warehouse.query(
        "SELECT count(*) AS n FROM benchmark_generations WHERE variant = ? AND config_hash = ?",
        [variant.name, sample_config]).iloc[0]["n"]

    yield dg.MaterializeResult(asset_key="engine_deployment", metadata={
        "dagster/row_count": 1, "engine": deployment.engine, "engine_version": deployment.engine_version or "",
        "argv": " ".join(deployment.argv), "startup_seconds": round(deployment.startup_seconds, 2),
        "peak_rss_bytes": deployment.peak_rss_bytes or 0,
        "gpu_memory_bytes": deployment.gpu_memory_bytes or 0,
        "memory_plan": dg.MetadataValue.json(memory_plan or {}),
    })
    yield dg.MaterializeResult(asset_key="benchmark_generations", metadata={
        "dagster/row_count": int(stored), "generated_this_run": generated, "reused": expected - len(requests),
        "config_hash": sample_config,
    })
    if not levels:
        yield dg.MaterializeResult(asset_key="serving_benchmark", metadata={
            "dagster/row_count": 0, "skipped": "the variant's serving concurrency and request_rates are empty"})
        return
    shown = pd.DataFrame(levels)[["profile", "load", "completed", "failed", "request_throughput",
                                  "output_throughput", "goodput", "ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p99",
                                  "itl_ms_p99", "e2el_ms_p99"]]
    yield dg.MaterializeResult(asset_key="serving_benchmark", metadata={
        "dagster/row_count": len(levels),
        "prompts": variant.serving.prompts,
        "levels": dg.MetadataValue.md(shown.round(2).to_markdown(index=False)),
        "throughput_against_latency": dg.MetadataValue.md(
            throughput_latency_chart(pd.DataFrame(levels), f"{variant.name}: throughput against latency")),
    })
