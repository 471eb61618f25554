#!/usr/bin/env bash
# Set up the environment, then run what CI checks: lint, format and type checks (scripts/lint.sh), then the
# whole test suite (doctests, docs code blocks and the API-reference build included). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/lint.sh
exec .venv/bin/python -m pytest "$@"
