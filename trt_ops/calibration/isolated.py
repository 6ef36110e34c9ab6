"""Runs a function in a fresh Python process and returns its JSON result.

Calibrators run here: Model Optimizer patches onnxruntime's quantization module for the whole
process, after which onnxruntime's own static quantizer fails, so the two must never share a
process. A subprocess (not multiprocessing) also works inside daemonic Celery workers.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import traceback
from typing import Any

from trt_ops import errors
from trt_ops.calibration.mixed_precision import PROGRESS
from trt_ops.console import Progress

log = logging.getLogger("trt_ops")


def call(func: str, **kwargs: Any) -> Any:
    """Calls ``module:function`` with JSON-able ``kwargs`` in a child process."""
    with tempfile.TemporaryDirectory(prefix="trt-ops-") as tmp:
        request, result = os.path.join(tmp, "request.json"), os.path.join(tmp, "result.json")
        with open(request, "w") as f:
            json.dump({"func": func, "kwargs": kwargs}, f)
        # the libraries' chatter is kept for the log at debug level, and shown on failure;
        # progress lines are shown as they come
        lines = []
        with subprocess.Popen([sys.executable, "-m", "trt_ops.calibration.isolated", request,
                               result], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) as proc, Progress() as shown:
            for line in proc.stdout or ():
                if line.startswith(PROGRESS + "\t"):
                    _, what, done, total = line.rstrip("\n").split("\t")
                    shown.update(what, int(done), int(total))
                else:
                    lines.append(line)
        output = "".join(lines)
        log.debug("%s output:\n%s", func, output)
        if not os.path.exists(result):
            raise errors.TrtOpsError(
                f"{func} died without a result (exit code {proc.returncode}); its last output:\n"
                + "\n".join(output.splitlines()[-20:]),
                "a negative exit code is a signal, e.g. -9 when the machine ran out of memory")
        with open(result) as f:
            outcome = json.load(f)
    if "error" in outcome:
        e = outcome["error"]
        cls = getattr(errors, e["type"], None)
        if isinstance(cls, type) and issubclass(cls, errors.TrtOpsError):
            raise cls(e["problem"], e["fix"])
        # the child's traceback goes to the log (-v, or the Airflow task log), not the error line
        log.info("%s failed; its output:\n%s", func, output[-3000:])
        raise errors.TrtOpsError(f"{func} failed: {e['problem']}",
                                 "this is a bug or an unsupported model; its traceback is logged "
                                 "(run with -v, or read the task log)")
    return outcome["value"]


def _main(request: str, result: str) -> None:
    with open(request) as f:
        req = json.load(f)
    module, _, name = req["func"].partition(":")
    try:
        value = getattr(importlib.import_module(module), name)(**req["kwargs"])
        outcome: dict[str, Any] = {"value": value}
    except errors.TrtOpsError as exc:
        outcome = {"error": {"type": type(exc).__name__, "problem": exc.problem, "fix": exc.fix}}
    except Exception as exc:  # noqa: BLE001 - any failure of the child goes back to the parent
        traceback.print_exc()
        outcome = {"error": {"type": type(exc).__name__, "problem": f"{type(exc).__name__}: {exc}",
                             "fix": ""}}
    with open(result, "w") as f:
        json.dump(outcome, f)


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
