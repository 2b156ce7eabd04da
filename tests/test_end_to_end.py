"""Train on generated logs, detect on later ones: precision and recall bars, through the real commands."""

import json
import os
import subprocess
import sys

import pytest

from commands.evaluate import EvaluateRequest, run_evaluate
from sequences.readers import ReadOptions
from tests.conftest import ROOT


def test_train_and_detect_on_generated_logs(trained_model, generated_hdfs, tmp_path):
    log, labels = generated_hdfs
    report = run_evaluate(
        EvaluateRequest(
            trained_model,
            log,
            ReadOptions("hdfs", labels=labels),
            fraction=(0.6, 1.0),
            json_out=tmp_path / "report.json",
            plot_out=tmp_path / "pr.png",
            progress=False,
        )
    )
    assert report["sequences"] == 600
    assert report["precision"] >= 0.8, report
    assert report["recall"] >= 0.8, report
    # the model must beat both trivial rules on injected anomalies of every kind
    assert report["f1"] > max(b["f1"] for b in report["baselines"].values())
    saved = json.loads((tmp_path / "report.json").read_text())
    for key in ("precision", "recall", "f1", "tp", "fp", "tn", "fn", "sequences", "short_sequences", "threshold"):
        assert key in saved
    assert "oracle" in saved["best_f1_over_thresholds"]["note"]
    assert (tmp_path / "pr.png").stat().st_size > 1000


def test_model_directory_holds_plain_files_only(trained_model):
    names = sorted(p.name for p in trained_model.iterdir())
    assert names == [
        "baselines.json",
        "calibration.json",
        "config.json",
        "loss_curve.png",
        "metrics.json",
        "model.onnx",
        "templates.json",
    ]
    config = json.loads((trained_model / "config.json").read_text())
    for key in ("model", "training", "input", "detection", "centre", "data", "version"):
        assert key in config
    assert len(config["data"]["fingerprint"]) == 64
    assert config["detection"]["miss_ratio_threshold"] >= 0
    assert config["input"]["grouping"] == "session"


@pytest.mark.slow
def test_command_line_generate_train_evaluate(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "faust_app.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    run("generate", "--kind", "hdfs", "--out", str(tmp_path / "gen"), "--sessions", "600", "--seed", "3")
    log, labels = tmp_path / "gen" / "hdfs.log", tmp_path / "gen" / "hdfs_labels.csv"
    out = run("train", "--input", str(log), "--format", "hdfs", "--labels", str(labels), "--range", "0:0.6",
              "--out", str(tmp_path / "model"), "--epochs", "3", "--no-progress")  # fmt: skip
    assert "threshold" in out
    out = run("evaluate", "--model", str(tmp_path / "model"), "--input", str(log), "--labels", str(labels),
              "--range", "0.6:1", "--json", str(tmp_path / "r.json"), "--no-progress")  # fmt: skip
    assert "baseline: unseen template" in out and "oracle" in out
    assert json.loads((tmp_path / "r.json").read_text())["sequences"] == 240


def test_bad_input_gives_a_clear_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "faust_app.py", "train", "--input", str(tmp_path / "missing.log"), "--format", "hdfs",
         "--out", str(tmp_path / "m")],  # fmt: skip
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "missing.log" in done.stderr + done.stdout


def test_the_produce_command_keeps_the_logs_order_through_retries(tmp_path, monkeypatch):
    """A retried request of a producer that is not idempotent can land behind a later one, and
    lines that arrive behind event time split their sessions."""
    import commands.kafka_io as kafka_io
    from streaming.settings import StreamSettings

    configs = []

    class Recording:
        def __init__(self, config: dict) -> None:
            configs.append(config)

        def produce(self, topic, value, on_delivery) -> None:
            on_delivery(None, None)

        def poll(self, timeout) -> int:
            return 0

        def flush(self, timeout) -> int:
            return 0

    log = tmp_path / "lines.log"
    log.write_text("a line\nanother line\n")
    monkeypatch.setattr(kafka_io, "Producer", Recording)
    kafka_io.run_produce(StreamSettings(bootstrap_servers="127.0.0.1:1"), str(log), "logs-raw", 0.0, 1)
    assert configs[0]["enable.idempotence"] is True and configs[0]["bootstrap.servers"] == "127.0.0.1:1"
