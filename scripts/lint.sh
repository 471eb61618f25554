#!/usr/bin/env bash
# Lint, format check and type check (configured in pyproject.toml), with the pinned tools from the [test] extra.
# Runs all three and fails if any failed, so one run shows every problem. Expects .venv (bash scripts/setup.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
echo "== ruff check"
.venv/bin/ruff check . || status=1
echo "== ruff format --check"
.venv/bin/ruff format --check . || status=1
echo "== mypy"
.venv/bin/mypy || status=1
exit "$status"
