"""The LogBERT detection rule, deterministic and numpy-only.

A sequence known to have ended closes with END_KEY, which is masked and predicted like a
key, so a session that stops early is as surprising as a wrong key. One that may still
continue (open at the end of a replay, flushed at max length) closes with OPEN_KEY, which
is context only. Every other position is masked exactly once: pattern j of a chunk masks positions p with
(p - 1) % stride == j, so a chunk of n keys needs min(n, stride) masked rows plus one
unmasked row for the DIST vector. A masked key is a miss when the true key is not among
the model's top-g predictions; a key unseen in training is always a miss. Sequences longer
than the model's window are scored in chunks and their counts added up, never truncated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from models.vocab import DIST, MASK, OPEN_KEY, PAD, UNK, UNPREDICTABLE, UNSEEN_KEY, key_to_token, token_to_key

# tokens (batch, length) int64 -> logits (batch, length, vocab) float32, dist (batch, d) float32
ForwardFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class MissedKey:
    position: int  # 0-based index in the sequence
    actual: int  # key index, -1 when unseen in training
    expected: list[int]  # top-g key indices, most likely first
    probability: float  # model probability of the actual key


@dataclass
class SequenceScore:
    length: int
    masked: int
    misses: int
    unseen: int
    max_surprise: float  # max over positions of -log p(actual key); inf when a key is unseen
    mean_surprise: float
    distance: float  # mean over chunks of ||DIST - c||
    missed: list[MissedKey] = field(default_factory=list)
    most_surprising: MissedKey | None = None  # the least likely actual key, miss or not

    @property
    def miss_ratio(self) -> float:
        return self.misses / self.masked if self.masked else 0.0


@dataclass(frozen=True)
class DetectionSettings:
    top_g: int
    mask_stride: int
    max_len: int  # model positions, DIST included
    miss_ratio_threshold: float = 0.0  # r: anomalous when misses / masked > r
    surprise_threshold: float | None = None  # optional: anomalous when max_surprise > this
    batch_rows: int = 512
    explain_limit: int = 20  # missed positions kept per sequence for explanations

    @property
    def keys_per_chunk(self) -> int:
        return self.max_len - 1


def is_anomalous(score: SequenceScore, settings: DetectionSettings) -> bool:
    if score.unseen > 0:
        return True
    if score.miss_ratio > settings.miss_ratio_threshold:
        return True
    return settings.surprise_threshold is not None and score.max_surprise > settings.surprise_threshold


@dataclass
class _Row:
    chunk: int  # index into the chunk list
    pattern: int  # -1 = unmasked row (DIST vector only)
    tokens: np.ndarray


def split_chunks(keys: list[int], keys_per_chunk: int) -> list[list[int]]:
    """Chunks of at most keys_per_chunk keys (an empty sequence is one empty chunk)."""
    if not keys:
        return [[]]
    return [keys[i : i + keys_per_chunk] for i in range(0, len(keys), keys_per_chunk)]


def _rows_for_chunk(chunk_index: int, keys: list[int], stride: int) -> list[_Row]:
    tokens = np.array([DIST, *(key_to_token(k) for k in keys)], dtype=np.int64)
    rows = [_Row(chunk_index, -1, tokens)]
    maskable = len(keys) - (1 if keys and keys[-1] == OPEN_KEY else 0)  # OPEN is context, never masked
    for pattern in range(min(stride, maskable)):
        masked = tokens.copy()
        masked[1 + pattern : 1 + maskable : stride] = MASK
        rows.append(_Row(chunk_index, pattern, masked))
    return rows


def score_sequences(
    sequences: list[list[int]], forward: ForwardFn, centre: np.ndarray, settings: DetectionSettings
) -> list[SequenceScore]:
    """Scores key sequences (key indices, -1 = unseen) with any forward function."""
    chunk_owner: list[int] = []
    chunk_keys: list[list[int]] = []
    for owner, keys in enumerate(sequences):
        for chunk in split_chunks(keys, settings.keys_per_chunk):
            chunk_owner.append(owner)
            chunk_keys.append(chunk)
    rows = [row for i, keys in enumerate(chunk_keys) for row in _rows_for_chunk(i, keys, settings.mask_stride)]

    n = len(sequences)
    masked = np.zeros(n, dtype=np.int64)
    misses = np.zeros(n, dtype=np.int64)
    unseen = np.zeros(n, dtype=np.int64)
    surprise_sum = np.zeros(n)
    surprise_max = np.zeros(n)
    distance_sum = np.zeros(n)
    chunks_per_seq = np.bincount(np.array(chunk_owner, dtype=np.int64), minlength=n)
    missed_lists: list[list[MissedKey]] = [[] for _ in range(n)]
    most_surprising: list[MissedKey | None] = [None] * n
    most_surprise = np.full(n, -np.inf)
    chunk_offsets = _chunk_offsets(chunk_owner, chunk_keys, settings.keys_per_chunk)

    # Rows of similar length share a batch, so padding stays small.
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].tokens))
    for start in range(0, len(order), settings.batch_rows):
        batch = [rows[i] for i in order[start : start + settings.batch_rows]]
        width = max(len(r.tokens) for r in batch)
        tokens = np.full((len(batch), width), PAD, dtype=np.int64)
        for i, row in enumerate(batch):
            tokens[i, : len(row.tokens)] = row.tokens
        logits, dist = forward(tokens)
        _accumulate(
            batch, tokens, logits, dist, centre, settings, chunk_owner, chunk_keys, chunk_offsets,
            masked, misses, unseen, surprise_sum, surprise_max, distance_sum, missed_lists,
            most_surprising, most_surprise,
        )  # fmt: skip

    scores = []
    for i, keys in enumerate(sequences):
        scores.append(
            SequenceScore(
                length=sum(1 for k in keys if k >= UNSEEN_KEY),
                masked=int(masked[i]),
                misses=int(misses[i]),
                unseen=int(unseen[i]),
                max_surprise=float(surprise_max[i]),
                mean_surprise=float(surprise_sum[i] / masked[i]) if masked[i] else 0.0,
                distance=float(distance_sum[i] / max(chunks_per_seq[i], 1)),
                missed=sorted(missed_lists[i], key=lambda m: m.position)[: settings.explain_limit],
                most_surprising=most_surprising[i],
            )
        )
    return scores


def _chunk_offsets(chunk_owner: list[int], chunk_keys: list[list[int]], keys_per_chunk: int) -> list[int]:
    offsets, previous_owner, offset = [], -1, 0
    for owner in chunk_owner:
        offset = 0 if owner != previous_owner else offset + keys_per_chunk
        offsets.append(offset)
        previous_owner = owner
    return offsets


def _accumulate(
    batch, tokens, logits, dist, centre, settings, chunk_owner, chunk_keys, chunk_offsets,
    masked, misses, unseen, surprise_sum, surprise_max, distance_sum, missed_lists,
    most_surprising, most_surprise,
) -> None:  # fmt: skip
    stride = settings.mask_stride
    row_index, positions, owners, true_tokens, sequence_positions = [], [], [], [], []
    for i, row in enumerate(batch):
        owner = chunk_owner[row.chunk]
        if row.pattern < 0:
            distance_sum[owner] += float(np.linalg.norm(dist[i] - centre))
            continue
        for p in range(1 + row.pattern, len(row.tokens), stride):
            if row.tokens[p] != MASK:
                continue
            row_index.append(i)
            positions.append(p)
            owners.append(owner)
            true_tokens.append(key_to_token(chunk_keys[row.chunk][p - 1]))
            sequence_positions.append(chunk_offsets[row.chunk] + p - 1)
    if not row_index:
        return
    rows_arr = np.array(row_index)
    owners_arr = np.array(owners)
    truth = np.array(true_tokens)
    selected = logits[rows_arr, np.array(positions)].astype(np.float64)  # (M, vocab)
    selected[:, UNPREDICTABLE] = -np.inf  # only END and real log keys can be predicted
    log_norm = np.logaddexp.reduce(selected, axis=1)
    is_unseen = truth == UNK
    true_logit = selected[np.arange(len(truth)), np.where(is_unseen, 0, truth)]
    surprise = np.where(is_unseen, np.inf, log_norm - true_logit)
    rank = (selected > true_logit[:, None]).sum(axis=1)
    is_miss = is_unseen | (rank >= settings.top_g)

    np.add.at(masked, owners_arr, 1)
    np.add.at(misses, owners_arr, is_miss.astype(np.int64))
    np.add.at(unseen, owners_arr, is_unseen.astype(np.int64))
    np.add.at(surprise_sum, owners_arr, np.where(is_unseen, 0.0, surprise))
    np.maximum.at(surprise_max, owners_arr, surprise)

    def explained(m: int) -> MissedKey:
        top = np.argsort(-selected[m], kind="stable")[: settings.top_g]
        return MissedKey(
            position=sequence_positions[m],
            actual=token_to_key(int(truth[m])),
            expected=[token_to_key(int(t)) for t in top],
            probability=0.0 if is_unseen[m] else float(np.exp(-surprise[m])),
        )

    for m in np.flatnonzero(is_miss):
        owner = owners_arr[m]
        if len(missed_lists[owner]) < settings.explain_limit:
            missed_lists[owner].append(explained(m))
    # per sequence, the position this batch found least likely (stable: the first on ties)
    order = np.lexsort((np.arange(len(surprise)), -surprise, owners_arr))
    owners_sorted = owners_arr[order]
    firsts = order[np.r_[True, owners_sorted[1:] != owners_sorted[:-1]]]
    for m in firsts:
        owner = owners_arr[m]
        if surprise[m] > most_surprise[owner]:
            most_surprise[owner] = surprise[m]
            most_surprising[owner] = explained(m)
