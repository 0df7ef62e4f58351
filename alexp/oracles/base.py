"""What every oracle shares: a price per label, no extra metrics by default, and a place where answers come from."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError


class Oracle:
    """Base of oracles: `request(ids)` asks for labels of pool rows; `collect()` returns {row: label} for the
    last request, or None while a person has not answered yet (the loop then saves its state and stops).
    `cost(ids)` prices a batch (cost_per_label each unless an oracle says otherwise); `metrics(rows)` reports
    oracle-side figures (none by default); `scored_against(truth)` is the truth its answers are scored against;
    `where()` says where answers are expected; `tell` what round a request is for; `resume`, `commit` and
    `finish` let a human oracle keep its queue consistent with the loop's saved state across crashes."""

    interactive = False  # True for an oracle that takes answers in this terminal (no progress bar then)

    def __init__(self, cost_per_label: float = 1.0):
        if cost_per_label < 0:
            raise AlexpError(f"cost_per_label must be >= 0, got {cost_per_label!r}")
        self.cost_per_label = float(cost_per_label)

    def request(self, ids: NDArray[np.intp]) -> None:
        raise NotImplementedError

    def collect(self) -> dict[int, int] | None:
        raise NotImplementedError

    def cost(self, ids: NDArray[np.intp]) -> float:
        return self.cost_per_label * len(ids)

    def metrics(self, rows: NDArray[np.intp]) -> dict[str, float]:
        return {}

    def confidence(self, rows: NDArray[np.intp]) -> NDArray[np.float64] | None:
        """How sure the oracle is of its answer for each row, in [0.5, 1] for two classes (a crowd's share of
        votes for its answer, a model's probability of it); None for an oracle that does not say."""
        return None

    def scored_against(self, truth: NDArray[np.int64]) -> NDArray[np.int64]:
        """The truth this oracle's answers are scored against (`oracle_kappa`): the data's labels, unless those
        contain the answers themselves (then a truth without them; -1 marks an item with none)."""
        return truth

    def where(self) -> str:
        return f"the oracle ({type(self).__name__})"

    def tell(self, round_: int, rounds: int | None, labeled: int) -> None:
        """Told before each request: the round it belongs to (0 = the initial set), the last round (None when
        only the cost or the pool ends the run) and the labels accepted so far (default: ignored)."""

    def resume(self, labeled: NDArray[np.intp], labels: NDArray[np.int64] | None = None) -> None:
        """Told at the start of every loop which pool rows hold accepted labels already, and their labels
        (default: ignored)."""

    def corrections(self) -> dict[int, int]:
        """{pool row: label} for accepted rows a person has labelled anew since the last call (default: none)."""
        return {}

    def commit(self) -> None:
        """Called once the answers of the last `collect()` are saved in the loop's state; only now may an oracle
        discard them (the files oracle archives its answer file). Default: nothing to do."""

    def keep_journal(self, path) -> None:
        """Told where a human oracle may keep each answer the moment it is given (beside the run's state), so a
        killed run loses none (default: ignored; answers that live in a file or on a server need no journal)."""

    def finish(self) -> None:
        """Called when the run has bought all its labels: tidy up what was shown to people (default: nothing)."""


def shown_columns(context: dict, show) -> list[str]:
    """The context columns a person may see beside an item: only those the config names (`data.show_columns`).

    A data file's other columns often hold labels (a screening decision, the crowd's votes): shown, they would
    anchor the expert on the very answers the expert is compared against, so none is shown unless named."""
    show = [str(c) for c in (show or [])]
    extra = [c for c in context if c not in ("id", "text")]
    unknown = [c for c in show if c not in extra]
    if unknown:
        raise AlexpError(f"data.show_columns names {unknown}, which the data does not carry; choose among "
                         f"data.context_columns {extra} (or set data.show_columns=[])")
    return show


def accepted(fn: Callable, **available: Any) -> dict[str, Any]:
    """The keyword arguments among `available` that `fn` (a class, function or partial) names; all of them when
    it takes **kwargs. Oracles receive only the runtime arguments (truth, rng, context) they use."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return available
    return {k: v for k, v in available.items() if k in params}
