"""Honest evaluation: chronological splits, thresholds from normal data, baselines beside every figure."""
