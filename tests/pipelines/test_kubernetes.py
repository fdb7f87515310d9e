"""Each variant's step pods on Kubernetes (pipelines/kubernetes.py), as dagster-k8s's own job builder makes them.

The golden files (tests/golden/k8s/<variant>.yaml) are the Kubernetes Jobs the k8s_job_executor would create for a
variant's steps on the cluster of deploy/: the run launcher the instance builds from the Helm chart's dagster.yaml and
the code location's container context (both as the chart renders deploy/helm/values.yaml, reconstructed in
tests/deploy/dagster_chart.py), then the variant's executor config, merged in the order dagster-k8s's step handler
merges them. After a deliberate change, regenerate them with
`YARDSTICK_UPDATE_GOLDEN=1 .venv/bin/pytest tests/pipelines/test_kubernetes.py` and review the diff.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import kubernetes
import pytest
import yaml
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import UserDefinedDagsterK8sConfig, construct_dagster_k8s_job, get_k8s_job_name

from assets.matrix import EngineSpec, load_matrix
from pipelines.cli import main
from pipelines.kubernetes import (
    ENGINE_CPUS_PER_GPU,
    ENGINE_STEP,
    QUANTIZE_STEP,
    ClusterNames,
    Hardware,
    KubernetesConfigError,
    executor_kind,
    matrix_pod_configs,
    step_pod_config,
)
from tests.conftest import ROOT
from tests.deploy import dagster_chart

pytestmark = pytest.mark.unit

GPU_MATRIX_PATH = ROOT / "pipelines" / "matrix.gpu.yaml"
GPU_MATRIX = load_matrix(GPU_MATRIX_PATH)
VARIANTS = sorted(GPU_MATRIX.variants)
CONFIGS = matrix_pod_configs(GPU_MATRIX)
GOLDEN = ROOT / "tests" / "golden" / "k8s"
NAMES = ClusterNames()
CHART_INSTANCE, CODE_LOCATION = dagster_chart.rendered(
    dagster_chart.values_file(ROOT / "deploy" / "helm" / "values.yaml"), "yardstick")
# The image the user deployment runs, which the run's code origin names.
IMAGE = "registry.example/yardstick:golden"
# A step with no config of its own stands for every such step (benchmark_items, graded_answers, ...).
PLAIN_STEP = "model_snapshot"

# Written out here rather than derived, so that the generator is checked against the matrix as a person reads it.
ENGINE_GPUS = {"r1-qwen-32b-bf16-2xh100": 2, "r1-llama-70b-bf16-4xh100": 4, "r1-llama-70b-bf16-2xh200": 2,
               "r1-llama-70b-fp8-2xh100": 2, "r1-671b-fp8-8xh200": 8, "r1-671b-fp8-2x8xh100": 8,
               "r1-671b-iq1_s-llamacpp-2xh100": 2, "r1-671b-q4_k_m-llamacpp-8xh100": 8,
               "r1-671b-q4_k_m-llamacpp-2x4xh100": 4}
API_KEYS = {"deepseek-reasoner-api": "DEEPSEEK_API_KEY", "deepseek-reasoner-api-nightly": "DEEPSEEK_API_KEY",
            "together-r1-0528-api": "TOGETHER_API_KEY", "o4-mini-api": "OPENAI_API_KEY"}
GPU_LABELS = {"h100": "NVIDIA-H100-80GB-HBM3", "h200": "NVIDIA-H200"}
GPU_MEMORY_GIB = {"h100": 80, "h200": 141}
# What every step pod inherits from the chart's run launcher and code location (deploy/helm/values.yaml).
INHERITED_REQUESTS = {"cpu": "500m", "memory": "2Gi"}


def chart_run_launcher() -> K8sRunLauncher:
    """The K8sRunLauncher an instance builds from the chart's dagster.yaml; here outside a cluster, so its loading of
    the in-cluster client config is skipped (nothing here talks to a cluster)."""
    with mock.patch("kubernetes.config.load_incluster_config"):
        return K8sRunLauncher(**CHART_INSTANCE["run_launcher"]["config"])


LAUNCHER = chart_run_launcher()
# A run of the `evaluation` job as dagster-k8s reads it: launched from the code location, so its code origin carries
# the location's container context; no run tags reach step pods.
RUN = SimpleNamespace(
    job_code_origin=SimpleNamespace(repository_origin=SimpleNamespace(container_context=CODE_LOCATION)), tags={})


def step_job(variant: str, step: str) -> kubernetes.client.V1Job:
    """The Job the k8s_job_executor makes for `step` of a run of `variant`, merged as its step handler merges it: the
    run launcher's settings and the code location's, then the run config's `step_k8s_config`, then the op's
    `per_step_k8s_config`; built by dagster-k8s's job builder."""
    config = CONFIGS[variant]
    context = K8sContainerContext.create_for_run(RUN, LAUNCHER, include_run_tags=False)
    context = context.merge(K8sContainerContext(
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(config["step_k8s_config"])))
    context = context.merge(K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(
        config["per_step_k8s_config"].get(step, {}))))
    job_name = f"dagster-step-{get_k8s_job_name(f'golden-{variant}', step)}"
    return construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config(IMAGE, LAUNCHER),
        args=["dagster", "api", "execute_step"],
        job_name=job_name,
        pod_name=job_name,
        component="step_worker",
        user_defined_k8s_config=context.run_k8s_config,
        # The step handler's labels and env, less what only a real run has (its id, its serialized step arguments).
        labels={"dagster/job": "evaluation", "dagster/op": step, "dagster/code-location": "yardstick"},
        env_vars=[{"name": "DAGSTER_RUN_JOB_NAME", "value": "evaluation"},
                  {"name": "DAGSTER_RUN_STEP_KEY", "value": step}],
    )


def golden_jobs(variant: str) -> dict:
    steps = [PLAIN_STEP, *sorted(CONFIGS[variant]["per_step_k8s_config"])]
    serialize = kubernetes.client.ApiClient().sanitize_for_serialization
    return {step: serialize(step_job(variant, step)) for step in steps}


def pod(variant: str, step: str) -> tuple[kubernetes.client.V1PodSpec, kubernetes.client.V1Container]:
    spec = step_job(variant, step).spec.template.spec
    return spec, spec.containers[0]


def env_of(container: kubernetes.client.V1Container) -> dict:
    return {variable.name: variable for variable in container.env}


def test_golden_files_cover_every_variant_of_the_gpu_matrix():
    if os.environ.get("YARDSTICK_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for stale in GOLDEN.glob("*.yaml"):
            stale.unlink()
        for variant in VARIANTS:
            (GOLDEN / f"{variant}.yaml").write_text(yaml.safe_dump(golden_jobs(variant), sort_keys=True))
    assert sorted(path.stem for path in GOLDEN.glob("*.yaml")) == VARIANTS


@pytest.mark.parametrize("variant", VARIANTS)
def test_step_jobs_match_the_golden_file(variant):
    assert golden_jobs(variant) == yaml.safe_load((GOLDEN / f"{variant}.yaml").read_text())


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_step_mounts_the_model_cache_and_may_read_the_hub_token(variant):
    for step in (PLAIN_STEP, ENGINE_STEP):
        spec, container = pod(variant, step)
        claims = {volume.name: volume.persistent_volume_claim for volume in spec.volumes}
        assert claims["model-cache"].claim_name == "yardstick-models"
        mounts = {mount.name: mount.mount_path for mount in container.volume_mounts}
        assert mounts["model-cache"] == "/var/lib/yardstick/models"
        env = env_of(container)
        assert env["YARDSTICK_HOME"].value == "/var/lib/yardstick"
        token = env["HF_TOKEN"].value_from.secret_key_ref
        assert (token.name, token.key, token.optional) == ("yardstick-keys", "HF_TOKEN", True)
    spec, container = pod(variant, PLAIN_STEP)
    assert not (container.resources.limits or {}) and not spec.node_selector


@pytest.mark.parametrize("variant", VARIANTS)
def test_step_pods_carry_what_the_chart_gives_every_pod(variant):
    """The launcher's and the code location's settings, which a step pod inherits: the image pull policy, the
    service account, the warehouse secret and the location's env, and the 500m CPU / 2 GiB requests."""
    for step in (PLAIN_STEP, ENGINE_STEP):
        spec, container = pod(variant, step)
        assert container.image_pull_policy == "IfNotPresent"
        assert spec.service_account_name == "dagster-dagster-user-deployments-user-deployments"
        assert spec.automount_service_account_token is True
        assert [source.secret_ref.name for source in container.env_from if source.secret_ref] == ["yardstick-warehouse"]
        env = env_of(container)
        assert env["YARDSTICK_EXECUTOR"].value == "k8s"
        assert env["YARDSTICK_MATRIX"].value == "/opt/yardstick/app/pipelines/matrix.gpu.yaml"
    assert pod(variant, PLAIN_STEP)[1].resources.requests == INHERITED_REQUESTS


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_engine_pod_requests_cpu_and_memory_for_its_gpus(variant):
    """Not the 500m CPU and 2 GiB every pod inherits: ENGINE_CPUS_PER_GPU cores and the GPUs' memory in host memory."""
    requests = pod(variant, ENGINE_STEP)[1].resources.requests
    if variant in API_KEYS:
        assert requests == INHERITED_REQUESTS
        return
    gpus = ENGINE_GPUS.get(variant, 1)
    memory = GPU_MEMORY_GIB["h200" if "h200" in variant else "h100"] * gpus
    assert requests == {"cpu": str(ENGINE_CPUS_PER_GPU * gpus), "memory": f"{memory}Gi"}


def test_the_ray_workers_ask_what_the_engine_pod_asks():
    """The RayCluster's workers are the other nodes of r1-671b-fp8-2x8xh100's engine: the same requests per node."""
    cluster = yaml.safe_load((ROOT / "deploy" / "kuberay" / "raycluster.yaml").read_text())
    (workers,) = cluster["spec"]["workerGroupSpecs"]
    worker = workers["template"]["spec"]["containers"][0]["resources"]
    engine = pod("r1-671b-fp8-2x8xh100", ENGINE_STEP)[1].resources
    assert worker["requests"] == engine.requests
    assert worker["limits"]["nvidia.com/gpu"] == int(engine.limits["nvidia.com/gpu"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_engine_pod_asks_for_its_gpus_on_its_gpu(variant):
    spec, container = pod(variant, ENGINE_STEP)
    limits = container.resources.limits or {}
    if variant in API_KEYS:
        assert "nvidia.com/gpu" not in limits and not spec.node_selector and not spec.tolerations
        return
    assert limits["nvidia.com/gpu"] == str(ENGINE_GPUS.get(variant, 1))   # a quantity, as Kubernetes writes it
    gpu = "h200" if "h200" in variant else "h100"
    assert spec.node_selector == {"nvidia.com/gpu.product": GPU_LABELS[gpu]}
    assert [(t.key, t.operator, t.effect) for t in spec.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    volumes = {volume.name: volume.empty_dir for volume in spec.volumes or []}
    if not GPU_MATRIX.variant(variant).engine.settings.NEEDS_SHARED_MEMORY:   # llama.cpp: one process, no /dev/shm
        assert "dshm" not in volumes
        return
    assert (volumes["dshm"].medium, volumes["dshm"].size_limit) == ("Memory", NAMES.shm_size)
    assert {mount.name: mount.mount_path for mount in container.volume_mounts}["dshm"] == "/dev/shm"


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_engine_pod_gets_only_the_key_its_variant_names(variant):
    env = env_of(pod(variant, ENGINE_STEP)[1])
    keys = {name for name in env if name.endswith("_API_KEY")}
    if variant not in API_KEYS:
        assert not keys
        return
    assert keys == {API_KEYS[variant]}
    reference = env[API_KEYS[variant]].value_from.secret_key_ref
    assert (reference.name, reference.key, reference.optional) == ("yardstick-keys", API_KEYS[variant], False)


@pytest.mark.parametrize("variant", VARIANTS)
def test_only_an_engine_across_nodes_joins_the_ray_cluster(variant):
    env = env_of(pod(variant, ENGINE_STEP)[1])
    across_nodes = int(GPU_MATRIX.variant(variant).engine.options.get("nodes", 1)) > 1
    assert ("RAY_ADDRESS" in env) == across_nodes == ("YARDSTICK_VLLM_COMMAND" in env)
    if across_nodes:
        assert env["RAY_ADDRESS"].value == "yardstick-ray-head-svc:6379"
        assert env["YARDSTICK_VLLM_COMMAND"].value == "/usr/local/bin/vllm-on-ray"


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_quantized_variant_calibrates_on_one_gpu_of_its_kind(variant):
    quantized = GPU_MATRIX.variant(variant).quantization.scheme != "none"
    assert (QUANTIZE_STEP in CONFIGS[variant]["per_step_k8s_config"]) == quantized
    if quantized:
        spec, container = pod(variant, QUANTIZE_STEP)
        assert container.resources.limits == {"nvidia.com/gpu": "1"}
        assert spec.node_selector == pod(variant, ENGINE_STEP)[0].node_selector


def test_the_cpu_matrices_ask_for_no_gpu():
    for path in (ROOT / "pipelines" / "matrix.yaml", ROOT / "tests" / "matrix.test.yaml"):
        for name, config in matrix_pod_configs(load_matrix(path)).items():
            engine = json.dumps(config["per_step_k8s_config"])
            assert "nvidia.com/gpu" not in engine, f"{path.name}: {name}"


def _engine(variant: str, **options) -> object:
    base = GPU_MATRIX.variant(variant)
    return dataclasses.replace(base, engine=EngineSpec(kind="vllm", options={**base.engine.options, **options}))


@pytest.mark.parametrize(("variant", "hardware", "error"), [
    (_engine("r1-qwen-7b-bf16-h100", tensor_parallel_size=2), Hardware("H100 80GB", 1), "needs 2 GPUs on one node"),
    (_engine("r1-qwen-7b-bf16-h100", tensor_parallel_size=3, nodes=2), Hardware("H100 80GB", 8),
     "cannot be shared evenly over nodes: 2"),
    (_engine("r1-qwen-7b-bf16-h100"), Hardware("none (2 vCPU 8 GiB)", 0), "has no node label in GPU_PRODUCTS"),
    (_engine("r1-qwen-7b-bf16-h100"), Hardware("B200 192GB", 8), "add its `nvidia.com/gpu.product` value"),
])
def test_a_variant_the_cluster_cannot_place_is_refused_with_what_to_change(variant, hardware, error):
    with pytest.raises(KubernetesConfigError, match=error):
        step_pod_config(variant, hardware)


def test_an_unknown_executor_is_refused(monkeypatch):
    monkeypatch.setenv("YARDSTICK_EXECUTOR", "celery")
    with pytest.raises(KubernetesConfigError, match="names no executor; set in_process or k8s"):
        executor_kind()
    monkeypatch.delenv("YARDSTICK_EXECUTOR")
    assert executor_kind() == "in_process"


def test_the_k8s_config_command_prints_the_run_config_of_each_variant(capsys):
    assert main(["k8s-config", "--matrix", str(GPU_MATRIX_PATH), "o4-mini-api", "r1-671b-fp8-2x8xh100"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == {name: {"execution": {"config": CONFIGS[name]}}
                       for name in ("o4-mini-api", "r1-671b-fp8-2x8xh100")}
    assert main(["k8s-config", "--matrix", str(GPU_MATRIX_PATH), "no-such-variant"]) == 2
    assert "unknown variant no-such-variant" in capsys.readouterr().err


def _with(executor: str | None) -> dict:
    env = {**os.environ, "YARDSTICK_MATRIX": str(GPU_MATRIX_PATH)}
    env.pop("YARDSTICK_EXECUTOR", None)
    return env | ({"YARDSTICK_EXECUTOR": executor} if executor else {})


@pytest.mark.parametrize("executor", [None, "k8s"])
def test_the_definitions_validate_with_either_executor(executor):
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run([str(dagster), "definitions", "validate", "-m", "pipelines.definitions"], cwd=ROOT,
                          env=_with(executor), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


# Run in a process of its own: the executor and the partitions are chosen when the definitions are imported.
PARTITION_RUN_CONFIGS = """
import json
import dagster as dg
from pipelines.definitions import defs
job = defs.resolve_job_def("evaluation")
configs = {}
for variant in job.partitions_def.get_partition_keys():
    run_config = job.partitioned_config.get_run_config_for_partition_key(variant)
    dg.validate_run_config(job, run_config)   # raises when the k8s executor's schema refuses it
    configs[variant] = run_config
print(json.dumps({"executor": job.executor_def.name, "configs": configs}))
"""


def test_each_variants_run_carries_its_step_pods_to_the_k8s_executor():
    done = subprocess.run([sys.executable, "-c", PARTITION_RUN_CONFIGS], cwd=ROOT, env=_with("k8s"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["executor"] == "k8s"
    assert found["configs"] == {name: {"execution": {"config": CONFIGS[name]}} for name in VARIANTS}
