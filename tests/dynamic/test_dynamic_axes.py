"""Named dynamic axes through every stage, on a tiny transformer: export (one symbolic axis
shared by both inputs, names that collide with the graph's own), data checks on samples of
different lengths, int8 with the recipe chosen for the graph, validation in equal-length
batches, a benchmark row per shape."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.dynamic.conftest import DIMS, INPUTS, encoder_spec, token_data
from trt_ops.errors import DataError, ExportError
from trt_ops.spec import InputSpec
from trt_ops.stages.export import export_onnx
from trt_ops.store import open_store

SPECS = [InputSpec(**i) for i in INPUTS]


def test_export_shares_the_sequence_axis_and_names_outputs_like_internal_values(encoder_run):
    export = encoder_run.export
    assert export.info["output_names"] == ["embedding", "scores"]
    assert set(export.metrics["parity"]) == {"embedding", "scores"}  # parity per output
    path = open_store(encoder_run.store).fetch(export.artifact("onnx"))
    graph = onnx.load(str(path)).graph
    axes = [[d.dim_param for d in i.type.tensor_type.shape.dim] for i in graph.input]
    assert axes[0] == axes[1] and all(axes[0])  # batch and sequence symbolic, shared
    names = [o for n in graph.node for o in n.output]
    assert len(names) == len(set(names)) and names.count("embedding") == 1  # SSA form
    session = ort.InferenceSession(str(path))
    for length in (3, 16):
        feeds = {k: v[:, :length] for k, v in token_data(5, seed=3, low=16).items()
                 if not k.startswith("lengths")}
        embedding, scores = session.run(["embedding", "scores"], feeds)
        assert embedding.shape == (5, 32) and scores.shape == (5, 3)
        np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1, rtol=1e-5)


def test_every_stage_runs_the_dynamic_axes(encoder_run):
    [attempt] = encoder_run.attempts
    assert attempt.verdict == "PASSED", attempt.reason
    assert attempt.build.spec["profile"]["input_ids"] == {"min": [1, 3], "opt": [8, 12],
                                                          "max": [8, 16]}
    assert encoder_run.data_check.metrics["validation_samples"] == 40
    validation = attempt.validation
    assert validation.metrics["samples"] == 40 and validation.metrics["min_cosine"] >= 0.95
    lo, hi = validation.metrics["lengths"]["sequence"]
    assert 3 <= lo < hi <= 16  # samples of different lengths, each run at its own
    rows = attempt.benchmark.info["rows"]
    assert [(r["sizes"]["sequence"], r["batch_size"]) for r in rows] == [
        (4, 1), (4, 8), (16, 1), (16, 8)]
    assert all(r["engine"]["throughput"] > 0 for r in rows)


def test_a_transformer_gets_the_dynamic_recipe_and_it_is_recorded(encoder_run):
    calibration = encoder_run.calibrations["int8/onnxruntime"]
    recipe = calibration.spec["recipe"]
    assert recipe["name"] == "dynamic" and "attention mask" in recipe["reason"]
    assert len(recipe["settings"]["keep_float"]) == 1  # the GELU-fed down projection
    ops = calibration.info["ops"]
    assert ops.get("DynamicQuantizeLinear") and ops["Softmax"] == 1
    assert "QuantizeLinear" not in ops  # no calibrated (static) ranges anywhere


@pytest.mark.parametrize("method", ["entropy", "minmax"])
def test_static_int8_on_a_transformer_survives_the_mask(encoder_dir, tmp_path, method):
    """The histogram collector crashes on the float minimum the mask adds; the transformer's
    static recipe calibrates only MatMul inputs, so it never sees it."""
    from trt_ops.pipeline import steps
    from trt_ops.spec import load_spec

    spec = load_spec(encoder_spec(encoder_dir, calibration__recipe="static",
                                  calibration__method=method, store=str(tmp_path / "store")))
    store = open_store(spec.store)
    export = steps.export_step(spec, store)
    cal = steps.calibrate_step(spec, store, export, "int8", "onnxruntime")
    assert cal.spec["recipe"]["name"] == "static-transformer"
    assert cal.info["ops"]["QuantizeLinear"] and cal.info["ops"]["Softmax"] == 1
    engine = steps.build_step(spec, store, cal, steps.default_targets()[0])
    result = steps.validate_step(spec, store, engine, export)
    assert result.metrics["min_cosine"] > 0.9, result.metrics


def test_lengths_outside_the_declared_range_are_refused(encoder_dir, tmp_path):
    from trt_ops.pipeline import steps
    from trt_ops.spec import load_spec

    np.savez(tmp_path / "calibration.npz", **token_data(30, seed=1))
    np.savez(tmp_path / "validation.npz", **token_data(30, seed=2, low=10, high=24))
    spec = load_spec(encoder_spec(tmp_path))
    with pytest.raises(DataError, match=r"sequence__length.*samples \[") as err:
        steps.check_data_step(spec, open_store(spec.store))
    assert "widen model.dims.sequence" in str(err.value)
    with pytest.raises(DataError, match="lengths outside 3..16") as err:
        from trt_ops.data.datasets import load_dataset

        load_dataset(tmp_path / "validation.npz", SPECS, "validation", DIMS)
    assert not (tmp_path / "store" / "export").exists()  # nothing exported


def test_lengths_that_do_not_fit_the_arrays(tmp_path):
    from trt_ops.data.datasets import load_dataset

    data = token_data(10, seed=1)
    data["lengths.sequence"][0] = 99
    np.savez(tmp_path / "a.npz", **data)
    with pytest.raises(DataError, match="outside 1..16, the padded width"):
        load_dataset(tmp_path / "a.npz", SPECS, "calibration")
    data = token_data(10, seed=1)
    np.savez(tmp_path / "b.npz", **{**data, "lengths.time": data["lengths.sequence"]})
    with pytest.raises(DataError, match=r"lengths for \['time'\]"):
        load_dataset(tmp_path / "b.npz", SPECS, "calibration")
    np.savez(tmp_path / "c.npz", input_ids=data["input_ids"],
             attention_mask=data["attention_mask"][:, :5])
    with pytest.raises(DataError, match="axis 'sequence' is 5 wide"):
        load_dataset(tmp_path / "c.npz", SPECS, "calibration")


def test_equal_length_batches_cut_each_sample_to_its_length(tmp_path):
    from trt_ops.data.datasets import load_dataset

    np.savez(tmp_path / "v.npz", **token_data(25, seed=4))
    data = load_dataset(tmp_path / "v.npz", SPECS, "validation", DIMS)
    seen = []
    for index, feeds in data.batches(4):
        assert len(index) <= 4 and feeds["input_ids"].shape == feeds["attention_mask"].shape
        assert (feeds["input_ids"].shape[1] == data.lengths["sequence"][index]).all()
        assert feeds["attention_mask"].all()  # no padding is fed
        seen += index.tolist()
    assert sorted(seen) == list(range(25))


def test_more_output_names_than_outputs(tmp_path):
    with pytest.raises(ExportError, match="names 3 outputs") as err:
        export_onnx({"factory": "tests.core.models:tiny_encoder"}, SPECS, open_store(tmp_path),
                    output_names=["embedding", "scores", "extra"], dims=DIMS)
    assert "at most 2 names" in err.value.fix
    assert not list(tmp_path.rglob("*.onnx"))


def test_parquet_rows_of_different_lengths(tmp_path):
    from trt_ops.data.datasets import load_dataset
    from trt_ops.data.parquet import write_parquet

    data = token_data(12, seed=5)
    path = write_parquet(tmp_path / "v.parquet", data,
                         axes={"input_ids": {1: "sequence"}, "attention_mask": {1: "sequence"}})
    import pyarrow.parquet as pq

    sizes = [len(r) for r in pq.read_table(path).column("input_ids").to_pylist()]
    assert sizes == data["lengths.sequence"].tolist()  # each row at its own length
    loaded = load_dataset(path, SPECS, "validation", DIMS)
    np.testing.assert_array_equal(loaded.lengths["sequence"], data["lengths.sequence"])
    np.testing.assert_array_equal(loaded.arrays["input_ids"], data["input_ids"])


def test_input_names_that_collide_with_values_inside_the_graph(tmp_path):
    """'linear' and 'embedding' name values the exporter makes; as inputs they still work."""
    inputs = [InputSpec(name="linear", shape=["batch", "sequence"], dtype="int64"),
              InputSpec(name="embedding", shape=["batch", "sequence"], dtype="int64")]
    store = open_store(tmp_path)
    m = export_onnx({"factory": "tests.core.models:tiny_encoder"}, inputs, store,
                    output_names=["scores_of_embedding"], dims=DIMS,
                    value_ranges={"linear": (0, 63), "embedding": (0, 1)})
    graph = onnx.load(str(store.fetch(m.artifact("onnx")))).graph
    assert [i.name for i in graph.input] == ["linear", "embedding"]
    names = [o for n in graph.node for o in n.output]
    assert len(names) == len(set(names)) and not {"linear", "embedding"} & set(names)
    assert m.info["output_names"][0] == "scores_of_embedding"
