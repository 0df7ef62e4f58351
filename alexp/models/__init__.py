"""Fitting and scoring any scikit-learn-style classifier the same way every round.

Besides scikit-learn's classifiers: `MLPHead` (a torch head over fixed embeddings, with MC-dropout samples),
`TransformerClassifier` (fine-tunes a transformers sequence classifier on raw text) and `ZeroShot` (a scout
that needs no labels). Models never log to MLflow; the runner does.
"""

from __future__ import annotations

import inspect

import numpy as np
from numpy.typing import NDArray
from sklearn.base import clone
from sklearn.dummy import DummyClassifier

from alexp import AlexpError
from alexp.models.mlp import MLPHead
from alexp.models.semi import SelfTrained
from alexp.models.threshold import TunedThreshold
from alexp.models.transformer import TransformerClassifier
from alexp.models.zero_shot import ZeroShot
from alexp.shards import is_disk

__all__ = ["MLPHead", "SelfTrained", "TransformerClassifier", "TunedThreshold", "ZeroShot", "fit", "predict_proba",
           "sample_proba", "predict", "proba_and_predict", "binary_logit", "linear_scores", "prepare"]


def prepare(model, *inputs) -> None:
    """Show a model that reads raw texts (or one it wraps) every text of the run once, before the rounds:
    `TransformerClassifier.prepare` tokenizes them and runs its frozen layers over them in one pass."""
    inner = model.get_params(deep=True).values() if hasattr(model, "get_params") else []
    for m in [model, *inner]:
        if isinstance(m, TransformerClassifier):
            m.prepare(np.concatenate([np.asarray(x, dtype=object) for x in inputs]))


def fit(model, X, y: NDArray[np.int64], random_state: int, unlabeled=None, sample_weight=None):
    """A fresh clone of `model` fitted on (X, y), with every `*random_state` parameter set to `random_state`;
    a semi-supervised model (`uses_unlabeled`, e.g. SelfTrained) also gets the unlabeled rows `unlabeled`, and
    `sample_weight` (per label, e.g. by the tier that gave it) goes to a model whose fit takes it.

    A model with `warm_start=True` is fitted in place instead, continuing from its last fit (scikit-learn's
    meaning of warm_start). While the labels hold a single class (a cold start on a rare positive), a
    class-prior DummyClassifier stands in: its constant scores make uncertainty strategies fall back to
    seeded random choice.
    """
    if len(np.unique(y)) < 2:
        return DummyClassifier(strategy="prior").fit(np.zeros((len(y), 1)), y)
    est = model if getattr(model, "warm_start", False) else clone(model)
    seeds = {k: random_state for k in est.get_params() if k == "random_state" or k.endswith("__random_state")}
    est.set_params(**seeds)
    extra = {} if sample_weight is None else {"sample_weight": sample_weight}
    if extra and "sample_weight" not in inspect.signature(est.fit).parameters:
        raise AlexpError(f"{type(est).__name__} does not take sample weights, so tier weights cannot apply: set "
                         "every oracle.tiers.<name>.weight to 1, or choose a model whose fit takes sample_weight")
    if unlabeled is not None and getattr(est, "uses_unlabeled", False):
        return est.fit(X, y, unlabeled=unlabeled, **extra)
    return est.fit(X, y, **extra)


def predict_proba(model, X, n_classes: int) -> NDArray[np.float64]:
    """Class probabilities (n_rows x n_classes), with zero columns for classes the model never saw.

    An on-disk array (alexp.shards.DiskArray) is scored a block at a time."""
    if is_disk(X):
        return _blockwise(lambda block: predict_proba(model, block, n_classes), X)
    return _all_classes(np.asarray(model.predict_proba(X), dtype=np.float64), model.classes_, n_classes)


def _blockwise(fn, X):
    """fn over X's blocks, concatenated: one block of an on-disk array in memory at a time."""
    return np.concatenate([fn(block) for _, block in X.blocks()]) if len(X) else fn(X[:0])


def _all_classes(proba: NDArray, classes, n_classes: int) -> NDArray:
    """`proba` (..., len(classes)) spread onto all n_classes columns, zero for classes the model never saw."""
    classes = np.asarray(classes)
    if proba.shape[-1] == n_classes and np.array_equal(classes, np.arange(n_classes)):
        return proba
    full = np.zeros((*proba.shape[:-1], n_classes))
    full[..., classes] = proba
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


def predict(model, X, n_classes: int, proba: NDArray | None = None) -> NDArray[np.intp]:
    """Predicted class indices: the model's own `predict` (its threshold, e.g. TunedThreshold's), the sign of
    the logit for binary logistic models, or the argmax of the probabilities (of `proba` if already computed)
    for models without a predict method."""
    if is_disk(X) and (proba is None or hasattr(model, "predict")):
        return _blockwise(lambda block: predict(model, block, n_classes), X)
    logit = binary_logit(model) if n_classes == 2 else None
    if logit is not None:
        return (linear_scores(X, *logit) > 0).astype(np.intp)
    if hasattr(model, "predict"):
        return np.asarray(model.predict(X)).astype(np.intp)
    return (predict_proba(model, X, n_classes) if proba is None else proba).argmax(axis=1)


def proba_and_predict(model, X, n_classes: int) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """`predict_proba` and `predict` together: one pass over an on-disk array instead of two."""
    if is_disk(X) and len(X):
        parts = [proba_and_predict(model, block, n_classes) for _, block in X.blocks()]
        return np.concatenate([p for p, _ in parts]), np.concatenate([c for _, c in parts])
    proba = predict_proba(model, X, n_classes)
    return proba, predict(model, X, n_classes, proba)


def sample_proba(model, X, n_samples: int, n_classes: int, rng: np.random.Generator) -> NDArray[np.float64] | None:
    """Posterior samples of the class probabilities (n_samples x n_rows x n_classes) from a model that draws
    them (MC dropout: `model.sample_proba`), or None for a model that cannot."""
    if not hasattr(model, "sample_proba"):
        return None
    samples = np.asarray(model.sample_proba(X, n_samples=n_samples, rng=rng), dtype=np.float64)
    return _all_classes(samples, model.classes_, n_classes)
