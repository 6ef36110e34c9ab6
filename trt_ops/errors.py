"""Domain errors: each says what was wrong, what was expected, and how to fix it."""

from __future__ import annotations


class TrtOpsError(Exception):
    """Base error. ``fix`` is the remedy shown to the user next to the problem."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem, fix)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}\n  fix: {self.fix}" if self.fix else self.problem


class SpecError(TrtOpsError):
    """The pipeline spec or a stage argument is invalid."""


class ModelSourceError(TrtOpsError):
    """The source model cannot be imported, built or loaded."""


class ExportError(TrtOpsError):
    """The model could not be exported to a valid ONNX graph matching PyTorch."""


class OnnxModelError(TrtOpsError):
    """A file is not a loadable, valid ONNX model."""


class DataError(TrtOpsError):
    """Calibration or validation data does not fit the model or holds bad values."""


class PrecisionError(TrtOpsError):
    """A precision is unknown, or the chosen backend or device cannot run it."""


class StoreError(TrtOpsError):
    """The artifact store is unreachable or an object is missing."""


class IntegrityError(StoreError):
    """An object's bytes do not match the sha256 recorded for it."""


class TargetMismatchError(TrtOpsError):
    """The machine running a task is not the hardware its target names."""


class EngineError(TrtOpsError):
    """An engine cannot be built or loaded."""


class EngineContractError(EngineError):
    """An engine's metadata does not fit the engine contract (:mod:`trt_ops.engines.contract`)."""
