"""``mlflow models serve`` of the example's registered version: MLflow's own scoring server
runs the ``trt_engine`` pyfunc, which picks this machine's engine; queried over HTTP as curl
would, its predictions equal ``pyfunc.predict`` in-process."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.servers import _stop, _wait_http
from tests.serving.conftest import free_port


@pytest.fixture(scope="module")
def scoring_server(digits_version, servers, cli_env, tmp_path_factory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("models-serve") / "serve.log"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "models", "serve",
         "-m", "models:/digits-serve@candidate", "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port), "--workers", "1"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=cli_env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/ping", proc, log, seconds=120)
        yield url
    finally:
        _stop(proc)


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_served_predictions_equal_pyfunc(scoring_server, servers, digits_dir):
    import mlflow.pyfunc

    mlflow.set_tracking_uri(servers.tracking_uri)
    images = np.load(digits_dir / "validation.npz")["image"][:40].astype(np.float32)
    expected = mlflow.pyfunc.load_model("models:/digits-serve@candidate").predict(
        {"image": images})["logits"]
    # curl -d '{"inputs": {"image": [...]}}' -H 'Content-Type: application/json' .../invocations
    got = _post(scoring_server, {"inputs": {"image": images.tolist()}})["predictions"]
    np.testing.assert_allclose(np.asarray(got["logits"]), expected, rtol=1e-5, atol=1e-5)
    # a single-input model also takes the bare batch
    bare = _post(scoring_server, {"inputs": images[:5].tolist()})["predictions"]
    np.testing.assert_allclose(np.asarray(bare["logits"]), expected[:5], rtol=1e-5, atol=1e-5)


def test_bad_input_is_a_clear_http_error(scoring_server):
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as err:
        _post(scoring_server, {"inputs": {"pixels": [[0.0]]}})
    assert err.value.code == 400
    assert "image" in err.value.read().decode()
