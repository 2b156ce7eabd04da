#!/bin/sh
# The serving requirements with ONNX Runtime's CPU build in place of onnxruntime-gpu (same version
# and API). Used by deploy/Dockerfile and by scripts/venv.sh's serving-cpu flavour, so the CPU
# image and the test that stands in for it install the same thing.
# Usage: deploy/cpu-requirements.sh [requirements.txt] > requirements-cpu.txt
set -eu
sed 's/^onnxruntime-gpu==/onnxruntime==/' "${1:-requirements.txt}"
