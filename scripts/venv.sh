#!/usr/bin/env bash
# Builds (once) and prints the path of a virtualenv cached outside the clone,
# keyed by a hash of the requirements files, so CI and later work reuse it.
# Usage: scripts/venv.sh            -> prints the venv path
#        scripts/venv.sh CMD ARGS   -> runs CMD inside the venv
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${LOGBERT_VENV_CACHE:-$HOME/.cache/logbert-stream}"
python="${LOGBERT_PYTHON:-python3}"
key=$(cat "$root"/requirements*.txt | { cat; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)
venv="$cache/venv-$key"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  echo "[venv] building $venv (first run downloads torch, about 3 GB; later runs reuse it)" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install --progress-bar off -r "$root/requirements-dev.txt" >&2
  touch "$venv/.complete"
fi
if [ $# -eq 0 ]; then
  echo "$venv"
else
  export PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
  cd "$root"
  exec "$@"
fi
