"""Agreement metrics of a model's predictions with gold labels, all from sklearn.metrics."""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (accuracy_score, average_precision_score, cohen_kappa_score,
                             precision_recall_fscore_support)


def evaluate(y_true: NDArray[np.int64], proba: NDArray[np.float64]) -> dict[str, float]:
    """Binary-task metrics of argmax predictions (a 0.5 threshold) against gold labels, positive class = 1.

    kappa is Cohen's kappa (the primary metric); average_precision ranks by P(positive) and so does not
    depend on the threshold.
    """
    y_pred = proba.argmax(axis=1)
    with warnings.catch_warnings():  # a constant prediction has undefined kappa/precision: report 0
        for category in (UndefinedMetricWarning, RuntimeWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        kappa = cohen_kappa_score(y_true, y_pred)
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, pos_label=1, average="binary", zero_division=0)
    return {
        "kappa": 0.0 if np.isnan(kappa) else float(kappa),
        "f1": float(f1),
        "precision": float(precision),
        "recall": float(recall),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "average_precision": float(average_precision_score(y_true, proba[:, 1])),
    }
