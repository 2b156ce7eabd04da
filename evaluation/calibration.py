"""Thresholds from normal validation data only, at a target false-positive rate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

# Raises a surprise threshold above the validation score it sits on. Surprise is float arithmetic:
# the same sequence scored by another backend (CUDA, torch, another CPU) differs by about 1e-6,
# and sessions repeat, so a threshold exactly at a common sequence's score would decide it by noise.
SURPRISE_MARGIN = 1e-3


def threshold_at_fpr(normal_scores: Sequence[float], fpr: float, margin: float = 0.0) -> float:
    """The smallest t such that at most floor(fpr * n) of the normal scores are > t, then raised
    by `margin`, but at most half way to the next larger score, so it flags no more of them.

    Rules use 'score > t', so ties at t are never flagged."""
    if not 0 <= fpr < 1:
        raise ValueError("false-positive rate must be in [0, 1)")
    values = np.sort(np.asarray([s for s in normal_scores if math.isfinite(s)], dtype=float))[::-1]
    if len(values) == 0:
        return 0.0
    allowed = int(math.floor(fpr * len(values)))
    threshold = float(values[min(allowed, len(values) - 1)])
    if margin > 0:
        larger = values[values > threshold]
        threshold += min(margin, (float(larger.min()) - threshold) / 2) if len(larger) else margin
    return threshold


def false_positive_rate(normal_scores: Sequence[float], threshold: float) -> float:
    values = np.asarray(list(normal_scores), dtype=float)
    return float((values > threshold).mean()) if len(values) else 0.0


@dataclass
class ValidationScores:
    """What calibration needs of each normal validation sequence; kept in calibration.json so the
    operating point can be moved to another false-positive rate without retraining."""

    misses: list[int]
    masked: list[int]
    unseen: list[int]
    max_surprise: list[float]

    @classmethod
    def from_scores(cls, scores) -> ValidationScores:
        return cls(
            [s.misses for s in scores], [s.masked for s in scores], [s.unseen for s in scores],
            [s.max_surprise for s in scores],
        )  # fmt: skip

    def to_json(self) -> dict:
        return {**asdict(self), "max_surprise": [s if math.isfinite(s) else None for s in self.max_surprise]}

    @classmethod
    def from_json(cls, data: dict) -> ValidationScores:
        surprise = [math.inf if s is None else float(s) for s in data["max_surprise"]]
        return cls([int(x) for x in data["misses"]], [int(x) for x in data["masked"]],
                   [int(x) for x in data["unseen"]], surprise)  # fmt: skip


def miss_ratio(misses: int, masked: int) -> float:
    return misses / masked if masked else 0.0


def choose_thresholds(scores: ValidationScores, target_fpr: float, surprise_rule: bool) -> dict:
    """r (miss ratio, the paper's rule) takes what it needs of the false-positive budget first;
    the surprise threshold takes the rest. Sequences with unseen templates are flagged whatever
    the thresholds, so they take no part in choosing them."""
    seen = [i for i, u in enumerate(scores.unseen) if u == 0]
    ratios = [miss_ratio(scores.misses[i], scores.masked[i]) for i in seen]
    r = threshold_at_fpr(ratios, target_fpr)
    flagged_by_r = [ratio > r for ratio in ratios]
    budget = max(0.0, target_fpr - sum(flagged_by_r) / max(len(seen), 1))
    rest = [scores.max_surprise[i] for i, flagged in zip(seen, flagged_by_r) if not flagged]
    surprise = (threshold_at_fpr(rest, budget * len(seen) / len(rest), SURPRISE_MARGIN)
                if surprise_rule and rest else None)  # fmt: skip
    flagged = sum(flagged_by_r) + (sum(s > surprise for s in rest) if surprise is not None else 0)
    flagged += len(scores.unseen) - len(seen)
    return {
        "miss_ratio_threshold": r,
        "surprise_threshold": surprise,
        "target_fpr": target_fpr,
        "validation_fpr": flagged / max(len(scores.unseen), 1),
    }
