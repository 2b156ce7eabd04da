"""On a machine with an NVIDIA GPU: is the CUDA execution provider really in use, do its decisions
equal the CPU's, and how many sequences/s does it score (fp32, TF32 and fp16, with I/O binding)?

    bench/gpu_check.sh [MODEL_DIR]        # builds what it needs, then runs this
    python bench/gpu_check.py --model DIR [--batches 64,512,4096] [--seconds 2]
    python bench/gpu_check.py --model DIR --device cpu --sequences 64 --batches 8 --seconds 0.1
                                          # the same steps on the CPU: a check of this script, no GPU figures

Sequences are HDFS-length blocks of the model's own kind (generated with loggen, seeded). Figures
per batch size: the model alone through I/O binding (inputs and outputs stay on the GPU), as
HDFS-length sequences/s (rows/s divided by the rows a sequence needs), and the whole scorer a
worker runs (Detector.score: rows built on the CPU, the rule's arithmetic in the graph, its counts
in numpy), with the model run on `--batch-rows` rows at a time (512 is what a worker uses)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.detection import model_input  # noqa: E402
from models.detector import Detector  # noqa: E402
from models.scorer import OnnxScorer  # noqa: E402


def hdfs_sequences(detector: Detector, count: int) -> list[list[int]]:
    from commands.common import key_sequences
    from loggen.hdfs import generate_hdfs
    from sequences.readers import ReadOptions, read_dataset

    lines, _ = generate_hdfs(sessions=count, anomaly_rate=0.05, seed=21)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "hdfs.log"
        log.write_text("\n".join(lines) + "\n")
        data = read_dataset(log, ReadOptions("hdfs"))
        return key_sequences(data, data.sequences, detector.vocabulary)


def fp16_model(model_path: Path, out: Path) -> Path:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(onnx.load(str(model_path)), keep_io_types=True)
    onnx.save(converted, str(out))
    return out


def bound_rate(session, tokens: np.ndarray, positions: np.ndarray, seconds: float, device: str = "cuda") -> float:
    """Rows/s through I/O binding: the inputs copied to the device once, outputs left there."""
    import onnxruntime as ort

    inputs = (tokens, positions, np.zeros_like(positions), np.array([6], dtype=np.int64))  # truth, top_g: any
    binding = session.io_binding()
    for spec, value in zip(session.get_inputs(), inputs):
        binding.bind_ortvalue_input(spec.name, ort.OrtValue.ortvalue_from_numpy(value, device, 0))
    for output in session.get_outputs():
        binding.bind_output(output.name, device)
    session.run_with_iobinding(binding)  # warm-up (CUDA kernels, memory arena)
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run_with_iobinding(binding)
        runs += 1
    binding.synchronize_outputs()
    return runs * len(tokens) / (time.perf_counter() - started)


def decisions_differ(detector: Detector, sequences: list[list[int]], reference: list) -> int:
    """How many of `sequences` the detector decides otherwise than the reference scores say."""
    return sum(detector.is_anomalous(a) != detector.is_anomalous(b)
               for a, b in zip(detector.score(sequences), reference))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--batches", default="64,512,4096", help="sequences per batch")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--sequences", type=int, default=4096, help="HDFS-length sequences for the decisions")
    parser.add_argument("--batch-rows", default="512,4096", help="model rows per run for the scorer figures")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: the same steps on the CPU, to check this script where there is no GPU")  # fmt: skip
    args = parser.parse_args()
    import onnxruntime as ort

    print(f"onnxruntime {ort.__version__}, available providers {ort.get_available_providers()}")
    if args.device == "cpu":
        print("device cpu: a check of this script; no figure here is a GPU figure")
    try:
        gpu = Detector.load(args.model, args.device)  # fails when CUDA is not really usable
    except Exception as error:
        raise SystemExit(f"gpu_check: {error}") from None
    cpu = Detector.load(args.model, "cpu")
    print(f"provider in use: {gpu.forward.session.get_providers()[0]} (CPU reference: {cpu.provider})")
    cuda_options = gpu.forward.session.get_provider_options().get("CUDAExecutionProvider")
    if cuda_options is not None:
        print(f"CUDA provider: use_tf32={cuda_options.get('use_tf32')} (0: full fp32 MatMuls, as on the CPU)")
    sequences = hdfs_sequences(cpu, args.sequences)
    on_cpu = cpu.score(sequences)
    differ = decisions_differ(gpu, sequences, on_cpu)
    print(f"decisions on {len(sequences)} HDFS-length sequences: {differ} differ between {args.device.upper()} and CPU")

    with tempfile.TemporaryDirectory() as tmp:
        sessions = {"fp32": gpu.forward.session}
        provider = "CUDAExecutionProvider" if args.device == "cuda" else "CPUExecutionProvider"
        half = OnnxScorer(fp16_model(args.model / "model.onnx", Path(tmp) / "fp16.onnx"), args.device)
        if half.provider != provider:
            raise SystemExit(f"gpu_check: the fp16 model runs on {half.provider}, not {provider}")
        sessions["fp16"] = half.session
        tf32 = OnnxScorer(args.model / "model.onnx", args.device, tf32=True)  # ONNX Runtime's own default
        sessions["tf32"] = tf32.session
        for name, scorer in (("fp16", half), ("tf32", tf32)):
            differ = decisions_differ(Detector(gpu.config, gpu.vocabulary, scorer, scorer.provider), sequences, on_cpu)
            print(f"{name}: {differ} decisions differ from CPU fp32")
        row_counts = [int(r) for r in args.batch_rows.split(",")]
        scorer_heads = "".join(f" {f'scorer seq/s ({r} rows)':>23}" for r in row_counts)
        print(f"{'batch':>6} {'rows':>6} {'fp32 model seq/s':>17} {'tf32 model seq/s':>17} {'fp16 model seq/s':>17}"
              f"{scorer_heads}")  # fmt: skip
        for batch in map(int, args.batches.split(",")):
            chosen = [sequences[i % len(sequences)] for i in range(batch)]
            tokens, positions = model_input(chosen, gpu.settings)
            per_sequence = len(tokens) / batch
            model_rates = {k: bound_rate(s, tokens, positions, args.seconds, args.device) / per_sequence
                           for k, s in sessions.items()}  # fmt: skip
            scorer_rates = ""
            for rows in row_counts:
                detector = Detector(gpu.config, gpu.vocabulary, gpu.forward, gpu.provider)
                detector.settings = replace(gpu.settings, batch_rows=rows)
                runs, started = 0, time.perf_counter()
                while time.perf_counter() - started < args.seconds:
                    detector.score(chosen)
                    runs += 1
                scorer_rates += f" {runs * batch / (time.perf_counter() - started):>23.0f}"
            distinct = len({tuple(s) for s in chosen})
            print(f"{batch:>6} {len(tokens):>6} {model_rates['fp32']:>17.0f} {model_rates['tf32']:>17.0f} "
                  f"{model_rates['fp16']:>17.0f}"
                  f"{scorer_rates} ({distinct} distinct)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
