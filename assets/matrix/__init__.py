"""The evaluation matrix: which variants run which benchmarks, under which protocol.

`load_matrix(path)` reads and validates a matrix file; the dataclasses it returns are what every stage, resource
and command reads.
"""

from assets.matrix.load import DEFAULT_MATRIX, load_matrix, matrix_path
from assets.matrix.spec import (
    CALIBRATED_METHODS,
    ENGINE_KINDS,
    PROTOCOL_PRESETS,
    QUANTIZATION_METHODS,
    EngineSpec,
    Matrix,
    MatrixError,
    ModelSpec,
    Protocol,
    QuantizationSpec,
    ServingSpec,
    Variant,
    on_cpu,
)

__all__ = ["CALIBRATED_METHODS", "DEFAULT_MATRIX", "ENGINE_KINDS", "PROTOCOL_PRESETS", "QUANTIZATION_METHODS",
           "EngineSpec", "Matrix", "MatrixError", "ModelSpec", "Protocol", "QuantizationSpec", "ServingSpec",
           "Variant", "load_matrix", "matrix_path", "on_cpu"]
