#!/usr/bin/env bash
# Build the standalone app (dist/photocull/) with PyInstaller and smoke-test it.
#
#   scripts/build_bundle.sh              build (CPU bundle) + smoke test
#   scripts/build_bundle.sh --test-only  smoke-test an existing dist/photocull
#   scripts/build_bundle.sh --build-only build only (tests/test_bundle.py then runs in the normal suite)
#   PHOTOCULL_BUNDLE_CUDA=1 scripts/build_bundle.sh   keep the CUDA libraries (GPU-capable, ~1.4 GB more)
#   PYTHON=/path/to/python scripts/build_bundle.sh    build with another interpreter (default .venv/bin/python)
#
# Prints build time, bundle size and the smoke test's start-up timings.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

if [ "${1:-}" != "--test-only" ]; then
  "$PY" -m PyInstaller --version >/dev/null 2>&1 || "$PY" -m pip install -q "pyinstaller>=6.11"
  rm -rf build/build dist/photocull
  t0=$(date +%s)
  "$PY" -m PyInstaller --noconfirm --log-level WARN build.spec
  echo "bundle: built in $(( $(date +%s) - t0 )) s"
  rm -rf build/build  # the work dir (build/<spec name>: PYZ, PKGs, ~400 MB); next build is a full one anyway
fi
[ -x dist/photocull/photocull-cli ] || { echo "bundle: dist/photocull/photocull-cli missing" >&2; exit 1; }
echo "bundle: size $(du -sh dist/photocull | cut -f1) ($(find dist/photocull -type f | wc -l) files)"
[ "${1:-}" = "--build-only" ] && exit 0
t0=$(date +%s)
QT_QPA_PLATFORM=offscreen "$PY" -m pytest -q -s -p no:cacheprovider tests/test_bundle.py
echo "bundle: smoke test took $(( $(date +%s) - t0 )) s"
