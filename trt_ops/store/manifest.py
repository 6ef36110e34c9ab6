"""Stage manifests: the small JSON-able records that stages return and Airflow passes as XCom."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any


class Status(str, enum.Enum):
    OK = "OK"
    FAIL = "FAIL"
    SKIPPED = "SKIPPED"


@dataclasses.dataclass
class Artifact:
    """One stored object: where it is and what its bytes hash to."""

    uri: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Artifact:
        return cls(uri=d["uri"], sha256=d["sha256"], size=int(d["size"]))


@dataclasses.dataclass
class Manifest:
    """What one stage produced.

    ``key`` is derived from the digests of the inputs and the spec that made the output, so a
    re-run with the same inputs finds this manifest again (``cache_hit``).
    """

    stage: str
    key: str
    status: Status = Status.OK
    artifacts: dict[str, Artifact] = dataclasses.field(default_factory=dict)
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    cache_hit: bool = False

    def artifact(self, name: str) -> Artifact:
        try:
            return self.artifacts[name]
        except KeyError:
            raise KeyError(
                f"{self.stage} manifest has no artifact {name!r}; it has {sorted(self.artifacts)}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        return cls(
            stage=d["stage"],
            key=d["key"],
            status=Status(d.get("status", "OK")),
            artifacts={k: Artifact.from_dict(v) for k, v in d.get("artifacts", {}).items()},
            spec=dict(d.get("spec", {})),
            metrics=dict(d.get("metrics", {})),
            info=dict(d.get("info", {})),
            inputs=dict(d.get("inputs", {})),
            seconds=float(d.get("seconds", 0.0)),
            cache_hit=bool(d.get("cache_hit", False)),
        )

    @classmethod
    def coerce(cls, value: Manifest | dict[str, Any]) -> Manifest:
        """Accepts a manifest or its dict form (as it arrives from XCom)."""
        return value if isinstance(value, Manifest) else cls.from_dict(value)
