"""values.schema.json: complete, strict, and refusing bad values with the bad key named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from conftest import CHART

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def value_properties(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every chart value described by the schema: (path, its schema), depth first."""
    for name, prop in node.get("properties", {}).items():
        yield f"{path}.{name}", prop
        yield from value_properties(prop, f"{path}.{name}")


CHART_VALUES = list(value_properties(SCHEMA)) + list(value_properties(SCHEMA["definitions"]["pool"], ".pools.<pool>"))


@pytest.mark.parametrize(("path", "prop"), CHART_VALUES, ids=[p for p, _ in CHART_VALUES])
def test_every_value_has_a_description_type_and_default(path, prop):
    assert prop.get("description"), path
    assert "type" in prop, path
    assert "default" in prop, path
    if prop["type"] == "object" and "properties" in prop:
        assert prop.get("additionalProperties") is False, f"{path} accepts unknown keys"


def test_schema_defaults_are_the_chart_defaults():
    for name, prop in SCHEMA["properties"].items():
        if name in ("pools", "global"):
            continue
        assert prop["default"] == VALUES[name], name


@pytest.mark.parametrize(("sets", "message"), [
    (["replica=2"], "additional properties 'replica' not allowed"),
    (["pools.h100.gpuz=2"], "at '/pools/h100': additional properties 'gpuz' not allowed"),
    (["pools.h100.gpus=-1"], "at '/pools/h100/gpus'"),
    (["pools.h100.queue="], "at '/pools/h100/queue'"),
    (["pools.new-pool.gpus=1"], "missing property 'queue'"),
    (["pools.H100_big.queue=q", "pools.H100_big.gpus=1"], "H100_big"),
    (["pools.h100.tolerations[0].operator=Maybe"], "at '/pools/h100/tolerations/0/operator'"),
    (["pools.h100.replicas=two"], "at '/pools/h100/replicas'"),
    (["keda.minReplicaCount=-1"], "at '/keda/minReplicaCount'"),
    (["resources.request.cpu=1"], "additional properties 'request' not allowed"),
    (["image.digest=latest"], "at '/image/digest'"),
    (["securityContext.readOnlyRootFilesystem=false"], "at '/securityContext/readOnlyRootFilesystem'"),
    (["securityContext.allowPrivilegeEscalation=true"], "at '/securityContext/allowPrivilegeEscalation'"),
    (["podSecurityContext.runAsNonRoot=false"], "at '/podSecurityContext/runAsNonRoot'"),
    (["securityContext.capabilities.drop={NET_RAW}"], "at '/securityContext/capabilities/drop'"),
    (["securityContext.capabilities.add={SYS_ADMIN}"], "additional properties 'add' not allowed"),
    (["airflow.secrets.metadataConnection.name="], "at '/airflow/secrets/metadataConnection/name'"),
    (["airflow.secrets.brokerUrl.password=hunter2"], "additional properties 'password' not allowed"),
    (["airflow.executionApiServerUrl=http://airflow-api-server:8080"], "at '/airflow/executionApiServerUrl'"),
    (["env.BAD-NAME=1"], "BAD-NAME"),
])
def test_bad_values_are_refused_naming_the_key(helm_fails, sets, message):
    err = helm_fails(*sets)
    assert "values don't meet the specifications of the schema" in err
    assert message in err, err
