"""logbert-stream: the Faust app and its commands.

    python faust_app.py generate --kind hdfs --out data/gen
    python faust_app.py train    --input data/gen/hdfs.log --format hdfs --labels data/gen/hdfs_labels.csv --out model
    python faust_app.py evaluate --model model --input data/gen/hdfs.log --format hdfs --labels data/gen/hdfs_labels.csv
    python faust_app.py demo

The commands' logic lives in `commands/` (plain functions); this file only wires it to Faust's CLI.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import faust
from faust.cli import option

from commands.cli_options import (
    evaluate_options,
    generate_options,
    read_options_from_flags,
    train_options,
)

app = faust.App(
    os.environ.get("LOGBERT_APP_ID", "logbert"),  # the consumer group
    broker="kafka://" + os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
    autodiscover=False,
)


@app.command(*train_options)
async def train(self, **flags) -> None:
    """Train LogBERT on normal sequences and write a calibrated model directory."""
    from commands.train import request_from_flags, run_train, summarise

    result = run_train(request_from_flags(flags))
    self.say(summarise(result))


@app.command(*evaluate_options)
async def evaluate(self, **flags) -> None:
    """Score labelled data with a model: honest figures beside two baseline rules."""
    from commands.evaluate import request_from_flags, run_evaluate

    run_evaluate(request_from_flags(flags))


@app.command(*generate_options)
async def generate(self, **flags) -> None:
    """Write synthetic HDFS-like or BGL-like logs with labelled, injected anomalies."""
    from commands.generate import run_generate

    self.say(run_generate(**flags))


@app.command(
    option(
        "--out",
        "demo_dir",
        default=os.environ.get("LOGBERT_DEMO_DIR", "demo-output"),
        type=click.Path(),
        help="Where the demo writes its logs and model (env LOGBERT_DEMO_DIR).",
    ),  # fmt: skip
    option("--retrain/--reuse", default=False, help="Retrain even if a cached demo model exists."),
)
async def demo(self, demo_dir: str, retrain: bool) -> None:
    """Generate logs, train a small model (or reuse it), evaluate, and show what it caught."""
    from commands.demo import run_demo

    run_demo(Path(demo_dir), retrain=retrain)


__all__ = ["app", "read_options_from_flags"]

if __name__ == "__main__":
    app.main()
