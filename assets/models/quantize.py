"""Quantization through llm-compressor, writing compressed-tensors checkpoints that vLLM and transformers load."""

from __future__ import annotations

import shutil
import time
from importlib import metadata
from pathlib import Path

from assets.models.checkpoint import directory_bytes

# Schemes that need no calibration data: weights are rounded to the nearest level (RTN) or cast per tensor.
DATA_FREE_SCHEMES = ("W8A16", "W4A16", "FP8_DYNAMIC")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "generation_config.json")


class QuantizationError(ValueError):
    """The scheme is unknown or the tool failed."""


def quantize_checkpoint(source: Path, target: Path, scheme: str) -> dict:
    """Quantize `source` into `target` with a data-free llm-compressor recipe; returns what was done."""
    if scheme not in DATA_FREE_SCHEMES:
        raise QuantizationError(
            f"quantization scheme '{scheme}' is not supported; supported: none, {', '.join(DATA_FREE_SCHEMES)}"
        )
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(source, dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(source)
    recipe = QuantizationModifier(targets="Linear", scheme=scheme, ignore=["lm_head"])
    oneshot(model=model, recipe=recipe)
    model.save_pretrained(staging, save_compressed=True)
    tokenizer.save_pretrained(staging)
    for name in TOKENIZER_FILES:
        if (source / name).exists() and not (staging / name).exists():
            shutil.copy2(source / name, staging / name)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # a crash never leaves a half-written checkpoint under the final name
    return {
        "scheme": scheme,
        "method": "rtn" if scheme.startswith("W") else "dynamic",
        "bytes_before": directory_bytes(source),
        "bytes_after": directory_bytes(target),
        "seconds": time.perf_counter() - started,
        "tool": "llmcompressor",
        "tool_version": metadata.version("llmcompressor"),
        "recipe": f"QuantizationModifier(targets=Linear, scheme={scheme}, ignore=[lm_head])",
        "calibration": None,
    }
