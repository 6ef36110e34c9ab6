"""Hostile and broken inputs get a clear no: one error naming the problem and the fix, exit code
2, no traceback (unless --debug), credentials masked, and nothing written to the store."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from trt_ops.cli import main

INPUTS = [{"name": "image", "shape": ["batch", 1, 8, 8]}]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = main(list(args))
    return rc, capsys.readouterr().err


def stored_files(folder: Path) -> list[str]:
    store = folder / "store"
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()) \
        if store.exists() else []


def write_spec(folder: Path, **changes: object) -> Path:
    doc = yaml.safe_load((folder / "pipeline.yaml").read_text())
    doc.update(changes)
    path = folder / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def tiny_program(path: Path) -> Path:
    import torch

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    program = torch.export.export(model, (torch.randn(2, 1, 8, 8),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(path))
    return path


def tiny_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["logits"])], "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 64])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
              str(path))
    return path


class _Payload:
    """What a hostile pickle carries: a call made while it is unpickled."""

    def __reduce__(self):
        return (os.system, ("echo PWNED > pwned.txt",))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


# --- model sources (the export stage) -------------------------------------------------------

def _onnx_random(f: Path) -> dict:
    (f / "model.onnx").write_bytes(os.urandom(500))
    return {"onnx": "model.onnx"}


def _onnx_truncated(f: Path) -> dict:
    truncate(tiny_onnx(f / "model.onnx"), 0.6)
    return {"onnx": "model.onnx"}


def _pt2_truncated(f: Path) -> dict:
    truncate(tiny_program(f / "m.pt2"))
    return {"program": "m.pt2"}


def _pt2_not_a_zip(f: Path) -> dict:
    (f / "m.pt2").write_text("not a program\n")
    return {"program": "m.pt2"}


def _pt2_with_pickle(f: Path) -> dict:
    """A real program whose sample-inputs record is replaced by a pickle that runs a command."""
    good = tiny_program(f / "good.pt2")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(f / "m.pt2", "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("sample_inputs/model.pt"):
                data = pickle.dumps(_Payload())
            dst.writestr(item, data)
    return {"program": "m.pt2"}


def _state_dict_truncated(f: Path) -> dict:
    truncate(f / "model.pt")
    return {"factory": "trt_ops.examples.digits:build_model", "state_dict": "model.pt"}


def _state_dict_random(f: Path) -> dict:
    (f / "model.pt").write_bytes(os.urandom(300))
    return {"factory": "trt_ops.examples.digits:build_model", "state_dict": "model.pt"}


def _state_dict_with_pickle(f: Path) -> dict:
    import torch

    torch.save({"conv.weight": _Payload()}, f / "model.pt")
    return {"factory": "trt_ops.examples.digits:build_model", "state_dict": "model.pt"}


MODEL_CASES: dict[str, tuple[Callable[[Path], dict], str, str]] = {
    # name: (make the source, words of the problem, words of the fix)
    "onnx-random-bytes": (_onnx_random, "is not an ONNX model", "complete .onnx"),
    "onnx-truncated": (_onnx_truncated, "truncated", "re-export"),
    "pt2-truncated": (_pt2_truncated, "truncated or corrupt", "torch.export.save"),
    "pt2-not-a-zip": (_pt2_not_a_zip, "not a torch.export program", "torch.export.save"),
    "pt2-carrying-a-pickle": (_pt2_with_pickle, "not a plain torch.export program",
                              "does not unpickle"),
    "state-dict-truncated": (_state_dict_truncated, "weights_only=True", "model.state_dict()"),
    "state-dict-random-bytes": (_state_dict_random, "weights_only=True", "model.state_dict()"),
    "state-dict-carrying-a-pickle": (_state_dict_with_pickle, "weights_only=True",
                                     "save only tensors"),
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_bad_model_file_is_refused_before_anything_is_stored(case, digits_copy, capsys,
                                                             monkeypatch):
    make, problem, fix = MODEL_CASES[case]
    monkeypatch.chdir(digits_copy)  # a payload that ran would leave pwned.txt here
    source = make(digits_copy)
    spec = write_spec(digits_copy, model={**source, "inputs": INPUTS, "outputs": ["logits"]})
    rc, err = cli(capsys, "export", str(spec), "-o", str(digits_copy / "export.json"))
    assert rc == 2, err
    assert problem in err and fix in err and "fix:" in err
    assert "Traceback" not in err and "--debug" in err
    assert stored_files(digits_copy) == []
    assert not (digits_copy / "export.json").exists()
    assert not (digits_copy / "pwned.txt").exists()


# --- data files (the check-data stage) -----------------------------------------------------

def _npz_truncated(f: Path) -> dict:
    truncate(f / "calibration.npz", 0.7)
    return {}


def _npz_not_a_zip(f: Path) -> dict:
    (f / "calibration.npz").write_text("image,label\n0.1,3\n")
    return {}


def _npz_member_corrupt(f: Path) -> dict:
    data = bytearray((f / "calibration.npz").read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):  # inside the first array's bytes
        data[i] ^= 0xFF
    (f / "calibration.npz").write_bytes(bytes(data))
    return {}


def _npy_truncated(f: Path) -> dict:
    with np.load(f / "validation.npz") as z:
        np.save(f / "validation.npy", z["image"])
    truncate(f / "validation.npy", 0.5)
    return {"validation": str(f / "validation.npy")}


def _parquet_corrupt(f: Path) -> dict:
    (f / "validation.parquet").write_bytes(b"PAR1" + os.urandom(200) + b"PAR1")
    return {"validation": str(f / "validation.parquet")}


def _data_is_a_folder(f: Path) -> dict:
    (f / "cal.npz").mkdir()
    return {"calibration": str(f / "cal.npz")}


DATA_CASES: dict[str, tuple[Callable[[Path], dict], str, str]] = {
    "npz-truncated": (_npz_truncated, "truncated or corrupt", "numpy.savez"),
    "npz-not-a-zip": (_npz_not_a_zip, "is not a zip archive", "numpy.savez"),
    "npz-member-corrupt": (_npz_member_corrupt, "truncated or corrupt", "numpy.savez"),
    "npy-truncated": (_npy_truncated, "truncated or corrupt", "numpy.save"),
    "parquet-corrupt": (_parquet_corrupt, "as Parquet", "write_parquet"),
    "data-path-is-a-folder": (_data_is_a_folder, "is a folder, not a file", "data paths"),
    "data-file-missing": (lambda f: {"validation": str(f / "gone.npz")}, "does not exist",
                          "data paths"),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_file_is_refused_before_anything_is_stored(case, digits_copy, capsys):
    make, problem, fix = DATA_CASES[case]
    data = yaml.safe_load((digits_copy / "pipeline.yaml").read_text())["data"]
    spec = write_spec(digits_copy, data={**data, **make(digits_copy)})
    rc, err = cli(capsys, "check-data", str(spec))
    assert rc == 2, err
    assert problem in err and fix in err
    assert "pickled" not in err and "KeyError" not in err and "Traceback" not in err
    assert stored_files(digits_copy) == []


def test_truncated_data_in_a_whole_run_fails_its_step_clearly(digits_copy, capsys):
    """The run records the failed step (the run record is all it writes) and says why."""
    _npz_truncated(digits_copy)
    rc, err = cli(capsys, "run", str(digits_copy / "pipeline.yaml"))
    assert rc == 2
    assert "FAIL" in err and "truncated or corrupt" in err and "Traceback" not in err
    assert [p.split("/")[0] for p in stored_files(digits_copy)] == ["runs"]


# --- specs and manifests --------------------------------------------------------------------

SPEC_CASES = {
    "yaml-syntax": ("name: [unclosed\nmodel: {", "not valid YAML", "YAML syntax"),
    "not-a-mapping": ("- name\n- model\n", "must be a mapping", "trt-ops example digits"),
    "impossible-date": ("name: 2024-13-45\n", "month must be in 1..12", "quote it"),
    "bracket-key": ("'[': 1\nname: x\n", "unknown key '['", "docs/spec.md"),
    "binary-junk": (os.urandom(64).hex() + "\x00\x01", "", "fix:"),
}


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
def test_bad_spec_is_one_clear_error(case, tmp_path, capsys):
    text, problem, fix = SPEC_CASES[case]
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    rc, err = cli(capsys, "export", str(path))
    assert rc == 2, err
    assert err.startswith("error: ") and problem in err and fix in err
    assert "Traceback" not in err
    assert not (tmp_path / "store").exists()


def test_corrupt_manifest_is_one_clear_error(digits_copy, capsys):
    (digits_copy / "export.json").write_text('{"stage": "export", "key"')
    rc, err = cli(capsys, "calibrate", str(digits_copy / "pipeline.yaml"), "--export",
                  str(digits_copy / "export.json"), "--precision", "int8")
    assert rc == 2
    assert "cannot read manifest" in err and "-o option" in err
    assert stored_files(digits_copy) == []


# --- unexpected errors, --debug, and credentials ---------------------------------------------

def test_unexpected_error_is_one_line_and_points_at_debug(capsys, monkeypatch):
    from trt_ops.targets import catalog

    def broken() -> None:
        raise RuntimeError("catalog exploded\nsecond line of detail")

    monkeypatch.setattr(catalog, "load_catalog", broken)
    rc, err = cli(capsys, "targets")
    assert rc == 3
    assert err.splitlines()[0] == "error: RuntimeError: catalog exploded"
    assert "second line" not in err and "Traceback" not in err
    assert "run with --debug" in err
    with pytest.raises(RuntimeError):
        main(["--debug", "targets"])


def test_debug_shows_the_traceback_of_a_bad_input(digits_copy):
    _npz_not_a_zip(digits_copy)
    r = subprocess.run([sys.executable, "-m", "trt_ops.cli", "--debug", "check-data",
                        str(digits_copy / "pipeline.yaml")], capture_output=True, text=True, check=False)
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "DataError" in r.stderr


def test_credentials_are_masked_in_errors(tmp_path):
    """An unreachable MLflow named with user:password@, a token in the environment, and an S3
    store URI with AWS keys: the error says what is unreachable, and shows none of them."""
    password, token, secret = "hunter2-pass", "tok-8c1f9e2d", "wJalrXUtnFEMI/K7MDENG+bPxRfiCY"
    spec = {"name": "p", "model": {"registered": "models:/digits/1", "inputs": INPUTS},
            "data": {"calibration": str(tmp_path / "c.npz"), "validation": str(tmp_path / "v.npz")},
            "store": str(tmp_path / "store")}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"http://alice:{password}@127.0.0.1:9",
           "MLFLOW_TRACKING_TOKEN": token}
    r = subprocess.run([sys.executable, "-m", "trt_ops.cli", "export",
                        str(tmp_path / "spec.yaml")], capture_output=True, text=True, env=env,
                       check=False)
    assert r.returncode == 2, r.stderr
    assert "unreachable" in r.stderr and "http://alice:***@127.0.0.1:9" in r.stderr
    assert password not in r.stderr + r.stdout and token not in r.stderr + r.stdout
    assert not (tmp_path / "store").exists()

    from trt_ops.errors import redact

    text = f"no bucket s3://AKIAIOSFODNN7EXAMPLE:{secret}@data/x (aws_secret_access_key={secret})"
    masked = redact(text)
    assert secret not in masked and "AKIAIOSFODNN7EXAMPLE" not in masked
    assert masked.startswith("no bucket s3://***:***@data/x")


def test_log_lines_are_masked(capsys):
    import logging

    from trt_ops.console import configure

    configure(False)
    logging.getLogger("trt_ops").warning("retrying %s", "https://bob:s3cr3t@mlflow.example:5000")
    err = capsys.readouterr().err
    assert "s3cr3t" not in err and "https://bob:***@mlflow.example:5000" in err


def test_no_payload_runs_when_a_pickled_npz_member_is_read(tmp_path, capsys):
    """An .npz whose member is a pickled object array is refused by allow_pickle=False."""
    buf = io.BytesIO()
    np.savez(buf, image=np.array([_Payload()], dtype=object))
    (tmp_path / "c.npz").write_bytes(buf.getvalue())
    from trt_ops.data.datasets import read_arrays
    from trt_ops.errors import DataError

    with pytest.raises(DataError, match="truncated or corrupt") as exc:
        read_arrays(tmp_path / "c.npz")
    assert "numpy.savez" in exc.value.fix


def test_unwritable_output_path_is_a_bad_input(digits_copy, capsys):
    tiny_onnx(digits_copy / "model.onnx")
    spec = write_spec(digits_copy, model={"onnx": "model.onnx", "inputs": INPUTS,
                                          "outputs": ["logits"]})
    rc, err = cli(capsys, "export", str(spec), "-o", str(digits_copy / "no-such-dir" / "e.json"))
    assert rc == 2, err
    assert "cannot write the manifest" in err and "writable file path" in err


def test_a_calibrator_crash_is_one_error_line_with_its_traceback_in_the_log(tmp_path, caplog):
    import logging

    from trt_ops.calibration import isolated
    from trt_ops.errors import TrtOpsError

    with caplog.at_level(logging.INFO, logger="trt_ops"), pytest.raises(TrtOpsError) as exc:
        isolated.call("trt_ops.calibration.common:load_npz", path=str(tmp_path / "none.npz"))
    assert exc.value.problem.startswith("trt_ops.calibration.common:load_npz failed: "
                                        "FileNotFoundError")
    assert "Traceback" not in str(exc.value) and "-v" in exc.value.fix
    assert "Traceback" in caplog.text
