"""Loaded at start-up by the distributed test's worker processes (on their PYTHONPATH).

Records every file a process opens under ``TRT_OPS_AUDIT_ROOT`` (the test session's temporary
folder: the example's files, the other workers' folders) but outside its own folder
``TRT_OPS_AUDIT_OWN``, one path per line in ``TRT_OPS_AUDIT_LOG``. A worker that shares only
S3, MLflow and the broker with the others must leave that file empty.
"""

import os
import sys

_ROOT = os.environ.get("TRT_OPS_AUDIT_ROOT")

if _ROOT:
    _OWN = os.environ["TRT_OPS_AUDIT_OWN"]
    _LOG = os.environ["TRT_OPS_AUDIT_LOG"]

    def _audit(event: str, args: tuple) -> None:
        if event != "open" or not args or not isinstance(args[0], (str, bytes)):
            return
        path = os.path.abspath(os.fsdecode(args[0]))
        if path.startswith(_ROOT) and not path.startswith(_OWN) and path != _LOG:
            fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                os.write(fd, f"{os.getpid()} {path}\n".encode())
            finally:
                os.close(fd)

    sys.addaudithook(_audit)
