"""Calibrators: they place the Q/DQ nodes (or casts) for the engine that will run them.

Each runs in its own process (:mod:`trt_ops.isolated`) and takes ``onnx_in``, ``onnx_out``,
``data_npz`` (calibration samples, one array per input), ``precision`` and ``method``.

- onnxruntime: its own static quantizer (QDQ, uint8 activations, int8 per-channel weights),
  whose placement onnxruntime fuses into QLinearConv/QLinearMatMul kernels.
- TensorRT: Model Optimizer's ONNX PTQ (int8, fp8), placed the way TensorRT fuses them.
- fp16/bf16: Model Optimizer AutoCast, which keeps numerically sensitive nodes in fp32.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import numpy as np

from trt_ops.errors import DataError, PrecisionError

ORT_METHODS = ("entropy", "minmax", "percentile")
MODELOPT_METHODS = ("entropy", "max")


def _load_npz(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def passthrough(onnx_in: str, onnx_out: str, **_: Any) -> dict[str, Any]:
    """fp32: the exported graph as it is."""
    shutil.copyfile(onnx_in, onnx_out)
    return {"calibrator": "passthrough"}


def ort_static(onnx_in: str, onnx_out: str, data_npz: str, precision: str,
               method: str = "entropy", **_: Any) -> dict[str, Any]:
    """int8 for onnxruntime: QDQ with uint8 activations and int8 per-channel weights."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if precision != "int8":
        raise PrecisionError(f"onnxruntime's static quantizer makes int8, not {precision}",
                             "use precision int8 for onnxruntime targets")
    if method not in ORT_METHODS:
        raise DataError(f"unknown calibration method {method!r} for onnxruntime",
                        f"use one of {ORT_METHODS}")
    arrays = _load_npz(data_npz)
    n = len(next(iter(arrays.values())))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self._i >= n:
                return None
            feed = {k: v[self._i:self._i + 1] for k, v in arrays.items()}
            self._i += 1
            return feed

    # pre-processing (shape inference, folding) lets the quantizer see every tensor's type
    prepped = onnx_out + ".prep.onnx"
    quant_pre_process(onnx_in, prepped, skip_symbolic_shape=True)
    calibration = {"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax,
                   "percentile": CalibrationMethod.Percentile}[method]
    keep_fp32 = _output_layers(prepped)
    quantize_static(prepped, onnx_out, Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, calibrate_method=calibration, nodes_to_exclude=keep_fp32)
    os.unlink(prepped)
    return {"calibrator": "onnxruntime.quantize_static", "method": method, "samples": n,
            "activations": "uint8", "weights": "int8 per-channel", "kept_fp32": keep_fp32}


def _output_layers(onnx_path: str) -> list[str]:
    """The Gemm/MatMul nodes that produce graph outputs (a classifier's last layer).

    Their rounding errors go straight into the logits, where close classes swap places, and
    they are a tiny share of the compute: they stay fp32.
    """
    import onnx

    graph = onnx.load(onnx_path, load_external_data=False).graph
    outputs = {o.name for o in graph.output}
    producers = {out: node for node in graph.node for out in node.output}
    layers = []
    for name in outputs:
        node = producers.get(name)
        # look through a trailing Add (a MatMul's bias) to the layer itself
        if node is not None and node.op_type == "Add":
            node = next((producers[i] for i in node.input if i in producers
                         and producers[i].op_type in ("MatMul", "Gemm")), node)
        if node is not None and node.op_type in ("MatMul", "Gemm"):
            layers.append(node.name)
    return layers


def modelopt_quantize(onnx_in: str, onnx_out: str, data_npz: str, precision: str,
                      method: str = "entropy", **_: Any) -> dict[str, Any]:
    """int8/fp8 for TensorRT: Model Optimizer ONNX PTQ, calibrated on the CPU."""
    from modelopt.onnx.quantization import quantize

    if precision not in ("int8", "fp8"):
        raise PrecisionError(f"Model Optimizer PTQ makes int8 or fp8, not {precision}",
                             "use int8 or fp8; fp16/bf16 go through AutoCast")
    if method not in MODELOPT_METHODS:
        raise DataError(f"unknown calibration method {method!r} for Model Optimizer",
                        f"use one of {MODELOPT_METHODS}")
    arrays = _load_npz(data_npz)
    quantize(onnx_in, quantize_mode=precision, calibration_data=arrays,
             calibration_method=method, calibration_eps=["cpu"], output_path=onnx_out)
    return {"calibrator": "modelopt.onnx.quantization", "method": method,
            "samples": len(next(iter(arrays.values())))}


def autocast(onnx_in: str, onnx_out: str, precision: str, data_npz: str | None = None,
             **_: Any) -> dict[str, Any]:
    """fp16/bf16: Model Optimizer AutoCast; inputs and outputs stay fp32."""
    import onnx
    from modelopt.onnx.autocast import convert_to_mixed_precision

    if precision not in ("fp16", "bf16"):
        raise PrecisionError(f"AutoCast makes fp16 or bf16, not {precision}", "use fp16 or bf16")
    model = convert_to_mixed_precision(onnx_in, low_precision_type=precision, keep_io_types=True,
                                       calibration_data=data_npz)
    onnx.save(model, onnx_out)
    kept = sum(1 for n in model.graph.node if n.op_type == "Cast")
    return {"calibrator": "modelopt.onnx.autocast", "casts": kept}
