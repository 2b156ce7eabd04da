"""The LogBERT detection rule, deterministic and numpy-only.

A sequence known to have ended closes with END_KEY, which is masked and predicted like a
key, so a session that stops early is as surprising as a wrong key. One that may still
continue (open at the end of a replay, flushed at max length) closes with OPEN_KEY, which
is context only. Every other position is masked exactly once: pattern j of a chunk masks positions p with
(p - 1) % stride == j, so a chunk of n keys needs min(n, stride) masked rows plus one
unmasked row for the DIST vector. A masked key is a miss when the true key is not among
the model's top-g predictions; a key unseen in training is always a miss. Sequences longer
than the model's window are scored in chunks and their counts added up, never truncated.

Numpy only, and deterministic. The per-position arithmetic on the logits (surprise, rank of
the true key, top-g) is `_rank_logits`; the serving graph does the same itself, and a forward
function that offers `ranks` (RanksFn) is asked for those instead of the logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain

import numpy as np

from models.vocab import DIST, MASK, OPEN, PAD, UNK, UNPREDICTABLE, UNSEEN_KEY, keys_to_tokens, tokens_to_keys

# tokens (batch, length) int64, positions (batch, queries) int64
#   -> logits at those positions (batch, queries, vocab) float32, DIST vectors (batch, d) float32
ForwardFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
# A forward function may also rank, as the serving graph does: with an attribute `ranks`,
# (tokens, positions, truth (batch, queries) int64, top_g) -> per asked position the surprise of
# the true token (batch, queries), its rank (batch, queries), the top-g tokens (batch, queries, g);
# and the DIST vectors. The rule then reads those instead of the logits (_rank_logits's results).
RanksFn = Callable[[np.ndarray, np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


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
    distance: float | None  # mean over chunks of ||DIST - c||; None where not measured (distances="flagged")
    missed: list[MissedKey] = field(default_factory=list)  # the first explain_limit, for flagged sequences
    most_surprising: MissedKey | None = None  # the least likely actual key, miss or not (flagged sequences)

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


def split_chunks(keys: Sequence, keys_per_chunk: int) -> list:
    """Chunks of at most keys_per_chunk keys (an empty sequence is one empty chunk); lists or arrays."""
    if len(keys) == 0:
        return [keys]
    return [keys[i : i + keys_per_chunk] for i in range(0, len(keys), keys_per_chunk)]


@dataclass
class _Rows:
    """Every row to run: per chunk one unmasked row (its DIST vector) and one row per mask pattern.
    A chunk is a slice of the sequences' tokens laid end to end, after DIST."""

    tokens: np.ndarray  # every sequence's tokens, one after another
    start: np.ndarray  # per chunk: where its tokens begin in `tokens`
    size: np.ndarray  # per chunk: its tokens (DIST not counted)
    chunk: np.ndarray  # per row: its chunk
    pattern: np.ndarray  # per row: -1 = unmasked, else the pattern j (positions p with (p - 1) % stride == j)
    maskable: np.ndarray  # per chunk: keys that may be masked (all but a final OPEN)
    owner: np.ndarray  # per chunk: the sequence it belongs to
    offset: np.ndarray  # per chunk: position of its first key in the sequence
    lengths: np.ndarray  # per sequence: its log keys (END and OPEN not counted)


def _plan_rows(sequences: list[list[int]], settings: DetectionSettings, unmasked: bool = True) -> _Rows:
    """The rows of all sequences, planned for all of them at once; without `unmasked`, the masked rows only."""
    per_chunk = settings.keys_per_chunk
    sizes = np.fromiter(map(len, sequences), np.int64, len(sequences))
    total = int(sizes.sum())
    keys = np.fromiter(chain.from_iterable(sequences), dtype=np.int64, count=total)
    tokens = keys_to_tokens(keys)
    chunks = np.maximum(1, -(-sizes // per_chunk))  # an empty sequence is one empty chunk
    owner = np.repeat(np.arange(len(sequences)), chunks)
    offset = (np.arange(len(owner)) - (np.cumsum(chunks) - chunks)[owner]) * per_chunk
    start = (np.cumsum(sizes) - sizes)[owner] + offset
    size = np.minimum(per_chunk, sizes[owner] - offset)
    markers = np.repeat(owner, size)[keys < UNSEEN_KEY]  # END and OPEN are no log keys
    lengths = sizes - np.bincount(markers, minlength=len(sequences))
    last = tokens[np.maximum(start + size - 1, 0)] if total else np.zeros(len(owner), dtype=np.int64)
    maskable = size - ((size > 0) & (last == OPEN))  # OPEN is context only
    patterns_per_chunk = np.minimum(maskable, settings.mask_stride) + int(unmasked)
    chunk = np.repeat(np.arange(len(owner)), patterns_per_chunk)
    starts = np.cumsum(patterns_per_chunk) - patterns_per_chunk
    pattern = np.arange(len(chunk)) - np.repeat(starts, patterns_per_chunk) - int(unmasked)
    return _Rows(tokens, start, size, chunk, pattern, maskable, owner, offset, lengths)


def _batch_tokens(rows: _Rows, batch: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The padded model input of these rows, the same without masks (the true tokens), and the
    positions whose logits the rule reads: each row's masked positions (0 fills the rest)."""
    chunk = rows.chunk[batch]
    size = rows.size[chunk][:, None]
    width = int(size.max()) + 1
    positions = np.arange(width)
    in_chunk = (positions >= 1) & (positions <= size)
    taken = np.where(in_chunk, rows.start[chunk][:, None] + positions - 1, 0)
    original = np.where(in_chunk, rows.tokens[taken] if len(rows.tokens) else PAD, PAD)
    original[:, 0] = DIST
    tokens = original.copy()
    pattern = rows.pattern[batch][:, None]
    limit = rows.maskable[chunk][:, None]
    to_mask = (pattern >= 0) & (positions >= 1) & (positions <= limit) & ((positions - 1) % stride == pattern)
    tokens[to_mask] = MASK
    row_index, masked_at = np.nonzero(to_mask)
    per_row = np.bincount(row_index, minlength=len(batch))
    column = np.arange(len(row_index)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    positions = np.zeros((len(batch), max(1, int(per_row.max(initial=0)))), dtype=np.int64)
    positions[row_index, column] = masked_at
    return tokens, original, positions


def model_input(sequences: list[list[int]], settings: DetectionSettings) -> tuple[np.ndarray, np.ndarray]:
    """Every row the rule runs through the model for these sequences: tokens and positions."""
    rows = _plan_rows(sequences, settings)
    tokens, _, positions = _batch_tokens(rows, np.arange(len(rows.chunk)), settings.mask_stride)
    return tokens, positions


@dataclass
class _Totals:
    """Per-sequence running counts, and what explanations need of the misses seen so far."""

    n: int

    def __post_init__(self) -> None:
        n = self.n
        self.masked = np.zeros(n, dtype=np.int64)
        self.misses = np.zeros(n, dtype=np.int64)
        self.unseen = np.zeros(n, dtype=np.int64)
        self.surprise_sum = np.zeros(n)
        self.surprise_max = np.zeros(n)
        self.distance_sum = np.zeros(n)
        self.miss_parts: list[tuple[np.ndarray, ...]] = []  # (owner, position, truth, probability, top-g)
        self.most_surprise = np.full(n, -np.inf)  # the least likely actual key per sequence, miss or not
        self.most_position = np.zeros(n, dtype=np.int64)
        self.most_truth = np.zeros(n, dtype=np.int64)
        self.most_probability = np.zeros(n)
        self.most_top: np.ndarray | None = None  # (n, top-g), once the vocabulary size is known


def score_sequences(
    sequences: list[list[int]], forward: ForwardFn, centre: np.ndarray, settings: DetectionSettings,
    explain_all: bool = False, distances: str = "all",
) -> list[SequenceScore]:  # fmt: skip
    """Scores key sequences (key indices, -1 = unseen) with any forward function. Missed positions
    and the most surprising one are listed for the sequences the rule flags (for all with explain_all).
    distances="flagged": the DIST distance only for the sequences the rule flags (None for the rest,
    unless explain_all). The rule never reads it, and each chunk's unmasked row is then run only
    for those: at mask stride 4, one row in five fewer for the others."""
    if distances not in ("all", "flagged"):
        raise ValueError(f"distances must be 'all' or 'flagged', not {distances!r}")
    deferred = distances == "flagged" and not explain_all
    rows = _plan_rows(sequences, settings, unmasked=not deferred)
    totals = _Totals(len(sequences))
    chunks_per_seq = np.bincount(rows.owner, minlength=len(sequences))
    ranks: RanksFn | None = getattr(forward, "ranks", None)
    for batch in _batches(rows, settings.batch_rows):
        tokens, original, positions = _batch_tokens(rows, batch, settings.mask_stride)
        row_index, column = np.nonzero(positions)  # the masked positions (never 0, the DIST token)
        masked_at = positions[row_index, column]
        truth = original[row_index, masked_at]
        if ranks is not None:
            surprise, rank, top, dist = ranks(tokens, positions, np.take_along_axis(original, positions, 1),
                                              settings.top_g)  # fmt: skip
            ranked = _Asked(surprise[row_index, column].astype(np.float64), rank[row_index, column],
                            lambda m, top=top, r=row_index, c=column: top[r[m], c[m]])  # fmt: skip
        else:
            logits, dist = forward(tokens, positions)
            ranked = _rank_logits(logits[row_index, column], truth, settings.top_g)
        if not deferred:  # else only the flagged sequences' unmasked rows, in _add_distances
            _add_distance(rows, batch, dist, centre, totals)
        _accumulate(rows, batch, row_index, masked_at, truth, ranked, settings, totals)

    flagged = np.ones(len(sequences), dtype=bool) if explain_all else _flagged(totals, settings)
    if deferred:
        _add_distances(rows, flagged, forward, centre, settings, totals)
    missed = _explanations(totals, flagged, settings)
    most: list[MissedKey | None] = [None] * len(sequences)
    has_most = np.flatnonzero(flagged & (totals.most_surprise > -np.inf))  # -inf: nothing was masked
    if len(has_most):
        found = _missed_keys(totals.most_position[has_most], totals.most_truth[has_most],
                             totals.most_probability[has_most], totals.most_top[has_most])  # fmt: skip
        for i, key in zip(has_most.tolist(), found):
            most[i] = key
    masked = totals.masked
    mean_surprise = np.divide(totals.surprise_sum, masked, out=np.zeros(len(sequences)), where=masked > 0)
    distance = (totals.distance_sum / np.maximum(chunks_per_seq, 1)).tolist()
    if deferred:
        distance = [far if measured else None for far, measured in zip(distance, flagged.tolist())]
    return [
        SequenceScore(length, n, misses, unseen, max_surprise, mean, far, missed.get(i, []), most[i])
        for i, (length, n, misses, unseen, max_surprise, mean, far) in enumerate(
            zip(
                rows.lengths.tolist(),
                masked.tolist(),
                totals.misses.tolist(),
                totals.unseen.tolist(),
                totals.surprise_max.tolist(),
                mean_surprise.tolist(),
                distance,
            )
        )
    ]


def _batches(rows: _Rows, batch_rows: int) -> list[np.ndarray]:
    """Rows in batches of at most batch_rows, shortest first; a batch never mixes rows whose
    widths differ twofold or more (same power-of-two class), so padding stays under half a batch."""
    widths = rows.size[rows.chunk] + 1
    order = np.argsort(widths, kind="stable")
    width_class = np.log2(widths[order]).astype(np.int64)
    bounds = [0, *(np.flatnonzero(np.diff(width_class)) + 1).tolist(), len(order)]
    return [
        order[start : min(start + batch_rows, end)]
        for begin, end in zip(bounds, bounds[1:])
        for start in range(begin, end, batch_rows)
    ]


def _missed_keys(position: np.ndarray, truth: np.ndarray, probability: np.ndarray, top: np.ndarray) -> list[MissedKey]:
    return [
        MissedKey(*fields)
        for fields in zip(
            position.tolist(), tokens_to_keys(truth).tolist(), tokens_to_keys(top).tolist(), probability.tolist()
        )  # fmt: skip
    ]


def _run_starts(ordered: np.ndarray) -> np.ndarray:
    """Per element of a sorted array: True where a run of equal values begins."""
    return np.concatenate(([True], ordered[1:] != ordered[:-1]))


def _flagged(totals: _Totals, settings: DetectionSettings) -> np.ndarray:
    ratio = np.divide(totals.misses, totals.masked, out=np.zeros(totals.n), where=totals.masked > 0)
    flagged = (totals.unseen > 0) | (ratio > settings.miss_ratio_threshold)
    if settings.surprise_threshold is not None:
        flagged |= totals.surprise_max > settings.surprise_threshold
    return flagged


def _explanations(totals: _Totals, flagged: np.ndarray, settings: DetectionSettings) -> dict[int, list[MissedKey]]:
    """The first explain_limit missed positions of each flagged sequence."""
    if not totals.miss_parts or not flagged.any():
        return {}
    owner, position, truth, probability, top = (np.concatenate(part) for part in zip(*totals.miss_parts))
    keep = flagged[owner]
    owner, position, truth, probability, top = owner[keep], position[keep], truth[keep], probability[keep], top[keep]
    order = np.lexsort((position, owner))
    first = _run_starts(owner[order])
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    chosen = order[np.arange(len(order)) - group_start < settings.explain_limit]
    out: dict[int, list[MissedKey]] = {}
    for sequence, key in zip(owner[chosen].tolist(),
                             _missed_keys(position[chosen], truth[chosen], probability[chosen], top[chosen])):  # fmt: skip
        out.setdefault(sequence, []).append(key)
    return out


@dataclass
class _Asked:
    """What the rule reads at each masked position of a batch, from the logits there."""

    surprise: np.ndarray  # -log p(true token) over the predictable tokens; inf when unpredictable (UNK)
    rank: np.ndarray  # how many predictable tokens score above the true one
    top: Callable[[np.ndarray], np.ndarray]  # some of these positions -> their top-g tokens, most likely first


def _rank_logits(logits: np.ndarray, truth: np.ndarray, top_g: int) -> _Asked:
    """logits (M, vocab) at M masked positions, truth (M,) their true tokens. The serving graph
    does the same in ONNX (models/serving_graph.py, _rule_arithmetic)."""
    selected = logits.astype(np.float64)
    selected[:, UNPREDICTABLE] = -np.inf  # only END and real log keys can be predicted
    peak = selected.max(axis=1)  # log-sum-exp shifted by the row's largest logit (one exp per logit)
    log_norm = peak + np.log(np.exp(selected - peak[:, None]).sum(axis=1))
    true_logit = selected[np.arange(len(truth)), truth]
    rank = (selected > true_logit[:, None]).sum(axis=1)
    return _Asked(log_norm - true_logit, rank,
                  lambda m: np.argsort(-selected[m], axis=1, kind="stable")[:, :top_g])  # fmt: skip


def _accumulate(rows: _Rows, batch: np.ndarray, row_index: np.ndarray, positions: np.ndarray, truth: np.ndarray,
                asked: _Asked, settings: DetectionSettings, totals: _Totals) -> None:  # fmt: skip
    """row_index, positions, truth: per masked position of the batch, its row, position and true token."""
    chunk = rows.chunk[batch]
    if not len(row_index):
        return
    owners = rows.owner[chunk[row_index]]
    sequence_positions = rows.offset[chunk[row_index]] + positions - 1
    is_unseen = truth == UNK
    surprise = np.where(is_unseen, np.inf, asked.surprise)
    is_miss = is_unseen | (asked.rank >= settings.top_g)
    probability = np.where(is_unseen, 0.0, np.exp(-surprise))

    np.add.at(totals.masked, owners, 1)
    np.add.at(totals.misses, owners, is_miss.astype(np.int64))
    np.add.at(totals.unseen, owners, is_unseen.astype(np.int64))
    np.add.at(totals.surprise_sum, owners, np.where(is_unseen, 0.0, surprise))
    np.maximum.at(totals.surprise_max, owners, surprise)

    miss = np.flatnonzero(is_miss)
    if len(miss):
        totals.miss_parts.append((owners[miss], sequence_positions[miss], truth[miss], probability[miss],
                                  asked.top(miss)))  # fmt: skip
    # per sequence, the position this batch found least likely (stable: the first on ties)
    order = np.lexsort((np.arange(len(surprise)), -surprise, owners))
    firsts = order[_run_starts(owners[order])]
    better = firsts[surprise[firsts] > totals.most_surprise[owners[firsts]]]
    if len(better):
        who = owners[better]
        top = asked.top(better)
        if totals.most_top is None:
            totals.most_top = np.zeros((totals.n, top.shape[1]), dtype=np.int64)
        totals.most_surprise[who] = surprise[better]
        totals.most_position[who] = sequence_positions[better]
        totals.most_truth[who] = truth[better]
        totals.most_probability[who] = probability[better]
        totals.most_top[who] = top


def _add_distance(rows: _Rows, batch: np.ndarray, dist: np.ndarray, centre: np.ndarray, totals: _Totals) -> None:
    """Adds ||DIST - c|| of the batch's unmasked rows to their sequences' sums."""
    unmasked = rows.pattern[batch] < 0
    away = dist[unmasked] - centre
    distance = np.sqrt(np.add.reduce(away * away, axis=1))  # np.linalg.norm's own sum, without its checks
    np.add.at(totals.distance_sum, rows.owner[rows.chunk[batch][unmasked]], distance)


def _add_distances(
    rows: _Rows, flagged: np.ndarray, forward: ForwardFn, centre: np.ndarray, settings: DetectionSettings,
    totals: _Totals,
) -> None:  # fmt: skip
    """Runs the unmasked row of every chunk of the flagged sequences, for their distances."""
    chunks = np.flatnonzero(flagged[rows.owner])
    if not len(chunks):
        return
    unmasked = replace(rows, chunk=chunks, pattern=np.full(len(chunks), -1))
    for batch in _batches(unmasked, settings.batch_rows):
        tokens, _, positions = _batch_tokens(unmasked, batch, settings.mask_stride)
        _add_distance(unmasked, batch, forward(tokens, positions)[1], centre, totals)
