"""Boundary pairs: the curation step of Google Research's 2025 expert-label study, as a batch strategy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics.pairwise import euclidean_distances

from alexp import AlexpError
from alexp.acquisition.base import PoolView, candidates
from alexp.acquisition.uncertainty import Margin
from alexp.models import predict


@dataclass(frozen=True)
class Cluster:
    label: int  # the predicted class of its members
    rows: NDArray[np.intp]  # positions in the candidate array
    centroid: NDArray
    radius: float


@dataclass(frozen=True)
class BoundaryPairs:
    """Nearest pairs of opposite predicted labels where the classes' clusters overlap, spread over the space.

    The blog describes the step in words: the current model (the "scout") labels the pool; each predicted
    class is clustered separately; where clusters of opposite labels overlap, the nearest pairs of items with
    opposite labels go to the experts, preferring pairs that cover more of the space. alexp makes it concrete:

    1. Predict every candidate's class with the current model (candidates: the unlabeled pool, or a seeded
       random subsample of `max_candidates`; with null, 100,000 of a pool on disk).
    2. k-means each predicted class separately in the feature space (`n_clusters` per class, fewer for small
       classes). A cluster's radius is the `radius_quantile` quantile of its members' distances to its centroid.
    3. Two clusters of opposite labels overlap when the distance between their centroids is at most
       `overlap * (radius_a + radius_b)`. Overlapping pairs are ranked by that distance over the radius sum
       (most overlapping first).
    4. In each overlapping cluster pair, the `members_per_side` members of each side nearest to the other
       side's centroid are matched: item pairs are the mutual nearest neighbours across the two sides.
    5. Cover the space: the overlapping cluster pairs take turns (round-robin, most overlapping first); on its
       turn a cluster pair gives its item pair whose midpoint is farthest from the midpoints already chosen
       (its nearest pair on the first turn). Both members of each chosen pair join the batch; an odd batch
       ends with the predicted-positive member of the last pair.
    6. If no clusters overlap, or the pairs run out, the rest of the batch is filled by margin sampling.

    Departures from the blog: it names no clustering method, overlap test or coverage rule, so steps 2, 3 and
    5 are alexp's choices; it sends pairs to several experts and splits their labels into fine-tune and eval
    sets, which alexp leaves to the oracle and the study configs; items already labeled never re-enter a pair.
    """

    reads_features: ClassVar[bool] = True  # compares feature vectors (not for raw-text models)

    n_clusters: int = 10
    overlap: float = 1.0
    radius_quantile: float = 0.9
    members_per_side: int = 200
    max_candidates: int | None = None
    chunk_size: int = 65_536

    def __post_init__(self):
        if self.n_clusters < 1 or self.members_per_side < 1:
            raise AlexpError(f"n_clusters and members_per_side must be >= 1, got {self.n_clusters}, "
                             f"{self.members_per_side}")
        if not 0 < self.radius_quantile <= 1 or self.overlap <= 0:
            raise AlexpError(f"need 0 < radius_quantile <= 1 and overlap > 0, got {self.radius_quantile}, "
                             f"{self.overlap}")

    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        rows = candidates(pool, self.max_candidates, rng)
        X = pool.X[rows]  # dense or sparse; only small blocks are densified below
        labels = predict(model, X, pool.n_classes)
        from threadpoolctl import threadpool_limits

        # One thread: k-means and distance sums then add in a fixed order, so the picks, like every other
        # strategy's, do not depend on how many threads a job has (threads: auto varies it with the launcher).
        with threadpool_limits(limits=1):
            clusters = [c for label in np.unique(labels)
                        for c in self.cluster_class(X, np.flatnonzero(labels == label), int(label), rng)]
            turns = [self.item_pairs(X, a, b) for a, b in self.overlapping(clusters)]
            chosen = rows[cover(X, [t for t in turns if len(t)], labels, n)]
        if len(chosen) < n:
            rest = pool.restrict(np.setdiff1d(pool.unlabeled(), chosen))
            chosen = np.concatenate([chosen, Margin(self.chunk_size)(model, rest, n - len(chosen), rng)])
        return chosen.astype(np.intp)

    def cluster_class(self, X, members: NDArray[np.intp], label: int, rng) -> list[Cluster]:
        """k-means clusters of one predicted class."""
        from sklearn.cluster import KMeans

        k = min(self.n_clusters, max(1, len(members) // 5), len(members))
        if k == 1:
            assign = np.zeros(len(members), dtype=int)
        else:
            seed = int(rng.integers(2**31 - 1))
            # 50 Lloyd iterations locate the regions well enough; sklearn's default 300 dominates the round.
            assign = KMeans(n_clusters=k, n_init=1, max_iter=50, random_state=seed).fit_predict(X[members])
        out = []
        for c in range(k):
            own = members[assign == c]
            centroid = np.asarray(X[own].mean(axis=0)).ravel()
            dist = euclidean_distances(X[own], centroid[None]).ravel()
            out.append(Cluster(label, own, centroid, float(np.quantile(dist, self.radius_quantile))))
        return out

    def overlapping(self, clusters: list[Cluster]) -> list[tuple[Cluster, Cluster]]:
        """Pairs of clusters with different labels that overlap, most overlapping first."""
        scored = []
        for i, a in enumerate(clusters):
            for b in clusters[i + 1:]:
                if a.label != b.label:
                    ratio = np.linalg.norm(a.centroid - b.centroid) / max(a.radius + b.radius, 1e-12)
                    if ratio <= self.overlap:
                        scored.append((ratio, a, b))
        scored.sort(key=lambda t: t[0])
        return [(a, b) for _, a, b in scored]

    def item_pairs(self, X, a: Cluster, b: Cluster) -> NDArray[np.intp]:
        """Mutual nearest neighbours across two clusters, as (pairs x 2) candidate positions, nearest first."""
        side_a = _nearest_to(X, a.rows, b.centroid, self.members_per_side)
        side_b = _nearest_to(X, b.rows, a.centroid, self.members_per_side)
        d = euclidean_distances(X[side_a], X[side_b])
        a_to_b, b_to_a = d.argmin(axis=1), d.argmin(axis=0)
        mutual = np.flatnonzero(b_to_a[a_to_b] == np.arange(len(side_a)))
        order = np.argsort(d[mutual, a_to_b[mutual]], kind="stable")
        return np.stack([side_a[mutual[order]], side_b[a_to_b[mutual[order]]]], axis=1)


def cover(X, turns: list[NDArray[np.intp]], labels: NDArray, n: int) -> NDArray[np.intp]:
    """Round-robin over cluster pairs; each turn takes the pair whose midpoint is farthest from those chosen."""
    chosen: list[int] = []
    taken: set[int] = set()
    mids: list[NDArray] = []
    pools = [list(range(len(t))) for t in turns]
    while len(chosen) < n and any(pools):
        for pairs, left in zip(turns, pools):
            left[:] = [i for i in left if not taken.intersection(pairs[i].tolist())]
            if not left or len(chosen) >= n:
                continue
            mid = _dense((X[pairs[left, 0]] + X[pairs[left, 1]]) / 2)
            best = 0 if not mids else int(np.argmax(euclidean_distances(mid, np.stack(mids)).min(axis=1)))
            pair = pairs[left.pop(best)]
            if len(chosen) == n - 1:  # room for one: the predicted-positive member
                pair = pair[np.argsort(-labels[pair], kind="stable")][:1]
            chosen.extend(pair.tolist())
            taken.update(pair.tolist())
            mids.append(mid[best])
    return np.array(chosen, dtype=np.intp)


def _nearest_to(X, members: NDArray[np.intp], point: NDArray, k: int) -> NDArray[np.intp]:
    if len(members) <= k:
        return members
    d = euclidean_distances(X[members], point[None]).ravel()
    return members[np.argpartition(d, k - 1)[:k]]


def _dense(X):
    return X.toarray() if hasattr(X, "toarray") else np.asarray(X)
