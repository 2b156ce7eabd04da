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


def test_the_gpu_check_script_runs_offline_with_a_given_python(trained_model, tmp_path):
    """LOGBERT_GPU_CHECK_PYTHON: a GPU image that cannot reach PyPI runs the check with its own
    Python and a model trained elsewhere; without a model it says why and stops."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "nvidia-smi").write_text("#!/bin/sh\necho 'stand-in GPU, 0 MiB, 0'\n")
    (fake_bin / "nvidia-smi").chmod(0o755)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "LOGBERT_GPU_CHECK_PYTHON": sys.executable,
           "LOGBERT_VENV_CACHE": str(tmp_path / "no-venv-here")}  # fmt: skip
    command = ["bash", "bench/gpu_check.sh", str(trained_model), "--device", "cpu", "--sequences", "16",
               "--batches", "8", "--seconds", "0.05"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "provider in use: CPUExecutionProvider" in done.stdout
    assert not (tmp_path / "no-venv-here").exists()  # no virtualenv was built
    refused = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "give a trained MODEL_DIR" in refused.stderr


def test_the_gpu_carry_keeps_parts_and_refuses_a_wheel_joined_from_the_wrong_ones(tmp_path):
    """bench/gpu_carry.sh: each device call keeps the part it carried; the last joins them and checks
    the whole wheel's checksum before installing anything, so a lost or stale part is named, not installed."""
    import hashlib

    carry, store = tmp_path / "carry", tmp_path / "store"
    (carry / "wheels").mkdir(parents=True)
    wheel = bytes(range(256)) * 1000
    for n, start in enumerate(range(0, len(wheel), 100_000)):
        (carry / f"part-{n:02d}").write_bytes(wheel[start : start + 100_000])
    (carry / "wheels" / "onnxruntime-gpu.name").write_text("onnxruntime_gpu-0-cp312-cp312-any.whl\n")
    (carry / "wheels" / "onnxruntime-gpu.sha256").write_text(hashlib.sha256(wheel).hexdigest() + "\n")
    env = {"PATH": "/usr/bin:/bin", "LOGBERT_GPU_CARRY_DIR": str(carry), "LOGBERT_GPU_CARRY_STORE": str(store)}

    def carry_step(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "bench/gpu_carry.sh", *args], cwd=ROOT, env=env, capture_output=True, text=True)

    for n in ("00", "01"):
        assert carry_step("take", n).returncode == 0
    assert "held: part-00 part-01" in carry_step("take", "01").stdout
    missing = carry_step("take", "07")
    assert missing.returncode == 2 and "part-07 did not travel" in missing.stderr
    short = carry_step("check")
    assert short.returncode == 2 and "does not match its checksum" in short.stderr, short.stderr
    assert carry_step("take", "02").returncode == 0
    joined = carry_step("check")  # the wheel is whole now: it goes on to pip, which refuses this fake one
    assert "does not match its checksum" not in joined.stderr
    assert (store / "onnxruntime_gpu-0-cp312-cp312-any.whl").read_bytes() == wheel


def test_the_long_runs_plot_their_samples(tmp_path):
    """bench/soak.py and bench/pipeline.py's latency run draw what they measured (soak.png, latency.png)."""
    from bench.plots import plot_latency, plot_soak

    samples = [{"t": 15 * i, "rss_mib": 110 + min(i, 28), "lag": 1400 + 10 * (i % 5)} for i in range(1, 41)]
    plot_soak(samples, 60, "soak", tmp_path / "soak.png")
    points = [(i / 10, 0.1 + (i % 97) / 200) for i in range(600)]
    plot_latency(points, 0.3, 0.58, 1.0, "latency", tmp_path / "latency.png")
    for name in ("soak.png", "latency.png"):
        image = (tmp_path / name).read_bytes()
        assert image.startswith(b"\x89PNG\r\n\x1a\n") and len(image) > 10_000, name
