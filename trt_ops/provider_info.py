"""Airflow provider metadata: the operators, hooks and connection types of trt-ops.

Registered through the ``apache_airflow_provider`` entry point. Connection form fields are
declared here (``conn-fields`` / ``ui-field-behaviour``), so the Airflow UI builds the form
without importing the hook. S3 goes through the amazon provider's ``aws`` connection
(``endpoint_url`` in its extras for S3-compatible servers).
"""

from __future__ import annotations

from typing import Any

from trt_ops import __version__

OPERATOR_MODULES = [
    "trt_ops.operators.export",
    "trt_ops.operators.check_data",
    "trt_ops.operators.calibrate",
    "trt_ops.operators.build",
    "trt_ops.operators.validate",
    "trt_ops.operators.benchmark",
    "trt_ops.operators.fallback",
    "trt_ops.operators.register",
    "trt_ops.operators.publish",
]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "trt-ops",
        "name": "trt-ops",
        "description": "Turns trained PyTorch models into validated, versioned inference "
                       "engines, one per GPU type, registered in MLflow.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "trt-ops", "external-doc-url": "https://github.com/trt-ops/trt-ops",
             "tags": ["software"]},
            {"integration-name": "MLflow", "external-doc-url": "https://mlflow.org/docs/latest/",
             "tags": ["software"]},
        ],
        "operators": [{"integration-name": "trt-ops", "python-modules": OPERATOR_MODULES}],
        "hooks": [
            {"integration-name": "MLflow", "python-modules": ["trt_ops.hooks.mlflow"]},
            {"integration-name": "trt-ops", "python-modules": ["trt_ops.hooks.store"]},
        ],
        "config": {
            "trt_ops": {
                "description": "Limits on what a DAG run's pipeline spec may make a worker do.",
                "options": {
                    "allowed_factories": {
                        "description": "Comma-separated fnmatch patterns of the model factories "
                                       "(module:function) that a spec may name; a factory "
                                       "outside them fails the plan task and every operator "
                                       "before it is imported. The trt-ops CLI is not limited.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "trt_ops.examples.*,mypkg.models:make",
                        "default": "trt_ops.examples.*",
                    },
                },
            },
        },
        "connection-types": [
            {
                "hook-class-name": "trt_ops.hooks.mlflow.MlflowHook",
                "hook-name": "MLflow",
                "connection-type": "mlflow",
                "conn-fields": {
                    "registry_uri": {
                        "label": "Registry URI",
                        "description": "MLflow model registry URI; empty: the tracking URI",
                        "schema": {"type": ["string", "null"]},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port", "extra"],
                    "relabeling": {"host": "Tracking URI", "password": "Token"},
                    "placeholders": {
                        "host": "http://mlflow.example.com:5000 or sqlite:///mlflow.db",
                        "password": "bearer token (MLFLOW_TRACKING_TOKEN); empty for none",
                    },
                },
            },
        ],
    }
