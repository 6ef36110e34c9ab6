"""int8 for onnxruntime engines: onnxruntime's own static quantizer.

QDQ with uint8 activations and int8 per-channel weights, the placement onnxruntime fuses into
QLinearConv/QLinearMatMul kernels.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from trt_ops.calibration.common import sample_feeds
from trt_ops.errors import DataError, PrecisionError

ORT_METHODS = ("entropy", "minmax", "percentile")
# quantize_static cannot set its histogram calibrators' options: its entropy calibrator then has
# 128 bins for 128 quantized levels, which leaves one candidate threshold, the full range (so
# "entropy" is minmax), and its percentile cuts |x| at 99.999%. The ranges are calibrated here
# with TensorRT's entropy bins and a two-sided percentile, and handed to it as its cache.
HISTOGRAM_OPTIONS = {"entropy": {"num_bins": 2048, "num_quantized_bins": 128},
                     "percentile": {"num_bins": 2048, "percentile": 99.99, "symmetric": False}}


def ort_static(onnx_in: str, onnx_out: str, data_npz: str, precision: str,
               method: str = "entropy", axes: dict[str, dict[str, str]] | None = None,
               recipe: dict[str, Any] | None = None, mixed: dict[str, Any] | None = None,
               thresholds: dict[str, float] | None = None, task: str = "classification",
               **_: Any) -> dict[str, Any]:
    """int8 for onnxruntime: QDQ with uint8 activations and int8 per-channel weights.

    ``mixed`` (the spec's calibration.mixed_precision) with a mode other than ``off``: the last
    share of the samples is held out, the ranges are calibrated on the rest, and
    :mod:`trt_ops.calibration.mixed_precision` keeps the fewest sensitive layers float until
    ``thresholds`` pass on the held-out samples."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from trt_ops.calibration import mixed_precision

    if precision != "int8":
        raise PrecisionError(f"onnxruntime's static quantizer makes int8, not {precision}",
                             "use precision int8 for onnxruntime targets")
    if method not in ORT_METHODS:
        raise DataError(f"unknown calibration method {method!r} for onnxruntime",
                        f"use one of {ORT_METHODS}")
    start = time.perf_counter()
    # each sample at its real lengths; the histogram methods (entropy, percentile) need one
    # shape for all samples, so they get them padded: the mask must make padding neutral
    histogram = method in ("entropy", "percentile")
    feeds = sample_feeds(data_npz, None if histogram else axes)
    mixed = mixed or {"mode": "off"}
    searching = mixed["mode"] != "off"
    held = max(1, round(len(feeds) * mixed.get("holdout", 0.25))) if searching else 0
    if searching and len(feeds) - held < 1:
        raise DataError(f"{len(feeds)} calibration samples cannot be split into calibration and "
                        f"held-out samples (holdout {mixed.get('holdout')})",
                        "give more calibration samples (calibration.samples and the data), or "
                        "set calibration.mixed_precision.mode to off")
    calib_feeds, holdout = feeds[:len(feeds) - held], feeds[len(feeds) - held:]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(calib_feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    # pre-processing (shape inference, folding) lets the quantizer see every tensor's type
    prepped = _pre_process(onnx_in, onnx_out + ".prep.onnx")
    calibration = {"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax,
                   "percentile": CalibrationMethod.Percentile}[method]
    settings = (recipe or {}).get("settings", {})  # a transformer: MatMul/Gemm only
    keep_fp32 = sorted({*_output_layers(prepped), *settings.get("keep_float", [])})
    work = os.path.dirname(os.path.abspath(onnx_out)) + "/.mixed"
    os.makedirs(work, exist_ok=True)
    ranges = os.path.join(work, "ranges.json")  # calibrated once; every later call reuses it

    def quantize(exclude: list[str], path: str) -> None:
        quantize_static(prepped, path, Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=True, calibrate_method=calibration,
                        nodes_to_exclude=exclude, op_types_to_quantize=settings.get("op_types"),
                        calibration_cache_path=ranges)
        floats = sorted(set(exclude) - set(keep_fp32))
        if floats:
            mixed_precision.float_inputs(path, floats, prepped)

    mixed_precision.progress("calibrating activation ranges", 0, 1)
    _calibrate_ranges(prepped, Reader(), method, calibration, settings.get("op_types"), ranges)
    quantize(keep_fp32, onnx_out)
    calibrated_s = time.perf_counter() - start
    mixed_precision.progress("calibrating activation ranges", 1, 1)
    nodes = mixed_precision.quantized_nodes(onnx_out)
    record = None
    if searching:
        record = mixed_precision.run(
            prepped, onnx_out, quantize, work,
            sensitivity_feeds=calib_feeds[:mixed.get("sensitivity_samples", 32)],
            holdout_feeds=holdout, thresholds=thresholds or {}, task=task,
            base_exclude=keep_fp32, mode=mixed["mode"],
            time_limit_s=float(mixed.get("time_limit_s", 600)),
            max_float_fraction=float(mixed.get("max_float_fraction", 0.25)), ranges_path=ranges)
    layers = mixed_precision.layer_stats(prepped, ranges, nodes, calib_feeds)
    floats = {f["name"] for f in (record or {}).get("float_layers", [])}
    for layer in layers:
        layer["sensitivity"] = (record or {}).get("sensitivity", {}).get(layer["name"])
        layer["float"] = layer["name"] in floats
    if record:
        record.pop("sensitivity", None)
        record.pop("op_types", None)
    shutil.rmtree(work, ignore_errors=True)
    os.unlink(prepped)
    return {"calibrator": "onnxruntime.quantize_static", "method": method,
            "samples": len(calib_feeds), "batch": 1, "samples_padded": histogram,
            "activations": "uint8", "weights": "int8 per-channel",
            "kept_fp32": sorted({*keep_fp32, *floats}), "calibration_seconds": round(calibrated_s, 3),
            "seconds": round(time.perf_counter() - start, 3), "mixed_precision": record,
            "layers": layers}


def _calibrate_ranges(prepped: str, reader: Any, method: str, calibration: Any,
                      op_types: list[str] | None, cache: str) -> None:
    """Each activation's range, written where quantize_static reads its calibration cache."""
    from onnxruntime.quantization.calibrate import (
        TensorData,
        TensorsData,
        create_calibrator,
        save_tensors_data,
    )

    with tempfile.TemporaryDirectory() as tmp:
        calibrator = create_calibrator(Path(prepped), op_types, f"{tmp}/augmented.onnx",
                                       calibrate_method=calibration,
                                       extra_options=HISTOGRAM_OPTIONS.get(method, {}))
        calibrator.collect_data(reader)
        ranges = calibrator.compute_data()
        if method == "entropy":
            # its thresholds are symmetric about zero: a ReLU's output gets no negative range
            observed = calibrator.collector.histogram_dict
            ranges = TensorsData(calibration, {
                name: TensorData(lowest=np.maximum(r.range_value[0], observed[name][2]),
                                 highest=np.minimum(r.range_value[1], observed[name][3]))
                for name, r in ranges.data.items()})
    save_tensors_data(ranges, Path(cache))


def _pre_process(onnx_in: str, prepped: str) -> str:
    """Shape inference and folding, so the quantizer sees every tensor's type.

    The dynamo exporter records shapes of weights in ``value_info``; once the optimizer has
    transposed a weight, the record is stale and the quantizer's own shape inference fails, so
    those records are dropped (shape inference recomputes them). Should the optimizer pass
    itself fail, the graph is pre-processed without it: the engine build optimizes it anyway.
    """
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(onnx_in, prepped, skip_symbolic_shape=True)
    except Exception:  # noqa: BLE001 - onnx's InferenceError, retried without the optimizer
        quant_pre_process(onnx_in, prepped, skip_symbolic_shape=True, skip_optimization=True)
    model = onnx.load(prepped)
    weights = {t.name for t in model.graph.initializer}
    kept = [v for v in model.graph.value_info if v.name not in weights]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
    onnx.save(model, prepped)
    return prepped


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


def ort_dynamic(onnx_in: str, onnx_out: str, precision: str,
                recipe: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
    """int8 for onnxruntime, the dynamic recipe (:mod:`trt_ops.calibration.recipes`): int8
    per-channel weights for MatMul/Gemm, activations quantized at run time; the nodes the
    recipe keeps float are left alone. No calibration data is needed."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if precision != "int8":
        raise PrecisionError(f"onnxruntime's dynamic quantizer makes int8, not {precision}",
                             "use precision int8 for onnxruntime targets")
    settings = (recipe or {}).get("settings", {})
    keep = list(settings.get("keep_float", []))
    prepped = _pre_process(onnx_in, onnx_out + ".prep.onnx")
    quantize_dynamic(prepped, onnx_out, weight_type=QuantType.QInt8,
                     per_channel=bool(settings.get("per_channel", True)),
                     op_types_to_quantize=list(settings.get("op_types", ["MatMul", "Gemm"])),
                     nodes_to_exclude=keep)
    os.unlink(prepped)
    return {"calibrator": "onnxruntime.quantize_dynamic", "method": "dynamic (run-time ranges)",
            "samples": 0, "activations": "uint8, per batch at run time",
            "weights": "int8 per-channel", "kept_fp32": keep}
