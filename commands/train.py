"""`train`: raw logs or event sequences to a calibrated model directory."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from commands.common import MIN_SCORED_LENGTH, key_sequences, log
from evaluation.baselines import key_sets
from evaluation.calibration import ValidationScores, choose_thresholds
from evaluation.split import select, train_validation
from logkeys.events import EventVocabulary
from logkeys.presets import get_preset
from logkeys.templates import mine_templates
from logkeys.vocabulary import read_template_texts
from models.artefact import MODEL_FORMAT, fingerprint, model_version, write_json
from models.detector import Detector
from models.scorer import OnnxScorer
from models.vocab import N_SPECIAL
from sequences.readers import ReadOptions, read_dataset

DEFAULT_TOP_G = {"session": 6, "window": 15}  # paper: 6 for HDFS-like, 15 for BGL-like
DEFAULT_MASK_RATIO = {"session": 0.65, "window": 0.5}


@dataclass
class TrainRequest:
    input: Path
    read: ReadOptions
    out: Path
    preset: str = "small"
    fraction: tuple[float, float] | None = None  # chronological range of sequences to train on
    split: str | None = None  # or a split named in the file (sequences-csv)
    validation_fraction: float = 0.2
    target_fpr: float = 0.005
    top_g: int | None = None
    mask_stride: int | None = None
    epochs: int | None = None
    seed: int = 1234
    surprise_rule: bool | None = None  # default: on for sessions, off for windows
    templates_csv: Path | None = None
    progress: bool = True
    force: bool = False


def run_train(request: TrainRequest) -> dict:
    # torch only here: serving never imports this module.
    from evaluation.plots import plot_loss_curve
    from models.export import export_onnx
    from models.logbert import LogBERTConfig
    from models.train import MODEL_PRESETS, TRAIN_PRESETS, TrainSettings, train_logbert

    started = time.time()
    out = Path(request.out)
    if out.exists() and any(out.iterdir()) and not request.force:
        raise FileExistsError(f"{out} exists and is not empty; pass --force to overwrite")
    if request.preset not in MODEL_PRESETS:
        raise ValueError(f"unknown preset {request.preset!r}; choose one of {sorted(MODEL_PRESETS)}")
    dataset = read_dataset(request.input, request.read)
    grouping = request.read.resolved_grouping()
    chosen = select(dataset.sequences, request.fraction, request.split)
    excluded = sum(1 for s in chosen if s.label)
    train_specs, val_specs = train_validation(chosen, request.validation_fraction)
    log.info(
        "%d sequences in range: %d train, %d validation (normal), %d anomalous excluded",
        len(chosen), len(train_specs), len(val_specs), excluded,
    )  # fmt: skip

    normal_records = sorted({i for s in train_specs + val_specs for i in s.records})
    if dataset.vocabulary_kind == "drain":
        vocabulary = mine_templates((dataset.contents[i] for i in normal_records), get_preset(dataset.preset))
    else:
        texts = read_template_texts(request.templates_csv) if request.templates_csv else None
        vocabulary = EventVocabulary.build((dataset.contents[i] for i in normal_records), texts)
    train_keys = key_sequences(dataset, train_specs, vocabulary)
    val_keys = key_sequences(dataset, val_specs, vocabulary)

    model_config = LogBERTConfig(vocab_size=len(vocabulary) + N_SPECIAL, **MODEL_PRESETS[request.preset])
    settings = TrainSettings(
        **TRAIN_PRESETS[request.preset], mask_ratio=DEFAULT_MASK_RATIO[grouping], seed=request.seed,
        progress=request.progress,
    )  # fmt: skip
    if request.epochs is not None:
        settings.epochs = request.epochs
    result = train_logbert(train_keys, val_keys, model_config, settings)

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    export_onnx(result.model, out / "model.onnx")
    write_json(out / "templates.json", vocabulary.to_json())
    write_json(
        out / "baselines.json", {"training_key_sets": sorted(sorted(s) for s in key_sets(train_keys + val_keys))}
    )

    config = {
        "format": MODEL_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model_config.to_dict(),
        "training": {k: v for k, v in settings.to_dict().items() if k != "progress"},
        "input": {**request.read.grouping_settings(), "preset": dataset.preset, "grouping": grouping},
        "detection": {
            "top_g": request.top_g or DEFAULT_TOP_G[grouping],
            "mask_stride": request.mask_stride or max(2, round(1 / settings.mask_ratio) * 2),
            "target_fpr": request.target_fpr,
            "surprise_rule": grouping == "session" if request.surprise_rule is None else request.surprise_rule,
            "miss_ratio_threshold": 0.0,
            "surprise_threshold": None,
            "min_scored_length": MIN_SCORED_LENGTH,
        },
        "centre": [float(x) for x in result.centre],
        "data": {
            "input": Path(request.input).name,
            "fingerprint": fingerprint(train_keys + val_keys),
            "train_sequences": len(train_keys),
            "validation_sequences": len(val_keys),
            "anomalous_excluded": excluded,
            "templates": len(vocabulary),
        },
    }
    calibration = calibrate(config, vocabulary, out, val_keys or train_keys, request.target_fpr)
    config["detection"].update(calibration["thresholds"])
    config["version"] = model_version(config)
    write_json(out / "config.json", config)

    plot_loss_curve(result.history, result.best_epoch, out / "loss_curve.png")
    metrics = {
        "version": config["version"],
        "history": result.history,
        "best_epoch": result.best_epoch,
        "calibration": calibration,
        "seconds": round(time.time() - started, 1),
    }
    write_json(out / "metrics.json", metrics)
    return {"config": config, "metrics": metrics, "torch_model": result.model}  # torch_model: for benchmarks


def calibrate(config: dict, vocabulary, out: Path, normal_keys: list[list[int]], target_fpr: float) -> dict:
    """Thresholds from normal validation sequences, scored exactly as in serving (ONNX, CPU).
    Windows interleave many sources, so the order of their keys says little: there the
    surprise rule is off by default."""
    scorer = OnnxScorer(out / "model.onnx", provider="cpu")
    detector = Detector(config, vocabulary, scorer, scorer.provider)
    scores = detector.score(normal_keys)
    validation = ValidationScores.from_scores(scores)
    write_json(out / "calibration.json", {"validation_scores": validation.to_json()})
    chosen = choose_thresholds(validation, target_fpr, config["detection"]["surprise_rule"])
    seen = [s for s in scores if s.unseen == 0]
    return {
        "thresholds": {k: chosen[k] for k in ("miss_ratio_threshold", "surprise_threshold")},
        "validation_sequences": len(normal_keys),
        "validation_with_unseen_template": len(normal_keys) - len(seen),
        "validation_fpr_at_threshold": chosen["validation_fpr"],
        "validation_miss_ratio_quantiles": _quantiles([s.miss_ratio for s in seen]),
        "validation_max_surprise_quantiles": _quantiles([s.max_surprise for s in seen]),
    }


def _quantiles(values: list[float]) -> dict[str, float]:
    return {str(q): float(np.quantile(values, q)) if values else 0.0 for q in (0.5, 0.9, 0.99, 1.0)}


def request_from_flags(flags: dict) -> TrainRequest:
    from commands.cli_options import fraction_from_flags, read_options_from_flags

    return TrainRequest(
        input=Path(flags["input_path"]),
        read=read_options_from_flags(flags),
        out=Path(flags["out"]),
        preset=flags["preset"],
        fraction=fraction_from_flags(flags),
        split=flags.get("split"),
        validation_fraction=flags["validation_fraction"],
        target_fpr=flags["target_fpr"],
        top_g=flags.get("top_g"),
        mask_stride=flags.get("mask_stride"),
        epochs=flags.get("epochs"),
        seed=flags["seed"],
        templates_csv=Path(flags["templates_csv"]) if flags.get("templates_csv") else None,
        surprise_rule=flags.get("surprise_rule"),
        progress=flags["progress"],
        force=flags["force"],
    )


def summarise(result: dict) -> str:
    config, metrics = result["config"], result["metrics"]
    calibration = metrics["calibration"]
    return (
        f"model {config['version']}: {config['data']['templates']} templates, "
        f"{config['data']['train_sequences']} training + {config['data']['validation_sequences']} validation sequences "
        f"({config['data']['anomalous_excluded']} anomalous excluded), best epoch {metrics['best_epoch']}, "
        f"{metrics['seconds']} s\n"
        f"thresholds: miss ratio r = {config['detection']['miss_ratio_threshold']:.4f} at top-g {config['detection']['top_g']}, "
        f"max surprise = {config['detection']['surprise_threshold']}: "
        f"{calibration['validation_fpr_at_threshold']:.2%} of normal validation sequences flagged "
        f"(target {config['detection']['target_fpr']:.2%})"
    )
