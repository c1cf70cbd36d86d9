#!/usr/bin/env bash
# The one test command (README): a virtual environment with the CPU build of torch, the package, and the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${DVMAP_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
# CPU torch first, from the pinned constraint: nothing later may swap in a CUDA build.
"${PIP[@]}" install -c ci/constraints-cpu.txt torch
"${PIP[@]}" install -c ci/constraints-cpu.txt -e ".[test]"
"$VENV/bin/python" - <<'PY'
import torch
assert torch.version.cuda is None, f"CUDA torch {torch.__version__} in the test venv; the CPU build is required"
PY
exec "$VENV/bin/python" -m pytest -q "$@"
