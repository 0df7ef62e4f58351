"""Label noise that depends on the item: raters err on hard items, at a quality calibrated where they work.

An item's difficulty is a number in [0, 1] (0: anyone gets it right, 1: a coin flip). It comes from the data:
- `posterior`: the generator's own Bayes posterior p*(y = 1 | x) (data=synthetic and synthetic_disk carry it),
  as 1 - |2 p* - 1|: the truth about how ambiguous the item is;
- `votes`: how split the data's own raters were (Davidson's vote counts), 1 - |2 share - 1|;
- `reference`: a reference model's out-of-fold probability over the pool's features, 1 - |2 p - 1|. A proxy:
  it measures what a linear model finds hard, computed once per pool and cached;
- `column`: a column of difficulties in [0, 1].
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError
from alexp.atomic import atomic_path
from alexp.oracles.simulated import Simulated, _check_rate

log = logging.getLogger(__name__)

SOURCES = ("posterior", "votes", "reference", "column")
_REFERENCE: dict[str, NDArray] = {}  # reference probabilities computed in this process, by content hash


def calibration_rows(truth: NDArray, difficulty: NDArray, calibrate_on: str, hard_share: float,
                     rng: np.random.Generator) -> NDArray[np.intp]:
    """The items a rater's quality is calibrated on: the whole pool, the hardest `hard_share` of it, or a
    class-balanced sample (every item of the rarer class and as many seeded picks of the other)."""
    n = len(truth)
    if calibrate_on == "pool":
        return np.arange(n)
    if calibrate_on == "hard":
        _check_rate("hard_share", hard_share)
        return hardest(difficulty, hard_share, rng)
    if calibrate_on == "balanced":
        pos, neg = np.flatnonzero(truth == 1), np.flatnonzero(truth == 0)
        rare, common = (pos, neg) if len(pos) <= len(neg) else (neg, pos)
        return np.sort(np.concatenate([rare, rng.choice(common, len(rare), replace=False)]))
    raise AlexpError(f"calibrate_on must be pool, hard or balanced, got {calibrate_on!r}")


def hardest(difficulty: NDArray, share: float, rng: np.random.Generator) -> NDArray[np.intp]:
    """Sorted rows of the hardest `share` of items (at least 2); ties in difficulty are broken by a seeded draw.

    The rows of a sort by (difficulty descending, draw ascending), found without sorting the whole pool: every
    item harder than the cut, then the tied items at the cut with the smallest draws."""
    d = np.asarray(difficulty, dtype=float)
    n = len(d)
    draw = rng.random(n)
    k = min(n, max(2, round(share * n)))
    cut = np.partition(d, n - k)[n - k]  # the k-th largest difficulty
    above = np.flatnonzero(d > cut)
    tied = np.flatnonzero(d == cut)
    tied = tied[np.argsort(draw[tied], kind="stable")[:k - len(above)]]
    return np.sort(np.concatenate([above, tied]))


def difficulty_errors(truth: NDArray, difficulty: NDArray, kappa: float, concentration: float,
                      rows: NDArray[np.intp], rng: np.random.Generator, positive_bias: float = 1.0,
                      uniforms: NDArray | None = None) -> NDArray[np.int64]:
    """Answers whose errors fall on hard items: Cohen's kappa `kappa` against the truth on `rows`.

    Each item's weight is difficulty^concentration (0: every item alike, today's calibrated flips; larger:
    errors crowd onto the hardest items, of either class). A total of t flips is shared between the classes in
    proportion to their summed weights (positives' weights times `positive_bias`), so at concentration 0 each
    class loses the same share of its items, and at higher ones the class with more hard items errs more.
    Within a class, items are flipped in the order of weighted sampling without replacement
    (Efraimidis-Spirakis keys log(u) / weight, fixed once), so more errors only add flips. t is the one whose
    kappa on `rows` is nearest the target. `uniforms` (one in (0, 1) per item) replaces the rater's own draws
    u: raters given correlated uniforms err on the same items (see `Crowd`)."""
    if not 0 <= kappa <= 1:
        raise AlexpError(f"kappa must be in [0, 1], got {kappa!r}")
    if concentration < 0:
        raise AlexpError(f"concentration must be >= 0, got {concentration!r}")
    if positive_bias <= 0:
        raise AlexpError(f"positive_bias must be > 0, got {positive_bias!r}")
    truth = np.asarray(truth, dtype=np.int64)
    d = np.asarray(difficulty, dtype=float)
    if d.shape != truth.shape or np.isnan(d).any() or d.min() < 0 or d.max() > 1:
        raise AlexpError("item difficulties must be one value in [0, 1] per pool item")
    u = rng.random(len(truth)) if uniforms is None else np.asarray(uniforms, dtype=float)
    weight = d ** concentration if concentration else np.ones_like(d)
    with np.errstate(divide="ignore"):
        keys = np.log(u) / weight
    order = {c: np.flatnonzero(truth == c)[np.argsort(-keys[truth == c], kind="stable")] for c in (0, 1)}
    mass = np.array([weight[truth == 0].sum(), positive_bias * weight[truth == 1].sum()])
    share = mass[1] / mass.sum() if mass.sum() > 0 else (truth == 1).mean()
    in_rows = np.zeros(len(truth), dtype=bool)
    in_rows[rows] = True

    def answers(t: int) -> NDArray[np.int64]:
        out = truth.copy()
        positives = min(len(order[1]), round(t * share))
        out[order[1][:positives]] = 0
        out[order[0][:t - positives]] = 1
        return out

    # Cohen's kappa on `rows` after t flips, from counts: flipping the first p positives and t - p negatives
    # (in their orders) changes the 2 x 2 table by how many of those lie in `rows`.
    flipped = {c: np.concatenate([[0], np.cumsum(in_rows[order[c]])]) for c in (0, 1)}
    pos, m = int((truth[in_rows] == 1).sum()), int(in_rows.sum())

    def kappa_at(t: int) -> float:
        p = min(len(order[1]), round(t * share))
        lost, gained = flipped[1][p], flipped[0][min(t - p, len(order[0]))]  # 1 -> 0 and 0 -> 1, in rows
        said = pos - lost + gained  # answers of 1 in rows
        agree = (m - pos - gained) + (pos - lost)
        expected = (pos * said + (m - pos) * (m - said)) / m ** 2 if m else 1.0
        return 0.0 if expected >= 1 else (agree / m - expected) / (1 - expected)

    lo, hi = 0, len(truth)  # kappa falls as t grows: find the last t with kappa >= target
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if kappa_at(mid) >= kappa else (lo, mid - 1)
    best = min((lo, min(lo + 1, len(truth))), key=lambda t: round(abs(kappa_at(t) - kappa), 12))  # a tie: fewer flips
    return answers(best)


def ambiguity(p: NDArray) -> NDArray[np.float64]:
    """1 - |2 p - 1|: 0 where p is 0 or 1, 1 at p = 1/2."""
    return 1 - np.abs(2 * np.asarray(p, dtype=float) - 1)


def vote_difficulty(votes: NDArray, count: NDArray) -> NDArray[np.float64]:
    """How split the raters of each item were: 1 - |2 * share - 1| (0 unanimous, 1 an even split)."""
    return ambiguity(np.asarray(votes, dtype=float) / np.asarray(count, dtype=float))


def reference_proba(X, y: NDArray, cache_dir: str | Path | None = None, folds: int = 5) -> NDArray[np.float64]:
    """Out-of-fold P(y = 1 | x) of a logistic regression (C = 1, unweighted, so its probabilities estimate
    P(y | x) rather than a rebalanced one) fitted on the pool's
    features and true labels, `folds`-fold stratified with a fixed seed: each item's probability comes from a
    model that never saw it. A proxy for difficulty, not the truth about it. Kept in memory and under
    `cache_dir` by a hash of the features and labels, so every rater and every run on the same pool reuses it."""
    from scipy import sparse

    from alexp.shards import is_disk

    if X is None:
        raise AlexpError("difficulty: reference needs the pool's features (alexp passes them to the oracle)")
    if is_disk(X):
        raise AlexpError("difficulty: reference fits a model on the whole pool, which stays on disk here; "
                         "use difficulty: posterior with data=synthetic_disk, or a column")
    y = np.asarray(y, dtype=np.int64)
    digest = hashlib.sha256(f"reference-logreg-v2-{folds}".encode())
    parts = (X.data, X.indices, X.indptr, np.asarray(X.shape)) if sparse.issparse(X) else (np.ascontiguousarray(X),)
    for part in (*parts, y):
        digest.update(np.ascontiguousarray(part).tobytes())
    key = digest.hexdigest()[:20]
    file = Path(cache_dir) / f"reference-proba-{key}.npy" if cache_dir else None
    if key in _REFERENCE:
        return _REFERENCE[key]
    if file is not None and file.is_file():
        log.debug("reference difficulty: read %s", file)
        return _REFERENCE.setdefault(key, np.load(file))
    log.info("reference difficulty: %d-fold logistic regression over %d items%s", folds, len(y),
             f", cached as {file}" if file is not None else "")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    model = LogisticRegression(C=1.0, max_iter=2000)
    proba = cross_val_predict(model, X, y, cv=StratifiedKFold(folds, shuffle=True, random_state=0),
                              method="predict_proba")[:, 1]
    if file is not None:
        with atomic_path(file) as partial, open(partial, "wb") as f:  # whole or absent, even with parallel jobs
            np.save(f, proba)
    return _REFERENCE.setdefault(key, proba)


def item_difficulty(source: str, truth: NDArray, context: Mapping, pool_features=None, *,
                    posterior_column: str = "posterior", votes_column: str = "n_hate_speech",
                    count_column: str = "annotator_count", difficulty_column: str | None = None,
                    cache_dir: str | None = None) -> NDArray[np.float64]:
    """Each pool item's difficulty in [0, 1] from `source` (see the module docstring)."""
    needed = {"posterior": [posterior_column], "votes": [votes_column, count_column],
              "column": [difficulty_column], "reference": []}
    if source not in needed:
        raise AlexpError(f"difficulty must be one of {', '.join(SOURCES)}, got {source!r}")
    missing = [c for c in needed[source] if c not in context]
    if missing:
        hint = " (data=synthetic and synthetic_disk carry it)" if source == "posterior" else ""
        raise AlexpError(f"difficulty: {source} needs data context columns {missing}{hint}; add them to "
                         f"data.context_columns (have: {sorted(k for k in context if k not in ('id', 'text'))})")
    if source == "posterior":
        return ambiguity(context[posterior_column])
    if source == "votes":
        return vote_difficulty(context[votes_column], context[count_column])
    if source == "reference":
        return ambiguity(reference_proba(pool_features, truth, cache_dir))
    return np.asarray(context[difficulty_column], dtype=float)


class Difficulty(Simulated):
    """A rater of a given quality whose errors fall on hard items (label noise that depends on the item).

    `difficulty` names where each item's difficulty comes from: `posterior`, `votes`, `reference` or `column`
    (see the module docstring; the columns named by `posterior_column`, `votes_column` / `count_column` or
    `difficulty_column` must be context columns of the data). `concentration` 0 spreads errors evenly (today's
    calibrated flips); larger values put them on the hardest items (at 8, over 80% land on the hardest fifth
    of uniformly hard items). The error level is solved so that the rater's Cohen's kappa against the truth is
    `kappa` on the calibration set: the `pool`, its `hard` items (the hardest `hard_share`), or a
    class-`balanced` sample, so "a kappa .8 expert" can mean .8 where an active learner asks. Runs log the
    realized `oracle_kappa` on the items actually labeled."""

    def __init__(self, truth: NDArray, rng: np.random.Generator, context: Mapping | None = None,
                 pool_features=None, kappa: float = 0.8, concentration: float = 2.0, difficulty: str = "reference",
                 posterior_column: str = "posterior", votes_column: str = "n_hate_speech",
                 count_column: str = "annotator_count", difficulty_column: str | None = None,
                 cache_dir: str | None = None, calibrate_on: str = "pool", hard_share: float = 0.2,
                 positive_bias: float = 1.0, cost_per_label: float = 1.0, uniforms: NDArray | None = None):
        truth = np.asarray(truth)
        self.difficulty = item_difficulty(
            difficulty, truth, context or {}, pool_features, posterior_column=posterior_column,
            votes_column=votes_column, count_column=count_column, difficulty_column=difficulty_column,
            cache_dir=cache_dir)
        self.calibration = calibration_rows(truth, self.difficulty, calibrate_on, hard_share, rng)
        super().__init__(difficulty_errors(truth, self.difficulty, kappa, concentration, self.calibration, rng,
                                           positive_bias, uniforms), cost_per_label)
