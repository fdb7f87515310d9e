"""A test instrument: what Dagster's Helm chart (dagster/dagster) makes of deploy/helm/values.yaml for the parts Dagster
reads, reconstructed in Python because no helm binary, and no copy of the chart, is at hand offline.

It follows the chart's templates as read from the public repository dagster-io/dagster (helm/dagster), at the
revision whose instance ConfigMap has the `concurrency` block (the 1.13 line; not checked against the 1.13.27 tag):
- the instance ConfigMap's `dagster.yaml`: templates/configmap-instance.yaml with helpers/instance/_scheduler.tpl,
  _postgresql.tpl, _run-launcher.tpl (`dagsterYaml.runLauncher.k8s`), _run-coordinator.tpl
  (`dagsterYaml.runCoordinator.queued`, which writes max_concurrent_runs beside an enabled `concurrency` only when it
  is set) and _concurrency.tpl (its `fail`s included);
- the code location's container context, which reaches run and step pods with includeConfigInLaunchedRuns:
  charts/dagster-user-deployments/templates/helpers/_helpers.tpl (`dagsterUserDeployments.k8sContainerContext`);
- the names: templates/helpers/_helpers.tpl (`dagster.fullname`, `dagster.serviceAccountName`,
  `dagster.postgresql.secretName`) for the release `dagster` in the namespace `dagster` (deploy/README.md).
Sections our values do not reach (run monitoring, retention, sensors, compute logs beyond the default no-op) and the
container context's sidecars, init containers and annotations are left out. Go templates' truth (`if`: nil, false, 0,
"" and empty collections are false) and sprig's `compact` are kept.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

RELEASE = "dagster"
NAMESPACE = "dagster"
USER_DEPLOYMENTS_CHART = "dagster-user-deployments"

# The chart's values.yaml for the keys the templates above read and deploy/helm/values.yaml leaves to the chart.
CHART_DEFAULTS: dict[str, Any] = {
    "global": {"postgresqlSecretName": "dagster-postgresql-secret", "dagsterHome": "/opt/dagster/dagster_home",
               "serviceAccountName": ""},
    "serviceAccount": {"name": ""},
    "imagePullSecrets": [],
    "postgresql": {"enabled": True, "postgresqlHost": "", "postgresqlParams": {}, "postgresqlScheme": "",
                   "service": {"port": 5432}},
    "scheduler": {"type": "DagsterDaemonScheduler", "config": {"daemonScheduler": {"maxCatchupRuns": None,
                                                                                  "maxTickRetries": 0}}},
    "runLauncher": {"type": "K8sRunLauncher", "config": {"k8sRunLauncher": {
        "jobNamespace": None, "loadInclusterConfig": True, "kubeconfigFile": None, "imagePullPolicy": "Always",
        "envConfigMaps": [], "envSecrets": [], "envVars": [], "volumeMounts": [], "volumes": [], "labels": {},
        "resources": {}}}},
    "dagsterDaemon": {"enabled": True, "runCoordinator": {
        "enabled": True, "type": "QueuedRunCoordinator", "config": {"queuedRunCoordinator": {
            "maxConcurrentRuns": None, "tagConcurrencyLimits": [], "dequeueIntervalSeconds": None,
            "dequeueUseThreads": True, "dequeueNumWorkers": 4}}}},
    "concurrency": {"enabled": False,
                    "pools": {"defaultLimit": None, "granularity": None, "opGranularityRunBuffer": None},
                    "runs": {"maxConcurrentRuns": None, "tagConcurrencyLimits": []}},
    "telemetry": {"enabled": True},
    "dagster-user-deployments": {"enabled": True, "enableSubchart": True, "deployments": []},
}


class ChartRenderError(Exception):
    """What the chart's own `fail` stops `helm install` with."""


def _merged(defaults: Any, ours: Any) -> Any:
    """Helm's merge of a values file over the chart's: maps merge key by key, anything else is replaced, and a null
    in the values file removes the chart's key."""
    if not (isinstance(defaults, dict) and isinstance(ours, dict)):
        return copy.deepcopy(ours)
    merged = copy.deepcopy(defaults)
    for key, value in ours.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merged(merged.get(key), value)
    return merged


def chart_values(ours: dict) -> dict:
    """Our values over the chart's, as the templates see them."""
    return _merged(CHART_DEFAULTS, ours)


def values_file(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _true(value: Any) -> bool:
    """Go template truth: nil, false, 0, "" and empty maps and lists are false."""
    return bool(value)


def _fullname(chart_name: str) -> str:
    return RELEASE if chart_name in RELEASE else f"{RELEASE}-{chart_name}"


def _names(entries: list | None) -> list[str]:
    """The `range ... if hasKey $entry "name"` of envSecrets and envConfigMaps."""
    return [entry["name"] for entry in entries or [] if isinstance(entry, dict) and "name" in entry]


def _postgres(values: dict) -> dict:
    postgresql = values["postgresql"]
    host = postgresql["postgresqlHost"] if not postgresql["enabled"] else f"{RELEASE}-postgresql"
    config = {"username": postgresql["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
              "hostname": host, "db_name": postgresql["postgresqlDatabase"], "port": postgresql["service"]["port"],
              "params": postgresql["postgresqlParams"]}
    if _true(postgresql.get("postgresqlScheme")):
        config["scheme"] = postgresql["postgresqlScheme"]
    return {"postgres_db": config}


def _k8s_run_launcher(values: dict) -> dict:
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {"load_incluster_config": launcher["loadInclusterConfig"]}
    if _true(launcher.get("kubeconfigFile")):
        config["kubeconfig_file"] = launcher["kubeconfigFile"]
    config["job_namespace"] = launcher.get("jobNamespace") or NAMESPACE
    config["image_pull_policy"] = launcher["imagePullPolicy"]
    if _true(values["imagePullSecrets"]):
        config["image_pull_secrets"] = values["imagePullSecrets"]
    config["service_account_name"] = (values["global"]["serviceAccountName"] or values["serviceAccount"]["name"]
                                      or _fullname("dagster"))
    if "image" in launcher:
        config["job_image"] = f"{launcher['image']['repository']}:{launcher['image']['tag']}"
    config["dagster_home"] = values["global"]["dagsterHome"]
    config["instance_config_map"] = f"{_fullname('dagster')}-instance"
    config["postgres_password_secret"] = (values["global"]["postgresqlSecretName"]
                                          or f"{_fullname('dagster')}-postgresql-secret")
    for key, field in (("envConfigMaps", "env_config_maps"), ("envSecrets", "env_secrets")):
        if _true(launcher.get(key)):
            config[field] = _names(launcher[key])
    for key, field in (("envVars", "env_vars"), ("volumeMounts", "volume_mounts"), ("volumes", "volumes"),
                       ("labels", "labels"), ("resources", "resources"), ("schedulerName", "scheduler_name"),
                       ("securityContext", "security_context")):
        if _true(launcher.get(key)):
            config[field] = launcher[key]
    if _true(launcher.get("failPodOnRunFailure")):
        config["fail_pod_on_run_failure"] = True
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def _queued_run_coordinator(values: dict) -> dict:
    queued = values["dagsterDaemon"]["runCoordinator"]["config"].get("queuedRunCoordinator") or {}
    concurrency = values["concurrency"]["enabled"]
    rendered: dict[str, Any] = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}
    if not any(_true(value) for value in queued.values()):   # `if not (empty (compact (values ...)))`
        return rendered
    config: dict[str, Any] = {}
    if not concurrency or queued.get("maxConcurrentRuns") is not None:
        config["max_concurrent_runs"] = -1 if queued.get("maxConcurrentRuns") is None else queued["maxConcurrentRuns"]
    if _true(queued.get("tagConcurrencyLimits")):
        config["tag_concurrency_limits"] = queued["tagConcurrencyLimits"]
    for key, field in (("dequeueIntervalSeconds", "dequeue_interval_seconds"),
                       ("dequeueUseThreads", "dequeue_use_threads"), ("dequeueNumWorkers", "dequeue_num_workers")):
        if _true(queued.get(key)):
            config[field] = queued[key]
    block = queued.get("blockOpConcurrencyLimitedRuns")
    if _true(block):
        config["block_op_concurrency_limited_runs"] = {
            "enabled": block.get("enabled"), "op_concurrency_slot_buffer": block.get("opConcurrencySlotBuffer")}
    rendered["config"] = config
    return rendered


def _concurrency(values: dict) -> dict:
    pools, runs = values["concurrency"]["pools"], values["concurrency"]["runs"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    if coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator":
        queued = coordinator["config"].get("queuedRunCoordinator") or {}
        if runs.get("maxConcurrentRuns") is not None and queued.get("maxConcurrentRuns") is not None:
            raise ChartRenderError("Cannot set both concurrency.runs.maxConcurrentRuns and "
                                   "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.maxConcurrentRuns")
        if runs.get("tagConcurrencyLimits") and queued.get("tagConcurrencyLimits"):
            raise ChartRenderError("Cannot set both concurrency.runs.tagConcurrencyLimits and "
                                   "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits")
        block = queued.get("blockOpConcurrencyLimitedRuns") or {}
        if pools.get("opGranularityRunBuffer") is not None and block.get("opConcurrencySlotBuffer") is not None:
            raise ChartRenderError("Cannot set both concurrency.pools.opGranularityRunBuffer and dagsterDaemon."
                                   "runCoordinator.config.queuedRunCoordinator.blockOpConcurrencyLimitedRuns."
                                   "opConcurrencySlotBuffer")
    rendered: dict[str, Any] = {}
    if pools.get("defaultLimit") is not None or _true(pools.get("granularity")) or \
            pools.get("opGranularityRunBuffer") is not None:
        rendered["pools"] = {field: pools[key] for key, field in (
            ("defaultLimit", "default_limit"), ("granularity", "granularity"),
            ("opGranularityRunBuffer", "op_granularity_run_buffer")) if pools.get(key) is not None}
    if runs.get("maxConcurrentRuns") is not None or runs.get("tagConcurrencyLimits"):
        rendered["runs"] = {}
        if runs.get("maxConcurrentRuns") is not None:
            rendered["runs"]["max_concurrent_runs"] = runs["maxConcurrentRuns"]
        if runs.get("tagConcurrencyLimits"):
            rendered["runs"]["tag_concurrency_limits"] = runs["tagConcurrencyLimits"]
    return rendered


def instance_config(values: dict) -> dict:
    """The `dagster.yaml` of the instance ConfigMap (`<release>-instance`), as a mapping."""
    storage = _postgres(values)
    config: dict[str, Any] = {
        "scheduler": {"module": "dagster.core.scheduler", "class": "DagsterDaemonScheduler"},
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage",
                             "config": storage},
        "run_launcher": _k8s_run_launcher(values),
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": storage},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage",
                              "config": storage},
    }
    daemon = values["dagsterDaemon"]
    if daemon["enabled"] and daemon["runCoordinator"]["enabled"]:
        config["run_coordinator"] = _queued_run_coordinator(values)
    config["compute_logs"] = {"module": "dagster.core.storage.noop_compute_log_manager",
                              "class": "NoOpComputeLogManager"}
    if values["concurrency"]["enabled"]:
        config["concurrency"] = _concurrency(values)
    config["telemetry"] = {"enabled": values["telemetry"]["enabled"]}
    return config


def code_location_context(values: dict, deployment_name: str) -> dict:
    """The container context the user deployment `deployment_name` hands every run launched from it (empty without
    includeConfigInLaunchedRuns)."""
    subchart = values["dagster-user-deployments"]
    deployment = next(d for d in subchart["deployments"] if d["name"] == deployment_name)
    if not (deployment.get("includeConfigInLaunchedRuns") or {}).get("enabled"):
        return {}
    fullname = _fullname(USER_DEPLOYMENTS_CHART)
    k8s: dict[str, Any] = {"image_pull_policy": deployment["image"]["pullPolicy"]}
    k8s["env_config_maps"] = [f"{fullname}-{deployment_name}-user-env", *_names(deployment.get("envConfigMaps"))]
    if _true(deployment.get("envSecrets")):
        k8s["env_secrets"] = _names(deployment["envSecrets"])
    for key, field in (("volumeMounts", "volume_mounts"), ("volumes", "volumes"), ("labels", "labels"),
                       ("resources", "resources"), ("schedulerName", "scheduler_name")):
        if _true(deployment.get(key)):
            k8s[field] = deployment[key]
    k8s["namespace"] = NAMESPACE
    k8s["service_account_name"] = (values["global"]["serviceAccountName"]
                                   or (subchart.get("serviceAccount") or {}).get("name")
                                   or f"{fullname}-user-deployments")
    if isinstance(deployment.get("env"), list) and deployment["env"]:
        k8s["env"] = deployment["env"]
    k8s["run_k8s_config"] = {"pod_spec_config": {"automount_service_account_token": True}}
    return {"k8s": k8s}


def rendered(ours: dict, deployment_name: str) -> tuple[dict, dict]:
    """The instance config and the code location's container context `ours` (a values file's content) make."""
    values = chart_values(ours)
    return instance_config(values), code_location_context(values, deployment_name)
