"""Simulated oracles: label quality as a controlled, calibrated quantity.

Each simulated rater's answer for every pool item is fixed when the oracle is built, from the run's oracle
seed stream. Answers therefore do not depend on the order of requests, and a resumed run gets the same labels.
Error rates are calibrated: a rater with false-positive rate a and false-negative rate b flips exactly
round(a * #negatives) negatives and round(b * #positives) positives of the pool, chosen at random. Over any
labeled subset the realized rates then vary only by sampling without replacement, not by binomial noise too.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq

from alexp import AlexpError
from alexp.metrics import agreement
from alexp.oracles.base import Oracle, accepted

log = logging.getLogger(__name__)


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
        self.confidences: NDArray[np.float64] | None = None  # how sure the oracle is of each answer, if it says
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

    def confidence(self, rows: NDArray[np.intp]) -> NDArray[np.float64] | None:
        return None if self.confidences is None else self.confidences[rows]

    def _vote_share(self, votes: NDArray, aggregate: str) -> None:
        """Confidence = the share of an item's votes that agree with its answer (several raters, aggregated)."""
        if votes.shape[1] > 1 and aggregate != "one":
            self.confidences = (votes == self.answers[:, None]).mean(axis=1)


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
    """Real rater votes as answers: each item's answer comes from `n_raters` of its own raters, drawn without
    replacement from its vote counts (one vote: positive with the item's vote share), aggregated by majority
    (ties to a seeded coin) or Dawid-Skene. Cost per item: n_raters x `cost_per_label`.

    The data's truth for such an item is the majority of all its votes, the drawn ones included, so scoring
    the answer against it would be circular (one Davidson vote agrees with that majority at kappa ~.55, with
    another rater at ~.24). The answer is scored against the *leave-rater-out truth* instead: the majority of
    the votes not drawn. An item whose remaining votes tie, or with none left, has no such truth and leaves
    `oracle_kappa` (it is not guessed). Each round also logs `rater_pair_kappa`: the kappa of two distinct
    real raters of the labeled items, the data's own rater-vs-rater agreement, for comparison.

    Needs the data's context columns `votes_column` (positive votes) and `count_column` (raters per item),
    e.g. Davidson's n_hate_speech and annotator_count.
    """

    def __init__(self, rng: np.random.Generator, context: Mapping | None = None,
                 votes_column: str = "n_hate_speech", count_column: str = "annotator_count",
                 n_raters: int = 1, aggregate: str = "majority", cost_per_label: float = 1.0):
        context = context or {}
        missing = [c for c in (votes_column, count_column) if c not in context]
        if missing:
            raise AlexpError(f"rater_votes needs data context columns {missing}; add them to "
                             f"data.context_columns (have: {sorted(context)})")
        positives = np.asarray(context[votes_column], dtype=np.int64)
        count = np.asarray(context[count_column], dtype=np.int64)
        if n_raters < 1 or n_raters > count.min():
            raise AlexpError(f"n_raters must be between 1 and the fewest votes an item has ({count.min()}), "
                             f"got {n_raters}")
        votes, left_positive, left = draw_votes(positives, count, n_raters, rng)
        answers = votes[:, 0] if n_raters == 1 else _aggregate(votes, aggregate, rng)
        super().__init__(answers, cost_per_label * n_raters, votes)
        self._vote_share(votes, aggregate)
        self.held_out_truth = np.where((left == 0) | (2 * left_positive == left), -1,
                                       (2 * left_positive > left).astype(np.int64))
        self._positives, self._count = positives, count

    def scored_against(self, truth: NDArray) -> NDArray[np.int64]:
        return self.held_out_truth

    def metrics(self, rows: NDArray[np.intp]) -> dict[str, float]:
        return {"rater_pair_kappa": rater_pair_kappa(self._positives[rows], self._count[rows])}


def draw_votes(positives: NDArray, count: NDArray, k: int, rng: np.random.Generator
               ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """k of each item's real votes, drawn without replacement: (votes n x k, positive votes left, votes left)."""
    left_positive, left = np.asarray(positives, dtype=np.int64).copy(), np.asarray(count, dtype=np.int64).copy()
    votes = np.empty((len(left), k), dtype=np.int64)
    for j in range(k):
        votes[:, j] = rng.random(len(left)) * left < left_positive
        left_positive -= votes[:, j]
        left -= 1
    return votes, left_positive, left


def rater_pair_kappa(positives: NDArray, count: NDArray) -> float:
    """Cohen's kappa of two distinct raters drawn at random from each item's real votes, in expectation: the
    chance two of an item's votes agree, h(h-1) + (c-h)(c-h-1) over c(c-1), averaged, against the agreement
    expected by chance from the overall vote share. Items with fewer than 2 votes are left out."""
    h, c = np.asarray(positives, dtype=float), np.asarray(count, dtype=float)
    keep = c >= 2
    h, c = h[keep], c[keep]
    if not len(c):
        return float("nan")
    observed = np.mean((h * (h - 1) + (c - h) * (c - h - 1)) / (c * (c - 1)))
    share = np.mean(h / c)
    chance = share**2 + (1 - share) ** 2
    return float((observed - chance) / (1 - chance)) if chance < 1 else float("nan")


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


class Crowd(Simulated):
    """`n_raters` simulated raters per item, aggregated by majority vote or Dawid-Skene.

    `rater` builds one rater (any simulated oracle, partially configured). The cost of an item is
    n_raters x the crowd's `cost_per_label` (the pay per answer). Dawid-Skene (crowd-kit) is fitted once on
    every pool item's votes, as when a crowd labels the whole pool; majority ties go to a seeded coin.

    `shared_errors` in [0, 1] is how much the raters err together. At 0 they err independently, and volume
    averages their errors away. Above 0 the raters' error draws are correlated per item (a Gaussian copula
    with correlation `shared_errors`), so with a rater whose errors follow item difficulty
    (alexp.oracles.Difficulty) a hard item fools most of the crowd at once and no aggregation recovers it;
    at 1 every rater gives the same answers. Each rater keeps its own calibrated quality either way.

    `kappa`, when set, is the quality of the crowd's aggregated label: Cohen's kappa against the truth over
    the pool (e.g. the seed's crowd-expert .59 or .41). The raters' own `kappa` is then solved for it, by
    bisection to within 0.005 where the crowd can reach it.

    `aggregate: one` makes it a panel of people who disagree: each item is answered by one rater, drawn per
    item, at one answer's cost. `pairwise_kappa`, when set, is how well two raters agree with each other
    (Cohen's kappa, on the raters' calibration items, e.g. the hardest 7%, or the pool): `shared_errors` is
    then solved for it, so that raters each of their own quality err together as much as that agreement says
    (the seed's experts agreed at .81 and .78). Each round logs `panel_kappa`, the raters' mean pairwise kappa
    on the labeled items.
    """

    def __init__(self, truth: NDArray, rng: np.random.Generator, rater: Callable[..., Simulated],
                 n_raters: int = 3, aggregate: str = "majority", cost_per_label: float = 0.1,
                 shared_errors: float = 0.0, kappa: float | None = None, pairwise_kappa: float | None = None,
                 context: Mapping | None = None, pool_features=None):
        if n_raters < 1:
            raise AlexpError(f"n_raters must be >= 1, got {n_raters}")
        _check_rate("shared_errors", shared_errors)
        if (shared_errors or pairwise_kappa is not None) and "uniforms" not in inspect.signature(rater).parameters:
            raise AlexpError(f"shared_errors and pairwise_kappa need raters whose errors follow per-item draws "
                             f"(alexp.oracles.Difficulty); {_name(rater)} has none")
        if pairwise_kappa is not None and (kappa is not None or n_raters < 2):
            raise AlexpError("pairwise_kappa sets how raters agree with each other: it needs n_raters >= 2 and no "
                             f"crowd kappa (got n_raters={n_raters}, kappa={kappa}); set one of kappa, pairwise_kappa")
        truth = np.asarray(truth)
        seeds = rng.integers(0, 2**63 - 1, n_raters)
        common = rng.standard_normal(len(truth)) if shared_errors or pairwise_kappa is not None else None
        runtime = dict(truth=truth, context=context, pool_features=pool_features)
        per = 1 if aggregate == "one" else n_raters  # answers paid per item

        def votes(shared: float = shared_errors, **overrides) -> NDArray[np.int64]:
            return _votes(rater, seeds, shared, common, runtime, overrides)

        if pairwise_kappa is not None:
            _check_rate("pairwise_kappa", pairwise_kappa)
            self.shared_errors = _solve_shared(votes, pairwise_kappa, _calibration_rows(rater, seeds, runtime))
            answers = votes(self.shared_errors)
            self.rater_kappa = None
            super().__init__(_aggregate(answers, aggregate, rng), cost_per_label * per, answers)
            self._vote_share(answers, aggregate)
            return
        self.shared_errors = shared_errors
        if kappa is None:
            self.rater_kappa = None
            answers = votes()
            super().__init__(_aggregate(answers, aggregate, rng), cost_per_label * per, answers)
            self._vote_share(answers, aggregate)
            return
        _check_rate("kappa", kappa)
        if "kappa" not in inspect.signature(rater).parameters:
            raise AlexpError(f"a crowd kappa is reached by solving its raters' kappa; {_name(rater)} has none "
                             "(use alexp.oracles.TargetKappa or alexp.oracles.Difficulty raters)")
        coin = rng.integers(0, 2**63 - 1)

        def crowd(k: float) -> NDArray[np.int64]:
            return _aggregate(votes(kappa=k), aggregate, np.random.default_rng(coin))

        low, high = 0.0, 1.0  # the crowd's kappa grows with its raters'
        while high - low > 1e-3:
            mid = (low + high) / 2
            got = agreement(truth, crowd(mid))
            if abs(got - kappa) <= 0.005:
                low = high = mid
            elif got < kappa:
                low = mid
            else:
                high = mid
        self.rater_kappa = (low + high) / 2
        answers = votes(kappa=self.rater_kappa)
        super().__init__(_aggregate(answers, aggregate, np.random.default_rng(coin)), cost_per_label * per, answers)
        self._vote_share(answers, aggregate)

    def metrics(self, rows: NDArray[np.intp]) -> dict[str, float]:
        return {"panel_kappa": pairwise_kappa(self.votes[rows])} if self.votes.shape[1] > 1 else {}


def _calibration_rows(rater, seeds, runtime) -> NDArray[np.intp] | None:
    """The items a rater of this kind is calibrated on (a Difficulty rater's `calibration`), else None (pool)."""
    one = rater(**accepted(rater, rng=np.random.default_rng(seeds[0]), **runtime))
    return getattr(one, "calibration", None)


def _solve_shared(votes: Callable[..., NDArray], target: float, rows: NDArray | None) -> float:
    """The shared_errors in [0, 1] at which the raters' mean pairwise kappa on `rows` is `target` (bisection; it
    grows with shared errors, to 1 when all raters answer alike). Raters that agree more than `target` even when
    they err independently cannot agree less: they err independently, with a warning naming their agreement."""
    def agree(shared: float) -> float:
        v = votes(shared)
        return pairwise_kappa(v if rows is None else v[rows])

    lowest = agree(0.0)
    if lowest >= target:
        if lowest > target + 0.01:
            log.warning("pairwise_kappa=%s is below what these raters reach erring independently (%.3f): they err "
                        "independently; lower the raters' kappa for less agreement", target, lowest)
        return 0.0
    low, high = 0.0, 1.0
    for _ in range(12):
        mid = (low + high) / 2
        low, high = (mid, high) if agree(mid) < target else (low, mid)
    return (low + high) / 2


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


def _votes(rater, seeds, shared_errors, common, runtime, overrides) -> NDArray[np.int64]:
    """One column of answers per rater seed; raters take only the runtime arguments they name."""
    from scipy.stats import norm

    raters = []
    for s in seeds:
        rng = np.random.default_rng(s)
        extra = dict(runtime)
        if shared_errors:  # uniforms Phi(sqrt(r) z_item + sqrt(1 - r) e_rater): each uniform, pairwise correlated
            extra["uniforms"] = norm.cdf(np.sqrt(shared_errors) * common
                                         + np.sqrt(1 - shared_errors) * rng.standard_normal(len(common)))
        raters.append(rater(**overrides, **accepted(rater, rng=rng, **extra)))
    if any(hasattr(r, "held_out_truth") for r in raters):
        raise AlexpError("a crowd of rater_votes raters could draw one real vote twice and be scored against "
                         "its own votes; use oracle=rater_votes with n_raters instead")
    return np.stack([r.answers for r in raters], axis=1)


def _name(fn) -> str:
    return getattr(getattr(fn, "func", fn), "__name__", repr(fn))


def _aggregate(votes: NDArray, how: str, rng: np.random.Generator) -> NDArray[np.int64]:
    """One label per row of votes (n_items x raters): majority (seeded coin on ties), Dawid-Skene, or one rater
    drawn per item (`one`: a panel where each item goes to one of its members)."""
    if how == "one":
        return votes[np.arange(len(votes)), rng.integers(0, votes.shape[1], len(votes))].astype(np.int64)
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
    raise AlexpError(f"aggregate must be majority, dawid_skene or one, got {how!r}")
