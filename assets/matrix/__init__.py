"""The evaluation matrix: which variants run which benchmarks, under which protocol.

`load_matrix(path)` reads and validates a matrix file; the dataclasses it returns are what every stage, resource
and command reads.
"""

from assets.matrix.engines import (
    ENGINE_SETTINGS,
    EngineSettings,
    EngineSettingsError,
    ExternalSettings,
    LlamaCppSettings,
    LocalEngineSettings,
    TransformersSettings,
    VllmSettings,
)
from assets.matrix.load import DEFAULT_MATRIX, load_matrix, matrix_path
from assets.matrix.spec import (
    CALIBRATED_METHODS,
    ENGINE_KINDS,
    GGUF_SCHEMES,
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
)

__all__ = ["CALIBRATED_METHODS", "DEFAULT_MATRIX", "ENGINE_KINDS", "ENGINE_SETTINGS", "GGUF_SCHEMES",
           "PROTOCOL_PRESETS", "QUANTIZATION_METHODS", "EngineSettings", "EngineSettingsError", "EngineSpec",
           "ExternalSettings", "LlamaCppSettings", "LocalEngineSettings", "Matrix", "MatrixError", "ModelSpec",
           "Protocol", "QuantizationSpec", "ServingSpec", "TransformersSettings", "Variant", "VllmSettings",
           "load_matrix", "matrix_path"]
