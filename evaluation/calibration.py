"""Thresholds from normal validation data only, at a target false-positive rate."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def threshold_at_fpr(normal_scores: Sequence[float], fpr: float) -> float:
    """The smallest t such that at most floor(fpr * n) of the normal scores are > t.

    Rules use 'score > t', so ties at t are never flagged."""
    if not 0 <= fpr < 1:
        raise ValueError("false-positive rate must be in [0, 1)")
    values = np.sort(np.asarray([s for s in normal_scores if math.isfinite(s)], dtype=float))[::-1]
    if len(values) == 0:
        return 0.0
    allowed = int(math.floor(fpr * len(values)))
    return float(values[min(allowed, len(values) - 1)])


def false_positive_rate(normal_scores: Sequence[float], threshold: float) -> float:
    values = np.asarray(list(normal_scores), dtype=float)
    return float((values > threshold).mean()) if len(values) else 0.0
