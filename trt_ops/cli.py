"""The ``trt-ops`` command: ``run`` for the whole pipeline, one subcommand per stage.

Stage subcommands read the spec and the manifests of earlier stages (JSON files written with
``-o``), so a pipeline can be run and debugged one step at a time without a scheduler. Every
subcommand goes through :mod:`trt_ops.pipeline.steps`, as the Airflow operators do.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  trt-ops example digits --dir work/digits     # train the example CNN, write its data and spec
  trt-ops example minilm --dir work/minilm     # a sentence-embedding transformer (nlp extra)
  trt-ops run work/digits/pipeline.yaml        # check data, export, calibrate, build, validate,
                                               # benchmark (and register, if the spec says so)
  trt-ops export work/digits/pipeline.yaml -o export.json
  trt-ops calibrate work/digits/pipeline.yaml --export export.json --precision int8 -o int8.json
  trt-ops build work/digits/pipeline.yaml --calibrated int8.json --target cpu-avx2 -o engine.json
  trt-ops validate work/digits/pipeline.yaml --engine engine.json --export export.json
  trt-ops verify work/digits/pipeline.yaml     # every stored object present and unchanged
  trt-ops targets --local                      # the catalog, and which class this machine is
  trt-ops schema                               # the spec's JSON Schema
"""


def _write(manifest: Any, out: str | None) -> None:
    from trt_ops.errors import SpecError

    text = manifest.to_json()
    if not out:
        print(text)
        return
    try:
        Path(out).write_text(text)
    except OSError as exc:
        raise SpecError(f"cannot write the manifest to {out}: {exc.strerror or exc}",
                        "pass -o a writable file path (its folder must exist)") from exc


def _read_manifest(path: str) -> Any:
    from trt_ops.errors import SpecError
    from trt_ops.store.manifest import Manifest

    try:
        return Manifest.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecError(f"cannot read manifest {path}: {exc}",
                        "pass the JSON file written by the earlier stage's -o option") from exc


def _spec_and_store(path: str) -> tuple[Any, Any]:
    from trt_ops.spec import load_spec
    from trt_ops.store import open_store

    spec = load_spec(path)
    return spec, open_store(spec.store)


def cmd_run(args: argparse.Namespace) -> int:
    from trt_ops.console import err_console, print_table
    from trt_ops.pipeline import run_pipeline
    from trt_ops.spec import load_spec

    console = err_console()
    spec = load_spec(args.spec)
    if args.verify:  # every cache hit hashes every object it names, whatever its size
        from trt_ops.store.cache import VERIFY_ENV

        os.environ[VERIFY_ENV] = "full"

    def on_step(e: dict[str, Any]) -> None:
        status = e.get("status", "FAIL")
        mark = {"OK": "[green]OK[/]", "FAIL": "[red]FAIL[/]"}.get(status, status)
        hit = " (cache hit)" if e.get("cache_hit") else ""
        console.print(f"  {mark:<14} {e['step']:<36} {e.get('seconds', 0.0):>7.2f} s{hit}")

    console.print(f"[bold]trt-ops run[/] {spec.name} -> {spec.store}")
    with console.status("working... (each step is listed as it finishes)"):
        summary = run_pipeline(spec, spec_path=str(Path(args.spec).resolve()), on_step=on_step)
    print_table(f"engines of {spec.name} (latency at the largest batch; speed-ups over PyTorch "
                "eager and torch.compile)", summary.rows())
    console.print(f"engines and reports: {summary.store}")
    for a in summary.attempts:
        where = f"{a.target}/{a.precision}"
        if a.build:
            console.print(f"  engine {where}: {a.build.artifact('engine').uri}")
        if where in summary.reports:
            console.print(f"  report {where}: {summary.reports[where]}")
    console.print(f"  run record: {summary.store}/runs/{summary.run_id}/")
    if summary.registered:
        info = summary.registered.info
        console.print(f"registered: {info['model_uri']} (aliases {', '.join(info['aliases'])})")
    if summary.published:
        info = summary.published.info
        console.print(f"published for Triton: {', '.join(info['repositories'].values())}"
                      if "repositories" in info else f"not published: {info['reason']}")
    work = summary.work_done
    console.print("all steps were cache hits" if not work else f"computed: {', '.join(work)}")
    failed = [a for a in summary.attempts if a.verdict != "PASSED"]
    return 1 if failed and not summary.engines else 0


def cmd_verify(args: argparse.Namespace) -> int:
    from trt_ops.console import err_console, print_table
    from trt_ops.errors import StoreError
    from trt_ops.store import open_store
    from trt_ops.store.verify import read_manifest_file, store_manifests, verify

    target = args.target
    if target.endswith((".yaml", ".yml")) and Path(target).is_file():
        from trt_ops.spec import load_spec

        target = load_spec(target).store
    if target.endswith(".json") and Path(target).is_file():
        if not args.store:
            raise StoreError(f"which store holds the objects of {args.target}?",
                             "pass --store with the store URI (or the spec YAML) the manifest "
                             "was written to; objects outside it are refused")
        store_uri = args.store
        if store_uri.endswith((".yaml", ".yml")) and Path(store_uri).is_file():
            from trt_ops.spec import load_spec

            store_uri = load_spec(store_uri).store
        store = open_store(store_uri)
        manifests = {args.target: read_manifest_file(args.target)}
    else:
        store = open_store(target)
        manifests = store_manifests(store, args.run)
    report = verify(store, manifests, full=not args.quick)
    console = err_console()
    print_table(f"objects of {store.uri} (keys relative to it)", report.rows())
    failed = report.failures
    what = "size only" if args.quick else "size and sha256"
    console.print(f"{len(report.objects)} objects named by {report.manifests} manifests checked "
                  f"({what}) in {report.seconds:.2f} s")
    if not report.objects:
        console.print("nothing to verify: no manifest names an object here")
    if failed:
        console.print(f"[red]error:[/] {len(failed)} of {len(report.objects)} objects failed "
                      f"verification: {', '.join(c.uri for c in failed[:3])}"
                      f"{' ...' if len(failed) > 3 else ''}")
        console.print("  fix: run the pipeline again (`trt-ops run SPEC`): a stage whose "
                      "objects are missing or damaged is recomputed; a manifest naming objects "
                      "outside the store must be written again by a stage run on this store")
        return 1
    return 0


def cmd_example(args: argparse.Namespace) -> int:
    if args.name == "minilm":
        from trt_ops.examples import minilm

        print(minilm.prepare(args.dir))
        return 0
    from trt_ops.examples import digits

    print(digits.prepare(args.dir))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from trt_ops.pipeline.steps import export_step

    spec, store = _spec_and_store(args.spec)
    _write(export_step(spec, store), args.o)
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    from trt_ops.pipeline.steps import check_data_step

    spec, store = _spec_and_store(args.spec)
    _write(check_data_step(spec, store), args.o)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from trt_ops.pipeline.steps import calibrate_step

    spec, store = _spec_and_store(args.spec)
    _write(calibrate_step(spec, store, _read_manifest(args.export), args.precision, args.backend),
           args.o)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from trt_ops.pipeline.steps import build_step

    spec, store = _spec_and_store(args.spec)
    _write(build_step(spec, store, _read_manifest(args.calibrated), args.target), args.o)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from trt_ops.pipeline.steps import validate_step
    from trt_ops.stages.validate import verdict_lines

    spec, store = _spec_and_store(args.spec)
    m = validate_step(spec, store, _read_manifest(args.engine), _read_manifest(args.export))
    for line in verdict_lines(m):
        print(line, file=sys.stderr)
    _write(m, args.o)
    return 0 if m.status.value == "OK" else 1


def cmd_benchmark(args: argparse.Namespace) -> int:
    from trt_ops.pipeline.steps import benchmark_step

    spec, store = _spec_and_store(args.spec)
    _write(benchmark_step(spec, store, _read_manifest(args.engine), _read_manifest(args.export)),
           args.o)
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    from trt_ops.console import print_table
    from trt_ops.targets.catalog import catalog_path, load_catalog
    from trt_ops.targets.host import host_info

    rows = [{"class": t.name, "backend": t.backend, "queue": t.queue,
             "hardware": t.gpu_product or t.cpu_isa or "-"} for t in load_catalog().values()]
    print_table(f"target catalog {catalog_path()}", rows)
    if args.local:
        print(json.dumps(host_info().to_dict(), indent=2))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from trt_ops.spec.reference import json_schema_text, markdown

    sys.stdout.write(markdown() if args.markdown else json_schema_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trt-ops", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Turn a trained PyTorch model into validated inference engines, one per "
                    "hardware class: export to ONNX, calibrate (int8/fp8/fp16), build, validate "
                    "against the FP32 model, benchmark, register in MLflow.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log each stage's details, and third-party warnings")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str,
            spec: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        if spec:
            p.add_argument("spec", help="pipeline spec YAML (see `trt-ops example digits`)")
            p.add_argument("-o", metavar="FILE", help="write the stage's manifest JSON here "
                                                      "(default: stdout)")
        p.set_defaults(fn=fn)
        return p

    p = add("run", cmd_run, "run the whole pipeline of a spec; re-runs are cache hits")
    p.add_argument("--verify", action="store_true",
                   help="hash every object a cache hit names, whatever its size (by default "
                        "objects over 64 MiB are checked by size only)")
    p = add("verify", cmd_verify, "check every object named by the manifests of a store (or one "
            "manifest): present, of the recorded size and sha256; exit 1 on any failure",
            spec=False)
    p.add_argument("target", help="store URI or folder, a spec YAML (its store), or a manifest "
                                  "JSON (with --store)")
    p.add_argument("--store", help="the store (URI or spec YAML) a manifest JSON belongs to")
    p.add_argument("--run", metavar="ID", help="only the objects of this run (runs/ID/)")
    p.add_argument("--quick", action="store_true", help="check sizes only, no sha256")
    p = add("example", cmd_example, "write an example: digits (a CNN trained here) or minilm (a "
            "pretrained sentence-embedding transformer, needs the nlp extra)", spec=False)
    p.add_argument("name", choices=["digits", "minilm"], help="which example")
    p.add_argument("--dir", default="work/digits", help="folder to write it into")
    add("check-data", cmd_check_data, "check the calibration and validation data (GX suites)")
    add("export", cmd_export, "export the spec's PyTorch model to ONNX, checked against PyTorch")
    p = add("calibrate", cmd_calibrate, "place Q/DQ nodes or casts for one precision and backend")
    p.add_argument("--export", required=True, help="manifest JSON of the export stage")
    p.add_argument("--precision", required=True, help="fp32, fp16, bf16, int8 or fp8")
    p.add_argument("--backend", default="onnxruntime", help="onnxruntime or tensorrt")
    p = add("build", cmd_build, "build an engine for one target class (on that hardware)")
    p.add_argument("--calibrated", required=True, help="manifest JSON of the calibrate stage")
    p.add_argument("--target", required=True, help="catalog class, see `trt-ops targets`")
    p = add("validate", cmd_validate, "compare an engine with the FP32 model; exit 1 if its gate fails")
    p.add_argument("--engine", required=True, help="manifest JSON of the build stage")
    p.add_argument("--export", required=True, help="manifest JSON of the export stage")
    p = add("benchmark", cmd_benchmark, "latency and throughput of an engine beside PyTorch")
    p.add_argument("--engine", required=True, help="manifest JSON of the build stage")
    p.add_argument("--export", required=True, help="manifest JSON of the export stage")
    p = add("targets", cmd_targets, "list the target catalog", spec=False)
    p.add_argument("--local", action="store_true", help="also print this machine's identity")
    p = add("schema", cmd_schema, "print the pipeline spec's JSON Schema", spec=False)
    p.add_argument("--markdown", action="store_true", help="the reference page instead")
    # listed for --help; main() hands its arguments to trt_ops.targets.chart_values
    add("chart-values", lambda a: 0, "print Helm values of the worker chart's pools, from the "
        "catalog (see chart-values --help)", spec=False)
    return parser


# exit codes: 1 a gate failed, 2 bad input (the error says what to fix), 3 an unexpected error
EXIT_BAD_INPUT, EXIT_UNEXPECTED, EXIT_INTERRUPTED = 2, 3, 130


def _fail(problem: str, fix: str) -> None:
    from trt_ops.errors import redact

    print(f"error: {redact(problem)}", file=sys.stderr)
    if fix:
        print(f"  fix: {redact(fix)}", file=sys.stderr)
    print("  (run with --debug for the traceback)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from trt_ops.console import configure
    from trt_ops.errors import TrtOpsError

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["chart-values"]:  # its own options, parsed by its own parser
        from trt_ops.targets.chart_values import main as chart_main

        return int(chart_main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    configure(args.verbose)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except TrtOpsError as exc:
        if args.debug:
            raise
        _fail(exc.problem, exc.fix)
        return EXIT_BAD_INPUT
    except Exception as exc:  # (whatever the input, one clear line and no traceback)
        if args.debug:
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        _fail(f"{type(exc).__name__}: {first}" if first else type(exc).__name__,
              "this is unexpected: check the files the spec names, and report it with the "
              "output of --debug if they are sound")
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
