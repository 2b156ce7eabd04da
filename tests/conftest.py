"""Shared fixtures: real datasets (skipped with a reason when absent) and one small trained model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("LOGBERT_DATASETS", ROOT.parent / "shared" / "datasets"))


def dataset(relative: str) -> Path:
    path = DATASETS / relative
    if not path.exists():
        pytest.skip(f"real log data not found at {path} (set LOGBERT_DATASETS to the datasets folder)")
    return path


@pytest.fixture(scope="session")
def generated_hdfs(tmp_path_factory) -> tuple[Path, Path]:
    from commands.generate import run_generate

    out = tmp_path_factory.mktemp("gen")
    run_generate("hdfs", str(out), sessions=1500, minutes=0, anomaly_rate=0.06, seed=11)
    return out / "hdfs.log", out / "hdfs_labels.csv"


@pytest.fixture(scope="session")
def trained_model(generated_hdfs, tmp_path_factory) -> Path:
    """A small model trained on the first 60% of generated HDFS-like blocks (normal only)."""
    from commands.train import TrainRequest, run_train
    from sequences.readers import ReadOptions

    log, labels = generated_hdfs
    out = tmp_path_factory.mktemp("model") / "m"
    run_train(
        TrainRequest(log, ReadOptions("hdfs", labels=labels), out, preset="small", fraction=(0.0, 0.6), progress=False)
    )
    return out
