"""The chart README's install example renders as written (helm install --dry-run=client)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import CHART, REPO

BLOCK = re.compile(r"<!-- install-example.*?-->\s*```bash\n(.*?)```\s*<!-- /install-example -->", re.DOTALL)


def trt_ops_command(bin_dir: Path) -> None:
    """``trt-ops`` on PATH: the installed CLI once it has chart-values, else the module behind it."""
    installed = Path(sys.executable).parent / "trt-ops"
    has_cmd = installed.exists() and subprocess.run(
        [str(installed), "chart-values", "--classes", "h100"], capture_output=True, check=False).returncode == 0
    shim = bin_dir / "trt-ops"
    if has_cmd:
        shim.symlink_to(installed)
    else:
        shim.write_text(f'#!/bin/sh\n[ "$1" = chart-values ] && shift\n'
                        f'exec "{sys.executable}" -m trt_ops.targets.chart_values "$@"\n')
        shim.chmod(0o755)


def test_readme_install_example_renders_as_written(tmp_path: Path, helm):
    (script,) = BLOCK.findall((CHART / "README.md").read_text())
    assert "helm install" in script
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    trt_ops_command(bin_dir)
    (tmp_path / "charts").symlink_to(REPO / "charts")  # the example runs from the repository root
    env = {**os.environ, "PATH": f"{bin_dir}:{helm.parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(REPO)}
    res = subprocess.run(["bash", "-euo", "pipefail", "-c",
                          script.replace("helm install", "helm install --dry-run=client")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    manifest = res.stdout.split("MANIFEST:", 1)[1].split("NOTES:", 1)[0]
    objects = [o for o in yaml.safe_load_all(manifest) if o]
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    assert set(deployments) == {"gpu-workers-trt-ops-workers-h100", "gpu-workers-trt-ops-workers-h200"}
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "registry.example.com/ml/trt-ops-worker:0.1.0"
        assert container["args"][:5] == ["airflow", "celery", "worker", "--queues", f"gpu-{name[-4:]}"]
    scaled = {o["spec"]["scaleTargetRef"]["name"] for o in objects if o["kind"] == "ScaledObject"}
    assert scaled == set(deployments)
    assert "gpu-workers-trt-ops-workers-h100: queue gpu-h100" in res.stdout  # NOTES
