"""Datasets: load a labeled table with polars, validate it, subsample it, split it into pool and gold test set.

polars stays inside this module: everything it returns is numpy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from alexp import AlexpError
from alexp.atomic import atomic_path
from alexp.errors import first_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Table:
    """A labeled dataset in memory: row ids, labels as class indices, and text or numeric inputs."""

    ids: NDArray  # the data's own row ids (ints or strings), for the labeled-items artifact
    y: NDArray[np.int64]  # index into `classes`: 0 = negative, 1 = positive
    inputs: NDArray  # object array of texts, or a float32 matrix of numeric features
    classes: tuple = (0, 1)
    extra: dict[str, NDArray] = field(default_factory=dict)  # context columns (e.g. rater votes)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def is_text(self) -> bool:
        return self.inputs.dtype == object

    def take(self, rows: NDArray[np.intp]) -> Table:
        """The sub-table of the given rows (a copy)."""
        extra = {k: v[rows] for k, v in self.extra.items()}
        return Table(self.ids[rows], self.y[rows], self.inputs[rows], self.classes, extra)


def split(table: Table, test_size: float, seed: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Sorted rows of the unlabeled pool and of the gold test set: a stratified split that depends on `seed`."""
    from sklearn.model_selection import train_test_split

    try:
        pool, test = train_test_split(np.arange(len(table)), test_size=test_size, stratify=table.y,
                                      random_state=seed)
    except ValueError as e:
        raise AlexpError(f"cannot split {len(table)} rows with test_size={test_size}: {e}") from None
    return np.sort(pool), np.sort(test)


def _check_fraction(name: str, value: float | None, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if value is None or not 0 < value < 1:
        raise AlexpError(f"{name} must be a fraction strictly between 0 and 1, got {value!r}")


def resample_rows(y: NDArray, positive_rate: float | None, max_rows: int | None, seed: int) -> NDArray[np.intp]:
    """Sorted rows keeping a `positive_rate` share of positives (y == 1) and at most `max_rows` rows.

    The rate is reached by dropping positives (or negatives, when asking for more positives than there are);
    `max_rows` then draws a stratified subsample. Both depend only on `seed`.
    """
    rng = np.random.default_rng(seed)
    rows = np.arange(len(y))
    if positive_rate is not None:
        pos, neg = rows[y == 1], rows[y != 1]
        want_pos = round(positive_rate * len(neg) / (1 - positive_rate))
        if want_pos < 1 or not len(neg):
            raise AlexpError(f"positive_rate={positive_rate} leaves no positives or no negatives "
                             f"({len(pos)} positives, {len(neg)} negatives)")
        if want_pos <= len(pos):
            pos = rng.choice(pos, want_pos, replace=False)
        else:
            neg = rng.choice(neg, round(len(pos) * (1 - positive_rate) / positive_rate), replace=False)
        kept = np.sort(np.concatenate([pos, neg]))
        if len(kept) < len(rows):
            log.info("data.positive_rate=%s keeps %d of %d rows (%d positives, %d negatives): rows are dropped to "
                     "reach the rate", positive_rate, len(kept), len(rows), len(pos), len(neg))
        rows = kept
    if max_rows is not None and max_rows < len(rows):
        from sklearn.model_selection import train_test_split

        try:
            rows = np.sort(train_test_split(rows, train_size=max_rows, stratify=y[rows], random_state=seed)[0])
        except ValueError as e:
            raise AlexpError(f"cannot draw a stratified subsample of max_rows={max_rows}: {e}") from None
    return rows


@dataclass(frozen=True)
class File:
    """A CSV or Parquet file with one label column and either a text column or numeric feature columns."""

    path: str
    label_column: str
    text_column: str | None = None
    feature_columns: Sequence[str] | None = None
    id_column: str | None = None
    classes: Sequence = (0, 1)
    class_names: Sequence[str] | None = None  # each class in a word or two, [negative, positive], for people
    descriptions: Sequence[str] | None = None  # each class in words, [negative, positive], for zero-shot scouts
    context_columns: Sequence[str] = ()
    show_columns: Sequence[str] = ()  # context columns a human oracle shows beside each item (none by default)
    quote_char: str | None = '"'  # CSV / TSV quoting; None reads quotes as text (a file retries so on failure)
    select: Mapping[str, Sequence] | None = None  # keep rows whose column values are listed, e.g. {review: [a, b]}
    test_size: float = 0.2
    positive_rate: float | None = None
    max_rows: int | None = None
    sample_seed: int = 0

    def __post_init__(self):
        if (self.text_column is None) == (not self.feature_columns):
            raise AlexpError(
                f"set exactly one of text_column or feature_columns "
                f"(got text_column={self.text_column!r}, feature_columns={self.feature_columns!r})"
            )
        if len(self.classes) != 2 or len(set(self.classes)) != 2:
            raise AlexpError(
                f"classes must list two distinct labels [negative, positive], got {list(self.classes)}; "
                "alexp 0.1 runs binary tasks: derive a binary label column first"
            )
        if self.class_names is not None and len(self.class_names) != 2:
            raise AlexpError(f"class_names must name the two classes [negative, positive], got "
                             f"{list(self.class_names)}; e.g. data.class_names=[news,clickbait]")
        _check_fraction("test_size", self.test_size, allow_none=False)
        _check_fraction("positive_rate", self.positive_rate)
        if self.max_rows is not None and self.max_rows < 2:
            raise AlexpError(f"max_rows must be at least 2 (or null for all rows), got {self.max_rows}")

    def load(self) -> Table:
        """Read, validate and subsample the file; raises AlexpError naming the first problem found."""
        import polars as pl

        try:
            frame = self._scan(self.quote_char).collect()
        except (pl.exceptions.PolarsError, AlexpError) as e:
            frame = self._without_quotes(e)
        if not frame.height:
            raise AlexpError(f"{self.path} has a header but no rows; give data.path a file with labeled rows")
        nested = [c for c, t in frame.schema.items() if t.is_nested()]
        if nested:
            raise AlexpError(f"column {nested[0]!r} of {self.path} holds {frame.schema[nested[0]]} values; "
                             "label, text, id and feature columns must hold one value per row")
        if self.text_column is not None and frame.schema[self.text_column] != pl.String:
            raise AlexpError(f"text column {self.text_column!r} of {self.path} holds {frame.schema[self.text_column]}"
                             " values, not text; name a column of texts (or use data.feature_columns)")
        label = frame[self.label_column]
        if label.null_count():
            raise AlexpError(
                f"label column {self.label_column!r} has {label.null_count()} null values "
                f"(first at rows {_first(label.is_null())})"
            )
        allowed = pl.Series(list(self.classes)).cast(label.dtype, strict=False)
        if allowed.null_count():
            raise AlexpError(f"classes {list(self.classes)} do not match label column {self.label_column!r} "
                             f"of type {label.dtype}; give data.classes as that column's values")
        unknown = ~label.is_in(allowed.to_list())
        if unknown.any():
            bad = sorted(set(label.filter(unknown).head(1000).to_list()), key=str)[:5]
            raise AlexpError(
                f"label column {self.label_column!r} has values outside classes {list(self.classes)}: "
                f"{bad} (first at rows {_first(unknown)}); set data.classes or derive a binary column"
            )
        y = (label == allowed[1]).to_numpy().astype(np.int64)
        inputs = self._inputs(frame, pl)
        ids = self._ids(frame)
        extra = {c: frame[c].to_numpy() for c in self.context_columns}
        rows = resample_rows(y, self.positive_rate, self.max_rows, self.sample_seed)
        self._say_classes(y[rows])
        return Table(ids, y, inputs, tuple(self.classes), extra).take(rows)

    def _say_classes(self, y: NDArray) -> None:
        """Name the positive class and its share at the start; warn when it is the majority (the classes are
        often given the wrong way round, and alexp's curves and rare-class strategies assume a rare positive)."""
        names = self.class_names or [str(c) for c in self.classes]
        share = float(y.mean()) if len(y) else 0.0
        log.info("data: positive class %r (label %r) is %.1f%% of %d rows", names[1], self.classes[1], 100 * share,
                 len(y))
        if share > 0.5:
            log.warning("data: the positive class %r (label %r) is the majority (%.0f%%); data.classes lists "
                        "[negative, positive]: if %r is the positive class, give data.classes=[%s,%s]", names[1],
                        self.classes[1], 100 * share, self.classes[0], self.classes[1], self.classes[0])

    def _without_quotes(self, error: Exception):
        """A CSV / TSV that quoting cannot parse (raw text with stray `"`, as many public corpora ship): read again
        with quotes as plain text, and say so; if that fails too, the first error is the one reported."""
        import polars as pl

        path = self._path()
        if self.quote_char is not None and path.suffix.lower() in (".csv", ".tsv"):
            try:
                frame = self._scan(None).collect()
            except (pl.exceptions.PolarsError, AlexpError):
                pass
            else:
                log.warning("read %s with quotes as plain text (data.quote_char=null): parsed with quoting it "
                            "failed (%s)", path, first_line(error, 120))
                return frame
        if isinstance(error, AlexpError):
            raise error
        raise AlexpError(f"cannot read {path}: {first_line(error, 200)}; save it as UTF-8 "
                         f"{path.suffix.lstrip('.').upper() or 'CSV'} with a header row and "
                         "quoted text fields (or as .parquet)") from None

    def _path(self) -> Path:
        return Path(self.path).expanduser()

    def _ids(self, frame) -> NDArray:
        if self.id_column is None:
            return np.arange(len(frame), dtype=np.int64)
        ids = frame[self.id_column]
        if ids.null_count() or ids.is_duplicated().any():
            bad = ids.filter(ids.is_duplicated()).head(5).to_list()
            raise AlexpError(f"id column {self.id_column!r} must be unique and non-null; "
                             f"{ids.null_count()} nulls, duplicated: {bad}")
        return ids.to_numpy()

    def _scan(self, quote_char: str | None = '"'):
        import polars as pl

        path = self._path()
        if path.is_dir():
            raise AlexpError(f"data.path={self.path!r} is a folder; point it at a .parquet, .csv or .tsv file")
        if not path.is_file():
            raise AlexpError(f"data file not found: {path} (set data.path, or ALEXP_DATA_DIR for the presets)")
        readers = {".parquet": pl.scan_parquet, ".csv": partial(pl.scan_csv, quote_char=quote_char),
                   ".tsv": partial(pl.scan_csv, separator="\t", quote_char=quote_char)}
        if path.suffix.lower() not in readers:
            raise AlexpError(f"unsupported data file type {path.suffix!r} for {path}: use .parquet, .csv or .tsv")
        if path.stat().st_size == 0:
            raise AlexpError(f"data file {path} is empty; give data.path a file with a header and labeled rows")
        try:
            lazy = readers[path.suffix.lower()](path, glob=False)  # a path is a path, even with [1] or * in it
            available = lazy.collect_schema().names()
        except pl.exceptions.PolarsError as e:
            raise AlexpError(f"cannot read {path}: {first_line(e, 200)}; save it as UTF-8 with a header row "
                             "(or as .parquet)") from None
        wanted = [self.label_column, self.text_column, *(self.feature_columns or ()), self.id_column,
                  *self.context_columns]
        wanted = list(dict.fromkeys(c for c in wanted if c is not None))
        missing = [c for c in [*wanted, *(self.select or {})] if c not in available]
        if missing:
            raise AlexpError(f"column {missing[0]!r} not in {path.name}; available columns: {available}")
        for column, values in (self.select or {}).items():
            values = [values] if isinstance(values, str | int | float) else list(values)
            kept = lazy.filter(pl.col(column).is_in(values))
            if kept.select(pl.len()).collect().item() == 0:
                have = lazy.select(pl.col(column).unique().sort().head(20)).collect()[column].to_list()
                raise AlexpError(f"data.select: no row of {path.name} has {column} in {values}; "
                                 f"values there include {have}")
            lazy = kept
        return lazy.select(wanted)

    def _inputs(self, frame, pl) -> NDArray:
        if self.text_column is not None:
            text = frame[self.text_column]
            blank = text.is_null() | (text.cast(pl.String).str.strip_chars() == "")
            if blank.any():
                raise AlexpError(
                    f"text column {self.text_column!r} has {int(blank.sum())} null or empty texts "
                    f"(first at rows {_first(blank)}); drop or fill them first"
                )
            return text.cast(pl.String).to_numpy().astype(object)
        numeric = frame.select(self.feature_columns)
        try:
            matrix = numeric.to_numpy().astype(np.float32)
        except (TypeError, ValueError):
            bad = [c for c, t in numeric.schema.items() if not t.is_numeric()]
            raise AlexpError(f"feature columns must be numeric; not numeric: {bad}") from None
        if not np.isfinite(matrix).all():
            raise AlexpError(f"feature columns have null, NaN or infinite values (first at rows "
                             f"{np.flatnonzero(~np.isfinite(matrix).all(axis=1))[:5].tolist()})")
        return matrix



def check_classes(table: Table) -> None:
    """Raise AlexpError unless both classes occur: a one-class pool gives no curve to speak of."""
    counts = np.bincount(table.y, minlength=2)
    if (counts == 0).any():
        missing = table.classes[int(np.argmin(counts))]
        raise AlexpError(f"data: every one of the {len(table)} rows has label {table.classes[int(np.argmax(counts))]!r}"
                         f" and none has {missing!r}; alexp needs both classes (check data.label_column and "
                         "data.classes, or data.select)")


def _first(mask, k: int = 5) -> list[int]:
    return np.flatnonzero(mask.to_numpy())[:k].tolist()


@dataclass(frozen=True)
class Synthetic:
    """A generated binary pool with a rare positive class (sklearn's make_classification), needing no files.

    `class_sep` sets the overlap of the classes (smaller = harder); each class is a mixture of
    `n_clusters_per_class` Gaussian clusters; `flip_y` adds label noise to the truth.
    The table depends only on `generator_seed`, so every run seed sees the same data.

    The generator is a known model, so each row also carries its Bayes posterior p*(y = 1 | x) as the context
    column `posterior`: the clusters' own densities (their centres, covariances and shares, replayed from
    make_classification's random stream) with the `flip_y` redraws mixed in. It is the best any classifier can
    do, and 1 - |2 p* - 1| is how hard the row is (oracle=difficulty, difficulty: posterior).
    """

    n_rows: int = 20_000
    n_features: int = 20
    n_informative: int = 5
    n_clusters_per_class: int = 2
    positive_rate: float = 0.05
    class_sep: float = 1.0
    flip_y: float = 0.0
    test_size: float = 0.2
    generator_seed: int = 0
    cache_dir: str | None = None  # keep the generated table here (a big pool is made once, then read back)

    def __post_init__(self):
        _check_fraction("positive_rate", self.positive_rate, allow_none=False)
        _check_fraction("test_size", self.test_size, allow_none=False)
        if self.n_rows < 10:
            raise AlexpError(f"n_rows must be at least 10, got {self.n_rows}")
        if not 1 <= self.n_informative <= self.n_features:
            raise AlexpError(f"n_informative must be in 1..n_features={self.n_features}, got {self.n_informative}")
        if 2 ** self.n_informative < 2 * self.n_clusters_per_class:
            raise AlexpError(f"n_informative={self.n_informative} is too small for n_clusters_per_class="
                             f"{self.n_clusters_per_class}: need 2**n_informative >= 2 * n_clusters_per_class")

    def load(self) -> Table:
        cached = self._cached()
        if cached is not None and cached.exists():
            with np.load(cached) as z:
                X, y, posterior = z["X"], z["y"], z["posterior"]
        else:
            X, y = self._generate(shuffle=True)
            X, y, posterior = X.astype(np.float32), y.astype(np.int64), self.posterior(X)
            if cached is not None:  # whole or absent, even with parallel jobs
                with atomic_path(cached) as tmp, open(tmp, "wb") as f:
                    np.savez(f, X=X, y=y, posterior=posterior)
        return Table(np.arange(self.n_rows, dtype=np.int64), y, X, extra={"posterior": posterior})

    def _cached(self) -> Path | None:
        """The cache file of this table (its name hashes every generator parameter), or None."""
        if not self.cache_dir or type(self) is not Synthetic:
            return None
        import hashlib

        import sklearn

        key = (self.n_rows, self.n_features, self.n_informative, self.n_clusters_per_class, self.positive_rate,
               self.class_sep, self.flip_y, self.generator_seed, "make_classification", sklearn.__version__)
        return Path(self.cache_dir) / f"synthetic-{hashlib.sha256(repr(key).encode()).hexdigest()[:16]}.npz"

    def _generate(self, shuffle: bool) -> tuple[NDArray, NDArray]:
        from sklearn.datasets import make_classification

        return make_classification(
            n_samples=self.n_rows, n_features=self.n_features, n_informative=self.n_informative,
            n_redundant=0, n_clusters_per_class=self.n_clusters_per_class, weights=[1 - self.positive_rate],
            class_sep=self.class_sep, flip_y=self.flip_y, shuffle=shuffle, random_state=self.generator_seed,
        )

    def mixture(self) -> Mixture:
        """The clusters make_classification draws from, replayed from its random stream (scikit-learn 1.9's
        order of draws: the hypercube's vertices, the informative noise, then one transform per cluster;
        tests/test_data.py rebuilds the unshuffled rows from them exactly, so a changed recipe fails there)."""
        from sklearn.datasets._samples_generator import _generate_hypercube

        k, inf, n = 2 * self.n_clusters_per_class, self.n_informative, self.n_rows
        generator = np.random.RandomState(self.generator_seed)
        centroids = _generate_hypercube(k, inf, generator).astype(float) * 2 * self.class_sep - self.class_sep
        generator.standard_normal(size=(n, inf))  # the rows' informative draws, not needed here
        transforms = np.stack([2 * generator.uniform(size=(inf, inf)) - 1 for _ in range(k)])
        weights = (1 - self.positive_rate, self.positive_rate)
        sizes = [int(n * weights[c % 2] / self.n_clusters_per_class) for c in range(k)]
        for i in range(n - sum(sizes)):
            sizes[i % k] += 1
        return Mixture(centroids, transforms, np.asarray(sizes) / n, np.arange(k) % 2, self.flip_y)

    def posterior(self, X: NDArray) -> NDArray[np.float64]:
        """p*(y = 1 | x) for rows of this generator's (shuffled) table."""
        unshuffled, _ = self._generate(shuffle=False)
        columns = _matching_columns(unshuffled[:, :self.n_informative], X)
        return self.mixture().posterior(X[:, columns])


@dataclass(frozen=True)
class Mixture:
    """A Gaussian mixture whose cluster c is x = z @ transforms[c] + centroids[c], z ~ N(0, I), with share
    priors[c] and class labels[c]; a share flip_y of labels is then redrawn uniformly from both classes."""

    centroids: NDArray
    transforms: NDArray
    priors: NDArray
    labels: NDArray
    flip_y: float = 0.0

    def posterior(self, X: NDArray) -> NDArray[np.float64]:
        """p(y = 1 | x) for the informative coordinates X, in float64 whatever X's type."""
        from scipy.special import logsumexp

        X = np.asarray(X, dtype=np.float64)
        log_joint = np.empty((len(X), len(self.priors)))
        for c, (mu, A, prior) in enumerate(zip(self.centroids, self.transforms, self.priors)):
            z = np.linalg.solve(A.T, (X - mu).T).T  # x = z A + mu
            _, logdet = np.linalg.slogdet(A)
            log_joint[:, c] = np.log(prior) - 0.5 * (z * z).sum(axis=1) - logdet
        positive = self.labels == 1
        clean = np.exp(logsumexp(log_joint[:, positive], axis=1) - logsumexp(log_joint, axis=1))
        return (1 - self.flip_y) * clean + self.flip_y / 2


def _matching_columns(unshuffled: NDArray, shuffled: NDArray) -> NDArray[np.intp]:
    """For each column of `unshuffled`, the column of `shuffled` holding the same values (rows permuted)."""
    ours = np.sort(unshuffled, axis=0)
    theirs = np.sort(np.asarray(shuffled, dtype=unshuffled.dtype), axis=0)
    match = [int(np.argmin(np.abs(theirs - ours[:, [j]]).max(axis=0))) for j in range(ours.shape[1])]
    return np.asarray(match)


@dataclass(frozen=True)
class Shards:
    """A pool stored on disk (see alexp.shards): an Arrow pool (uncompressed Arrow IPC files, `*.arrow`, with
    features `x` as fixed_size_list<float32>, class indices `y`, optional `ids`) or a shard folder (features
    `x-*.npy`, `y.npy`, optional `ids.npy`); classes 0 = negative, 1 = positive. The features stay on disk:
    every round streams them a block at a time, so the pool may be far bigger than memory. They are the model's
    inputs as they are (features=identity)."""

    path: str
    classes: Sequence = (0, 1)
    test_size: float = 0.2

    def __post_init__(self):
        _check_fraction("test_size", self.test_size, allow_none=False)

    def load(self) -> Table:
        from alexp import shards

        if not shards.is_pool(self.path):
            raise AlexpError(f"no pool at {self.path}: it must be a shard folder (meta.json, x-*.npy, y.npy) or an "
                             "Arrow pool (*.arrow files with columns x and y); write one with alexp.shards.ArrowWriter "
                             "or convert a Parquet pool with alexp.shards.convert, or use data=synthetic_disk")
        X = shards.DiskArray(self.path)
        y = shards.read_column(self.path, "y")
        if y is None or len(y) != len(X):
            raise AlexpError(f"{self.path}: y must hold one class index per row ({len(X)} rows)")
        if not np.isin(y, (0, 1)).all():
            raise AlexpError(f"{self.path}: y holds values other than 0 and 1: {np.setdiff1d(y, (0, 1))[:5]}")
        ids = shards.read_column(self.path, "ids")
        ids = np.arange(len(X), dtype=np.int64) if ids is None else ids
        posterior = shards.read_column(self.path, "posterior")  # written by generators that know it
        extra = {} if posterior is None else {"posterior": posterior.astype(np.float64)}
        return Table(ids, y.astype(np.int64), X, tuple(self.classes), extra)


@dataclass(frozen=True)
class SyntheticOnDisk(Synthetic):
    """The synthetic rare-positive task at any size: generated block by block straight into a shard folder
    (never whole in memory), once per set of parameters under `cache_dir`, then read as `Shards`.

    The recipe is make_classification's (Guyon 2003), which needs the whole array in memory, so it is redone
    here a block at a time: each class is a mixture of `n_clusters_per_class` Gaussian clusters centred on
    distinct vertices of a hypercube of side 2 * class_sep in the first `n_informative` dimensions, each
    with its own random covariance (N(0, 1) @ A, A uniform in [-1, 1]); the other dimensions are N(0, 1)
    noise; each block has round(positive_rate * rows) positives; `flip_y` of the labels are redrawn at random.
    The cluster layout comes from `generator_seed`, block b's rows from the seed (generator_seed, b): the
    same parameters always give the same folder. Each row's Bayes posterior p*(y = 1 | x) is stored beside
    the labels (`posterior.npy`) and read as the context column `posterior`, as for `Synthetic`.
    """

    n_rows: int = 10_000_000  # Synthetic's fields, with these defaults, plus the four below
    n_features: int = 384
    n_informative: int = 10
    block_rows: int = 65_536
    shard_rows: int = 1_000_000
    cache_dir: str = "."
    progress: bool = True
    format: str = "npy"  # npy: a shard folder; arrow: an Arrow pool (the standard columnar format)
    noise_scale: float = 1.0  # standard deviation of the uninformative dimensions

    def __post_init__(self):
        super().__post_init__()
        if self.format not in ("npy", "arrow"):
            raise AlexpError(f"data.format must be npy or arrow, got {self.format!r}")
        if not self.noise_scale > 0:
            raise AlexpError(f"data.noise_scale must be a positive standard deviation, got {self.noise_scale!r}")
        if self.block_rows < 1 or self.shard_rows < 1:
            raise AlexpError(f"block_rows and shard_rows must be positive, got {self.block_rows}, {self.shard_rows}")

    @property
    def folder(self) -> Path:
        import hashlib

        key = (self.n_rows, self.n_features, self.n_informative, self.n_clusters_per_class, self.positive_rate,
               self.class_sep, self.flip_y, self.generator_seed, self.block_rows, "posterior")
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:16]
        suffix = ("-arrow" if self.format == "arrow" else "") + (f"-noise{self.noise_scale:g}" if self.noise_scale != 1
                                                                  else "")
        return Path(self.cache_dir) / f"synthetic-{self.n_rows}x{self.n_features}-{digest}{suffix}"

    def load(self) -> Table:
        from alexp import shards

        if not shards.is_pool(self.folder):
            self.write(self.folder)
        return Shards(str(self.folder), test_size=self.test_size).load()

    def write(self, path: str | Path) -> None:
        """Generate the pool into a shard folder at `path`, one block of `block_rows` in memory at a time."""
        from tqdm.auto import tqdm

        from alexp import shards

        layout = np.random.default_rng(self.generator_seed)
        k, inf = self.n_clusters_per_class, self.n_informative
        if inf <= 30:  # distinct vertices; in more dimensions random ones are distinct in all likelihood
            bits = (layout.choice(2**inf, 2 * k, replace=False)[:, None] >> np.arange(inf)) & 1
        else:
            bits = layout.integers(2, size=(2 * k, inf))
        centroids = ((bits * 2.0 - 1.0) * self.class_sep).astype(np.float32)
        covariance = layout.uniform(-1, 1, size=(2 * k, inf, inf)).astype(np.float32)
        mixture = Mixture(centroids, covariance, np.repeat([(1 - self.positive_rate) / k, self.positive_rate / k], k),
                          np.repeat([0, 1], k), self.flip_y)
        params = {"generator": "alexp.data.SyntheticOnDisk", **{f: getattr(self, f) for f in (
            "n_rows", "n_features", "n_informative", "n_clusters_per_class", "positive_rate", "class_sep",
            "flip_y", "generator_seed", "block_rows", "noise_scale")}}
        starts = range(0, self.n_rows, self.block_rows)
        writer = shards.ArrowWriter if self.format == "arrow" else shards.ShardWriter
        with writer(path, self.n_features, np.float32, self.shard_rows, params, overwrite=False) as out:
            bars = None if self.progress else True  # None: a bar on a terminal only
            for b, start in enumerate(tqdm(starts, desc="generating pool", unit="block", disable=bars)):
                rng = np.random.default_rng(np.random.SeedSequence(self.generator_seed, spawn_key=(b,)))
                m = min(self.block_rows, self.n_rows - start)
                y = np.zeros(m, dtype=np.int8)
                y[:round(self.positive_rate * m)] = 1
                rng.shuffle(y)
                cluster = y * k + rng.integers(k, size=m)
                X = rng.standard_normal((m, self.n_features), dtype=np.float32)
                if self.noise_scale != 1:
                    X[:, inf:] *= np.float32(self.noise_scale)
                for c in range(2 * k):
                    rows = np.flatnonzero(cluster == c)
                    X[rows, :inf] = X[rows, :inf] @ covariance[c] + centroids[c]
                flip = rng.random(m) < self.flip_y
                y[flip] = rng.integers(2, size=int(flip.sum()))
                out.append(X, y=y, ids=np.arange(start, start + m, dtype=np.int64),
                           posterior=mixture.posterior(X[:, :inf]).astype(np.float32))
