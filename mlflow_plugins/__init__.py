"""MLflow plugins of trt-ops: :mod:`mlflow_plugins.trt_engine`, the flavor for compiled engines."""
