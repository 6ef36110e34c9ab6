"""The trt-ops-workers chart: lint, strict Kubernetes validation, and what each values file renders."""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from conftest import CHART, CI_VALUES, NAMESPACE, RELEASE, run_helm

from trt_ops.targets.catalog import load_catalog

VALUES_FILES = [()] + [(p.name,) for p in sorted(CI_VALUES.glob("*.yaml"))]
K8S_VERSION = kubernetes_validate.latest_version()
SECRET_ENV = {  # env var -> (Secret, key) with the default values
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": ("airflow-metadata", "connection"),
    "AIRFLOW_CONN_AIRFLOW_DB": ("airflow-metadata", "connection"),
    "AIRFLOW__CELERY__RESULT_BACKEND": ("airflow-result-backend", "connection"),
    "AIRFLOW__CELERY__BROKER_URL": ("airflow-broker-url", "connection"),
    "AIRFLOW__API_AUTH__JWT_SECRET": ("airflow-jwt-secret", "jwt-secret"),
    "AIRFLOW__CORE__FERNET_KEY": ("airflow-fernet-key", "fernet-key"),
    "AWS_ACCESS_KEY_ID": ("trt-ops-s3", "AWS_ACCESS_KEY_ID"),
    "AWS_SECRET_ACCESS_KEY": ("trt-ops-s3", "AWS_SECRET_ACCESS_KEY"),
}

# KEDA is a CRD, outside the Kubernetes schemas: the fields of keda.sh/v1alpha1 ScaledObject that
# the chart uses, strict, from KEDA's ScaledObject spec and postgresql scaler documentation.
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"}, "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"],
                     "properties": {"name": {"type": "string", "maxLength": 63}}},
        "spec": {
            "type": "object", "additionalProperties": False, "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {"type": "object", "additionalProperties": False, "required": ["name"],
                                   "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                                  "name": {"type": "string"}}},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "triggers": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "required": ["type", "metadata"],
                    "properties": {
                        "type": {"const": "postgresql"},
                        "metadata": {"type": "object", "additionalProperties": False,
                                     "required": ["connectionFromEnv", "query", "targetQueryValue"],
                                     "properties": {"connectionFromEnv": {"type": "string"},
                                                    "query": {"type": "string"},
                                                    "targetQueryValue": {"type": "string"}}}}}},
            },
        },
    },
}


def worker(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def env_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in worker(deployment)["env"]}


def queue_of(deployment: dict[str, Any]) -> str:
    args = worker(deployment)["args"]
    assert args[:3] == ["airflow", "celery", "worker"]
    return args[args.index("--queues") + 1]


def concurrency_of(deployment: dict[str, Any]) -> int:
    args = worker(deployment)["args"]
    return int(args[args.index("--concurrency") + 1])


# --- lint and schemas ---------------------------------------------------------------------------

@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda v: v[0] if v else "defaults")
def test_helm_lint_strict(helm, values):
    args = [a for f in values for a in ("-f", str(CI_VALUES / f))]
    res = run_helm(helm, "lint", "--strict", str(CHART), *args)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("values", VALUES_FILES, ids=lambda v: v[0] if v else "defaults")
def test_every_object_is_valid_kubernetes_in_strict_mode(render, values):
    objects = render(*values)
    assert objects
    for obj in objects:
        if obj["kind"] == "ScaledObject":
            jsonschema.validate(obj, SCALED_OBJECT_SCHEMA)
        else:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_strict_validation_catches_an_unknown_field(render):
    deployment = dict(render().of_kind("Deployment").popitem()[1])
    deployment["spec"] = {**deployment["spec"], "replica": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_no_secret_is_rendered(render):
    for values in VALUES_FILES:
        assert not render(*values).of_kind("Secret")


# --- default values: one worker pool per catalog class -------------------------------------------

def test_one_deployment_per_catalog_class_with_its_queue_and_nodes(render):
    catalog = load_catalog()
    deployments = render().deployments()
    assert set(deployments) == set(catalog)
    for name, target in catalog.items():
        pod = deployments[name]["spec"]["template"]["spec"]
        assert queue_of(deployments[name]) == target.queue
        assert concurrency_of(deployments[name]) == 1
        assert pod["nodeSelector"] == target.node_selector
        assert pod.get("tolerations", []) == list(target.tolerations)
        assert env_of(deployments[name])["TRT_OPS_TARGET_CLASS"]["value"] == name
        assert env_of(deployments[name])["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"]["value"] == \
            "trt_ops.celery_config.CELERY_CONFIG"
        assert env_of(deployments[name])["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"]["value"] == "1"
        assert deployments[name]["metadata"]["name"] == f"{RELEASE}-trt-ops-workers-{name}"


def test_gpu_classes_get_one_gpu_and_cpu_classes_none(render):
    catalog = load_catalog()
    for name, deployment in render().deployments().items():
        limits = worker(deployment)["resources"]["limits"]
        if catalog[name].is_gpu:
            assert limits["nvidia.com/gpu"] == 1
        else:
            assert "nvidia.com/gpu" not in limits


def test_workers_run_restricted(render):
    for deployment in render().deployments().values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        sc = worker(deployment)["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"]: m["name"] for m in worker(deployment)["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        for path in ("/scratch", "/tmp"):  # writable scratch for engines and timing caches
            assert "emptyDir" in volumes[mounts[path]]
        assert env_of(deployment)["TRT_OPS_CACHE_DIR"]["value"].startswith("/scratch/")


def test_connections_come_from_existing_secrets(render):
    for deployment in render().deployments().values():
        env = env_of(deployment)
        for var, (secret, key) in SECRET_ENV.items():
            assert "value" not in env[var], f"{var} is inlined"
            assert env[var]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": key}
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]["value"] == \
            "http://airflow-api-server:8080/execution/"
        assert env["AIRFLOW__CORE__EXECUTOR"]["value"] == "CeleryExecutor"
        assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000"


def test_liveness_pings_the_celery_worker_and_builds_may_finish(render):
    for deployment in render().deployments().values():
        probe = " ".join(worker(deployment)["livenessProbe"]["exec"]["command"])
        assert "celery" in probe and "inspect ping" in probe and "celery@$(hostname)" in probe
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 3600
        assert deployment["spec"]["replicas"] == 1


def test_pools_share_one_service_account_and_have_a_disruption_budget(render):
    objects = render()
    (account,) = objects.of_kind("ServiceAccount")
    for deployment in objects.deployments().values():
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account
    pdbs = objects.by_pool("PodDisruptionBudget")
    assert set(pdbs) == set(objects.deployments())
    for pool, pdb in pdbs.items():
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["selector"]["matchLabels"] == \
            objects.deployments()[pool]["spec"]["selector"]["matchLabels"]
    assert not objects.of_kind("ScaledObject")


# --- the ci/ values files ----------------------------------------------------------------------

@pytest.mark.parametrize(("values", "pools"), [
    ("one-pool-values.yaml", {"h100": "gpu-h100"}),
    ("three-pools-values.yaml", {"h100": "gpu-h100", "h200": "gpu-h200", "l4": "gpu-l4"}),
])
def test_pools_files_deploy_only_their_classes(render, values, pools):
    deployments = render(values).deployments()
    assert {name: queue_of(d) for name, d in deployments.items()} == pools
    assert set(render(values).by_pool("PodDisruptionBudget")) == set(pools)


def test_keda_scales_each_pool_on_its_queue(render):
    objects = render("keda-values.yaml")
    deployments, scaled = objects.deployments(), objects.by_pool("ScaledObject")
    assert set(scaled) == set(deployments) - {"l4"}  # l4 turns KEDA off
    for pool, so in scaled.items():
        assert "replicas" not in deployments[pool]["spec"]  # KEDA owns the replica count
        assert so["spec"]["scaleTargetRef"]["name"] == deployments[pool]["metadata"]["name"]
        assert so["spec"]["minReplicaCount"] == 0  # scale to zero on an empty queue
        (trigger,) = so["spec"]["triggers"]
        assert trigger["type"] == "postgresql"
        assert trigger["metadata"]["connectionFromEnv"] in env_of(deployments[pool])
        query = trigger["metadata"]["query"]
        assert f"queue = '{queue_of(deployments[pool])}'" in query
        assert f"::decimal / {concurrency_of(deployments[pool])})" in query
        assert "state='running' OR state='queued'" in query
    assert scaled["h100"]["spec"]["maxReplicaCount"] == 8  # pool override
    assert concurrency_of(deployments["h100"]) == 2
    assert scaled["h200"]["spec"]["maxReplicaCount"] == 4  # top-level
    assert deployments["l4"]["spec"]["replicas"] == 2


def test_pools_with_and_without_tolerations(render):
    catalog = load_catalog()
    pods = {n: d["spec"]["template"]["spec"] for n, d in render("tolerations-values.yaml").deployments().items()}
    assert set(pods) == set(catalog) - {"l4"} | {"l4-spot"}  # l4: null removes the pool
    assert pods["h100"]["tolerations"] == list(catalog["h100"].tolerations)
    assert [t.get("key") for t in pods["h200"]["tolerations"]] == ["nvidia.com/gpu", "gpu-type"]
    assert "tolerations" not in pods["cpu-avx512"]
    assert pods["l4-spot"]["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]
    assert pods["l4-spot"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4", "capacity-type": "spot"}


# --- precedence: pool settings over top-level settings -------------------------------------------

OVERRIDES = "overrides-values.yaml"


@pytest.mark.parametrize(("pool", "read", "expected"), [
    ("h100", lambda d: worker(d)["image"], "registry.example/trt-ops-worker:1.2.3-h100"),
    ("h200", lambda d: worker(d)["image"],
     "registry.example/trt-ops-worker@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
    ("l4", lambda d: worker(d)["image"], "registry.example/trt-ops-worker:1.2.3"),
    ("h100", lambda d: worker(d)["resources"],
     {"requests": {"cpu": "16", "memory": "128Gi"}, "limits": {"memory": "256Gi", "nvidia.com/gpu": 2}}),
    ("l4", lambda d: worker(d)["resources"],
     {"requests": {"cpu": "8", "memory": "48Gi"}, "limits": {"memory": "96Gi", "nvidia.com/gpu": 1}}),
    ("h100", lambda d: {k: env_of(d)[k]["value"] for k in ("SHARED", "H100_ONLY", "TRT_OPS_LOG_LEVEL")},
     {"SHARED": "h100", "H100_ONLY": "yes", "TRT_OPS_LOG_LEVEL": "info"}),
    ("l4", lambda d: (env_of(d)["SHARED"]["value"], "H100_ONLY" in env_of(d)), ("global", False)),
    ("h100", lambda d: d["spec"]["replicas"], 0),
    ("l4", lambda d: d["spec"]["replicas"], 2),
    ("h100", concurrency_of, 2),
    ("l4", concurrency_of, 1),
    ("h100", lambda d: d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 10800),
    ("l4", lambda d: d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 7200),
    ("l4", lambda d: d["spec"]["template"]["spec"]["nodeSelector"], {"nvidia.com/gpu.product": "NVIDIA-L4"}),
])
def test_pool_settings_override_top_level_ones(render, pool, read, expected):
    assert read(render(OVERRIDES).deployments()[pool]) == expected


def test_pool_without_node_selector_takes_the_top_level_one(render):
    deployments = render(OVERRIDES, sets=("pools.l4.nodeSelector=null",)).deployments()
    assert deployments["l4"]["spec"]["template"]["spec"]["nodeSelector"] == {"pool-tier": "gpu"}


def test_disruption_budgets_follow_precedence(render):
    pdbs = render(OVERRIDES).by_pool("PodDisruptionBudget")
    assert "h100" not in pdbs  # disabled by the pool
    assert pdbs["l4"]["spec"]["maxUnavailable"] == 0  # top-level
    assert "cpu-avx512" not in render(OVERRIDES).deployments()  # enabled: false


def test_optional_connections(render):
    deployment = render(OVERRIDES).deployments()["l4"]
    env = env_of(deployment)
    assert "AIRFLOW__CORE__FERNET_KEY" not in env  # fernetKey.name ""
    assert env["AWS_ENDPOINT_URL_S3"]["value"] == "http://minio.storage:9000"
    assert env["AWS_DEFAULT_REGION"]["value"] == "us-east-1"
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow.mlops:5000"
    assert worker(deployment)["envFrom"] == [{"secretRef": {"name": "mlflow-token"}}]
    mounts = {m["mountPath"]: m for m in worker(deployment)["volumeMounts"]}
    assert mounts["/home/airflow/airflow.cfg"]["subPath"] == "airflow.cfg"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts["/home/airflow/airflow.cfg"]["name"]]["configMap"]["name"] == "airflow-config"


def test_names_are_cut_to_63_characters(render):
    long_release_pool = "p" + "x" * 19
    objects = render(sets=(f"fullnameOverride={'n' * 40}", f"pools.{long_release_pool}.queue=q",
                           f"pools.{long_release_pool}.gpus=1"))
    for obj in objects:
        assert len(obj["metadata"]["name"]) <= 63
        assert not obj["metadata"]["name"].endswith("-")


def test_install_notes_list_the_pools(helm):
    res = run_helm(helm, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client",
                   "-f", str(CI_VALUES / "one-pool-values.yaml"))
    assert res.returncode == 0, res.stderr
    notes = res.stdout.split("NOTES:", 1)[1]
    assert f"{RELEASE}-trt-ops-workers-h100: queue gpu-h100, 1 GPU(s) per worker" in notes
    assert "airflow-metadata (key connection)" in notes
