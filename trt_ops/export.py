"""Export stage: a PyTorch model to a checked ONNX graph with a dynamic batch axis.

The dynamo exporter (``torch.export``) is tried first; the TorchScript exporter is the
fallback, with a warning saying why. The result is checked (``onnx.checker``, shape
inference) and compared with PyTorch on sample inputs; it fails above the tolerance.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trt_ops.cache import run_cached
from trt_ops.digest import cache_key
from trt_ops.errors import ExportError, OnnxModelError
from trt_ops.manifest import Manifest
from trt_ops.sources import load_model, source_digest
from trt_ops.spec import InputSpec
from trt_ops.store import ArtifactStore, blob_cache_dir

log = logging.getLogger("trt_ops")

STAGE = "export"
PROTOBUF_LIMIT = 2 * 1024**3  # ONNX files over 2 GB must keep their weights in external data
PARITY_BATCH = 3  # differs from the export batch (2), so the dynamic axis is exercised


def sample_feeds(inputs: Sequence[InputSpec], batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in inputs:
        shape = (batch, *i.sample_shape)
        if i.dtype.startswith("float"):
            feeds[i.name] = rng.standard_normal(shape).astype(i.dtype)
        elif i.dtype == "bool":
            feeds[i.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[i.name] = rng.integers(0, 10, shape).astype(i.dtype)
    return feeds


def torch_outputs(model: Any, feeds: dict[str, np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
    import torch

    with torch.inference_mode():
        out = model(*(torch.from_numpy(feeds[n]) for n in names))
    outs = out if isinstance(out, (tuple, list)) else [out]
    return [o.detach().cpu().numpy() for o in outs]


def _export(model: Any, feeds: dict[str, np.ndarray], inputs: Sequence[InputSpec],
            output_names: list[str], path: Path, opset: int | None, external: bool) -> str:
    import torch

    args = tuple(torch.from_numpy(feeds[i.name]) for i in inputs)
    names = [i.name for i in inputs]
    try:
        batch = torch.export.Dim("batch")
        program = torch.onnx.export(
            model, args, dynamo=True, input_names=names, output_names=output_names or None,
            dynamic_shapes=tuple({0: batch} for _ in inputs), opset_version=opset,
            optimize=True, verbose=False)
        program.save(str(path), external_data=external)
        return "dynamo"
    except Exception as dynamo_exc:
        reason = str(dynamo_exc).strip().splitlines()[0][:300]
        warnings.warn(
            f"the dynamo exporter failed ({type(dynamo_exc).__name__}: {reason}); falling back to "
            "the TorchScript exporter, which traces one execution path and is deprecated. Fix "
            "the model for torch.export to get the supported path.", stacklevel=2)
        try:
            torch.onnx.export(
                model, args, str(path), dynamo=False, input_names=names,
                output_names=output_names or None, opset_version=opset or 17,
                dynamic_axes={n: {0: "batch"} for n in names + output_names})
            return "torchscript"
        except Exception as ts_exc:
            ts_reason = str(ts_exc).strip().splitlines()[0][:300]
            raise ExportError(
                f"neither ONNX exporter can handle this model. dynamo: {reason} | "
                f"TorchScript: {type(ts_exc).__name__}: {ts_reason}",
                "replace the unsupported operation with ONNX-exportable ops (or register a "
                "custom translation for it with torch.onnx), then export again") from ts_exc


def check_onnx(path: Path) -> Any:
    """Loads and checks an ONNX file; the error says so when it is not ONNX at all."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=False)
        onnx.shape_inference.infer_shapes_path(str(path), str(path))
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise OnnxModelError(f"{path.name} is not a valid ONNX model: {str(exc).strip()[:300]}",
                             "export the model again, or pass the path of a real .onnx file") from exc


def compare(reference: list[np.ndarray], actual: list[np.ndarray], names: Sequence[str]) -> dict[str, dict[str, float]]:
    errors = {}
    for name, r, a in zip(names, reference, actual):
        diff = np.abs(a.astype(np.float64) - r.astype(np.float64))
        scale = max(float(np.abs(r).max()), 1e-12)
        errors[name] = {"max_abs_error": float(diff.max()), "max_rel_error": float(diff.max() / scale)}
    return errors


def export_onnx(source: dict[str, Any], inputs: Sequence[InputSpec], store: ArtifactStore, *,
                output_names: Sequence[str] = (), opset: int | None = None,
                tolerance: dict[str, float] | None = None,
                external_data_threshold: int = PROTOBUF_LIMIT) -> Manifest:
    """Exports the model named by ``source`` and stores ``model.onnx``; returns the manifest."""
    import torch

    tol = {"atol": 1e-4, "rtol": 1e-3, **(tolerance or {})}
    spec = {"inputs": [i.to_dict() for i in inputs], "outputs": list(output_names),
            "opset": opset, "tolerance": tol, "torch": torch.__version__}
    key = cache_key(STAGE, source=source_digest(source), **spec)

    def compute() -> Manifest:
        import onnxruntime as ort

        model = load_model(source)
        n_bytes = sum(p.numel() * p.element_size() for p in model.state_dict().values())
        external = n_bytes >= external_data_threshold
        with tempfile.TemporaryDirectory(prefix="trt-ops-export-") as tmp:
            path = Path(tmp) / "model.onnx"
            exporter = _export(model, sample_feeds(inputs, 2), inputs, list(output_names), path,
                               opset, external)
            graph = check_onnx(path)
            onnx_outputs = [o.name for o in graph.graph.output]

            feeds = sample_feeds(inputs, PARITY_BATCH, seed=1)
            try:
                expected = torch_outputs(model, feeds, [i.name for i in inputs])
            except Exception as exc:
                raise ExportError(
                    f"the model fails on a batch of {PARITY_BATCH}: {str(exc).strip()[:300]}",
                    "engines take a dynamic batch axis; a .pt2 program must be exported with "
                    "dynamic_shapes marking axis 0 of every input as torch.export.Dim('batch')",
                ) from exc
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = session.run(onnx_outputs, feeds)
            parity = compare(expected, got, onnx_outputs)
            for name, err in parity.items():
                if err["max_abs_error"] > tol["atol"] and err["max_rel_error"] > tol["rtol"]:
                    raise ExportError(
                        f"the exported ONNX differs from PyTorch on output {name!r}: max abs "
                        f"error {err['max_abs_error']:.3g} > atol {tol['atol']}, max rel error "
                        f"{err['max_rel_error']:.3g} > rtol {tol['rtol']} ({exporter} exporter)",
                        "look for data-dependent control flow or random ops in forward(); "
                        "raise export_tolerance in the spec only if the difference is expected")
            artifacts = {"onnx": store.put_file(f"{STAGE}/{key}/model.onnx", path)}
            # external weights (models over 2 GB): the exporter writes one file beside the model
            data_file = next((f for f in Path(tmp).iterdir() if f.name != "model.onnx"), None)
            if data_file:
                artifacts["onnx_data"] = store.put_file(f"{STAGE}/{key}/{data_file.name}", data_file)
        log.info("export: %s exporter, parity %s", exporter, parity)
        return Manifest(
            stage=STAGE, key=key, artifacts=artifacts, spec=spec,
            metrics={"parity": parity, "parameters_bytes": n_bytes},
            info={"source": source, "exporter": exporter, "opset": graph.opset_import[0].version,
                  "input_names": [i.name for i in inputs], "output_names": onnx_outputs,
                  "external_data": data_file.name if data_file else None},
        )

    return run_cached(store, STAGE, key, compute)


def local_onnx(manifest: Manifest, store: ArtifactStore) -> Path:
    """The manifest's ONNX as a local file, its external data beside it under the right name."""
    model = store.fetch(manifest.artifact("onnx"))
    data_name = manifest.info.get("external_data")
    if not data_name:
        return model
    folder = blob_cache_dir() / f"onnx-{manifest.artifact('onnx').sha256}"
    folder.mkdir(exist_ok=True)
    shutil.copyfile(model, folder / "model.onnx")
    shutil.copyfile(store.fetch(manifest.artifact("onnx_data")), folder / data_name)
    return folder / "model.onnx"
