"""config.pbtxt against Triton's own schema (the ``ModelConfig`` protobuf shipped in
``tritonclient``), and the layout of engines into repositories. No servers: engine records only.

The TensorRT engines here are records of placeholder plans; nothing is loaded.
"""

from __future__ import annotations

import pytest

from mlflow_plugins.triton import config, layout
from mlflow_plugins.triton.engines import ServedEngine, Tensor

PROFILE = {"image": {"min": [1, 1, 8, 8], "opt": [32, 1, 8, 8], "max": [32, 1, 8, 8]}}
INPUTS = (Tensor("image", "float32", (-1, 1, 8, 8)),)
OUTPUTS = (Tensor("logits", "float32", (-1, 10)),)
CATALOG = {"h100", "h200", "l4", "cpu-avx512", "cpu-avx2"}


def trt(target: str, cc: str, precision: str = "fp16", **kw) -> ServedEngine:
    return ServedEngine(name=f"{target}-{precision}", target=target, backend="tensorrt",
                        backend_version="10.13.3", precision=precision,
                        path=f"engines/{target}-{precision}/engine.plan", sha256="0" * 64,
                        gpu_product=f"NVIDIA {target.upper()}", compute_capability=cc,
                        profile=kw.pop("profile", PROFILE), **kw)


def ort(target: str = "cpu-avx512", precision: str = "int8") -> ServedEngine:
    return ServedEngine(name=f"{target}-{precision}", target=target, backend="onnxruntime",
                        backend_version="1.23.2", precision=precision,
                        path=f"engines/{target}-{precision}/engine.onnx", sha256="1" * 64,
                        cpu_isa="x86_64-avx512_vnni", profile=PROFILE,
                        load_graph_optimization="ORT_DISABLE_ALL")


def configs(engines, **options):
    plan = layout.plan(engines, INPUTS, OUTPUTS, [])
    texts = {m.repository: config.to_text(config.model_config(
        "digits", 7, m, m.shapes, config.ServingOptions(**options))) for m in plan.models}
    # what Triton reads: the text, parsed by its own schema
    return plan, {repo: config.parse(text) for repo, text in texts.items()}, texts


def test_tensorrt_config_matches_the_engine_contract():
    plan, parsed, _ = configs([trt("h100", "9.0"), trt("l4", "8.9")], instance_count=2)
    assert [m.repository for m in plan.models] == ["gpu"]
    cfg = parsed["gpu"]
    assert cfg.name == "digits" and cfg.platform == "tensorrt_plan" and not cfg.backend
    assert dict(cfg.cc_model_filenames) == {"9.0": "model.h100.plan", "8.9": "model.l4.plan"}
    assert not cfg.default_model_filename  # another GPU finds no model.plan: no wrong engine
    assert cfg.max_batch_size == 32  # the profile's max batch
    assert [(i.name, config_name(i.data_type), list(i.dims)) for i in cfg.input] == [
        ("image", "TYPE_FP32", [1, 8, 8])]
    assert [(o.name, config_name(o.data_type), list(o.dims)) for o in cfg.output] == [
        ("logits", "TYPE_FP32", [10])]
    assert cfg.HasField("dynamic_batching")
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 100
    assert [(config_kind(g.kind), g.count) for g in cfg.instance_group] == [("KIND_GPU", 2)]
    assert list(cfg.version_policy.specific.versions) == [7]


def config_name(value: int) -> str:
    from tritonclient.grpc import model_config_pb2 as mc

    return mc.DataType.Name(value)


def config_kind(value: int) -> str:
    from tritonclient.grpc import model_config_pb2 as mc

    return mc.ModelInstanceGroup.Kind.Name(value)


def test_gpu_classes_sharing_a_compute_capability_get_a_repository_each():
    plan, parsed, _ = configs([trt("h100", "9.0"), trt("h200", "9.0"), trt("l4", "8.9")])
    assert [m.repository for m in plan.models] == ["h100", "h200", "l4"]
    assert dict(parsed["h200"].cc_model_filenames) == {"9.0": "model.h200.plan"}
    assert "h100 and h200 share compute capability 9.0" in plan.notes[0]
    assert "one repository per GPU class (h100, h200, l4)" in plan.notes[0]


def test_differing_profiles_are_not_merged_into_one_model():
    small = {"image": {"min": [1, 1, 8, 8], "opt": [8, 1, 8, 8], "max": [8, 1, 8, 8]}}
    plan, parsed, _ = configs([trt("h100", "9.0"), trt("l4", "8.9", profile=small)])
    assert [m.repository for m in plan.models] == ["h100", "l4"]
    assert (parsed["h100"].max_batch_size, parsed["l4"].max_batch_size) == (32, 8)
    assert "shape profiles differ" in plan.notes[0]


def test_onnxruntime_config():
    plan, parsed, _ = configs([ort()])
    cfg = parsed["cpu-avx512"]
    assert cfg.backend == "onnxruntime" and not cfg.platform
    assert cfg.default_model_filename == "model.onnx"
    # the engine file is already optimized for its CPU class: Triton's level 2 = none again
    assert cfg.optimization.graph.level == 2
    assert [(config_kind(g.kind), g.count) for g in cfg.instance_group] == [("KIND_CPU", 1)]
    assert "built for CPU x86_64-avx512_vnni" in plan.notes[0]


def test_dynamic_axes_follow_the_profile():
    inputs = (Tensor("ids", "int64", (-1, -1)), Tensor("mask", "int64", (-1, -1)))
    outputs = (Tensor("emb", "float16", (-1, 384)),)
    profile = {"ids": {"min": [1, 1], "opt": [16, 128], "max": [16, 256]},
               "mask": {"min": [1, 128], "opt": [16, 128], "max": [16, 128]}}
    shapes = config.shapes(trt("l4", "8.9", profile=profile), inputs, outputs)
    assert shapes.max_batch_size == 16
    assert [(t.name, t.data_type, t.dims) for t in shapes.inputs] == [
        ("ids", "TYPE_INT64", (-1,)), ("mask", "TYPE_INT64", (128,))]
    assert shapes.outputs[0].data_type == "TYPE_FP16"
    # a fixed batch axis means Triton does not batch: max_batch_size 0, full dims
    fixed = config.shapes(trt("l4", "8.9", profile={}), (Tensor("x", "float32", (1, 3)),),
                          (Tensor("y", "float32", (1, 2)),))
    assert (fixed.max_batch_size, fixed.inputs[0].dims) == (0, (1, 3))


def test_engine_contract_errors_name_the_fix():
    from trt_ops.errors import SpecError

    late = {"image": {"min": [4, 1, 8, 8], "opt": [32, 1, 8, 8], "max": [32, 1, 8, 8]}}
    with pytest.raises(SpecError, match="starts at batch") as err:
        config.shapes(trt("l4", "8.9", profile=late), INPUTS, OUTPUTS)
    assert "min batch is 1" in err.value.fix
    with pytest.raises(SpecError, match="complex64"):
        config.shapes(trt("l4", "8.9"), (Tensor("image", "complex64", (-1, 1, 8, 8)),), OUTPUTS)


def test_the_schema_check_rejects_what_triton_would():
    from google.protobuf.text_format import ParseError

    _, _, texts = configs([trt("h100", "9.0")])
    config.parse(texts["gpu"])
    with pytest.raises(ParseError, match="max_batch"):
        config.parse(texts["gpu"] + "\nmax_batch: 4\n")  # a misspelt field
    with pytest.raises(ParseError):
        config.parse(texts["gpu"].replace("KIND_GPU", "KIND_TPU"))


def test_selection_serves_passed_engines_and_refuses_failed_classes():
    from trt_ops.errors import SpecError

    engines = [trt("h100", "9.0", "int8"), trt("h100", "9.0"), trt("l4", "8.9")]
    failed = {"h200/fp16": "FAILED | top1_agreement 0.9 < 0.99"}
    chosen, left_out = layout.select(engines, failed, None, None, CATALOG)
    assert [e.name for e in chosen] == ["h100-int8", "l4-fp16"]  # the first (fastest) per class
    assert "h100-fp16: h100 serves its faster int8 engine" in left_out
    assert "h200/fp16: gate failed: FAILED | top1_agreement 0.9 < 0.99" in left_out
    chosen, _ = layout.select(engines, failed, ["h100"], "fp16", CATALOG)
    assert [e.name for e in chosen] == ["h100-fp16"]
    with pytest.raises(SpecError, match="h200: its gate failed") as err:
        layout.select(engines, failed, ["h100", "h200"], None, CATALOG)
    assert "targets=h100,l4" in err.value.fix
    with pytest.raises(SpecError, match="l4: no int8 engine"):
        layout.select(engines, failed, ["l4"], "int8", CATALOG)
    with pytest.raises(SpecError, match="cpu-avx2: the version has no engine"):
        layout.select(engines, failed, ["cpu-avx2"], None, CATALOG)
    # the model and the registry's tags disagree: refuse rather than serve a failed engine
    with pytest.raises(SpecError, match="inconsistent"):
        layout.select(engines, {"l4/fp16": "FAILED"}, None, None, CATALOG)


def test_gate_verdicts_from_the_register_stage_tags():
    from mlflow_plugins.triton.source import gate_verdicts
    from trt_ops.errors import SpecError

    tags = {"trt_ops.all_gates_passed": "false",
            "trt_ops.failed": "h200/fp8: FAILED | a; b < 1; l4/int8: gate failed: x, y"}
    assert gate_verdicts("m", "1", tags) == {"h200/fp8": "FAILED | a; b < 1",
                                             "l4/int8": "gate failed: x, y"}
    assert gate_verdicts("m", "1", {"trt_ops.all_gates_passed": "true",
                                    "trt_ops.failed": "none"}) == {}
    with pytest.raises(SpecError, match="no gate verdicts"):
        gate_verdicts("m", "1", {})

