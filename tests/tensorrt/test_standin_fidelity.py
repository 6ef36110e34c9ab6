"""The TensorRT stand-in is held to NVIDIA's real bindings of each version CI checks."""

from __future__ import annotations

import inspect

import pytest

from tests.tensorrt.standin import standin_engine, tensorrt_standin, versions
from tests.tensorrt.standin.real_bindings import real_bindings

FAKES = [cls for module in (tensorrt_standin, standin_engine)
         for _, cls in inspect.getmembers(module, inspect.isclass)
         if issubclass(cls, tensorrt_standin.Mirrored) and cls is not tensorrt_standin.Mirrored]


@pytest.mark.parametrize("version", versions())
def test_fakes_define_only_names_the_real_classes_have(version: str) -> None:
    real = real_bindings(version)
    for fake in FAKES:
        names = {n for n, _ in inspect.getmembers(fake) if not n.startswith("_")} - {"real_name"}
        missing = sorted(n for n in names if not hasattr(getattr(real, fake.real_name), n))
        assert not missing, f"{fake.__name__} fakes {missing}, which TensorRT {version}'s " \
                            f"{fake.real_name} lacks"


@pytest.mark.parametrize("version", versions())
def test_every_other_name_is_the_real_one(version: str) -> None:
    real = real_bindings(version)
    module = tensorrt_standin.make_standin(real, "NVIDIA H100 80GB HBM3", "9.0")
    assert module.__version__ == version
    for name in ("DataType", "BuilderFlag", "Logger", "Dims", "HardwareCompatibilityLevel"):
        assert getattr(module, name) is getattr(real, name)
    assert module.Builder.__name__ == "Builder" and module.Runtime.__name__ == "Runtime"


def test_names_a_version_lacks_fail_as_on_a_worker() -> None:
    oldest, _, newest = versions()
    old = tensorrt_standin.make_standin(real_bindings(oldest), "GPU", "9.0")
    new = tensorrt_standin.make_standin(real_bindings(newest), "GPU", "9.0")
    with pytest.raises(AttributeError):
        new.BuilderFlag.INT8  # noqa: B018 - removed in 11.x: precision lives in the graph
    assert old.BuilderFlag.INT8 is not None
    with pytest.raises(AttributeError):
        old.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY  # noqa: B018 - from 10.9
    config = new.Builder(new.Logger()).create_builder_config()
    with pytest.raises(AttributeError, match="has no attribute 'int8_calibrator'"):
        config.int8_calibrator = None  # removed in 11.x
    with pytest.raises(TypeError, match="expected HardwareCompatibilityLevel"):
        config.hardware_compatibility_level = "none"  # pybind11 takes only the enum
    with pytest.raises(TypeError):
        new.Builder("not a logger")
