"""One step, one engine: deploy the variant's engine, generate every benchmark sample, load-test it, stop it.

Loading a large model takes minutes, so the three assets come from one step that holds the engine for its
whole life. The step runs in the `engine` pool, whose limit is the host's device count, and claims the devices
its variant needs (resources.devices) for the engine's life, so two engines never share an accelerator.
"""

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import openai
import pandas as pd

from assets.benchmarks.defs import benchmark_items
from assets.engine.engine_metrics import ENGINE_METRIC_COLUMNS
from assets.engine.generation import GenerationReport, SampleRequest, generate, with_token_split
from assets.engine.host_load import BusyHostError, HostConditions, HostWatch, check_host_before_start
from assets.engine.liveness import WORKER_TAG, this_worker
from assets.engine.loadtest import Endpoint
from assets.engine.memory_plan import plan_record
from assets.engine.requests import ServingConfigError, generation_sampling, shared_sampling
from assets.engine.retry import RetryPolicy, RetrySettingsError
from assets.engine.serving import engine_groups, serving_rows
from assets.engine.step_plan import StepPlan, plan_step
from assets.engine.stopping import run_until_stopped
from assets.matrix import Variant
from assets.models.defs import quantized_model, sample_key_of
from assets.models.memory import PlanError, gpu_named, plan_variant
from assets.partitions import variant_partitions
from assets.plots import throughput_latency_chart
from resources.devices import DeviceResource
from resources.engines import Deployment, EngineResource
from resources.matrix import MatrixResource
from resources.ports import port_listeners
from resources.prices import PriceCatalogResource
from resources.warehouse import WarehouseResource
from warehouse import utc_now

ENGINE_POOL = "engine"


def _planned_memory(context: dg.AssetExecutionContext, variant: Variant, checkpoint: str,
                    gpu_label: str | None) -> dict | None:
    """The memory plan made before the engine starts; None for external endpoints or architectures the planner
    does not know (logged, not fatal: the engine itself is the judge)."""
    if variant.engine.kind == "external":
        return None
    try:
        record = plan_record(plan_variant(variant, checkpoint), gpu_named(gpu_label))
    except (PlanError, TypeError, ValueError) as error:   # a config the planner does not understand
        context.log.warning(f"no memory plan: {type(error).__name__}: {error}")
        return None
    if record.get("fits") is False:
        context.log.warning(f"memory plan: {record['needed_gib_per_gpu']:.1f} GiB per {record['gpu']} with every "
                            f"sequence at full length, {record['usable_gib_per_gpu']:.1f} usable; "
                            f"{record['full_length_sequences']} full-length sequences fit at once")
    return record


def _token_counter(model_path: str, engine_kind: str) -> Callable[[str], int] | None:
    """Counts tokens with the served model's own tokenizer (for a GGUF file, the one its folder keeps beside it);
    None for external endpoints (no local files)."""
    if engine_kind == "external":
        return None
    from transformers import AutoTokenizer

    path = Path(model_path)
    tokenizer = AutoTokenizer.from_pretrained(path.parent if path.suffix == ".gguf" else path)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


# Stored samples with reasoning text whose reasoning tokens the engine reported as 0 (see with_token_split).
_ZERO_REASONING_SQL = """
SELECT benchmark, item_id, sample_index, response, reasoning_content, finish_reason, completion_tokens
FROM benchmark_generations
WHERE variant = ? AND config_hash = ? AND reasoning_tokens = 0 AND completion_tokens IS NOT NULL
  AND length(coalesce(reasoning_content, '')) > 0
"""


def _recount_reasoning(warehouse: WarehouseResource, variant: Variant, sample_config: str,
                       count_tokens: Callable[[str], int] | None) -> int:
    """Count with the model's tokenizer the reasoning of stored samples an engine reported as 0 tokens."""
    if count_tokens is None:
        return 0
    stored = warehouse.query(_ZERO_REASONING_SQL, [variant.name, sample_config])
    if stored.empty:
        return 0
    rows = [with_token_split({**row, "reasoning_tokens": None}, count_tokens, variant.protocol.reasoning_prefilled)
            for row in stored.to_dict("records")]
    with warehouse.connect() as connection:
        connection.executemany(
            "UPDATE benchmark_generations SET reasoning_tokens = ?, answer_tokens = ? WHERE variant = ? AND "
            "config_hash = ? AND benchmark = ? AND item_id = ? AND sample_index = ?",
            [[row["reasoning_tokens"], row["answer_tokens"], variant.name, sample_config, row["benchmark"],
              row["item_id"], row["sample_index"]] for row in rows])
    return len(rows)


def _deployment_record(variant: Variant, run_id: str, memory_plan: dict | None) -> dict:
    """The engine_deployments row of this run, before its engine is up: filled in once it is, and written failed,
    with the reason (the engine's log tail included), should it not come up."""
    return {"variant": variant.name, "run_id": run_id, "engine": variant.engine.kind, "engine_version": None,
            "argv": None, "base_url": "", "served_model": variant.name, "startup_seconds": None,
            "peak_rss_bytes": None, "memory_plan": json.dumps(memory_plan) if memory_plan else None,
            "gpu_memory_bytes": None, "started_at": utc_now(), "stopped_at": None, "status": "starting",
            "failure": None, "requested_engine": variant.requested_engine, "engine_note": variant.engine_note}


@contextmanager
def _recorded_start(warehouse: WarehouseResource, record: dict) -> Iterator[None]:
    """Around the engine's start and life: an engine that dies while starting or warming up, before its row is
    written, is recorded as a failed deployment with why (an interruption while starting too)."""
    try:
        yield
    except BaseException as error:
        if record["status"] == "starting":
            record.update(status="failed", stopped_at=utc_now(),
                          failure=f"{type(error).__name__} while starting: {error or 'interrupted'}"[:4000])
            warehouse.upsert("engine_deployments", pd.DataFrame([record]))
        raise


def _generate(context: dg.AssetExecutionContext, deployment: Deployment, variant: Variant,
              requests: list[SampleRequest], write_rows: Callable[[list[dict]], None],
              policy: RetryPolicy) -> GenerationReport:
    step = max(1, len(requests) // 10)

    def progress(finished: int, total: int) -> None:
        if finished % step == 0 or finished == total:
            context.log.info(f"generated {finished}/{total} samples")

    async def run() -> GenerationReport:
        # The client does not retry: `generate` does, with backoff, jitter and a budget, and records each retry.
        async with openai.AsyncOpenAI(base_url=deployment.base_url, api_key=deployment.api_key,
                                      timeout=policy.request_deadline_s + 5, max_retries=0) as client:
            return await generate(client, deployment.served_model, requests, generation_sampling(variant),
                                  variant.engine.concurrency, write_rows, progress, policy=policy,
                                  url=deployment.public_url)

    return run_until_stopped(run())


def _by_error(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} × {kind}" for kind, count in sorted(counts.items(), key=lambda pair: -pair[1]))


def _load_test(context: dg.AssetExecutionContext, deployment: Deployment, variant: Variant,
               prompts: tuple[str, ...], device_env: dict[str, str]) -> tuple[list[dict], list[dict]]:
    endpoint = Endpoint(deployment.base_url, deployment.served_model, deployment.api_key)
    return serving_rows(endpoint, variant, prompts, {**os.environ, **device_env}, context.log.info, port_listeners)


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
                                 "percentiles and throughput, with what vLLM reports meanwhile (prefix-cache "
                                 "hits, KV-cache use, running and waiting requests, preemptions, queue time)."),
    ],
    partitions_def=variant_partitions,
    pool=ENGINE_POOL,
    can_subset=False,
)
def engine_step(context: dg.AssetExecutionContext, matrix: MatrixResource, warehouse: WarehouseResource,
                engine: EngineResource, prices: PriceCatalogResource, devices: DeviceResource):
    """Claim the variant's devices, start its engine once, generate every missing sample, load-test it, and
    stop it."""
    variant = matrix.variant(context.partition_key)
    if variant.not_runnable:
        raise dg.Failure(f"variant '{variant.name}' not run: {variant.not_runnable}")
    if variant.engine_note:
        context.log.warning(f"variant '{variant.name}' is {variant.engine_note}")
    plan = _read_plan(context, warehouse, variant)
    # Who runs this step: should this process die without a word, recovery can tell and free what it holds.
    context.instance.add_run_tags(context.run.run_id, {WORKER_TAG: this_worker().tag()})
    count_tokens = _token_counter(plan.checkpoint, variant.engine.kind)
    recounted = _recount_reasoning(warehouse, variant, plan.sample_key, count_tokens)
    if recounted:
        context.log.info(f"counted the reasoning tokens of {recounted} stored samples the engine had reported as 0")
    memory_plan = _planned_memory(context, variant, plan.checkpoint, prices.gpu_label(variant.hardware))
    _check_host(context, variant)
    served = _serve(context, plan, warehouse, engine, devices, memory_plan, count_tokens)
    now = utc_now()
    warehouse.replace_partition("serving_load_levels", variant.name,
                                pd.DataFrame(served.levels).assign(variant=variant.name, measured_at=now))
    warehouse.replace_partition("serving_request_timings", variant.name,
                                pd.DataFrame(served.timings).assign(variant=variant.name))
    yield _deployment_result(served.deployment, memory_plan)
    yield _generations_result(warehouse, plan, served.generation, served.generation_host)
    yield _serving_result(variant, served.levels)


def _check_host(context: dg.AssetExecutionContext, variant: Variant) -> None:
    """Before an engine of this host starts: a busy host reported, and waited for or refused as the variant's
    serving `busy_host` says (host_load.check_host_before_start)."""
    if variant.engine.kind == "external":
        return
    try:
        check_host_before_start(variant.serving.busy_host, variant.serving.busy_host_wait_s, context.log.warning)
    except BusyHostError as error:
        raise dg.Failure(f"variant '{variant.name}': {error}") from None


def _read_plan(context: dg.AssetExecutionContext, warehouse: WarehouseResource, variant: Variant) -> StepPlan:
    """What the step will do, from what the warehouse holds: the checkpoint, the items, the samples stored."""
    model = warehouse.query("SELECT local_path FROM quantized_models WHERE variant = ?", [variant.name])
    if model.empty:
        raise dg.Failure(f"no quantized_model for variant '{variant.name}'; materialize quantized_model first")
    items = warehouse.query(
        "SELECT benchmark, item_id, problem, answer_format FROM benchmark_items WHERE variant = ? "
        "ORDER BY benchmark, position",
        [variant.name])
    sample_key = sample_key_of(warehouse, variant.name)
    finished = warehouse.query(
        "SELECT benchmark, item_id, sample_index FROM benchmark_generations WHERE variant = ? AND config_hash = ?",
        [variant.name, sample_key])
    try:
        plan = plan_step(variant, model.iloc[0]["local_path"], sample_key, items, finished)
    except (ServingConfigError, RetrySettingsError) as error:
        raise dg.Failure(f"variant '{variant.name}': {error}") from None
    context.log.info(f"{plan.expected} samples in all, {plan.reused} already stored, {len(plan.requests)} to go")
    return plan


@dataclass
class _Served:
    """What the engine's life produced."""

    deployment: Deployment
    generation: GenerationReport
    levels: list[dict]
    timings: list[dict]
    generation_host: HostConditions   # what else the host did while the samples were generated


def _serve(context: dg.AssetExecutionContext, plan: StepPlan, warehouse: WarehouseResource, engine: EngineResource,
           devices: DeviceResource, memory_plan: dict | None, count_tokens: Callable[[str], int] | None) -> _Served:
    """Start the engine on the devices claimed for it (waiting while others hold them), generate, load-test, stop
    it; its engine_deployments row says how it went, whatever happens."""
    variant, run_id = plan.variant, context.run.run_id
    record = _deployment_record(variant, run_id, memory_plan)

    def write_rows(rows: list[dict]) -> None:
        rows = [with_token_split(row, count_tokens, variant.protocol.reasoning_prefilled) for row in rows]
        frame = pd.DataFrame(rows).assign(variant=variant.name, config_hash=plan.sample_key, run_id=run_id)
        warehouse.insert_new("benchmark_generations", frame)

    with devices.claim(variant.engine, f"variant {variant.name} (run {run_id[:8]})", context.log.info) as device_env, \
            _recorded_start(warehouse, record), \
            engine.deploy(variant.engine, plan.checkpoint, served_name=variant.name,
                          log_name=f"{variant.name}-{run_id[:8]}", trust_remote_code=variant.model.trust_remote_code,
                          warmup_sampling=shared_sampling(variant), device_env=device_env) as deployment:
        context.log.info(f"{deployment.engine} ready at {deployment.public_url} after "
                         f"{deployment.startup_seconds:.1f} s")
        record.update(engine=deployment.engine, engine_version=deployment.engine_version,
                      argv=" ".join(deployment.argv), base_url=deployment.public_url,
                      served_model=deployment.served_model, startup_seconds=deployment.startup_seconds,
                      status="running")
        warehouse.upsert("engine_deployments", pd.DataFrame([record]))
        with _recorded_life(warehouse, record, deployment):
            with HostWatch(engine_groups(deployment.base_url, port_listeners)) as host:
                generation = _generate(context, deployment, variant, plan.requests, write_rows, plan.policy)
            if host.summary.contended:
                context.log.warning(f"the samples were generated on a busy host: {host.summary.host_contention}")
            if generation.retries:
                context.log.warning(f"{generation.retries} retries absorbed over {generation.retried_samples} "
                                    f"samples ({_by_error(generation.retries_by_error)})")
            levels, timings = _load_test(context, deployment, variant, plan.prompts, device_env)
    return _Served(deployment, generation, levels, timings, host.summary)


@contextmanager
def _recorded_life(warehouse: WarehouseResource, record: dict, deployment: Deployment) -> Iterator[None]:
    """Around the running engine's work: its row ends stopped, or failed with why, with the memory it used."""
    try:
        yield
        record["status"] = "stopped"
    except BaseException as error:
        record["status"] = "failed"
        record["failure"] = f"{type(error).__name__}: {error or 'interrupted'}"[:2000]
        raise
    finally:
        record["stopped_at"] = utc_now()
        deployment.measure_memory()   # before the block ends and the server with it
        record["peak_rss_bytes"] = deployment.peak_rss_bytes
        record["gpu_memory_bytes"] = deployment.gpu_memory_bytes
        warehouse.upsert("engine_deployments", pd.DataFrame([record]))


def _deployment_result(deployment: Deployment, memory_plan: dict | None) -> dg.MaterializeResult:
    return dg.MaterializeResult(asset_key="engine_deployment", metadata={
        "dagster/row_count": 1, "engine": deployment.engine, "engine_version": deployment.engine_version or "",
        "argv": " ".join(deployment.argv), "startup_seconds": round(deployment.startup_seconds, 2),
        "peak_rss_bytes": deployment.peak_rss_bytes or 0,
        "gpu_memory_bytes": deployment.gpu_memory_bytes or 0,
        "memory_plan": dg.MetadataValue.json(memory_plan or {}),
    })


def _generations_result(warehouse: WarehouseResource, plan: StepPlan, generation: GenerationReport,
                        host: HostConditions) -> dg.MaterializeResult:
    stored = warehouse.query(
        "SELECT count(*) AS n FROM benchmark_generations WHERE variant = ? AND config_hash = ?",
        [plan.variant.name, plan.sample_key]).iloc[0]["n"]
    return dg.MaterializeResult(asset_key="benchmark_generations", metadata={
        "dagster/row_count": int(stored), "generated_this_run": generation.finished,
        "reused": plan.reused, "config_hash": plan.sample_key,
        "retries": generation.retries, "retried_samples": generation.retried_samples,
        "retries_by_error": dg.MetadataValue.json(generation.retries_by_error),
        "host_condition": host.host_condition, "host_conditions": dg.MetadataValue.json(host.row()),
    })


def _serving_result(variant: Variant, levels: list[dict]) -> dg.MaterializeResult:
    if not levels:
        return dg.MaterializeResult(asset_key="serving_benchmark", metadata={
            "dagster/row_count": 0, "skipped": "the variant's serving concurrency and request_rates are empty"})
    measured = pd.DataFrame(levels)
    reported = [column for column in ENGINE_METRIC_COLUMNS if measured[column].notna().any()]
    shown = measured[["profile", "load", "completed", "failed", "request_throughput", "output_throughput",
                      "goodput", "ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p99", "itl_ms_p99", "e2el_ms_p99",
                      *reported]]
    return dg.MaterializeResult(asset_key="serving_benchmark", metadata={
        "dagster/row_count": len(levels),
        "prompts": variant.serving.prompts,
        "levels": dg.MetadataValue.md(shown.round(2).to_markdown(index=False)),
        "throughput_against_latency": dg.MetadataValue.md(
            throughput_latency_chart(measured, f"{variant.name}: throughput against latency")),
    })
