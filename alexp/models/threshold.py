"""A decision threshold tuned on the labels a run has bought, never on the gold set."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import ParameterGrid, StratifiedKFold, cross_val_predict


class TunedThreshold(ClassifierMixin, BaseEstimator):
    """A binary classifier whose positive-class threshold maximises Cohen's kappa on out-of-fold predictions.

    The estimator's probabilities on the labeled set come from stratified cross-validation
    (`cross_val_predict`, at most `max_folds` folds and never more than the rarer class has items); the
    threshold is the one among `thresholds` evenly spaced quantiles of those probabilities with the highest
    kappa against the labels. The estimator is then refitted on all labels. With fewer than two items of a
    class there is nothing to tune on, and the threshold stays at 0.5. Kappa on a rare class depends on the
    threshold, and random and curated label sets have very different class shares: tuning each arm on its own
    labels is one rule for all (scikit-learn's TunedThresholdClassifierCV refuses those small, skewed sets).

    With `param_grid` (e.g. {"C": [0.01, 0.1, 1, 10, 100]}) the estimator's hyper-parameters are re-tuned at
    every fit, on the same folds: each setting's out-of-fold probabilities get their best threshold, and the
    setting and threshold with the highest out-of-fold kappa win (the first listed on a tie). Only the labels
    passed to `fit` are read, so a run re-tunes on the labels it has bought, every round (Lüth et al. 2023: a
    model tuned as labels grow can matter more than the strategy).
    """

    def __init__(self, estimator, max_folds: int = 5, thresholds: int = 100, random_state: int | None = None,
                 param_grid: dict | None = None):
        self.estimator = estimator
        self.max_folds = max_folds
        self.thresholds = thresholds
        self.random_state = random_state
        self.param_grid = param_grid
        if param_grid is not None:
            check_grid(estimator, param_grid)

    def fit(self, X, y, sample_weight=None) -> TunedThreshold:
        fit_params = {} if sample_weight is None else {"sample_weight": sample_weight}
        self.classes_, y_idx = np.unique(np.asarray(y), return_inverse=True)
        if len(self.classes_) != 2:
            raise ValueError(f"TunedThreshold is for binary labels; got classes {list(self.classes_)}")
        self.threshold_, self.best_params_ = 0.5, {}
        rare = int(np.bincount(y_idx).min())
        if rare >= 2:
            folds = StratifiedKFold(min(self.max_folds, rare), shuffle=True, random_state=self.random_state or 0)
            best = -np.inf
            for params in ParameterGrid(dict(self.param_grid or {})):
                est = clone(self.estimator).set_params(**params)
                p = cross_val_predict(est, X, y, cv=folds, method="predict_proba", params=fit_params)[:, 1]
                grid = np.unique(np.quantile(p, np.linspace(0, 1, self.thresholds)))
                kappas = np.nan_to_num(threshold_kappas(y_idx, p, grid), nan=-1.0)
                if kappas.max() > best:
                    best, self.threshold_, self.best_params_ = kappas.max(), float(grid[int(np.argmax(kappas))]), params
        self.estimator_ = clone(self.estimator).set_params(**self.best_params_).fit(X, y, **fit_params)
        return self

    def predict_proba(self, X) -> NDArray[np.float64]:
        return self.estimator_.predict_proba(X)

    def predict(self, X) -> NDArray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= self.threshold_).astype(int)]


def threshold_kappas(y: NDArray, p: NDArray, thresholds: NDArray) -> NDArray[np.float64]:
    """Cohen's kappa of the predictions p >= t against binary labels y, for every threshold t at once.

    The same arithmetic as scikit-learn's cohen_kappa_score on each confusion matrix (so the same floats and
    the same argmax), from sorted scores in O((n + thresholds) log n) instead of a pass per threshold."""
    y = np.asarray(y).astype(bool)
    pos, neg = np.sort(p[y]), np.sort(p[~y])
    tp = (len(pos) - np.searchsorted(pos, thresholds, side="left")).astype(np.float64)
    fp = (len(neg) - np.searchsorted(neg, thresholds, side="left")).astype(np.float64)
    fn, tn = len(pos) - tp, len(neg) - fp
    n = len(y)
    expected = (tn + fn) * (fn + tp) / n + (fp + tp) * (tn + fp) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1 - (fp + fn) / expected


def check_grid(estimator, grid) -> None:
    """Raise AlexpError, naming the setting, unless `grid` maps parameters of `estimator` to non-empty lists."""
    from collections.abc import Mapping, Sequence

    from alexp import AlexpError

    if not isinstance(grid, Mapping):
        raise AlexpError(f"param_grid must map parameter names to lists of values, e.g. {{C: [0.1, 1, 10]}}; "
                         f"got {grid!r}")
    known = estimator.get_params() if hasattr(estimator, "get_params") else {}
    for name, values in grid.items():
        if known and name not in known:
            raise AlexpError(f"param_grid: {name!r} is not a parameter of {type(estimator).__name__} (its "
                             f"parameters: {', '.join(sorted(k for k in known if '__' not in k))})")
        if isinstance(values, str) or not isinstance(values, Sequence) or not len(values):
            raise AlexpError(f"param_grid.{name} must be a non-empty list of values, got {values!r}")
