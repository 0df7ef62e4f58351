"""Query by committee: candidates on which a committee of models disagrees most (Seung et al. 1992)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, rel_entr, xlogy
from scipy.stats import entropy
from sklearn.base import clone

from alexp import AlexpError, models
from alexp.acquisition.base import PoolView, select_top


def build_committee(model, pool: PoolView, rng: np.random.Generator, n_members: int,
                    members: Sequence[Any] | None) -> list:
    """Fitted committee on the labeled rows.

    Default: `n_members` clones of the run's model, each on a stratified bootstrap of the labels (resampled
    within each class, so every bag keeps both classes of a rare-positive task). With `members`, each listed
    estimator is fitted once on all the labels (a heterogeneous committee). Members are fresh clones every
    round (a warm-started run model is never refitted in place); any classifier works, transformers included.
    """
    rows = pool.training()
    X, y = pool.X[rows], pool.labels[rows]
    seeds = rng.integers(0, 2**31 - 1, size=max(n_members, len(members or ())))
    if members:
        return [models.fit(clone(m), X, y, int(s)) for m, s in zip(members, seeds)]
    committee = []
    for s in seeds[:n_members]:
        bag = np.concatenate([rng.choice(np.flatnonzero(y == c), (y == c).sum()) for c in np.unique(y)])
        committee.append(models.fit(clone(model), X[bag], y[bag], int(s)))
    return committee


def vote_entropy(votes: NDArray[np.intp], n_classes: int) -> NDArray[np.float64]:
    """Entropy of each row's vote shares; `votes` is (n_members, n_rows) of predicted class indices."""
    counts = np.stack([(votes == c).sum(axis=0) for c in range(n_classes)], axis=1)
    return entropy(counts / votes.shape[0], axis=1)


def consensus_kl(proba: NDArray) -> NDArray[np.float64]:
    """Mean KL divergence of each member's distribution from the consensus; `proba` is (members, rows, classes)."""
    consensus = proba.mean(axis=0, keepdims=True)
    return rel_entr(proba, consensus).sum(axis=2).mean(axis=0)


def binary_entropy(p: NDArray) -> NDArray:
    """Entropy (nats) of Bernoulli(p), in p's float dtype."""
    return -(xlogy(p, p) + xlogy(1 - p, 1 - p))


@dataclass(frozen=True)
class _Disagreement:
    n_members: int = 5
    members: Sequence[Any] | None = None
    chunk_size: int = 65_536
    disagreement: ClassVar[Callable[[NDArray, int], NDArray]]  # of (members, rows, classes) probabilities

    def __post_init__(self):
        if self.members is None and self.n_members < 2:
            raise AlexpError(f"n_members must be at least 2, got {self.n_members}")

    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        committee = build_committee(model, pool, rng, self.n_members, self.members)
        return select_top(self._scorer(committee, pool.n_classes), pool, n, rng, self.chunk_size)

    def from_logits(self, Z: NDArray) -> NDArray:
        """The disagreement of binary logistic members from their logits Z (rows x members)."""
        p1 = expit(Z.astype(np.float64)).T
        return self.disagreement(np.stack([1 - p1, p1], axis=2), 2)

    def _scorer(self, committee: list, n_classes: int) -> Callable:
        logits = [models.binary_logit(m) for m in committee]
        if n_classes == 2 and all(logit is not None for logit in logits):
            # One X @ W for the whole committee: W stacks the members' weight vectors.
            W = np.stack([w for w, _ in logits], axis=1)
            b = np.array([b for _, b in logits], dtype=W.dtype)
            return lambda X: self.from_logits(models.linear_scores(X, W, b))

        def score(X):
            return self.disagreement(np.stack([models.predict_proba(m, X, n_classes) for m in committee]),
                                     n_classes)
        return score


@dataclass(frozen=True)
class VoteEntropy(_Disagreement):
    """Entropy of the committee's hard votes (Dagan & Engelson 1995). Few distinct values: ties are seeded."""

    disagreement = staticmethod(lambda proba, k: vote_entropy(proba.argmax(axis=2), k))

    def from_logits(self, Z: NDArray) -> NDArray:
        # Binary votes: the entropy depends only on how many members vote positive, so look it up.
        m = Z.shape[1]
        table = binary_entropy(np.arange(m + 1) / m)
        return table[(Z > 0).sum(axis=1)]


@dataclass(frozen=True)
class KLDisagreement(_Disagreement):
    """Mean KL divergence of members from the consensus distribution (McCallum & Nigam 1998)."""

    disagreement = staticmethod(lambda proba, k: consensus_kl(proba))

    def from_logits(self, Z: NDArray) -> NDArray:
        # mean_m KL(p_m || mean p) = H(mean p) - mean_m H(p_m), and H(sigmoid(z)) = softplus(z) - z sigmoid(z).
        # Computed in the pool's float dtype: float32 pools stay float32 (ranking error ~1e-7).
        e = np.exp(-np.abs(Z))  # one exp serves both the sigmoid and the softplus
        p = np.where(Z >= 0, 1, e) / (1 + e)
        member_entropy = np.maximum(Z, 0) + np.log1p(e) - Z * p
        mean = np.full(Z.shape[1], 1 / Z.shape[1], dtype=Z.dtype)  # a mat-vec beats .mean(axis=1) on 5 columns
        return binary_entropy(p @ mean) - member_entropy @ mean
