#!/usr/bin/env bash
# Builds (once) and prints the path of a virtualenv cached outside the clone,
# keyed by a hash of the requirements files, so CI and later work reuse it.
# Usage: scripts/venv.sh            -> prints the venv path
#        scripts/venv.sh CMD ARGS   -> runs CMD inside the venv
# LOGBERT_VENV_FLAVOUR=serving-cpu builds what the CPU image installs (no torch, onnxruntime CPU)
# instead of the full development environment.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${LOGBERT_VENV_CACHE:-$HOME/.cache/logbert-stream}"
python="${LOGBERT_PYTHON:-python3}"
flavour="${LOGBERT_VENV_FLAVOUR:-dev}"
key=$(cat "$root"/requirements*.txt | { cat; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)
venv="$cache/venv-$key"
if [ "$flavour" != dev ]; then
  key=$( { echo "$key $flavour"; cat "$root/deploy/cpu-requirements.sh"; } | sha256sum | cut -c1-16)
  venv="$cache/venv-$flavour-$key"
fi
mkdir -p "$cache"
exec 9>"$venv.lock"
flock 9  # one build at a time; a second caller waits, then reuses it
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  echo "[venv] building $venv (the dev flavour downloads torch, about 3 GB; later runs reuse it)" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  case "$flavour" in
    dev) "$venv/bin/python" -m pip install --progress-bar off -r "$root/requirements-dev.txt" >&2 ;;
    serving-cpu)
      sh "$root/deploy/cpu-requirements.sh" "$root/requirements.txt" > "$venv/requirements-cpu.txt"
      "$venv/bin/python" -m pip install --progress-bar off -r "$venv/requirements-cpu.txt" >&2 ;;
    *) echo "[venv] unknown LOGBERT_VENV_FLAVOUR=$flavour (dev or serving-cpu)" >&2; exit 2 ;;
  esac
  touch "$venv/.complete"
fi
flock -u 9
if [ $# -eq 0 ]; then
  echo "$venv"
else
  export PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
  cd "$root"
  exec "$@"
fi
