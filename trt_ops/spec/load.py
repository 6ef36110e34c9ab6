"""Reading a spec: YAML or a mapping, paths resolved, pydantic's errors turned into one clear SpecError.

Relative paths in a spec file are relative to that file. A spec that comes from elsewhere (the
Airflow trigger form, an inline mapping) has no folder: its paths must be absolute or URIs,
since every worker resolves them on its own machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ValidationError

from trt_ops.errors import SpecError
from trt_ops.spec.schema import PipelineSpec

# (section, field) of every path or URI in the spec
PATH_FIELDS = (("model", "state_dict"), ("model", "program"), ("model", "onnx"),
               ("data", "calibration"),
               ("data", "validation"), (None, "store"))


def _is_uri(text: str) -> bool:
    scheme = urlparse(text).scheme
    return len(scheme) > 1  # "C:" is a drive, not a scheme


def _resolve(doc: dict[str, Any], base: Path | None) -> dict[str, Any]:
    doc = {k: dict(v) if isinstance(v, dict) else v for k, v in doc.items()}
    for section, field in PATH_FIELDS:
        holder = doc if section is None else doc.get(section)
        value = holder.get(field) if isinstance(holder, dict) else None
        if not isinstance(value, str) or not value or _is_uri(value):
            continue
        p = Path(value).expanduser()
        if p.is_absolute():
            continue
        where = f"{section}.{field}" if section else field
        if base is None:
            raise SpecError(f"{where} {value!r} is a relative path, and this spec has no folder "
                            "to resolve it against",
                            "give an absolute path, or a file:// or s3:// URI that every worker "
                            "can reach")
        holder[field] = str((base / p).resolve())
    return doc


def _field_help(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The description and an example of the field at ``loc``, for the error's fix."""
    info = None
    for part in loc:
        if isinstance(part, int) or info is not None and model is None:
            continue
        field = model.model_fields.get(str(part)) if model else None
        if field is None:
            break
        info = field
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args, *[a for x in args for a in getattr(x, "__args__", ())]]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
                     None)  # type: ignore[assignment]
    if info is None or not info.description:
        return ""
    example = f", e.g. {info.examples[0]!r}" if info.examples else ""
    return f"{info.description}{example}"


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the spec"


def spec_error(exc: ValidationError, source: str) -> SpecError:
    lines = []
    for e in exc.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and "[" in p))
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":  # the key itself, even one that looks like a tag
            message = f"unknown key {e['loc'][-1]!r} (a typo?)" if e["loc"] else "unknown key"
        elif e["type"] == "missing":
            message = "is required"
        elif "input" in e and not isinstance(e["input"], (dict, list)):
            message += f" (got {e['input']!r})"
        hint = _field_help(PipelineSpec, loc)
        lines.append(f"  - {_where(loc)}: {message}" + (f"\n      ({hint})" if hint else ""))
    return SpecError(f"{source} has {len(lines)} problem{'s' if len(lines) > 1 else ''}:\n"
                     + "\n".join(lines),
                     "correct the fields named above; docs/spec.md describes every field, and "
                     "`trt-ops schema` prints the JSON Schema")


def parse_spec(doc: Any, base_dir: str | Path | None = None, *,
               source: str = "the spec") -> PipelineSpec:
    """A validated spec from its mapping; relative paths are resolved against ``base_dir``."""
    if isinstance(doc, PipelineSpec):
        return doc
    if not isinstance(doc, dict):
        raise SpecError(f"{source} must be a mapping of fields, got {type(doc).__name__}",
                        "write it as YAML with name, model and data at least (`trt-ops example "
                        "digits` writes a complete one)")
    resolved = _resolve(doc, Path(base_dir).resolve() if base_dir is not None else None)
    try:
        return PipelineSpec.model_validate(resolved)
    except ValidationError as exc:
        raise spec_error(exc, source) from None
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        # a validator meeting a value of a type it never expected: still the spec's fault
        raise SpecError(f"{source} cannot be read: {type(exc).__name__}: {str(exc)[:300]}",
                        "compare it with docs/spec.md, or start from `trt-ops example digits`"
                        ) from None


def load_spec(path: str | Path) -> PipelineSpec:
    """The spec in a YAML file: a path, ``file://`` or ``s3://`` URI. A file's relative paths are
    relative to its folder; a spec on S3 must name its files by URI."""
    text = str(path)
    base: Path | None = None
    if _is_uri(text):
        from trt_ops.data.sources import local_data_path
        from trt_ops.errors import DataError

        try:
            p = local_data_path(text)
        except DataError:
            raise SpecError(f"spec {text} does not exist", "upload it first, or fix the URI") from None
        if urlparse(text).scheme == "file":
            base = p.parent
    else:
        p = Path(path)
        base = p.parent
    try:
        doc = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file {text} does not exist", "pass the path of a pipeline YAML") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file {text}: {exc}", "pass the path of a pipeline YAML") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"spec file {text} is not valid YAML: {exc}", "fix the YAML syntax") from None
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. a date like 2024-13-45
        raise SpecError(f"spec file {text} is not valid YAML: {type(exc).__name__}: {exc}",
                        "fix the value named above (quote it to keep it a string)") from None
    return parse_spec(doc, base, source=f"spec {text}")
