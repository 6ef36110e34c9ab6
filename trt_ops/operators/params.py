"""The DAG's trigger form, generated from the pipeline spec's schema, and the spec read back.

Every leaf field of :class:`trt_ops.spec.PipelineSpec` becomes one Airflow ``Param`` (named
``<section>_<field>``, in a form section per spec section), carrying the field's JSON Schema:
its type, enum, bounds, default and description. A ``spec`` param takes a whole spec, as the
path or URI of a YAML file or as a mapping; the form's fields changed from their defaults
override it. The result is validated by the same code as ``trt-ops run``
(:func:`trt_ops.spec.parse_spec`), so the form and the spec cannot drift.
"""

from __future__ import annotations

import copy
from typing import Any

SPEC_PARAM = "spec"
# form sections, in the order the form shows them: a spec section's fields go in its own
_SECTIONS = {"name": "Pipeline", "store": "Pipeline", "model": "Model", "data": "Data",
             "precisions": "Engines", "targets": "Engines", "thresholds": "Engines",
             "fallback": "Engines", "builder_options": "Engines", "calibration": "Calibration",
             "export": "Export", "benchmark": "Benchmark", "registry": "Registry",
             "serving": "Serving"}


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """``schema`` with every ``$ref`` replaced by its definition (a Param's schema stands alone)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _inline(v, defs) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def form_fields() -> dict[str, tuple[tuple[str, ...], dict[str, Any], str]]:
    """Param name -> (path in the spec, the field's standalone JSON Schema, form section)."""
    from trt_ops.spec import PipelineSpec

    schema = PipelineSpec.model_json_schema()
    defs = schema.get("$defs", {})
    fields = {}
    order = list(_SECTIONS)
    for name in sorted(schema["properties"], key=lambda n: order.index(n) if n in order else 99):
        prop, section_title = schema["properties"][name], _SECTIONS.get(name, "Engines")
        if "$ref" in prop:  # a section: one param per field of it
            section = defs[prop["$ref"].rsplit("/", 1)[-1]]
            for field, sub in section["properties"].items():
                fields[f"{name}_{field}"] = ((name, field), _inline(sub, defs), section_title)
        else:
            fields[name] = ((name,), _inline(prop, defs), section_title)
    return fields


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        doc = doc.setdefault(part, {})
    doc[path[-1]] = value


def form_defaults(defaults: dict[str, Any]) -> dict[str, Any]:
    """Every field's value in the validated ``defaults`` spec: what the form shows."""
    from trt_ops.spec import parse_spec

    return parse_spec(defaults, None, source="the DAG's default spec").model_dump(mode="json")


def spec_params(defaults: dict[str, Any], target_classes: list[str] | None = None) -> dict[str, Any]:
    """The DAG's ``params``: one Param per spec field, defaulting to its value in the
    ``defaults`` spec (a mapping with absolute paths). ``target_classes`` (the catalog's)
    become the choices of the ``targets`` field."""
    from airflow.sdk import Param

    values = form_defaults(defaults)
    params: dict[str, Any] = {SPEC_PARAM: Param(
        None, type=["null", "string", "object"], title="Whole spec (optional)", section="Spec",
        description="the path or URI (file://, s3://) of a pipeline YAML, or the spec as a "
                    "mapping; form fields changed from their defaults override it")}
    for name, (path, prop, section) in form_fields().items():
        schema = {k: v for k, v in copy.deepcopy(prop).items()
                  if k not in ("default", "examples", "title", "description")}
        if name == "targets" and target_classes:
            schema["items"] = {"type": "string", "enum": sorted(target_classes)}
            schema["uniqueItems"] = True
        label = path[-1].replace("_", " ")
        params[name] = Param(_get(values, path), section=section,
                             title=f"{path[0].replace('_', ' ')}: {label}" if len(path) > 1 else label,
                             description=prop.get("description"), **schema)
    return params


def spec_from_params(params: dict[str, Any], defaults: dict[str, Any]) -> Any:
    """The spec of a DAG run: the ``spec`` param (if any) with the changed form fields over it,
    validated as ``trt-ops run`` validates a spec file."""
    from trt_ops.spec import load_spec, parse_spec

    whole = params.get(SPEC_PARAM)
    if isinstance(whole, str) and whole.strip():
        base = load_spec(whole.strip()).model_dump(mode="json", exclude_unset=True)
    elif isinstance(whole, dict):
        base = copy.deepcopy(whole)
    else:
        base = copy.deepcopy(defaults)
    shown = form_defaults(defaults)
    for name, (path, _schema, _section) in form_fields().items():
        if name in params and params[name] != _get(shown, path):  # changed in the form
            _set(base, path, params[name])
    from trt_ops.operators.allowlist import check_factory

    spec = parse_spec(base, None, source="the DAG run's spec")
    check_factory(spec)
    return spec
