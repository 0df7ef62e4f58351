"""When to stop buying labels: stopping rules that see only what a practitioner sees.

After each round's model is fitted, every rule is shown the label count and the model's predictions on a
*stop set*: rows drawn once per run seed from the pool, whose labels nobody reads (Bloodgood & Vijay-Shanker
2009). A rule receives the predicted classes of every model so far on the stop set, the current model's class
probabilities there, and which stop-set rows are still unlabeled; never the pool's truth, the oracle's answers
or the gold test set. Rules are pure functions of that, so a resumed run decides exactly as an uninterrupted one.

In a simulation every rule is checked every round and logged (`stop_<rule>` = 1 once it fires, 0 before, and
`stop_<rule>_value`, the statistic it compared), so one run compares them all; `enforce: true` ends the run at
the first rule that fires, for real labeling with a human oracle.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import cohen_kappa_score

from alexp import AlexpError


def prediction_kappa(a: NDArray, b: NDArray) -> float:
    """Cohen's kappa between two models' predictions; 1.0 when they are identical (kappa is 0/0 there when a
    single class is predicted throughout), 0.0 when it is otherwise undefined."""
    if np.array_equal(a, b):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = cohen_kappa_score(a, b)
    return 0.0 if np.isnan(kappa) else float(kappa)


def normalized_entropy(proba: NDArray) -> NDArray:
    """Entropy of each row of class probabilities, divided by log(classes): 0 = certain, 1 = uniform."""
    p = np.clip(np.asarray(proba, dtype=float), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1) / np.log(p.shape[1])


class Rule:
    """A stopping rule: `check(predictions, proba, unlabeled, n_labels) -> (fires, statistic)`.

    `predictions`: the stop set's predicted classes by every model so far, oldest first (the last is the
    current model's); `proba`: the current model's class probabilities on the stop set; `unlabeled`: which
    stop-set rows hold no label yet; `n_labels`: labels bought so far. The statistic is NaN until it is defined
    (too few models for its window)."""

    def check(self, predictions: Sequence[NDArray], proba: NDArray, unlabeled: NDArray,
              n_labels: int) -> tuple[bool, float]:
        raise NotImplementedError


def _threshold(value: float, name: str, low: float = 0.0, high: float = 1.0) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise AlexpError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _window(value: int, least: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise AlexpError(f"window must be an integer >= {least}, got {value!r}")
    return value


@dataclass
class StabilizingPredictions(Rule):
    """Bloodgood & Vijay-Shanker (2009): stop once the mean kappa between successive models' predictions on the
    stop set, over the last `window` pairs of models, reaches `threshold` (needs window + 1 models)."""

    threshold: float = 0.99
    window: int = 3

    def __post_init__(self):
        self.threshold, self.window = _threshold(self.threshold, "threshold"), _window(self.window)

    def check(self, predictions, proba, unlabeled, n_labels):
        if len(predictions) < self.window + 1:
            return False, float("nan")
        recent = predictions[-self.window - 1:]
        mean = float(np.mean([prediction_kappa(a, b) for a, b in zip(recent, recent[1:])]))
        return mean >= self.threshold, mean


@dataclass
class KappaAverage(Rule):
    """small-text's KappaAverage: the kappas between successive models' predictions over the last `window`
    pairs; stop once the mean absolute change between consecutive kappas falls below 1 - `threshold` (the
    agreement has stopped moving, whatever its level; needs window + 1 models, window >= 2)."""

    threshold: float = 0.99
    window: int = 3

    def __post_init__(self):
        self.threshold, self.window = _threshold(self.threshold, "threshold"), _window(self.window, least=2)

    def check(self, predictions, proba, unlabeled, n_labels):
        if len(predictions) < self.window + 1:
            return False, float("nan")
        recent = predictions[-self.window - 1:]
        kappas = [prediction_kappa(a, b) for a, b in zip(recent, recent[1:])]
        change = float(np.mean(np.abs(np.diff(kappas))))
        return change < 1 - self.threshold, change


class _UnlabeledEntropy(Rule):
    """Stop once `summary` (mean or max) of the normalized entropy of the current model's predictions on the
    unlabeled stop-set rows falls below `threshold`."""

    threshold: float
    summary = staticmethod(np.mean)

    def __post_init__(self):
        self.threshold = _threshold(self.threshold, "threshold")

    def check(self, predictions, proba, unlabeled, n_labels):
        if not unlabeled.any():
            return False, float("nan")
        value = float(self.summary(normalized_entropy(proba[unlabeled])))
        return value < self.threshold, value


@dataclass
class OverallUncertainty(_UnlabeledEntropy):
    """Zhu, Wang & Hovy (2008): stop once the mean normalized entropy of the current model's predictions on the
    unlabeled stop-set rows falls below `threshold`."""

    threshold: float = 0.05


@dataclass
class MaxUncertainty(_UnlabeledEntropy):
    """Zhu, Wang & Hovy (2008), max-confidence: stop once even the most uncertain unlabeled stop-set row (what
    uncertainty sampling would ask next) has a normalized entropy below `threshold`."""

    threshold: float = 0.2
    summary = staticmethod(np.max)


@dataclass
class ClassificationChange(Rule):
    """Zhu, Wang & Hovy (2008): stop once the last two models predict the same class for all unlabeled stop-set
    rows, or for all but a share `threshold` of them (small-text's relaxation; 0 is the original)."""

    threshold: float = 0.0

    def __post_init__(self):
        self.threshold = _threshold(self.threshold, "threshold")

    def check(self, predictions, proba, unlabeled, n_labels):
        if len(predictions) < 2 or not unlabeled.any():
            return False, float("nan")
        changed = float(np.mean(predictions[-1][unlabeled] != predictions[-2][unlabeled]))
        return changed <= self.threshold, changed


@dataclass
class LabelBudget(Rule):
    """Stop once `labels` labels are bought: the plain budget every other rule is measured against. It reads no
    data, so a report never recommends it: stopping there restates the setting, it is not evidence."""

    labels: int = 200

    def __post_init__(self):
        if not isinstance(self.labels, int) or isinstance(self.labels, bool) or self.labels < 1:
            raise AlexpError(f"labels must be a positive integer, got {self.labels!r}")

    def check(self, predictions, proba, unlabeled, n_labels):
        return n_labels >= self.labels, float(n_labels)


NOT_EVIDENCE = ("label_budget",)  # rules (by their conf/stopping name) that stop at a setting, whatever the data say


@dataclass
class Stopping:
    """The rules checked each round, the stop set they look at, and whether the first to fire ends the run."""

    rules: Mapping[str, Rule]
    stop_set_size: int = 1000
    enforce: bool = False

    def __post_init__(self):
        if not self.rules:
            raise AlexpError("stopping.rules is empty; name at least one rule (see conf/stopping/all.yaml)")
        for name, rule in self.rules.items():
            if not isinstance(rule, Rule):
                raise AlexpError(f"stopping.rules.{name} is not a stopping rule (a _target_ of alexp.stopping)")
        if not isinstance(self.stop_set_size, int) or self.stop_set_size < 10:
            raise AlexpError(f"stop_set_size must be an integer >= 10, got {self.stop_set_size!r}")

    def stop_set(self, n_pool: int, rng: np.random.Generator) -> NDArray[np.intp]:
        """The stop set's pool rows (all of a pool smaller than stop_set_size)."""
        return np.sort(rng.choice(n_pool, size=min(self.stop_set_size, n_pool), replace=False)).astype(np.intp)

    def check(self, predictions: Sequence[NDArray], proba: NDArray, unlabeled: NDArray, n_labels: int,
              fired_before: Mapping[str, bool]) -> dict[str, float]:
        """The metrics of this round: `stop_<rule>` (1 once the rule has fired, in this round or before) and
        `stop_<rule>_value` (its statistic now) for every rule."""
        out = {}
        for name, rule in self.rules.items():
            fires, value = rule.check(predictions, proba, unlabeled, n_labels)
            out[f"stop_{name}"] = 1.0 if fires or fired_before.get(name, False) else 0.0
            out[f"stop_{name}_value"] = value
        return out

    def first_fired(self, metrics: Mapping[str, float]) -> str | None:
        """The first rule (in config order) whose flag is set in a round's metrics."""
        return next((name for name in self.rules if metrics.get(f"stop_{name}") == 1.0), None)
