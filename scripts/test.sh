#!/usr/bin/env bash
# The one test command (README): a virtual environment with the CPU build of torch, the package, and the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${DVMAP_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
fi
pip_install() {  # quiet unless it fails; the log stays in the venv
  "$VENV/bin/python" -m pip --disable-pip-version-check install -c ci/constraints-cpu.txt "$@" >"$VENV/pip.log" 2>&1 \
    || { grep -v '^WARNING: Location' "$VENV/pip.log" | tail -40; exit 1; }
}
# CPU torch first, from the pinned constraint: nothing later may swap in a CUDA build.
echo "installing into $VENV (CPU torch, verl, dvmap-verl[test]) ..."
pip_install torch
pip_install -e ".[test]"
"$VENV/bin/python" - <<'PY'
import torch
assert torch.version.cuda is None, f"CUDA torch {torch.__version__} in the test venv; the CPU build is required"
PY
# One OpenMP/BLAS thread per process (tests/conftest.py sets the same default): on 2 cores, threads that spin while
# Ray workers or subprocesses hold the other core cost far more than they give to the tiny test models.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "$VENV/bin/python" -m pytest -q "$@"
