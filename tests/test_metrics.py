"""Metrics: evaluate() against a confusion matrix worked out by hand."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from alexp.metrics import evaluate

# Ten items; P(positive) per item. Argmax predictions: [1, 1, 0, 0, 1, 0, 0, 0, 1, 0].
Y_TRUE = np.array([1, 1, 1, 0, 0, 0, 0, 0, 1, 0])
P_POS = np.array([0.9, 0.6, 0.3, 0.2, 0.7, 0.1, 0.4, 0.05, 0.8, 0.45])
PROBA = np.column_stack([1 - P_POS, P_POS])
TP, FN, FP, TN = 3, 1, 1, 5  # counted by hand from the two rows above


def test_threshold_metrics_match_the_hand_confusion_matrix():
    m = evaluate(Y_TRUE, PROBA)
    precision, recall = TP / (TP + FP), TP / (TP + FN)
    assert m["precision"] == pytest.approx(precision)
    assert m["recall"] == pytest.approx(recall)
    assert m["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert m["accuracy"] == pytest.approx((TP + TN) / 10)


def test_kappa_matches_the_hand_computation():
    n = TP + FN + FP + TN
    po = (TP + TN) / n
    pe = ((TP + FN) / n) * ((TP + FP) / n) + ((TN + FP) / n) * ((TN + FN) / n)
    assert evaluate(Y_TRUE, PROBA)["kappa"] == pytest.approx((po - pe) / (1 - pe))  # 0.2800 / 0.48


def test_average_precision_ranks_by_positive_probability():
    # Positives sit at ranks 1, 2, 4, 7 of the P(positive) order: AP = (1/1 + 2/2 + 3/4 + 4/7) / 4.
    ap = evaluate(Y_TRUE, PROBA)["average_precision"]
    assert ap == pytest.approx((1 + 1 + 3 / 4 + 4 / 7) / 4)
    assert ap == pytest.approx(average_precision_score(Y_TRUE, P_POS))


def test_constant_negative_prediction_scores_zero_without_warnings():
    proba = np.tile([0.8, 0.2], (len(Y_TRUE), 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = evaluate(Y_TRUE, proba)
    assert m["kappa"] == 0.0 and m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0
    assert m["accuracy"] == pytest.approx(0.6)
    assert all(isinstance(v, float) for v in m.values())
