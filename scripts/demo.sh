#!/usr/bin/env bash
# The whole DVMap pipeline on a CPU (synthetic data, tiny model): installs what it needs into .venv, then
# `dvmap demo`. Usage: ./scripts/demo.sh [OUT_DIR] (default demo_out/)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${DVMAP_VENV:-.venv}"
OUT="${1:-demo_out}"
if [ ! -x "$VENV/bin/dvmap" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
  echo "installing into $VENV (CPU torch, verl, dvmap-verl) ..."
  "$VENV/bin/python" -m pip --disable-pip-version-check install -q -c ci/constraints-cpu.txt torch >"$VENV/pip.log" 2>&1
  "$VENV/bin/python" -m pip --disable-pip-version-check install -q -c ci/constraints-cpu.txt -e ".[test]" \
    >>"$VENV/pip.log" 2>&1 || { tail -40 "$VENV/pip.log"; exit 1; }
fi
exec "$VENV/bin/dvmap" demo --out "$OUT"
