"""What measuring the DIST distance only for flagged sequences saves the served scorer.

    scripts/venv.sh python bench/distance_rows.py [--model DIR] [--rounds 4]

`Detector.score` runs each chunk's unmasked row (the one its DIST vector comes from) only for the
sequences the rule flags, since only alerts report the distance (`distances="flagged"`, the
default); `distances="all"` runs it for every sequence, as the torch reference does. This prints
the CPU time a sequence takes each way, on the cells of bench/detector.py, in alternating rounds.
ONNX Runtime runs on one thread, the caller's, and the CPU time counted is that thread's: work,
not waiting, and not other threads' (torch's, after training here). On a shared 2-core machine,
wall-clock rates of the two varied by ±20% between rounds.

Without --model, the model is trained as bench/detector.py trains it (real HDFS when the datasets
are there, a generated log otherwise).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.detector import blocks_of, cells, train_model  # noqa: E402
from models.detector import Detector  # noqa: E402

CELLS = (("session", 1, 400), ("session", 8, 200), ("session", 64, 60), ("session", 512, 15), ("128", 64, 3))


def cpu_us_per_sequence(detector: Detector, sequences: list[list[int]], distances: str, calls: int) -> float:
    detector.score(sequences, distances=distances)
    started = time.thread_time()
    for _ in range(calls):
        detector.score(sequences, distances=distances)
    return (time.thread_time() - started) / calls / len(sequences) * 1e6


def measure(model_dir: Path, log: Path, rounds: int) -> None:
    detector = Detector.load(model_dir, "cpu", threads=1, spinning=False)
    blocks = blocks_of(log, model_dir)
    print(f"CPU µs a sequence, median of {rounds} alternating rounds")
    print(f"{'length':>7} {'batch':>5} {'flagged':>9} {'all':>8} {'flagged':>8} {'saved':>6}")
    for length, batch, calls in CELLS:
        sequences = cells(blocks, [length], [batch])[0]["sequences"]
        flagged = sum(detector.is_anomalous(s) for s in detector.score(sequences, distances="all"))
        every, only = [], []
        for _ in range(rounds):
            every.append(cpu_us_per_sequence(detector, sequences, "all", calls))
            only.append(cpu_us_per_sequence(detector, sequences, "flagged", calls))
        a, b = statistics.median(every), statistics.median(only)
        print(
            f"{length:>7} {batch:>5} {f'{flagged}/{len(sequences)}':>9} {a:8.1f} {b:8.1f} {1 - b / a:6.1%}", flush=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a model directory trained on HDFS (default: train one)")
    parser.add_argument("--log", type=Path, help="the HDFS log its cells come from (with --model)")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if args.model:
        if args.log is None:
            parser.error("--model needs --log, the HDFS log to take sequences from")
        measure(args.model, args.log, args.rounds)
        return
    with tempfile.TemporaryDirectory() as tmp:
        print("training the benchmark model ...", flush=True)
        _, model_dir, log, source = train_model(Path(tmp))
        print(f"data: {source}")
        measure(model_dir, log, args.rounds)


if __name__ == "__main__":
    main()
