"""`evaluate`: honest figures for a model on labelled data, beside the two trivial baselines."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from commands.common import key_sequences, print_table
from evaluation.baselines import unseen_set_rule, unseen_template_rule
from evaluation.calibration import ValidationScores, choose_thresholds
from evaluation.metrics import best_f1_over_thresholds, classification_report, threshold_sweep
from evaluation.split import select
from models.artefact import read_json, write_json
from models.detector import Detector
from sequences.readers import ReadOptions, read_dataset


@dataclass
class EvaluateRequest:
    model: Path
    input: Path
    read: ReadOptions
    fraction: tuple[float, float] | None = None
    split: str | None = None
    json_out: Path | None = None
    plot_out: Path | None = None
    provider: str = "auto"
    target_fpr: float | None = None  # re-derive thresholds from calibration.json at this rate
    progress: bool = True
    batch_sequences: int = 512


def read_options_from_model(config: dict, **overrides) -> ReadOptions:
    """The grouping the model was trained with, unless the caller overrides parts of it."""
    return ReadOptions.from_settings(config["input"], **overrides)


RANKING_SCORES = {
    "miss_ratio": lambda s: math.inf if s.unseen else s.miss_ratio,
    "max_surprise": lambda s: s.max_surprise,
}


def oracle_best_f1(labels: list[bool], scores) -> dict:
    """ORACLE: the best F1 any single threshold on either score reaches, chosen with the test labels."""
    best = {name: best_f1_over_thresholds(labels, [rank(s) for s in scores]) for name, rank in RANKING_SCORES.items()}
    name = max(best, key=lambda n: best[n]["f1"])
    return {**best[name], "score": name, "per_score": {n: round(b["f1"], 4) for n, b in best.items()}}


def separability(labels: list[bool], sequences: list[list[int]]) -> dict:
    """DIAGNOSTIC, computed with the test labels: anomalous sequences whose keys are exactly those
    of a normal sequence here. No detector that sees only keys can flag one without the other."""
    normal = {tuple(k) for k, y in zip(sequences, labels) if not y}
    identical = sum(1 for k, y in zip(sequences, labels) if y and tuple(k) in normal)
    anomalous = sum(labels)
    reachable = (anomalous - identical) / anomalous if anomalous else 0.0
    return {
        "anomalous_identical_to_a_normal_sequence": identical,
        "recall_reachable_without_false_alarms": reachable,
        "f1_ceiling_at_precision_1": 2 * reachable / (1 + reachable) if reachable else 0.0,
        "note": "diagnostic from the test labels, not a result",
    }


def build_report(
    detector: Detector, model_dir: Path, sequences: list[list[int]], scores, labels: list[bool], calibrated_at
) -> dict:
    """The figures `evaluate` and `replay` share, from scored key sequences and their labels."""
    predictions = [detector.is_anomalous(s) for s in scores]
    min_length = detector.config["detection"].get("min_scored_length", 10)
    short = [i for i, score in enumerate(scores) if score.length < min_length]
    baselines_file = model_dir / "baselines.json"
    training_sets = (
        {frozenset(s) for s in read_json(baselines_file)["training_key_sets"]} if baselines_file.exists() else set()
    )
    return {
        **classification_report(labels, predictions),
        "sequences": len(sequences),
        "anomalous_sequences": sum(labels),
        "short_sequences": len(short),
        "short_sequences_anomalous": sum(labels[i] for i in short),
        "short_sequences_flagged": sum(predictions[i] for i in short),
        "min_scored_length": min_length,
        "threshold": {
            "miss_ratio": detector.settings.miss_ratio_threshold,
            "surprise": detector.settings.surprise_threshold,
            "top_g": detector.settings.top_g,
            "target_fpr": calibrated_at,
            "chosen_on": "normal validation data (no test labels)",
        },
        "baselines": {
            "unseen template": classification_report(labels, unseen_template_rule(sequences)),
            "unseen template set": classification_report(labels, unseen_set_rule(sequences, training_sets)),
        },
        "best_f1_over_thresholds": oracle_best_f1(labels, scores),
        "separability": separability(labels, sequences),
        "model_version": detector.version,
        "provider": detector.provider,
    }


def run_evaluate(request: EvaluateRequest) -> dict:
    detector = Detector.load(request.model, request.provider)
    calibrated_at = detector.config["detection"].get("target_fpr")
    if request.target_fpr is not None:
        stored = ValidationScores.from_json(read_json(Path(request.model) / "calibration.json")["validation_scores"])
        chosen = choose_thresholds(stored, request.target_fpr, detector.config["detection"].get("surprise_rule", True))
        detector = detector.with_thresholds(chosen["miss_ratio_threshold"], chosen["surprise_threshold"])
        calibrated_at = request.target_fpr
    dataset = read_dataset(request.input, request.read)
    specs = select(dataset.sequences, request.fraction, request.split)
    unlabelled = sum(1 for s in specs if s.label is None)
    specs = [s for s in specs if s.label is not None]
    if not specs:
        raise ValueError("no labelled sequences to evaluate: pass --labels, --label-all, or a labelled format")
    sequences = key_sequences(dataset, specs, detector.vocabulary)
    labels = [bool(s.label) for s in specs]

    scores = []
    with tqdm(total=len(sequences), desc="scoring", unit="seq", disable=None if request.progress else True) as bar:
        for start in range(0, len(sequences), request.batch_sequences):
            part = sequences[start : start + request.batch_sequences]
            scores.extend(detector.score(part))
            bar.update(len(part))
    report = build_report(detector, Path(request.model), sequences, scores, labels, calibrated_at)
    report.update({
        "unlabelled_sequences_skipped": unlabelled,
        "open_sequences": sum(1 for s in specs if not s.closed),
        "input": str(request.input),
        "reader_counts": dataset.counts,
    })  # fmt: skip
    print_report(report)
    if request.json_out:
        write_json(Path(request.json_out), report)
    if request.plot_out:
        from evaluation.plots import plot_pr_curve

        sweep = threshold_sweep(labels, [RANKING_SCORES["max_surprise"](s) for s in scores])
        plot_pr_curve(sweep, report, report["baselines"], Path(request.plot_out), f"{Path(request.input).name}")
    return report


def print_report(report: dict) -> None:
    rows = [["rule", "precision", "recall", "F1", "tp", "fp", "tn", "fn"]]

    def row(name: str, r: dict) -> list[str]:
        return [
            name,
            f"{r['precision']:.3f}",
            f"{r['recall']:.3f}",
            f"{r['f1']:.3f}",
            *(str(r[k]) for k in ("tp", "fp", "tn", "fn")),
        ]

    rows.append(row("LogBERT (calibrated threshold)", report))
    for name, figures in report["baselines"].items():
        rows.append(row(f"baseline: {name}", figures))
    print_table(rows)
    oracle = report["best_f1_over_thresholds"]
    print(
        f"\n{report['sequences']} sequences ({report['anomalous_sequences']} anomalous); "
        f"{report['short_sequences']} shorter than {report['min_scored_length']} keys were scored too "
        f"({report['short_sequences_anomalous']} anomalous, {report['short_sequences_flagged']} flagged)."
    )
    surprise = report["threshold"]["surprise"]
    separable = report["separability"]
    if separable["anomalous_identical_to_a_normal_sequence"]:
        print(
            f"{separable['anomalous_identical_to_a_normal_sequence']} anomalous sequences have exactly the keys of a "
            f"normal one here: without false alarms, recall can reach at most "
            f"{separable['recall_reachable_without_false_alarms']:.3f} (F1 {separable['f1_ceiling_at_precision_1']:.3f})."
        )
    print(
        f"thresholds chosen on normal validation data at FPR {report['threshold']['target_fpr']}: miss ratio r = {report['threshold']['miss_ratio']:.4f} "
        f"(top-g {report['threshold']['top_g']}), max surprise = {'off' if surprise is None else f'{surprise:.3f}'}"
    )
    print(
        "oracle only, not an operating point: best F1 over single thresholds on these labels = "
        f"{oracle['f1']:.3f} ({oracle['score']} > {oracle['threshold']:.4f})"
    )


def request_from_flags(flags: dict) -> EvaluateRequest:
    from commands.cli_options import fraction_from_flags, read_options_from_flags

    config = read_json(Path(flags["model"]) / "config.json")
    return EvaluateRequest(
        model=Path(flags["model"]),
        input=Path(flags["input_path"]),
        read=read_options_from_flags(flags, saved=config.get("input", {})),
        fraction=fraction_from_flags(flags),
        split=flags.get("split"),
        json_out=Path(flags["json_out"]) if flags.get("json_out") else None,
        plot_out=Path(flags["plot_out"]) if flags.get("plot_out") else None,
        provider=flags["provider"],
        target_fpr=flags.get("target_fpr"),
        progress=flags["progress"],
    )
