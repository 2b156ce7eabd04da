"""Confusion counts, precision/recall/F1, and the oracle best-F1 sweep (reported apart)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion(labels: Sequence[bool], predictions: Sequence[bool]) -> dict[str, int]:
    y = np.asarray(labels, dtype=bool)
    p = np.asarray(predictions, dtype=bool)
    return {
        "tp": int((y & p).sum()),
        "fp": int((~y & p).sum()),
        "tn": int((~y & ~p).sum()),
        "fn": int((y & ~p).sum()),
    }


def precision_recall_f1(counts: dict[str, int]) -> dict[str, float]:
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def classification_report(labels: Sequence[bool], predictions: Sequence[bool]) -> dict:
    counts = confusion(labels, predictions)
    return {**precision_recall_f1(counts), **counts}


def threshold_sweep(labels: Sequence[bool], scores: Sequence[float]) -> list[dict]:
    """For every distinct threshold t (predict score > t), the confusion and P/R/F1."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=float)
    candidates = np.unique(np.concatenate([[-np.inf], s[np.isfinite(s)]]))
    rows = []
    for t in candidates:
        counts = confusion(y, s > t)
        rows.append({"threshold": float(t), **precision_recall_f1(counts), **counts})
    return rows


def best_f1_over_thresholds(labels: Sequence[bool], scores: Sequence[float]) -> dict:
    """ORACLE: the best F1 any threshold reaches when chosen with the test labels."""
    rows = threshold_sweep(labels, scores)
    best = max(rows, key=lambda r: (r["f1"], -r["threshold"]))
    return {**best, "note": "oracle figure: threshold chosen on the test labels; not an operating point"}
