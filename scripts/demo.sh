#!/usr/bin/env bash
# The README's main command: builds (or reuses) the cached virtualenv and runs the demo.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
exec scripts/venv.sh python faust_app.py demo "$@"
