"""Quantization through llm-compressor, writing compressed-tensors checkpoints that vLLM loads natively (and
transformers decompresses on the CPU).

| scheme | method | what |
|---|---|---|
| W8A16 | rtn (or gptq) | int8 weights per output channel, 16-bit activations |
| W4A16 | rtn or gptq | int4 weights in groups of 128; GPTQ corrects rounding error with calibration data |
| W8A8 | smoothquant-gptq (or gptq) | int8 weights, dynamic per-token int8 activations; SmoothQuant first |
|  |  | moves activation outliers into the weights |
| FP8_DYNAMIC | dynamic | FP8 weights per channel, FP8 activations per token at run time |
| W4A16 | awq | int4 weights in groups of 128, scaled first by activation-aware weight quantization (AWQ): |
|  |  | the channels that carry large activations are protected, on calibration data |

GGUF types (Q8_0, Q4_K_M, IQ4_XS, ...) are llama.cpp's: assets.models.gguf makes them.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from assets.matrix import CALIBRATED_METHODS, QuantizationSpec, Variant
from assets.models.calibration import calibration_texts, parse_source
from assets.models.checkpoint import TOKENIZER_FILES, directory_bytes
from assets.versions import installed_version

TOOLS = ("llmcompressor", "compressed-tensors", "transformers", "torch")
SMOOTHING_STRENGTH = 0.8
# Written into each quantized checkpoint: what it was made from and the record of making it, so a rerun from the
# same source and settings reuses it.
QUANTIZATION_MARKER = "yardstick_quantization.json"


def quantized_path(models_dir: str | Path, variant: Variant) -> Path:
    """Where a variant's quantized checkpoint is written (and found again by `yardstick plan`)."""
    return Path(models_dir).resolve() / "quantized" / f"{variant.name}-{variant.quantization.scheme}"


class QuantizationError(ValueError):
    """The scheme is unknown or the tool failed."""


def build_recipe(spec: QuantizationSpec) -> list:
    """llm-compressor modifiers for the scheme and method; lm_head stays in full precision."""
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier

    problem = spec.problem() or ("scheme 'none' has nothing to quantize" if spec.scheme == "none" else None)
    if problem:
        raise QuantizationError(problem)
    common = {"targets": "Linear", "scheme": spec.scheme, "ignore": ["lm_head"]}
    if spec.method not in CALIBRATED_METHODS:
        return [QuantizationModifier(**common)]
    if spec.method == "awq":
        from llmcompressor.modifiers.awq import AWQModifier

        return [AWQModifier(**common)]
    recipe = []
    if spec.method == "smoothquant-gptq":
        from llmcompressor.modifiers.transform import SmoothQuantModifier

        recipe.append(SmoothQuantModifier(smoothing_strength=SMOOTHING_STRENGTH))
    return [*recipe, GPTQModifier(**common)]


def _calibration_dataset(spec: QuantizationSpec, tokenizer):
    from datasets import Dataset

    texts = calibration_texts(parse_source(spec.calibration), tokenizer, spec.calibration_samples)
    return Dataset.from_dict({"text": texts}).map(
        lambda row: tokenizer(row["text"], add_special_tokens=False, truncation=True,
                              max_length=spec.calibration_max_seq_len),
        remove_columns=["text"]), len(texts)


@contextmanager
def _pinning_only_with_an_accelerator() -> Iterator[None]:
    """llm-compressor 0.14's AWQ pins its cached activations in page-locked memory for faster copies to a GPU, and
    torch refuses that on a host without one ("Cannot access accelerator device when none is available"): there,
    the cache stays in ordinary memory, which is all pinning would have been for."""
    import torch
    from llmcompressor.modifiers.transform.awq.base import IntermediatesCache  # the cache AWQ keeps

    if torch.accelerator.is_available():
        yield
        return
    pin = IntermediatesCache.pin_memory
    IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None
    try:
        yield
    finally:
        IntermediatesCache.pin_memory = pin


def quantize_checkpoint(source: Path, target: Path, spec: QuantizationSpec) -> dict:
    """Quantize `source` into `target`; returns what was done: scheme, recipe, calibration, time, sizes, tools."""
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = build_recipe(spec)
    started = time.perf_counter()
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(source, dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(source)
    calibration = None
    if spec.method in CALIBRATED_METHODS:
        dataset, count = _calibration_dataset(spec, tokenizer)
        with _pinning_only_with_an_accelerator():
            oneshot(model=model, recipe=recipe, dataset=dataset, num_calibration_samples=count,
                    max_seq_length=spec.calibration_max_seq_len)
        calibration = f"{spec.calibration}: {count} samples of at most {spec.calibration_max_seq_len} tokens"
    else:
        oneshot(model=model, recipe=recipe)
    model.save_pretrained(staging, save_compressed=True)
    tokenizer.save_pretrained(staging)
    for name in TOKENIZER_FILES:
        if (source / name).exists() and not (staging / name).exists():
            shutil.copy2(source / name, staging / name)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # a crash never leaves a half-written checkpoint under the final name
    written = target / "recipe.yaml"
    return {
        "scheme": spec.scheme,
        "method": spec.method,
        "bytes_before": directory_bytes(source),
        "bytes_after": directory_bytes(target),
        "seconds": time.perf_counter() - started,
        "tool": "llmcompressor",
        "tool_version": "; ".join(f"{tool} {installed_version(tool) or 'absent'}" for tool in TOOLS),
        "recipe": written.read_text() if written.exists() else "; ".join(map(repr, recipe)),
        "calibration": calibration,
    }


def passthrough_record(source: Path) -> dict:
    """Quantization `none`: the snapshot is served as it is."""
    size = directory_bytes(source)
    return _unquantized_record("passthrough", str(source), size)


def external_record() -> dict:
    """An external endpoint serves its own weights; nothing is made here."""
    return _unquantized_record("external", None, None)


def _unquantized_record(method: str, local_path: str | None, size: int | None) -> dict:
    return {"scheme": "none", "method": method, "local_path": local_path, "bytes_before": size,
            "bytes_after": size, "seconds": 0.0, "tool": None, "tool_version": None, "recipe": None,
            "calibration": None}


def source_identity(source: Path, source_sha: str | None, spec: QuantizationSpec) -> dict:
    """What makes two quantized checkpoints the same: the snapshot they came from (path, commit, size) and the
    quantization settings."""
    return {"source": str(source), "source_sha": source_sha, "source_bytes": directory_bytes(source),
            **spec.identity()}


def earlier_quantization(target: Path, identity: dict) -> dict | None:
    """The record of the checkpoint at `target` when it was quantized earlier from the same `identity`, else
    None."""
    marker = target / QUANTIZATION_MARKER
    if not marker.exists():
        return None
    made = json.loads(marker.read_text())
    return made["record"] if made.get("identity") == identity else None


def quantize_and_record(source: Path, target: Path, spec: QuantizationSpec, identity: dict, gguf: bool = False) -> dict:
    """`quantize_checkpoint` (or, for llama.cpp, `quantize_gguf`), then the marker that lets `earlier_quantization`
    find the result again."""
    if gguf:
        from assets.models.gguf import quantize_gguf

        record = quantize_gguf(source, target, spec)
    else:
        record = {**quantize_checkpoint(source, target, spec), "local_path": str(target)}
    (target / QUANTIZATION_MARKER).write_text(json.dumps({"identity": identity, "record": record}, indent=2))
    return record
