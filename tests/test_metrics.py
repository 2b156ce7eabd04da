import math

import pytest

from evaluation.baselines import key_sets, unseen_set_rule, unseen_template_rule
from evaluation.calibration import SURPRISE_MARGIN, false_positive_rate, threshold_at_fpr
from evaluation.metrics import best_f1_over_thresholds, classification_report, threshold_sweep
from evaluation.split import parse_range, select, train_validation
from models.vocab import END_KEY, UNSEEN_KEY
from sequences.dataset import SequenceSpec


def test_report_against_hand_computed_counts():
    labels = [True, True, True, False, False, False, False]
    predictions = [True, True, False, True, False, False, False]
    report = classification_report(labels, predictions)
    assert (report["tp"], report["fp"], report["tn"], report["fn"]) == (2, 1, 3, 1)
    assert report["precision"] == pytest.approx(2 / 3)
    assert report["recall"] == pytest.approx(2 / 3)
    assert report["f1"] == pytest.approx(2 / 3)


def test_empty_predictions_give_zero_not_nan():
    report = classification_report([True, False], [False, False])
    assert report["precision"] == 0.0 and report["f1"] == 0.0


def test_oracle_sweep_finds_the_separating_threshold():
    labels = [False, False, True, True]
    scores = [0.1, 0.2, 0.5, math.inf]
    best = best_f1_over_thresholds(labels, scores)
    assert best["f1"] == 1.0
    assert 0.2 <= best["threshold"] < 0.5
    assert "oracle" in best["note"]
    assert len(threshold_sweep(labels, scores)) == 4  # -inf and three finite values


def test_threshold_at_fpr_allows_at_most_the_budget():
    normal = [0.0] * 90 + [0.1] * 5 + [0.2] * 4 + [0.9]
    t = threshold_at_fpr(normal, 0.05)
    assert false_positive_rate(normal, t) <= 0.05
    assert t == 0.1  # one step lower would flag 10%
    assert threshold_at_fpr(normal, 0.0) == 0.9  # nothing above the largest normal score
    with pytest.raises(ValueError):
        threshold_at_fpr(normal, 1.5)


def test_a_threshold_with_a_margin_ignores_float_noise_and_flags_no_more_normal_scores():
    normal = [0.0] * 90 + [0.1] * 5 + [0.1005] * 4 + [0.9]
    t = threshold_at_fpr(normal, 0.05, margin=1e-3)
    assert t == pytest.approx(0.10025)  # half way to the next larger score, which stays flagged
    assert false_positive_rate(normal, t) == 0.05 and false_positive_rate([0.1 + 3e-7], t) == 0
    assert threshold_at_fpr(normal, 0.0, margin=1e-3) == pytest.approx(0.901)  # nothing larger: the full margin


def test_baseline_rules():
    train = [[0, 1, 2, END_KEY], [0, 2, END_KEY]]
    test = [[0, 1, 2, 2, END_KEY], [0, 1, END_KEY], [0, UNSEEN_KEY, END_KEY]]
    assert unseen_template_rule(test) == [False, False, True]
    assert unseen_set_rule(test, key_sets(train)) == [False, True, True]


def test_chronological_selection_and_validation_split():
    specs = [SequenceSpec(str(i), [i], label=(i == 3)) for i in range(10)]
    assert [s.id for s in select(specs, parse_range("0:0.6"), None)] == ["0", "1", "2", "3", "4", "5"]
    assert [s.id for s in select(specs, parse_range("0.6:1"), None)] == ["6", "7", "8", "9"]
    train, validation = train_validation(select(specs, (0, 0.6), None), 0.2)
    assert [s.id for s in train] == ["0", "1", "2", "4"]  # the anomalous one is excluded
    assert [s.id for s in validation] == ["5"]  # the latest normal ones
    with pytest.raises(ValueError):
        parse_range("0.7:0.2")


def test_choose_thresholds_spends_the_budget_in_order():
    from evaluation.calibration import ValidationScores, choose_thresholds

    n = 200
    scores = ValidationScores(
        misses=[0] * (n - 1) + [3],
        masked=[10] * n,
        unseen=[0] * (n - 2) + [1, 0],
        max_surprise=[float(i) for i in range(n - 2)] + [float("inf"), 50.0],
    )
    chosen = choose_thresholds(scores, target_fpr=0.02, surprise_rule=True)
    assert chosen["miss_ratio_threshold"] == 0.0  # one sequence (0.5%) misses: within budget
    assert chosen["surprise_threshold"] == pytest.approx(195.0 + SURPRISE_MARGIN)  # the rest of the budget: 2 of 198
    assert chosen["validation_fpr"] <= 0.02 + 1 / n  # plus the one with an unseen template
    off = choose_thresholds(scores, target_fpr=0.02, surprise_rule=False)
    assert off["surprise_threshold"] is None
    again = ValidationScores.from_json(scores.to_json())
    assert again == scores
