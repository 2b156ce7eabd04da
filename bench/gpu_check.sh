#!/usr/bin/env bash
# The CUDA check, on a machine with an NVIDIA GPU (a few minutes once the virtualenv exists):
#   bench/gpu_check.sh [MODEL_DIR]
# Builds the development virtualenv (scripts/venv.sh: onnxruntime-gpu, and torch for training),
# trains a small model on generated HDFS-like logs when no model directory is given, then runs
# bench/gpu_check.py: CUDA provider confirmed, decisions against the CPU's, fp32/fp16 rates.
# Offline (a GPU image that cannot reach PyPI): LOGBERT_GPU_CHECK_PYTHON=python3 uses that Python
# as it is, with no virtualenv; it needs numpy, onnxruntime-gpu and drain3, and a MODEL_DIR
# trained elsewhere (training needs the full development environment).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || {
  echo "gpu_check: no NVIDIA GPU visible (nvidia-smi failed)" >&2; exit 2; }
model="${1:-}"
if [ -n "${LOGBERT_GPU_CHECK_PYTHON:-}" ]; then
  if [ -z "$model" ]; then
    echo "gpu_check: with LOGBERT_GPU_CHECK_PYTHON, give a trained MODEL_DIR (training needs scripts/venv.sh)" >&2
    exit 2
  fi
  python=("$LOGBERT_GPU_CHECK_PYTHON")
else
  python=(scripts/venv.sh python)
fi
if [ -z "$model" ]; then
  work="${LOGBERT_GPU_CHECK_DIR:-${TMPDIR:-/tmp}/logbert-gpu-check}"
  model="$work/model"
  # the benchmarks' small model (2,000 generated normal blocks), reused when it exists
  mkdir -p "$work"
  "${python[@]}" -m bench.common "$work"
fi
"${python[@]}" bench/gpu_check.py --model "$model" "${@:2}"
