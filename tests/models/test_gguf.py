"""GGUF quantization (assets/models/gguf.py) with llama.cpp's own tools on the tiny model: each type as asked, the
importance matrix from the calibration source for an i-quant, what was done recorded, nothing half-written."""

from collections import Counter

import pytest

from assets.matrix import MatrixError, QuantizationSpec
from assets.models.gguf import LlamaCppError, quantize_gguf


def tensor_types(path) -> Counter:
    from gguf import GGUFReader

    return Counter(t.tensor_type.name for t in GGUFReader(path).tensors if len(t.shape) == 2)


def file_type(path) -> int:
    from gguf import GGUFReader

    field = GGUFReader(path).fields["general.file_type"]
    return int(field.parts[field.data[0]][0])


# The weight tensor types each scheme is made of (llama-quantize's mixes keep some tensors at a higher type) and the
# file type it declares (llama.cpp's LLAMA_FTYPE_MOSTLY_*).
SCHEMES = {
    "Q8_0": ({"Q8_0"}, "Q8_0", 7),
    "Q4_K_M": ({"Q4_K", "Q6_K"}, "Q4_K", 15),
    "IQ4_XS": ({"IQ4_XS", "Q6_K"}, "IQ4_XS", 30),
}


@pytest.mark.integration
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_each_scheme_writes_the_tensor_types_it_names(tiny_model, tmp_path, scheme):
    allowed, main, ftype = SCHEMES[scheme]
    method = "imatrix" if scheme.startswith("IQ") else "llama-quantize"
    calibration = ("arith-train", 32, 64) if method == "imatrix" else (None, 512, 2048)
    record = quantize_gguf(tiny_model, tmp_path / scheme, QuantizationSpec(scheme, method, *calibration))
    types = tensor_types(record["local_path"])
    assert set(types) <= allowed and types[main] > sum(types.values()) / 2, types
    assert file_type(record["local_path"]) == ftype
    assert record["tool"] == "llama.cpp" and "commit" in record["tool_version"]
    assert record["bytes_after"] < 0.6 * record["bytes_before"]   # 8.5 bits a weight at most, from 16
    assert sorted(path.name for path in (tmp_path / scheme).iterdir() if path.suffix == ".gguf") == (
        ["imatrix.gguf", "model.gguf"] if method == "imatrix" else ["model.gguf"])
    if method == "imatrix":
        assert record["calibration"].startswith("arith-train: 32 samples")
        assert "--imatrix" in record["recipe"]
    assert not (tmp_path / f"{scheme}.partial").exists()


@pytest.mark.integration
def test_unquantized_keeps_the_checkpoints_own_16_bit_type(tiny_gguf):
    assert set(tensor_types(tiny_gguf)) == {"BF16"}


@pytest.mark.integration
def test_a_failed_quantization_leaves_nothing_under_the_final_name(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("YARDSTICK_LLAMACPP_QUANTIZE", "false")
    with pytest.raises(LlamaCppError, match="llama-quantize to Q8_0 failed"):
        quantize_gguf(tiny_model, tmp_path / "q8", QuantizationSpec("Q8_0", "llama-quantize"))
    assert not (tmp_path / "q8").exists()


@pytest.mark.unit
def test_gguf_types_belong_to_llamacpp_and_llamacpp_serves_only_them(tmp_path):
    from assets.matrix import load_matrix

    def matrix(engine: str, quantization: str) -> None:
        path = tmp_path / "m.yaml"
        path.write_text(f"variants:\n  v:\n    model: {{generate: tiny-r1-qwen2}}\n    benchmarks: {{arith: 1}}\n"
                        f"    hardware: cpu-2vcpu\n    engine: {engine}\n    quantization: {quantization}\n")
        load_matrix(path)

    with pytest.raises(MatrixError, match="Q4_K_M is a GGUF type, which llama.cpp serves"):
        matrix("{kind: vllm, device: cpu}", "Q4_K_M")
    with pytest.raises(MatrixError, match="llama.cpp serves GGUF files, not W4A16"):
        matrix("{kind: llamacpp}", "W4A16")
    with pytest.raises(MatrixError, match="method imatrix needs a 'calibration' source"):
        matrix("{kind: llamacpp}", "IQ4_XS")
    matrix("{kind: llamacpp}", "none")
    matrix("{kind: llamacpp}", "{scheme: IQ2_XXS, method: imatrix, calibration: arith-train}")
