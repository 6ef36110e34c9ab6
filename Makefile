# The two commands of the README, and the steps behind them.
.PHONY: setup example test typecheck bench bench-mixed

setup:
	bash scripts/setup.sh

# the main job: the example DAG through Airflow on embedded defaults, ending in the registry
example: setup
	.venv/bin/python scripts/run_example.py --dir work/digits

# the test suite, as CI runs it
test: setup
	bash scripts/test.sh

bench: setup
	.venv/bin/python scripts/bench_engines.py

# int8 that passes its gate: MobileNetV2 (ImageNet weights) eager/fp32/int8/mixed int8 side by side
bench-mixed: setup
	.venv/bin/python scripts/bench_mixed_precision.py
