#!/usr/bin/env bash
# mypy on the TensorRT backend against stubs of NVIDIA's real bindings, once per major:
# 10.x (tensorrt-cu12-bindings) and 11.x (tensorrt-cu13-bindings). TensorRT itself cannot be
# installed without a GPU host, so these stubs are how CI knows our calls exist in both APIs.
# The stubs are made once into .tools/trt-stubs/<major> (delete that folder to remake them).
# Exits non-zero when mypy reports an error against either major.
set -euo pipefail
cd "$(dirname "$0")/.."
MYPY=${MYPY:-.venv/bin/mypy}
FILES=(trt_ops/engines/tensorrt.py trt_ops/engines/tensorrt_cache.py trt_ops/engines/tensorrt_report.py)
declare -A SPECS=(
  [10]=${TRT10_BINDINGS:-tensorrt-cu12-bindings==10.16.1.11}
  [11]=${TRT11_BINDINGS:-tensorrt-cu13-bindings==11.4.0.106}
)
[ -x "$MYPY" ] || { echo "no $MYPY: run scripts/setup.sh first (mypy is in the dev extra)" >&2; exit 2; }

status=0
for major in 10 11; do
  dir=.tools/trt-stubs/$major
  if [ ! -f "$dir/typings/tensorrt/__init__.pyi" ]; then
    rm -rf "$dir"
    bash scripts/trt-stubs.sh "$dir" "${SPECS[$major]}" >&2
  fi
  # Our own config, so that a missing stub is an error (the project's config ignores missing
  # imports), the stubs' own quirks are not reported, and only the backend's files are checked.
  cat > "$dir/mypy.ini" <<'INI'
[mypy]
python_version = 3.11
ignore_missing_imports = True
follow_imports = silent
disallow_untyped_defs = True
warn_redundant_casts = True
warn_return_any = True
[mypy-tensorrt,tensorrt.*]
ignore_missing_imports = False
[mypy-tensorrt_bindings.*,tensorrt.*]
ignore_errors = True
INI
  echo "== TensorRT $major.x (${SPECS[$major]})"
  MYPYPATH="$dir/typings" "$MYPY" --config-file "$dir/mypy.ini" \
    --cache-dir ".mypy_cache/trt$major" "${FILES[@]}" || status=1
done
exit $status
