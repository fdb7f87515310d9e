"""The one place that builds the Dagster definitions for yardstick."""

import os

import dagster as dg

from assets.benchmarks.defs import benchmark_items
from assets.cost.defs import cost_rollup
from assets.engine.defs import engine_step
from assets.grading.defs import graded_answers
from assets.leaderboard.defs import (
    accuracy_did_not_regress,
    leaderboard,
    published_evaluation,
    serving_did_not_regress,
)
from assets.models.defs import model_snapshot, quantized_model
from assets.partitions import variant_partitions
from assets.scoring.defs import benchmark_scores, benchmark_scores_are_valid, quantization_loss
from pipelines import kubernetes, settings
from pipelines.recovery import dead_runs, failed_runs
from resources.devices import DeviceResource
from resources.engines import EngineResource
from resources.hub import ModelHubResource
from resources.matrix import MatrixResource
from resources.prices import PriceCatalogResource
from resources.warehouse import WarehouseResource

ALL_ASSETS = [benchmark_items, model_snapshot, quantized_model, engine_step, graded_answers, benchmark_scores,
              quantization_loss, cost_rollup, published_evaluation, leaderboard]

evaluation_job = dg.define_asset_job(
    "evaluation", selection=dg.AssetSelection.all(),
    config=kubernetes.evaluation_config(kubernetes.executor_kind(), variant_partitions),
    description="The whole chain for one variant: items and weights → engine → grades → scores → cost.",
)


@dg.schedule(job=evaluation_job, cron_schedule="0 2 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def nightly_eval(context: dg.ScheduleEvaluationContext):
    """Every night, the whole chain for every variant of the matrix (finished samples are reused)."""
    night = context.scheduled_execution_time.strftime("%Y-%m-%d")
    for variant in variant_partitions.get_partition_keys():
        yield dg.RunRequest(run_key=f"{night}-{variant}", partition_key=variant)


defs = dg.Definitions(
    assets=ALL_ASSETS,
    # Steps run one after another in the run's process: on a small machine a process per step costs more
    # than the steps themselves, and the chain is a line with one long step (the engine) anyway. On Kubernetes
    # (YARDSTICK_EXECUTOR=k8s) each step is a pod of its own, shaped for its variant (pipelines.kubernetes).
    executor=kubernetes.executor_for(kubernetes.executor_kind()),
    asset_checks=[benchmark_scores_are_valid, accuracy_did_not_regress, serving_did_not_regress],
    jobs=[evaluation_job],
    schedules=[nightly_eval],
    sensors=[dead_runs, failed_runs],
    resources={
        "matrix": MatrixResource(path=str(settings.matrix_path()), benchmark_mirror=settings.benchmark_mirror()),
        "warehouse": WarehouseResource(path=settings.warehouse_path(), lake_data=settings.lake_data()),
        "hub": ModelHubResource(models_dir=str(settings.models_dir()),
                                token=dg.EnvVar("HF_TOKEN") if os.environ.get("HF_TOKEN") else None),
        "engine": EngineResource(log_dir=str(settings.logs_dir()),
                                 vllm_command=settings.configured_vllm_command()),
        "prices": PriceCatalogResource(),
        "devices": DeviceResource(claims_dir=str(settings.claims_dir()), devices=settings.devices()),
    },
)
