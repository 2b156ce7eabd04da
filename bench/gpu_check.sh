#!/usr/bin/env bash
# The CUDA check, on a machine with an NVIDIA GPU (a few minutes once the virtualenv exists):
#   bench/gpu_check.sh [MODEL_DIR]
# Builds the development virtualenv (scripts/venv.sh: onnxruntime-gpu, and torch for training),
# trains a small model on generated HDFS-like logs when no model directory is given, then runs
# bench/gpu_check.py: CUDA provider confirmed, decisions against the CPU's, fp32/fp16 rates.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || {
  echo "gpu_check: no NVIDIA GPU visible (nvidia-smi failed)" >&2; exit 2; }
model="${1:-}"
if [ -z "$model" ]; then
  work="${LOGBERT_GPU_CHECK_DIR:-${TMPDIR:-/tmp}/logbert-gpu-check}"
  model="$work/model"
  if [ ! -f "$model/config.json" ]; then
    scripts/venv.sh python faust_app.py generate --kind hdfs --out "$work/gen" --sessions 2000 --anomaly-rate 0.0
    scripts/venv.sh python faust_app.py train --input "$work/gen/hdfs.log" --format hdfs --out "$model"
  fi
fi
scripts/venv.sh python bench/gpu_check.py --model "$model" "${@:2}"
