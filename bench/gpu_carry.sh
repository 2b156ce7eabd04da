#!/usr/bin/env bash
# The CUDA check on a lent GPU machine that cannot reach PyPI. Its image has Python 3.12, numpy,
# onnx and CUDA 13, but only the CPU onnxruntime; the onnxruntime-gpu wheel (about 255 MB) is larger
# than one device call carries (64 MiB), so it travels in parts, one call each, on a warm machine.
#
#   bench/gpu_carry.sh prepare        here: wheels for the GPU machine's Python, onnxruntime-gpu cut
#                                     into parts, a small model, all under .gpu-carry/ (git-ignored);
#                                     prints the device calls to make
#   bench/gpu_carry.sh take N         there, one call per part (carry .gpu-carry/part-N): keeps it in
#                                     $LOGBERT_GPU_CARRY_STORE (/tmp/logbert-gpu-carry)
#   bench/gpu_carry.sh check [ARGS]   there, in the call with the last part (carry it, .gpu-carry/wheels
#                                     and .gpu-carry/model): joins and verifies the wheel, installs it
#                                     beside drain3, runs bench/gpu_check.sh offline with ARGS
#
# LOGBERT_GPU_CARRY_PYTHON_VERSION (3.12) and LOGBERT_GPU_CARRY_PYTHON (python3) name the GPU
# machine's Python; set them to this machine's to rehearse every step here with `check --device cpu`
# (and a stand-in nvidia-smi on PATH). LOGBERT_GPU_CARRY_DIR moves .gpu-carry.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
carry="${LOGBERT_GPU_CARRY_DIR:-.gpu-carry}"  # relative to the repository root
store="${LOGBERT_GPU_CARRY_STORE:-/tmp/logbert-gpu-carry}"
part_size=58m  # a part and the working tree (under 1 MiB) fit one call's 64 MiB
python_version="${LOGBERT_GPU_CARRY_PYTHON_VERSION:-3.12}"
python="${LOGBERT_GPU_CARRY_PYTHON:-python3}"

pinned() {  # the version requirements.txt pins, e.g. pinned onnxruntime-gpu -> 1.31.1
  sed -n "s/^$1==\([^ ]*\).*/\1/p" requirements.txt
}

prepare() {
  rm -rf "$carry" && mkdir -p "$carry/wheels"
  local tag="cp${python_version/./}"
  scripts/venv.sh python -m pip download -q --no-deps --only-binary=:all: --python-version "$python_version" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$carry" \
    "onnxruntime-gpu==$(pinned onnxruntime-gpu)"
  local wheel
  wheel="$(ls "$carry"/onnxruntime_gpu-*-"$tag"-*.whl)"
  # drain3 and the versions it pins, as the development virtualenv has them (pure Python)
  scripts/venv.sh python -m pip wheel -q --no-deps -w "$carry/wheels" "drain3==$(pinned drain3)" \
    "jsonpickle==$(scripts/venv.sh python -c 'import jsonpickle; print(jsonpickle.__version__)')" \
    "cachetools==$(scripts/venv.sh python -c 'import cachetools; print(cachetools.__version__)')"
  basename "$wheel" > "$carry/wheels/onnxruntime-gpu.name"
  sha256sum "$wheel" | cut -d' ' -f1 > "$carry/wheels/onnxruntime-gpu.sha256"
  split -b "$part_size" -d -a 2 "$wheel" "$carry/part-"
  rm "$wheel"
  # the benchmarks' small model (2,000 generated normal blocks) in $carry/model
  scripts/venv.sh python -m bench.common "$carry"
  rm -f "$carry/train.log"
  local parts=("$carry"/part-*) last
  last="${parts[-1]}"
  echo
  echo "Ready in $carry: ${#parts[@]} parts of $(basename "$wheel"). One warm machine, calls back to back"
  echo "(it goes back 30 s after a call). Device calls, in order:"
  for part in "${parts[@]:0:${#parts[@]}-1}"; do
    echo "  run  carry [\"$part\"]  command: bash bench/gpu_carry.sh take ${part##*-}"
  done
  echo "  run  carry [\"$last\", \"$carry/wheels\", \"$carry/model\"]" \
    " command: bash bench/gpu_carry.sh take ${last##*-} && bash bench/gpu_carry.sh check"
}

take() {
  local part="$carry/part-$1"
  [ -f "$part" ] || { echo "gpu_carry: $part did not travel with this call (carry it)" >&2; exit 2; }
  mkdir -p "$store" && cp "$part" "$store/"
  echo "gpu_carry: kept $(basename "$part") ($(du -h "$part" | cut -f1)); held: $(cd "$store" && echo part-*)"
}

check() {
  local name wheel
  name="$(cat "$carry/wheels/onnxruntime-gpu.name")"
  wheel="$store/$name"
  cat "$store"/part-* > "$wheel"
  if [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$(cat "$carry/wheels/onnxruntime-gpu.sha256")" ]; then
    echo "gpu_carry: the joined $name does not match its checksum: a part is missing or stale" \
      "(held: $(cd "$store" && echo part-*))" >&2
    exit 2
  fi
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$store/site" "$wheel" "$carry"/wheels/*.whl
  # Ahead of the image's CPU onnxruntime, which shares the module name.
  PYTHONPATH="$store/site${PYTHONPATH:+:$PYTHONPATH}" LOGBERT_GPU_CHECK_PYTHON="$python" \
    bash bench/gpu_check.sh "$carry/model" "$@"
}

case "${1:-}" in
  prepare) prepare ;;
  take) [ -n "${2:-}" ] || { echo "usage: bench/gpu_carry.sh take N" >&2; exit 2; }; take "$2" ;;
  check) shift; check "$@" ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
