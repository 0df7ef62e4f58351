"""Candidates for huge pools: only the nearest neighbours of the labelled rows are scored (SEALS).

Coleman et al. 2022, "Similarity Search for Efficient Active Learning and Search of Rare Concepts" (AAAI):
restricting each round's candidates to the k nearest neighbours of the labelled set, found in an approximate
nearest-neighbour index built once, scored as little as 0.1% of a 10-billion-image pool with little loss. Here the
index is faiss's (an exact flat index for small pools, an inverted file of 8-bit scalar-quantized vectors for large
ones, or any faiss index_factory string); every round the labelled rows are looked up, and the base strategy
chooses the batch among their unlabelled neighbours. A row's neighbours depend only on the row and the index, so a
resumed run chooses as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError
from alexp.acquisition.base import Acquisition, PoolView, blocks
from alexp.acquisition.uncertainty import Margin
from alexp.atomic import atomic_path
from alexp.shards import is_disk

EXACT_BELOW = 200_000  # index=auto: an exact (flat) index for pools smaller than this


def auto_index(n_rows: int) -> str:
    """index=auto: exact search below EXACT_BELOW rows; above, an inverted file of about sqrt(n) lists (a power
    of two, 1,024..65,536) holding 8-bit scalar-quantized vectors (a quarter of float32's memory)."""
    if n_rows < EXACT_BELOW:
        return "Flat"
    return f"IVF{int(np.clip(2 ** round(np.log2(np.sqrt(n_rows))), 1024, 65_536))},SQ8"


@dataclass(frozen=True)
class Neighbours:
    """The base strategy's batch among the unlabelled k nearest neighbours of the labelled rows (SEALS).

    After each call `stats` holds `candidates` (rows the base strategy scored) and `candidate_share` (their
    share of the unlabelled pool), `timings` the seconds of its look-up and scoring. Fewer candidates than the
    batch are topped up with random unlabelled rows (`topped_up`). Each labelled row is looked up once per run.
    Sparse features (tf-idf) are densified a block at a time; the index then holds rows x vocabulary floats (Flat)
    or bytes (SQ8): dense embeddings suit it better."""

    reads_features: ClassVar[bool] = True  # compares feature vectors (not for raw-text models)

    base: Acquisition = field(default_factory=Margin)
    k: int = 100  # neighbours looked up per labelled row
    index: str = "auto"  # a faiss index_factory string ("Flat", "IVF4096,SQ8", "HNSW32", ...) or auto (auto_index)
    nprobe: int = 16  # inverted lists searched per query (IVF indexes): more = better recall, slower
    train_rows: int = 200_000  # rows sampled (seeded) to train an index that needs training
    random_state: int = 0  # the training sample's seed
    cache_dir: str | None = None  # where an index over a pool on disk is kept between runs (null: not kept)
    stats: dict = field(default_factory=dict, compare=False, repr=False)
    timings: dict = field(default_factory=dict, compare=False, repr=False)  # seconds of the last call's parts
    _built: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        for name in ("k", "nprobe", "train_rows"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise AlexpError(f"acquisition.{name} must be a positive integer, got {value!r}")

    def __call__(self, model, pool: PoolView, n: int, rng: np.random.Generator) -> NDArray[np.intp]:
        import time

        started = time.perf_counter()
        index, stored, found = self.built(pool.X)
        labeled = pool.labeled()
        new = labeled[[row not in found for row in labeled.tolist()]]  # looked up once per run
        for a, b in blocks(len(new), 4096):
            _, ids = index.search(_dense(pool.X[new[a:b]]), self.k)
            for row, hits in zip(new[a:b].tolist(), ids):
                found[row] = _positions(hits, stored)
        unlabeled = pool.candidate_mask()
        rows = np.unique(np.concatenate([found[row] for row in labeled.tolist()] or [np.empty(0, np.intp)]))
        rows = rows[unlabeled[rows]]
        search = time.perf_counter() - started
        topped = 0
        if len(rows) < n:  # too few: random unlabelled rows as well
            rest = np.setdiff1d(np.flatnonzero(unlabeled), rows)
            extra = rng.choice(rest, min(n - len(rows), len(rest)), replace=False)
            rows, topped = np.sort(np.concatenate([rows, extra])), len(extra)
        picks = self.base(model, pool.restrict(rows), n, rng)
        self.stats.clear()
        self.stats.update(candidates=len(rows), candidate_share=len(rows) / max(1, int(unlabeled.sum())),
                          topped_up=topped)
        self.timings.update(search_seconds=search, score_seconds=time.perf_counter() - started - search)
        return picks

    def built(self, X) -> tuple[Any, NDArray[np.int64] | None, dict]:
        """(faiss index, stored row of each pool position or None, the neighbours found so far by pool row): the
        index is over every stored row of a pool on disk (one index serves every split and seed of that pool),
        else over the pool's rows; built once per run, and kept in cache_dir for a pool on disk. A row's
        neighbours depend only on the row, so a resumed run finds the same ones."""
        key = (id(X), X.shape)
        if key not in self._built:
            self._built.clear()
            stored = X.stored_rows() if is_disk(X) else None
            if stored is not None and len(stored) > 1 and not (np.diff(stored) > 0).all():
                stored = None  # a view in another order: an index over its own rows
            source = X.stored() if stored is not None else X
            self._built[key] = (self._load_or_build(source), stored, {})
        return self._built[key]

    def _load_or_build(self, X):
        import faiss

        factory = auto_index(X.shape[0]) if self.index == "auto" else self.index
        file = None
        if is_disk(X) and self.cache_dir is not None:
            stamp = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in X.files]
            digest = hashlib.sha256(repr((stamp, factory, self.train_rows, self.random_state)).encode()).hexdigest()
            file = Path(self.cache_dir) / f"ann-{digest[:20]}.faiss"
            if file.is_file():
                index = faiss.read_index(str(file))
                return _with_nprobe(index, self.nprobe)
        try:
            index = faiss.index_factory(X.shape[1], factory)
        except RuntimeError as e:
            raise AlexpError(f"acquisition.index={self.index!r}: faiss cannot build {factory!r} "
                             f"({str(e).strip().splitlines()[-1]}); use auto, Flat, IVF4096,SQ8, HNSW32, ...") from None
        from tqdm.auto import tqdm

        if not index.is_trained:
            sample = np.sort(np.random.default_rng(self.random_state).choice(
                X.shape[0], min(self.train_rows, X.shape[0]), replace=False))
            index.train(_dense(X[sample]))
        for a, b in tqdm(list(blocks(X.shape[0], 65_536)), desc=f"nearest-neighbour index {factory}", unit="block",
                         disable=X.shape[0] < 1_000_000 or None):
            index.add(_dense(X[a:b]))
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(file) as tmp:
                faiss.write_index(index, str(tmp))
        return _with_nprobe(index, self.nprobe)


def _dense(X) -> NDArray[np.float32]:
    """Rows as the contiguous float32 array faiss takes (sparse rows, e.g. tf-idf, densified: a block at a time)."""
    return np.ascontiguousarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32)


def _with_nprobe(index, nprobe: int):
    import faiss

    try:
        faiss.extract_index_ivf(index).nprobe = nprobe
    except RuntimeError:  # not an inverted-file index
        pass
    return index


def _positions(ids: NDArray[np.int64], stored: NDArray[np.int64] | None) -> NDArray[np.intp]:
    """Pool positions of index ids (stored rows; -1 = none found), dropping rows outside the pool (test rows)."""
    ids = ids[ids >= 0]
    if stored is None:
        return ids
    pos = np.minimum(np.searchsorted(stored, ids), len(stored) - 1)
    return pos[stored[pos] == ids]
