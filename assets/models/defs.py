"""model_snapshot and quantized_model: the weights a variant serves, and exactly which ones they are."""

import hashlib
import json
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.models.checkpoint import describe_checkpoint, directory_bytes
from assets.models.quantize import quantize_checkpoint, quantized_path

from assets.matrix import Variant
from assets.partitions import variant_partitions
from resources.engines import external_base_url
from resources.hub import ModelHubResource
from resources.matrix import MatrixResource
from resources.warehouse import WarehouseResource
from warehouse import utc_now

QUANTIZATION_MARKER = "yardstick_quantization.json"



def external_snapshot(variant: Variant) -> dict:
    """An external endpoint's weights are its own: recorded as the served model name at the endpoint, and
    fingerprinted by both, so samples from another endpoint or model never mix with these."""
    served = str(variant.engine.options["model"])
    where = external_base_url(variant.engine)   # the URL itself, also when an environment variable holds it
    fingerprint = hashlib.sha256(f"external:{where}:{served}".encode()).hexdigest()[:16]
    return {"variant": variant.name, "source": "external", "repo": served, "revision": str(where),
            "commit_sha": None, "local_path": None, "fingerprint": fingerprint, "bytes": None,
            "parameters": None, "recorded_at": utc_now()}


@dg.asset(partitions_def=variant_partitions, group_name="models", kinds={"huggingface", "duckdb"})
def model_snapshot(
    context: dg.AssetExecutionContext, matrix: MatrixResource, hub: ModelHubResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """The variant's weights on local disk: a hub snapshot at a pinned revision (only the files an engine
    needs), a local folder, or the generated offline model; with size, parameter count and architecture."""
    variant = matrix.variant(context.partition_key)
    if variant.engine.kind == "external":
        row = external_snapshot(variant)
        warehouse.replace_partition("model_snapshots", variant.name, pd.DataFrame([row]))
        context.log.info(f"external endpoint: {row['repo']} at {row['revision']}; no weights to fetch")
        return dg.MaterializeResult(metadata={"dagster/row_count": 1, "source": "external",
                                              "served_model": row["repo"], "endpoint": row["revision"]})
    fetched = hub.fetch(variant.model)
    facts = describe_checkpoint(fetched["local_path"])
    row = {"variant": variant.name, **fetched, **facts, "recorded_at": utc_now()}
    warehouse.replace_partition("model_snapshots", variant.name, pd.DataFrame([row]))
    return dg.MaterializeResult(metadata={
        "dagster/row_count": 1,
        "path": dg.MetadataValue.path(fetched["local_path"]),
        "commit_sha": fetched["commit_sha"] or "",
        "bytes": facts["bytes"],
        "parameters": facts["parameters"],
        "architecture": facts["architecture"] or "",
    })


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
    scheme = variant.quantization.scheme
    if variant.engine.kind == "external":
        if scheme != "none":
            raise dg.Failure(f"variant '{variant.name}' is an external endpoint; it cannot be quantized here "
                             f"(quantization '{scheme}'); set quantization: none")
        record = {"scheme": "none", "method": "external", "local_path": None, "bytes_before": None,
                  "bytes_after": None, "seconds": 0.0, "tool": None, "tool_version": None, "recipe": None,
                  "calibration": None}
        warehouse.replace_partition("quantized_models", variant.name,
                                    pd.DataFrame([{"variant": variant.name, **record, "recorded_at": utc_now()}]))
        return dg.MaterializeResult(metadata={"dagster/row_count": 1, "scheme": "none", "method": "external"})
    source = Path(snapshot.iloc[0]["local_path"])
    if scheme == "none":
        size = directory_bytes(source)
        record = {"scheme": "none", "method": "passthrough", "local_path": str(source), "bytes_before": size,
                  "bytes_after": size, "seconds": 0.0, "tool": None, "tool_version": None, "recipe": None,
                  "calibration": None}
    else:
        target = quantized_path(hub.models_dir, variant)
        identity = {"source": str(source), "source_sha": snapshot.iloc[0]["commit_sha"],
                    "source_bytes": directory_bytes(source), **variant.quantization.identity()}
        marker = target / QUANTIZATION_MARKER
        if marker.exists() and json.loads(marker.read_text()).get("identity") == identity:
            record = json.loads(marker.read_text())["record"]
            context.log.info(f"reusing {target}, quantized earlier from the same source")
        else:
            context.log.info(f"quantizing {source} with {scheme} ({variant.quantization.method}"
                             + (f", calibrated on {variant.quantization.calibration})" if variant.quantization.calibration
                                else ")"))
            record = {**quantize_checkpoint(source, target, variant.quantization), "local_path": str(target)}
            marker.write_text(json.dumps({"identity": identity, "record": record}, indent=2))
    row = {"variant": variant.name, **record, "recorded_at": utc_now()}
    warehouse.replace_partition("quantized_models", variant.name, pd.DataFrame([row]))
    return dg.MaterializeResult(metadata={
        "dagster/row_count": 1,
        "scheme": scheme,
        "path": dg.MetadataValue.path(record["local_path"]),
        "bytes_before": record["bytes_before"],
        "bytes_after": record["bytes_after"],
        "seconds": round(record["seconds"], 2),
        "method": record["method"],
        "calibration": record["calibration"] or "none",
        "tools": record["tool_version"] or "",
    })
