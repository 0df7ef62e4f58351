"""Fitting and scoring any scikit-learn-style classifier the same way every round."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sklearn.base import clone
from sklearn.dummy import DummyClassifier


def fit(model, X, y: NDArray[np.int64], random_state: int):
    """A fresh clone of `model` fitted on (X, y), with every `*random_state` parameter set to `random_state`.

    While the labels hold a single class (a cold start on a rare positive), a class-prior DummyClassifier
    stands in: its constant scores make uncertainty strategies fall back to seeded random choice.
    """
    if len(np.unique(y)) < 2:
        return DummyClassifier(strategy="prior").fit(X, y)
    est = clone(model)
    seeds = {k: random_state for k in est.get_params() if k == "random_state" or k.endswith("__random_state")}
    return est.set_params(**seeds).fit(X, y)


def predict_proba(model, X, n_classes: int) -> NDArray[np.float64]:
    """Class probabilities (n_rows x n_classes), with zero columns for classes the model never saw."""
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    classes = np.asarray(model.classes_)
    if proba.shape[1] == n_classes and np.array_equal(classes, np.arange(n_classes)):
        return proba
    full = np.zeros((proba.shape[0], n_classes))
    full[:, classes] = proba
    return full
