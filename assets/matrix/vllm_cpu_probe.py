"""Run by the Python of vLLM's own environment (never imported by yardstick): which kernel library vLLM's CPU build
loads on this host and which quantized kernels that library holds. Prints one JSON object.

    python vllm_cpu_probe.py            vLLM's own choice for this CPU (CpuPlatform.import_kernels)
    python vllm_cpu_probe.py _C_AVX2    that library instead, loaded for real (what a CPU without AVX-512 loads)

Asked of the installed build on this host, because builds differ: vllm-cpu 0.32.0 ships `_C` (AVX-512 with BF16),
`_C_AVX512` and `_C_AVX2`, and only some of them hold the 4-bit weight-only GEMM.
"""

import importlib
import json
import re
import sys
from importlib import metadata

import torch

# The kernels a quantized linear layer calls on a CPU (vllm/model_executor/kernels/linear/*/cpu.py).
KERNELS = ("cpu_gemm_wna16", "onednn_scaled_mm", "onednn_mm", "int8_scaled_mm_with_quant", "fp8_scaled_mm_cpu")
# Importing a library under a module name it does not define raises this, though the library is loaded (vLLM's
# own loader ignores it too).
_LOADED_ANYWAY = "dynamic module does not define module export function"


def _load(library: str | None) -> None:
    if library is None:
        from vllm.platforms.cpu import CpuPlatform

        CpuPlatform.import_kernels()
        return
    try:
        importlib.import_module(f"vllm.{library}")
    except ImportError as error:
        if _LOADED_ANYWAY not in str(error):
            raise


def _loaded_libraries() -> list[str]:
    with open("/proc/self/maps") as maps:
        return sorted(set(re.findall(r"/vllm/(_C\w*)\.abi3\.so", maps.read())))


def _weight_only_bits() -> list[int] | None:
    """The weight widths vLLM's CPU weight-only kernel accepts, as its kernel selection states them."""
    try:
        from vllm.model_executor.kernels.linear.mixed_precision import cpu
    except ImportError:
        return None
    types = getattr(cpu, "_CPUWNA16_SUPPORTED_QUANT_TYPES", None)
    return sorted({kind.size_bits for kind in types}) if types else None


def main() -> None:
    library = sys.argv[1] if len(sys.argv) > 1 else None
    _load(library)
    loaded = _loaded_libraries()
    version = None
    for distribution in ("vllm-cpu", "vllm"):
        try:
            version = metadata.version(distribution)
            break
        except metadata.PackageNotFoundError:
            continue
    print(json.dumps({
        "library": library or (loaded[0] if len(loaded) == 1 else None),
        "loaded": loaded,
        "kernels": [name for name in KERNELS if hasattr(torch.ops._C, name)],
        # Importing vLLM's kernel selection loads the host's own library, which must not meet a forced one.
        "weight_only_bits": None if library else _weight_only_bits(),
        "vllm_version": version,
    }))


if __name__ == "__main__":
    main()
