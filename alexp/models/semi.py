"""Semi-supervised learning from the unlabeled pool: scikit-learn's self-training around any classifier."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.semi_supervised import SelfTrainingClassifier


class SelfTrained(ClassifierMixin, BaseEstimator):
    """`estimator` self-trained on the bought labels plus a sample of the unlabeled pool (scikit-learn's
    SelfTrainingClassifier: unlabeled rows the estimator labels with probability >= `threshold` join its
    training set as pseudo-labels, up to `max_iter` times). The loop hands `fit` up to `max_unlabeled` unlabeled
    pool rows, a seeded sample of those still unlabeled (never their labels, never the test set); without them it
    is the plain estimator. A strong baseline (Werner et al. 2025: semi-supervised learning can add far more than
    the strategy); usable with any strategy, which sees the self-trained model's probabilities."""

    uses_unlabeled = True  # alexp.loop passes `unlabeled` to fit

    def __init__(self, estimator, threshold: float = 0.9, max_iter: int = 5, max_unlabeled: int = 2000):
        self.estimator = estimator
        self.threshold = threshold
        self.max_iter = max_iter
        self.max_unlabeled = max_unlabeled
        from alexp import AlexpError

        if not 0 < threshold <= 1:
            raise AlexpError(f"threshold must be in (0, 1] (a probability), got {threshold!r}")
        for name, value in (("max_iter", max_iter), ("max_unlabeled", max_unlabeled)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise AlexpError(f"{name} must be a whole number >= 0, got {value!r}")

    def fit(self, X, y, unlabeled=None) -> SelfTrained:
        self.classes_ = np.unique(np.asarray(y))
        if unlabeled is None or unlabeled.shape[0] == 0:
            self.estimator_ = clone(self.estimator).fit(X, y)
            self.pseudo_labeled_ = 0
            return self
        stack = sparse.vstack if sparse.issparse(X) else np.concatenate
        Xs = stack([X, unlabeled])
        ys = np.concatenate([np.asarray(y), np.full(unlabeled.shape[0], -1, dtype=np.asarray(y).dtype)])
        self.estimator_ = SelfTrainingClassifier(clone(self.estimator), threshold=self.threshold,
                                                 max_iter=self.max_iter).fit(Xs, ys)
        self.pseudo_labeled_ = int((self.estimator_.labeled_iter_[len(y):] > 0).sum())
        return self

    @property
    def threshold_(self) -> float:
        """The decision threshold of the classifier inside (TunedThreshold's), for the pick metrics."""
        inner = getattr(self.estimator_, "estimator_", self.estimator_)
        return getattr(inner, "threshold_", 0.5)

    def predict_proba(self, X) -> NDArray[np.float64]:
        return self.estimator_.predict_proba(X)

    def predict(self, X) -> NDArray:
        return self.estimator_.predict(X)
