"""A stand-in for Triton Inference Server, for tests only: Triton cannot run on these machines.

``StandInTriton`` serves the onnxruntime models of a local model repository written by the
deployments target over the part of the KServe v2 HTTP protocol that ``tritonclient.http`` uses
for inference (binary tensor data included). It reads each ``config.pbtxt`` with Triton's own
``ModelConfig`` protobuf and refuses requests the way Triton would for what it checks: an
unknown model or version outside the version policy, input names, datatypes, dims and batch
size beyond ``max_batch_size``. It does not load TensorRT plans, and it is not Triton.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import numpy as np

# KServe v2 datatype <-> numpy
DATATYPES = {"FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "INT64": np.int64,
             "INT32": np.int32, "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_}
ORT_LEVELS = {-1: "ORT_ENABLE_BASIC", 1: "ORT_ENABLE_EXTENDED", 2: "ORT_DISABLE_ALL"}


class _Model:
    def __init__(self, folder: Path) -> None:
        import onnxruntime as ort

        from mlflow_plugins.triton.config import parse

        self.config = parse((folder / "config.pbtxt").read_text())
        if self.config.backend != "onnxruntime":
            raise ValueError(f"the stand-in runs onnxruntime models only, not {folder.name}")
        (version,) = self.config.version_policy.specific.versions
        self.version = str(version)
        options = ort.SessionOptions()
        level = ORT_LEVELS.get(self.config.optimization.graph.level)
        if level:
            options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        path = folder / self.version / self.config.default_model_filename
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def check(self, name: str, datatype: str, shape: list[int]) -> None:
        from tritonclient.grpc import model_config_pb2 as mc

        spec = {i.name: i for i in self.config.input}.get(name)
        if spec is None:
            raise ValueError(f"unexpected inference input '{name}'")
        if mc.DataType.Name(spec.data_type) != f"TYPE_{datatype}":
            raise ValueError(f"input '{name}' has datatype {datatype}, the model expects "
                             f"{mc.DataType.Name(spec.data_type)}")
        batch = self.config.max_batch_size
        dims = shape[1:] if batch else shape
        if batch and shape[0] > batch:
            raise ValueError(f"batch size {shape[0]} exceeds max_batch_size {batch}")
        if len(dims) != len(spec.dims) or any(d not in (-1, s) for d, s in zip(spec.dims, dims)):
            raise ValueError(f"input '{name}' has shape {shape}, the model expects "
                             f"{list(spec.dims)} per sample")


class StandInTriton:
    """Serves ``repository`` (a local Triton model repository) on 127.0.0.1 until closed."""

    def __init__(self, repository: Path) -> None:
        self.models = {p.name: _Model(p) for p in repository.iterdir()
                       if (p / "config.pbtxt").is_file()}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.requests = 0

    def __enter__(self) -> Self:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def infer(self, name: str, version: str, body: bytes, header_length: int) -> tuple[dict, bytes]:
        model = self.models.get(name)
        if model is None or version not in ("", model.version):
            raise LookupError(f"Request for unknown model: '{name}' version {version} is not found")
        request = json.loads(body[:header_length])
        offset, feeds = header_length, {}
        for tensor in request["inputs"]:
            model.check(tensor["name"], tensor["datatype"], tensor["shape"])
            size = tensor["parameters"]["binary_data_size"]
            data = np.frombuffer(body[offset:offset + size], dtype=DATATYPES[tensor["datatype"]])
            feeds[tensor["name"]] = data.reshape(tensor["shape"])
            offset += size
        self.requests += 1
        names = [o["name"] for o in request.get("outputs", [])] or None
        results = model.session.run(names, feeds)
        outputs, blobs = [], []
        for out, array in zip(names or [o.name for o in model.session.get_outputs()], results):
            blob = np.ascontiguousarray(array).tobytes()
            datatype = next(k for k, v in DATATYPES.items() if np.dtype(v) == array.dtype)
            outputs.append({"name": out, "datatype": datatype, "shape": list(array.shape),
                            "parameters": {"binary_data_size": len(blob)}})
            blobs.append(blob)
        return {"model_name": name, "model_version": model.version, "outputs": outputs}, \
            b"".join(blobs)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, header: dict, blob: bytes = b"") -> None:
                text = json.dumps(header).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if blob
                                 else "application/json")
                if blob:
                    self.send_header("Inference-Header-Content-Length", str(len(text)))
                self.send_header("Content-Length", str(len(text) + len(blob)))
                self.end_headers()
                self.wfile.write(text + blob)

            def do_POST(self) -> None:  # http.server calls it by this name
                parts = self.path.strip("/").split("/")  # v2/models/<m>[/versions/<v>]/infer
                if parts[:2] != ["v2", "models"] or parts[-1] != "infer":
                    self._send(404, {"error": f"unknown path {self.path}"})
                    return
                version = parts[4] if len(parts) == 6 else ""
                body = self.rfile.read(int(self.headers["Content-Length"]))
                length = int(self.headers.get("Inference-Header-Content-Length", len(body)))
                try:
                    header, blob = standin.infer(parts[2], version, body, length)
                except LookupError as exc:
                    self._send(404, {"error": str(exc)})
                except ValueError as exc:
                    self._send(400, {"error": str(exc)})
                else:
                    self._send(200, header, blob)

        return Handler
