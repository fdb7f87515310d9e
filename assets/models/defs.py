"""model_snapshot and quantized_model: the weights a variant serves, and exactly which ones they are."""

from pathlib import Path

import dagster as dg
import pandas as pd

from assets.matrix import Variant
from assets.models.checkpoint import describe_checkpoint, external_snapshot
from assets.models.gguf import LlamaCppError
from assets.models.quantize import (
    earlier_quantization,
    external_record,
    passthrough_record,
    quantize_and_record,
    quantized_path,
    source_identity,
)
from assets.partitions import variant_partitions
from assets.variants import adoption_statements, former_sample_keys, sample_key
from resources.disk import DiskSpaceError, require_free_space
from resources.hub import ModelHubResource
from resources.launchers import external_base_url
from resources.matrix import MatrixResource
from resources.warehouse import WarehouseResource
from warehouse import utc_now


def record_snapshot(warehouse: WarehouseResource, variant: Variant, snapshot: dict) -> dict:
    """The snapshot's row, with the key of the samples drawn on it (worked out here, once); the samples an older
    yardstick stored under another key for the same settings and weights are re-keyed to it."""
    recorded_at = utc_now()
    key = sample_key(variant, snapshot["fingerprint"], recorded_at)
    row = {**snapshot, "recorded_at": recorded_at, "config_hash": key}
    warehouse.replace_partition("model_snapshots", variant.name, pd.DataFrame([row]))
    for statement, parameters in adoption_statements(variant.name, former_sample_keys(variant, row["fingerprint"]),
                                                     key):
        warehouse.query(statement, parameters)
    return row


def sample_key_of(warehouse: WarehouseResource, variant: str) -> str:
    """The key of the variant's samples, as its model snapshot recorded it."""
    found = warehouse.query("SELECT config_hash FROM model_snapshots WHERE variant = ?", [variant])
    if found.empty or pd.isna(found.iloc[0]["config_hash"]):
        raise LookupError(f"no model_snapshot for variant '{variant}' (or one recorded by an older yardstick); "
                          "materialize model_snapshot first")
    return str(found.iloc[0]["config_hash"])


@dg.asset(partitions_def=variant_partitions, group_name="models", kinds={"huggingface", "duckdb"})
def model_snapshot(
    context: dg.AssetExecutionContext, matrix: MatrixResource, hub: ModelHubResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """The variant's weights on local disk: a hub snapshot at a pinned revision (only the files an engine
    needs), a local folder, or the generated offline model; with size, parameter count and architecture."""
    variant = matrix.variant(context.partition_key)
    if variant.engine.kind == "external":
        row = record_snapshot(warehouse, variant, external_snapshot(variant, external_base_url(variant.engine)))
        context.log.info(f"external endpoint: {row['repo']} at {row['revision']}; no weights to fetch")
        return dg.MaterializeResult(metadata={"dagster/row_count": 1, "source": "external",
                                              "served_model": row["repo"], "endpoint": row["revision"],
                                              "config_hash": row["config_hash"]})
    fetched = hub.fetch(variant.model)
    facts = describe_checkpoint(fetched["local_path"])
    row = record_snapshot(warehouse, variant, {"variant": variant.name, **fetched, **facts})
    return dg.MaterializeResult(metadata={
        "dagster/row_count": 1,
        "config_hash": row["config_hash"],
        "path": dg.MetadataValue.path(fetched["local_path"]),
        "commit_sha": fetched["commit_sha"] or "",
        "bytes": facts["bytes"],
        "parameters": facts["parameters"],
        "architecture": facts["architecture"] or "",
    })


def _quantized(context: dg.AssetExecutionContext, variant: Variant, source: Path, source_sha: str | None,
               models_dir: str, gguf: bool) -> dict:
    """The record of the variant's quantized checkpoint (a GGUF file for llama.cpp): made now, or reused when it
    was made earlier from the same source and settings."""
    spec = variant.quantization
    target = quantized_path(models_dir, variant)
    identity = {**source_identity(source, source_sha, spec), **({"format": "gguf"} if gguf else {})}
    record = earlier_quantization(target, identity)
    if record:
        context.log.info(f"reusing {target}, quantized earlier from the same source")
        return record
    calibrated = f", calibrated on {spec.calibration}" if spec.calibration else ""
    tool = "llama.cpp" if gguf else "llm-compressor"
    context.log.info(f"quantizing {source} with {spec.scheme} ({spec.method}{calibrated}, {tool})")
    # A quantized checkpoint is smaller than its source: the source's size is room enough.
    needed = sum(path.stat().st_size for path in source.rglob("*") if path.is_file())
    try:
        require_free_space(target.parent, needed, f"the {spec.scheme} checkpoint of {source.name}")
        return quantize_and_record(source, target, spec, identity, gguf=gguf)
    except (DiskSpaceError, LlamaCppError) as error:
        raise dg.Failure(f"variant '{variant.name}': {error}") from None


@dg.asset(partitions_def=variant_partitions, group_name="models", kinds={"pytorch", "duckdb"}, deps=[model_snapshot])
def quantized_model(
    context: dg.AssetExecutionContext, matrix: MatrixResource, hub: ModelHubResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """The checkpoint the engine loads: the snapshot itself for `none`, else an llm-compressor
    compressed-tensors checkpoint, reused when one was already made from the same source and scheme."""
    variant = matrix.variant(context.partition_key)
    snapshot = warehouse.query("SELECT local_path, commit_sha FROM model_snapshots WHERE variant = ?", [variant.name])
    if snapshot.empty:
        raise dg.Failure(f"no model_snapshot for variant '{variant.name}'; materialize model_snapshot first")
    spec = variant.quantization
    if variant.engine.kind == "external":
        if spec.scheme != "none":
            raise dg.Failure(f"variant '{variant.name}' is an external endpoint; it cannot be quantized here "
                             f"(quantization '{spec.scheme}'); set quantization: none")
        row = {"variant": variant.name, **external_record(), "recorded_at": utc_now()}
        warehouse.replace_partition("quantized_models", variant.name, pd.DataFrame([row]))
        return dg.MaterializeResult(metadata={"dagster/row_count": 1, "scheme": "none", "method": "external"})
    source = Path(snapshot.iloc[0]["local_path"])
    gguf = variant.engine.kind == "llamacpp"   # llama.cpp serves a GGUF file, made here even from `none`
    if spec.scheme == "none" and not gguf:
        record = passthrough_record(source)
    else:
        record = _quantized(context, variant, source, snapshot.iloc[0]["commit_sha"], hub.models_dir, gguf)
    row = {"variant": variant.name, **record, "recorded_at": utc_now()}
    warehouse.replace_partition("quantized_models", variant.name, pd.DataFrame([row]))
    return dg.MaterializeResult(metadata={
        "dagster/row_count": 1,
        "scheme": spec.scheme,
        "path": dg.MetadataValue.path(record["local_path"]),
        "bytes_before": record["bytes_before"],
        "bytes_after": record["bytes_after"],
        "seconds": round(record["seconds"], 2),
        "method": record["method"],
        "calibration": record["calibration"] or "none",
        "tools": record["tool_version"] or "",
    })
