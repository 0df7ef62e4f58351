"""Bayesian active learning by disagreement: information about the model's parameters from posterior samples.

The samples come from the model's `sample_proba` (MC dropout in model=mlp_head and model=transformer).
BALD (Houlsby et al. 2011) scores each item by the mutual information between its label and the parameters,
I(y; w) = H(E_w p(y|w)) - E_w H(p(y|w)): high where the sampled models disagree, not where each is merely
unsure. BatchBALD (Kirsch et al. 2019) picks the batch greedily by the joint mutual information, so it does
not spend a batch on near-copies of one informative item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy.special import xlogy
from sklearn.dummy import DummyClassifier

from alexp import AlexpError, models
from alexp.acquisition.base import PoolView, candidates, check_max_candidates, select_top, tie_keys, tie_salt


def bald(samples: NDArray) -> NDArray[np.float64]:
    """Mutual information I(y; w) per row (nats) from samples (n_samples, n_rows, n_classes)."""
    mean = samples.mean(axis=0)
    return -xlogy(mean, mean).sum(axis=1) + xlogy(samples, samples).sum(axis=2).mean(axis=0)


def _samples(model, X, n_samples: int, n_classes: int, seed: int) -> NDArray[np.float64]:
    """Posterior samples for rows X; the same seed gives the same sampled models in every block."""
    samples = models.sample_proba(model, X, n_samples, n_classes, np.random.default_rng(seed))
    if samples is not None:
        return samples
    if isinstance(model, DummyClassifier):  # labels of one class so far: no information, seeded random choice
        return np.broadcast_to(models.predict_proba(model, X, n_classes), (n_samples, X.shape[0], n_classes))
    raise AlexpError(f"BALD needs posterior samples, and {type(model).__name__} draws none: use a model with "
                     "sample_proba (model=mlp_head or model=transformer)")


@dataclass(frozen=True)
class Bald:
    """Top-n candidates by BALD mutual information over `n_samples` MC-dropout samples."""

    needs_samples: ClassVar[bool] = True  # the model must draw posterior samples (sample_proba)

    n_samples: int = 20
    chunk_size: int = 16_384
    max_candidates: int | None = None  # score a seeded random subsample of this many candidates (slow models)

    def __post_init__(self):
        check_max_candidates(self.max_candidates)

    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        seed = int(rng.integers(2**31 - 1))
        if self.max_candidates is not None:
            pool = pool.restrict(candidates(pool, self.max_candidates, n, rng))
        return select_top(lambda X: bald(_samples(model, X, self.n_samples, pool.n_classes, seed)), pool, n, rng,
                          self.chunk_size)


@dataclass(frozen=True)
class BatchBald:
    """Greedy BatchBALD: each pick maximises the joint mutual information of the batch so far plus it.

    The joint entropy of the batch's labels is exact while the label configurations number at most
    `max_configs` (n_classes ** batch size), and estimated from `max_configs` configurations sampled from the
    joint afterwards (Kirsch et al.'s estimator). The greedy pick is within 1 - 1/e of the best batch
    (the joint MI is submodular). For speed it searches only the `shortlist` rows of highest BALD (a pre-filter by
    score, not the random subsample that `max_candidates` means elsewhere).
    """

    needs_samples: ClassVar[bool] = True

    n_samples: int = 20
    max_configs: int = 1024
    shortlist: int | None = 2048  # the greedy search covers this many rows of highest BALD (None: every row)
    chunk_size: int = 16_384

    def __post_init__(self):
        if self.shortlist is not None and (not isinstance(self.shortlist, int) or self.shortlist < 1):
            raise AlexpError(f"shortlist must be a positive number of rows or null (every row), got {self.shortlist!r}")

    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        seed = int(rng.integers(2**31 - 1))
        pool_size = len(pool.unlabeled())
        keep = pool_size if self.shortlist is None else min(pool_size, max(self.shortlist, n))
        rows = np.sort(select_top(lambda X: bald(_samples(model, X, self.n_samples, pool.n_classes, seed)), pool,
                                  keep, rng, self.chunk_size))
        if len(rows) == 0:
            return candidates(pool, None, n, rng)[:n]
        probs = _samples(model, pool.X[rows], self.n_samples, pool.n_classes, seed)  # (S, N, C)
        picked = batch_bald(probs, n, self.max_configs, rng)
        return rows[picked]


def batch_bald(probs: NDArray, n: int, max_configs: int, rng: np.random.Generator) -> NDArray[np.intp]:
    """Indices of n rows of `probs` (n_samples, n_rows, n_classes) chosen greedily by joint mutual information.

    a(batch) = H(y_batch) - sum_i E_w H(y_i | w). `joint` holds p(config | w_s) for each tracked configuration
    of the labels picked so far: (n_samples, n_configs).
    """
    S, N, C = probs.shape
    salt = tie_salt(rng)
    conditional = -xlogy(probs, probs).sum(axis=2).mean(axis=0)  # E_w H(y_i | w), per row
    joint = np.ones((S, 1))
    exact = True  # configurations enumerated (exact); else each column is one sample from the joint
    picked: list[int] = []
    spent = 0.0
    available = np.ones(N, dtype=bool)
    for _ in range(min(n, N)):
        # p(config, y_i = c) for every candidate i: mean over samples of p(config | w) p(y_i = c | w).
        p = np.einsum("sm,snc->nmc", joint, probs) / S  # (N, configs, C)
        if exact:
            h = -xlogy(p, p).sum(axis=(1, 2))
        else:  # H = -E_{config ~ p} sum_c p(config, c) / p(config) log p(config, c)
            h = -(xlogy(p, p).sum(axis=2) / joint.mean(axis=0)).mean(axis=1)
        score = h - spent - conditional
        score[~available] = -np.inf
        best = np.flatnonzero(score == score.max())
        i = int(best[np.argmax(tie_keys(best, salt).astype(np.int64))]) if len(best) > 1 else int(best[0])
        picked.append(i)
        available[i] = False
        spent += conditional[i]
        extended = joint[:, :, None] * probs[:, i, None, :]  # (S, configs, C): every configuration extended by y_i
        if exact and extended.shape[1] * C <= max_configs:
            joint = extended.reshape(S, -1)
        elif exact:  # too many to enumerate: sample max_configs configurations from the joint
            p_config = extended.mean(axis=0).ravel()
            joint = extended.reshape(S, -1)[:, rng.choice(p_config.size, max_configs, p=p_config / p_config.sum())]
            exact = False
        else:  # extend each sampled configuration by a draw of y_i from p(y_i | configuration)
            p_next = extended.mean(axis=0)  # (configs, C)
            u = rng.random(p_next.shape[0])[:, None]
            c = (np.cumsum(p_next / p_next.sum(axis=1, keepdims=True), axis=1) < u).sum(axis=1).clip(max=C - 1)
            joint = extended[:, np.arange(len(c)), c]
    return np.asarray(picked, dtype=np.intp)
