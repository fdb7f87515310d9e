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

The executor is dagster-k8s's `k8s_job_executor` behind one check: before a run starts any step, every secret key its
step pods cannot start without (an API key, read from `yardstick-keys`) is read through the Kubernetes API, and a
missing or empty one fails the run at once, naming the secret and the command that creates it. Without the check,
such a pod waits in CreateContainerConfigError, its Job never fails, and the step holds its `engine` pool slot for
good.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Mapping
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
# What an engine pod asks of its node besides its GPUs, for each GPU: CPU cores for vLLM's processes (the API server,
# the engine core, a worker per GPU, tokenization) and, in host memory, as much as the GPU holds, to stage its share of
# the weights. Requests, so the scheduler puts the pod on a node that has them; without them the engine pod would
# inherit the run launcher's and the code location's 500m CPU and 2 GiB. The Ray workers of
# deploy/kuberay/raycluster.yaml, the engine's other nodes, ask the same.
ENGINE_CPUS_PER_GPU = 4
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
    """A hardware profile's row of the instance catalog: the GPU it names, how many one machine has, and the memory
    of one GPU in GB."""

    gpu: str | None
    gpus: int
    gpu_memory_gb: float | None = None


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
    of the same name; required, so the executor checks them before the run's first step (check_secret_keys)."""
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


def engine_requests(variant: Variant, hardware: Hardware | None, gpus: int) -> dict:
    """The engine pod's CPU and memory requests on a node of its GPUs (ENGINE_CPUS_PER_GPU; host memory as large as
    the GPUs' memory, from the hardware profile)."""
    memory = hardware.gpu_memory_gb if hardware else None
    if not memory:
        raise KubernetesConfigError(
            f"variant '{variant.name}' runs on {gpus} GPU(s) but its hardware '{variant.hardware}' gives no "
            "gpu_memory_gb in resources/prices/instances.csv; the engine pod's memory request is sized from it")
    return {"cpu": str(ENGINE_CPUS_PER_GPU * gpus), "memory": f"{math.ceil(memory * gpus)}Gi"}


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
    if gpus:
        config["container_config"]["resources"]["requests"] = engine_requests(variant, hardware, gpus)
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
    memory = float(row.get("gpu_memory_gb") or "nan")
    return Hardware(gpu=row.get("gpu"), gpus=int(row.get("gpus") or 0),
                    gpu_memory_gb=None if math.isnan(memory) else memory)


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


def required_secret_keys(executor_config: Mapping) -> dict[str, set[str]]:
    """The secret keys a run's step pods cannot start without, by secret: the `secretKeyRef`s not marked optional in
    the env of the k8s executor's `step_k8s_config` and `per_step_k8s_config` (camelCase or snake_case, as
    dagster-k8s reads either)."""
    by_step = executor_config.get("per_step_k8s_config") or {}
    configs = [executor_config.get("step_k8s_config") or {}, *by_step.values()]
    required: dict[str, set[str]] = {}
    for config in configs:
        container = config.get("container_config") or {}
        for variable in container.get("env") or []:
            source = variable.get("valueFrom") or variable.get("value_from") or {}
            reference = source.get("secretKeyRef") or source.get("secret_key_ref")
            if reference and not reference.get("optional"):
                required.setdefault(reference["name"], set()).add(reference["key"])
    return required


def check_secret_keys(core_api: object, namespace: str, required: Mapping[str, set[str]]) -> None:
    """Read each secret through the Kubernetes API (`core_api`: a kubernetes.client.CoreV1Api) and refuse the run when
    one is missing, or lacks a required key, or holds it empty, saying which and the command that makes it right."""
    from kubernetes.client.exceptions import ApiException

    for secret, keys in sorted(required.items()):
        try:
            data = core_api.read_namespaced_secret(secret, namespace).data or {}
        except ApiException as error:
            if error.status == 403:
                raise KubernetesConfigError(
                    f"the run's service account may not read secret '{secret}' in namespace '{namespace}', which "
                    f"yardstick reads before a run's steps start to check its keys ({', '.join(sorted(keys))}); "
                    f"let it: kubectl -n {namespace} apply -f deploy/helm/read-keys.yaml") from error
            if error.status != 404:
                raise
            given = " ".join(f"--from-literal={key}='...'" for key in sorted(keys))
            raise KubernetesConfigError(
                f"secret '{secret}' does not exist in namespace '{namespace}'; this run's step pods read "
                f"{', '.join(sorted(keys))} from it: create it with kubectl -n {namespace} create secret generic "
                f"{secret} {given}") from error
        lacking = sorted(key for key in keys if not base64.b64decode(data.get(key) or ""))
        if lacking:
            patch = ", ".join(f'"{key}": "..."' for key in lacking)
            raise KubernetesConfigError(
                f"secret '{secret}' in namespace '{namespace}' has no value for {', '.join(lacking)} (missing or "
                f"empty), which this run's step pods read; add it: kubectl -n {namespace} patch secret {secret} "
                f"--type merge -p '{{\"stringData\": {{{patch}}}}}'")


def _kubernetes_api(executor_config: Mapping, launcher: object | None) -> tuple[object, str]:
    """A CoreV1Api configured as the k8s_job_executor configures its own (in the cluster from the pod's service
    account, else from the kubeconfig its or the run launcher's config names), and the namespace the steps run in."""
    import kubernetes

    in_cluster = executor_config.get("load_incluster_config", getattr(launcher, "load_incluster_config", True))
    if in_cluster:
        kubernetes.config.load_incluster_config()
    else:
        kubernetes.config.load_kube_config(
            executor_config.get("kubeconfig_file", getattr(launcher, "kubeconfig_file", None)))
    namespace = executor_config.get("job_namespace") or getattr(launcher, "job_namespace", None) or "default"
    return kubernetes.client.CoreV1Api(), namespace


def _k8s_executor_checking_secrets() -> dg.ExecutorDefinition:
    from dagster_k8s import K8sRunLauncher, k8s_job_executor

    @dg.executor(name=k8s_job_executor.name, config_schema=k8s_job_executor.config_schema,
                 requirements=dg.multiple_process_executor_requirements())
    def k8s_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
        """dagster-k8s's k8s_job_executor (each step a Kubernetes Job), once every secret key its step pods require
        is there: checked when the run starts, before any step, so a missing key fails the run at once and no step
        waits for a pod that cannot start while it holds an `engine` pool slot."""
        config = init_context.executor_config
        required = required_secret_keys(config)
        if required:
            launcher = init_context.instance.run_launcher
            check_secret_keys(*_kubernetes_api(config, launcher if isinstance(launcher, K8sRunLauncher) else None),
                              required)
        return k8s_job_executor.executor_creation_fn(init_context)

    return k8s_executor


def executor_for(kind: str) -> dg.ExecutorDefinition:
    """Steps one after another in the run's process (a small machine), or each step a Kubernetes pod."""
    if kind == "k8s":
        # Imported only there: the Kubernetes client costs half a second at every local start.
        return _k8s_executor_checking_secrets()
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
