"""The model directory: plain files only (ONNX, JSON), validated before use.

MODEL_DIR/
  model.onnx       the serving graph (tokens, positions, truth, top_g -> logits there, DIST vectors,
                   the true tokens' surprise and rank, the top-g tokens)
  config.json      every setting: model, training, input grouping, detection thresholds, centre
  templates.json   the frozen vocabulary (drain templates or event ids)
  baselines.json   training key sets, for the simple baseline rules
  metrics.json     training history and calibration figures
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from logkeys.vocabulary import Vocabulary, vocabulary_from_json
from models.detection import DetectionSettings
from models.vocab import N_SPECIAL

MODEL_FORMAT = "logbert-model/1"
REQUIRED_FILES = ("model.onnx", "config.json", "templates.json")


class ModelDirectoryError(ValueError):
    """The model directory is missing, incomplete or inconsistent."""


def fingerprint(sequences: list[list[int]]) -> str:
    digest = hashlib.sha256()
    for keys in sequences:
        digest.update(",".join(map(str, keys)).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def model_version(config: dict) -> str:
    """Stable id from the training-data fingerprint and every setting except the version itself."""
    payload = json.dumps({k: v for k, v in config.items() if k not in ("version", "created")}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelDirectoryError(f"{path.name} is not readable JSON: {error}") from error
    if not isinstance(data, dict):
        raise ModelDirectoryError(f"{path.name} must hold a JSON object")
    return data


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")


def load_model_directory(model_dir: Path) -> tuple[dict, Vocabulary]:
    """Reads and cross-checks config.json and templates.json; raises ModelDirectoryError."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelDirectoryError(f"model directory not found: {model_dir}")
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise ModelDirectoryError(f"model directory {model_dir} lacks {', '.join(missing)}")
    config = read_json(model_dir / "config.json")
    if config.get("format") != MODEL_FORMAT:
        raise ModelDirectoryError(f"config.json format is {config.get('format')!r}, expected {MODEL_FORMAT!r}")
    try:
        vocabulary = vocabulary_from_json(read_json(model_dir / "templates.json"))
    except (KeyError, TypeError, ValueError) as error:
        raise ModelDirectoryError(f"templates.json is invalid: {error}") from error
    expected = config["model"]["vocab_size"] - N_SPECIAL
    if len(vocabulary) != expected:
        raise ModelDirectoryError(
            f"templates.json has {len(vocabulary)} templates but the model was trained on {expected}"
        )
    if len(config.get("centre", [])) != config["model"]["d_model"]:
        raise ModelDirectoryError("config.json centre does not match the model width")
    return config, vocabulary


def detection_settings(config: dict, batch_rows: int = 512) -> DetectionSettings:
    detection = config["detection"]
    return DetectionSettings(
        top_g=int(detection["top_g"]),
        mask_stride=int(detection["mask_stride"]),
        max_len=int(config["model"]["max_len"]),
        miss_ratio_threshold=float(detection["miss_ratio_threshold"]),
        surprise_threshold=None
        if detection.get("surprise_threshold") is None
        else float(detection["surprise_threshold"]),
        batch_rows=batch_rows,
    )


def centre_of(config: dict) -> np.ndarray:
    return np.asarray(config["centre"], dtype=np.float32)
