"""The ``triton`` MLflow deployments target: registered ``trt_engine`` versions written as Triton
Inference Server model repositories (a local folder or ``s3://``).

- :mod:`.deployments` the plugin MLflow loads (``mlflow deployments ... -t triton``,
  ``get_deploy_client("triton")``);
- :mod:`.source` the registered version: engines, digests and gate verdicts;
- :mod:`.engines` what a served engine is, read from the model's MLmodel (the one place);
- :mod:`.layout` which engines go into which repository, and why;
- :mod:`.config` ``config.pbtxt`` as Triton's own ``ModelConfig`` protobuf;
- :mod:`.repository` writing, reading and removing deployments through one code path;
- :mod:`.predict` inference through a Triton server over HTTP (``tritonclient``).
"""
