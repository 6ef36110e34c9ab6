"""Each calibration method chooses its own activation ranges on onnxruntime.

A ReLU's output that is mostly small with a rare outlier (one token of one sample): minmax covers the outlier, entropy
and percentile clip it (each its own way), and no method gives a ReLU's output negative range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_ops.calibration.onnxruntime import ort_static


def _relu_mlp(path: Path) -> None:
    """x -> MatMul -> ReLU ("hidden") -> MatMul -> ReLU -> MatMul -> y."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) / 4, name)
               for name, shape in (("w1", (16, 32)), ("w2", (32, 32)), ("w3", (32, 4)))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["a1"], name="fc1"),
             helper.make_node("Relu", ["a1"], ["hidden"], name="relu1"),
             helper.make_node("MatMul", ["hidden", "w2"], ["a2"], name="fc2"),
             helper.make_node("Relu", ["a2"], ["h2"], name="relu2"),
             helper.make_node("MatMul", ["h2", "w3"], ["y"], name="fc3")]
    graph = helper.make_graph(nodes, "relu_mlp",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256, 4])],
                              weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
              str(path))


def _hidden_range(quantized: Path) -> tuple[float, float]:
    """The uint8 range the quantized model gives the ReLU's output."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(quantized)).graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    (q,) = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "hidden"]
    scale, zero = float(values[q.input[1]]), int(values[q.input[2]])
    return -zero * scale, (255 - zero) * scale


@pytest.fixture(scope="module")
def ranges(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[float, float]]:
    folder = tmp_path_factory.mktemp("ranges")
    _relu_mlp(folder / "model.onnx")
    x = np.random.default_rng(1).standard_normal((128, 256, 16)).astype(np.float32)
    x[7, 100] *= 40  # one token of one sample: 3 in 100,000 of the ReLU's outputs
    np.savez(folder / "calibration.npz", x=x)
    found = {}
    for method in ("minmax", "entropy", "percentile"):
        out = folder / f"{method}.onnx"
        info = ort_static(str(folder / "model.onnx"), str(out), str(folder / "calibration.npz"),
                          "int8", method=method)
        assert info["method"] == method
        found[method] = _hidden_range(out)
    return found


def test_minmax_covers_the_outlier_and_the_others_clip_it(ranges) -> None:
    minmax, entropy, percentile = ranges["minmax"][1], ranges["entropy"][1], ranges["percentile"][1]
    assert entropy < minmax / 3, ranges
    assert percentile < minmax / 3, ranges
    assert entropy != pytest.approx(percentile, rel=0.05), ranges


def test_a_relus_output_gets_no_negative_range(ranges) -> None:
    for method, (low, _) in ranges.items():
        assert low == pytest.approx(0.0, abs=1e-6), (method, ranges)
