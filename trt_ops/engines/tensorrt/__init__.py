"""The TensorRT engine backend; :mod:`.backend` is its entry point."""
