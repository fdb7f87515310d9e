"""GGUF quantization, llama.cpp's world: the checkpoint converted to GGUF by llama.cpp's own `convert_hf_to_gguf.py`
(at the checkpoint's 16-bit type, or F16/BF16 as asked), then `llama-quantize` to the scheme's type, with an
importance matrix from `llama-imatrix` on the variant's calibration source where the method is `imatrix` (i-quants
always). The GGUF file is what llama.cpp serves.

The tools are the build `make` caches in .llama.cpp/ (see the Makefile), or the ones the environment names:
YARDSTICK_LLAMACPP_SERVER, YARDSTICK_LLAMACPP_QUANTIZE, YARDSTICK_LLAMACPP_IMATRIX (programs) and
YARDSTICK_LLAMACPP_SOURCE (the source tree holding convert_hf_to_gguf.py and gguf-py).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from assets.matrix import QuantizationSpec
from assets.models.calibration import calibration_texts, parse_source
from assets.models.checkpoint import TOKENIZER_FILES, directory_bytes

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUILD = PROJECT_ROOT / ".llama.cpp"
TOOLS = {"server": "llama-server", "quantize": "llama-quantize", "imatrix": "llama-imatrix"}
GGUF_FILE = "model.gguf"
# The converter's output types: what `none` keeps (the checkpoint's own 16-bit type), F16 and BF16.
CONVERT_TYPES = {"none": "auto", "F16": "f16", "BF16": "bf16"}
IMATRIX_FILE = "imatrix.gguf"


class LlamaCppError(RuntimeError):
    """llama.cpp's tools are missing or one of them failed."""


def llamacpp_tool(name: str) -> str:
    """The program for a llama.cpp tool ('server', 'quantize', 'imatrix'): the environment's choice, else the build
    in .llama.cpp/. Raises LlamaCppError, saying how to get one, when neither is there."""
    chosen = os.environ.get(f"YARDSTICK_LLAMACPP_{name.upper()}")
    if chosen:
        return chosen
    built = DEFAULT_BUILD / "build" / "bin" / TOOLS[name]
    if built.exists():
        return str(built)
    raise LlamaCppError(f"{TOOLS[name]} not found: run `make llama.cpp` (it builds llama.cpp into {DEFAULT_BUILD}), "
                        f"or set YARDSTICK_LLAMACPP_{name.upper()} to a build of your own")


def llamacpp_source() -> Path:
    """The llama.cpp source tree with convert_hf_to_gguf.py and gguf-py."""
    chosen = os.environ.get("YARDSTICK_LLAMACPP_SOURCE")
    source = Path(chosen) if chosen else DEFAULT_BUILD / "src"
    if not (source / "convert_hf_to_gguf.py").exists():
        raise LlamaCppError(f"convert_hf_to_gguf.py not found in {source}: run `make llama.cpp`, or set "
                            "YARDSTICK_LLAMACPP_SOURCE to a llama.cpp source tree")
    return source


def llamacpp_version(program: str) -> str:
    """What a llama.cpp program says it is (`--version`): '0.5.0-dev (build 0, commit 0c1e57098)', with its commit."""
    try:
        done = subprocess.run([*shlex.split(program), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LlamaCppError(f"cannot run {program} --version: {error}") from error
    found = re.search(r"version:\s*(\S+)\s*\(([^)]*)\)", done.stdout + done.stderr)
    if not found:
        raise LlamaCppError(f"{program} --version said nothing of its version:\n{(done.stdout + done.stderr)[-800:]}")
    return f"{found.group(1)} ({found.group(2)})"


def _run(argv: list[str], what: str, log: Path, env: dict[str, str] | None = None) -> None:
    with log.open("a") as out:
        out.write(f"$ {shlex.join(argv)}\n")
        out.flush()
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    if done.returncode:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise LlamaCppError(f"{what} failed (exit {done.returncode}); last lines of {log}:\n{tail}")


def convert(source: Path, target: Path, outtype: str, log: Path) -> list[str]:
    """`convert_hf_to_gguf.py` on the checkpoint (through `assets.models.gguf_convert`, which declares the
    pre-tokenizer a generated model names); returns the command line."""
    tree = llamacpp_source()
    argv = [sys.executable, "-m", "assets.models.gguf_convert", str(tree), str(source), "--outfile", str(target),
            "--outtype", outtype]
    _run(argv, f"converting {source} to GGUF", log, {"PYTHONPATH": str(PROJECT_ROOT)})
    return argv


def importance_matrix(model: Path, spec: QuantizationSpec, tokenizer_dir: Path, target: Path, log: Path) -> str:
    """`llama-imatrix` over the calibration source's texts (never a test split: parse_source refuses those);
    returns what was computed on."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    texts = calibration_texts(parse_source(spec.calibration), tokenizer, spec.calibration_samples)
    corpus = target.with_suffix(".txt")
    corpus.write_text("\n".join(texts))
    context = spec.calibration_max_seq_len
    _run([*shlex.split(llamacpp_tool("imatrix")), "-m", str(model), "-f", str(corpus), "-o", str(target),
          "-c", str(context), "--no-ppl"], "llama-imatrix", log)
    return f"{spec.calibration}: {len(texts)} samples, in chunks of {context} tokens (llama-imatrix)"


def quantize_gguf(source: Path, target_dir: Path, spec: QuantizationSpec) -> dict:
    """The checkpoint at `source` as a GGUF file of the scheme's type in `target_dir` (written beside, then moved,
    so a failure leaves nothing under the final name); returns the record of making it."""
    started = time.perf_counter()
    staging = target_dir.with_name(target_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log = staging / "llama.cpp.log"
    outtype = CONVERT_TYPES.get(spec.scheme, "auto")
    converted = staging / (GGUF_FILE if spec.scheme in CONVERT_TYPES else "converted.gguf")
    steps = [shlex.join(convert(source, converted, outtype, log))]
    calibration = None
    if spec.scheme not in CONVERT_TYPES:
        quantize = [*shlex.split(llamacpp_tool("quantize"))]
        if spec.method == "imatrix":
            matrix = staging / IMATRIX_FILE
            calibration = importance_matrix(converted, spec, source, matrix, log)
            quantize += ["--imatrix", str(matrix)]
            steps.append(f"llama-imatrix on {calibration}")
        quantize += [str(converted), str(staging / GGUF_FILE), spec.scheme]
        _run(quantize, f"llama-quantize to {spec.scheme}", log)
        steps.append(shlex.join(quantize))
        converted.unlink()
    # The source's tokenizer beside the file: what counts the served model's tokens (the file holds it too, in
    # llama.cpp's form).
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, staging / name)
    shutil.rmtree(target_dir, ignore_errors=True)
    staging.rename(target_dir)
    server = llamacpp_tool("server")
    return {
        "scheme": spec.scheme,
        "method": spec.method if spec.scheme not in CONVERT_TYPES else f"convert ({outtype})",
        "local_path": str(target_dir / GGUF_FILE),
        "bytes_before": directory_bytes(source),
        "bytes_after": (target_dir / GGUF_FILE).stat().st_size,
        "seconds": time.perf_counter() - started,
        "tool": "llama.cpp",
        "tool_version": f"llama.cpp {llamacpp_version(server)}",
        "recipe": "\n".join(steps).replace(str(staging), str(target_dir)),
        "calibration": calibration,
    }
