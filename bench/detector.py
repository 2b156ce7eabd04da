"""Scorer throughput: the ONNX Runtime scorer against a plain torch-eager run of the same detection
rule on the same trained model, in one run, with the decisions compared.

    scripts/venv.sh python bench/detector.py [--lengths 20,128,512] [--batches 1,8,64,512] [--seconds 1]

Sequences are the generated log's own sessions (the kind the model was trained on), joined and
cut to HDFS-like (20) and BGL-like (128, 512) lengths; --random uses random keys instead, the
worst case for the rule's explanation work (nearly every position a miss)."""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.detection import is_anomalous, score_sequences  # noqa: E402


def train_small_model(out: Path):
    from commands.generate import run_generate
    from commands.train import TrainRequest, run_train
    from sequences.readers import ReadOptions

    run_generate("hdfs", str(out / "gen"), sessions=1500, minutes=0, anomaly_rate=0.05, seed=11)
    request = TrainRequest(out / "gen" / "hdfs.log", ReadOptions("hdfs", labels=out / "gen" / "hdfs_labels.csv"),
                           out / "model", preset="small", fraction=(0.0, 0.6), progress=False)  # fmt: skip
    return run_train(request)["torch_model"], out / "model"


def session_pool(log: Path, detector) -> list[int]:
    """Every session's keys, one after another, without the END/OPEN markers."""
    from commands.common import key_sequences
    from sequences.readers import ReadOptions, read_dataset

    data = read_dataset(log, ReadOptions("hdfs"))
    return [k for keys in key_sequences(data, data.sequences, detector.vocabulary) for k in keys[:-1]]


def rate(forward, sequences, centre, settings, seconds: float) -> tuple[float, list]:
    """Sequences per second over at least `seconds`, and the last run's scores."""
    runs, started = 0, time.perf_counter()
    while True:
        scores = score_sequences(sequences, forward, centre, settings)
        runs += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return runs * len(sequences) / elapsed, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="20,128,512")
    parser.add_argument("--batches", default="1,8,64,512")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum timing per cell")
    parser.add_argument("--random", action="store_true", help="random keys instead of real sessions")
    args = parser.parse_args()

    from models.detector import Detector
    from models.export import torch_forward

    with tempfile.TemporaryDirectory() as tmp:
        model, model_dir = train_small_model(Path(tmp))
        detector = Detector.load(model_dir, "cpu")
        eager = torch_forward(model)
        rng = np.random.default_rng(0)
        vocab = len(detector.vocabulary)
        pool = session_pool(Path(tmp) / "gen" / "hdfs.log", detector)
        print(f"model {detector.version}: {vocab} templates, d_model {detector.config['model']['d_model']}, "
              f"max_len {detector.settings.max_len}, ONNX Runtime provider {detector.provider}")  # fmt: skip
        print(f"{'length':>6} {'batch':>6} {'torch seq/s':>12} {'onnx seq/s':>11} {'ratio':>6}  decisions")
        for length in map(int, args.lengths.split(",")):
            for batch in map(int, args.batches.split(",")):
                if args.random:
                    sequences = [rng.integers(0, vocab, length).tolist() for _ in range(batch)]
                else:
                    starts = rng.integers(0, len(pool) - length, batch)
                    sequences = [pool[start : start + length] for start in starts]
                torch_rate, torch_scores = rate(eager, sequences, detector.centre, detector.settings, args.seconds)
                onnx_rate, onnx_scores = rate(detector.forward, sequences, detector.centre, detector.settings,
                                              args.seconds)  # fmt: skip
                same = [is_anomalous(s, detector.settings) for s in torch_scores] == [
                    is_anomalous(s, detector.settings) for s in onnx_scores
                ]
                print(f"{length:>6} {batch:>6} {torch_rate:>12.0f} {onnx_rate:>11.0f} {onnx_rate / torch_rate:>6.2f}  "
                      f"{'equal' if same else 'DIFFER'}", flush=True)  # fmt: skip
    print(
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (torch and ONNX Runtime in one process)"
    )


if __name__ == "__main__":
    main()
