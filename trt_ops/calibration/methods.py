"""One vocabulary of calibration methods for every backend, mapped to each calibrator's names.

The spec says ``entropy``, ``minmax`` or ``percentile``; each backend's calibrator knows its own
subset under its own names. The mapping lives here, and only here.
"""

from __future__ import annotations

from trt_ops.errors import SpecError

METHODS = ("entropy", "minmax", "percentile")

# backend -> spec method -> the calibrator's name for it
BACKEND_METHODS: dict[str, dict[str, str]] = {
    "onnxruntime": {"entropy": "entropy", "minmax": "minmax", "percentile": "percentile"},
    "tensorrt": {"entropy": "entropy", "minmax": "max"},  # Model Optimizer's names
}
CALIBRATORS = {"onnxruntime": "onnxruntime's static quantizer", "tensorrt": "Model Optimizer"}


def backend_method(method: str, backend: str, precision: str) -> str:
    """The calibrator's name for ``method``; a clear error where the backend lacks it.

    Rules of one calibrator for one precision stay with that calibrator: Model Optimizer
    calibrates fp8 with ``max`` only, whatever it is given, and records that it did
    (:func:`trt_ops.calibration.modelopt.modelopt_method`).
    """
    if method not in METHODS:
        raise SpecError(f"unknown calibration method {method!r}", f"use one of {list(METHODS)}")
    known = BACKEND_METHODS.get(backend, {})
    if method not in known:
        raise SpecError(
            f"calibration method {method!r} is unknown to the {backend} backend's calibrator "
            f"({CALIBRATORS.get(backend, backend)})",
            f"set calibration.method to one it knows: {sorted(known)}")
    return known[method]
