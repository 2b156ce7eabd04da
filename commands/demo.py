"""`demo`: the zero-setup tour. Generate logs, train a small model (cached), evaluate on later
blocks, and show per anomaly kind what was injected and what was caught, with explanations."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from commands.common import key_sequences, print_table
from commands.evaluate import EvaluateRequest, run_evaluate
from commands.generate import run_generate
from evaluation.split import select
from models.detector import Detector
from sequences.readers import ReadOptions, read_dataset

DEMO_BLOCKS = 3000
DEMO_SEED = 7
TRAIN_RANGE = (0.0, 0.6)
TEST_RANGE = (0.6, 1.0)


def run_demo(workdir: Path, retrain: bool = False) -> dict:
    from commands.train import TrainRequest, run_train, summarise

    workdir.mkdir(parents=True, exist_ok=True)
    data_dir, model_dir = workdir / "logs", workdir / "model"
    log, labels = data_dir / "hdfs.log", data_dir / "hdfs_labels.csv"
    print("1/4  generating HDFS-like logs with injected anomalies")
    print("     " + run_generate("hdfs", str(data_dir), DEMO_BLOCKS, 0, 0.05, DEMO_SEED))

    read = ReadOptions("hdfs", labels=labels)
    if retrain or not (model_dir / "config.json").exists():
        print("2/4  training a small LogBERT on the first 60% of blocks (normal ones only)")
        result = run_train(TrainRequest(log, read, model_dir, "small", fraction=TRAIN_RANGE, force=True))
        print("     " + summarise(result).replace("\n", "\n     "))
    else:
        print(f"2/4  reusing the model in {model_dir} (pass --retrain to train again)")

    print("3/4  evaluating on the later 40% of blocks (thresholds were chosen on normal validation data)\n")
    report = run_evaluate(
        EvaluateRequest(
            model_dir,
            log,
            read,
            fraction=TEST_RANGE,
            json_out=workdir / "report.json",
            plot_out=workdir / "precision_recall.png",
            progress=False,
        )  # fmt: skip
    )
    print("\n4/4  what was injected and what was caught, by kind")
    by_kind = show_by_kind(model_dir, log, labels)
    print(f"\nfiles: {workdir}/report.json, {workdir}/precision_recall.png, {model_dir}/loss_curve.png")
    return {"report": report, "by_kind": by_kind}


def show_by_kind(model_dir: Path, log: Path, labels: Path, examples: int = 3) -> dict:
    detector = Detector.load(model_dir, provider="cpu")
    kinds = {row["BlockId"]: row["Kind"] for row in csv.DictReader(open(labels, newline=""))}
    data = read_dataset(log, ReadOptions("hdfs"))
    specs = select(data.sequences, TEST_RANGE, None)
    scores = detector.score(key_sequences(data, specs, detector.vocabulary))
    injected, caught = Counter(), Counter()
    shown = 0
    for spec, score in zip(specs, scores):
        kind = kinds.get(spec.id, "unknown")
        flagged = detector.is_anomalous(score)
        injected[kind] += 1
        caught[kind] += flagged
        if flagged and kind != "normal" and shown < examples:
            shown += 1
            print(f"\n  ALERT {spec.id} (injected: {kind}), {score.length} lines, "
                  f"{score.misses}/{score.masked} keys missed, max surprise {score.max_surprise:.1f}")  # fmt: skip
            for miss in detector.explain(score)[:2]:
                print(f"    line {miss['position'] + 1}: saw      {miss['actual']}")
                print(f"             expected {' | '.join(miss['expected'][:3])}")
    rows = [["kind", "blocks", "flagged", "share"]]
    for kind in sorted(injected, key=lambda k: (k == "normal", k)):
        rows.append([kind, str(injected[kind]), str(caught[kind]), f"{caught[kind] / injected[kind]:.0%}"])
    print()
    print_table(rows)
    return {k: {"blocks": injected[k], "flagged": caught[k]} for k in injected}


if __name__ == "__main__":
    print(json.dumps(run_demo(Path("demo-output"))["by_kind"], indent=1))
