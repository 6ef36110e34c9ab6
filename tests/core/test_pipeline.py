"""The example pipeline end to end on the onnxruntime backend, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import onnx
import pytest
import yaml

from trt_ops.errors import DataError, PrecisionError, SpecError
from trt_ops.pipeline import run_pipeline
from trt_ops.spec import load_spec


def local(uri: str) -> Path:
    return Path(urlparse(uri).path)


def test_example_builds_validated_int8_and_fp16_engines(digits_run):
    by_precision = {a.precision: a for a in digits_run.attempts}
    assert set(by_precision) == {"int8", "fp16"}
    for a in digits_run.attempts:
        assert a.verdict == "PASSED", a.reason
        assert local(a.build.artifact("engine").uri).is_file()
        assert a.build.info["metadata"]["hardware"]["cpu_isa"]
    int8 = by_precision["int8"].validation.metrics
    assert int8["top1_agreement"] >= 0.98
    assert int8["samples"] == 360  # the digits test split
    assert int8["accuracy_engine"] >= 0.95


def test_int8_engine_is_really_quantized(digits_run):
    cal = digits_run.calibrations["int8/onnxruntime"]
    assert cal.info["ops"].get("QuantizeLinear", 0) > 0
    engine = onnx.load(str(local(next(a for a in digits_run.attempts if a.precision == "int8")
                                 .build.artifact("engine").uri)))
    ops = {n.op_type for n in engine.graph.node}
    assert "QLinearConv" in ops  # onnxruntime fused the Q/DQ pairs into int8 kernels


def test_reports_and_run_record_are_written(digits_run, local_class):
    for uri in digits_run.reports.values():
        page = local(uri).read_text()
        assert "PASSED" in page and "top1_agreement" in page and "data:image/png" in page
    run_dir = local(digits_run.store) / "runs" / digits_run.run_id
    record = yaml.safe_load((run_dir / "run.yaml").read_text())
    assert [s["step"] for s in record["steps"]][:2] == ["check_data", "export"]
    assert all(s["status"] == "OK" and "seconds" in s for s in record["steps"])
    assert json.loads((run_dir / "summary.json").read_text())["attempts"]
    assert f"| {local_class} | int8 | PASSED |" in (run_dir / "summary.md").read_text()


def test_second_run_does_no_work(digits_run, digits_dir):
    again = run_pipeline(load_spec(digits_dir / "pipeline.yaml"))
    assert again.work_done == []
    assert [a.build.artifact("engine") for a in again.attempts] == \
           [a.build.artifact("engine") for a in digits_run.attempts]


def _edit_spec(folder: Path, **changes) -> Path:
    path = folder / "pipeline.yaml"
    doc = yaml.safe_load(path.read_text())
    doc.update(changes)
    path.write_text(yaml.safe_dump(doc))
    return path


def test_unknown_precision_is_refused(digits_copy):
    path = _edit_spec(digits_copy, precisions=["int4"])
    with pytest.raises(SpecError, match=r"precisions\[0\]: Input should be 'fp8', 'int8'.*got 'int4'"):
        load_spec(path)


def test_fp8_on_a_cpu_target_is_refused_before_any_work(digits_copy):
    spec = load_spec(_edit_spec(digits_copy, precisions=["fp8"]))
    with pytest.raises(PrecisionError, match="onnxruntime backend cannot run fp8") as exc:
        run_pipeline(spec)
    assert "choose from" in exc.value.fix
    assert not (digits_copy / "store").exists()


def test_nan_calibration_data_stops_before_export(digits_copy):
    with np.load(digits_copy / "calibration.npz") as z:
        x = z["image"].copy()
    x[5] = np.nan
    np.savez(digits_copy / "calibration.npz", image=x)
    with pytest.raises(DataError) as exc:
        run_pipeline(load_spec(digits_copy / "pipeline.yaml"))
    assert "[5]" in str(exc.value)  # the bad sample is named
    assert "NaN" in str(exc.value) or "finite" in str(exc.value)
    assert not list((digits_copy / "store").glob("export/*"))


def test_empty_calibration_set(digits_copy):
    np.savez(digits_copy / "calibration.npz", image=np.zeros((0, 1, 8, 8), np.float32))
    with pytest.raises(DataError, match="empty|at least") as exc:
        run_pipeline(load_spec(digits_copy / "pipeline.yaml"))
    assert "calibration" in str(exc.value)
    assert not list((digits_copy / "store").glob("export/*"))
