"""The memory plan an engine starts with, as one record: stored with the deployment and printed by
`yardstick plan`, so both say the same thing."""

from __future__ import annotations

from assets.models.memory import Gpu, VariantPlan


def plan_record(planned: VariantPlan, gpu: Gpu | None) -> dict:
    """Weights, KV cache and parallelism of a plan in bytes, and, for a known GPU, what one GPU needs with every
    sequence at full length, whether it fits, and the tensor-parallel sizes that would."""
    plan = planned.plan
    record = {"weight_bytes": plan.weight_bytes, "weight_source": plan.weight_source,
              "kv_bytes_per_token": plan.kv_bytes_per_token, "max_model_len": plan.max_model_len,
              "sequences": plan.concurrency, "tensor_parallel": planned.tensor_parallel,
              "pipeline_parallel": planned.pipeline_parallel, "overhead_per_gpu": plan.overhead_per_gpu,
              # all of it, every sequence at full length: what the engine's measured memory is compared with
              "planned_bytes": (plan.weight_bytes + plan.kv_bytes_per_token * plan.max_model_len * plan.concurrency
                                + plan.overhead_per_gpu)}
    if gpu:
        fit = planned.rows([gpu])[0]
        record.update(gpu=gpu.name, needed_gib_per_gpu=round(fit["needed_gib_per_gpu"], 3),
                      usable_gib_per_gpu=round(fit["usable_gib_per_gpu"], 3), fits=fit["fits"],
                      full_length_sequences=fit["full_length_sequences"], smallest_tp=fit["smallest_tp"],
                      tp_to_start=fit["tp_to_start"])
    return record
