"""What several benchmarks share: a model trained on generated normal HDFS-like logs."""

from __future__ import annotations

from pathlib import Path


def generated_model(out: Path) -> Path:
    """out/model, trained once on 2,000 generated normal blocks (reused when it exists)."""
    from commands.train import TrainRequest, run_train
    from loggen.hdfs import generate_hdfs
    from sequences.readers import ReadOptions

    model = out / "model"
    if not (model / "config.json").exists():
        print("training the benchmark model ...", flush=True)
        train_log = out / "train.log"
        train_lines, _ = generate_hdfs(sessions=2000, anomaly_rate=0.0, seed=7)
        train_log.write_text("\n".join(train_lines) + "\n")
        run_train(TrainRequest(train_log, ReadOptions("hdfs"), model, preset="small", progress=False))
    return model
