"""Export stage: the source model to a checked ONNX graph with the spec's dynamic axes.

For a PyTorch source the dynamo exporter (``torch.export``) is tried first; the TorchScript
exporter is the fallback, with a warning saying why. The result is checked (``onnx.checker``,
shape inference) and compared with PyTorch, output by output, at the smallest and largest sizes
of the dynamic axes; it fails above the tolerance. An ONNX source is checked against the spec
and stored: it is the FP32 reference itself.
"""

from __future__ import annotations

import gc
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trt_ops.data.synthetic import sample_feeds
from trt_ops.errors import ExportError, OnnxModelError
from trt_ops.models.exporter import compare, export_to_onnx, torch_outputs
from trt_ops.models.onnx import check_onnx
from trt_ops.models.reference import reference_source, store_reference
from trt_ops.models.sources import load_model, source_digest
from trt_ops.spec import BATCH, InputSpec
from trt_ops.spec import axes as spec_axes
from trt_ops.store import ArtifactStore
from trt_ops.store.cache import run_cached
from trt_ops.store.digest import cache_key
from trt_ops.store.manifest import Manifest

log = logging.getLogger("trt_ops")

STAGE = "export"
PROTOBUF_LIMIT = 2 * 1024**3  # ONNX files over 2 GB must keep their weights in external data


def _parity_feeds(inputs: Sequence[InputSpec], dims: Mapping[str, Mapping[str, int]],
                  ranges: Mapping[str, Sequence[float]]) -> list[dict[str, Any]]:
    return [sample_feeds(inputs, s[BATCH], seed=1 + k, sizes=s, ranges=ranges)
            for k, s in enumerate(spec_axes.parity_shapes(dims))]


def export_onnx(source: dict[str, Any], inputs: Sequence[InputSpec], store: ArtifactStore, *,
                output_names: Sequence[str] = (), opset: int | None = None,
                tolerance: dict[str, float] | None = None,
                external_data_threshold: int = PROTOBUF_LIMIT,
                dims: Mapping[str, Mapping[str, int]] | None = None,
                value_ranges: Mapping[str, Sequence[float]] | None = None) -> Manifest:
    """Exports (or checks) the model named by ``source``, stores ``model.onnx``; its manifest."""
    import torch

    dims = spec_axes.resolve(dims)
    ranges = {k: list(v) for k, v in (value_ranges or {}).items()}
    tol = {"atol": 1e-4, "rtol": 1e-3, **(tolerance or {})}
    spec = {"inputs": [i.model_dump(mode="json") for i in inputs], "outputs": list(output_names),
            "opset": opset, "tolerance": tol, "torch": torch.__version__, "dims": dims,
            "value_ranges": ranges}
    if source.get("onnx"):
        return _store_onnx_source(source, inputs, store, list(output_names), dims, ranges)
    key = cache_key(STAGE, source=source_digest(source), **spec)

    def compute() -> Manifest:
        import onnxruntime as ort

        pinned = reference_source(source)
        model = load_model(pinned)
        n_bytes = sum(p.numel() * p.element_size() for p in model.state_dict().values())
        external = n_bytes >= external_data_threshold
        names = [i.name for i in inputs]
        with tempfile.TemporaryDirectory(prefix="trt-ops-export-") as tmp:
            path = Path(tmp) / "model.onnx"
            sizes = spec_axes.export_sizes(dims)
            example = sample_feeds(inputs, sizes[BATCH], sizes=sizes, ranges=ranges)
            exporter = export_to_onnx(model, example, inputs, list(output_names), path, opset,
                                      external, dims)
            graph = check_onnx(path)
            onnx_outputs = [o.name for o in graph.graph.output]
            # PyTorch's outputs first, then the model freed before onnxruntime loads its copy
            # of the weights: a model over 2 GB is then held once, not twice
            expected_runs = []
            for feeds in _parity_feeds(inputs, dims, ranges):
                shape = {n: list(a.shape) for n, a in feeds.items()}
                try:
                    expected_runs.append((feeds, shape, torch_outputs(model, feeds, names)))
                except Exception as exc:
                    raise ExportError(
                        f"the model fails on inputs of shapes {shape}: "
                        f"{str(exc).strip()[:300]}",
                        "engines take the dynamic axes of model.dims; a .pt2 program must be "
                        "exported with dynamic_shapes marking them (axis 0 of every input as "
                        "torch.export.Dim('batch'))") from exc
            reference = store_reference(source, model, store, f"{STAGE}/{key}")
            del model
            gc.collect()
            so = ort.SessionOptions()
            if external:  # onnxruntime maps the weights' file; a prepacked copy would double them
                so.add_session_config_entry("session.disable_prepacking", "1")
            session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            parity: dict[str, dict[str, float]] = {}
            for feeds, shape, expected in expected_runs:
                got = session.run(onnx_outputs, feeds)
                for name, err in compare(expected, got, onnx_outputs).items():
                    worst = parity.setdefault(name, {"max_abs_error": 0.0, "max_rel_error": 0.0})
                    for k in worst:
                        worst[k] = max(worst[k], err[k])
                    if err["max_abs_error"] > tol["atol"] and err["max_rel_error"] > tol["rtol"]:
                        raise ExportError(
                            f"the exported ONNX differs from PyTorch on output {name!r} at "
                            f"shapes {shape}: max abs error {err['max_abs_error']:.3g} > atol "
                            f"{tol['atol']}, max rel error {err['max_rel_error']:.3g} > rtol "
                            f"{tol['rtol']} ({exporter} exporter)",
                            "look for data-dependent control flow or random ops in forward(); "
                            "raise export.atol/rtol in the spec only if the difference is "
                            "expected")
            del session
            artifacts = {"onnx": store.put_artifact(f"{STAGE}/{key}/model.onnx", path)}
            # external weights (models over 2 GB): the exporter writes one file beside the model
            data_file = next((f for f in Path(tmp).iterdir() if f.name != "model.onnx"), None)
            if data_file:
                artifacts["onnx_data"] = store.put_artifact(f"{STAGE}/{key}/{data_file.name}", data_file)
            artifacts |= reference
        log.info("export: %s exporter, parity %s", exporter, parity)
        return Manifest(
            stage=STAGE, key=key, artifacts=artifacts, spec=spec,
            metrics={"parity": parity, "parameters_bytes": n_bytes},
            info={"source": source, "reference": pinned, "exporter": exporter,
                  "opset": graph.opset_import[0].version,
                  "input_names": names, "output_names": onnx_outputs,
                  "external_data": data_file.name if data_file else None},
        )

    return run_cached(store, STAGE, key, compute)


def _store_onnx_source(source: dict[str, Any], inputs: Sequence[InputSpec], store: ArtifactStore,
                       output_names: list[str], dims: dict[str, dict[str, int]],
                       ranges: dict[str, list[float]]) -> Manifest:
    """An ONNX source: checked against the spec, smoke-run at both ends of every axis, stored."""
    from trt_ops.models import onnx_source

    path = onnx_source.fetch(source["onnx"])
    model = onnx_source.parse(path)
    onnx_source.check_external_data(path, model)
    ordered = onnx_source.check_signature(model, inputs, output_names, dims)
    spec = {"inputs": [i.model_dump(mode="json") for i in inputs], "outputs": output_names,
            "dims": dims}
    key = cache_key(STAGE, source="onnx:" + onnx_source.digest(path), **spec)

    def compute() -> Manifest:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory(prefix="trt-ops-export-") as tmp:
            copy, data = onnx_source.normalized_copy(path, model, Path(tmp))
            graph = check_onnx(copy)
            try:
                session = ort.InferenceSession(str(copy), providers=["CPUExecutionProvider"])
                runs = {}
                for feeds in _parity_feeds(inputs, dims, ranges):
                    outs = session.run(ordered, feeds)
                    runs["x".join(str(a.shape) for a in feeds.values())] = [
                        list(o.shape) for o in outs]
            except Exception as exc:
                raise OnnxModelError(
                    f"onnxruntime cannot run {path.name} at the spec's shapes: "
                    f"{str(exc).strip()[:300]}",
                    "check model.inputs and model.dims against the ONNX model") from exc
            artifacts = {"onnx": store.put_artifact(f"{STAGE}/{key}/model.onnx", copy)}
            if data:
                artifacts["onnx_data"] = store.put_artifact(f"{STAGE}/{key}/{data}",
                                                        Path(tmp) / data)
        return Manifest(
            stage=STAGE, key=key, artifacts=artifacts, spec=spec, metrics={"smoke_runs": runs},
            info={"source": source, "exporter": "onnx source",
                  "opset": graph.opset_import[0].version,
                  "input_names": [i.name for i in inputs], "output_names": ordered,
                  "external_data": data})

    return run_cached(store, STAGE, key, compute)
