"""NVIDIA's real TensorRT Python bindings of the versions CI checks, imported without libnvinfer.

``scripts/trt-versions.txt`` lists the versions; ``scripts/trt-bindings.sh`` downloads a
version's bindings wheel once into the git-ignored ``.tools/trt-bindings/<version>/`` with empty
stand-ins for the native libraries, so the real module imports: its enums, flags, classes and
methods are real, its factories create nothing. Several versions import side by side, each
under a name of its own (never as ``tensorrt``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[3]
VERSIONS_FILE = REPO / "scripts" / "trt-versions.txt"
CACHE = REPO / ".tools" / "trt-bindings"


def bindings_specs() -> list[str]:
    """The bindings requirements of trt-versions.txt, oldest supported first."""
    lines = (line.strip() for line in VERSIONS_FILE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def version_of(spec: str) -> str:
    return spec.split("==", 1)[1]


def versions() -> list[str]:
    return [version_of(s) for s in bindings_specs()]


def spec_of(version: str) -> str:
    return next(s for s in bindings_specs() if version_of(s) == version)


def bindings_dir(version: str) -> Path:
    """The unpacked bindings of ``version`` (downloaded on first use)."""
    spec = spec_of(version)
    folder = CACHE / version
    if (folder / "spec").is_file() and (folder / "spec").read_text().strip() == spec:
        return folder
    proc = subprocess.run(["bash", str(REPO / "scripts" / "trt-bindings.sh"), str(folder), spec],
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"could not fetch NVIDIA's TensorRT bindings {spec} for the stand-in "
                           f"(scripts/trt-bindings.sh):\n{proc.stdout}\n{proc.stderr}")
    return folder


@functools.cache
def real_bindings(version: str) -> ModuleType:
    """NVIDIA's ``tensorrt`` module of ``version``, imported as ``nvidia_tensorrt_<version>``."""
    folder = bindings_dir(version)
    package = (folder / "module").read_text().strip().split(".")[0]
    path = folder / "site" / package
    name = "nvidia_tensorrt_" + version.replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, path / "__init__.py",
                                                  submodule_search_locations=[str(path)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if module.__version__ != version:
        raise RuntimeError(f"{path} holds TensorRT {module.__version__}, not {version}")
    return module
