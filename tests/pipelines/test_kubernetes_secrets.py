"""The check of a run's secret keys before its first step (pipelines/kubernetes.py: required_secret_keys,
check_secret_keys), against a stand-in for the Kubernetes API (tests/pipelines/kubernetes_api_standin.py). A run
through Dagster's own executor machinery is tests/pipelines/test_kubernetes_secrets_run.py."""

import pytest
from kubernetes.client.exceptions import ApiException

from assets.matrix import load_matrix
from pipelines.kubernetes import KubernetesConfigError, check_secret_keys, matrix_pod_configs, required_secret_keys
from tests.conftest import ROOT
from tests.pipelines.kubernetes_api_standin import FORBIDDEN, StandInCoreApi

pytestmark = pytest.mark.unit

CONFIGS = matrix_pod_configs(load_matrix(ROOT / "pipelines" / "matrix.gpu.yaml"))
# Written out, as a reader of pipelines/matrix.gpu.yaml sees them.
API_KEYS = {"deepseek-reasoner-api": "DEEPSEEK_API_KEY", "deepseek-reasoner-api-nightly": "DEEPSEEK_API_KEY",
            "together-r1-0528-api": "TOGETHER_API_KEY", "o4-mini-api": "OPENAI_API_KEY"}
OPENAI = {"yardstick-keys": {"OPENAI_API_KEY"}}


@pytest.mark.parametrize("variant", sorted(CONFIGS))
def test_a_run_requires_only_its_variants_api_key(variant):
    """HF_TOKEN is optional (public models need none): only an API variant's key is required."""
    expected = {"yardstick-keys": {API_KEYS[variant]}} if variant in API_KEYS else {}
    assert required_secret_keys(CONFIGS[variant]) == expected


def test_snake_case_config_is_read_too():
    config = {"per_step_k8s_config": {"engine_step": {"container_config": {"env": [
        {"name": "A", "value_from": {"secret_key_ref": {"name": "keys", "key": "A"}}},
        {"name": "B", "value_from": {"secret_key_ref": {"name": "keys", "key": "B", "optional": True}}},
        {"name": "C", "value": "plain"}]}}}}
    assert required_secret_keys(config) == {"keys": {"A"}}


# Rows: the secrets the namespace holds, and what the refusal must say (None: the run may start).
@pytest.mark.parametrize(("secrets", "refusal"), [
    ({}, "secret 'yardstick-keys' does not exist in namespace 'dagster'; this run's step pods read OPENAI_API_KEY "
         "from it: create it with kubectl -n dagster create secret generic yardstick-keys "
         "--from-literal=OPENAI_API_KEY='...'"),
    ({"yardstick-keys": {"HF_TOKEN": "hf_x"}},
     "secret 'yardstick-keys' in namespace 'dagster' has no value for OPENAI_API_KEY (missing or empty)"),
    ({"yardstick-keys": {"OPENAI_API_KEY": ""}},
     "has no value for OPENAI_API_KEY (missing or empty), which this run's step pods read; add it: kubectl -n "
     "dagster patch secret yardstick-keys --type merge -p '{\"stringData\": {\"OPENAI_API_KEY\": \"...\"}}'"),
    ({"yardstick-keys": {"OPENAI_API_KEY": "sk-x"}}, None),
    ({"yardstick-keys": {"OPENAI_API_KEY": "sk-x", "HF_TOKEN": ""}}, None),
])
def test_a_missing_or_empty_key_is_refused_with_what_to_create(secrets, refusal):
    api = StandInCoreApi({"dagster": secrets})
    if refusal is None:
        check_secret_keys(api, "dagster", OPENAI)
    else:
        with pytest.raises(KubernetesConfigError) as refused:
            check_secret_keys(api, "dagster", OPENAI)
        assert refusal in str(refused.value)
    assert api.reads == [("dagster", "yardstick-keys")]


def test_a_secret_in_another_namespace_does_not_count():
    with pytest.raises(KubernetesConfigError, match="does not exist in namespace 'dagster'"):
        check_secret_keys(StandInCoreApi({"default": {"yardstick-keys": {"OPENAI_API_KEY": "sk-x"}}}), "dagster",
                          OPENAI)


def test_a_service_account_that_may_not_read_the_secret_is_told_what_to_apply():
    with pytest.raises(KubernetesConfigError, match="kubectl -n dagster apply -f deploy/helm/read-keys.yaml"):
        check_secret_keys(StandInCoreApi({}, refuse=FORBIDDEN), "dagster", OPENAI)


def test_another_api_error_is_not_taken_for_a_missing_secret():
    with pytest.raises(ApiException) as error:
        check_secret_keys(StandInCoreApi({}, refuse=500), "dagster", OPENAI)
    assert error.value.status == 500

