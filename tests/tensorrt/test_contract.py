"""The engine contract: every backend's build produces it, and every reader names what is missing.

The registry (register stage, lineage tags and description, the ``trt_engine`` flavor) and the
validate/benchmark stages read an engine's metadata only through
:func:`trt_ops.engines.contract.engine_from_metadata`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.tensorrt.conftest import Calibrated, attempt, build_int8
from tests.tensorrt.standin import use_standin, versions
from trt_ops.engines import _BACKENDS
from trt_ops.engines.contract import (
    EngineContract,
    OnnxRuntimeEngine,
    TensorRTEngine,
    engine_from_metadata,
)
from trt_ops.errors import EngineContractError


def _build_onnxruntime(d: Calibrated, out: Path) -> Any:
    from trt_ops.engines.base import BuildRequest
    from trt_ops.engines.onnxruntime import OnnxRuntimeBackend
    from trt_ops.targets.catalog import get_target

    return OnnxRuntimeBackend().build(BuildRequest(
        onnx_path=d.store.fetch(d.export.artifact("onnx")), out_dir=out, precision="fp32",
        target=get_target("cpu-avx512"), profile=d.spec.profile()))


def _build_tensorrt(d: Calibrated, out: Path) -> Any:
    with use_standin(versions()[0]):
        return build_int8(d, out)


BUILDS = {"onnxruntime": _build_onnxruntime, "tensorrt": _build_tensorrt}


def test_every_backend_is_checked_here() -> None:
    assert set(BUILDS) == set(_BACKENDS)


@pytest.fixture(scope="module")
def results(trt_digits: Calibrated, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {name: build(trt_digits, tmp_path_factory.mktemp(name))
            for name, build in BUILDS.items()}


def _manifest(result: Any) -> Any:
    from trt_ops.store.manifest import Artifact, Manifest

    engine = Artifact(uri=result.engine_path.as_uri(), sha256=result.engine.sha256,
                      size=result.engine.size)
    return Manifest(stage="build", key="k", artifacts={"engine": engine},
                    spec={"precision": result.engine.precision},
                    info={"metadata": result.engine.model_dump(mode="json")})


@pytest.mark.parametrize("backend", sorted(BUILDS))
def test_metadata_has_every_field_the_registry_needs(backend: str, results: dict[str, Any],
                                                     trt_digits: Calibrated) -> None:
    import mlflow_plugins.trt_engine as flavor
    from trt_ops.registry.lineage import version_description, version_tags

    result = results[backend]
    assert isinstance(result.engine, {"tensorrt": TensorRTEngine,
                                      "onnxruntime": OnnxRuntimeEngine}[backend])
    metadata = json.loads(json.dumps(result.engine.model_dump(mode="json")))  # as stored
    assert engine_from_metadata(metadata) == result.engine
    entry = flavor._engine_entry({"path": str(result.engine_path), "metadata": metadata}, 0)
    for key in ("name", "backend", "backend_version", "precision", "target", "sha256", "profile"):
        assert entry[key], key
    assert entry["gpu_product" if backend == "tensorrt" else "cpu_isa"]
    a = attempt(result.engine.target, result.engine.precision, _manifest(result))
    tags = version_tags("digest", trt_digits.export, [a], [a], [], {}, "run")
    assert tags[f"trt_ops.{backend}_version"] == result.engine.backend_version
    row = next(line for line in version_description("m", trt_digits.export, [a], {}, "run")
               .splitlines() if line.startswith(f"| {result.engine.target}"))
    assert result.engine.hardware_name() in row and result.engine.backend_version in row


REQUIRED = sorted(n for n, f in TensorRTEngine.model_fields.items() if f.is_required())


@pytest.mark.parametrize("field", REQUIRED)
def test_a_missing_field_is_named_by_every_reader(field: str, results: dict[str, Any],
                                                  trt_digits: Calibrated) -> None:
    import mlflow_plugins.trt_engine as flavor
    from trt_ops.registry.lineage import version_tags

    result = results["tensorrt"]
    broken = result.engine.model_dump(mode="json")
    del broken[field]
    manifest = _manifest(result)
    manifest.info["metadata"] = broken
    a = attempt("h100", "int8", manifest)
    readers = {
        "flavor": lambda: flavor._engine_entry({"path": str(result.engine_path),
                                                "metadata": broken}, 0),
        "lineage": lambda: version_tags("digest", trt_digits.export, [a], [a], [], {}, "run"),
        "validate": lambda: _validate(manifest, trt_digits),
    }
    for reader, read in readers.items():
        with pytest.raises(EngineContractError) as err:
            read()
        assert f"{field}: Field required" in err.value.problem, reader


def _validate(manifest: Any, d: Calibrated) -> None:
    from trt_ops.stages.validate import validate_engine

    validate_engine(manifest, d.export, d.spec.data.validation, d.inputs, d.store,
                    task="classification", thresholds={})


def test_registering_refuses_an_engine_without_the_contract_before_creating_anything(
        results: dict[str, Any], trt_digits: Calibrated, mlflow_uri: str) -> None:
    import mlflow

    from trt_ops.stages.register import register_engines

    manifest = _manifest(results["tensorrt"])
    del manifest.info["metadata"]["backend_version"]  # what the TensorRT builder used to omit
    with pytest.raises(EngineContractError, match="backend_version: Field required"):
        register_engines("no-contract", trt_digits.export, [attempt("h100", "int8", manifest)],
                         trt_digits.store, tracking_uri=mlflow_uri)
    assert not mlflow.MlflowClient(mlflow_uri, registry_uri=mlflow_uri).search_registered_models("name = 'no-contract'")


@pytest.mark.parametrize("change, words", [
    ({"profile": {"img": {"min": [1, 1, 8, 8], "opt": [1, 1, 8, 8], "max": [1, 1, 8, 8]}}},
     "not inputs"),
    ({"profile": {"image": {"min": [1, 3, 8, 8], "opt": [1, 3, 8, 8], "max": [1, 3, 8, 8]}}},
     "does not fit its shape"),
    ({"hardware": {"kind": "cpu", "cpu_isa": "x86_64-avx2"}}, "hardware"),
    ({"sha256": "abc"}, "sha256"),
    ({"precision": "int4"}, "precision"),
])
def test_inconsistent_records_are_refused(results: dict[str, Any], change: dict[str, Any],
                                          words: str) -> None:
    metadata = {**results["tensorrt"].engine.model_dump(mode="json"), **change}
    with pytest.raises(EngineContractError, match=words):
        engine_from_metadata(metadata)


def test_hardware_is_a_discriminated_union(results: dict[str, Any]) -> None:
    schema = EngineContract.model_json_schema()
    assert schema["properties"]["hardware"]["discriminator"]["propertyName"] == "kind"
    assert results["tensorrt"].engine.hardware.kind == "gpu"
    assert results["onnxruntime"].engine.hardware.kind == "cpu"
