"""Benchmark scripts that no CI machine can run for real still run their steps (no timings checked)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def test_the_gpu_check_runs_its_steps_on_the_cpu(trained_model):
    """No GPU here: `--device cpu` runs the same provider check, decision comparison, fp16 conversion
    and I/O-bound rates on the CPU, so the script cannot rot unseen between GPU runs."""
    command = [sys.executable, "bench/gpu_check.py", "--model", str(trained_model), "--device", "cpu",
               "--sequences", "48", "--batches", "8", "--seconds", "0.05"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "no figure here is a GPU figure" in out
    assert "provider in use: CPUExecutionProvider" in out
    assert "decisions on 48 HDFS-length sequences: 0 differ between CPU and CPU" in out
    assert re.search(r"^fp16: \d+ decisions differ from CPU fp32$", out, re.M)
    assert re.search(r"^tf32: \d+ decisions differ from CPU fp32$", out, re.M)
    assert re.search(r"^\s+8\s+\d+(\s+\d+){5} \(\d+ distinct\)$", out, re.M), out  # fp32 tf32 fp16, 2 scorers
