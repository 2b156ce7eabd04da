"""Chronological selection of sequences: by fraction of the time-ordered list, or by a split column."""

from __future__ import annotations

from sequences.dataset import SequenceSpec


def parse_range(text: str) -> tuple[float, float]:
    """'0:0.6' -> (0.0, 0.6)."""
    try:
        start, end = (float(part) if part else default for part, default in zip(text.split(":"), (0.0, 1.0)))
    except ValueError:
        raise ValueError(f"range must look like START:END with fractions, e.g. 0:0.6, not {text!r}") from None
    if not 0 <= start < end <= 1:
        raise ValueError(f"range {text!r} must satisfy 0 <= START < END <= 1")
    return start, end


def select(specs: list[SequenceSpec], fraction: tuple[float, float] | None, split: str | None) -> list[SequenceSpec]:
    """Sequences are already in time order (first line for sessions, start for windows)."""
    if split is not None:
        chosen = [s for s in specs if s.split == split]
        if not chosen:
            raise ValueError(f"no sequence has split {split!r}")
        specs = chosen
    if fraction is not None:
        n = len(specs)
        specs = specs[int(round(fraction[0] * n)) : int(round(fraction[1] * n))]
    return specs


def train_validation(
    specs: list[SequenceSpec], validation_fraction: float
) -> tuple[list[SequenceSpec], list[SequenceSpec]]:
    """Normal (or unlabelled) sequences only; the latest ones become validation, so it also lies later in time."""
    normal = [s for s in specs if not s.label]
    cut = len(normal) - int(round(validation_fraction * len(normal)))
    return normal[:cut], normal[cut:]
