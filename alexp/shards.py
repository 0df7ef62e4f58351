"""Pools bigger than memory: a 2-D float feature array stored on disk in files, read a block at a time.

Two layouts. An Arrow pool (the standard columnar format) is a folder of uncompressed Arrow IPC files
`part-00000.arrow`, ... whose column `x` holds the features as fixed_size_list<float32>[d], beside per-row columns
(`y`, `ids`, ...); any Arrow reader reads it, and each record batch's features are one contiguous float32 block at
a known offset in its file. A shard folder holds `x-00000.npy`, `x-00001.npy`, ... (rows in order, `shard_rows`
each, the last one shorter), one `.npy` file per per-row column (labels `y.npy`, row ids `ids.npy`) and
`meta.json`. `ArrowWriter` and `ShardWriter` write them once, block by block, holding one block in memory;
`convert` turns Parquet, shards or compressed Arrow into an Arrow pool. `DiskArray` reads either: `X[a:b]` reads
those rows with plain file reads (no memory map, so the pages read never count towards the process's resident
memory), `X[rows]` gathers rows the same way (runs of nearby rows at once, rows alone one read each, on several
threads), and `X.rows(index)` is a view of some rows (a pool or test split) that reads nothing until sliced.
Everything alexp does with pool features (`X.shape`, `X[a:b]`, `X[rows]`) works the same on a `DiskArray` as on
an ndarray, in memory bounded by one block.
"""
from __future__ import annotations

import copy
import io
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError
from alexp.lifeline import alive

META = "meta.json"
FEATURES = "x"  # the features column of an Arrow pool
BLOCK_ROWS = 65_536  # rows per block when a whole DiskArray is streamed
READERS = 4  # threads that read scattered rows at once
NEARBY_BYTES = 16_384  # a gather reads rows closer than this in one span


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

    def _checked(self, X: NDArray, columns: dict) -> NDArray:
        """X as a C-contiguous block of this writer's dtype; a block or column that does not fit is refused."""
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise AlexpError(f"a block of shape {X.shape} does not fit {self.n_features} features")
        for name, values in columns.items():
            if len(values) != len(X):
                raise AlexpError(f"column {name!r} has {len(values)} values for a block of {len(X)} rows")
        return X

    def append(self, X: NDArray, **columns: NDArray) -> None:
        X = self._checked(X, columns)
        for name, values in columns.items():
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
        self._finish()
        self._publish()

    def _finish(self) -> None:
        """Write what the folder holds besides the shards: the per-row columns and meta.json."""
        for name, parts in self.columns.items():
            np.save(self.tmp / f"{name}.npy", np.concatenate(parts))
        meta = {**self.meta, "n_rows": sum(self.rows), "n_features": self.n_features, "dtype": self.dtype.str,
                "shard_rows": self.rows}
        (self.tmp / META).write_text(json.dumps(meta, indent=1))

    def _publish(self) -> None:
        """Move the finished temporary folder to `path` (keeping a pool another writer finished meanwhile)."""
        if self.path.exists():
            if not self.overwrite and is_pool(self.path):
                shutil.rmtree(self.tmp)
                return
            shutil.rmtree(self.path)
        os.replace(self.tmp, self.path)


class ArrowWriter(ShardWriter):
    """Write an Arrow pool block by block, with ShardWriter's interface and guarantees: a folder of uncompressed
    Arrow IPC files `part-00000.arrow`, ... (`shard_rows` rows each), each block a record batch with the features
    as column `x` (fixed_size_list<float32>[d]; polars reads it as pl.Array(pl.Float32, d)) and the per-row
    columns given to `append` (the same ones in every block). Any Arrow reader (polars, pyarrow, DuckDB, Ray,
    Dask) reads it; alexp reads the features of any row in place, as from a shard folder. `meta` is kept in
    the files' schema metadata."""

    def __init__(self, path: str | Path, n_features: int, dtype=np.float32, shard_rows: int = 1_000_000,
                 meta: dict | None = None, overwrite: bool = True):
        if np.dtype(dtype) != np.float32:
            raise AlexpError(f"an Arrow pool stores float32 features, not {np.dtype(dtype)}")
        super().__init__(path, n_features, dtype, shard_rows, meta, overwrite)
        self._schema = None

    def append(self, X: NDArray, **columns: NDArray) -> None:
        import pyarrow as pa

        X = self._checked(X, columns)
        while len(X):
            if self._file is None or self.rows[-1] == self.shard_rows:
                self._next_shard()
            take = min(len(X), self.shard_rows - self.rows[-1])
            batch = {FEATURES: pa.FixedSizeListArray.from_arrays(pa.array(X[:take].ravel()), self.n_features),
                     **{k: pa.array(np.asarray(v[:take])) for k, v in columns.items()}}
            batch = pa.record_batch(batch)
            if self._schema is None:
                self._schema = batch.schema.with_metadata({"alexp": json.dumps(self.meta)})
            if batch.schema.names != self._schema.names:
                raise AlexpError(f"every block needs the same columns: {self._schema.names}, got {batch.schema.names}")
            self._file.write_batch(batch)
            self.rows[-1] += take
            X, columns = X[take:], {k: v[take:] for k, v in columns.items()}

    def _next_shard(self) -> None:
        self._close_shard()
        self.rows.append(0)
        self._file = _LazyArrowFile(self.tmp / f"part-{len(self.rows) - 1:05d}.arrow", self)

    def _close_shard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _finish(self) -> None:
        """Nothing besides the files: the columns and the metadata are in them."""


class _LazyArrowFile:
    """An Arrow IPC file opened at its first batch (the schema is known then)."""

    def __init__(self, path: Path, writer: ArrowWriter):
        self.path, self.writer, self.ipc = path, writer, None

    def write_batch(self, batch) -> None:
        import pyarrow as pa

        if self.ipc is None:
            self.ipc = pa.ipc.new_file(str(self.path), self.writer._schema)
        self.ipc.write_batch(batch)

    def close(self) -> None:
        if self.ipc is not None:
            self.ipc.close()


def is_shard_folder(path: str | Path) -> bool:
    return (Path(path) / META).is_file()


def is_pool(path: str | Path) -> bool:
    """A shard folder or an Arrow pool: what DiskArray reads."""
    return is_shard_folder(path) or is_arrow_pool(path)


def read_meta(path: str | Path) -> dict:
    path = Path(path)
    if not is_shard_folder(path):
        raise AlexpError(f"{path} is not a shard folder (no {META}); write one with alexp.shards.ShardWriter")
    return json.loads((path / META).read_text())


def read_column(path: str | Path, name: str) -> NDArray | None:
    """A per-row column saved by the writer (e.g. 'y', 'ids'), or None if the pool has none."""
    if is_arrow_pool(path):
        parts = []
        for file in arrow_files(path):
            part = _mapped(file, lambda reader, *_: np.array(reader.read_all().column(name).to_numpy(), copy=True)
                           if name in reader.schema.names else None)
            if part is None:
                return None
            parts.append(part)
        return np.concatenate(parts)
    file = Path(path) / f"{name}.npy"
    return np.load(file) if file.is_file() else None


def arrow_files(path: str | Path) -> list[Path]:
    """The Arrow IPC files of a pool: the file itself, or a folder's `*.arrow` files in name order."""
    path = Path(path)
    return [path] if path.is_file() else sorted(path.glob("*.arrow"))


def is_arrow_pool(path: str | Path) -> bool:
    return Path(path).suffix == ".arrow" and Path(path).is_file() or Path(path).is_dir() and bool(arrow_files(path))


def arrow_segments(path: str | Path, column: str = FEATURES) -> tuple[list[Path], list[int], list[int], int]:
    """(file, rows, byte offset of its first feature) of every record batch of an Arrow pool, and the number of
    features. The features column must be a fixed-size list of float32 without nulls, uncompressed: each
    batch's values are then one contiguous float32 block at a known place in its file, read like a `.npy` shard.
    """
    import pyarrow as pa

    files, rows, offsets, width = [], [], [], None
    if not arrow_files(path):
        raise AlexpError(f"{path} is not a shard folder (meta.json) nor an Arrow pool (*.arrow files); "
                         "write one with alexp.shards.ArrowWriter or convert one with alexp.shards.convert")
    for file in arrow_files(path):
        kind = _mapped(file, lambda reader, *_: reader.schema.field(column).type
                       if column in reader.schema.names else None)
        if not (pa.types.is_fixed_size_list(kind) and kind.value_type == pa.float32()):
            raise AlexpError(f"{file}: column {column!r} must be fixed_size_list<float32>[d] (polars: "
                             f"pl.Array(pl.Float32, d)), got {kind}; convert it with alexp.shards.convert")
        if width not in (None, kind.list_size):
            raise AlexpError(f"{file} has {kind.list_size} features, the pool's other files {width}")
        width = kind.list_size
        problem = _mapped(file, partial(_batch_offsets, column=column, width=width, rows=rows, offsets=offsets))
        if problem:
            raise AlexpError(f"{file}{problem}")
        files.extend([file] * (len(rows) - len(files)))
    return files, rows, offsets, int(width)


def _batch_offsets(reader, base: int, size: int, column: str, width: int, rows: list, offsets: list) -> str:
    """Append each record batch's rows and the byte offset of its first feature; '' or what is wrong."""
    for b in range(reader.num_record_batches):
        x = reader.get_batch(b).column(column)
        if x.null_count or x.values.null_count:
            return f": column {column!r} has missing values (batch {b})"
        data = x.values.buffers()[1]
        if data is None or not base <= data.address < base + size:
            return (" is compressed; write it uncompressed (polars: write_ipc(..., compression='uncompressed')) "
                    "or use alexp.shards.convert")
        rows.append(len(x))
        offsets.append(data.address - base + (x.offset + x.values.offset) * width * 4)
    return ""


def _mapped(file: Path, read):
    """read(Arrow IPC file reader, address of the file's first byte, its size) over a memory map with read-ahead
    off: reading a batch's metadata touches its own page only (with the kernel's read-ahead of ~2 MB per touch,
    opening a 100M-row pool made 3.3 GB resident). What `read` returns must not hold the map's memory."""
    import mmap

    import pyarrow as pa

    with open(file, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        m.madvise(mmap.MADV_RANDOM)
        buffer = pa.py_buffer(m)
        reader = pa.ipc.open_file(pa.BufferReader(buffer))
        try:
            return read(reader, buffer.address, buffer.size)
        finally:
            del reader, buffer


class DiskArray:
    """Read-only 2-D array over a shard folder, optionally restricted to some of its rows (a view).

    Supports `len`, `shape`, `dtype`, `ndim`, `X[a:b]` (a copy of those rows), `X[rows]` (integer or boolean
    index, any order, a copy) and `X.rows(index)` (a view). `np.asarray(X)` reads it all: alexp itself never
    does that, it streams `X[a:b]` blocks.
    """

    def __init__(self, path: str | Path, index: NDArray[np.intp] | None = None):
        self.path = Path(path)
        if is_shard_folder(self.path):
            meta = read_meta(self.path)
            self.dtype = np.dtype(meta["dtype"])
            self.n_features = int(meta["n_features"])
            counts = np.asarray(meta["shard_rows"], dtype=np.int64)
            self._files = [self.path / f"x-{i:05d}.npy" for i in range(len(counts))]
            self._offsets: list[int | None] = [None] * len(counts)  # each .npy header is checked when first read
        else:
            self._files, counts, self._offsets, self.n_features = arrow_segments(self.path)
            self.dtype = np.dtype(np.float32)
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._index = None if index is None else np.asarray(index, dtype=np.int64)

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
        view = copy.copy(self)  # shares the file layout; reads nothing
        view._index = index if self._index is None else self._index[index]
        return view

    def stored(self) -> DiskArray:
        """Every stored row, whatever rows this view holds."""
        whole = copy.copy(self)
        whole._index = None
        return whole

    def stored_rows(self) -> NDArray[np.int64]:
        """The stored row of each of this view's rows."""
        return np.arange(self.n_stored) if self._index is None else self._index

    @property
    def files(self) -> list[Path]:
        return list(dict.fromkeys(self._files))

    def window(self, start: int, stop: int) -> DiskArray:
        """A view of rows start..stop-1 that carries only its own part of this view's index (to ship to a worker)."""
        view = copy.copy(self)
        view._index = np.arange(start, stop) if self._index is None else self._index[start:stop].copy()
        view._offsets = list(self._offsets)
        return view

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
        """Byte offset of the shard's first row in its file (a .npy header is read and checked once)."""
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
        """file -> open file object, for the reads of one access; all closed at the end."""
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
            file = self._files[shard]
            if file not in files:
                files[file] = open(file, "rb")
            files[file].seek(self._offset(shard) + int(lo) * row_bytes)
            files[file].readinto(memoryview(out[pos - start:pos - start + hi - lo]).cast("B"))
            pos += int(hi - lo)
        return out

    def _gather(self, stored: NDArray[np.int64]) -> NDArray:
        """Stored rows in the given order, read as runs of nearby rows: rows closer than ~16 KB are read in one
        span (and the rows between dropped), a span is at most BLOCK_ROWS rows; a row alone is read with one
        pread into its place. Memory: twice the output plus one span; nothing is memory-mapped, so pages read
        never stay in the process's resident memory."""
        if not len(stored):
            return np.empty((0, self.n_features), dtype=self.dtype)
        if stored.min() < 0 or stored.max() >= self.n_stored:
            raise IndexError(f"row index out of range for {self!r}")
        if stored[-1] - stored[0] == len(stored) - 1 and (np.diff(stored) == 1).all():
            with self._open() as files:  # consecutive rows: read straight into the output
                return self._read(int(stored[0]), int(stored[-1]) + 1, files)
        order = np.argsort(stored, kind="stable")
        rows = stored[order]
        gap = max(1, NEARBY_BYTES // (self.n_features * self.dtype.itemsize))
        shard = np.searchsorted(self._starts, rows, side="right") - 1
        cut = np.flatnonzero((np.diff(rows) > gap) | (np.diff(shard) != 0)) + 1
        first, last = np.concatenate([[0], cut]), np.concatenate([cut, [len(rows)]]) - 1  # each run's rows
        row_bytes = self.n_features * self.dtype.itemsize
        target = np.empty((len(rows), self.n_features), dtype=self.dtype)  # rows in stored order
        with self._open() as files:
            offsets = np.zeros(len(self._files), dtype=np.int64)
            for s in np.unique(shard).tolist():
                offsets[s] = self._offset(s)
                if self._files[s] not in files:
                    files[self._files[s]] = open(self._files[s], "rb")
            at = offsets[shard] + (rows - self._starts[shard]) * row_bytes  # each row's byte in its file
            fds = np.array([files[f].fileno() if f in files else -1 for f in self._files])
            alone = first[first == last]  # rows alone (scattered rows, e.g. a sparse candidate set)
            _pread_rows(target, alone, fds[shard[alone]], at[alone])
            for a, b in zip(first[first < last].tolist(), last[first < last].tolist()):
                while a <= b:  # a run of nearby rows: spans of at most BLOCK_ROWS rows, the rows between dropped
                    lo = rows[a]
                    n = int(np.searchsorted(rows[a:b + 1], lo + BLOCK_ROWS))
                    span = self._read(int(lo), int(rows[a + n - 1]) + 1, files)
                    target[a:a + n] = span[rows[a:a + n] - lo]
                    a += n
        out = np.empty_like(target)
        out[order] = target
        return out


def _pread_rows(out: NDArray, rows: NDArray[np.intp], fds: NDArray, at: NDArray[np.int64]) -> None:
    """out[rows[i]] = the bytes at at[i] of file fds[i]: one pread each, in place; many of them on READERS threads
    at once (a disk answers several small reads at a time: 200,000 scattered rows cold, 7.9 s on one thread,
    3.4 s on four, here)."""
    def read(part: slice) -> None:
        for row, fd, byte in zip(rows[part].tolist(), fds[part].tolist(), at[part].tolist()):
            os.preadv(fd, [out[row]], byte)

    if len(rows) < 256:
        read(slice(None))
        return
    from concurrent.futures import ThreadPoolExecutor

    step = -(-len(rows) // (4 * READERS))
    with ThreadPoolExecutor(READERS) as pool:
        list(pool.map(read, [slice(a, a + step) for a in range(0, len(rows), step)]))


def is_disk(X) -> bool:
    return isinstance(X, DiskArray)


def convert(source: str | Path, out: str | Path, column: str = FEATURES, shard_rows: int = 1_000_000,
            block_rows: int = BLOCK_ROWS) -> Path:
    """Write the pool at `source` as an Arrow pool at `out`, a block at a time: a shard folder, a Parquet file or
    folder of them, or an Arrow file or folder (e.g. compressed). The features are `column` (a list or
    fixed-size list of numbers per row, cast to float32); every other column is kept as it is."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    source = Path(source)
    if is_shard_folder(source):
        X = DiskArray(source)
        names = [f.stem for f in source.glob("*.npy") if not f.name.startswith("x-")]
        columns = {name: np.load(source / f"{name}.npy", mmap_mode="r") for name in names}
        with ArrowWriter(out, X.n_features, shard_rows=shard_rows, meta=read_meta(source)) as w:
            for start, block in X.blocks(block_rows):
                w.append(block, **{k: np.asarray(v[start:start + len(block)]) for k, v in columns.items()})
        return Path(out)
    fmt = "ipc" if source.suffix == ".arrow" or source.is_dir() and any(source.glob("*.arrow")) else "parquet"
    data = ds.dataset(str(source), format=fmt)
    if column not in data.schema.names:
        raise AlexpError(f"{source} has no features column {column!r} (columns: {data.schema.names}); pass column=")
    width = None
    writer = None
    try:
        for batch in data.to_batches(batch_size=block_rows):
            x = batch.column(column)
            if width is None:
                width = len(x[0]) if len(x) else 0
                writer = ArrowWriter(out, width, shard_rows=shard_rows).__enter__()
            if pc.any(pc.is_null(x)).as_py() or (len(x) and pc.min(pc.list_value_length(x)).as_py() != width):
                raise AlexpError(f"{source}: column {column!r} must hold {width} numbers in every row")
            X = np.asarray(pc.list_flatten(x).to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, width)
            writer.append(X, **{k: batch.column(k).to_numpy(zero_copy_only=False)
                                for k in batch.schema.names if k != column})
    except BaseException as e:
        if writer is not None:
            writer.__exit__(type(e), e, e.__traceback__)
        raise
    if writer is None:
        raise AlexpError(f"{source} holds no rows")
    writer.__exit__(None, None, None)
    return Path(out)
