"""Boundary pairs: the curation step of Google Research's 2025 expert-label study, as a batch strategy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics.pairwise import euclidean_distances

from alexp import AlexpError
from alexp.acquisition.base import PoolView, candidates, check_max_candidates
from alexp.acquisition.uncertainty import Margin
from alexp.models import predict


@dataclass(frozen=True)
class Cluster:
    label: int  # the predicted class of its members
    rows: NDArray[np.intp]  # positions in the candidate array
    centroid: NDArray


@dataclass(frozen=True)
class BoundaryPairs:
    """Nearest pairs of opposite predicted labels where the classes' clusters overlap, spread over the space.

    The blog describes the step in words: the current model (the "scout") labels the pool; each predicted
    class is clustered separately; where clusters of opposite labels overlap, the nearest pairs of items with
    opposite labels go to the experts, preferring pairs that cover more of the space. alexp makes it concrete:

    1. Predict every candidate's class with the current model (candidates: the unlabeled pool, or a seeded
       random subsample of `max_candidates`; with null, 100,000 of a pool on disk).
    2. k-means each predicted class separately in the feature space (`n_clusters` per class, fewer for small
       classes; fitted on a seeded sample of at most `fit_sample` members, then every member goes to its
       nearest centroid).
    3. For each pair of clusters of opposite labels, take the `members_per_side` members of each side nearest
       to the other side's centroid. The pair's *contact ratio* is the distance of its nearest opposite-label
       item pair over the median distance from those members to their nearest member on their own side: at
       most 1, the two clusters come as close somewhere as neighbours within a cluster do, so they meet; well
       above 1, a gap separates them. Cluster pairs with a ratio of at most `overlap` overlap, most overlapping
       first. (A model whose predictions split the feature space by a plane, like logistic regression on the
       same features, never gives clusters that interpenetrate: touching is what overlap can mean there.)
    4. In each overlapping cluster pair, item pairs are the mutual nearest neighbours across the two sides.
    5. Cover the space: the overlapping cluster pairs take turns (round-robin, most overlapping first); on its
       turn a cluster pair gives its item pair whose midpoint is farthest from the midpoints already chosen
       (its nearest pair on the first turn). Both members of each chosen pair join the batch; an odd batch
       ends with the predicted-positive member of the last pair.
    6. If no clusters overlap, or the pairs run out, the rest of the batch is filled by margin sampling.

    After each call, `stats` holds what the step did: the share of opposite-label cluster pairs that
    overlapped, their median contact ratio, and how many picks margin sampling filled (the loop logs them as
    `pairs_overlap_share`, `pairs_contact_ratio` and `pairs_fallback`).

    Departures from the blog: it names no clustering method, overlap test or coverage rule, so steps 2, 3 and
    5 are alexp's choices; it sends pairs to several experts and splits their labels into fine-tune and eval
    sets, which alexp leaves to the oracle and the study configs; items already labeled never re-enter a pair.
    """

    reads_features: ClassVar[bool] = True  # compares feature vectors (not for raw-text models)

    n_clusters: int = 10
    overlap: float = 1.0
    members_per_side: int = 100
    fit_sample: int = 20_000
    max_candidates: int | None = None
    chunk_size: int = 65_536
    stats: dict = field(default_factory=dict, compare=False, repr=False)  # diagnostics of the last call

    def __post_init__(self):
        check_max_candidates(self.max_candidates)
        if self.n_clusters < 1 or self.members_per_side < 2 or self.fit_sample < 1:
            raise AlexpError(f"n_clusters and fit_sample must be >= 1 and members_per_side >= 2, got "
                             f"{self.n_clusters}, {self.fit_sample}, {self.members_per_side}")
        if self.overlap <= 0:
            raise AlexpError(f"overlap must be > 0 (a contact ratio; 1 = opposite neighbours as near as own "
                             f"ones), got {self.overlap}")

    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        rows = candidates(pool, self.max_candidates, n, rng)
        X = pool.X[rows]  # dense or sparse; only small blocks are densified below
        labels = predict(model, X, pool.n_classes)
        from threadpoolctl import threadpool_limits

        # One thread: k-means and distance sums then add in a fixed order, so the picks, like every other
        # strategy's, do not depend on how many threads a job has (threads: auto varies it with the launcher).
        with threadpool_limits(limits=1):
            clusters = [c for label in np.unique(labels)
                        for c in self.cluster_class(X, np.flatnonzero(labels == label), int(label), rng)]
            scored = self.contacts(X, clusters)
            turns = [pairs for ratio, pairs in scored if ratio <= self.overlap and len(pairs)]
            chosen = rows[cover(X, turns, labels, n)]
        self.stats.clear()
        self.stats.update(pairs_overlap_share=float(np.mean([r <= self.overlap for r, _ in scored]))
                          if scored else float("nan"),
                          pairs_contact_ratio=float(np.median([r for r, _ in scored])) if scored else float("nan"),
                          pairs_fallback=float(n - len(chosen)))
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
            fit = members if len(members) <= self.fit_sample else \
                np.sort(np.random.default_rng(seed).choice(members, self.fit_sample, replace=False))
            # 50 Lloyd iterations locate the regions well enough; sklearn's default 300 dominates the round.
            km = KMeans(n_clusters=k, n_init=1, max_iter=50, random_state=seed).fit(X[fit])
            assign = km.predict(X[members])
        out = []
        for c in range(k):
            own = members[assign == c]
            if len(own):
                out.append(Cluster(label, own, np.asarray(X[own].mean(axis=0)).ravel()))
        return out

    def contacts(self, X, clusters: list[Cluster]) -> list[tuple[float, NDArray[np.intp]]]:
        """(contact ratio, item pairs) of every pair of clusters with different labels, lowest ratio first.

        Item pairs are the mutual nearest neighbours across the two sides, as (pairs x 2) candidate positions,
        nearest first."""
        sides = self.sides(X, clusters)
        scored = []
        for i, a in enumerate(clusters):
            for j, b in enumerate(clusters):
                if j <= i or a.label == b.label:
                    continue
                side_a, side_b = sides[i, j], sides[j, i]
                d = euclidean_distances(X[side_a], X[side_b])
                own = [_nearest_own(X, s) for s in (side_a, side_b)]
                own = np.concatenate([o for o in own if len(o)] or [np.empty(0)])  # lone members: no own distance
                cross = np.concatenate([d.min(axis=1), d.min(axis=0)])
                ratio = float(cross.min() / max(np.median(own), 1e-12)) if len(own) else float("inf")
                a_to_b, b_to_a = d.argmin(axis=1), d.argmin(axis=0)
                mutual = np.flatnonzero(b_to_a[a_to_b] == np.arange(len(side_a)))
                order = np.argsort(d[mutual, a_to_b[mutual]], kind="stable")
                scored.append((ratio, np.stack([side_a[mutual[order]], side_b[a_to_b[mutual[order]]]], axis=1)))
        scored.sort(key=lambda t: t[0])
        return scored

    def sides(self, X, clusters: list[Cluster]) -> dict[tuple[int, int], NDArray[np.intp]]:
        """(i, j) -> the members_per_side members of cluster i nearest cluster j's centroid (opposite labels
        only): one distance computation per cluster against all the other class's centroids."""
        out = {}
        for i, a in enumerate(clusters):
            others = [j for j, b in enumerate(clusters) if b.label != a.label]
            if not others:
                continue
            d = euclidean_distances(X[a.rows], np.stack([clusters[j].centroid for j in others]))
            k = min(self.members_per_side, len(a.rows))
            for col, j in enumerate(others):
                out[i, j] = a.rows[np.argpartition(d[:, col], k - 1)[:k]] if k < len(a.rows) else a.rows
        return out


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


def _nearest_own(X, side: NDArray[np.intp]) -> NDArray:
    """Each member's distance to its nearest other member of the same side (empty for a lone member)."""
    if len(side) < 2:
        return np.empty(0)
    d = euclidean_distances(X[side])
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


def _dense(X):
    return X.toarray() if hasattr(X, "toarray") else np.asarray(X)
