"""Calibrate stage: the exported ONNX made ready for one precision and one engine backend.

Where Q/DQ nodes go depends on the runtime that fuses them, so the calibrator belongs to the
backend, and the recipe (:mod:`trt_ops.calibration.recipes`) to the graph: a transformer is
quantized differently from a CNN. The spec's calibration method is mapped to the backend's name
for it (:mod:`trt_ops.calibration.methods`). This runs once per model, precision and backend
(on CPU), not once per GPU. Every precision but fp32 gets the calibration data: int8/fp8
calibrators measure ranges on it (except dynamic int8, which takes them at run time), and
AutoCast (fp16/bf16) judges on it which nodes must stay fp32. A calibrated model over 2 GB keeps
its weights in one external data file, stored beside it (``onnx_data``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trt_ops.calibration import isolated, recipes
from trt_ops.calibration.methods import backend_method
from trt_ops.data.datasets import load_dataset, write_npz
from trt_ops.engines import get_backend
from trt_ops.engines.base import QUANTIZED, check_precision_name
from trt_ops.models.onnx import check_onnx, local_onnx
from trt_ops.spec import InputSpec
from trt_ops.store import ArtifactStore
from trt_ops.store.cache import run_cached
from trt_ops.store.digest import cache_key
from trt_ops.store.manifest import Manifest

STAGE = "calibrate"
MIXED_CALIBRATOR = "trt_ops.calibration.onnxruntime:ort_static"  # the one that can search
PROTOBUF_LIMIT = 2 * 1024**3


def calibrate(export: Manifest, calibration_data: str, inputs: Sequence[InputSpec],
              precision: str, backend: str, store: ArtifactStore, *,
              samples: int = 512, method: str = "entropy", recipe: str = "auto",
              high_precision_dtype: str = "fp32", dims: Mapping[str, Mapping[str, int]] | None = None,
              external_data_threshold: int = PROTOBUF_LIMIT, mixed: Mapping[str, Any] | None = None,
              thresholds: Mapping[str, float] | None = None,
              task: str = "classification") -> Manifest:
    """``high_precision_dtype``: what int8/fp8 models compute in where there are no Q/DQ nodes;
    ``dims``: the ranges of the model's dynamic axes, which the data's lengths must fit;
    ``mixed``: the spec's calibration.mixed_precision, searched against ``thresholds`` (the
    precision's gate) for ``task`` where the calibrator supports it (onnxruntime static int8)."""
    check_precision_name(precision)
    engine_backend = get_backend(backend)
    calibrator = engine_backend.calibrator(precision)
    onnx_artifact = export.artifact("onnx")
    if precision == "fp32":  # nothing to place: the exported graph is the fp32 model
        kept = {k: v for k, v in export.artifacts.items() if k in ("onnx", "onnx_data")}
        return Manifest(stage=STAGE, key=onnx_artifact.sha256[:24], artifacts=kept,
                        spec={"precision": precision, "backend": backend},
                        info={"calibrator": "passthrough",
                              "external_data": export.info.get("external_data")},
                        inputs={"onnx": onnx_artifact.sha256}, cache_hit=True)

    quantized = precision in QUANTIZED
    chosen = recipes.choose(_graph(export, store), backend, precision, recipe) if quantized else None
    dynamic = chosen is not None and chosen.name == "dynamic"  # activation ranges at run time
    if dynamic:
        calibrator = "trt_ops.calibration.onnxruntime:ort_dynamic"
    mapped = backend_method(method, backend, precision) if quantized and not dynamic else None
    dataset = None if dynamic else load_dataset(calibration_data, inputs, "calibration", dims)
    used = min(samples, len(dataset)) if dataset else 0
    searchable = calibrator == MIXED_CALIBRATOR and chosen is not None and chosen.name == "static"
    mixed_spec = dict(mixed) if searchable and mixed and mixed.get("mode", "off") != "off" else None
    spec = {"precision": precision, "backend": backend, "calibrator": calibrator,
            "method": method if mapped else None, "backend_method": mapped, "samples": used,
            "recipe": chosen.to_dict() if chosen else None,
            "high_precision_dtype": high_precision_dtype if quantized else None,
            # the search's settings and the gate it searches against are part of the key
            "mixed_precision": mixed_spec,
            "thresholds": dict(sorted((thresholds or {}).items())) if mixed_spec else None,
            "task": task if mixed_spec else None}
    key = cache_key(STAGE, onnx=onnx_artifact.sha256,
                    data=dataset.sha256 if dataset else None, **spec)

    def compute() -> Manifest:
        with tempfile.TemporaryDirectory(prefix="trt-ops-calib-") as tmp:
            work = Path(tmp) / "out"
            work.mkdir()
            out = work / f"model.{precision}.onnx"
            npz = str(write_npz(Path(tmp) / "calib.npz", dataset, used)) if dataset else None
            info = isolated.call(calibrator, onnx_in=str(_named_onnx(export, store, Path(tmp))),
                                 onnx_out=str(out), data_npz=npz, precision=precision,
                                 method=mapped or method, recipe=spec["recipe"],
                                 high_precision_dtype=high_precision_dtype,
                                 external_data_threshold=external_data_threshold,
                                 axes={i.name: {str(a): d for a, d in i.dynamic_axes.items()
                                                if a > 0} for i in inputs},
                                 **({"mixed": mixed_spec, "thresholds": spec["thresholds"],
                                     "task": task} if mixed_spec else {}))
            layers = info.pop("layers", None)
            graph = check_onnx(out)
            ops: dict[str, int] = {}
            for node in graph.graph.node:
                ops[node.op_type] = ops.get(node.op_type, 0) + 1
            artifacts = {"onnx": store.put_artifact(f"{STAGE}/{key}/{out.name}", out)}
            # the one external data file a model over 2 GB is written with
            data_file = next((f for f in work.iterdir() if f != out), None)
            if data_file:
                artifacts["onnx_data"] = store.put_artifact(f"{STAGE}/{key}/{data_file.name}",
                                                        data_file)
            if layers:  # the per-layer report: sensitivity, scale, clipped fraction
                from trt_ops.reports.pages import calibration_report

                title = f"{precision} calibration for {backend}"
                for name, path in calibration_report(Path(tmp), layers, info, title).items():
                    artifacts[name] = store.put_file(f"{STAGE}/{key}/{path.name}", path)
        return Manifest(
            stage=STAGE, key=key, artifacts=artifacts, spec=spec,
            info={**info, "ops": ops, "output_names": export.info.get("output_names", []),
                  "external_data": data_file.name if data_file else None,
                  "recipe": spec["recipe"]},
            inputs={"onnx": onnx_artifact.sha256,
                    **({"calibration_data": dataset.sha256} if dataset else {})},
        )

    return run_cached(store, STAGE, key, compute)


def _named_onnx(export: Manifest, store: ArtifactStore, tmp: Path) -> Path:
    """The exported ONNX under a name ending in .onnx (Model Optimizer refuses others), with
    its external data beside it."""
    path = local_onnx(export, store)
    if path.suffix == ".onnx":
        return path
    named = tmp / "in" / "model.onnx"
    named.parent.mkdir()
    named.symlink_to(path)
    return named


def _graph(export: Manifest, store: ArtifactStore) -> object:
    """The exported graph without its weights' data: what the recipe is chosen from."""
    import onnx

    return onnx.load(str(local_onnx(export, store)), load_external_data=False)
