"""An upper bound that cheats: the greedy oracle, which reads the truth and the gold test set to pick batches."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError
from alexp.acquisition.base import PoolView, select_top
from alexp.acquisition.uncertainty import margin, uncertainty_scorer


class GreedyOracle:
    """CHEATS (an upper bound, not a strategy anyone can use): each round it draws candidate batches, labels each
    with the pool's truth, refits the run's model on the labels so far plus that batch, scores it on the gold
    test set by Cohen's kappa and keeps the best batch (CDALBench's greedy oracle, Werner et al. 2024, per batch).

    Candidates: `random_batches` uniform random batches of the unlabeled pool, and `uncertain_batches` drawn
    from the `uncertain_factor` x n lowest-margin candidates, the first of them margin's own batch; so its pick
    is at least as good on the test set as random's best draw and margin's batch. What it reaches bounds what a
    strategy choosing among such batches could, and the report's "share of the gap closed" is measured against
    it. It needs a simulated oracle (it reads the data's labels) and costs a refit per candidate batch."""

    reads_truth = True

    def __init__(self, random_batches: int = 10, uncertain_batches: int = 10, uncertain_factor: int = 5):
        for name, value in (("random_batches", random_batches), ("uncertain_batches", uncertain_batches),
                            ("uncertain_factor", uncertain_factor)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise AlexpError(f"{name} must be a whole number >= 0, got {value!r}")
        if random_batches + uncertain_batches < 1:
            raise AlexpError("random_batches + uncertain_batches must be at least 1")
        if uncertain_batches and uncertain_factor < 1:
            raise AlexpError(f"uncertain_factor must be at least 1 with uncertain_batches={uncertain_batches} (they "
                             f"are drawn from uncertain_factor x batch size candidates), got {uncertain_factor}")
        self.random_batches, self.uncertain_batches = random_batches, uncertain_batches
        self.uncertain_factor = uncertain_factor
        self._seen = None

    def reveal(self, truth: NDArray, X_test, y_test: NDArray, model, seed: int) -> None:
        """What it cheats with: the pool's true labels, the gold test set, the run's (unfitted) model and seed."""
        self._seen = (np.asarray(truth), X_test, np.asarray(y_test), model, seed)

    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        from alexp import models
        from alexp.metrics import agreement

        if self._seen is None:
            raise AlexpError("acquisition=greedy_oracle reads the truth and the test set, which only alexp's loop "
                             "hands it (Loop.__post_init__): run it through alexp")
        truth, X_test, y_test, unfitted, seed = self._seen
        unlabeled = pool.unlabeled()
        batches = []
        if self.uncertain_batches:
            top = select_top(uncertainty_scorer(model, pool.n_classes, margin), pool,
                             min(len(unlabeled), self.uncertain_factor * n), rng)
            batches.append(np.sort(top[:n]))
            batches += [np.sort(rng.choice(top, n, replace=False)) for _ in range(self.uncertain_batches - 1)]
        batches += [np.sort(rng.choice(unlabeled, n, replace=False)) for _ in range(self.random_batches)]
        labels = pool.labels if pool.labels is not None else np.where(pool.labeled_in >= 0, truth, -1)
        train = np.flatnonzero((pool.labeled_in >= 0) & (labels >= 0))  # the bought labels that may train
        scores = []
        for batch in batches:
            rows = np.concatenate([train, batch])
            y = np.concatenate([labels[train], truth[batch]])
            fitted = models.fit(unfitted, pool.X[rows], y, seed)
            scores.append(agreement(y_test, models.predict(fitted, X_test, pool.n_classes)))
        self.stats = {"greedy_best_kappa": max(scores), "greedy_median_kappa": float(np.median(scores))}
        return batches[int(np.argmax(scores))]
