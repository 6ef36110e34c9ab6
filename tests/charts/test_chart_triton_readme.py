"""The chart README's Triton example: a valid Kubernetes Deployment placed like the chart's
h100 pool, loading the h100 repository written by the ``triton`` deployments target."""

from __future__ import annotations

import re

import kubernetes_validate
import yaml
from conftest import CHART

BLOCK = re.compile(r"<!-- triton-example.*?-->\s*```yaml\n(.*?)```\s*<!-- /triton-example -->",
                   re.DOTALL)


def _example() -> dict:
    (text,) = BLOCK.findall((CHART / "README.md").read_text())
    return yaml.safe_load(text)


def test_triton_example_is_valid_kubernetes():
    kubernetes_validate.validate(_example(), kubernetes_validate.latest_version(), strict=True)


def test_triton_pods_sit_where_the_h100_pool_does_and_load_its_repository():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    pool = values["pools"]["h100"]
    pod = _example()["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == pool["nodeSelector"]
    assert pod["tolerations"] == pool["tolerations"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == pool["gpus"]
    assert "--model-repository=s3://serving/triton/h100" in container["args"]
    secret = values["s3"]["credentialsSecret"]
    env = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in container["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {"name": secret["name"], "key": secret["accessKeyIdKey"]}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"name": secret["name"],
                                            "key": secret["secretAccessKeyKey"]}
