"""Acquisition: which unlabeled pool items to label next.

Every strategy is a small frozen dataclass (its fields are hyperparameters) called as
`strategy(model, pool, n, rng) -> n distinct unlabeled row indices of the pool`. Scores are pure functions
of probabilities where higher means "more worth labeling". The pool is scored a chunk at a time with a
running top-k, so a round costs one pass over the features and O(chunk + k) extra memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.stats import entropy as _entropy

from alexp.models import predict_proba


@dataclass(frozen=True)
class PoolView:
    """Read-only view of the pool for a strategy: features of every pool row and the loop's labeling state."""

    X: Any  # n_pool x d features (ndarray or scipy sparse); never copied
    labeled_in: NDArray[np.int64]  # round each row was labeled in, -1 if unlabeled
    n_classes: int = 2

    def unlabeled(self) -> NDArray[np.intp]:
        return np.flatnonzero(self.labeled_in < 0)

    def labeled(self) -> NDArray[np.intp]:
        return np.flatnonzero(self.labeled_in >= 0)


class Acquisition(Protocol):
    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        """Return n distinct unlabeled row indices of the pool."""


def entropy(proba: NDArray) -> NDArray[np.float64]:
    """Shannon entropy of each row's predicted distribution (nats)."""
    return _entropy(proba, axis=1)


def margin(proba: NDArray) -> NDArray[np.float64]:
    """Minus the gap between the two most probable classes (higher = closer to the boundary)."""
    top2 = np.partition(proba, -2, axis=1)[:, -2:]
    return top2[:, 0] - top2[:, 1]


def least_confidence(proba: NDArray) -> NDArray[np.float64]:
    """One minus the probability of the predicted class."""
    return 1.0 - proba.max(axis=1)


def top_k(scores: NDArray, tiebreak: NDArray, n: int) -> NDArray[np.intp]:
    """Positions of the n highest scores, ties broken by the higher `tiebreak`; best first, in O(len + n log n)."""
    if n < len(scores):
        kth = np.partition(scores, len(scores) - n)[len(scores) - n]
        above = np.flatnonzero(scores > kth)
        tied = np.flatnonzero(scores == kth)
        need = n - len(above)
        if need < len(tied):
            tied = tied[np.argpartition(-tiebreak[tied], need - 1)[:need]]
        keep = np.concatenate([above, tied])
    else:
        keep = np.arange(len(scores))
    return keep[np.lexsort((-tiebreak[keep], -scores[keep]))]


def chunked_top_k(score: Callable[[Any], NDArray], X, rows: NDArray[np.intp], n: int,
                  rng: np.random.Generator, chunk_size: int) -> NDArray[np.intp]:
    """The n of `rows` with the highest `score(X[chunk])`, scoring one chunk of rows at a time.

    Ties are broken by uniform draws from `rng`, so equal scores give a seeded random choice.
    """
    best_rows = np.empty(0, dtype=np.intp)
    best_scores = np.empty(0)
    best_tie = np.empty(0)
    for start in range(0, len(rows), chunk_size):
        chunk = rows[start:start + chunk_size]
        cand_rows = np.concatenate([best_rows, chunk])
        cand_scores = np.concatenate([best_scores, score(X[chunk])])
        cand_tie = np.concatenate([best_tie, rng.random(len(chunk))])
        keep = top_k(cand_scores, cand_tie, n)
        best_rows, best_scores, best_tie = cand_rows[keep], cand_scores[keep], cand_tie[keep]
    return best_rows


@dataclass(frozen=True)
class Random:
    """Uniformly random unlabeled items: the passive-learning baseline."""

    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        return rng.choice(pool.unlabeled(), size=n, replace=False)


@dataclass(frozen=True)
class _UncertaintySampling:
    """Top-n unlabeled items by an uncertainty measure of the model's predicted probabilities."""

    chunk_size: int = 65_536
    measure: ClassVar[Callable[[NDArray], NDArray]]

    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        def score(X_chunk):
            return self.measure(predict_proba(model, X_chunk, pool.n_classes))

        return chunked_top_k(score, pool.X, pool.unlabeled(), n, rng, self.chunk_size)


@dataclass(frozen=True)
class Entropy(_UncertaintySampling):
    """Maximum predictive entropy (Shannon 1948; Settles 2009 survey)."""

    measure = staticmethod(entropy)


@dataclass(frozen=True)
class Margin(_UncertaintySampling):
    """Smallest gap between the top two class probabilities (Scheffer et al. 2001)."""

    measure = staticmethod(margin)


@dataclass(frozen=True)
class LeastConfidence(_UncertaintySampling):
    """Lowest probability of the predicted class (Lewis & Gale 1994)."""

    measure = staticmethod(least_confidence)
