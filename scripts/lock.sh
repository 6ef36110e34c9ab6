#!/usr/bin/env bash
# Regenerates requirements.lock from pyproject.toml (every extra but tensorrt) and lock-pins.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
links=()
for d in $(pip config get global.find-links 2>/dev/null || true); do links+=(--find-links "$d"); done
.venv/bin/uv pip compile pyproject.toml --extra airflow --extra modelopt --extra triton --extra nlp \
  --extra dev \
  -c lock-pins.txt "${links[@]}" --python-version 3.11 --no-emit-find-links \
  --custom-compile-command "scripts/lock.sh" -o requirements.lock
