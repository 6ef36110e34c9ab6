"""Model Optimizer calibrators for TensorRT engines: ONNX PTQ (int8, fp8) and AutoCast (fp16, bf16).

Model Optimizer places Q/DQ nodes the way TensorRT fuses them; AutoCast keeps numerically
sensitive nodes in fp32, judged on the calibration data. Calibration runs on the CPU.

What the user asked for is what is built, and the calibration's facts say what was used:

- int8 and fp8 are int8/fp8 where Q/DQ nodes sit and **fp32 everywhere else**
  (``high_precision_dtype="fp32"``), unless the spec asks for fp16 or bf16 there; Model
  Optimizer's own default would silently turn the rest of the graph into fp16.
- the calibration method is resolved in one place (:func:`modelopt_method`): int8 takes entropy
  or max; fp8 is calibrated with max, the only method Model Optimizer's fp8 conversion supports.
- models whose protobuf would pass 2 GB are written with their weights in one external data
  file beside the model (``<model>.onnx_data``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from trt_ops.calibration.common import load_npz
from trt_ops.errors import DataError, PrecisionError

log = logging.getLogger("trt_ops")

# calibration methods Model Optimizer supports per precision; the first is the default
MODELOPT_METHODS = {"int8": ("entropy", "max"), "fp8": ("max",)}
HIGH_PRECISION_DTYPES = ("fp32", "fp16", "bf16")
PROTOBUF_LIMIT = 2 * 1024**3  # an ONNX protobuf cannot hold more: weights go to external data


def modelopt_method(precision: str, requested: str | None) -> tuple[str, str | None]:
    """The calibration method Model Optimizer uses for ``precision``, and why it differs from
    ``requested`` (None when it does not)."""
    methods = MODELOPT_METHODS.get(precision)
    if methods is None:
        raise PrecisionError(f"Model Optimizer PTQ makes int8 or fp8, not {precision}",
                             "use int8 or fp8; fp16/bf16 go through AutoCast")
    if requested is None or requested in methods:
        return requested or methods[0], None
    if precision == "fp8" and requested == "entropy":  # the spec's default method
        return "max", "Model Optimizer calibrates fp8 with max only (entropy is int8's)"
    raise DataError(f"unknown calibration method {requested!r} for Model Optimizer {precision}",
                    f"use one of {list(methods)}")


def _uses_external_data(onnx_in: str) -> bool:
    import onnx
    from onnx.external_data_helper import uses_external_data

    model = onnx.load(onnx_in, load_external_data=False)
    return any(uses_external_data(t) for t in model.graph.initializer)


def _external_data(onnx_in: str, threshold: int, input_external: bool) -> bool:
    """Whether the output must keep its weights in external data: its input did
    (``input_external``), or it is big."""
    return input_external or os.path.getsize(onnx_in) >= threshold


def modelopt_quantize(onnx_in: str, onnx_out: str, data_npz: str, precision: str,
                      method: str | None = None, high_precision_dtype: str = "fp32",
                      external_data_threshold: int = PROTOBUF_LIMIT,
                      recipe: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
    """int8/fp8 for TensorRT: Model Optimizer ONNX PTQ, calibrated on the CPU."""
    used, why = modelopt_method(precision, method)
    if why:
        log.warning("%s calibration: %s; using %s", precision, why, used)
    if high_precision_dtype not in HIGH_PRECISION_DTYPES:
        raise PrecisionError(f"high_precision_dtype {high_precision_dtype!r} is unknown",
                             f"use one of {list(HIGH_PRECISION_DTYPES)} (fp32: the nodes without "
                             "Q/DQ stay fp32)")
    # imported after the checks: importing it patches onnxruntime's quantizer for the process
    from modelopt.onnx.quantization import quantize

    arrays = load_npz(data_npz)
    external = _external_data(onnx_in, external_data_threshold, _uses_external_data(onnx_in))
    settings = dict((recipe or {}).get("settings", {}))  # e.g. a transformer's encoder settings
    quantize(onnx_in, quantize_mode=precision, calibration_data=arrays,
             calibration_method=used, calibration_eps=["cpu"], output_path=onnx_out,
             high_precision_dtype=high_precision_dtype, use_external_data_format=external,
             **settings)
    facts: dict[str, Any] = {
        "calibrator": "modelopt.onnx.quantization", "method": used, "settings": settings,
        "samples": len(next(iter(arrays.values()))), "high_precision_dtype": high_precision_dtype,
        "external_data": external}
    if why:
        facts.update(requested_method=method, method_note=why)
    return facts


def autocast(onnx_in: str, onnx_out: str, precision: str, data_npz: str | None = None,
             external_data_threshold: int = PROTOBUF_LIMIT, **_: Any) -> dict[str, Any]:
    """fp16/bf16: Model Optimizer AutoCast, which keeps in fp32 the nodes whose values on the
    calibration data would overflow; inputs and outputs stay fp32."""
    if precision not in ("fp16", "bf16"):
        raise PrecisionError(f"AutoCast makes fp16 or bf16, not {precision}", "use fp16 or bf16")
    if not data_npz:
        raise DataError(f"AutoCast for {precision} got no calibration data",
                        "give the calibrate stage calibration data: without it AutoCast would "
                        "judge which nodes stay fp32 on random inputs")
    import onnx
    from modelopt.onnx.autocast import convert_to_mixed_precision

    from trt_ops.data import ragged

    # the model's inputs only: a ragged set's lengths arrays are not inputs
    feeds = {k: v for k, v in load_npz(data_npz).items() if not k.startswith(ragged.PREFIX)}
    mapped = _uses_external_data(onnx_in)
    external = _external_data(onnx_in, external_data_threshold, mapped)
    if mapped:  # the same conversion with the weights left in their file (a model over 2 GB)
        from trt_ops.calibration import autocast_mapped

        model = autocast_mapped.convert(onnx_in, onnx_out, precision, feeds)
    else:
        model = convert_to_mixed_precision(onnx_in, low_precision_type=precision,
                                           keep_io_types=True, calibration_data=feeds)
    # AutoCast records the shapes it inferred at one sample shape; with dynamic axes those
    # records contradict other shapes at run time (onnxruntime refuses to run): drop them
    del model.graph.value_info[:]
    if mapped:  # the weights are written already; the graph points at them
        onnx.save(model, onnx_out)
    elif external:
        onnx.save(model, onnx_out, save_as_external_data=True, all_tensors_to_one_file=True,
                  location=os.path.basename(onnx_out) + "_data", size_threshold=1024)
    else:
        onnx.save(model, onnx_out)
    kept = sum(1 for n in model.graph.node if n.op_type == "Cast")
    return {"calibrator": "modelopt.onnx.autocast", "casts": kept,
            "samples": len(next(iter(feeds.values()))), "external_data": external}
