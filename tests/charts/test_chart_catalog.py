"""One catalog: the chart's pools are rendered from the DAG's target catalog and cannot drift."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import CHART, CI_VALUES, REPO, run_helm

from trt_ops.errors import SpecError
from trt_ops.targets.catalog import load_catalog
from trt_ops.targets.chart_values import main, render_chart_values

CUSTOM_CATALOG = """
classes:
  a100:
    description: NVIDIA A100 80GB
    backend: tensorrt
    gpu_product: NVIDIA A100-SXM4-80GB
    compute_capability: "8.0"
    queue: gpu-a100
    pool: gpu_a100
    node_selector: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB, topology.kubernetes.io/zone: eu-west-1a}
  cpu:
    backend: onnxruntime
    cpu_isa: x86_64-avx2
    queue: cpu
    pool: cpu
"""


def test_chart_default_pools_are_the_catalog():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["pools"] == render_chart_values()["pools"], \
        "values.yaml pools drifted from the catalog: paste `trt-ops chart-values` output into it"


@pytest.mark.parametrize(("values_file", "classes"), [
    ("one-pool-values.yaml", ["h100"]),
    ("three-pools-values.yaml", ["h100", "h200", "l4"]),
])
def test_ci_pools_files_are_chart_values_output(values_file, classes):
    assert yaml.safe_load((CI_VALUES / values_file).read_text()) == render_chart_values(classes=classes)


def test_pool_values_carry_the_catalog_fields():
    catalog = load_catalog()
    pools = render_chart_values(classes=["h100"])["pools"]
    assert list(pools) == list(catalog)
    for name, target in catalog.items():
        assert pools[name]["enabled"] is (name == "h100")
        assert pools[name]["queue"] == target.queue
        assert pools[name]["gpus"] == (1 if target.is_gpu else 0)
        assert pools[name]["nodeSelector"] == target.node_selector
        assert pools[name]["tolerations"] == list(target.tolerations)


def test_unknown_class_is_refused_with_the_known_ones():
    with pytest.raises(SpecError, match="unknown target classes \\['h900'\\]") as exc:
        render_chart_values(classes=["h100", "h900"])
    assert "h200" in exc.value.fix


def test_main_prints_values_and_reports_bad_classes(capsys):
    assert main(["--classes", "h200, l4"]) == 0
    pools = yaml.safe_load(capsys.readouterr().out)["pools"]
    assert sorted(n for n, p in pools.items() if p["enabled"]) == ["h200", "l4"]
    assert main(["--classes", "nope"]) == 2
    assert "unknown target classes ['nope']" in capsys.readouterr().err


def test_a_custom_catalog_renders_deployments_that_match_it(tmp_path: Path, helm):
    catalog_file = tmp_path / "targets.yaml"
    catalog_file.write_text(CUSTOM_CATALOG)
    pools_file = tmp_path / "pools.yaml"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with pools_file.open("w") as out:  # as the README runs it
        subprocess.run([sys.executable, "-m", "trt_ops.targets.chart_values", "--catalog", str(catalog_file)],
                       stdout=out, check=True, env=env)
    res = run_helm(helm, "template", "r", str(CHART), "-f", str(pools_file))
    assert res.returncode == 0, res.stderr
    deployments = {d["metadata"]["labels"]["trt-ops/pool"]: d
                   for d in yaml.safe_load_all(res.stdout) if d and d["kind"] == "Deployment"}
    catalog = load_catalog(catalog_file)
    assert set(deployments) == set(catalog)  # the chart's default pools are removed
    for name, target in catalog.items():
        pod = deployments[name]["spec"]["template"]["spec"]
        args = pod["containers"][0]["args"]
        assert args[args.index("--queues") + 1] == target.queue
        assert pod.get("nodeSelector", {}) == target.node_selector


def test_trt_ops_cli_chart_values_is_the_module():
    cli = Path(sys.executable).parent / "trt-ops"
    assert "chart-values" in subprocess.run([str(cli), "--help"], capture_output=True, text=True,
                                            check=True).stdout
    res = subprocess.run([str(cli), "chart-values", "--classes", "h100,h200"],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert yaml.safe_load(res.stdout) == render_chart_values(classes=["h100", "h200"])


def test_a_custom_catalog_is_mounted_into_every_worker(helm, tmp_path, monkeypatch):
    """``--set-file catalog.content=`` puts the catalog in a ConfigMap that every pool mounts, and
    TRT_OPS_TARGETS names the mounted file: read back from the ConfigMap, it is the same catalog."""
    source = tmp_path / "catalog.yaml"
    source.write_text(CUSTOM_CATALOG)
    res = run_helm(helm, "template", "gpu", str(CHART), "--set-file", f"catalog.content={source}")
    assert res.returncode == 0, res.stderr
    objects = [o for o in yaml.safe_load_all(res.stdout) if o]
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"]
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        mount = next(m for m in container["volumeMounts"] if m["name"] == "catalog")
        volume = next(v for v in pod["volumes"] if v["name"] == "catalog")
        assert volume["configMap"]["name"] == configmap["metadata"]["name"]
        assert env["TRT_OPS_TARGETS"] == f"{mount['mountPath']}/hardware_classes.yaml"
    mounted = tmp_path / "mounted.yaml"
    mounted.write_text(configmap["data"]["hardware_classes.yaml"])
    assert load_catalog(mounted) == load_catalog(source)


def test_an_existing_catalog_configmap_and_none(helm):
    res = run_helm(helm, "template", "gpu", str(CHART), "--set", "catalog.existingConfigMap=site-catalog")
    assert res.returncode == 0, res.stderr
    objects = [o for o in yaml.safe_load_all(res.stdout) if o]
    assert not [o for o in objects if o["kind"] == "ConfigMap"]  # not the chart's to create
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["catalog"]["configMap"]["name"] == "site-catalog"
    default = run_helm(helm, "template", "gpu", str(CHART))
    for deployment in (o for o in yaml.safe_load_all(default.stdout) if o and o["kind"] == "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert "TRT_OPS_TARGETS" not in {e["name"] for e in container["env"]}  # the image's own
