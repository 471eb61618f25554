#!/usr/bin/env bash
# Build the API reference from the docstrings: build/api/index.html. Offline (no intersphinx); every
# warning, including a cross-reference that does not resolve, fails the build (-W -n). The Sphinx
# configuration and the page generator are docs/api/conf.py. Extra arguments go to sphinx-build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OMP_NUM_THREADS=1 .venv/bin/python -m sphinx -W --keep-going -n -E -q -b html docs/api build/api "$@"
echo "API reference: build/api/index.html"
