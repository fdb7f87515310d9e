"""deploy/helm/values.yaml as Dagster loads it. The instance config that Dagster's Helm chart writes from our values
(tests/deploy/dagster_chart.py: a stated reconstruction of the chart's templates; no helm here) is loaded with
Dagster's own instance-config validation, which the webserver, the daemon and every run and step pod run when they
start, and the config of each class it names is checked against that class's own schema, as the instance does when
it builds them. Dagster's validation lives in private modules; nothing public runs it without connecting to the
database and the cluster.
"""

import importlib
import re

import pytest
import yaml
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config

from tests.conftest import ROOT
from tests.deploy import dagster_chart

pytestmark = pytest.mark.unit

VALUES = dagster_chart.values_file(ROOT / "deploy" / "helm" / "values.yaml")
CONFIGURABLE = ("scheduler", "schedule_storage", "run_launcher", "run_storage", "event_log_storage",
                "run_coordinator", "compute_logs")


def configurable_class(entry: dict) -> type:
    """The class an instance builds from a `module`/`class` entry. The chart revision read names Dagster's own under
    `dagster.core`, the alias of `dagster._core` that Dagster 1.12 removed; they are looked up under `dagster._core`
    here, and whether the chart at 1.13.27 names them so only a real render shows."""
    module = re.sub(r"^dagster\.core\.", "dagster._core.", entry["module"])
    return getattr(importlib.import_module(module), entry["class"])


def loaded_instance(config: dict, home) -> dict:
    """What Dagster makes of `config` written as $DAGSTER_HOME/dagster.yaml; raises as an instance would."""
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    loaded, _ = dagster_instance_config(str(home))
    return loaded


def with_values(**changes: dict) -> dict:
    """Our values with top-level sections replaced."""
    return {**VALUES, **changes}


def test_the_instance_config_of_our_values_loads_with_dagsters_validation(tmp_path, monkeypatch):
    instance, _ = dagster_chart.rendered(VALUES, "yardstick")
    loaded = loaded_instance(instance, tmp_path)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "from-the-secret")   # every pod of the chart has it
    for section in CONFIGURABLE:
        entry = loaded[section]
        checked = process_config(configurable_class(entry).config_type(), entry.get("config") or {})
        assert checked.success, f"{section} ({entry['class']}): {checked.errors}"


def test_the_run_limit_and_the_engine_pool_are_where_dagster_reads_them(tmp_path):
    loaded = loaded_instance(dagster_chart.rendered(VALUES, "yardstick")[0], tmp_path)
    assert loaded["concurrency"] == {"runs": {"max_concurrent_runs": 32}, "pools": {"default_limit": 16}}
    assert "max_concurrent_runs" not in (loaded["run_coordinator"].get("config") or {})
    launcher = loaded["run_launcher"]["config"]
    assert (launcher["image_pull_policy"], launcher["resources"]) == ("IfNotPresent", {"requests": {
        "cpu": "500m", "memory": "2Gi"}})


# Rows of values the chart renders and Dagster then refuses, or the chart itself refuses: the first is what
# deploy/helm/values.yaml said before (helm install passed, every pod failed to load its instance).
QUEUE_LIMIT = {"enabled": True, "type": "QueuedRunCoordinator",
               "config": {"queuedRunCoordinator": {"maxConcurrentRuns": 32}}}


@pytest.mark.parametrize(("changes", "refusal"), [
    ({"dagsterDaemon": {"enabled": True, "runCoordinator": QUEUE_LIMIT},
      "concurrency": {"enabled": True, "pools": {"defaultLimit": 16}}},
     "`\\['max_concurrent_runs'\\]` in `run_coordinator` which is incompatible with the `concurrency > runs`"),
    ({"dagsterDaemon": {"enabled": True, "runCoordinator": {**QUEUE_LIMIT, "config": {"queuedRunCoordinator": {
        "tagConcurrencyLimits": [{"key": "variant", "limit": 1}]}}}}},
     "`\\['tag_concurrency_limits'\\]` in `run_coordinator` which is incompatible"),
])
def test_values_that_helm_installs_but_dagster_refuses_are_refused(tmp_path, changes, refusal):
    instance, _ = dagster_chart.rendered(with_values(**changes), "yardstick")
    with pytest.raises(DagsterInvalidConfigError, match=refusal):
        loaded_instance(instance, tmp_path)


def test_values_the_chart_refuses_are_refused():
    both = with_values(dagsterDaemon={"enabled": True, "runCoordinator": QUEUE_LIMIT})
    with pytest.raises(dagster_chart.ChartRenderError, match="Cannot set both concurrency.runs.maxConcurrentRuns"):
        dagster_chart.rendered(both, "yardstick")


def test_the_read_keys_role_lets_the_run_pods_read_exactly_the_keys_secret():
    """deploy/helm/read-keys.yaml binds the service account the chart gives the code location, and so its run pods
    (the code location's container context overrides the run launcher's), and grants `get` on yardstick-keys only."""
    role, binding = yaml.safe_load_all((ROOT / "deploy" / "helm" / "read-keys.yaml").read_text())
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["yardstick-keys"],
                              "verbs": ["get"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    context = dagster_chart.rendered(VALUES, "yardstick")[1]["k8s"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": context["service_account_name"],
                                    "namespace": context["namespace"]}]
