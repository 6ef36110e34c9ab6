#!/usr/bin/env python
"""Prints what this worker is (hostname, CPU class, GPUs) and, for every class of the target
catalog, whether a build or validate task routed here would start or be refused.

Run it on a GPU worker to see the identity check that every build task does first:

    python scripts/check_worker_identity.py [--catalog FILE] [--json]

No Airflow needed. Exit status 0; a class this worker can serve prints OK.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trt_ops.errors import TargetMismatchError
from trt_ops.targets.catalog import catalog_path, load_catalog
from trt_ops.targets.host import check_target, host_info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", help="target catalog (default: $TRT_OPS_TARGETS or built-in)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)

    host = host_info()
    results = {}
    for name, target in load_catalog(args.catalog).items():
        try:
            check_target(target, host)
            results[name] = {"ok": True, "queue": target.queue}
        except TargetMismatchError as exc:
            results[name] = {"ok": False, "queue": target.queue, "error": exc.problem, "fix": exc.fix}
    if args.json:
        print(json.dumps({"host": host.to_dict(), "catalog": str(args.catalog or catalog_path()),
                          "classes": results}, indent=2))
        return 0
    print(f"worker   {host.hostname}")
    print(f"cpu      {host.cpu_isa} ({host.cpu_model})")
    for g in host.gpus or ():
        print(f"gpu      {g.product} (compute capability {g.compute_capability}, "
              f"driver {g.driver_version}, {g.memory_mib} MiB, {g.uuid})")
    if not host.gpus:
        print("gpu      none (nvidia-smi not found or reports no GPU)")
    print(f"catalog  {args.catalog or catalog_path()}")
    for name, r in results.items():
        print(f"  {name:<12} queue {r['queue']:<12} " + ("OK" if r["ok"] else f"REFUSED: {r['error']}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
