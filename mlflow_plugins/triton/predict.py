"""Inference through a Triton server over HTTP (KServe v2 protocol), with ``tritonclient``."""

from __future__ import annotations

import urllib.parse
from typing import Any

from trt_ops.errors import TrtOpsError


class TritonError(TrtOpsError):
    """The Triton server is unreachable or refused the request."""


def as_feeds(data: Any, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Input arrays by name from a dict of arrays, one array (single-input models) or a pandas
    DataFrame (``mlflow deployments predict`` reads its input file into one): a column per
    input, or one flattened sample per row for a single-input model."""
    import numpy as np
    import pandas as pd

    names = [i["name"] for i in inputs]
    if isinstance(data, pd.DataFrame):
        if set(names) <= set(data.columns):
            data = {n: data[n].tolist() for n in names}
        elif len(names) == 1:
            data = data.to_numpy()
        else:
            raise ValueError(f"the DataFrame has columns {list(data.columns)}; the model takes "
                             f"{names}: give one column per input")
    if not isinstance(data, dict):
        if len(names) != 1:
            raise ValueError(f"this model has inputs {names}: pass a dict of name -> array")
        data = {names[0]: data}
    missing = [n for n in names if n not in data]
    if missing:
        raise ValueError(f"inputs {missing} are missing; the model takes {names}")
    feeds = {}
    for spec in inputs:
        array = np.asarray(data[spec["name"]], dtype=spec["dtype"])
        sample = spec["shape"][1:]
        if array.ndim == 2 and len(sample) > 1 and all(d > 0 for d in sample):
            array = array.reshape(-1, *sample)  # one flattened sample per row
        feeds[spec["name"]] = array
    return feeds


def infer(url: str, model: str, version: str, feeds: dict[str, Any], outputs: list[str],
          max_batch: int = 0) -> dict[str, Any]:
    """Runs ``feeds`` on the Triton server at ``url`` (``http(s)://host:port``), in requests of
    at most ``max_batch`` samples (Triton refuses larger batches; 0: the model does not batch)."""
    import numpy as np

    n = len(next(iter(feeds.values())))
    step = max_batch or max(n, 1)
    parts = [_request(url, model, version, {k: v[i:i + step] for k, v in feeds.items()}, outputs)
             for i in range(0, max(n, 1), step)]
    return {o: np.concatenate([p[o] for p in parts]) for o in outputs}


def _request(url: str, model: str, version: str, feeds: dict[str, Any],
             outputs: list[str]) -> dict[str, Any]:
    from tritonclient import http
    from tritonclient.utils import InferenceServerException, np_to_triton_dtype

    parsed = urllib.parse.urlparse(url if "://" in url else f"http://{url}")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise TritonError(f"{url!r} is not the HTTP address of a Triton server",
                          "give it as http://host:8000 (Triton's HTTP port)")
    try:
        client = http.InferenceServerClient(parsed.netloc, ssl=parsed.scheme == "https",
                                            connection_timeout=10, network_timeout=60)
        requests = []
        for name, array in feeds.items():
            request = http.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            request.set_data_from_numpy(array)
            requests.append(request)
        result = client.infer(model, requests, model_version=str(version),
                              outputs=[http.InferRequestedOutput(o) for o in outputs])
    except InferenceServerException as exc:
        raise TritonError(f"Triton at {url} refused the request for {model} version {version}: "
                          f"{exc.message()}",
                          "check that the server loaded the model (GET /v2/models/"
                          f"{model}/versions/{version}/ready) and read its log") from exc
    except OSError as exc:
        raise TritonError(f"Triton at {url} is unreachable: {exc}",
                          "start Triton on the deployment's repository, or fix the address "
                          "(--config triton_url=... or TRITON_URL)") from exc
    return {o: result.as_numpy(o) for o in outputs}
