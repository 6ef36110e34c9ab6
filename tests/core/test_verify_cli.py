"""`trt-ops verify` as a user runs it, and a model with external data through every stage."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from trt_ops.cli import main
from trt_ops.store import open_store


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_verify_a_healthy_store_a_spec_and_one_run(digits_run, digits_dir, capsys):
    store_dir = Path(digits_dir) / "store"
    code, out = run_cli(capsys, "verify", str(store_dir))
    assert code == 0, out
    assert "OK" in out and "FAILED" not in out
    assert "size and sha256" in out and "manifests checked" in out
    engine_key = open_store(store_dir).uri_key(digits_run.attempts[0].build.artifact("engine").uri)
    assert engine_key in out
    # the spec names the same store; one run's summary names its objects
    assert run_cli(capsys, "verify", str(Path(digits_dir) / "pipeline.yaml"))[0] == 0
    code, out = run_cli(capsys, "verify", str(store_dir), "--run", digits_run.run_id)
    assert code == 0 and engine_key in out
    code, out = run_cli(capsys, "verify", str(store_dir), "--run", "no-such-run")
    assert code == 2 and "no-such-run has no summary" in out and "fix:" in out


def test_verify_one_manifest_needs_its_store(digits_copy, tmp_path, capsys):
    spec = str(digits_copy / "pipeline.yaml")
    assert main(["export", spec, "-o", str(tmp_path / "export.json")]) == 0
    capsys.readouterr()
    code, out = run_cli(capsys, "verify", str(tmp_path / "export.json"))
    assert code == 2 and "which store" in out and "--store" in out and "Traceback" not in out
    code, out = run_cli(capsys, "verify", str(tmp_path / "export.json"), "--store", spec)
    assert code == 0 and "model.onnx" in out
    onnx = json.loads((tmp_path / "export.json").read_text())["artifacts"]["onnx"]["uri"]
    Path(onnx.removeprefix("file://")).unlink()
    code, out = run_cli(capsys, "verify", str(tmp_path / "export.json"), "--store", spec)
    assert code == 1 and "missing" in out and "model.onnx" in out


def test_verify_an_s3_store(s3_bucket, s3_endpoint, capsys):
    store = open_store(s3_bucket)
    art = store.put_artifact("build/k/engine.onnx", _file(b"engine" * 100))
    store.put_json("build/k/manifest.json", {"stage": "build", "key": "k",
                                              "artifacts": {"engine": art.to_dict()}})
    assert run_cli(capsys, "verify", s3_bucket)[0] == 0
    key = art.uri.removeprefix(f"s3://{store.bucket}/")
    boto3.client("s3", endpoint_url=s3_endpoint).put_object(
        Bucket=store.bucket, Key=key, Body=b"Engine" + b"engine" * 99)  # same size, one byte
    code, out = run_cli(capsys, "verify", "--quick", s3_bucket)
    assert code == 0  # sizes only: a same-size change needs the hash
    code, out = run_cli(capsys, "verify", s3_bucket)
    assert code == 1 and "sha256" in out and "engine.onnx" in out


def test_verify_an_empty_store_says_so(tmp_path, capsys):
    code, out = run_cli(capsys, "verify", str(tmp_path))
    assert code == 0 and "nothing to verify" in out


def _file(data: bytes) -> Path:
    import tempfile

    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data)
    return Path(f.name)


def test_external_data_kept_through_every_stage(digits_copy, local_class, tmp_path, capsys):
    """The large-model path (weights in a file beside the graph) forced on the small example:
    export, fp16 calibrate, build, validate, register, and `verify` of the store."""
    import onnx

    from trt_ops.models.onnx import local_engine
    from trt_ops.pipeline import steps
    from trt_ops.spec import load_spec
    from trt_ops.stages.calibrate import calibrate
    from trt_ops.stages.export import export_onnx
    from trt_ops.stages.register import register_engines

    spec = load_spec(digits_copy / "pipeline.yaml")
    store = open_store(spec.store)
    export = export_onnx(spec.model.source(), spec.model.inputs, store,
                         output_names=spec.model.outputs, dims=spec.model.dim_ranges(),
                         external_data_threshold=1)
    assert "onnx_data" in export.artifacts
    c = spec.calibration
    cal = calibrate(export, spec.data.calibration, spec.model.inputs, "fp16", "onnxruntime",
                    store, samples=c.samples, dims=spec.model.dim_ranges(),
                    external_data_threshold=1)
    assert "onnx_data" in cal.artifacts and cal.info["external_data"]
    build = steps.build_step(spec, store, cal, local_class)
    assert "engine_data" in build.artifacts  # the engine keeps its weights beside it too
    engine = local_engine(build, store)
    graph = onnx.load(str(engine), load_external_data=False)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.graph.initializer)
    validation = steps.validate_step(spec, store, build, export)
    assert validation.status.value == "OK", validation.metrics
    attempt = {"target": local_class, "precision": "fp16", "verdict": "PASSED",
               "build": build.to_dict(), "validation": validation.to_dict()}
    r = spec.registry
    registered = register_engines(r.model_name, export, [attempt], store, calibrations=[cal],
                                  tracking_uri=r.tracking_uri, registry_uri=r.tracking_uri,
                                  pipeline_run_id="external-data-test")
    model = _loaded(registered.info["model_uri"], r.tracking_uri, tmp_path)
    files = {p.name for p in model.rglob("*") if p.is_file()}
    assert {"engine.onnx", "engine.onnx.data", "model.onnx", export.info["external_data"]} <= files
    code, out = run_cli(capsys, "verify", spec.store)
    assert code == 0 and "engine.onnx.data" in out


def _loaded(model_uri: str, tracking_uri: str, dest: Path) -> Path:
    import mlflow

    from trt_ops.registry.client import mlflow_scope

    with mlflow_scope(tracking_uri, tracking_uri):
        return Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(dest / "dl")))


@pytest.mark.parametrize("flag", ["--verify"])
def test_run_help_documents_verify(flag, capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert flag in capsys.readouterr().out
