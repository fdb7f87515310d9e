"""Facts about a checkpoint on disk, read without loading weights: size, parameter count, architecture; and
what stands in for them when an external endpoint serves weights we never see."""

from __future__ import annotations

import hashlib
import json
import struct
from math import prod
from pathlib import Path

from assets.matrix import Variant
from assets.secrets import redact_url

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


class CheckpointError(ValueError):
    """The directory is not a checkpoint an engine can load."""


# What a checkpoint folder needs besides its weights to tokenize and chat as the model does: copied beside every
# quantized checkpoint or GGUF file made from it.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
                   "generation_config.json")


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def weight_files(path: str | Path) -> list[Path]:
    """The files of a checkpoint folder that hold weights (not configs, tokenizers or templates)."""
    return [f for f in Path(path).iterdir() if f.suffix in WEIGHT_SUFFIXES and f.is_file()]


def checkpoint_weight_bytes(path: str | Path) -> int | None:
    """Bytes of the weight files in a checkpoint folder, or None when it has none."""
    return sum(f.stat().st_size for f in weight_files(path)) or None


def safetensors_parameters(path: Path) -> int:
    """Element count of every tensor in a .safetensors file, from its JSON header alone.

    Packed quantized tensors count as stored, so this is the stored element count, not the logical one.
    """
    with path.open("rb") as handle:
        (header_size,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_size))
    return sum(prod(meta["shape"]) for name, meta in header.items() if name != "__metadata__")


def checkpoint_fingerprint(path: str | Path) -> str:
    """Identifies a checkpoint without reading its weights: JSON files by content, other files by size and
    modification time. Rewritten weights give a new fingerprint, so old samples are not mixed with new."""
    digest = hashlib.sha256()
    for file in sorted(f for f in Path(path).rglob("*") if f.is_file()):
        stat = file.stat()
        digest.update(str(file.relative_to(path)).encode())
        if file.suffix == ".json":
            digest.update(file.read_bytes())
        else:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def describe_checkpoint(path: str | Path) -> dict:
    """Bytes, parameters and the config facts a memory plan needs (layers, heads, head dim, context)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"model path {path} does not exist or is not a directory")
    config_file = path / "config.json"
    if not config_file.exists():
        raise CheckpointError(f"model path {path} has no config.json; is it a Hugging Face checkpoint?")
    config = json.loads(config_file.read_text())
    weights = weight_files(path)
    if not weights:
        raise CheckpointError(f"model path {path} has no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    text_config = config.get("text_config", config)
    heads = text_config.get("num_attention_heads")
    hidden = text_config.get("hidden_size")
    return {
        "bytes": directory_bytes(path),
        "parameters": sum(safetensors_parameters(f) for f in weights if f.suffix == ".safetensors"),
        "architecture": (config.get("architectures") or [None])[0],
        "model_type": config.get("model_type"),
        "torch_dtype": config.get("dtype") or config.get("torch_dtype"),
        "num_layers": text_config.get("num_hidden_layers"),
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_kv_heads": text_config.get("num_key_value_heads", heads),
        "head_dim": text_config.get("head_dim") or (hidden // heads if hidden and heads else None),
        "max_position_embeddings": text_config.get("max_position_embeddings"),
        "vocab_size": text_config.get("vocab_size"),
    }


def checkpoint_scheme(path: str | Path) -> str | None:
    """The quantization scheme of a compressed-tensors checkpoint as the matrix names it (W4A16, W8A16, W8A8,
    FP8_DYNAMIC), read from its config; None for any other checkpoint (unquantized, another format, no config, a
    mix of schemes)."""
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    quantization = config.get("quantization_config") or {}
    if quantization.get("quant_method") != "compressed-tensors":
        return None
    schemes = {_group_scheme(group) for group in (quantization.get("config_groups") or {}).values()}
    return schemes.pop() if len(schemes) == 1 else None


def _group_scheme(group: dict) -> str | None:
    weights = group.get("weights") or {}
    activations = group.get("input_activations") or {}
    if weights.get("type") == "float" and weights.get("num_bits") == 8:
        return "FP8_DYNAMIC" if activations.get("dynamic") else None
    if weights.get("type") != "int":
        return None
    if not activations:
        return f"W{weights.get('num_bits')}A16"
    return "W8A8" if activations.get("type") == "int" and activations.get("num_bits") == 8 else None


def external_snapshot(variant: Variant, endpoint: str) -> dict:
    """An external endpoint's weights are its own: recorded as the served model name at the endpoint, and
    fingerprinted by both (the URL without credentials), so samples from another endpoint or model never mix
    with these."""
    served = variant.engine.settings.model
    endpoint = redact_url(str(endpoint))   # credentials in the URL are the caller's, not the endpoint's
    fingerprint = hashlib.sha256(f"external:{endpoint}:{served}".encode()).hexdigest()[:16]
    return {"variant": variant.name, "source": "external", "repo": served, "revision": endpoint,
            "commit_sha": None, "local_path": None, "fingerprint": fingerprint, "bytes": None,
            "parameters": None}
