#!/usr/bin/env bash
# Trains and evaluates on the real labelled splits; every threshold comes from normal validation data.
# Usage: scripts/evaluate_datasets.sh [OUT_DIR] [PRESET]   (datasets from LOGBERT_DATASETS)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
D="${LOGBERT_DATASETS:-$(cd .. && pwd)/shared/datasets}"
out="${1:-evaluation-output}"
preset="${2:-small}"
mkdir -p "$out"
run() { scripts/venv.sh python faust_app.py "$@" --no-progress; }

echo "== HDFS_100k (deeploglizer split: train normals -> test)"
run train --input "$D/hdfs/HDFS_100k_deeploglizer_sessions.csv" --format sequences-csv --split train \
  --templates "$D/hdfs/HDFS_100k_deeploglizer_templates.csv" --preset "$preset" --out "$out/hdfs100k" --force
run evaluate --model "$out/hdfs100k" --input "$D/hdfs/HDFS_100k_deeploglizer_sessions.csv" --split test \
  --json "$out/hdfs100k.json" --plot "$out/hdfs100k.png"

echo "== HDFS_20000 raw (first 60% of blocks, normal only -> rest)"
run train --input "$D/hdfs/HDFS_20000.log" --format hdfs --labels "$D/hdfs/HDFS_20000_anomaly_label.csv" \
  --range 0:0.6 --preset "$preset" --out "$out/hdfs20k" --force
run evaluate --model "$out/hdfs20k" --input "$D/hdfs/HDFS_20000.log" --labels "$D/hdfs/HDFS_20000_anomaly_label.csv" \
  --range 0.6:1 --json "$out/hdfs20k.json" --plot "$out/hdfs20k.png"

echo "== DeepLog split (hdfs_train -> recall on hdfs_test_abnormal)"
run train --input "$D/deeplog-hdfs/hdfs_train" --format deeplog --preset "$preset" --out "$out/deeplog" --force
run evaluate --model "$out/deeplog" --input "$D/deeplog-hdfs/hdfs_test_abnormal" --label-all anomalous \
  --json "$out/deeplog.json"

echo "== BGL_100k structured (5-min windows, 1-min step; first 60% normal -> rest)"
run train --input "$D/bgl/BGL_100k_structured.csv" --format bgl-structured --range 0:0.6 --preset "$preset" \
  --out "$out/bgl100k" --force
run evaluate --model "$out/bgl100k" --input "$D/bgl/BGL_100k_structured.csv" --range 0.6:1 \
  --json "$out/bgl100k.json" --plot "$out/bgl100k.png"
