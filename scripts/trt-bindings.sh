#!/usr/bin/env bash
# NVIDIA's real TensorRT Python bindings of one version, importable on a machine without
# TensorRT libraries (no GPU, no libnvinfer): the official bindings wheel is downloaded from
# the package registry and unpacked, and empty stand-ins for libnvinfer, its plugin library
# and the ONNX parser library satisfy the dynamic loader. The module then imports with its
# real enums, classes and methods; its factories (Builder, Runtime, OnnxParser) create nothing.
# Used by trt-stubs.sh (type stubs for mypy) and by the tests' TensorRT stand-in (names).
#
#   trt-bindings.sh OUT_DIR BINDINGS_SPEC      e.g. tensorrt-cu12-bindings==10.16.1.11
# Writes OUT_DIR/site/<package>/ and OUT_DIR/module (the importable module's dotted name).
# Needs: python3 with pip (the venv's by default), gcc, readelf, access to the registry.
set -euo pipefail
OUT=$(mkdir -p "$1" && cd "$1" && pwd); SPEC=$2
PY=${PYTHON:-python3}
PYV=$($PY -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
$PY -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$W/whl" "$SPEC" 2>&1 \
  | grep -v -e WARNING -e 'is ignored' || true
ls "$W"/whl/*.whl >/dev/null 2>&1 || { echo "could not download $SPEC" >&2; exit 1; }
rm -rf "$OUT/site" && mkdir -p "$OUT/site" && (cd "$OUT/site" && "$PY" -m zipfile -e "$W"/whl/*.whl .)
PKG=$(cd "$OUT/site" && ls -d tensorrt*bindings | head -1)
SO=$(ls "$OUT/site/$PKG"/tensorrt*.so | head -1)
MAJOR=$(readelf -d "$SO" | sed -n 's/.*libnvinfer\.so\.\([0-9]*\).*/\1/p' | head -1)
cat > "$W/stub.c" <<'C'
#include <stddef.h>
void* createInferBuilder_INTERNAL(void* l,int v){return NULL;}
void* createInferRefitter_INTERNAL(void* e,void* l,int v){return NULL;}
void* createInferRuntime_INTERNAL(void* l,int v){return NULL;}
void* createNvOnnxParserRefitter_INTERNAL(void* r,void* l,int v){return NULL;}
void* createNvOnnxParser_INTERNAL(void* n,void* l,int v){return NULL;}
void* getBuilderPluginRegistry(int a){return NULL;}
int getNvOnnxParserVersion(void){return 0;}
void* getPluginRegistry(void){return NULL;}
int initLibNvInferPlugins(void* l,const char* ns){return 0;}
C
echo 'void _e(void){}' > "$W/e.c"
gcc -shared -fPIC -o "$OUT/site/$PKG/libnvinfer.so.$MAJOR" "$W/stub.c"
gcc -shared -fPIC -o "$OUT/site/$PKG/libnvinfer_plugin.so.$MAJOR" "$W/e.c"
gcc -shared -fPIC -o "$OUT/site/$PKG/libnvonnxparser.so.$MAJOR" "$W/e.c"
MOD=$(basename "$SO" .so); MOD=${MOD%%.*}
echo "$PKG.$MOD" > "$OUT/module"
echo "$SPEC" > "$OUT/spec"
echo "TensorRT bindings $SPEC in $OUT/site (module $PKG.$MOD)"
