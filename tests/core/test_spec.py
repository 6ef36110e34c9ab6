"""The pipeline spec: one pydantic schema, errors that name the field and the fix, and the JSON
Schema and reference page generated from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trt_ops.errors import SpecError
from trt_ops.spec import DEFAULT_THRESHOLDS, load_spec, parse_spec

MINIMAL = {"name": "m", "model": {"factory": "pkg.mod:build",
                                  "inputs": [{"name": "image", "shape": [1, 3, 32, 32]}]},
           "data": {"calibration": "c.npz", "validation": "v.npz"}}


def _with(**changes) -> dict:
    doc = yaml.safe_load(yaml.safe_dump(MINIMAL))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        holder = doc
        for p in parents:
            holder = holder.setdefault(p, {})
        holder[last] = value
    return doc


def test_minimal_spec_gets_the_documented_defaults(tmp_path: Path) -> None:
    spec = parse_spec(MINIMAL, tmp_path)
    assert spec.precisions == ["int8", "fp16"] and spec.calibration.method == "entropy"
    assert spec.model.inputs[0].shape == ["batch", 3, 32, 32]  # axis 0 is the batch
    assert spec.profile() == {"image": {"min": [1, 3, 32, 32], "opt": [32, 3, 32, 32],
                                        "max": [32, 3, 32, 32]}}
    assert spec.data.calibration == str(tmp_path / "c.npz")  # relative to the spec's folder
    assert spec.thresholds_for("int8") == DEFAULT_THRESHOLDS["int8"]


def test_named_dynamic_axes_make_the_profile(tmp_path: Path) -> None:
    doc = _with(model__inputs=[{"name": "ids", "shape": ["batch", "sequence"], "dtype": "int64"},
                               {"name": "mask", "shape": ["batch", "sequence"], "dtype": "int64"}],
                model__dims={"batch": {"max": 16}, "sequence": {"min": 8, "opt": 128, "max": 256}},
                benchmark__batch_sizes=[1, 16])
    profile = parse_spec(doc, tmp_path).profile()
    assert profile["ids"] == profile["mask"] == {"min": [1, 8], "opt": [16, 128],
                                                 "max": [16, 256]}


def test_thresholds_override_the_defaults_per_precision(tmp_path: Path) -> None:
    spec = parse_spec(_with(thresholds={"int8": {"top1_agreement": 0.9}}), tmp_path)
    assert spec.thresholds_for("int8") == {**DEFAULT_THRESHOLDS["int8"], "top1_agreement": 0.9}
    assert spec.thresholds_for("fp16") == DEFAULT_THRESHOLDS["fp16"]


@pytest.mark.parametrize("changes, where, words", [
    ({"model__inputs": [{"name": "x", "shape": [1, 4], "dtype": "float64"}]},
     "model.inputs[0].dtype", "'float32', 'float16'"),
    ({"precisions": ["int4"]}, "precisions[0]", "got 'int4'"),
    ({"model__weights": "w.pt"}, "model.weights", "unknown key 'weights' (a typo?)"),
    ({"model__program": "m.pt2"}, "model", "exactly one source model"),
    ({"model__dims": {"batch": {"min": 8, "max": 4}}}, "model.dims.batch", "min <= opt <= max"),
    ({"model__inputs": [{"name": "x", "shape": ["batch", "seq"]}]}, "model",
     "dynamic axes ['seq'] are not declared in model.dims"),
    ({"benchmark__batch_sizes": [64]}, "the spec", "outside the batch axis 1..32"),
    ({"calibration__method": "max"}, "calibration.method", "'entropy', 'minmax' or 'percentile'"),
    ({"builder_options__tensorrt": {"optimization_level": 9}}, "builder_options",
     "less than or equal to 5 (got 9)"),
    ({"data__ranges": {"image": [1.0, 0.0]}}, "data", "low <= high"),
    ({"model__dims": {"sequence": {"min": 8, "opt": 300, "max": 256}}}, "model.dims.sequence",
     "min <= opt <= max, got min 8, opt 300, max 256"),
    ({"model__onnx": "model.onnx"}, "model", "exactly one source model, got ['factory', 'onnx']"),
    ({"benchmark__dims": {"sequence": [32]}}, "the spec",
     "benchmark.dims names 'sequence', which is not a dynamic axis"),
    ({"calibration__recipe": "smooth"}, "calibration.recipe", "'auto', 'static' or 'dynamic'"),
])
def test_a_bad_field_is_named_with_the_problem_and_the_fix(tmp_path, changes, where, words) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(_with(**changes), tmp_path)
    text = str(err.value)
    assert f"  - {where}" in text and words in text, text
    assert "fix: correct the fields named above" in text


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    doc = _with(precisions=["int4"], fallback="sometimes")
    del doc["data"]
    with pytest.raises(SpecError, match="has 3 problems") as err:
        parse_spec(doc, tmp_path)
    assert "data: is required" in str(err.value)


def test_a_spec_without_a_folder_refuses_relative_paths() -> None:
    with pytest.raises(SpecError, match="data.calibration 'c.npz' is a relative path") as err:
        parse_spec(MINIMAL, None)
    assert "absolute path, or a file:// or s3:// URI" in err.value.fix


def test_spec_files_that_are_not_specs(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="must be a mapping of fields, got list"):
        load_spec(tmp_path / "list.yaml")


def test_published_schema_and_reference_page_are_current() -> None:
    from trt_ops.spec.reference import DOCS_FILE, SCHEMA_FILE, json_schema_text, markdown

    assert SCHEMA_FILE.read_text() == json_schema_text(), \
        "run `python -m trt_ops.spec.reference` to regenerate"
    assert DOCS_FILE.read_text() == markdown(), "run `python -m trt_ops.spec.reference`"


def test_the_example_spec_validates_against_the_published_json_schema(digits_dir: Path) -> None:
    import json

    import jsonschema

    from trt_ops.spec.reference import SCHEMA_FILE

    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.validate(yaml.safe_load((digits_dir / "pipeline.yaml").read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**MINIMAL, "precisions": ["int4"]}, schema)


def test_an_onnx_source_and_benchmark_sizes_of_the_sequence_axis(tmp_path: Path) -> None:
    doc = _with(model__inputs=[{"name": "ids", "shape": ["batch", "sequence"], "dtype": "int64"}],
                model__dims={"sequence": {"min": 8, "opt": 128, "max": 256}},
                benchmark__dims={"sequence": [32, 128]})
    doc["model"] = {**doc["model"], "factory": None, "onnx": "encoder.onnx"}
    spec = parse_spec(doc, tmp_path)
    assert spec.model.source() == {"onnx": str(tmp_path / "encoder.onnx")}
    assert spec.model.dim_ranges()["sequence"] == {"min": 8, "opt": 128, "max": 256}
    assert spec.calibration.recipe == "auto"
    doc["benchmark"]["dims"] = {"sequence": [512]}
    with pytest.raises(SpecError, match=r"benchmark.dims.sequence sizes \[512\] are outside"):
        parse_spec(doc, tmp_path)


def test_a_spec_is_the_same_after_a_json_round_trip(digits_dir):
    """The DAG hands the plan task's spec to every task as JSON: the stages' cache keys must not
    tell the two apart (an int default of a float field once did)."""
    import json

    from trt_ops.spec import load_spec, parse_spec

    spec = load_spec(digits_dir / "pipeline.yaml")
    again = parse_spec(json.loads(json.dumps(spec.model_dump(mode="json"))), None)
    assert again == spec
    assert json.dumps(again.model_dump(mode="json"), sort_keys=True) == \
        json.dumps(spec.model_dump(mode="json"), sort_keys=True)
