"""The two trivial rules every figure is reported beside."""

from __future__ import annotations

from collections.abc import Iterable

from models.vocab import UNSEEN_KEY


def key_sets(sequences: Iterable[list[int]]) -> set[frozenset[int]]:
    return {template_set(keys) for keys in sequences}


def template_set(keys: list[int]) -> frozenset[int]:
    return frozenset(k for k in keys if k >= UNSEEN_KEY)


def unseen_template_rule(sequences: list[list[int]]) -> list[bool]:
    """Anomalous if any key is a template never seen in training."""
    return [UNSEEN_KEY in keys for keys in sequences]


def unseen_set_rule(sequences: list[list[int]], training_sets: set[frozenset[int]]) -> list[bool]:
    """Anomalous if the sequence's set of distinct templates never occurred in training."""
    return [template_set(keys) not in training_sets for keys in sequences]
