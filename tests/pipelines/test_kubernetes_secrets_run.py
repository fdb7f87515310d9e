"""A run of an API variant whose key secret is missing, through the run worker's own loop (what a run pod the
K8sRunLauncher starts runs) and the executor YARDSTICK_EXECUTOR=k8s gives the `evaluation` job
(pipelines/kubernetes.py): the executor's real Kubernetes client reads the secret from a stand-in API server
(tests/pipelines/kubernetes_api_standin.py), and the run fails before its first step, naming the secret and the
command that creates it, with no Job created and no `engine` pool slot claimed. Before this check the step pod waited
in CreateContainerConfigError, its Job never failed, and the step held its slot for good.
"""

import dagster as dg
import pytest
from dagster._grpc.impl import core_execute_run  # the loop of `dagster api execute_run`, a run pod's command

from assets.matrix import load_matrix
from pipelines.kubernetes import ENGINE_STEP, KubernetesConfigError, executor_for, matrix_pod_configs
from tests.conftest import ROOT
from tests.pipelines.kubernetes_api_standin import StandInApiServer

pytestmark = pytest.mark.integration

VARIANT = "o4-mini-api"
POOL = "engine"


@dg.op(name=ENGINE_STEP, pool=POOL)
def engine_step() -> None:
    """Stands for the variant's engine step, in its pool; the run must fail before it starts."""
    raise AssertionError("the engine step started although its key secret is missing")


@dg.job(executor_def=executor_for("k8s"))
def api_variant_run() -> None:
    engine_step()


def messages(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every message of the run's event log, with the errors (and their causes) events carry."""
    texts = []
    for entry in instance.all_logs(run_id):
        texts.append(entry.user_message or "")
        error = getattr(getattr(entry.dagster_event, "event_specific_data", None), "error", None)
        while error is not None:
            texts.append(error.message)
            error = error.cause
    return "\n".join(texts)


def test_a_variant_whose_key_secret_is_missing_fails_before_its_steps_and_holds_no_slot(tmp_path):
    pod_config = matrix_pod_configs(load_matrix(ROOT / "pipelines" / "matrix.gpu.yaml"))[VARIANT]
    recon = dg.reconstructable(api_variant_run)
    with StandInApiServer({"dagster": {"yardstick-warehouse": {"YARDSTICK_WAREHOUSE": "ducklake:..."}}}) as api, \
            dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.event_log_storage.set_concurrency_slots(POOL, 1)
        execution = {**pod_config, "load_incluster_config": False, "kubeconfig_file": api.kubeconfig(tmp_path),
                     "job_namespace": "dagster"}
        run = instance.create_run_for_job(api_variant_run, run_config={"execution": {"config": execution}},
                                          job_code_origin=recon.get_python_origin())
        with pytest.raises(KubernetesConfigError) as refused:
            list(core_execute_run(recon, run, instance, inject_env_vars=False))
        status = instance.get_run_by_id(run.run_id).status
        said = messages(instance, run.run_id)
        kinds = {entry.dagster_event.event_type_value for entry in instance.all_logs(run.run_id) if entry.dagster_event}
        slots = instance.event_log_storage.get_concurrency_info(POOL)
    assert status == dg.DagsterRunStatus.FAILURE
    assert ("secret 'yardstick-keys' does not exist in namespace 'dagster'; this run's step pods read OPENAI_API_KEY "
            "from it: create it with kubectl -n dagster create secret generic yardstick-keys "
            "--from-literal=OPENAI_API_KEY='...'") in said
    assert str(refused.value) in said
    assert api.requests == [("GET", "/api/v1/namespaces/dagster/secrets/yardstick-keys")]   # no Job was created
    assert not kinds & {"STEP_WORKER_STARTING", "STEP_START"}, kinds
    assert (slots.claimed_slots, slots.pending_steps) == ([], [])
