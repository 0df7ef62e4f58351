"""What every strategy shares: the pool view, the protocol, and one-pass chunked top-k selection."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError
from alexp.shards import is_disk

log = logging.getLogger(__name__)
_said: list = []  # the subsample line is logged once per process
ON_DISK_CANDIDATES = 100_000  # whole-space strategies' default subsample of a pool on disk (see `candidates`)
# Tie keys are an affine map of the row index modulo this prime: a bijection on rows < 2^31, so they never tie.
_TIE_PRIME = np.uint64(2**31 - 1)


@dataclass(frozen=True)
class PoolView:
    """Read-only view of the pool for a strategy: every pool row's features and the loop's labeling state."""

    X: Any  # n_pool x d features (ndarray, memmap or scipy sparse); never copied whole
    labeled_in: NDArray[np.int64]  # round each row was labeled in, -1 if unlabeled
    labels: NDArray[np.int64] | None = None  # the oracle's label per row, -1 if unlabeled or held out for eval
    n_classes: int = 2
    allowed: NDArray[np.bool_] | None = None  # optional restriction of the candidates (e.g. predicted positives)
    engine: Any = None  # scores a pool on disk on a cluster (alexp.engine), or None: here, in this process

    def candidate_mask(self) -> NDArray[np.bool_]:
        """Rows a strategy may select: unlabeled and allowed."""
        mask = self.labeled_in < 0
        return mask if self.allowed is None else mask & self.allowed

    def unlabeled(self) -> NDArray[np.intp]:
        return np.flatnonzero(self.candidate_mask())

    def labeled(self) -> NDArray[np.intp]:
        return np.flatnonzero(self.labeled_in >= 0)

    def training(self) -> NDArray[np.intp]:
        """Labeled rows whose labels may train a model (not those held out as a curated eval split)."""
        return np.flatnonzero((self.labeled_in >= 0) & (self.labels >= 0))

    def restrict(self, rows: NDArray[np.intp]) -> PoolView:
        """The same pool with candidates limited to `rows` (labeled rows stay labeled)."""
        allowed = np.zeros(len(self.labeled_in), dtype=bool)
        allowed[rows] = True
        if self.allowed is not None:
            allowed &= self.allowed
        return replace(self, allowed=allowed)


class Acquisition(Protocol):
    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        """Return n distinct candidate row indices of the pool."""


def blocks(n_rows: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive row blocks: slicing a block of a dense array is a view, not a copy."""
    for start in range(0, n_rows, chunk_size):
        yield start, min(start + chunk_size, n_rows)


def tie_salt(rng: np.random.Generator) -> tuple[np.uint64, np.uint64]:
    """Random coefficients of the tie-key map; drawn once per selection."""
    a, b = rng.integers(1, 2**31 - 1, size=2, dtype=np.uint64)
    return a, b


def tie_keys(rows: NDArray[np.intp], salt: tuple[np.uint64, np.uint64]) -> NDArray[np.uint64]:
    """Seeded pseudo-random keys of rows, distinct for distinct rows, independent of chunking."""
    a, b = salt
    return (rows.astype(np.uint64) * a + b) % _TIE_PRIME


def top_k(scores: NDArray, rows: NDArray[np.intp], n: int, salt) -> NDArray[np.intp]:
    """Positions of the n highest scores, ties broken by the rows' tie keys; best first. O(len + n log n)."""
    if n < len(scores):
        kth = np.partition(scores, len(scores) - n)[len(scores) - n]
        above = np.flatnonzero(scores > kth)
        tied = np.flatnonzero(scores == kth)
        need = n - len(above)
        if need < len(tied):
            tied = tied[np.argpartition(-tie_keys(rows[tied], salt).astype(np.int64), need - 1)[:need]]
        keep = np.concatenate([above, tied])
    else:
        keep = np.arange(len(scores))
    keys = tie_keys(rows[keep], salt).astype(np.int64)
    return keep[np.lexsort((-keys, -scores[keep]))]


def select_top(score: Callable[[Any], NDArray], pool: PoolView, n: int, rng: np.random.Generator,
               chunk_size: int = 65_536) -> NDArray[np.intp]:
    """The n candidate rows with the highest `score(X[block])`, in one pass over the pool, best first.

    Extra memory is one block's scores plus the running top n; seeded random order among equal scores. With an
    engine (a pool on disk scored by a cluster, alexp.engine) each task makes this pass over its own range of
    whole blocks and the driver merges the tasks' top n: the same rows in the same order."""
    salt = tie_salt(rng)
    mask = pool.candidate_mask()
    if pool.engine is not None and is_disk(pool.X):
        return pool.engine.top(score, pool.X, mask, n, salt, chunk_size)
    return scan_top(score, pool.X, mask, n, salt, chunk_size)[0]


def scan_top(score: Callable[[Any], NDArray], X, mask: NDArray[np.bool_], n: int, salt, chunk_size: int,
             start: int = 0) -> tuple[NDArray[np.intp], NDArray]:
    """(rows, scores) of the n best candidates (`mask`) of X, best first; X and mask cover rows start.. of the
    pool, and blocks are cut at multiples of chunk_size from row 0 of the pool (a block's scores may depend on
    the block, e.g. X @ w in float32, so every caller scores the same blocks)."""
    best_rows = np.empty(0, dtype=np.intp)
    best_scores = np.empty(0)
    for lo, hi in blocks(len(mask), chunk_size):
        keep = mask[lo:hi]
        if not keep.any():
            continue
        rows = np.flatnonzero(keep) + lo
        if len(rows) == hi - lo:
            s = np.asarray(score(X[lo:hi])).ravel()
        elif 2 * len(rows) < hi - lo:  # a sparse restriction: score only its rows (a small copy)
            s = np.asarray(score(X[rows])).ravel()
        else:
            s = np.asarray(score(X[lo:hi])).ravel()[keep]
        rows = rows + start
        if len(best_rows) == n:  # only rows that can still enter the top n
            enter = s >= best_scores[-1]
            s, rows = s[enter], rows[enter]
        rows = np.concatenate([best_rows, rows])
        s = np.concatenate([best_scores, s])
        order = top_k(s, rows, n, salt)
        best_rows, best_scores = rows[order], s[order]
    return best_rows, best_scores


def candidates(pool: PoolView, max_candidates: int | None, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
    """The candidate rows (sorted), or a seeded uniform random subsample of max(`max_candidates`, n) of them.

    Strategies that compare candidates with each other read them all into memory (coreset, badge,
    boundary_pairs): for them, `max_candidates` null on a pool on disk (alexp.shards) means ON_DISK_CANDIDATES.
    Strategies with costly scores (a transformer) score only these rows: `pool.restrict(candidates(...))`.
    Never fewer than n rows remain, so a batch of n distinct rows can always be picked."""
    if max_candidates is None and is_disk(pool.X):
        max_candidates = ON_DISK_CANDIDATES
        if pool.engine is not None and not _said:
            _said.append(True)
            log.info("this strategy compares rows with each other: on a pool on disk it works on a seeded subsample "
                     "of %d rows (max_candidates) read by this process, not on the engine", max_candidates)
    rows = pool.unlabeled()
    if max_candidates is not None and len(rows) > max(max_candidates, n):
        rows = np.sort(rng.choice(rows, max(max_candidates, n), replace=False))
    return rows


def check_max_candidates(value: int | None) -> None:
    """For strategies' __post_init__: max_candidates is null or a positive number of rows."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise AlexpError(f"max_candidates must be a positive number of rows or null (every candidate), "
                         f"got {value!r}")


def check_compatible(acquisition, model) -> None:
    """Raise AlexpError if `acquisition` needs what `model` does not give: posterior samples (BALD, BatchBALD)
    or feature vectors (coreset, badge, ...: a model that reads raw texts has none)."""
    model_name = type(model).__name__
    if getattr(acquisition, "needs_samples", False) and not hasattr(model, "sample_proba"):
        raise AlexpError(f"acquisition: {type(acquisition).__name__} needs posterior samples, and {model_name} "
                         "draws none; use model=mlp_head or model=transformer")
    if not getattr(model, "accepts_text", False):
        return
    for strategy in (acquisition, getattr(acquisition, "base", None)):
        if getattr(strategy, "reads_features", False):
            raise AlexpError(f"acquisition: {type(strategy).__name__} compares feature vectors, and {model_name} "
                             "reads raw texts; use an uncertainty, committee or BALD strategy (entropy, margin, "
                             "vote_entropy, bald, ...) or features=minilm with model=mlp_head")
