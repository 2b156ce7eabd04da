#!/usr/bin/env bash
# The README's test command: builds (or reuses) the cached virtualenv, lints, runs the suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/venv.sh ruff check .
scripts/venv.sh ruff format --check .
scripts/venv.sh python -m pytest -q "$@"
