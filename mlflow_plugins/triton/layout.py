"""Which engines a deployment serves, and which Triton repository each one goes into.

Triton picks a TensorRT plan by the GPU's compute capability alone (``cc_model_filenames``).
So the TensorRT engines of a version share one repository, ``gpu``, when their compute
capabilities differ; when two GPU classes share one (H100 and H200 are both 9.0) each GPU class
gets a repository of its own, named after the class, for its node pool to mount. An onnxruntime
engine is optimized for one CPU class, so each CPU class gets its own repository too.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import TYPE_CHECKING

from trt_ops.errors import SpecError

if TYPE_CHECKING:
    from mlflow_plugins.triton.config import Shapes
    from mlflow_plugins.triton.engines import ServedEngine, Tensor

SHARED_GPU_REPOSITORY = "gpu"


@dataclasses.dataclass(frozen=True)
class TritonModel:
    """One Triton model: its sub-repository, backend and engines (one per compute capability)."""

    repository: str
    backend: str
    engines: tuple[ServedEngine, ...]
    shapes: Shapes

    @property
    def on_gpu(self) -> bool:
        return all(e.on_gpu for e in self.engines)

    def filename(self, engine: ServedEngine) -> str:
        """The engine's file in the version folder: one plan per class, named after it."""
        return f"model.{engine.target}.plan" if self.backend == "tensorrt" else "model.onnx"


@dataclasses.dataclass(frozen=True)
class Layout:
    models: tuple[TritonModel, ...]
    notes: tuple[str, ...]          # why each repository holds what it holds
    not_deployed: tuple[str, ...]   # engines and failed attempts left out, with the reason


def select(engines: list[ServedEngine], failed: dict[str, str], targets: list[str] | None,
           precision: str | None, known_targets: set[str]) -> tuple[list[ServedEngine], list[str]]:
    """One engine per target class (the first, i.e. fastest, of ``precision`` if given), and
    what was left out. ``failed`` maps ``target/precision`` to the gate's reason.

    A requested class without a passed engine is refused, naming its failed gate if any.
    """
    for e in engines:  # the registry's tags and the model must agree on what passed
        if f"{e.target}/{e.precision}" in failed:
            raise SpecError(f"engine {e.name} is in the model, but the version's tags record "
                            f"that its gate failed: {failed[f'{e.target}/{e.precision}']}",
                            "the version is inconsistent; register the engines again")
    by_target: dict[str, list[ServedEngine]] = defaultdict(list)
    for e in engines:
        by_target[e.target].append(e)
    wanted = list(dict.fromkeys(targets)) if targets else list(by_target)
    chosen, refused = [], []
    for target in wanted:
        fits = [e for e in by_target.get(target, []) if precision in (None, e.precision)]
        if fits:
            chosen.append(fits[0])
            continue
        gates = [f"{k}: {why}" for k, why in failed.items() if k.split("/")[0] == target
                 and (precision is None or k.split("/")[1] == precision)]
        if gates:
            refused.append(f"{target}: its gate failed, so no engine was registered "
                           f"({'; '.join(gates)})")
        elif target in by_target:
            refused.append(f"{target}: no {precision} engine (it has "
                           f"{', '.join(e.precision for e in by_target[target])})")
        elif target not in known_targets:
            refused.append(f"{target}: unknown target class (the catalog has "
                           f"{', '.join(sorted(known_targets))})")
        else:
            refused.append(f"{target}: the version has no engine for this class")
    if refused:
        raise SpecError(
            "nothing was deployed: " + "; ".join(refused),
            f"deploy classes whose engines passed their gates (this version has: "
            f"{', '.join(e.name for e in engines)}), e.g. --config targets="
            f"{','.join(by_target)}, or register a version that passed for the class")
    left_out = [f"{e.name}: {e.target} serves its faster {c.precision} engine"
                for c in chosen for e in by_target[c.target] if e is not c]
    left_out += [f"{k}: gate failed: {why}" for k, why in failed.items()
                 if not targets or k.split("/")[0] in wanted]
    return chosen, left_out


def plan(chosen: list[ServedEngine], inputs: tuple[Tensor, ...], outputs: tuple[Tensor, ...],
         left_out: list[str]) -> Layout:
    """The Triton models for ``chosen`` engines, and why they are laid out so."""
    from mlflow_plugins.triton.config import shapes

    models: list[TritonModel] = []
    notes: list[str] = []
    trt = [e for e in chosen if e.backend == "tensorrt"]
    if trt:
        by_cc: dict[str | None, list[str]] = defaultdict(list)
        for e in trt:
            by_cc[e.compute_capability].append(e.target)
        trt_shapes = {e.target: shapes(e, inputs, outputs) for e in trt}
        clashes = [f"{' and '.join(ts)} share compute capability {cc}"
                   for cc, ts in by_cc.items() if cc and len(ts) > 1]
        if None in by_cc:
            clashes.append(f"{', '.join(by_cc[None])} record no compute capability")
        if len(set(trt_shapes.values())) > 1:
            clashes.append("the engines' shape profiles differ, and a Triton model has one "
                           "max_batch_size and one set of dims")
        classes = ", ".join(e.target for e in trt)
        if not clashes:
            models.append(TritonModel(SHARED_GPU_REPOSITORY, "tensorrt", tuple(trt),
                                      trt_shapes[trt[0].target]))
            ccs = ", ".join(f"{e.target} {e.compute_capability}" for e in trt)
            notes.append(f"TensorRT engines of {classes} have distinct compute capabilities "
                         f"({ccs}): one repository, '{SHARED_GPU_REPOSITORY}', where Triton "
                         "loads the plan of the GPU's compute capability (cc_model_filenames); "
                         "mount it on every GPU node pool")
        else:
            for e in trt:
                models.append(TritonModel(e.target, "tensorrt", (e,), trt_shapes[e.target]))
            notes.append(f"{'; '.join(clashes)}, and Triton chooses a plan by compute "
                         f"capability alone: one repository per GPU class ({classes}), named "
                         "after the class; mount each on that class's node pool only")
    for e in chosen:
        if e.backend != "tensorrt":
            models.append(TritonModel(e.target, e.backend, (e,), shapes(e, inputs, outputs)))
            notes.append(f"{e.target}: {e.backend} engine built for {e.hardware}: its own "
                         f"repository, '{e.target}', for that class's nodes")
    return Layout(tuple(models), tuple(notes), tuple(left_out))
