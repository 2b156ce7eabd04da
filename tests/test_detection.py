"""The detection rule with hand-made forward functions, so every count can be checked by hand."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from models.detection import DetectionSettings, is_anomalous, model_input, score_sequences, split_chunks
from models.vocab import DIST, END, END_KEY, MASK, N_SPECIAL, OPEN, OPEN_KEY, PAD, UNSEEN_KEY, key_to_token

VOCAB = N_SPECIAL + 4  # four log keys


def always_predicts(key: int):
    """A forward function whose top prediction is always `key`, then END, then the other keys in order."""

    def forward(tokens: np.ndarray, positions: np.ndarray):
        logits = np.zeros((*positions.shape, VOCAB), dtype=np.float32)
        logits[..., N_SPECIAL + key] = 10.0
        logits[..., END] = 5.0
        return logits, np.ones((tokens.shape[0], 3), dtype=np.float32)

    return forward


def recording_forward(seen: list):
    def forward(tokens, positions):
        seen.append(tokens.copy())
        return always_predicts(0)(tokens, positions)

    return forward


def settings(**overrides) -> DetectionSettings:
    values = dict(top_g=1, mask_stride=2, max_len=8, miss_ratio_threshold=0.0)
    values.update(overrides)
    return DetectionSettings(**values)


def test_every_position_is_masked_exactly_once():
    seen: list = []
    keys = [0, 1, 2, 3, 0, 1, END_KEY]
    score_sequences([keys], recording_forward(seen), np.zeros(3), settings(mask_stride=3, max_len=64))
    rows = np.concatenate(seen)
    masked_counts = (rows == MASK).sum(axis=0)
    assert masked_counts[0] == 0  # DIST never masked
    assert list(masked_counts[1 : len(keys) + 1]) == [1] * len(keys)


def test_misses_are_keys_outside_top_g():
    scores = score_sequences([[0, 1, 0, 2, END_KEY]], always_predicts(0), np.zeros(3), settings())
    s = scores[0]
    assert (s.length, s.masked, s.misses, s.unseen) == (4, 5, 3, 0)  # 1, 2 and END miss at g=1
    assert s.miss_ratio == pytest.approx(3 / 5)
    assert [m.actual for m in s.missed] == [1, 2, END_KEY]
    assert s.missed[0].expected == [0]
    wider = score_sequences([[0, 1, 0, 2, END_KEY]], always_predicts(0), np.zeros(3), settings(top_g=2))[0]
    assert wider.misses == 2  # END is second-best now


def test_unseen_templates_always_miss_and_decide():
    s = score_sequences([[0, UNSEEN_KEY, OPEN_KEY]], always_predicts(0), np.zeros(3), settings(top_g=99))[0]
    assert s.unseen == 1 and s.misses == 1 and s.max_surprise == np.inf
    assert is_anomalous(s, settings(miss_ratio_threshold=0.99))


def test_open_marker_is_never_masked_or_counted():
    s = score_sequences([[0, 0, OPEN_KEY]], always_predicts(0), np.zeros(3), settings())[0]
    assert (s.length, s.masked, s.misses) == (2, 2, 0)


def test_long_sequences_are_chunked_not_truncated():
    keys = [0, 1] * 20 + [END_KEY]  # 41 positions, 7 keys per chunk
    s = score_sequences([keys], always_predicts(0), np.zeros(3), settings())[0]
    assert s.masked == 41
    assert s.misses == 21  # twenty 1s and END
    assert split_chunks(keys, 7)[-1] == [1, 0, 1, 0, 1, END_KEY]


def test_scores_do_not_depend_on_the_batch():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(VOCAB, VOCAB)).astype(np.float32)

    def forward(tokens, positions):
        logits = weights[tokens] + np.cumsum(weights[tokens], axis=1) * 0.1
        return np.take_along_axis(logits, positions[:, :, None], axis=1), logits[:, 0, :3]

    sequences = [[int(k) for k in rng.integers(0, 4, size=n)] + [END_KEY] for n in (3, 9, 1, 15)]
    together = score_sequences(sequences, forward, np.zeros(3), settings(top_g=2, batch_rows=3))
    alone = [score_sequences([s], forward, np.zeros(3), settings(top_g=2))[0] for s in sequences]
    again = score_sequences(sequences, forward, np.zeros(3), settings(top_g=2, batch_rows=3))
    for a, b, c in zip(together, alone, again):
        assert (a.masked, a.misses, a.max_surprise) == (b.masked, b.misses, b.max_surprise)
        assert (a.masked, a.misses, a.max_surprise) == (c.masked, c.misses, c.max_surprise)


def test_decision_rule_thresholds():
    s = score_sequences([[0, 1, 0, 0, END_KEY]], always_predicts(0), np.zeros(3), settings(top_g=2))[0]
    assert s.misses == 1 and s.masked == 5
    assert is_anomalous(s, settings(miss_ratio_threshold=0.1))  # 1 > 0.5
    assert not is_anomalous(s, settings(miss_ratio_threshold=0.2))  # 1 > 1.0 is false
    assert is_anomalous(s, settings(miss_ratio_threshold=0.2, surprise_threshold=1.0))


def test_the_least_likely_key_is_kept_for_explanations():
    rule = settings(top_g=3, surprise_threshold=1.0)
    s = score_sequences([[0, 0, 1, 0, END_KEY]], always_predicts(0), np.zeros(3), rule)[0]
    assert s.misses == 0 and is_anomalous(s, rule)  # everything is inside the top 3, but surprising ...
    assert s.most_surprising.position == 2 and s.most_surprising.actual == 1  # ... and key 1 was least likely
    assert s.most_surprising.expected[0] == 0
    quiet = score_sequences([[0, 0, 0, OPEN_KEY]], always_predicts(0), np.zeros(3), rule)[0]
    assert not is_anomalous(quiet, rule) and quiet.most_surprising is None  # explanations only where flagged


def test_only_flagged_sequences_carry_explanations():
    flagged, quiet = [0, 1, 0, 2, END_KEY], [0, 0, 0, 1, END_KEY]  # 3 and 2 misses of 5 at g=1
    rule = settings(miss_ratio_threshold=0.5)
    a, b = score_sequences([flagged, quiet], always_predicts(0), np.zeros(3), rule)
    assert is_anomalous(a, rule) and not is_anomalous(b, rule)
    assert [m.position for m in a.missed] == [1, 3, 4] and b.missed == [] and b.misses == 2
    _, b_all = score_sequences([flagged, quiet], always_predicts(0), np.zeros(3), rule, explain_all=True)
    assert [m.position for m in b_all.missed] == [3, 4]


def test_explanations_keep_the_first_missed_positions():
    keys = [1] * 30 + [END_KEY]  # every position a miss, scored in chunks of 7
    s = score_sequences([keys], always_predicts(0), np.zeros(3), settings(explain_limit=5))[0]
    assert s.misses == 31 and [m.position for m in s.missed] == [0, 1, 2, 3, 4]


def test_the_detector_scores_each_distinct_sequence_once(trained_model):
    from models.detector import Detector

    detector = Detector.load(trained_model, "cpu")
    rows_seen: list[int] = []
    forward = detector.forward
    detector.forward = lambda tokens, positions: (rows_seen.append(len(tokens)), forward(tokens, positions))[1]
    a, b = [0, 1, 2, END_KEY], [0, 0, UNSEEN_KEY, OPEN_KEY]
    together = detector.score([a, b, a, a])
    rows_for_two = sum(rows_seen)
    rows_seen.clear()
    alone = detector.score([a]) + detector.score([b])
    assert rows_for_two == sum(rows_seen)  # the repeats cost nothing
    assert [(s.masked, s.misses, s.max_surprise) for s in together] == [
        (s.masked, s.misses, s.max_surprise) for s in (alone[0], alone[1], alone[0], alone[0])
    ]


def test_short_and_long_rows_are_not_padded_into_one_batch():
    seen: list = []
    sequences = [[0, END_KEY], [1] * 60 + [END_KEY], [2, 3, END_KEY]]
    together = score_sequences(sequences, recording_forward(seen), np.zeros(3), settings(max_len=64, batch_rows=512))
    alone = [score_sequences([s], always_predicts(0), np.zeros(3), settings(max_len=64))[0] for s in sequences]
    assert [(s.masked, s.misses) for s in together] == [(s.masked, s.misses) for s in alone]
    for tokens in seen:
        shortest = (tokens != 0).sum(axis=1).min()
        assert tokens.shape[1] < 2 * shortest  # a 3-token row never waits in a 62-wide batch


_SEQUENCES = st.lists(
    st.tuples(st.lists(st.integers(UNSEEN_KEY, 3), max_size=40), st.sampled_from([[], [END_KEY], [OPEN_KEY]])).map(
        lambda keys_and_end: keys_and_end[0] + keys_and_end[1]
    ),
    min_size=1,
    max_size=6,
)


@hypothesis_settings(max_examples=200, deadline=None)
@given(_SEQUENCES, st.integers(1, 5), st.integers(2, 12))
def test_the_rows_run_are_each_chunk_once_plain_and_once_per_mask_pattern(sequences, stride, max_len):
    """The rows planned for all sequences at once equal the rule written out sequence by sequence."""
    expected_rows, expected_masked = [], []
    for keys in sequences:
        for part in split_chunks([key_to_token(k) for k in keys], max_len - 1):
            maskable = len(part) - (1 if part and part[-1] == OPEN else 0)
            expected_rows.append([DIST, *part])
            expected_masked.append([])
            for pattern in range(min(maskable, stride)):
                masked = [p for p in range(1, maskable + 1) if (p - 1) % stride == pattern]
                expected_rows.append([DIST, *(MASK if p in masked else t for p, t in enumerate(part, 1))])
                expected_masked.append(masked)
    tokens, positions = model_input(sequences, settings(mask_stride=stride, max_len=max_len))
    width = max(map(len, expected_rows))
    assert tokens.tolist() == [row + [PAD] * (width - len(row)) for row in expected_rows]
    queries = max(1, max(map(len, expected_masked)))
    assert positions.tolist() == [masked + [0] * (queries - len(masked)) for masked in expected_masked]
