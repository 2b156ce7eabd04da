"""Scorer throughput: the serving scorer (ONNX Runtime) against a plain torch-eager run of the same
detection rule on the same trained model, in one run, with the decisions compared.

    scripts/venv.sh python bench/detector.py [--lengths session,128,512] [--batches 1,8,64,512] [--seconds 1]

The model is trained here on the real HDFS sample ($LOGBERT_DATASETS/hdfs/HDFS_20000.log, its
normal blocks of the first 60%), or on a generated log when the datasets are absent. `session`
cells score the log's own blocks as they are (HDFS-length, mixed normal and anomalous, repeats
included as in a live stream); numeric lengths join blocks and cut them to BGL-like lengths.

Three scorers per cell:
  torch  the reference: torch eager forward (no_grad) at every position, the same numpy rule
  onnx   the serving graph in ONNX Runtime (fused attention, last block only where the rule
         reads logits), the same rule: the graph's share of the gain
  serve  Detector.score, what a worker runs: ONNX Runtime, each distinct sequence scored once, the
         DIST distance (which only alerts report) measured for the flagged sequences only
"flagged" counts the cell's sequences that the rule flags: the serve column skips the others' DIST rows.
"rule share" is the part of the onnx scorer's time spent outside the model: the rule timed alone,
on the model's outputs recorded once and replayed (planning rows, padding, counting, explaining).
The ONNX side runs in a child process without torch, so its peak RSS is the worker's; the two
sides of a cell are timed one right after the other, so a slow spell of a shared machine slows
both, and `--repeats` rounds of that alternate, the best rate of each scorer counting."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.detection import is_anomalous, score_sequences  # noqa: E402


def train_model(out: Path) -> tuple[object, Path, Path, str]:
    """The torch model, its model directory, the log it was trained on, and where that log came from."""
    from commands.generate import run_generate
    from commands.train import TrainRequest, run_train
    from sequences.readers import ReadOptions

    real = Path(os.environ.get("LOGBERT_DATASETS", ROOT.parent / "shared" / "datasets")) / "hdfs" / "HDFS_20000.log"
    if real.exists():
        log, labels, source = real, real.with_name("HDFS_20000_anomaly_label.csv"), f"real HDFS ({real.name})"
    else:
        run_generate("hdfs", str(out / "gen"), sessions=1500, minutes=0, anomaly_rate=0.05, seed=11)
        log, labels, source = out / "gen" / "hdfs.log", out / "gen" / "hdfs_labels.csv", "generated HDFS-like log"
    request = TrainRequest(log, ReadOptions("hdfs", labels=labels), out / "model", preset="small",
                           fraction=(0.0, 0.6), progress=False)  # fmt: skip
    return run_train(request)["torch_model"], out / "model", log, source


def blocks_of(log: Path, model_dir: Path) -> list[list[int]]:
    """Every block's keys, closed by END as the window stage closes an ended session."""
    from commands.common import key_sequences
    from models.artefact import load_model_directory
    from sequences.readers import ReadOptions, read_dataset

    _, vocabulary = load_model_directory(model_dir)
    data = read_dataset(log, ReadOptions("hdfs"))
    return key_sequences(data, data.sequences, vocabulary)


def cells(blocks: list[list[int]], lengths: list[str], batches: list[int]) -> list[dict]:
    rng = np.random.default_rng(0)
    pool = [k for keys in blocks for k in keys[:-1]]
    out = []
    for length in lengths:
        for batch in batches:
            if length == "session":
                sequences = [blocks[i] for i in rng.integers(0, len(blocks), batch)]
            else:
                starts = rng.integers(0, len(pool) - int(length), batch)
                sequences = [pool[s : s + int(length)] for s in starts]
            out.append({"length": length, "batch": batch, "sequences": [[int(k) for k in s] for s in sequences]})
    return out


def rate(score, sequences, seconds: float) -> tuple[float, list]:
    """Sequences per second over at least `seconds` (after one warm-up call), and the scores."""
    scores = score(sequences)
    runs, started = 0, time.perf_counter()
    while True:
        score(sequences)
        runs += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return runs * len(sequences) / elapsed, scores


class Forward:
    """A forward function made of a logits function and, when the model ranks, a ranking one
    (models.detection.RanksFn)."""

    def __init__(self, logits: Callable, ranks: Callable | None) -> None:
        self.logits, self.ranks = logits, ranks

    def __call__(self, tokens: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.logits(tokens, positions)


def replaying(detector, sequences: list[list[int]]) -> Forward:
    """A forward function that gives the outputs the detector's model gave when scoring `sequences`, in turn."""
    model, outputs = detector.forward, []

    def recording(run: Callable) -> Callable:
        def recorded(*inputs):
            outputs.append(run(*inputs))
            return outputs[-1]

        return recorded

    ranks = getattr(model, "ranks", None)
    score_sequences(sequences, Forward(recording(model), ranks and recording(ranks)), detector.centre,
                    detector.settings)  # fmt: skip
    turn = itertools.cycle(outputs)
    again = lambda *inputs: next(turn)  # noqa: E731
    return Forward(again, again if ranks else None)


def serving_side(model_dir: Path, cells_file: Path, seconds: float) -> None:
    """Child process: the ONNX Runtime scorers only (torch is never imported here). It measures
    the cell whose index it reads on stdin and answers with a JSON line, so each cell's two sides
    are timed one right after the other; at end of input it reports its peak RSS."""
    from models.detector import Detector

    detector = Detector.load(model_dir, "cpu")
    plan = json.loads(cells_file.read_text())
    print(json.dumps({"provider": detector.provider}), flush=True)
    for line in sys.stdin:
        sequences = plan[int(line)]["sequences"]
        onnx_rate, _ = rate(lambda s: score_sequences(s, detector.forward, detector.centre, detector.settings),
                            sequences, seconds)  # fmt: skip
        serve_rate, scores = rate(detector.score, sequences, seconds)
        replay = replaying(detector, sequences)
        rule_rate, _ = rate(lambda s, forward=replay: score_sequences(s, forward, detector.centre, detector.settings),
                            sequences, seconds)  # fmt: skip
        print(json.dumps({"onnx": onnx_rate, "serve": serve_rate, "rule": rule_rate,
                          "distinct": len({tuple(s) for s in sequences}),
                          "decisions": [detector.is_anomalous(s) for s in scores]}), flush=True)  # fmt: skip
    assert "torch" not in sys.modules, "the serving side must not load torch"
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="session,128,512", help="'session' (the blocks as they are) or key counts")
    parser.add_argument("--batches", default="1,8,64,512")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum timing per cell and scorer")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds per cell; the best of each counts")
    parser.add_argument("--serving-side", nargs=2, type=Path, metavar=("MODEL_DIR", "CELLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serving_side:
        serving_side(*args.serving_side, args.seconds)
        return

    from models.artefact import centre_of, detection_settings, load_model_directory
    from models.export import torch_forward

    with tempfile.TemporaryDirectory() as tmp:
        print("training the benchmark model ...", flush=True)
        model, model_dir, log, source = train_model(Path(tmp))
        config, vocabulary = load_model_directory(model_dir)
        settings, centre = detection_settings(config), centre_of(config)
        blocks = blocks_of(log, model_dir)
        plan = cells(blocks, args.lengths.split(","), [int(b) for b in args.batches.split(",")])
        cells_file = Path(tmp) / "cells.json"
        cells_file.write_text(json.dumps(plan))
        child = subprocess.Popen(
            [sys.executable, __file__, "--seconds", str(args.seconds), "--serving-side", str(model_dir), str(cells_file)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

        def answer() -> dict:
            line = child.stdout.readline()
            if not line:
                raise SystemExit(f"the serving side stopped (exit status {child.wait()})")
            return json.loads(line)

        provider = answer()["provider"]
        mean_block = sum(len(b) for b in blocks) / len(blocks)
        print(f"data: {source}, {len(blocks)} blocks of {mean_block:.1f} keys on average (END included)")
        print(f"model {config.get('version')}: {len(vocabulary)} templates, d_model {config['model']['d_model']}, "
              f"{config['model']['n_layer']} layers, max_len {settings.max_len}, mask stride {settings.mask_stride}, "
              f"top-g {settings.top_g}; ONNX Runtime provider {provider}, {os.cpu_count()} CPUs")  # fmt: skip
        print(f"{'length':>7} {'batch':>5} {'distinct':>8} {'torch seq/s':>11} {'onnx seq/s':>10} {'serve seq/s':>11} "
              f"{'onnx/torch':>10} {'serve/torch':>11} {'rule share':>10}  decisions flagged")  # fmt: skip
        eager = torch_forward(model)
        best_of_length: dict[str, tuple[float, int]] = {}  # length -> (best serve/torch, its batch)
        for index, cell in enumerate(plan):
            result, torch_rate, same = {}, 0.0, True
            for _ in range(max(1, args.repeats)):
                child.stdin.write(f"{index}\n")
                child.stdin.flush()
                onnx_side = answer()  # the ONNX side of this cell, timed just before its torch side
                rate_now, scores = rate(lambda s: score_sequences(s, eager, centre, settings), cell["sequences"],
                                        args.seconds)  # fmt: skip
                torch_rate = max(torch_rate, rate_now)
                same = same and [is_anomalous(s, settings) for s in scores] == onnx_side["decisions"]
                result = {**onnx_side, **{k: max(result.get(k, 0.0), onnx_side[k]) for k in ("onnx", "serve", "rule")}}
            print(f"{cell['length']:>7} {cell['batch']:>5} {result['distinct']:>8} {torch_rate:>11.0f} "
                  f"{result['onnx']:>10.0f} {result['serve']:>11.0f} {result['onnx'] / torch_rate:>10.2f} "
                  f"{result['serve'] / torch_rate:>11.2f} {result['onnx'] / result['rule']:>10.0%}  "
                  f"{'equal' if same else 'DIFFER':<9} {sum(result['decisions']):>7}", flush=True)  # fmt: skip
            ratio = result["serve"] / torch_rate
            if ratio > best_of_length.get(cell["length"], (0.0, 0))[0]:
                best_of_length[cell["length"]] = (ratio, cell["batch"])
        print("best serve/torch per length: " + ", ".join(
            f"{length} {ratio:.2f}x (batch {batch})" for length, (ratio, batch) in best_of_length.items()))  # fmt: skip
        child.stdin.close()
        serving_peak = answer()["peak_rss_mib"]
        child.wait()
    torch_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: serving scorer {serving_peak:.0f} MiB (ONNX Runtime, no torch); "
          f"reference process {torch_peak:.0f} MiB (torch, training included)")  # fmt: skip


if __name__ == "__main__":
    main()
