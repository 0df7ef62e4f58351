"""Agreement metrics of a model's predictions with gold labels, all from sklearn.metrics."""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (accuracy_score, average_precision_score, cohen_kappa_score,
                             precision_recall_fscore_support)


def agreement(a: NDArray, b: NDArray) -> float:
    """Cohen's kappa of two label vectors; 0.0 where it is undefined (a single label throughout)."""
    with warnings.catch_warnings():
        for category in (UndefinedMetricWarning, RuntimeWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        kappa = cohen_kappa_score(a, b)
    return 0.0 if np.isnan(kappa) else float(kappa)


def evaluate(y_true: NDArray[np.int64], proba: NDArray[np.float64], y_pred: NDArray | None = None) -> dict[str, float]:
    """Binary-task metrics of predictions against gold labels, positive class = 1.

    `y_pred` defaults to the argmax of `proba` (a 0.5 threshold). kappa is Cohen's kappa (the primary metric);
    average_precision ranks by P(positive) and so does not depend on the threshold.
    """
    y_pred = proba.argmax(axis=1) if y_pred is None else np.asarray(y_pred)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, pos_label=1, average="binary", zero_division=0)
    return {
        "kappa": agreement(y_true, y_pred),
        "f1": float(f1),
        "precision": float(precision),
        "recall": float(recall),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "average_precision": float(average_precision_score(y_true, proba[:, 1])),
    }
