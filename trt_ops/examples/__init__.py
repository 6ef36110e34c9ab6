"""Example models and data that ship with trt-ops: nothing is downloaded at run time."""
