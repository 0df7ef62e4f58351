"""Budget: how many labels the loop buys, in what batches, and how it starts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError, plural



def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class Budget:
    """Round 0 labels `initial` items; each later round labels `batch_size` more.

    `initial: 0` is a cold start from a scout (a zero-shot model): round 0 then buys `batch_size` labels chosen
    by the acquisition strategy from the scout's predictions, as the seed's LLM-0 does.

    The loop stops after `rounds` acquisition rounds, at `max_labels` labels or when the next label would
    push the oracle's cost past `max_cost`, whichever comes first (at least one must be set), or earlier when
    the pool runs out. The money budget counts the oracle's cost_per_label; per-item extras (an expert
    panel's adjudication fees) can take the final spend slightly past it. `stratified` draws the initial set with each
    class in proportion to the truth and at least one item of every class (a simulation convenience that
    avoids a cold start); otherwise it is uniformly random.

    `schedule` (a list of increasing label counts, e.g. log-spaced 100, 300, 1000, ...) replaces initial,
    batch_size and rounds: round r tops the labels up to schedule[r]. Learning curves of a passive baseline
    over several orders of magnitude use it.

    `eval_share` holds that share of the bought labels out of training, as the seed's curated eval split: each
    item goes there with that probability (seeded per item), and every round logs the model's `curated_kappa`
    against those labels beside the gold-set kappa.
    """

    initial: int = 20
    batch_size: int = 20
    rounds: int | None = 10
    max_labels: int | None = None
    max_cost: float | None = None
    stratified: bool = True
    schedule: Sequence[int] | None = None
    eval_share: float = 0.0

    def __post_init__(self):
        if not 0 <= self.eval_share < 1:
            raise AlexpError(f"eval_share must be in [0, 1), got {self.eval_share!r}")
        if self.schedule is not None:
            steps = list(self.schedule)
            if not steps or not all(_is_count(s) for s in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
                raise AlexpError(f"schedule must be increasing positive label counts, e.g. [100, 300, 1000]; "
                                 f"got {steps!r}")
            object.__setattr__(self, "schedule", tuple(steps))
            object.__setattr__(self, "initial", steps[0])
            object.__setattr__(self, "rounds", len(steps) - 1)
        if not _is_count(self.batch_size):
            raise AlexpError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not (_is_count(self.initial) or self.initial == 0):
            raise AlexpError(f"initial must be a non-negative integer, got {self.initial!r}")
        if self.rounds is None and self.max_labels is None and self.max_cost is None:
            raise AlexpError("set rounds, max_labels or max_cost; all are null")
        if self.max_cost is not None and self.max_cost <= 0:
            raise AlexpError(f"max_cost must be > 0, got {self.max_cost!r}")
        if self.rounds is not None and self.rounds < 0:
            raise AlexpError(f"rounds must be >= 0, got {self.rounds!r}")
        if self.max_labels is not None and self.max_labels < self.initial:
            raise AlexpError(f"max_labels={self.max_labels} is below initial={self.initial}")

    def planned(self) -> int | None:
        """Labels the budget buys when the pool is big enough (None: only max_cost or the pool's end stop it)."""
        if self.schedule is not None:
            total = self.schedule[-1]
        elif self.rounds is not None:
            total = (self.initial or self.batch_size) + self.rounds * self.batch_size
        else:
            total = None
        if self.max_labels is not None:
            total = self.max_labels if total is None else min(total, self.max_labels)
        return total

    def describe(self) -> str:
        """The budget in words: '20 labels, then 10 rounds of 20 (220 labels)'."""
        if self.schedule is not None:
            text = f"rounds topping the labels up to {', '.join(map(str, self.schedule))}"
        else:
            text = f"{self.initial} labels" if self.initial else f"a first batch of {self.batch_size} from the scout"
            if self.rounds != 0:
                text += f", then {plural(self.rounds, 'round') if self.rounds else 'rounds'} of {self.batch_size}"
        planned = self.planned()
        if planned is not None and not text.startswith(f"{planned} labels") and (self.schedule is None
                                                                                   or self.max_labels is not None):
            text += f" ({planned} labels in all)" if self.max_labels is None else f" (at most {planned} labels)"
        return text + (f", stopping before the cost passes {self.max_cost:g}" if self.max_cost is not None else "")

    def check_pool(self, n_pool: int, n_classes: int = 2) -> None:
        """Raise if the pool cannot hold the initial set or the labels the budget plans to buy: a budget
        silently cut short by a small pool would make a curve that looks like another experiment's."""
        for name, need in (("initial", self.initial), ("max_labels", self.max_labels)):
            if need is not None and need > n_pool:
                raise AlexpError(f"budget.{name}={need} exceeds the pool of {n_pool} rows; lower it "
                                 "(or give the data more rows / a smaller test_size)")
        if self.stratified and 0 < self.initial < n_classes:
            raise AlexpError(f"budget.initial={self.initial} cannot hold one item of each of {n_classes} "
                             "classes; raise it or set budget.stratified=false")
        planned = self.planned()
        if planned is not None and planned > n_pool:
            how = (f"schedule ending at {planned}" if self.schedule is not None else
                   f"{self.initial or self.batch_size} + {self.rounds} x {self.batch_size} = {planned} labels")
            raise AlexpError(f"budget: {how} exceed the pool of {n_pool} rows; set budget.max_labels={n_pool} "
                             "(or fewer rounds / a smaller batch_size), or give the data more rows")

    def next_batch(self, round_: int, n_labeled: int, n_unlabeled: int, spent: float = 0.0,
                   unit_cost: float = 1.0) -> int:
        """Size of round `round_`'s batch (round 0 is the initial set); 0 means stop."""
        if round_ == 0:  # the initial set; with initial=0 a scout picks a first batch instead
            return min(self.initial or self.batch_size, n_unlabeled)
        if self.rounds is not None and round_ > self.rounds:
            return 0
        want = self.batch_size if self.schedule is None else self.schedule[round_] - n_labeled
        room = n_unlabeled if self.max_labels is None else min(n_unlabeled, self.max_labels - n_labeled)
        if self.max_cost is not None and unit_cost > 0:
            room = min(room, int((self.max_cost - spent) / unit_cost + 1e-9))
        return max(0, min(want, room))

    def initial_ids(self, n_pool: int, rng: np.random.Generator,
                    truth: NDArray[np.int64] | None = None) -> NDArray[np.intp]:
        """Row indices of the initial labeled set; `truth` (the pool's true labels) is needed if stratified."""
        n = self.initial
        if not self.stratified:
            return rng.choice(n_pool, size=n, replace=False)
        if truth is None:
            raise AlexpError("budget.stratified=true needs the pool's true labels (a simulated oracle); "
                             "set budget.stratified=false")
        classes, counts = np.unique(truth, return_counts=True)
        take = np.maximum(1, np.floor(n * counts / counts.sum()).astype(int))
        while take.sum() > n:  # the at-least-one rule overshot: trim the largest classes
            take[np.argmax(take)] -= 1
        remainder = n - take.sum()
        # Give leftover slots to the classes with the largest fractional shares (largest-remainder rounding).
        frac = n * counts / counts.sum() - np.floor(n * counts / counts.sum())
        for c in np.argsort(-frac, kind="stable")[:remainder]:
            take[c] += 1
        take = np.minimum(take, counts)
        picks = [rng.choice(np.flatnonzero(truth == c), size=k, replace=False) for c, k in zip(classes, take)]
        return np.concatenate(picks)
