"""Uncertainty sampling: score each candidate by how unsure the current model is about it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy.stats import entropy as _entropy

from alexp.acquisition.base import PoolView, blocks, candidates, check_max_candidates, select_top
from alexp.models import binary_logit, linear_scores, predict_proba


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


def uncertainty_scorer(model, n_classes: int, measure: Callable[[NDArray], NDArray]) -> Callable:
    """A block scorer: `measure` of the predicted probabilities, or -|logit| for binary logistic models.

    The shortcut is exact for ranking: entropy, margin and least confidence of sigmoid(z) all decrease in |z|.
    It costs one X @ w per block and keeps float32 pools in float32.
    """
    logit = binary_logit(model) if n_classes == 2 else None
    if logit is not None:
        w, b = logit
        return lambda X: -np.abs(linear_scores(X, w, b))
    return lambda X: measure(predict_proba(model, X, n_classes))


@dataclass(frozen=True)
class Random:
    """Uniformly random candidates: the passive-learning baseline."""

    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        return rng.choice(pool.unlabeled(), size=n, replace=False)


@dataclass(frozen=True)
class _UncertaintySampling:
    """Top-n candidates by an uncertainty measure of the model's predicted probabilities."""

    chunk_size: int = 65_536
    max_candidates: int | None = None  # score a seeded random subsample of this many candidates (slow models)
    measure: ClassVar[Callable[[NDArray], NDArray]]

    def __post_init__(self):
        check_max_candidates(self.max_candidates)

    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        if self.max_candidates is not None:
            pool = pool.restrict(candidates(pool, self.max_candidates, n, rng))
        return select_top(uncertainty_scorer(model, pool.n_classes, self.measure), pool, n, rng, self.chunk_size)


@dataclass(frozen=True)
class Entropy(_UncertaintySampling):
    """Maximum predictive entropy (Settles 2009, Active Learning Literature Survey)."""

    measure = staticmethod(entropy)


@dataclass(frozen=True)
class Margin(_UncertaintySampling):
    """Smallest gap between the two most probable classes (Scheffer et al. 2001)."""

    measure = staticmethod(margin)


@dataclass(frozen=True)
class LeastConfidence(_UncertaintySampling):
    """Lowest probability of the predicted class (Lewis & Gale 1994)."""

    measure = staticmethod(least_confidence)


@dataclass(frozen=True)
class DensityWeighted:
    """Information density (Settles & Craven 2008): entropy x (representativeness) ** beta.

    Representativeness is the mean cosine similarity of a candidate to all candidates, mapped to [0, 1] as
    (1 + cos) / 2. That mean equals the dot product of the candidate's unit vector with the mean unit vector of
    the candidates, so it costs one extra pass over the pool instead of an N x N similarity matrix.
    """

    reads_features: ClassVar[bool] = True  # compares feature vectors (not for raw-text models)

    beta: float = 1.0
    chunk_size: int = 65_536

    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        centroid = _mean_unit_vector(pool, self.chunk_size)

        def score(X):  # entropy values, not a ranking shortcut: they are multiplied by the density
            density = np.clip((1.0 + _unit_rows(X) @ centroid) / 2.0, 0.0, 1.0)
            return entropy(predict_proba(model, X, pool.n_classes)) * density ** self.beta

        return select_top(score, pool, n, rng, self.chunk_size)


def _unit_rows(X) -> NDArray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as a dense float array."""
    from sklearn.preprocessing import normalize

    out = normalize(X)
    return out.toarray() if hasattr(out, "toarray") else out


def _mean_unit_vector(pool: PoolView, chunk_size: int) -> NDArray:
    mask = pool.candidate_mask()
    total = 0.0
    for start, stop in blocks(len(mask), chunk_size):
        keep = mask[start:stop]
        if keep.any():
            total = total + np.asarray(_unit_rows(pool.X[start:stop])[keep].sum(axis=0)).ravel()
    return total / max(1, mask.sum())
