# The two commands of the README, and the steps behind them.
.PHONY: setup example test typecheck bench

setup:
	bash scripts/setup.sh

# the main job: the example pipeline end to end on embedded defaults
example: setup
	.venv/bin/trt-ops example digits --dir work/digits
	.venv/bin/trt-ops run work/digits/pipeline.yaml

# the test suite, as CI runs it
test: setup
	bash scripts/test.sh

bench: setup
	.venv/bin/python scripts/bench_engines.py
