"""The pipeline spec: one YAML file names the model, data, precisions, targets and gates.

:mod:`.schema` defines it (pydantic); :mod:`.load` reads it with clear errors; :mod:`.reference`
renders its JSON Schema and the docs' reference page from the same classes.
"""

from trt_ops.spec.load import load_spec, parse_spec
from trt_ops.spec.schema import (
    BATCH,
    DEFAULT_THRESHOLDS,
    Dim,
    InputSpec,
    ModelSpec,
    PipelineSpec,
)

__all__ = ["BATCH", "DEFAULT_THRESHOLDS", "Dim", "InputSpec", "ModelSpec", "PipelineSpec",
           "load_spec", "parse_spec"]
