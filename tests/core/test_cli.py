"""The trt-ops command as a new user meets it: help, stage by stage, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from trt_ops.cli import main


def trt_ops(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trt_ops.cli", *args], capture_output=True,
                          text=True, cwd=cwd, check=False)


def test_help_lists_every_stage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "export", "calibrate", "build", "validate", "benchmark", "targets",
                    "example", "chart-values"):
        assert command in out
    assert "trt-ops example digits" in out


def test_error_without_traceback_names_the_fix(tmp_path):
    r = trt_ops("run", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2
    assert "error: spec file" in r.stderr and "fix:" in r.stderr
    assert "Traceback" not in r.stderr
    debug = trt_ops("--debug", "run", str(tmp_path / "missing.yaml"))
    assert "Traceback" in debug.stderr


def test_stage_by_stage_from_manifests(digits_copy, tmp_path):
    spec = str(digits_copy / "pipeline.yaml")
    assert main(["export", spec, "-o", str(tmp_path / "export.json")]) == 0
    assert main(["calibrate", spec, "--export", str(tmp_path / "export.json"), "--precision",
                 "int8", "-o", str(tmp_path / "int8.json")]) == 0
    from trt_ops.pipeline.steps import default_targets

    target = default_targets()[0]
    assert main(["build", spec, "--calibrated", str(tmp_path / "int8.json"), "--target", target,
                 "-o", str(tmp_path / "engine.json")]) == 0
    assert main(["validate", spec, "--engine", str(tmp_path / "engine.json"), "--export",
                 str(tmp_path / "export.json"), "-o", str(tmp_path / "val.json")]) == 0
    val = json.loads((tmp_path / "val.json").read_text())
    assert val["status"] == "OK" and val["metrics"]["top1_agreement"] >= 0.98


def test_build_for_the_wrong_hardware_fails_before_work(digits_copy, tmp_path, capsys):
    spec = str(digits_copy / "pipeline.yaml")
    main(["export", spec, "-o", str(tmp_path / "e.json")])
    main(["calibrate", spec, "--export", str(tmp_path / "e.json"), "--precision", "fp32",
          "-o", str(tmp_path / "c.json")])
    capsys.readouterr()
    code = main(["build", spec, "--calibrated", str(tmp_path / "c.json"), "--target", "h100"])
    err = capsys.readouterr().err
    assert code == 2
    assert "needs GPU 'NVIDIA H100 80GB HBM3'" in err and "queue 'gpu-h100'" in err
    assert not list((digits_copy / "store").glob("build/*"))


def test_targets_lists_catalog_and_local_identity(capsys):
    assert main(["targets", "--local"]) == 0
    out = capsys.readouterr().out
    assert "h100" in out and "cpu_isa" in out


def test_run_is_quiet_and_a_second_run_is_all_cache_hits(digits_copy):
    """At the default verbosity only trt-ops speaks: its step lines, table and summary, no
    third-party warnings or INFO lines (exporters, Great Expectations, MLflow)."""
    spec = str(digits_copy / "pipeline.yaml")
    first = trt_ops("run", spec)
    assert first.returncode == 0, first.stderr
    ours = ("trt-ops run", "  OK ", "engines and reports:", "  engine ", "  report ",
            "  run record:", "registered:", "computed:", "all steps were cache hits")
    strays = [line for line in first.stderr.splitlines() if line and not line.startswith(ours)]
    assert not strays, strays
    assert "PASSED" in first.stdout and "vs compile" in first.stdout  # the results table
    second = trt_ops("run", spec)
    assert "all steps were cache hits" in second.stderr
    assert second.stderr.count("(cache hit)") == first.stderr.count("  OK ")
