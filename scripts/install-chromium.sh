#!/usr/bin/env bash
# The browser of the UI tests (tests/airflow/test_ui.py): Debian's Chromium, driven by
# Playwright with executable_path (Playwright's own browser download needs a host we cannot
# reach). Installed once with apt; a no-op when it is there.
set -euo pipefail
command -v chromium >/dev/null && exit 0
echo "==> installing chromium (apt)" >&2
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
chromium --version >&2
