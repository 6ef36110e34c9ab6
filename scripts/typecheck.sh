#!/usr/bin/env bash
# mypy on the TensorRT backend against stubs of NVIDIA's real bindings, once per version of
# scripts/trt-versions.txt: the oldest supported 10.x, a recent 10.x and the newest 11.x.
# TensorRT itself cannot be installed without a GPU host, so these stubs are how CI knows our
# calls exist in every version we support. Bindings and stubs are made once into
# .tools/trt-bindings/<version> and .tools/trt-stubs/<version> (delete them to remake them);
# the tests' TensorRT stand-in takes its names from the same bindings.
# Exits non-zero when mypy reports an error against any version.
set -euo pipefail
cd "$(dirname "$0")/.."
MYPY=${MYPY:-.venv/bin/mypy}
PY=${PYTHON:-$PWD/.venv/bin/python}
FILES=(trt_ops/engines/tensorrt/*.py trt_ops/engines/contract.py)
[ -x "$MYPY" ] || { echo "no $MYPY: run scripts/setup.sh first (mypy is in the dev extra)" >&2; exit 2; }

status=0
for spec in $(grep -v '^#' scripts/trt-versions.txt); do
  version=${spec#*==}
  dir=.tools/trt-stubs/$version
  if [ ! -f "$dir/typings/tensorrt/__init__.pyi" ] || [ "$(cat "$dir/spec" 2>/dev/null)" != "$spec" ]; then
    rm -rf "$dir"
    PYTHON="$PY" bash scripts/trt-stubs.sh "$dir" "$spec" ".tools/trt-bindings/$version" >&2
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
  echo "== TensorRT $version ($spec)"
  MYPYPATH="$dir/typings" "$MYPY" --config-file "$dir/mypy.ini" \
    --cache-dir ".mypy_cache/trt-$version" "${FILES[@]}" || status=1
done
exit $status
