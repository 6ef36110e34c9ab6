"""trt-ops: trained PyTorch models to validated, versioned inference engines, one per GPU type.

Every pipeline stage is a plain function in this package that imports no Airflow; the Airflow
operators (:mod:`trt_ops.operators`) and the CLI (:mod:`trt_ops.cli`) are thin wrappers.
"""

__version__ = "0.1.0"
