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


# What must never reach a terminal or a log: URL userinfo, AWS keys, tokens and passwords.
_SECRET_ENV = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "AWS_SECRET_ACCESS_KEY",
               "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
_PATTERNS = None


def _patterns() -> list[tuple[object, str]]:
    global _PATTERNS
    if _PATTERNS is None:
        import re

        _PATTERNS = [
            # scheme://user:password@host and scheme://token@host
            (re.compile(r"(?P<s>\b[a-zA-Z][\w+.-]*://)(?P<u>[^:/@\s]*):[^@\s]+@"), r"\g<s>\g<u>:***@"),
            (re.compile(r"(?P<s>\b[a-zA-Z][\w+.-]*://)[^:/@\s]+@"), r"\g<s>***@"),
            (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), "***"),
            (re.compile(r"(?i)(bearer\s+)[^\s\"']+"), r"\1***"),
            (re.compile(r"(?i)(x-amz-(?:signature|credential|security-token)=)[^&\s\"']+"), r"\1***"),
            (re.compile(r"(?i)\b([\w-]*(?:secret|token|password|passwd|api[_-]?key|access[_-]?key)"
                        r"[\w-]*[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,;}]+"), r"\1***"),
        ]
    return _PATTERNS


def redact(text: str) -> str:
    """``text`` with credentials replaced by ``***``: URL userinfo, AWS keys, bearer tokens,
    ``key=value`` secrets, and the values of the credential environment variables."""
    import os

    for name in _SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    for pattern, repl in _patterns():
        text = pattern.sub(repl, text)  # type: ignore[attr-defined]
    return text
