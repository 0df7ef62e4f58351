"""Oracles answer label requests for pool rows.

Protocol: `request(ids)` asks for labels of pool rows; `collect()` returns {row: label} for the last request,
or None while the answer is not in yet (a human oracle: the loop then saves its state and stops).
`cost(ids)` prices a batch; `metrics(rows)` reports oracle-side figures (e.g. a panel's agreement).
"""

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from alexp.oracles.files import Files
from alexp.oracles.label_studio import LabelStudio
from alexp.oracles.simulated import (ClassConditional, Column, Crowd, ExpertPanel, Noisy, Perfect, RaterVotes,
                                     Simulated, TargetKappa, expected_kappa, pairwise_kappa, rates_for_kappa)
from alexp.oracles.terminal import Terminal


class Oracle(Protocol):
    def request(self, ids: NDArray[np.intp]) -> None: ...

    def collect(self) -> dict[int, int] | None: ...

    def cost(self, ids: NDArray[np.intp]) -> float: ...

    def metrics(self, rows: NDArray[np.intp]) -> dict[str, float]: ...


__all__ = ["Oracle", "Files", "LabelStudio", "Terminal", "Simulated", "Perfect", "Noisy", "ClassConditional",
           "TargetKappa", "RaterVotes", "Column", "Crowd", "ExpertPanel", "expected_kappa", "rates_for_kappa",
           "pairwise_kappa"]
