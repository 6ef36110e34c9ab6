"""The pipeline: :mod:`.steps` (a spec's steps, shared by every door), :mod:`.run` (the whole
pipeline in one process, ``trt-ops run``) and :mod:`.summary` (what a run did)."""

from trt_ops.pipeline.run import run_pipeline
from trt_ops.pipeline.summary import Attempt, RunSummary

__all__ = ["Attempt", "RunSummary", "run_pipeline"]
