#!/usr/bin/env bash
# The whole test suite as CI runs it: tools first (helm, TensorRT stubs), then type checks of
# the TensorRT backend against NVIDIA's real bindings, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export GX_ANALYTICS_ENABLED=false MPLBACKEND=Agg
[ -f scripts/install-helm.sh ] && bash scripts/install-helm.sh
bash scripts/install-chromium.sh
[ -f scripts/typecheck.sh ] && bash scripts/typecheck.sh
exec .venv/bin/python -m pytest -q "$@"
