"""Check data stage: Great Expectations suites over the calibration and validation sets.

Each set becomes a per-sample frame (one row per sample: per input its shape, dtype, min, max
and whether all its values are finite; a sha256 of the sample's bytes; its label), and a suite
built here in code checks it against the model's input signature and the spec:

- every input's per-sample shape and dtype match the signature (the exported ONNX's graph
  inputs when given, else the spec's inputs); no NaN or Inf;
- values within ``data.ranges`` (both sets) or, by default, within the calibration set's range
  widened by 10% of its span (validation set: int8 scales clip what calibration never saw);
- each sample's length along every dynamic axis within ``model.dims``;
- at least ``data.min_samples`` samples; where labels exist, every class present;
- no validation sample also in the calibration set.

Bad data stops the pipeline before any build, with every failed expectation listed; each set's
GX Data Docs page is stored beside the stage's manifest either way.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from trt_ops.data.sources import existing_data_file
from trt_ops.errors import DataError
from trt_ops.quality.data_suites import check_datasets
from trt_ops.spec import InputSpec
from trt_ops.store import ArtifactStore
from trt_ops.store.cache import run_cached
from trt_ops.store.digest import cache_key, sha256_file
from trt_ops.store.manifest import Manifest

STAGE = "check_data"




def check_data(calibration: str, validation: str, inputs: Sequence[InputSpec], store: ArtifactStore,
               *, ranges: dict[str, tuple[float, float]] | None = None, min_samples: int = 100,
               classes: int | None = None,
               dims: Mapping[str, Mapping[str, int]] | None = None) -> Manifest:
    """The stage: checks both sets once per (data, check spec); raises DataError if any fail."""
    digests = {role: sha256_file(existing_data_file(path))
               for role, path in (("calibration", calibration), ("validation", validation))}
    spec = {"inputs": [i.model_dump(mode="json") for i in inputs], "ranges": {k: list(v) for k, v in (ranges or {}).items()},
            "min_samples": min_samples, "classes": classes, "dims": dict(dims or {})}
    key = cache_key(STAGE, calibration=digests["calibration"], validation=digests["validation"], **spec)

    def compute() -> Manifest:
        with tempfile.TemporaryDirectory(prefix="trt-ops-check-") as tmp:
            result = check_datasets(calibration, validation, inputs, ranges=ranges,
                                    min_samples=min_samples, classes=classes, report_dir=Path(tmp),
                                    dims=dims)
            # stored even when the data fails, so the user can read why
            artifacts = {f"{role}_data_docs": store.put_artifact(f"{STAGE}/{key}/{path.name}", path)
                         for role, path in result.reports.items()}
        if not result.passed:
            raise DataError(
                f"{len(result.failures)} data expectation(s) failed:\n  - "
                + "\n  - ".join(result.failures),
                "fix the data as each line says; the GX Data Docs pages: "
                + ", ".join(a.uri for a in artifacts.values()))
        return Manifest(stage=STAGE, key=key, artifacts=artifacts, spec=spec,
                        metrics={"calibration_samples": result.samples["calibration"],
                                 "validation_samples": result.samples["validation"],
                                 "expectations": result.expectations},
                        inputs={"calibration_data": digests["calibration"],
                                "validation_data": digests["validation"]})

    return run_cached(store, STAGE, key, compute)
