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


def binary_logit(model) -> tuple[NDArray, float] | None:
    """(w, b) with P(class 1 | x) = sigmoid(x @ w + b) when `model` is a fitted binary logistic model, else None.

    For such models every uncertainty measure ranks items by |x @ w + b|, so selection needs no probabilities.
    """
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    logistic = isinstance(model, LogisticRegression) or (
        isinstance(model, SGDClassifier) and model.loss == "log_loss")
    if not logistic or len(getattr(model, "classes_", ())) != 2:
        return None
    return model.coef_[0], float(model.intercept_[0])


def linear_scores(X, w: NDArray, b: float | NDArray) -> NDArray:
    """X @ w + b with w in X's float dtype, so a float32 pool is never upcast (copied) to float64."""
    dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.float64
    return np.asarray(X @ w.astype(dtype, copy=False)) + b


def predict(model, X, n_classes: int) -> NDArray[np.intp]:
    """Predicted class indices (argmax of the probabilities; the sign of the logit for binary logistic models)."""
    logit = binary_logit(model) if n_classes == 2 else None
    if logit is not None:
        return (linear_scores(X, *logit) > 0).astype(np.intp)
    return predict_proba(model, X, n_classes).argmax(axis=1)
