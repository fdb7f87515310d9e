"""Where a model's config.json comes from when its memory is planned before anything starts: the checkpoint on
disk, the catalog of well-known public models (architectures.yaml, nothing downloaded), or the hub at the
variant's pinned revision. The arithmetic on it is in memory.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from assets.matrix import Variant
from assets.models.checkpoint import checkpoint_weight_bytes

KNOWN_ARCHITECTURES = Path(__file__).with_name("architectures.yaml")


class PlanError(ValueError):
    """The configuration cannot be planned: no config.json to be had, or an unknown architecture, GPU or
    setting."""


@dataclass(frozen=True)
class ModelConfig:
    config: dict                    # config.json
    source: str                     # where it came from
    checkpoint_bytes: int | None    # the weights' bytes on disk, when it came from a checkpoint


def read_config(path: str | Path) -> dict:
    file = Path(path) / "config.json"
    if not file.is_file():
        raise PlanError(f"{path} has no config.json")
    return json.loads(file.read_text())


def known_config(repo: str) -> dict | None:
    """config.json facts of well-known public models, for planning without downloading anything."""
    catalog = yaml.safe_load(KNOWN_ARCHITECTURES.read_text())
    entry = catalog.get(repo)
    return dict(entry["config"]) if entry else None


def hub_config(repo: str, revision: str | None) -> dict:
    """config.json of `repo` at `revision`, downloaded from the hub (that file alone)."""
    from huggingface_hub import hf_hub_download

    try:
        return json.loads(Path(hf_hub_download(repo, "config.json", revision=revision)).read_text())
    except Exception as error:  # offline, gated, or missing: say what to do
        raise PlanError(f"cannot read config.json of {repo}@{revision} from the hub "
                        f"({type(error).__name__}: {error}); download the checkpoint, or add the model to "
                        f"{KNOWN_ARCHITECTURES}") from error


def variant_config(variant: Variant, checkpoint: str | Path | None = None) -> ModelConfig:
    """The config a variant is planned from: its checkpoint on disk when there is one (with the weights'
    size), else the catalog of well-known models, else the hub at the pinned revision."""
    local = Path(checkpoint) if checkpoint else Path(variant.model.path) if variant.model.path else None
    if local and (local / "config.json").is_file():
        return ModelConfig(read_config(local), str(local), checkpoint_weight_bytes(local))
    repo = variant.model.repo
    if repo:
        config = known_config(repo)
        if config is not None:
            return ModelConfig(config, f"catalog entry for {repo} ({KNOWN_ARCHITECTURES.name})", None)
        return ModelConfig(hub_config(repo, variant.model.revision), f"hf://{repo}", None)
    raise PlanError(f"variant '{variant.name}': its checkpoint is not on disk yet; materialize "
                    "quantized_model (or `make run`) first, or pass the checkpoint folder")
