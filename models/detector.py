"""A loaded model directory ready to score key sequences (onnxruntime + numpy only)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from logkeys.vocabulary import Vocabulary
from models.artefact import ModelDirectoryError, centre_of, detection_settings, load_model_directory
from models.detection import ForwardFn, SequenceScore, is_anomalous, score_sequences
from models.scorer import OnnxScorer
from models.vocab import END_KEY, N_SPECIAL, OPEN_KEY


class Detector:
    def __init__(self, config: dict, vocabulary: Vocabulary, forward: ForwardFn, provider: str) -> None:
        self.config = config
        self.vocabulary = vocabulary
        self.forward = forward
        self.provider = provider
        self.settings = detection_settings(config)
        self.centre = centre_of(config)
        self.version = config.get("version", "unknown")
        self.key_count = config["model"]["vocab_size"] - N_SPECIAL  # the templates the model knows

    @classmethod
    def load(
        cls, model_dir: Path, provider: str = "auto", threads: int | None = None, spinning: bool = True
    ) -> Detector:
        """`spinning`: ONNX Runtime's idle threads spin for the next kernel (fastest when scoring
        has the cores to itself; a worker turns it off, see streaming/settings.py)."""
        config, vocabulary = load_model_directory(model_dir)
        try:
            scorer = OnnxScorer(Path(model_dir) / "model.onnx", provider, threads, spinning)
        except Exception as error:
            if isinstance(error, (FileNotFoundError, ModelDirectoryError)):
                raise
            raise ModelDirectoryError(f"model.onnx could not be loaded: {error}") from error
        outputs = scorer.session.get_outputs()
        width = outputs[0].shape[-1]
        if isinstance(width, int) and width != config["model"]["vocab_size"]:
            raise ModelDirectoryError(
                f"model.onnx predicts {width} tokens but config.json says {config['model']['vocab_size']}"
            )
        return cls(config, vocabulary, scorer, scorer.provider)

    def with_thresholds(self, miss_ratio: float, surprise: float | None) -> Detector:
        clone = Detector(self.config, self.vocabulary, self.forward, self.provider)
        clone.settings = replace(self.settings, miss_ratio_threshold=miss_ratio, surprise_threshold=surprise)
        return clone

    def keys(self, contents: list[str]) -> list[int]:
        return [self.vocabulary.match_content(c) for c in contents]

    def score(self, sequences: list[list[int]], distances: str = "flagged") -> list[SequenceScore]:
        """Scores each distinct sequence once: sessions of a busy service repeat the same few key
        sequences, and scoring is deterministic, so a repeat shares its score. The DIST distance,
        which only alerts report, is measured for the flagged sequences (None for the rest) unless
        `distances="all"`."""
        distinct: dict[tuple[int, ...], int] = {}
        slots = [distinct.setdefault(tuple(keys), len(distinct)) for keys in sequences]
        highest = max((max(keys) for keys in distinct if keys), default=-1)
        if highest >= self.key_count:  # else ONNX Runtime fails deep in a gather, naming no key
            raise ValueError(
                f"key {highest} is not one of this model's {self.key_count} templates (0 to "
                f"{self.key_count - 1}; -1 unseen): were the keys made with another model's vocabulary?"
            )
        scores = score_sequences([list(keys) for keys in distinct], self.forward, self.centre, self.settings,
                                 distances=distances)  # fmt: skip
        return [scores[slot] for slot in slots]

    def is_anomalous(self, score: SequenceScore) -> bool:
        return is_anomalous(score, self.settings)

    def template(self, key: int) -> str:
        if key == END_KEY:
            return "<end of sequence>"
        if key == OPEN_KEY:
            return "<sequence continues>"
        return "<unseen template>" if key < 0 else self.vocabulary.templates[key].text

    def explain(self, score: SequenceScore) -> list[dict]:
        """Per missed position: what was logged and what the model expected there. A sequence
        flagged for a surprising key inside the top-g gets that position instead."""
        positions = score.missed or ([score.most_surprising] if score.most_surprising is not None else [])
        return [
            {
                "position": m.position,
                "actual": self.template(m.actual),
                "actual_probability": round(m.probability, 6),
                "expected": [self.template(k) for k in m.expected],
            }
            for m in positions
        ]
