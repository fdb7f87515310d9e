"""Where model weights come from: the Hugging Face hub at a pinned revision, a local folder, or a model the
project generates for offline use."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg

from assets.matrix import ModelSpec
from assets.models.checkpoint import CheckpointError, checkpoint_fingerprint
from assets.models.tiny import TINY_MODEL_NAME, ensure_tiny_model

GENERATED_MODELS = {TINY_MODEL_NAME: ensure_tiny_model}
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


class ModelHubResource(dg.ConfigurableResource):
    """Fetches a variant's weights and says exactly which ones they are."""

    models_dir: str   # generated models and quantized checkpoints: $YARDSTICK_HOME/models
    cache_dir: str | None = None
    token: str | None = None  # set from dg.EnvVar("HF_TOKEN") for gated models

    def fetch(self, spec: ModelSpec) -> dict:
        """Return source, repo, revision, commit_sha, local_path and fingerprint for the weights `spec` names."""
        if spec.repo:
            return self._from_hub(spec)
        if spec.path:
            path = Path(spec.path).expanduser().resolve()
            if not path.is_dir():
                raise CheckpointError(f"model path {path} does not exist; fix 'model.path' in the matrix")
            return {"source": "local", "repo": None, "revision": None, "commit_sha": None, "local_path": str(path),
                    "fingerprint": checkpoint_fingerprint(path)}
        if spec.generate not in GENERATED_MODELS:
            raise CheckpointError(
                f"model.generate '{spec.generate}' unknown; known: {', '.join(GENERATED_MODELS)}"
            )
        path = GENERATED_MODELS[spec.generate](Path(self.models_dir).resolve() / spec.generate)
        return {"source": "generated", "repo": None, "revision": None, "commit_sha": None,
                "local_path": str(path), "fingerprint": checkpoint_fingerprint(path)}

    def _from_hub(self, spec: ModelSpec) -> dict:
        from huggingface_hub import HfApi, snapshot_download

        path = snapshot_download(
            repo_id=spec.repo, revision=spec.revision, allow_patterns=list(spec.allow_patterns),
            cache_dir=self.cache_dir, token=self.token,
        )
        commit = Path(path).name
        if not _COMMIT_SHA.match(commit):
            commit = HfApi(token=self.token).model_info(spec.repo, revision=spec.revision).sha
        return {"source": "hub", "repo": spec.repo, "revision": spec.revision, "commit_sha": commit,
                "local_path": str(path), "fingerprint": commit}
