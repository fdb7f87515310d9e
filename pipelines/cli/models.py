"""The commands about a variant's model: `plan` (its GPU memory) and `build-tiny-model` (the offline stand-in)."""

from __future__ import annotations

import argparse
from pathlib import Path

from assets.matrix import load_matrix
from assets.models.memory import PlanError
from pipelines import settings
from pipelines.cli.common import MATRIX_HELP, InputError


def plan(args: argparse.Namespace) -> int:
    """The memory plan of a variant: weights, KV cache, and whether it fits each GPU of the catalog."""
    import pandas as pd

    from assets.models.memory import GPUS, LayerSplitPlan, plan_variant

    if args.gpu and args.gpu not in GPUS:
        raise InputError(f"unknown GPU '{args.gpu}'; known: {', '.join(GPUS)}")
    matrix = load_matrix(args.matrix)
    if not args.variant:
        return _plan_matrix(matrix, args.gpu)
    variant = matrix.variant(args.variant)
    checkpoint = args.checkpoint or _built_checkpoint(variant)
    planned = plan_variant(variant, checkpoint)
    memory = planned.plan
    print(f"variant {variant.name}: config from {planned.config_source}")
    print(f"weights {_size(memory.weight_bytes)} from the {memory.weight_source} ({memory.parameters / 1e9:.3g} B "
          f"parameters, quantization {variant.quantization.scheme})")
    if isinstance(memory, LayerSplitPlan):
        _describe_llamacpp(memory, variant.engine.settings)
    else:
        attention = ("latent attention, held whole by every tensor-parallel rank" if memory.latent_attention
                     else "MHA/GQA")
        print(f"KV cache {memory.kv_bytes_per_token / 1024:.2f} KiB per token ({attention}); {memory.max_model_len} "
              f"tokens × {memory.concurrency} sequences = {_size(memory.kv_cache_bytes)}")
        print(f"per GPU: weights and KV ÷ parallel ranks + {_size(memory.overhead_per_gpu)} overhead, against memory "
              f"× gpu_memory_utilization {memory.gpu_memory_utilization}\n")
    if isinstance(memory, LayerSplitPlan) and variant.engine.settings.on_cpu and not args.gpu:
        return 0
    gpus = [GPUS[args.gpu]] if args.gpu else list(GPUS.values())
    table = pd.DataFrame(planned.rows(gpus))
    table["fits"] = table["fits"].map({True: "yes", False: "no"})
    _show_tensor_parallel_sizes(table)
    if isinstance(memory, LayerSplitPlan):   # llama.cpp splits layers over devices, not tensors
        table = table.drop(columns="pp").rename(columns={"tp": "devices", "smallest_tp": "fewest_devices",
                                                         "tp_to_start": "devices_to_start"})
    print(table.round(2).to_markdown(index=False))
    return 0


def _describe_llamacpp(memory, settings) -> None:
    """llama-server's KV cache, buffers and placement (assets/models/gguf_memory.py: where each figure comes from)."""
    attention = "latent attention: K only, the latent and the rotary key" if memory.latent_attention else "f16 K and V"
    print(f"KV cache {memory.kv_bytes_per_token / 1024:.2f} KiB per token ({attention}); {memory.max_model_len} "
          f"tokens per slot × {memory.concurrency} slots = {_size(memory.kv_cache_bytes)}")
    if settings.on_cpu:
        total = memory.weight_bytes + memory.kv_cache_bytes + memory.overhead_per_gpu
        print(f"on the CPU: weights + KV cache + {_size(memory.overhead_per_gpu)} of compute buffer and the server's "
              f"own memory = {_size(total)}, what its resident memory should come to")
        return
    shares = ",".join(f"{share:g}" for share in memory.shares)
    print(f"per device: its share of the layers (--tensor-split {shares}: {len(memory.shares)} devices on "
          f"{settings.node_count} host{'s' if settings.node_count > 1 else ''}), their weights and KV cache, "
          f"+ {_size(memory.overhead_per_gpu)} of compute buffer and CUDA context; "
          f"{_size(memory.host_weight_bytes)} of token embeddings stay in host memory; no utilization cap\n")


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
            row.update(needed_gib_per_gpu=record["needed_gib_per_gpu"], usable_gib_per_gpu=record["usable_gib_per_gpu"],
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
    if variant.engine.kind == "llamacpp":   # a GGUF file, made from `none` too
        from assets.models.gguf import GGUF_FILE
        from assets.models.quantize import quantized_path

        gguf = quantized_path(models, variant) / GGUF_FILE
        return str(gguf) if gguf.is_file() else None
    if variant.quantization.scheme != "none":
        from assets.models.quantize import quantized_path

        quantized = quantized_path(models, variant)
        return str(quantized) if quantized.is_dir() else None
    if variant.model.generate and (models / variant.model.generate).is_dir():
        return str(models / variant.model.generate)
    return None


def build_tiny_model(args: argparse.Namespace) -> int:
    from assets.models.tiny import build_tiny_model as build

    print(build(Path(args.output), seed=args.seed))
    return 0


def add_plan(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("plan", help="plan a variant's GPU memory: weights, KV cache, fit per GPU")
    parser.add_argument("variant", nargs="?", help="a variant of the matrix (default: a summary of all of them)")
    parser.add_argument("--matrix", help=MATRIX_HELP)
    parser.add_argument("--gpu", help="one GPU of the catalog (default: all of them)")
    parser.add_argument("--checkpoint", help="the checkpoint folder, or a llama.cpp variant's GGUF file (default: the "
                        "one a run wrote, if any)")
    parser.set_defaults(handler=plan)


def add_build_tiny_model(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("build-tiny-model",
                                 help="write the offline tiny R1-style qwen2 model to a folder")
    parser.add_argument("output")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=build_tiny_model)
