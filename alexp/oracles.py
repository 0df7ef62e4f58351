"""Oracles answer label requests for pool rows.

Protocol: `request(ids)` asks for labels of pool rows; `collect()` returns {row: label} for the last request,
or None while the answer is not in yet (a human oracle; the loop then saves its state and stops). Simulated
oracles answer at once. Each simulated item's answer is fixed when the oracle is built (from the run's oracle
seed stream), so it does not depend on the order of requests: a resumed run gets the same labels.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError


class Oracle(Protocol):
    def request(self, ids: NDArray[np.intp]) -> None: ...

    def collect(self) -> dict[int, int] | None: ...


class Simulated:
    """Base of simulated oracles: answers are a fixed array over the pool, returned at once."""

    def __init__(self, answers: NDArray[np.int64]):
        self.answers = answers
        self._pending: NDArray[np.intp] | None = None

    def request(self, ids: NDArray[np.intp]) -> None:
        self._pending = np.asarray(ids)

    def collect(self) -> dict[int, int] | None:
        if self._pending is None:
            return None
        ids, self._pending = self._pending, None
        return dict(zip(ids.tolist(), self.answers[ids].tolist()))


class Perfect(Simulated):
    """Answers the true label every time."""

    def __init__(self, truth: NDArray[np.int64], rng: np.random.Generator | None = None):
        super().__init__(np.asarray(truth))


class Noisy(Simulated):
    """Flips each item's true label to another class with probability `flip_rate` (symmetric noise).

    For a binary task with positive share pi and flip rate e, the expected Cohen's kappa of its labels against
    the truth is 2 pi (1 - pi)(1 - 2e) / (2 pi (1 - pi) + e (1 - 2 pi)^2): e = 0.1 at pi = 0.05 gives 0.43.
    """

    def __init__(self, truth: NDArray[np.int64], rng: np.random.Generator, flip_rate: float = 0.1,
                 n_classes: int = 2):
        if not 0 <= flip_rate <= 1:
            raise AlexpError(f"flip_rate must be in [0, 1], got {flip_rate!r}")
        truth = np.asarray(truth)
        flip = rng.random(len(truth)) < flip_rate
        offset = rng.integers(1, n_classes, size=len(truth)) if n_classes > 2 else 1
        super().__init__(np.where(flip, (truth + offset) % n_classes, truth))
        self.flip_rate = flip_rate
