"""What one pipeline run did: its attempts (one per target and precision) and their verdicts."""

from __future__ import annotations

import dataclasses
from typing import Any

from trt_ops import __version__
from trt_ops.store.manifest import Manifest, Status


@dataclasses.dataclass
class Attempt:
    """One engine of one target class and precision: built, validated, benchmarked."""

    target: str
    precision: str
    verdict: str  # PASSED | FAILED
    reason: str = ""
    fallback_from: str | None = None
    build: Manifest | None = None
    validation: Manifest | None = None
    benchmark: Manifest | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("target", "precision", "verdict", "reason", "fallback_from")}
        for k in ("build", "validation", "benchmark"):
            m = getattr(self, k)
            d[k] = m.to_dict() if m else None
        return d


def attempt_of(build: Manifest, validation: Manifest | None, benchmark: Manifest | None,
               fallback_from: str | None = None) -> Attempt:
    """The attempt an engine's manifests record: PASSED when its gate passed, else the reason
    (the gate's failed checks)."""
    from trt_ops.stages.validate import verdict_lines

    passed = validation is not None and validation.status == Status.OK
    failed = [line for line in verdict_lines(validation) if line.startswith("FAILED")] \
        if validation else ["not validated"]
    return Attempt(build.spec["target"], build.spec["precision"],
                   "PASSED" if passed else "FAILED", "" if passed else "; ".join(failed),
                   fallback_from, build, validation, benchmark)


@dataclasses.dataclass
class RunSummary:
    run_id: str
    spec_name: str
    store: str
    steps: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    data_check: Manifest | None = None
    export: Manifest | None = None
    calibrations: dict[str, Manifest] = dataclasses.field(default_factory=dict)
    attempts: list[Attempt] = dataclasses.field(default_factory=list)
    reports: dict[str, str] = dataclasses.field(default_factory=dict)
    registered: Manifest | None = None  # the model version, when the spec names a registry model
    published: Manifest | None = None  # the Triton repository, when the spec names one

    @property
    def engines(self) -> list[Attempt]:
        """The attempts whose engine passed its gate."""
        return [a for a in self.attempts if a.verdict == "PASSED"]

    @property
    def recommended(self) -> dict[str, str]:
        """Per target class, the fastest engine that passed (the registry's recommended one)."""
        from trt_ops.registry.lineage import recommended

        return recommended([a.to_dict() for a in self.engines])

    @property
    def work_done(self) -> list[str]:
        """Steps that computed something (not cache hits)."""
        return [s["step"] for s in self.steps if not s["cache_hit"]]

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "spec_name": self.spec_name, "store": self.store,
                "trt_ops_version": __version__, "steps": self.steps,
                "data_check": self.data_check.to_dict() if self.data_check else None,
                "export": self.export.to_dict() if self.export else None,
                "calibrations": {k: v.to_dict() for k, v in self.calibrations.items()},
                "attempts": [a.to_dict() for a in self.attempts], "reports": self.reports,
                "recommended": self.recommended,
                "registered": self.registered.to_dict() if self.registered else None,
                "published": self.published.to_dict() if self.published else None}

    def rows(self, *, engine_uri: bool = False) -> list[dict[str, str]]:
        """One row per attempt, formatted for a table (terminal or Markdown)."""
        out = []
        for a in self.attempts:
            v = a.validation.metrics if a.validation else {}
            b = a.benchmark.metrics if a.benchmark else {}

            def fmt(d: dict[str, Any], key: str, spec: str, suffix: str = "") -> str:
                return format(d[key], spec) + suffix if isinstance(d.get(key), (int, float)) else "-"

            row = {
                "target": a.target,
                "precision": a.precision + (f" (from {a.fallback_from})" if a.fallback_from else ""),
                "verdict": a.verdict,
                "top-1": fmt(v, "top1_agreement", ".4f"),
                "min cos": fmt(v, "min_cosine", ".4f"),
                "p50 ms": fmt(b, "latency_p50_ms", ".2f") + (f" @{b['batch_size']}" if b else ""),
                "vs eager": fmt(b, "speedup", ".2f", "x"),
                "vs compile": fmt(b, "speedup_vs_compile", ".2f", "x"),
            }
            if engine_uri:
                row["engine"] = a.build.artifact("engine").uri if a.build else "-"
            out.append(row)
        return out

    def markdown(self) -> str:
        rows = self.rows(engine_uri=True)
        if not rows:
            return "(no engines)"
        head = list(rows[0])
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r[h] for h in head) + " |" for r in rows]
        picks = self.recommended
        if picks:
            lines += ["", "Recommended per class (the fastest that passed): "
                      + ", ".join(f"{t}: {n}" for t, n in picks.items())]
        return "\n".join(lines)
