"""Precision fallback: an int8 engine made inaccurate on purpose fails its gate, fp16 passes.

The route is the real one: a first run calibrates int8; its calibrated ONNX then has the
activations' quantization scales multiplied by 50 and is stored back under the calibrate
stage's key (manifest updated), so the next run cache-hits the tampered calibration and builds
a bad engine from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from trt_ops.pipeline import run_pipeline
from trt_ops.spec import load_spec
from trt_ops.store import open_store
from trt_ops.store.cache import manifest_key


def _tamper_scales(path: Path, out: Path, factor: float) -> int:
    """Multiplies the y_scale of every activation QuantizeLinear; returns how many it changed."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    names = {n.input[1] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    for init in model.graph.initializer:
        if init.name in names:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(factor),
                                                  init.name))
    onnx.save(model, str(out))
    return len(names)


def test_tampered_int8_fails_its_gate_and_falls_back_to_fp16(digits_copy: Path) -> None:
    spec_path = digits_copy / "pipeline.yaml"
    doc = yaml.safe_load(spec_path.read_text())
    doc.update(precisions=["int8"], fallback=True,
               benchmark={"batch_sizes": [1], "iterations": 3, "warmup": 1})
    spec_path.write_text(yaml.safe_dump(doc))
    spec = load_spec(spec_path)

    first = run_pipeline(spec)
    assert [(a.precision, a.verdict) for a in first.attempts] == [("int8", "PASSED")]

    store = open_store(spec.store)
    calib = first.calibrations["int8/onnxruntime"]
    onnx_artifact = calib.artifact("onnx")
    tampered = digits_copy / "tampered.onnx"
    assert _tamper_scales(store.fetch(onnx_artifact), tampered, 50.0) > 0
    calib.artifacts["onnx"] = store.put_file(onnx_artifact.uri.split(store.uri + "/")[1], tampered)
    store.put_json(manifest_key("calibrate", calib.key), calib.to_dict())

    second = run_pipeline(spec)
    assert "calibrate int8/onnxruntime" not in second.work_done  # the tampered one was used
    int8, fp16 = second.attempts
    assert (int8.precision, int8.verdict, int8.fallback_from) == ("int8", "FAILED", None)
    failed = [c["name"] for c in int8.validation.info["gate"]["checks"] if not c["passed"]]
    assert "min_cosine" in failed  # scales 50x too coarse: outputs point elsewhere
    assert [line.split(":")[0] for line in int8.reason.split("; ")] == [f"FAILED | {n}" for n in failed]
    assert (fp16.precision, fp16.verdict, fp16.fallback_from) == ("fp16", "PASSED", "int8")
    assert [e.precision for e in second.engines] == ["fp16"]

    recorded = json.loads((digits_copy / "store" / "runs" / second.run_id / "summary.json").read_text())
    assert [(a["precision"], a["verdict"], a["fallback_from"]) for a in recorded["attempts"]] == \
        [("int8", "FAILED", None), ("fp16", "PASSED", "int8")]
    assert recorded["attempts"][0]["validation"]["info"]["gate"]["passed"] is False
