"""Diversity in the representation space: k-center greedy (Core-Set) and BADGE."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import pairwise_distances_argmin_min

from alexp.acquisition.base import PoolView, candidates, check_max_candidates
from alexp.models import predict_proba


def _row_sq_norms(X) -> NDArray[np.float64]:
    if hasattr(X, "multiply"):
        return np.asarray(X.multiply(X).sum(axis=1), dtype=np.float64).ravel()
    return np.einsum("ij,ij->i", X, X, dtype=np.float64)


def k_center_greedy(X, centers, n: int, first: int | None = None) -> NDArray[np.intp]:
    """Rows of X chosen greedily, each the farthest (Euclidean) from the centers and earlier choices.

    `centers` are feature rows already covered (may be empty); with none, `first` starts the sequence.
    Ties go to the lowest row index. O(len(X) * (len(centers) + n) * d) time, O(len(X)) extra memory.
    """
    sq = _row_sq_norms(X)
    if centers.shape[0]:
        _, dist = pairwise_distances_argmin_min(X, centers)
        min_sq = dist.astype(np.float64) ** 2
    else:
        min_sq = np.full(X.shape[0], np.inf)
    picks = []
    for i in range(n):
        pick = int(np.argmax(min_sq)) if (centers.shape[0] or i) else int(first or 0)
        picks.append(pick)
        # |x - c|^2 = |x|^2 + |c|^2 - 2 x.c: one X @ c in X's own dtype per pick, no float64 copy of X.
        dot = X @ X[pick].T if hasattr(X, "toarray") else X @ X[pick]
        dot = np.asarray(dot.toarray() if hasattr(dot, "toarray") else dot).ravel()
        np.minimum(min_sq, sq + sq[pick] - 2 * dot, out=min_sq)
        min_sq[pick] = -1.0  # never again, even where rounding leaves it slightly above 0
    return np.array(picks, dtype=np.intp)


@dataclass(frozen=True)
class Coreset:
    """Core-Set by k-center greedy (Sener & Savarese 2018): cover the candidates with balls around the labels.

    Model-free: it uses only the feature space. `max_candidates` limits the search to a random subsample
    (null = every candidate of an in-memory pool, 100,000 of a pool on disk) for pools where a pass per pick
    is too slow.
    """

    reads_features: ClassVar[bool] = True  # compares feature vectors (not for raw-text models)

    max_candidates: int | None = None

    def __post_init__(self):
        check_max_candidates(self.max_candidates)

    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        rows = candidates(pool, self.max_candidates, n, rng)
        Xc = pool.X[rows]
        labeled = pool.labeled()
        first = int(rng.integers(len(rows)))
        return rows[k_center_greedy(Xc, pool.X[labeled], n, first)]


def kmeans_pp_factored(gram_row, sq_norms: NDArray, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
    """k-means++ seeding where `gram_row(i)` gives the inner products of every point with point i.

    The first seed is the point of largest norm (as in BADGE's reference code); each next one is drawn with
    probability proportional to its squared distance from the nearest seed so far.
    """
    picks = [int(np.argmax(sq_norms))]
    min_sq = np.maximum(sq_norms + sq_norms[picks[0]] - 2 * gram_row(picks[0]), 0.0)
    for _ in range(1, n):
        min_sq[picks] = 0.0
        total = min_sq.sum()
        if total <= 0:  # every point coincides with a seed: take the rest at random
            rest = np.setdiff1d(np.arange(len(sq_norms)), picks)
            picks.extend(rng.choice(rest, n - len(picks), replace=False).tolist())
            break
        pick = int(rng.choice(len(min_sq), p=min_sq / total))
        picks.append(pick)
        np.minimum(min_sq, np.maximum(sq_norms + sq_norms[pick] - 2 * gram_row(pick), 0.0), out=min_sq)
    return np.array(picks, dtype=np.intp)


@dataclass(frozen=True)
class Badge:
    """BADGE (Ash et al. 2020): k-means++ seeding on gradient embeddings of the last layer.

    For a candidate with features h and predicted probabilities p, the embedding is g = (p - onehot(argmax p))
    (x) [h, 1]: the gradient of the cross-entropy loss at the model's own predicted label with respect to a
    linear softmax last layer (exactly the model's weights for logistic regression). Inner products factor:
    <g_i, g_j> = <p_i - e_i, p_j - e_j> * (<h_i, h_j> + 1), so the embeddings (n x classes*d) are never built.
    `h` is the model's `embed(X)` when it has one (a network's penultimate layer), otherwise the features.
    Seeds are drawn among every candidate, or a random `max_candidates` of them (null: all of an in-memory
    pool, 100,000 of a pool on disk).
    """

    reads_features: ClassVar[bool] = True  # compares feature vectors (not for raw-text models)

    max_candidates: int | None = None

    def __post_init__(self):
        check_max_candidates(self.max_candidates)

    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        rows = candidates(pool, self.max_candidates, n, rng)
        Xc = pool.X[rows]
        H = model.embed(Xc) if hasattr(model, "embed") else Xc
        proba = predict_proba(model, Xc, pool.n_classes)
        G = proba.copy()
        G[np.arange(len(G)), proba.argmax(axis=1)] -= 1.0
        h_sq = _row_sq_norms(H) + 1.0
        sq_norms = (G * G).sum(axis=1) * h_sq

        def gram_row(i):
            hh = H @ H[i:i + 1].T
            hh = np.asarray(hh.toarray() if hasattr(hh, "toarray") else hh, dtype=np.float64).ravel() + 1.0
            return (G @ G[i]) * hh

        return rows[kmeans_pp_factored(gram_row, sq_norms, n, rng)]
