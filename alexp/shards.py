"""Pools bigger than memory: a 2-D feature array stored as `.npy` shards in a folder, read a block at a time.

A shard folder holds `x-00000.npy`, `x-00001.npy`, ... (rows in order, `shard_rows` each, the last one shorter),
one `.npy` file per per-row column (labels `y.npy`, row ids `ids.npy`) and `meta.json`. `ShardWriter` writes it
once, block by block, holding one block in memory; `DiskArray` reads it back: `X[a:b]` reads those rows with
plain file reads (no memory map, so the pages read never count towards the process's resident memory),
`X[rows]` gathers rows the same way, reading runs of nearby rows at once, and `X.rows(index)` is a view of
some rows (a pool or test split) that reads nothing until sliced. Everything alexp does with pool features
(`X.shape`, `X[a:b]`, `X[rows]`) works the same on a `DiskArray` as on an ndarray, in memory bounded by one
block.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError
from alexp.lifeline import alive

META = "meta.json"
BLOCK_ROWS = 65_536  # rows per block when a whole DiskArray is streamed


def _header(shape: tuple[int, int], dtype: np.dtype) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(dtype),
                                               "fortran_order": False, "shape": shape})
    return buf.getvalue()


class ShardWriter:
    """Write a shard folder block by block: `with ShardWriter(path, n_features) as w: w.append(X, y=y)`.

    Blocks may have any number of rows; shards are cut at `shard_rows`. Per-row columns given as keywords to
    `append` (1-D, one value per row) are collected and saved as `<name>.npy`. The folder appears only when
    the writer closes without error (written beside it under a temporary name, then renamed), so a crash never
    leaves a folder that looks complete. With `overwrite=False` a folder that another writer completed
    meanwhile is kept and this one discarded (for caches whose content depends only on their name).
    """

    def __init__(self, path: str | Path, n_features: int, dtype=np.float32, shard_rows: int = 1_000_000,
                 meta: dict | None = None, overwrite: bool = True):
        if shard_rows < 1:
            raise AlexpError(f"shard_rows must be a positive number of rows, got {shard_rows}")
        self.path, self.n_features, self.dtype = Path(path), int(n_features), np.dtype(dtype)
        self.shard_rows, self.meta, self.overwrite = int(shard_rows), dict(meta or {}), overwrite
        self.tmp = self.path.with_name(f"{self.path.name}.tmp{os.getpid()}")
        self.rows: list[int] = []  # rows written to each shard
        self.columns: dict[str, list[NDArray]] = {}
        self._file = None

    def __enter__(self) -> ShardWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for stale in self.path.parent.glob(f"{self.path.name}.tmp*"):  # left by a writer that was killed
            pid = stale.name.rsplit(".tmp", 1)[1]
            if pid.isdigit() and not alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()
        return self

    def append(self, X: NDArray, **columns: NDArray) -> None:
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise AlexpError(f"a block of shape {X.shape} does not fit {self.n_features} features")
        for name, values in columns.items():
            if len(values) != len(X):
                raise AlexpError(f"column {name!r} has {len(values)} values for a block of {len(X)} rows")
            self.columns.setdefault(name, []).append(np.asarray(values))
        while len(X):
            if self._file is None or self.rows[-1] == self.shard_rows:
                self._next_shard()
            take = min(len(X), self.shard_rows - self.rows[-1])
            self._file.write(X[:take].tobytes())
            self.rows[-1] += take
            X = X[take:]

    def _next_shard(self) -> None:
        self._close_shard()
        self._file = open(self.tmp / f"x-{len(self.rows):05d}.npy", "wb")
        self._file.write(_header((self.shard_rows, self.n_features), self.dtype))
        self.rows.append(0)

    def _close_shard(self) -> None:
        """Close the open shard, rewriting its header with the rows it really holds (same header length)."""
        if self._file is None:
            return
        header = _header((self.rows[-1], self.n_features), self.dtype)
        assert len(header) == len(_header((self.shard_rows, self.n_features), self.dtype))
        self._file.seek(0)
        self._file.write(header)
        self._file.close()
        self._file = None

    def __exit__(self, kind, value, traceback) -> None:
        self._close_shard()
        if kind is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        for name, parts in self.columns.items():
            np.save(self.tmp / f"{name}.npy", np.concatenate(parts))
        meta = {**self.meta, "n_rows": sum(self.rows), "n_features": self.n_features, "dtype": self.dtype.str,
                "shard_rows": self.rows}
        (self.tmp / META).write_text(json.dumps(meta, indent=1))
        if self.path.exists():
            if not self.overwrite and is_shard_folder(self.path):
                shutil.rmtree(self.tmp)
                return
            shutil.rmtree(self.path)
        os.replace(self.tmp, self.path)


def is_shard_folder(path: str | Path) -> bool:
    return (Path(path) / META).is_file()


def read_meta(path: str | Path) -> dict:
    path = Path(path)
    if not is_shard_folder(path):
        raise AlexpError(f"{path} is not a shard folder (no {META}); write one with alexp.shards.ShardWriter")
    return json.loads((path / META).read_text())


def read_column(path: str | Path, name: str) -> NDArray | None:
    """A per-row column saved by the writer (e.g. 'y', 'ids'), or None if the folder has none."""
    file = Path(path) / f"{name}.npy"
    return np.load(file) if file.is_file() else None


class DiskArray:
    """Read-only 2-D array over a shard folder, optionally restricted to some of its rows (a view).

    Supports `len`, `shape`, `dtype`, `ndim`, `X[a:b]` (a copy of those rows), `X[rows]` (integer or boolean
    index, any order, a copy) and `X.rows(index)` (a view). `np.asarray(X)` reads it all: alexp itself never
    does that, it streams `X[a:b]` blocks.
    """

    def __init__(self, path: str | Path, index: NDArray[np.intp] | None = None):
        self.path = Path(path)
        meta = read_meta(self.path)
        self.dtype = np.dtype(meta["dtype"])
        self.n_features = int(meta["n_features"])
        counts = np.asarray(meta["shard_rows"], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        self._files = [self.path / f"x-{i:05d}.npy" for i in range(len(counts))]
        self._index = None if index is None else np.asarray(index, dtype=np.int64)
        self._offsets: list[int | None] = [None] * len(counts)

    @property
    def n_stored(self) -> int:
        return int(self._starts[-1])

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_stored if self._index is None else len(self._index), self.n_features)

    ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"DiskArray({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"

    def rows(self, index: NDArray[np.intp]) -> DiskArray:
        """A view of the given rows (positions in this array), in that order; reads nothing."""
        index = np.asarray(index, dtype=np.int64)
        return DiskArray(self.path, index if self._index is None else self._index[index])

    def __getitem__(self, key) -> NDArray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                return self[np.arange(start, stop, step)]
            if self._index is None:
                with self._open() as files:
                    return self._read(start, stop, files)
            return self._gather(self._index[start:stop])
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        if key.ndim != 1 or key.dtype.kind not in "iu":
            raise TypeError(f"DiskArray takes a slice, an integer or a 1-D integer/boolean index, got {key!r}")
        key = np.where(key < 0, key + len(self), key)
        return self._gather(key if self._index is None else self._index[key])

    def __array__(self, dtype=None, copy=None) -> NDArray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def blocks(self, block_rows: int = BLOCK_ROWS) -> Iterator[tuple[int, NDArray]]:
        """(start, X[start:start + block_rows]) over the whole array."""
        for start in range(0, len(self), block_rows):
            yield start, self[start:start + block_rows]

    def _offset(self, shard: int) -> int:
        if self._offsets[shard] is None:
            with open(self._files[shard], "rb") as f:
                read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                shape, fortran, dtype = read[np.lib.format.read_magic(f)](f)
                want = (int(self._starts[shard + 1] - self._starts[shard]), self.n_features)
                if tuple(shape) != want or fortran or dtype != self.dtype:
                    raise AlexpError(f"{self._files[shard]} holds {shape} {dtype}; {META} says {want} {self.dtype}")
                self._offsets[shard] = f.tell()
        return self._offsets[shard]

    @contextmanager
    def _open(self) -> Iterator[dict]:
        """shard -> open file, for the reads of one access; all closed at the end."""
        files: dict = {}
        try:
            yield files
        finally:
            for f in files.values():
                f.close()

    def _read(self, start: int, stop: int, files: dict) -> NDArray:
        """Stored rows start..stop-1, read with file reads shard by shard (`files`: from `_open`)."""
        out = np.empty((max(stop - start, 0), self.n_features), dtype=self.dtype)
        row_bytes = self.n_features * self.dtype.itemsize
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        pos = start
        for shard in range(max(first, 0), len(self._files)):
            if pos >= stop:
                break
            lo, hi = pos - self._starts[shard], min(stop, self._starts[shard + 1]) - self._starts[shard]
            if shard not in files:
                files[shard] = open(self._files[shard], "rb")
            files[shard].seek(self._offset(shard) + int(lo) * row_bytes)
            files[shard].readinto(memoryview(out[pos - start:pos - start + hi - lo]).cast("B"))
            pos += int(hi - lo)
        return out

    def _gather(self, stored: NDArray[np.int64]) -> NDArray:
        """Stored rows in the given order, read as runs of nearby rows: rows closer than ~16 KB are read in one
        span (and the rows between dropped), a span is at most BLOCK_ROWS rows. Memory: the output plus one
        span; nothing is memory-mapped, so pages read never stay in the process's resident memory."""
        out = np.empty((len(stored), self.n_features), dtype=self.dtype)
        if not len(stored):
            return out
        if stored.min() < 0 or stored.max() >= self.n_stored:
            raise IndexError(f"row index out of range for {self!r}")
        order = np.argsort(stored, kind="stable")
        rows = stored[order]
        gap = max(1, 16_384 // (self.n_features * self.dtype.itemsize))
        cut = np.flatnonzero(np.diff(rows) > gap) + 1
        with self._open() as files:
            for run in np.split(np.arange(len(rows)), cut):
                while len(run):  # a long run is read in spans of at most BLOCK_ROWS rows
                    lo = rows[run[0]]
                    n = int(np.searchsorted(rows[run], lo + BLOCK_ROWS))
                    part, run = run[:n], run[n:]
                    span = self._read(int(lo), int(rows[part[-1]]) + 1, files)
                    out[order[part]] = span[rows[part] - lo]
        return out


def is_disk(X) -> bool:
    return isinstance(X, DiskArray)
