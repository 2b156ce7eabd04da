"""What several benchmarks share: generated HDFS-like lines, and a model trained on generated normal ones.

python -m bench.common OUT      trains OUT/model (the shell scripts' small model) unless it exists"""

from __future__ import annotations

import sys
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


def generated_lines(count: int) -> list[str]:
    """`count` generated HDFS-like lines (3% anomalous blocks, seeded), the same for every benchmark
    that uses them, so their sequence counts can be compared (1M lines: 71,712 sequences)."""
    from loggen.hdfs import generate_hdfs

    lines, _ = generate_hdfs(sessions=count // 12 + 500, anomaly_rate=0.03, seed=99)
    if len(lines) < count:
        raise SystemExit(f"the generator gave {len(lines)} lines, fewer than {count}")
    return lines[:count]


if __name__ == "__main__":
    generated_model(Path(sys.argv[1]))
