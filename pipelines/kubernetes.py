"""Each variant's pods on Kubernetes: what every step of its run asks of the cluster.

With YARDSTICK_EXECUTOR=k8s (deploy/README.md) every step of a run is a pod that dagster-k8s's `k8s_job_executor`
makes. A variant's pods differ: its engine step needs the GPUs its parallelism spans on one node (tensor ×
pipeline parallel size over `nodes`), on the GPU its hardware profile names, memory-backed /dev/shm for vLLM's
workers, the keys its engine calls with and, across nodes, the Ray cluster; every step needs the model cache.

What reaches a step's pod is the executor's run config: `step_k8s_config` for every step and
`per_step_k8s_config` by op (dagster-k8s leaves a run's `dagster-k8s/config` tag out of step pods; it only shapes
the run's own pod). So the `evaluation` job's config is partitioned: the run of a variant (its partition) carries
that variant's executor config, built here once for the whole matrix when the definitions load, so a matrix the
cluster cannot place fails `dagster definitions validate` rather than a run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import dagster as dg

from assets.matrix import LocalEngineSettings, Matrix, Variant, load_matrix
from resources.prices import PriceCatalogResource

EXECUTORS = ("in_process", "k8s")
ENGINE_STEP = "engine_step"
QUANTIZE_STEP = "quantized_model"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
HF_TOKEN = "HF_TOKEN"
# The instance catalog's `gpu` column (resources/prices/instances.csv) → the `nvidia.com/gpu.product` label NVIDIA's
# GPU feature discovery (GPU operator) puts on a node: the product name nvidia-smi prints, spaces as dashes, of the
# board the catalog's instance has (SXM boards on p3, p4d, p4de, p5 and p5en). Check yours with
# `kubectl get nodes -L nvidia.com/gpu.product` and add a row for a GPU the catalog gains.
GPU_PRODUCTS = {
    "A10G": "NVIDIA-A10G",
    "L40S": "NVIDIA-L40S",
    "V100 16GB": "Tesla-V100-SXM2-16GB",
    "V100 32GB": "Tesla-V100-SXM2-32GB",
    "A100 40GB": "NVIDIA-A100-SXM4-40GB",
    "A100 80GB": "NVIDIA-A100-SXM4-80GB",
    "H100 80GB": "NVIDIA-H100-80GB-HBM3",
    "H200 141GB": "NVIDIA-H200",
    "RTX 4090": "NVIDIA-GeForce-RTX-4090",
    "RTX 3090": "NVIDIA-GeForce-RTX-3090",
}


class KubernetesConfigError(ValueError):
    """A variant the cluster cannot place as the matrix describes it."""


@dataclass(frozen=True)
class ClusterNames:
    """What the deployment in deploy/ names the things a pod refers to (change both together)."""

    home: str = "/var/lib/yardstick"              # YARDSTICK_HOME in every pod; the image sets the same
    model_cache_claim: str = "yardstick-models"   # a ReadWriteMany PersistentVolumeClaim: $YARDSTICK_HOME/models
    keys_secret: str = "yardstick-keys"           # HF_TOKEN and the API keys the matrix's api_key_env name
    ray_address: str = "yardstick-ray-head-svc:6379"   # the GCS of deploy/kuberay/raycluster.yaml's head
    vllm_on_ray: str = "/usr/local/bin/vllm-on-ray"    # in the image: joins the pod to Ray, then runs vllm
    shm_size: str = "32Gi"                        # /dev/shm for vLLM's workers (NCCL, tensor-parallel ranks)

    @property
    def models_dir(self) -> str:
        return f"{self.home}/models"


@dataclass(frozen=True)
class Hardware:
    """A hardware profile's row of the instance catalog: the GPU it names and how many one machine has."""

    gpu: str | None
    gpus: int


def engine_gpus(variant: Variant) -> int:
    """The GPUs a variant's engine uses on each node: none for an external endpoint or an engine on the CPU."""
    settings = variant.engine.settings
    if not isinstance(settings, LocalEngineSettings) or settings.on_cpu:
        return 0
    nodes, spanned = settings.node_count, settings.devices_spanned
    if nodes < 1 or spanned % nodes:
        raise KubernetesConfigError(
            f"variant '{variant.name}': tensor_parallel_size × pipeline_parallel_size = {spanned} GPUs cannot be "
            f"shared evenly over nodes: {nodes}; make the product a multiple of `nodes`")
    return spanned // nodes


def _secret_env(variable: str, secret: str, optional: bool) -> dict:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": variable, "optional": optional}}}


def _engine_secrets(variant: Variant, names: ClusterNames) -> list[dict]:
    """The variables an external engine reads its key (and a URL with credentials) from, each from the secret's key
    of the same name; required, so a missing key stops the pod from starting rather than the run midway."""
    variables = [getattr(variant.engine.settings, key, None) for key in ("api_key_env", "base_url_env")]
    return [_secret_env(variable, names.keys_secret, optional=False) for variable in variables if variable]


def _gpu_node(variant: Variant, hardware: Hardware | None, gpus: int) -> dict:
    """Pod spec fields that put a pod asking for `gpus` GPUs on a node of the GPU the variant's hardware names."""
    if hardware is None or hardware.gpu not in GPU_PRODUCTS:
        raise KubernetesConfigError(
            f"variant '{variant.name}' runs on {gpus} GPU(s) but its hardware '{variant.hardware}' names GPU "
            f"'{hardware.gpu if hardware else None}', which has no node label in GPU_PRODUCTS of "
            f"pipelines/kubernetes.py (known: {', '.join(GPU_PRODUCTS)}); add its `nvidia.com/gpu.product` value "
            "there, or put the engine on the CPU (`device: cpu`)")
    if gpus > hardware.gpus:
        raise KubernetesConfigError(
            f"variant '{variant.name}' needs {gpus} GPUs on one node but its hardware '{variant.hardware}' has "
            f"{hardware.gpus}; pick a profile with more GPUs, or spread the engine over more `nodes`")
    return {
        "nodeSelector": {GPU_PRODUCT_LABEL: GPU_PRODUCTS[hardware.gpu]},
        # GPU node pools are commonly tainted so that only pods asking for GPUs land there.
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
    }


def _on_gpus(variant: Variant, hardware: Hardware | None, gpus: int) -> dict:
    return {"container_config": {"resources": {"limits": {GPU_RESOURCE: gpus}}},
            "pod_spec_config": _gpu_node(variant, hardware, gpus)}


def _engine_step(variant: Variant, hardware: Hardware | None, names: ClusterNames) -> dict:
    """The engine step's pod: its GPUs on a node of its GPU, /dev/shm for vLLM, its keys, and Ray across nodes (for
    vLLM; llama.cpp reaches its other hosts' `rpc-server`s at the addresses its `rpc` setting gives)."""
    env = _engine_secrets(variant, names)
    if variant.engine.settings.NODES_JOIN_RAY and variant.engine.settings.node_count > 1:
        # This pod is one of the engine's nodes: it joins the Ray cluster (whose workers are the other nodes) with
        # its GPUs, and vLLM, started here, places its ranks over all of them.
        env += [{"name": "RAY_ADDRESS", "value": names.ray_address},
                {"name": "YARDSTICK_VLLM_COMMAND", "value": names.vllm_on_ray}]
    gpus = engine_gpus(variant)
    config = _on_gpus(variant, hardware, gpus) if gpus else {"container_config": {}, "pod_spec_config": {}}
    if env:
        config["container_config"]["env"] = env
    if variant.engine.settings.NEEDS_SHARED_MEMORY:
        config["container_config"]["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
        config["pod_spec_config"]["volumes"] = [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": names.shm_size}}]
    return {part: fields for part, fields in config.items() if fields}


def step_pod_config(variant: Variant, hardware: Hardware | None, names: ClusterNames = ClusterNames()) -> dict:
    """The k8s_job_executor's config for a run of `variant`: `step_k8s_config` for every step (the model cache at
    $YARDSTICK_HOME/models, the hub token) and `per_step_k8s_config` for the engine step and, where the variant is
    quantized on a GPU, the quantizing step; each a `dagster-k8s/config` dict (container_config, pod_spec_config)
    that dagster-k8s merges over the run launcher's."""
    every_step = {
        "container_config": {
            "env": [{"name": "YARDSTICK_HOME", "value": names.home},
                    _secret_env(HF_TOKEN, names.keys_secret, optional=True)],   # public models need none
            "volumeMounts": [{"name": "model-cache", "mountPath": names.models_dir}],
        },
        "pod_spec_config": {
            "volumes": [{"name": "model-cache", "persistentVolumeClaim": {"claimName": names.model_cache_claim}}],
        },
    }
    by_step = {ENGINE_STEP: _engine_step(variant, hardware, names)}
    if engine_gpus(variant) and variant.quantization.scheme != "none":
        # llm-compressor calibrates layer by layer on one GPU, of the kind the variant is served on.
        by_step[QUANTIZE_STEP] = _on_gpus(variant, hardware, 1)
    return {"step_k8s_config": every_step, "per_step_k8s_config": by_step}


def hardware_of(variant: Variant, prices: PriceCatalogResource) -> Hardware | None:
    """The variant's hardware profile as the instance catalog describes it; None for an API."""
    if variant.hardware is None:
        return None
    row = prices.instance(variant.hardware)
    return Hardware(gpu=row.get("gpu"), gpus=int(row.get("gpus") or 0))


def matrix_pod_configs(matrix: Matrix, names: ClusterNames = ClusterNames()) -> dict[str, dict]:
    """`step_pod_config` of every variant of the matrix, by variant."""
    prices = PriceCatalogResource()
    return {name: step_pod_config(variant, hardware_of(variant, prices), names)
            for name, variant in matrix.variants.items()}


def executor_kind() -> str:
    """YARDSTICK_EXECUTOR: where a run's steps run, `in_process` (default) or `k8s`."""
    kind = os.environ.get("YARDSTICK_EXECUTOR") or "in_process"
    if kind not in EXECUTORS:
        raise KubernetesConfigError(f"YARDSTICK_EXECUTOR={kind!r} names no executor; set {' or '.join(EXECUTORS)}, "
                                    "or unset it to run every step in the run's process")
    return kind


def executor_for(kind: str) -> dg.ExecutorDefinition:
    """Steps one after another in the run's process (a small machine), or each step a Kubernetes pod."""
    if kind == "k8s":
        # Imported only here: the Kubernetes client costs half a second at every local start.
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return dg.in_process_executor


def evaluation_config(kind: str, variants: dg.PartitionsDefinition) -> dg.PartitionedConfig | None:
    """The `evaluation` job's run config by variant, its partition (read from $YARDSTICK_MATRIX, as the partitions
    are): on Kubernetes, the variant's step pods; else none."""
    if kind != "k8s":
        return None
    configs = matrix_pod_configs(load_matrix())
    return dg.PartitionedConfig(
        partitions_def=variants,
        run_config_for_partition_key_fn=lambda variant: {"execution": {"config": configs[variant]}},
    )
