"""Uncertainty combined with diversity or class balance: Cluster-Margin and the class-balanced wrapper."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError
from alexp.acquisition.base import Acquisition, PoolView, blocks
from alexp.acquisition.uncertainty import Margin
from alexp.models import predict


def average_linkage_labels(X, n_clusters: int, random_state: int, max_points: int = 2000) -> NDArray[np.intp]:
    """Average-linkage agglomerative cluster label of every row of X.

    Up to `max_points` rows are clustered exactly (sklearn AgglomerativeClustering). Beyond that a seeded
    random subsample of `max_points` rows is clustered, and every row joins the cluster with the nearest
    centroid: O(n * n_clusters * d) instead of the O(n^2) memory of exact linkage.
    """
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import pairwise_distances_argmin

    n = X.shape[0]
    sample = np.arange(n) if n <= max_points else np.sort(
        np.random.default_rng(random_state).choice(n, max_points, replace=False))
    Xs = X[sample]
    Xs = Xs.toarray() if hasattr(Xs, "toarray") else Xs
    k = max(1, min(n_clusters, len(sample)))
    sub = AgglomerativeClustering(n_clusters=k, linkage="average").fit_predict(Xs) if k > 1 else np.zeros(len(Xs), int)
    if len(sample) == n:
        return sub
    centroids = np.stack([Xs[sub == c].mean(axis=0) for c in range(k)])
    return np.concatenate([pairwise_distances_argmin(X[a:b], centroids) for a, b in blocks(n, 65_536)])


@dataclass(frozen=True)
class ClusterMargin:
    """Cluster-Margin (Citovsky et al. 2021): lowest-margin candidates, spread round-robin over clusters.

    The pool is clustered once (average linkage, see `average_linkage_labels`; cached for the run): on a
    large or on-disk pool a streaming approximation, exact linkage of a `max_cluster_points` sample and one
    block-by-block pass assigning every row to its nearest cluster centroid. Each
    round takes the `margin_multiplier * n` lowest-margin candidates, groups them by cluster, orders the
    clusters from smallest to largest, and picks one random member of each in turn until n are chosen.
    """

    reads_features: ClassVar[bool] = True  # compares feature vectors (not for raw-text models)

    n_clusters: int = 50
    margin_multiplier: float = 10.0
    max_cluster_points: int = 2000
    random_state: int = 0  # the clustering's seed, fixed so that it does not vary between rounds
    chunk_size: int = 65_536
    _clusters: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.margin_multiplier < 1:
            raise AlexpError(f"margin_multiplier must be >= 1, got {self.margin_multiplier}")

    def clusters(self, X) -> NDArray[np.intp]:
        key = (id(X), X.shape)
        if key not in self._clusters:
            self._clusters.clear()
            self._clusters[key] = average_linkage_labels(X, self.n_clusters, self.random_state,
                                                         self.max_cluster_points)
        return self._clusters[key]

    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        n_cand = min(int(np.ceil(self.margin_multiplier * n)), int(pool.candidate_mask().sum()))
        cand = Margin(self.chunk_size)(model, pool, n_cand, rng)
        return round_robin(cand, self.clusters(pool.X)[cand], n, rng)


def round_robin(rows: NDArray[np.intp], groups: NDArray, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
    """n rows taken one per group in turn, smallest group first, each group's rows in random order."""
    ids, sizes = np.unique(groups, return_counts=True)
    queues = [list(rng.permutation(rows[groups == g])) for g in ids[np.argsort(sizes, kind="stable")]]
    picks: list[int] = []
    while len(picks) < n:
        for q in queues:
            if q and len(picks) < n:
                picks.append(q.pop())
        queues = [q for q in queues if q]
    return np.array(picks, dtype=np.intp)


@dataclass(frozen=True)
class ClassBalanced:
    """Any strategy, with `positive_share` of each batch drawn from candidates the model predicts positive.

    On a rare-positive task plain strategies surface few positives; this fills up to that share of the batch
    with the base strategy's choices among predicted positives (all of them if there are fewer), and the rest
    with its choices among the remaining candidates.
    """

    base: Acquisition = field(default_factory=Margin)
    positive_share: float = 0.5
    positive_class: int = 1
    chunk_size: int = 65_536

    def __post_init__(self):
        if not 0 <= self.positive_share <= 1:
            raise AlexpError(f"positive_share must be in [0, 1], got {self.positive_share}")

    def __call__(self, model: Any, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        mask = pool.candidate_mask()
        positive = np.concatenate([
            np.flatnonzero(mask[a:b] & (predict(model, pool.X[a:b], pool.n_classes) == self.positive_class)) + a
            for a, b in blocks(len(mask), self.chunk_size)])
        n_pos = min(round(self.positive_share * n), len(positive))
        first = self.base(model, pool.restrict(positive), n_pos, rng) if n_pos else np.empty(0, np.intp)
        rest = np.setdiff1d(np.flatnonzero(mask), first, assume_unique=True)
        second = self.base(model, pool.restrict(rest), n - n_pos, rng) if n > n_pos else np.empty(0, np.intp)
        return np.concatenate([first, second]).astype(np.intp)
