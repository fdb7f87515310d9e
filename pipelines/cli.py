"""The `yardstick` command: the parts that stand alone, without the Dagster UI."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from assets.benchmarks.catalog import BENCHMARKS, BenchmarkDataError
from assets.grading.files import GradeInputError
from assets.grading.sandbox import SandboxUnavailableError
from assets.matrix import MatrixError, load_matrix, matrix_path
from assets.models.memory import PlanError
from pipelines import settings
from resources.disk import DiskSpaceError

if TYPE_CHECKING:
    from resources.warehouse import WarehouseResource


WAREHOUSE_HELP = "DuckDB file or ducklake:postgres:<libpq string> (default: $YARDSTICK_WAREHOUSE, else .yardstick/)"


def _warehouse(path: str | None = None) -> WarehouseResource:
    """The warehouse a command reads or writes: `path` (its --warehouse), else the configured one."""
    from resources.warehouse import WarehouseResource

    return WarehouseResource(path=path or settings.warehouse_path(), lake_data=settings.lake_data())


def _variants(args: argparse.Namespace, quiet: bool = False) -> int:
    """The matrix's variants, one per line; given names, those names once each checked against the matrix (the
    whole matrix is validated either way), so `make run` refuses an unknown variant before anything runs."""
    known = list(load_matrix(args.matrix).variants)
    unknown = [name for name in args.names if name not in known]
    if unknown:
        raise InputError(f"unknown variant{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; the matrix "
                         f"{args.matrix or matrix_path()} has: {', '.join(known)}")
    for name in [] if quiet else dict.fromkeys(args.names) or known:
        print(name)
    return 0


def _recover(args: argparse.Namespace) -> int:
    """Free what runs that died left held (see pipelines.recovery); `make run` calls it before it runs."""
    import dagster as dg

    from pipelines.recovery import recover

    if not os.environ.get("DAGSTER_HOME"):
        print("yardstick recover: DAGSTER_HOME is not set, so Dagster keeps no runs between processes and none "
              "can hold anything", file=sys.stderr)
        return 0
    with dg.DagsterInstance.get() as instance:
        done = recover(instance, _warehouse())
    for recovery in done:
        print(f"yardstick recover: {recovery.what}", file=sys.stderr)
    return 0


def _materialize(args: argparse.Namespace) -> int:
    """Every asset of each variant, as `dagster asset materialize`, as many at once as the host has engine devices,
    stopped cleanly by Ctrl-C or SIGTERM."""
    from pipelines.supervise import materialize, route
    from resources.devices import DeviceResource

    _variants(argparse.Namespace(matrix=None, names=args.variants), quiet=True)
    host = DeviceResource(claims_dir=str(settings.claims_dir()), devices=settings.devices()).host()
    warehouse = _warehouse()
    runnable = route(load_matrix(), list(dict.fromkeys(args.variants)), warehouse)
    return materialize(runnable, warehouse, host, args.select, args.jobs) if runnable else 0


def _leaderboard(args: argparse.Namespace) -> int:
    from assets.leaderboard.printing import (
        FAILED_SQL,
        LEADERBOARD_SQL,
        engine_notes,
        failure_lines,
        printed_leaderboard,
    )

    warehouse = _warehouse(args.warehouse)
    upgraded = warehouse.upgrade()
    if upgraded:
        print(f"warehouse: brought up to the current schema ({upgraded} migrations)", file=sys.stderr)
    with warehouse.connect(read_only=True) as connection:
        table = connection.execute(LEADERBOARD_SQL).df()
        failed = connection.execute(FAILED_SQL).df()
    print(f"warehouse: {warehouse.location} (published results only)")
    print(printed_leaderboard(table).to_markdown(index=False) if len(table)
          else "(the leaderboard is empty: run `make run` first)")
    for line in engine_notes(table):
        print(line)
    for line in failure_lines(failed):
        print(f"warning: {line}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    """The compact summary of each variant's latest published run (assets.leaderboard.report)."""
    from assets.leaderboard.printing import FAILED_SQL, failure_lines
    from assets.leaderboard.report import UNSERVED_SQL, report

    warehouse = _warehouse(args.warehouse)
    warehouse.upgrade()
    with warehouse.connect(read_only=True) as connection:
        lines = report(connection, args.variants)
        failed = connection.execute(FAILED_SQL).df()
        reported = {*connection.execute("SELECT variant FROM latest_published_runs").df()["variant"],
                    *connection.execute(UNSERVED_SQL).df()["variant"]}
    missing = [name for name in args.variants if name not in reported]
    if missing:
        raise InputError(f"no published run of {', '.join(missing)} in {warehouse.location}; "
                         f"`make run VARIANTS=\"{' '.join(missing)}\"` makes one")
    if not lines:
        print("(nothing published yet: run `make run` first)")
    print("\n".join(lines).rstrip())
    for line in failure_lines(failed):
        print(f"warning: {line}", file=sys.stderr)
    return 0


def _regressions(args: argparse.Namespace) -> int:
    """What the regression checks flagged between each variant's latest published run and the one before."""

    warehouse = _warehouse(args.warehouse)
    warehouse.upgrade()
    with warehouse.connect(read_only=True) as connection:
        found = connection.execute("SELECT * FROM regressions ORDER BY variant, kind, subject").df()
    if found.empty:
        print("no regression between each variant's last two published runs")
        return 0
    shown = found.assign(run=found["run_id"].str[:8], previous=found["previous_run_id"].str[:8])
    columns = ["variant", "kind", "subject", "value_before", "value_after", "previous", "run", "evidence"]
    print(shown[columns].round(4).to_markdown(index=False, disable_numparse=_text_columns(columns, "previous", "run")))
    return 1 if args.fail_on_regression else 0


def _compact(args: argparse.Namespace) -> int:
    """A lake's many small files merged and its old snapshots let go; a file checkpointed."""
    warehouse = _warehouse(args.warehouse)
    before, after = warehouse.compact(args.keep_days)
    if warehouse.is_lake:
        print(f"{warehouse.location}: {before} data files before, {after} after; snapshots older than "
              f"{args.keep_days:g} days expired")
    else:
        print(f"{warehouse.location}: checkpointed")
    return 0


def _text_columns(columns: list[str], *names: str) -> list[int]:
    """The positions of columns printed as text as they are: a run id like 9589e131 is not the number 9.589e+131."""
    return [columns.index(name) for name in names if name in columns]


def _history(args: argparse.Namespace) -> int:
    """A variant's evaluation runs, oldest first: when, what changed, scores, throughput, cost."""
    from assets.leaderboard.history import HISTORY_SCORES_SQL, HISTORY_SQL, history_table

    warehouse = _warehouse(args.warehouse)
    warehouse.upgrade()
    with warehouse.connect(read_only=True) as connection:
        runs = connection.execute(HISTORY_SQL, [args.variant]).df()
        scores = connection.execute(HISTORY_SCORES_SQL, [args.variant]).df()
    if runs.empty:
        raise InputError(f"variant '{args.variant}' has no evaluation run in {warehouse.location}; "
                         f"`make run VARIANTS={args.variant}` makes one")
    table = history_table(runs, scores).round(4)
    table = table.astype(object).where(table.notna(), None)   # a benchmark a run did not have: "-", not "nan"
    print(table.to_markdown(index=False, missingval="-", disable_numparse=_text_columns(list(table.columns), "run")))
    return 0


def _grade(args: argparse.Namespace) -> int:
    """Grade model outputs made anywhere, with the same code the pipeline grades with."""
    from assets.benchmarks.catalog import benchmark_spec
    from assets.grading.equivalence import Grader
    from assets.grading.files import check_output_path, read_grade_inputs, write_graded

    check_output_path(args.output)   # before the grading, which may take a while
    rows, inputs = read_grade_inputs(args.input, benchmark_spec(args.benchmark),
                                     reasoning_prefilled=args.think_prefill,
                                     mirror_dir=os.environ.get("YARDSTICK_BENCHMARK_MIRROR"))
    if not rows:
        raise InputError(f"{args.input} has no lines to grade; nothing was written")
    with Grader(workers=args.workers, timeout_s=args.timeout) as grader:
        grades = grader.grade_many(inputs)
    try:
        write_graded(args.output, rows, grades)
    except OSError as error:
        raise InputError(f"cannot write {args.output} ({error.strerror or error}); it was left as it was") from None
    correct = sum(grade.correct for grade in grades)
    print(f"graded {len(grades)} responses: {correct} correct ({correct / max(len(grades), 1):.1%}); "
          f"wrote {'standard output' if args.output == '-' else args.output}", file=sys.stderr)
    return 0


def _numbers(text: str, kind: type) -> list:
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"expected comma-separated numbers, got {text!r}") from None


def _bench(args: argparse.Namespace) -> int:
    """Load-test any OpenAI-compatible endpoint and write every level's measurements to a JSON file."""
    import asyncio
    import os

    from assets.engine.engine_metrics import NOT_REPORTED, EngineMetricsWatch, metrics_url
    from assets.engine.loadtest import Endpoint, Slo, describe_load, load_levels, run_level, summarise_level

    api_key = os.environ.get(args.api_key_env, "") if args.api_key_env else "not-needed"
    if args.api_key_env and not api_key:
        raise InputError(f"environment variable {args.api_key_env} (the API key) is not set")
    endpoint = Endpoint(args.base_url.rstrip("/"), args.model, api_key)
    common = {"num_requests": args.num_requests, "input_len": args.input_len, "output_len": args.output_len,
              "warmup": args.warmup, "exact_output_len": args.exact_output_len,
              "per_chunk_usage": args.per_chunk_usage}
    loads = load_levels(_numbers(args.concurrency, int), _numbers(args.request_rate or "", float), **common)
    slo = Slo(args.slo_ttft_ms, args.slo_tpot_ms)
    levels = []
    for load in loads:
        watch = EngineMetricsWatch(metrics_url(endpoint.base_url))   # what a vLLM server says about itself
        timings, duration = asyncio.run(run_level(endpoint, load, watch))
        level = summarise_level(load, timings, duration, slo)
        if watch.summary != NOT_REPORTED:
            level["engine"] = watch.summary.row()
        levels.append(level)
        ttft, tpot = level["ttft_ms"]["p50"], level["tpot_ms"]["p50"]
        print(f"{describe_load(load)}: {level['completed']} done, {level['failed']} failed, "
              f"{level['output_throughput']:.1f} tok/s, TTFT p50 {'n/a' if ttft is None else f'{ttft:.1f} ms'}, "
              f"TPOT p50 {'n/a' if tpot is None else f'{tpot:.2f} ms'}"
              + (f"; first error: {level['errors'][0]}" if level["errors"] else ""), file=sys.stderr)
    result = {"base_url": endpoint.base_url, "model": endpoint.model, "input_len": args.input_len,
              "output_len": args.output_len, "slo": {"ttft_ms": slo.ttft_ms, "tpot_ms": slo.tpot_ms},
              "levels": levels}
    with open(args.output, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=2)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0 if all(level["completed"] for level in levels) else 1


class InputError(ValueError):
    """A line of the input file is not what the command needs."""


def _plan(args: argparse.Namespace) -> int:
    """The memory plan of a variant: weights, KV cache, and whether it fits each GPU of the catalog."""
    import pandas as pd

    from assets.models.memory import GPUS, plan_variant

    if args.gpu and args.gpu not in GPUS:
        raise InputError(f"unknown GPU '{args.gpu}'; known: {', '.join(GPUS)}")
    matrix = load_matrix(args.matrix)
    if not args.variant:
        return _plan_matrix(matrix, args.gpu)
    variant = matrix.variant(args.variant)
    checkpoint = args.checkpoint or _built_checkpoint(variant)
    planned = plan_variant(variant, checkpoint)
    plan = planned.plan
    print(f"variant {variant.name}: config from {planned.config_source}")
    print(f"weights {_size(plan.weight_bytes)} from the {plan.weight_source} ({plan.parameters / 1e9:.3g} B "
          f"parameters, quantization {variant.quantization.scheme})")
    attention = "latent attention, held whole by every tensor-parallel rank" if plan.latent_attention else "MHA/GQA"
    print(f"KV cache {plan.kv_bytes_per_token / 1024:.2f} KiB per token ({attention}); {plan.max_model_len} tokens "
          f"× {plan.concurrency} sequences = {_size(plan.kv_cache_bytes)}")
    print(f"per GPU: weights and KV ÷ parallel ranks + {_size(plan.overhead_per_gpu)} overhead, against memory × "
          f"gpu_memory_utilization {plan.gpu_memory_utilization}\n")
    gpus = [GPUS[args.gpu]] if args.gpu else list(GPUS.values())
    table = pd.DataFrame(planned.rows(gpus))
    table["fits"] = table["fits"].map({True: "yes", False: "no"})
    _show_tensor_parallel_sizes(table)
    print(table.round(2).to_markdown(index=False))
    return 0


def _plan_matrix(matrix, gpu_name: str | None) -> int:
    """One line per variant: its memory on the GPU its hardware names (or `gpu_name`) at its parallelism."""
    import pandas as pd

    from assets.engine.memory_plan import plan_record
    from assets.models.memory import GIB, GPUS, gpu_named, plan_variant
    from resources.prices import PriceCatalogResource

    prices = PriceCatalogResource()
    rows = []
    for variant in matrix.variants.values():
        if variant.engine.kind == "external":
            continue
        gpu = GPUS.get(gpu_name) if gpu_name else gpu_named(prices.gpu_label(variant.hardware))
        try:
            record = plan_record(plan_variant(variant, _built_checkpoint(variant)), gpu)
        except PlanError as error:
            rows.append({"variant": variant.name, "gpu": f"(not planned: {error})"})
            continue
        row = {"variant": variant.name, "weights_gib": record["weight_bytes"] / GIB,
               "kv_kib_per_token": record["kv_bytes_per_token"] / 1024, "max_model_len": record["max_model_len"],
               "sequences": record["sequences"], "gpu": gpu.name if gpu else f"({variant.hardware})",
               "tp": record["tensor_parallel"], "pp": record["pipeline_parallel"]}
        if gpu:
            row.update(per_gpu_gib=record["needed_gib_per_gpu"], usable_gib=record["usable_gib_per_gpu"],
                       fits=record["fits"], full_length_sequences=record["full_length_sequences"],
                       smallest_tp=record["smallest_tp"], tp_to_start=record["tp_to_start"])
        rows.append(row)
    if not rows:
        print("(no variant of this matrix starts an engine; external endpoints have no memory to plan)")
        return 0
    table = pd.DataFrame(rows)
    _show_tensor_parallel_sizes(table)
    print(f"matrix {matrix.path}: per GPU at each variant's own parallelism, every sequence at max_model_len")
    print(table.round(2).to_markdown(index=False))
    return 0


def _show_tensor_parallel_sizes(table) -> None:
    """None means no tensor-parallel size up to 8 suffices."""
    import pandas as pd

    for column in ("smallest_tp", "tp_to_start"):
        if column in table:
            table[column] = table[column].map(lambda tp: "> 8" if pd.isna(tp) else str(int(tp)))


def _size(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count} bytes"


def _built_checkpoint(variant) -> str | None:
    """The variant's checkpoint when a run has already written it under $YARDSTICK_HOME/models."""
    models = settings.models_dir()
    if variant.quantization.scheme != "none":
        from assets.models.quantize import quantized_path

        quantized = quantized_path(models, variant)
        return str(quantized) if quantized.is_dir() else None
    if variant.model.generate and (models / variant.model.generate).is_dir():
        return str(models / variant.model.generate)
    return None


def _build_tiny_model(args: argparse.Namespace) -> int:
    from assets.models.tiny import build_tiny_model

    print(build_tiny_model(Path(args.output), seed=args.seed))
    return 0


def _k8s_config(args: argparse.Namespace) -> int:
    """Each variant's step pods on Kubernetes (pipelines.kubernetes), as the run config the `evaluation` job gives
    the variant's partition when YARDSTICK_EXECUTOR=k8s."""
    import yaml

    from pipelines.kubernetes import KubernetesConfigError, matrix_pod_configs
    from resources.prices import PriceCatalogError

    _variants(argparse.Namespace(matrix=args.matrix, names=args.variants), quiet=True)
    try:
        configs = matrix_pod_configs(load_matrix(args.matrix))
    except (KubernetesConfigError, PriceCatalogError) as error:
        raise InputError(str(error)) from None
    chosen = dict.fromkeys(args.variants) or configs
    print(yaml.safe_dump({name: {"execution": {"config": configs[name]}} for name in chosen}, sort_keys=False), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="yardstick", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    variants = commands.add_parser("variants", help="list the variants of the evaluation matrix, or check names")
    variants.add_argument("names", nargs="*", help="variants to check against the matrix (default: list them all)")
    variants.add_argument("--matrix", help="matrix YAML (default: $YARDSTICK_MATRIX or pipelines/matrix.yaml)")
    variants.set_defaults(handler=_variants)

    history = commands.add_parser("history", help="a variant's evaluation runs: when, what changed, scores, cost")
    history.add_argument("variant")
    history.add_argument("--warehouse", help=WAREHOUSE_HELP)
    history.set_defaults(handler=_history)

    report_command = commands.add_parser(
        "report", help="a compact summary of variants' latest published runs: accuracy, tokens per correct "
                       "answer, throughput, $/M tokens, break-even volumes against APIs")
    report_command.add_argument("variants", nargs="*", help="variants (default: every variant with a published run)")
    report_command.add_argument("--warehouse", help=WAREHOUSE_HELP)
    report_command.set_defaults(handler=_report)

    regressions = commands.add_parser("regressions", help="what regressed between each variant's last two runs")
    regressions.add_argument("--fail-on-regression", action="store_true", help="exit 1 when anything regressed")
    regressions.add_argument("--warehouse", help=WAREHOUSE_HELP)
    regressions.set_defaults(handler=_regressions)

    compact = commands.add_parser("compact", help="merge a DuckLake warehouse's small files and expire its old "
                                                  "snapshots (a file: checkpoint); safe while runs write")
    compact.add_argument("--keep-days", type=float, default=7.0,
                         help="keep the snapshots (time travel) of the last N days (default: 7)")
    compact.add_argument("--warehouse", help=WAREHOUSE_HELP)
    compact.set_defaults(handler=_compact)

    recover_command = commands.add_parser(
        "recover", help="free what runs that died (killed, out of memory, a restart) still hold")
    recover_command.set_defaults(handler=_recover)

    materialize_command = commands.add_parser(
        "materialize", help="materialize variants' assets (as `dagster asset materialize`), as many at once as the "
                            "host has engine devices, stopped cleanly by Ctrl-C or SIGTERM even while they wait for "
                            "the engine")
    materialize_command.add_argument("variants", nargs="+")
    materialize_command.add_argument("--jobs", type=int, default=None,
                                     help="variants run at once (default: the host's GPUs, or CPU engine slots)")
    materialize_command.add_argument("--select", default="*", help="Dagster asset selection (default: every asset)")
    materialize_command.set_defaults(handler=_materialize)

    leaderboard = commands.add_parser("leaderboard", help="print the leaderboard view of the warehouse")
    leaderboard.add_argument("--warehouse", help=WAREHOUSE_HELP)
    leaderboard.set_defaults(handler=_leaderboard)

    grade = commands.add_parser("grade", help="grade model outputs (JSONL with 'gold' and 'response')")
    grade.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS),
                       help="the benchmark the outputs answer; it fixes the answer format")
    grade.add_argument("--input", required=True, help="JSONL: gold, response, optional reasoning_content")
    grade.add_argument("--output", required=True,
                       help="JSONL: the input fields plus extracted, correct, reason (- for standard output); a "
                            "link, FIFO or device is refused, never replaced")
    grade.add_argument("--workers", type=int, default=None, help="grading processes (default: one per core)")
    grade.add_argument("--timeout", type=float, default=5.0, help="seconds allowed per equivalence check")
    grade.add_argument("--think-prefill", action="store_true",
                       help="every response started inside <think> (R1's template prefills it): text without "
                            "</think> is unfinished reasoning. Without it the response decides: </think> splits "
                            "reasoning from answer, an unclosed <think> is truncated, neither is all answer")
    # Earlier versions' way to ask for what is now the default.
    grade.add_argument("--no-think-prefill", action="store_true", help=argparse.SUPPRESS)
    grade.set_defaults(handler=_grade)

    bench = commands.add_parser("bench", help="load-test an OpenAI-compatible endpoint")
    bench.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000/v1")
    bench.add_argument("--model", required=True, help="the model name the endpoint serves")
    bench.add_argument("--concurrency", default="1,4,16", help="closed-loop levels, comma-separated")
    bench.add_argument("--request-rate", default="", help="Poisson levels in requests/s, comma-separated")
    bench.add_argument("--input-len", type=int, default=512, help="synthetic prompt length in tokens")
    bench.add_argument("--output-len", type=int, default=1024, help="max tokens per reply")
    bench.add_argument("--exact-output-len", action="store_true",
                       help="also send ignore_eos and min_tokens so every reply has exactly --output-len tokens "
                            "(vLLM honours them; servers that reject unknown fields answer 422)")
    bench.add_argument("--per-chunk-usage", action="store_true",
                       help="ask for token usage on every streamed chunk (vLLM's continuous_usage_stats), so a "
                            "chunk of several tokens weighs ITL by its tokens; without it a chunk counts as one")
    bench.add_argument("--num-requests", type=int, default=64, help="measured requests per level")
    bench.add_argument("--warmup", type=int, default=1, help="unmeasured requests before each level")
    bench.add_argument("--api-key-env", default=None, help="environment variable holding the API key")
    bench.add_argument("--slo-ttft-ms", type=float, default=2000.0)
    bench.add_argument("--slo-tpot-ms", type=float, default=100.0)
    bench.add_argument("--output", required=True, help="RESULT.json")
    bench.set_defaults(handler=_bench)

    plan = commands.add_parser("plan", help="plan a variant's GPU memory: weights, KV cache, fit per GPU")
    plan.add_argument("variant", nargs="?", help="a variant of the matrix (default: a summary of all of them)")
    plan.add_argument("--matrix", help="matrix YAML (default: $YARDSTICK_MATRIX or pipelines/matrix.yaml)")
    plan.add_argument("--gpu", help="one GPU of the catalog (default: all of them)")
    plan.add_argument("--checkpoint", help="the checkpoint folder (default: the one a run wrote, if any)")
    plan.set_defaults(handler=_plan)

    tiny = commands.add_parser("build-tiny-model", help="write the offline tiny R1-style qwen2 model to a folder")
    tiny.add_argument("output")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(handler=_build_tiny_model)

    k8s = commands.add_parser("k8s-config", help="print each variant's Kubernetes step-pod config (GPUs, node "
                                                 "selector, volumes, secrets) as the evaluation job's run config")
    k8s.add_argument("variants", nargs="*", help="variants of the matrix (default: all of them)")
    k8s.add_argument("--matrix", help="matrix YAML (default: $YARDSTICK_MATRIX or pipelines/matrix.yaml)")
    k8s.set_defaults(handler=_k8s_config)

    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (MatrixError, FileNotFoundError, InputError, GradeInputError, PlanError, DiskSpaceError,
            SandboxUnavailableError, BenchmarkDataError, ConnectionError) as error:
        print(f"yardstick: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`yardstick variants | head -1`): what it read is all it wanted.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
