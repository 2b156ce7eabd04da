"""Sliding time windows per source (BGL style): size and step in seconds."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from sequences.dataset import SequenceSpec


def fill_missing_timestamps(timestamps: list[float | None]) -> tuple[list[float], int]:
    """Carries the last known timestamp forward (continuation lines); counts the repaired ones.
    Records before the first timestamp take the first one."""
    first = next((t for t in timestamps if t is not None), 0.0)
    filled: list[float] = []
    repaired = 0
    last = first
    for t in timestamps:
        if t is None:
            repaired += 1
            filled.append(last)
        else:
            last = t
            filled.append(t)
    return filled, repaired


def window_id(source: str, start: float) -> str:
    stamp = datetime.fromtimestamp(start, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{source}@{stamp}" if source else stamp


def window_starts(t: float, size: float, step: float) -> range:
    """Indices k of the windows [k*step, k*step + size) that contain t."""
    last = math.floor(t / step)
    first = math.floor((t - size) / step) + 1
    return range(first, last + 1)


def group_by_window(
    timestamps: list[float], size: float, step: float, sources: list[str] | None = None
) -> list[SequenceSpec]:
    """Non-empty sliding windows, ordered by start time then source; records keep log order."""
    if size <= 0 or step <= 0:
        raise ValueError("window size and step must be positive")
    windows: dict[tuple[str, int], list[int]] = {}
    for index, t in enumerate(timestamps):
        source = sources[index] if sources is not None else ""
        for k in window_starts(t, size, step):
            windows.setdefault((source, k), []).append(index)
    last = max(timestamps, default=0.0)
    specs = []
    for (source, k), records in sorted(windows.items(), key=lambda item: (item[0][1], item[0][0])):
        start = k * step
        # A window whose end lies beyond the input's last record may still fill up.
        specs.append(SequenceSpec(window_id(source, start), records, start, start + size, closed=start + size <= last))
    return specs
