"""Simulated oracles: label quality as a controlled, calibrated quantity.

Each simulated rater's answer for every pool item is fixed when the oracle is built, from the run's oracle
seed stream. Answers therefore do not depend on the order of requests, and a resumed run gets the same labels.
Error rates are calibrated: a rater with false-positive rate a and false-negative rate b flips exactly
round(a * #negatives) negatives and round(b * #positives) positives of the pool, chosen at random. Over any
labeled subset the realized rates then vary only by sampling without replacement, not by binomial noise too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq

from alexp import AlexpError
from alexp.oracles.base import Oracle, accepted


def _check_rate(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise AlexpError(f"{name} must be in [0, 1], got {value!r}")


def calibrated_errors(truth: NDArray, false_positive_rate: float, false_negative_rate: float,
                      rng: np.random.Generator) -> NDArray[np.int64]:
    """Binary answers that flip exactly the given shares of the pool's negatives and positives."""
    truth = np.asarray(truth, dtype=np.int64)
    answers = truth.copy()
    for cls, rate in ((0, false_positive_rate), (1, false_negative_rate)):
        rows = np.flatnonzero(truth == cls)
        answers[rng.choice(rows, round(rate * len(rows)), replace=False)] = 1 - cls
    return answers


def expected_kappa(prevalence: float, false_positive_rate: float, false_negative_rate: float) -> float:
    """Cohen's kappa of a rater with these error rates against the truth, at this share of positives.

    kappa = 2 pi (1 - pi)(1 - a - b) / (q (1 - pi) + pi (1 - q)), with pi the prevalence, a the false-positive
    rate, b the false-negative rate and q = pi (1 - b) + (1 - pi) a the rater's share of positive answers.
    """
    pi, a, b = prevalence, false_positive_rate, false_negative_rate
    q = pi * (1 - b) + (1 - pi) * a
    return 2 * pi * (1 - pi) * (1 - a - b) / (q * (1 - pi) + pi * (1 - q))


def rates_for_kappa(kappa: float, prevalence: float, positive_bias: float = 1.0) -> tuple[float, float]:
    """(false-positive rate a, false-negative rate b = positive_bias * a) whose expected kappa is `kappa`."""
    if not 0 <= kappa <= 1:
        raise AlexpError(f"kappa must be in [0, 1], got {kappa!r}")
    if positive_bias <= 0:
        raise AlexpError(f"positive_bias must be > 0, got {positive_bias!r}")
    if kappa in (0, 1):
        a = 0.0 if kappa == 1 else 1 / (1 + positive_bias)
        return a, positive_bias * a
    # kappa falls from 1 at a = 0 to 0 at a + b = 1, i.e. a = 1 / (1 + bias): one root in between.
    a = brentq(lambda a: expected_kappa(prevalence, a, positive_bias * a) - kappa, 0.0, 1 / (1 + positive_bias))
    return a, positive_bias * a


class Simulated(Oracle):
    """Base of simulated oracles: one fixed answer per pool item, returned at once.

    `votes` (n_pool x raters), when set, keeps each rater's own answer, for panel agreement metrics.
    """

    def __init__(self, answers: NDArray[np.int64], cost_per_label: float = 1.0, votes: NDArray | None = None):
        super().__init__(cost_per_label)
        self.answers = np.asarray(answers, dtype=np.int64)
        self.votes = votes
        self._pending: NDArray[np.intp] | None = None

    def request(self, ids: NDArray[np.intp]) -> None:
        self._pending = np.asarray(ids)

    def collect(self) -> dict[int, int] | None:
        if self._pending is None:
            return None
        ids, self._pending = self._pending, None
        return dict(zip(ids.tolist(), self.answers[ids].tolist()))

    def where(self) -> str:
        return "a simulated oracle (it answers at once)"


class Perfect(Simulated):
    """Answers the true label."""

    def __init__(self, truth: NDArray, cost_per_label: float = 1.0):
        super().__init__(truth, cost_per_label)


class Noisy(Simulated):
    """Symmetric label noise: flips `flip_rate` of each class (calibrated, see the module docstring).

    Its expected kappa against the truth at positive share pi is
    2 pi (1 - pi)(1 - 2e) / (2 pi (1 - pi) + e (1 - 2 pi)^2) for flip rate e: e = 0.1 at pi = 0.05 gives 0.43.
    """

    def __init__(self, truth: NDArray, rng: np.random.Generator, flip_rate: float = 0.1,
                 cost_per_label: float = 1.0):
        _check_rate("flip_rate", flip_rate)
        super().__init__(calibrated_errors(truth, flip_rate, flip_rate, rng), cost_per_label)
        self.flip_rate = flip_rate


class ClassConditional(Simulated):
    """Per-class error rates: a false-positive rate for negatives and a false-negative rate for positives."""

    def __init__(self, truth: NDArray, rng: np.random.Generator, false_positive_rate: float = 0.02,
                 false_negative_rate: float = 0.2, cost_per_label: float = 1.0):
        _check_rate("false_positive_rate", false_positive_rate)
        _check_rate("false_negative_rate", false_negative_rate)
        super().__init__(calibrated_errors(truth, false_positive_rate, false_negative_rate, rng), cost_per_label)


class TargetKappa(Simulated):
    """A rater whose Cohen's kappa against the truth is `kappa`, given the pool's share of positives.

    The error rates come from `rates_for_kappa`: false-negative rate = positive_bias x false-positive rate
    (1 = symmetric errors; > 1 = misses positives more often than it invents them).
    """

    def __init__(self, truth: NDArray, rng: np.random.Generator, kappa: float = 0.8, positive_bias: float = 1.0,
                 cost_per_label: float = 1.0):
        self.false_positive_rate, self.false_negative_rate = rates_for_kappa(
            kappa, float(np.mean(truth)), positive_bias)
        super().__init__(calibrated_errors(truth, self.false_positive_rate, self.false_negative_rate, rng),
                         cost_per_label)


class RaterVotes(Simulated):
    """Instance-dependent noise from real rater votes: answers positive with the item's own vote share.

    Needs the data's context columns `votes_column` (positive votes) and `count_column` (raters per item),
    e.g. Davidson's n_hate_speech and annotator_count.
    """

    def __init__(self, rng: np.random.Generator, context: Mapping | None = None,
                 votes_column: str = "n_hate_speech", count_column: str = "annotator_count",
                 cost_per_label: float = 1.0):
        context = context or {}
        missing = [c for c in (votes_column, count_column) if c not in context]
        if missing:
            raise AlexpError(f"rater_votes needs data context columns {missing}; add them to "
                             f"data.context_columns (have: {sorted(context)})")
        share = np.asarray(context[votes_column], dtype=float) / np.asarray(context[count_column], dtype=float)
        super().__init__((rng.random(len(share)) < share).astype(np.int64), cost_per_label)


class Column(Simulated):
    """Answers from a column of the data: a real label of another quality (e.g. a quick screening decision).

    The column comes through the data's context columns; `positive` is the value meaning the positive class.
    Its realized quality against the truth is logged every round as `oracle_kappa`."""

    def __init__(self, context: Mapping | None = None, column: str = "label_abstract_screening", positive=1,
                 cost_per_label: float = 1.0):
        context = context or {}
        if column not in context:
            raise AlexpError(f"oracle=column reads column {column!r}; add it to data.context_columns "
                             f"(have: {sorted(k for k in context if k not in ('id', 'text'))})")
        values = np.asarray(context[column])
        if values.dtype.kind in "fO" and any(v is None or v != v for v in values.tolist()):  # None or NaN
            raise AlexpError(f"oracle column {column!r} has missing values: every pool item needs an answer")
        super().__init__((values == positive).astype(np.int64), cost_per_label)


def calibration_rows(truth: NDArray, difficulty: NDArray, calibrate_on: str, hard_share: float,
                     rng: np.random.Generator) -> NDArray[np.intp]:
    """The items a rater's quality is calibrated on: the whole pool, the hardest `hard_share` of it, or a
    class-balanced sample (every item of the rarer class and as many seeded picks of the other)."""
    n = len(truth)
    if calibrate_on == "pool":
        return np.arange(n)
    if calibrate_on == "hard":
        _check_rate("hard_share", hard_share)
        order = np.lexsort((rng.random(n), -np.asarray(difficulty, dtype=float)))  # hardest first, ties seeded
        return np.sort(order[:max(2, round(hard_share * n))])
    if calibrate_on == "balanced":
        pos, neg = np.flatnonzero(truth == 1), np.flatnonzero(truth == 0)
        rare, common = (pos, neg) if len(pos) <= len(neg) else (neg, pos)
        return np.sort(np.concatenate([rare, rng.choice(common, len(rare), replace=False)]))
    raise AlexpError(f"calibrate_on must be pool, hard or balanced, got {calibrate_on!r}")


def difficulty_errors(truth: NDArray, difficulty: NDArray, kappa: float, concentration: float,
                      rows: NDArray[np.intp], rng: np.random.Generator, positive_bias: float = 1.0
                      ) -> NDArray[np.int64]:
    """Answers whose errors fall on hard items: Cohen's kappa `kappa` against the truth on `rows`.

    Each item's weight is difficulty^concentration (0: every item alike, today's calibrated flips; larger:
    errors crowd onto the hardest items). Items to flip are drawn per class by weighted sampling without
    replacement (Efraimidis-Spirakis keys, fixed once), so a larger error level only adds flips. The number of
    flipped negatives k (and round(positive_bias * k * positives / negatives) flipped positives) is the one
    whose kappa on `rows` is nearest the target."""
    if not 0 <= kappa <= 1:
        raise AlexpError(f"kappa must be in [0, 1], got {kappa!r}")
    if concentration < 0:
        raise AlexpError(f"concentration must be >= 0, got {concentration!r}")
    truth = np.asarray(truth, dtype=np.int64)
    d = np.asarray(difficulty, dtype=float)
    if d.shape != truth.shape or np.isnan(d).any() or d.min() < 0 or d.max() > 1:
        raise AlexpError("item difficulties must be one value in [0, 1] per pool item")
    with np.errstate(divide="ignore"):
        keys = np.log(rng.random(len(truth))) / (d ** concentration if concentration else np.ones_like(d))
    order = {c: np.flatnonzero(truth == c)[np.argsort(-keys[truth == c], kind="stable")] for c in (0, 1)}
    n0, n1 = len(order[0]), len(order[1])
    in_rows = np.zeros(len(truth), dtype=bool)
    in_rows[rows] = True

    def answers(k: int) -> NDArray[np.int64]:
        out = truth.copy()
        out[order[0][:k]] = 1
        out[order[1][:min(n1, round(positive_bias * k * n1 / max(n0, 1)))]] = 0
        return out

    def kappa_at(k: int) -> float:
        from alexp.metrics import agreement

        return agreement(truth[in_rows], answers(k)[in_rows])

    lo, hi = 0, n0  # kappa falls as k grows: find the last k with kappa >= target
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if kappa_at(mid) >= kappa else (lo, mid - 1)
    best = min((lo, min(lo + 1, n0)), key=lambda k: abs(kappa_at(k) - kappa))
    return answers(best)


def vote_difficulty(votes: NDArray, count: NDArray) -> NDArray[np.float64]:
    """How split the raters of each item were: 1 - |2 * share - 1| (0 unanimous, 1 an even split)."""
    share = np.asarray(votes, dtype=float) / np.asarray(count, dtype=float)
    return 1 - np.abs(2 * share - 1)


class Difficulty(Simulated):
    """A rater of a given quality whose errors fall on hard items (label noise that depends on the item).

    Each item has a difficulty in [0, 1]: `difficulty: votes` takes how split the data's own raters were
    (`votes_column` / `count_column`, e.g. Davidson's), `difficulty: column` reads `difficulty_column` from the
    data's context columns. `concentration` 0 spreads errors evenly (today's calibrated flips); larger values put
    them on the hardest items (at 8, over 80% land on the hardest fifth of uniformly hard items). The error level
    is solved so that the rater's Cohen's kappa against the truth is `kappa` on the calibration set: the `pool`,
    its `hard` items (the hardest `hard_share`), or a class-`balanced` sample, so "a kappa .8 expert" can mean
    .8 where an active learner asks. Runs log the realized `oracle_kappa` on the items actually labeled."""

    def __init__(self, truth: NDArray, rng: np.random.Generator, context: Mapping | None = None,
                 kappa: float = 0.8, concentration: float = 2.0, difficulty: str = "votes",
                 votes_column: str = "n_hate_speech", count_column: str = "annotator_count",
                 difficulty_column: str | None = None, calibrate_on: str = "pool", hard_share: float = 0.2,
                 positive_bias: float = 1.0, cost_per_label: float = 1.0):
        context = context or {}
        if difficulty == "votes":
            needed = [votes_column, count_column]
        elif difficulty == "column":
            needed = [difficulty_column]
        else:
            raise AlexpError(f"difficulty must be votes or column, got {difficulty!r}")
        missing = [c for c in needed if c not in context]
        if missing:
            raise AlexpError(f"oracle=difficulty ({difficulty}) needs data context columns {missing}; add them to "
                             f"data.context_columns (have: {sorted(k for k in context if k not in ('id', 'text'))})")
        d = (vote_difficulty(context[votes_column], context[count_column]) if difficulty == "votes"
             else np.asarray(context[difficulty_column], dtype=float))
        self.difficulty = d
        self.calibration = calibration_rows(np.asarray(truth), d, calibrate_on, hard_share, rng)
        super().__init__(difficulty_errors(truth, d, kappa, concentration, self.calibration, rng, positive_bias),
                         cost_per_label)


class Crowd(Simulated):
    """`n_raters` independent simulated raters per item, aggregated by majority vote or Dawid-Skene.

    `rater` builds one rater (any simulated oracle, partially configured). The cost of an item is
    n_raters x the crowd's `cost_per_label` (the pay per answer). Dawid-Skene (crowd-kit) is fitted once on
    every pool item's votes, as when a crowd labels the whole pool; majority ties go to a seeded coin.
    """

    def __init__(self, truth: NDArray, rng: np.random.Generator, rater: Callable[..., Simulated],
                 n_raters: int = 3, aggregate: str = "majority", cost_per_label: float = 0.1,
                 context: Mapping | None = None):
        if n_raters < 1:
            raise AlexpError(f"n_raters must be >= 1, got {n_raters}")
        votes = _votes(truth, rng, rater, n_raters, context)
        super().__init__(_aggregate(votes, aggregate, rng), cost_per_label * n_raters, votes)


class ExpertPanel(Simulated):
    """m experts, each with its own quality (target kappa), labeling every requested item.

    Labels are the panel's majority (ties to a seeded coin), or with `aggregate: adjudicate` the majority where
    the experts agree and the truth where they do not: an adjudicator settles disagreements at
    `adjudication_cost` each. Each round logs the panel's mean pairwise Cohen's kappa on the labeled items
    (the ceiling a model can reach against one expert) and the cost.
    """

    def __init__(self, truth: NDArray, rng: np.random.Generator, kappas: Sequence[float] = (0.85, 0.8, 0.75),
                 positive_bias: float = 1.0, aggregate: str = "majority", cost_per_label: float = 1.0,
                 adjudication_cost: float = 2.0):
        if len(kappas) < 2:
            raise AlexpError(f"an expert panel needs at least 2 experts, got kappas={list(kappas)}")
        seeds = rng.integers(0, 2**63 - 1, len(kappas))
        votes = np.stack([TargetKappa(truth, np.random.default_rng(s), k, positive_bias).answers
                          for k, s in zip(kappas, seeds)], axis=1)
        answers = _aggregate(votes, "majority", rng)
        if aggregate == "adjudicate":
            answers = np.where((votes == votes[:, :1]).all(axis=1), answers, np.asarray(truth))
        elif aggregate != "majority":
            raise AlexpError(f"aggregate must be majority or adjudicate, got {aggregate!r}")
        super().__init__(answers, cost_per_label * len(kappas), votes)
        self.adjudicate = aggregate == "adjudicate"
        self.adjudication_cost = adjudication_cost

    def cost(self, ids: NDArray[np.intp]) -> float:
        disputed = int((self.votes[ids] != self.votes[ids, :1]).any(axis=1).sum()) if self.adjudicate else 0
        return self.cost_per_label * len(ids) + self.adjudication_cost * disputed

    def metrics(self, rows: NDArray[np.intp]) -> dict[str, float]:
        return {"panel_kappa": pairwise_kappa(self.votes[rows])}


def pairwise_kappa(votes: NDArray) -> float:
    """Mean Cohen's kappa over all pairs of raters (columns of `votes`)."""
    from sklearn.metrics import cohen_kappa_score

    pairs = [cohen_kappa_score(votes[:, i], votes[:, j]) for i, j in combinations(range(votes.shape[1]), 2)]
    return float(np.nan_to_num(np.mean(pairs)))


def _votes(truth, rng, rater, n_raters, context) -> NDArray[np.int64]:
    seeds = rng.integers(0, 2**63 - 1, n_raters)
    return np.stack([rater(**accepted(rater, truth=truth, rng=np.random.default_rng(s), context=context)).answers
                     for s in seeds], axis=1)


def _aggregate(votes: NDArray, how: str, rng: np.random.Generator) -> NDArray[np.int64]:
    """One label per row of votes (n_items x raters): majority (seeded coin on ties) or Dawid-Skene."""
    coin = rng.random(len(votes)) < 0.5
    if how == "majority":
        share = votes.mean(axis=1)
        return np.where(share == 0.5, coin, share > 0.5).astype(np.int64)
    if how == "dawid_skene":
        import pandas as pd
        from crowdkit.aggregation import DawidSkene

        n, k = votes.shape
        frame = pd.DataFrame({"task": np.repeat(np.arange(n), k), "worker": np.tile(np.arange(k), n),
                              "label": votes.ravel()})
        with warnings.catch_warnings():  # crowd-kit 1.4 uses pandas keywords that pandas 3 deprecates
            warnings.simplefilter("ignore")
            labels = DawidSkene(n_iter=100).fit_predict(frame)
        return labels.reindex(np.arange(n)).to_numpy().astype(np.int64)
    raise AlexpError(f"aggregate must be majority or dawid_skene, got {how!r}")
