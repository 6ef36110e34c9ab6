"""The pipeline's steps at the level of the spec: what every door calls.

``trt-ops run``, the stage subcommands of the CLI and the Airflow operators all go through these
functions, so a spec means the same thing wherever it runs: the same stage arguments, the same
gates, the same builder options and calibration settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from trt_ops.engines import get_backend
from trt_ops.errors import SpecError
from trt_ops.spec import PipelineSpec
from trt_ops.store import ArtifactStore
from trt_ops.store.manifest import Manifest
from trt_ops.targets.catalog import Target, get_target, load_catalog
from trt_ops.targets.host import host_info

if TYPE_CHECKING:
    from trt_ops.pipeline.summary import Attempt

# When an engine fails its gate and the spec allows fallback, the next precision is tried.
FALLBACK_ORDER = ("fp8", "int8", "fp16", "fp32")


def default_targets() -> tuple[str, ...]:
    """The catalog class of this machine: its GPU when TensorRT is usable, else its CPU."""
    host = host_info()
    catalog = load_catalog()
    if host.gpus and get_backend("tensorrt").unavailable_reason() is None:
        for t in catalog.values():
            if t.gpu_product == host.gpus[0].product:
                return (t.name,)
    for t in catalog.values():
        if t.backend == "onnxruntime" and t.cpu_isa == host.cpu_isa:
            return (t.name,)
    raise SpecError(f"no catalog class matches this machine ({host.cpu_isa}, GPUs: "
                    f"{[g.product for g in host.gpus] or 'none'})",
                    "name targets in the spec, or add a class for this machine to the catalog "
                    "(TRT_OPS_TARGETS)")


def plan_targets(spec: PipelineSpec) -> list[Target]:
    """The spec's target classes, each checked to run each precision, before any work."""
    from trt_ops.calibration.methods import backend_method

    targets = [get_target(t) for t in (spec.targets or default_targets())]
    for target in targets:
        for precision in spec.precisions:
            get_backend(target.backend).check_precision(precision, target)
            if precision in ("int8", "fp8"):  # a method the backend's calibrator lacks
                backend_method(spec.calibration.method, target.backend, precision)
    return targets


def fallback_chain(precision: str, target: Target) -> list[str]:
    """``precision`` and the lower precisions the target's backend can run, in order."""
    if precision not in FALLBACK_ORDER:
        return [precision]
    later = FALLBACK_ORDER[FALLBACK_ORDER.index(precision):]
    return [p for p in later if p in get_backend(target.backend).precisions]


def fallback_step(spec: PipelineSpec, store: ArtifactStore, export: Manifest, target: str,
                  failed: str) -> tuple[list[Attempt], list[Manifest]]:
    """The precision fallback after ``target``'s ``failed`` engine, as ``trt-ops run`` walks it:
    the next precisions the class's backend runs (except those the spec builds in their own
    right), until one passes its gate. The attempts, and the calibrations they used."""
    from trt_ops.pipeline.summary import attempt_of

    attempts: list[Attempt] = []
    calibrations: list[Manifest] = []
    previous = failed
    for precision in fallback_chain(failed, get_target(target))[1:]:
        if precision in spec.precisions:
            break
        calibrations.append(calibrate_step(spec, store, export, precision,
                                           get_target(target).backend))
        build = build_step(spec, store, calibrations[-1], target)
        validation = validate_step(spec, store, build, export)
        attempts.append(attempt_of(build, validation, benchmark_step(spec, store, build, export),
                                   fallback_from=previous))
        if attempts[-1].verdict == "PASSED":
            break
        previous = precision
    return attempts, calibrations


def check_data_step(spec: PipelineSpec, store: ArtifactStore) -> Manifest:
    from trt_ops.stages.check_data import check_data

    return check_data(spec.data.calibration, spec.data.validation, spec.model.inputs, store,
                      ranges=spec.data.ranges, min_samples=spec.data.min_samples,
                      classes=spec.data.classes, dims=spec.model.dim_ranges())


def export_step(spec: PipelineSpec, store: ArtifactStore) -> Manifest:
    from trt_ops.stages.export import export_onnx

    return export_onnx(spec.model.source(), spec.model.inputs, store,
                       output_names=spec.model.outputs, opset=spec.export.opset,
                       tolerance={"atol": spec.export.atol, "rtol": spec.export.rtol},
                       dims=spec.model.dim_ranges(), value_ranges=spec.data.ranges)


def calibrate_step(spec: PipelineSpec, store: ArtifactStore, export: Manifest, precision: str,
                   backend: str) -> Manifest:
    from trt_ops.stages.calibrate import calibrate

    c = spec.calibration
    return calibrate(export, spec.data.calibration, spec.model.inputs, precision, backend, store,
                     samples=c.samples, method=c.method, recipe=c.recipe,
                     high_precision_dtype=c.high_precision, dims=spec.model.dim_ranges(),
                     mixed=c.mixed_precision.model_dump(), thresholds=spec.thresholds_for(precision),
                     task=spec.model.task)


def build_step(spec: PipelineSpec, store: ArtifactStore, calibrated: Manifest,
               target: str) -> Manifest:
    from trt_ops.stages.build import build_engine

    backend = get_target(target).backend
    return build_engine(calibrated, target, store, profile=spec.profile(),
                        options=spec.builder_options.for_backend(backend))


def validate_step(spec: PipelineSpec, store: ArtifactStore, engine: Manifest,
                  export: Manifest) -> Manifest:
    from trt_ops.stages.validate import validate_engine

    return validate_engine(engine, export, spec.data.validation, spec.model.inputs, store,
                           task=spec.model.task,
                           thresholds=spec.thresholds_for(engine.spec["precision"]),
                           dims=spec.model.dim_ranges())


def benchmark_step(spec: PipelineSpec, store: ArtifactStore, engine: Manifest,
                   export: Manifest) -> Manifest:
    from trt_ops.stages.benchmark import benchmark_engine

    b = spec.benchmark
    return benchmark_engine(engine, export, spec.model.inputs, store, batch_sizes=b.batch_sizes,
                            iterations=b.iterations, warmup=b.warmup, streams=b.streams,
                            torch_compile=b.torch_compile, dims=spec.model.dim_ranges(),
                            shapes=b.dims)


def register_step(spec: PipelineSpec, store: ArtifactStore, export: Manifest,
                  attempts: Sequence[dict[str, Any]], calibrations: Sequence[Manifest],
                  run_id: str, connection: Any = None) -> Manifest:
    """Registers the passed engines under ``registry.model_name`` (default: the spec's name).

    ``connection`` (an Airflow ``mlflow`` connection's settings: tracking_uri, registry_uri,
    token) takes precedence over the spec's registry URIs where it names them.
    """
    from trt_ops.stages.register import register_engines

    r = spec.registry
    tracking = getattr(connection, "tracking_uri", None) or r.tracking_uri
    registry = getattr(connection, "registry_uri", None) or r.registry_uri or tracking
    return register_engines(r.model_name or spec.name, export, list(attempts), store,
                            calibrations=list(calibrations), tracking_uri=tracking,
                            registry_uri=registry, token=getattr(connection, "token", None),
                            promote=r.promote, pipeline_run_id=run_id, source=spec.model.source())


def publish_step(spec: PipelineSpec, registered: Manifest, *, open_store: Any = None,
                 connection: Any = None) -> Manifest:
    """Writes the registered version into the spec's Triton repository when it holds the serving
    alias; SKIPPED, with the reason in ``info``, otherwise."""
    from trt_ops.store.manifest import Status

    s = spec.serving
    info = registered.info
    skipped = None
    if not s.triton_repository:
        skipped = "serving.triton_repository is empty"
    elif s.alias not in info.get("aliases", []):
        skipped = (f"{info['model_uri']} does not hold the alias {s.alias!r} (its aliases: "
                   f"{', '.join(info.get('aliases', [])) or 'none'}); it needs registry.promote "
                   "and every gate passed")
    if skipped:
        return Manifest(stage="publish", key=registered.key, status=Status.SKIPPED,
                        info={"reason": skipped})
    from mlflow.exceptions import MlflowException

    from mlflow_plugins.triton.deployments import TritonDeploymentClient
    from trt_ops.registry.client import mlflow_scope

    r = spec.registry
    tracking = getattr(connection, "tracking_uri", None) or r.tracking_uri
    registry = getattr(connection, "registry_uri", None) or r.registry_uri or tracking
    client = TritonDeploymentClient(f"triton:{s.triton_repository}", open_store=open_store,
                                    tracking_uri=tracking, registry_uri=registry)
    name, model_uri = info["model_name"], f"models:/{info['model_name']}@{s.alias}"
    with mlflow_scope(tracking, registry, getattr(connection, "token", None)):
        try:
            client.get_deployment(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            described = client.create_deployment(name, model_uri, config=dict(s.options))
        else:
            described = client.update_deployment(name, model_uri, config=dict(s.options))
    return Manifest(stage="publish", key=registered.key, info={k: described[k] for k in (
        "name", "model_uri", "version", "repositories", "not_deployed", "layout")})
