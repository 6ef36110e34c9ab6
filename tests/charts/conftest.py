"""Fixtures of the chart tests: the helm binary and a cache of rendered charts.

helm is expected at .tools/bin/helm; when it is missing, scripts/install-helm.sh installs it
once per session. Each distinct set of values is rendered once per session.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "trt-ops-workers"
CI_VALUES = CHART / "ci"
HELM = REPO / ".tools" / "bin" / "helm"
RELEASE = "gpu"
NAMESPACE = "ml"


class Rendered(list):
    """The objects of one ``helm template`` run, with look-ups by kind and name."""

    def of_kind(self, kind: str) -> dict[str, dict[str, Any]]:
        return {o["metadata"]["name"]: o for o in self if o["kind"] == kind}

    def deployments(self) -> dict[str, dict[str, Any]]:
        """Deployments by pool name (their ``trt-ops/pool`` label)."""
        return {d["metadata"]["labels"]["trt-ops/pool"]: d for d in self.of_kind("Deployment").values()}

    def by_pool(self, kind: str) -> dict[str, dict[str, Any]]:
        return {o["metadata"]["labels"]["trt-ops/pool"]: o for o in self.of_kind(kind).values()}


@pytest.fixture(scope="session")
def helm() -> Path:
    if not HELM.exists():
        subprocess.run([str(REPO / "scripts" / "install-helm.sh")], check=True, capture_output=True)
    return HELM


def run_helm(helm: Path, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def values_args(values_files: tuple[str, ...], sets: tuple[str, ...]) -> list[str]:
    args: list[str] = []
    for f in values_files:
        args += ["-f", str(CI_VALUES / f)]
    for s in sets:
        args += ["--set", s]
    return args


@pytest.fixture(scope="session")
def render(helm: Path) -> Callable[..., Rendered]:
    """``render("keda-values.yaml", sets=("replicas=2",))``: the rendered objects, cached."""
    cache: dict[tuple[tuple[str, ...], tuple[str, ...]], Rendered] = {}

    def _render(*values_files: str, sets: tuple[str, ...] = ()) -> Rendered:
        key = (values_files, sets)
        if key not in cache:
            res = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                           *values_args(values_files, sets))
            assert res.returncode == 0, res.stderr
            cache[key] = Rendered(d for d in yaml.safe_load_all(res.stdout) if d)
        return cache[key]

    return _render


@pytest.fixture(scope="session")
def helm_fails(helm: Path) -> Callable[..., str]:
    """Render values that must be refused; returns helm's error output."""

    def _fails(*sets: str) -> str:
        res = run_helm(helm, "template", RELEASE, str(CHART), *values_args((), sets))
        assert res.returncode != 0, f"helm accepted {sets}"
        return res.stderr

    return _fails
