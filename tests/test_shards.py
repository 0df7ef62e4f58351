"""Pools on disk: shard folders read back exactly, the synthetic generator, and the loop giving the same
selections and metrics on disk as in memory."""

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from alexp import AlexpError, acquisition, shards
from alexp.acquisition import PoolView
from alexp.budget import Budget
from alexp.data import Shards, SyntheticOnDisk
from alexp.loop import Loop
from alexp.seeds import stream
from alexp.oracles import Noisy

from conftest import runs


def write(path, X, blocks=(5, 9, 3, 20), shard_rows=7, **columns):
    """X written in blocks of the given sizes (cycled), shards of `shard_rows` rows."""
    with shards.ShardWriter(path, X.shape[1], X.dtype, shard_rows) as w:
        start, i = 0, 0
        while start < len(X):
            stop = start + blocks[i % len(blocks)]
            w.append(X[start:stop], **{k: v[start:stop] for k, v in columns.items()})
            start, i = stop, i + 1
    return shards.DiskArray(path)


@pytest.fixture
def stored(tmp_path):
    X = np.random.default_rng(0).standard_normal((60, 4)).astype(np.float32)
    return X, write(tmp_path / "pool", X, y=np.arange(60) % 2)


def test_a_shard_folder_reads_back_exactly(stored, tmp_path):
    X, disk = stored
    assert disk.shape == X.shape and len(disk) == 60 and disk.dtype == np.float32 and disk.ndim == 2
    assert json.loads((tmp_path / "pool" / "meta.json").read_text())["shard_rows"] == [7] * 8 + [4]
    np.testing.assert_array_equal(np.asarray(disk), X)
    for a, b in [(0, 60), (3, 4), (6, 8), (13, 50), (59, 80), (10, 10)]:
        np.testing.assert_array_equal(disk[a:b], X[a:b])
    rows = np.array([59, 0, 7, 7, 33, 6, 14, -1])
    np.testing.assert_array_equal(disk[rows], X[rows])
    np.testing.assert_array_equal(disk[::3], X[::3])
    np.testing.assert_array_equal(disk[X[:, 0] > 0], X[X[:, 0] > 0])
    np.testing.assert_array_equal(disk[5], X[5])
    np.testing.assert_array_equal(shards.read_column(tmp_path / "pool", "y"), np.arange(60) % 2)
    with pytest.raises(IndexError):
        disk[np.array([60])]


def test_gathers_read_runs_of_nearby_rows_in_bounded_spans(tmp_path, monkeypatch):
    X = np.random.default_rng(1).standard_normal((50, 4096)).astype(np.float32)  # 16 KB rows: runs of adjacent rows
    disk = write(tmp_path / "wide", X, shard_rows=16)
    monkeypatch.setattr(shards, "BLOCK_ROWS", 3)  # spans of at most 3 rows
    for rows in ([49, 0, 1, 2, 3, 4, 5, 17, 17, 30, 31, 33], list(range(50)), [15, 16], [48, 2, 47, 3]):
        np.testing.assert_array_equal(disk[np.array(rows)], X[rows])
    view = disk.rows(np.arange(0, 50, 2))
    np.testing.assert_array_equal(view[3:20], X[0:50:2][3:20])


def test_a_view_reads_its_rows_only_when_sliced(stored):
    X, disk = stored
    index = np.array([1, 2, 3, 4, 20, 21, 40, 58, 59])
    view = disk.rows(index)
    assert view.shape == (9, 4)
    np.testing.assert_array_equal(view[:], X[index])
    np.testing.assert_array_equal(view[2:7], X[index[2:7]])
    np.testing.assert_array_equal(view[np.array([8, 0, 4])], X[index[[8, 0, 4]]])
    np.testing.assert_array_equal(view.rows(np.array([0, 8]))[:], X[index[[0, 8]]])
    np.testing.assert_array_equal(np.concatenate([b for _, b in view.blocks(4)]), X[index])


def test_a_crashed_writer_leaves_no_folder_and_a_finished_one_is_kept(tmp_path):
    X = np.ones((10, 3), dtype=np.float32)
    with pytest.raises(RuntimeError):
        with shards.ShardWriter(tmp_path / "p", 3) as w:
            w.append(X)
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "p.tmp999999999").mkdir()  # a writer killed outright (no such process): cleared by the next one
    write(tmp_path / "p", X)
    with shards.ShardWriter(tmp_path / "p", 3, overwrite=False) as w:  # another writer finished first: kept
        w.append(2 * X[:4])
    np.testing.assert_array_equal(np.asarray(shards.DiskArray(tmp_path / "p")), X)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_bad_blocks_and_folders_are_named(tmp_path):
    with pytest.raises(AlexpError, match=r"shape \(4, 2\) does not fit 3 features"):
        with shards.ShardWriter(tmp_path / "p", 3) as w:
            w.append(np.zeros((4, 2)))
    with pytest.raises(AlexpError, match="column 'y' has 3 values for a block of 4 rows"):
        with shards.ShardWriter(tmp_path / "p", 2) as w:
            w.append(np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(AlexpError, match="not a shard folder"):
        shards.DiskArray(tmp_path)
    write(tmp_path / "q", np.zeros((10, 2), dtype=np.float32), y=np.zeros(10, dtype=np.int8))
    meta = json.loads((tmp_path / "q" / "meta.json").read_text())
    (tmp_path / "q" / "meta.json").write_text(json.dumps({**meta, "n_features": 3}))
    with pytest.raises(AlexpError, match="x-00000.npy holds"):
        shards.DiskArray(tmp_path / "q")[:2]
    with pytest.raises(AlexpError, match="no pool at"):
        Shards(str(tmp_path / "absent")).load()


def test_the_generator_is_deterministic_and_has_the_asked_shape(tmp_path):
    gen = SyntheticOnDisk(n_rows=5000, n_features=12, n_informative=4, block_rows=1000, shard_rows=1500,
                          cache_dir=str(tmp_path), progress=False)
    table = gen.load()
    assert table.inputs.shape == (5000, 12) and table.y.mean() == 0.05
    assert gen.folder.name.startswith("synthetic-5000x12-")
    again = SyntheticOnDisk(**{**gen.__dict__, "cache_dir": str(tmp_path / "other")}).load()
    np.testing.assert_array_equal(np.asarray(again.inputs), np.asarray(table.inputs))
    np.testing.assert_array_equal(again.y, table.y)
    other_seed = SyntheticOnDisk(**{**gen.__dict__, "generator_seed": 1}).load()
    assert not np.array_equal(np.asarray(other_seed.inputs), np.asarray(table.inputs))
    X = np.asarray(table.inputs)
    model = LogisticRegression(max_iter=1000).fit(X[:4000], table.y[:4000])
    assert model.score(X[4000:], table.y[4000:]) > 0.95  # informative dimensions separate the classes
    assert np.abs(model.coef_[0, 4:]).max() < np.abs(model.coef_[0, :4]).max()  # the rest is noise
    p = table.extra["posterior"]  # the Bayes posterior, stored beside the labels: calibrated, better than the fit
    assert p.shape == (5000,) and abs(p.mean() - 0.05) < 0.01
    confident = (p < 0.1) | (p > 0.9)
    assert (np.round(p[confident]) == table.y[confident]).mean() > 0.99
    assert (np.round(p[4000:]) == table.y[4000:]).mean() >= model.score(X[4000:], table.y[4000:])


def loop(X, X_test, y, y_test, strategy, seed=0):
    oracle = Noisy(y, stream(seed, "oracle"), flip_rate=0.05)
    return Loop(X, X_test, y_test, LogisticRegression(max_iter=500), strategy, oracle,
                Budget(initial=20, batch_size=15, rounds=3), seed, truth=y, progress=False)


@pytest.mark.parametrize("strategy", [
    acquisition.Entropy(chunk_size=256), acquisition.Coreset(max_candidates=400),
    acquisition.ClusterMargin(n_clusters=5, max_cluster_points=100, chunk_size=256),
    acquisition.ClassBalanced(chunk_size=256), acquisition.BoundaryPairs(max_candidates=500),
    acquisition.Badge(max_candidates=400), acquisition.DensityWeighted(chunk_size=256),
    acquisition.VoteEntropy(n_members=3, chunk_size=256), acquisition.Random()],
    ids=lambda s: type(s).__name__)
def test_a_pool_on_disk_gives_the_same_run_as_in_memory(strategy, tmp_path):
    table = SyntheticOnDisk(n_rows=3000, n_features=8, n_informative=3, block_rows=700, shard_rows=1000,
                            cache_dir=str(tmp_path), progress=False).load()
    rows = np.random.default_rng(0).permutation(3000)
    pool, test = np.sort(rows[:2400]), np.sort(rows[2400:])
    disk = loop(table.inputs.rows(pool), table.inputs.rows(test), table.y[pool], table.y[test], strategy).run()
    X = np.asarray(table.inputs)
    memory = loop(X[pool], X[test], table.y[pool], table.y[test], strategy).run()
    np.testing.assert_array_equal(disk.selected(), memory.selected())
    assert disk.history == memory.history


def test_whole_space_strategies_subsample_a_pool_on_disk(stored, monkeypatch):
    X, disk = stored
    monkeypatch.setattr(acquisition.base, "ON_DISK_CANDIDATES", 10)
    labeled_in = np.full(60, -1)
    labeled_in[:5] = 0
    rows = acquisition.base.candidates(PoolView(disk, labeled_in), None, 10, np.random.default_rng(0))
    assert len(rows) == 10 and rows.min() >= 5
    assert len(acquisition.base.candidates(PoolView(X, labeled_in), None, 10, np.random.default_rng(0))) == 55


def test_alexp_runs_on_a_generated_pool_on_disk(alexp, tmp_path):
    args = ["data=synthetic_disk", "data.n_rows=20000", "data.n_features=16", "data.shard_rows=5000",
            f"data.cache_dir={tmp_path}/cache", "budget=small", "progress=false"]
    out = alexp(*args, cwd=tmp_path).stdout
    assert "kappa by label count" in out
    client, _, found = runs(tmp_path)
    assert [m.step for m in client.get_metric_history(found[0].info.run_id, "kappa")] == [10, 20, 30, 40, 50, 60]
    assert len(list((tmp_path / "cache").glob("synthetic-20000x16-*/x-*.npy"))) == 4
    bad = alexp(*args, "features=tfidf", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "features: an on-disk pool stores its features already" in bad.stderr


def test_alexp_streams_text_embeddings_written_to_disk_by_the_features_step(alexp, tiny_transformer, tmp_path):
    import polars as pl

    from conftest import text_pool

    texts, y = text_pool(400)
    pl.DataFrame({"text": texts, "label": y}).write_csv(tmp_path / "texts.csv")
    alexp("data=file", f"data.path={tmp_path}/texts.csv", "data.label_column=label", "data.text_column=text",
          "features=minilm", f"features.model_path={tiny_transformer}", "features.on_disk=true",
          "features.window=128", f"features.cache_dir={tmp_path}/cache", "budget=small", "progress=false",
          cwd=tmp_path)
    client, _, found = runs(tmp_path)
    assert [m.step for m in client.get_metric_history(found[0].info.run_id, "kappa")] == [10, 20, 30, 40, 50, 60]
    folder, = (p for p in (tmp_path / "cache").glob("emb-*") if p.is_dir())  # beside it: its lock file
    assert shards.read_meta(folder)["shard_rows"] == [400]


def test_an_arrow_pool_reads_back_exactly_and_any_arrow_reader_reads_it(tmp_path):
    """ArrowWriter: uncompressed Arrow IPC files, a record batch per block; alexp reads any row in place, polars
    reads the same table; scattered, clustered, repeated and unordered gathers all equal numpy's."""
    import polars as pl

    rng = np.random.default_rng(3)
    X = rng.standard_normal((1000, 5)).astype(np.float32)
    y = (rng.random(1000) < 0.2).astype(np.int8)
    with shards.ArrowWriter(tmp_path / "pool", 5, shard_rows=300, meta={"made": "here"}) as w:
        for a in range(0, 1000, 128):
            w.append(X[a:a + 128], y=y[a:a + 128], ids=np.arange(a, min(a + 128, 1000)))
    assert sorted(p.name for p in (tmp_path / "pool").iterdir()) == [f"part-0000{i}.arrow" for i in range(4)]
    disk = shards.DiskArray(tmp_path / "pool")
    assert disk.shape == (1000, 5) and shards.is_pool(tmp_path / "pool")
    np.testing.assert_array_equal(disk[:], X)
    for rows in (rng.choice(1000, 50, replace=False), np.sort(rng.choice(1000, 400, replace=False)),
                 np.array([999, 0, 0, 299, 300, 301, 5]), np.arange(250, 350)):
        np.testing.assert_array_equal(disk[rows], X[rows])
    np.testing.assert_array_equal(shards.read_column(tmp_path / "pool", "y"), y)
    table = pl.read_ipc(tmp_path / "pool" / "part-00001.arrow")
    np.testing.assert_array_equal(table["x"].to_numpy(), X[300:600])
    assert table.schema["x"] == pl.Array(pl.Float32, 5)
    table = Shards(str(tmp_path / "pool")).load()
    assert len(table) == 1000 and table.ids[-1] == 999


def test_parquet_shards_and_compressed_arrow_convert_to_an_arrow_pool(stored, tmp_path):
    import polars as pl

    X = np.random.default_rng(4).standard_normal((700, 3)).astype(np.float32)
    y = np.arange(700) % 2
    (tmp_path / "pq").mkdir()
    pl.DataFrame({"emb": X, "y": y}).write_parquet(tmp_path / "pq" / "a.parquet", row_group_size=100)
    shards.convert(tmp_path / "pq", tmp_path / "from_parquet", column="emb", shard_rows=256, block_rows=128)
    np.testing.assert_array_equal(shards.DiskArray(tmp_path / "from_parquet")[:], X)
    np.testing.assert_array_equal(shards.read_column(tmp_path / "from_parquet", "y"), y)
    with pytest.raises(AlexpError, match="no features column 'x'"):
        shards.convert(tmp_path / "pq", tmp_path / "bad")
    pl.DataFrame({"x": X}).write_ipc(tmp_path / "zstd.arrow", compression="zstd")
    with pytest.raises(AlexpError, match="is compressed; write it uncompressed"):
        shards.DiskArray(tmp_path / "zstd.arrow")
    shards.convert(tmp_path / "zstd.arrow", tmp_path / "plain")
    np.testing.assert_array_equal(shards.DiskArray(tmp_path / "plain")[:], X)
    pl.DataFrame({"x": X.astype(np.float64)}).write_ipc(tmp_path / "f64.arrow", compression="uncompressed")
    with pytest.raises(AlexpError, match=r"must be fixed_size_list<float32>\[d\]"):
        shards.DiskArray(tmp_path / "f64.arrow")
    original, _ = stored
    shards.convert(tmp_path / "pool", tmp_path / "from_shards")
    np.testing.assert_array_equal(shards.DiskArray(tmp_path / "from_shards")[:], original)
    np.testing.assert_array_equal(shards.read_column(tmp_path / "from_shards", "y"), np.arange(60) % 2)


def test_thousands_of_scattered_rows_are_read_on_several_threads_exactly(tmp_path, monkeypatch):
    X = np.random.default_rng(5).standard_normal((30_000, 4)).astype(np.float32)
    with shards.ArrowWriter(tmp_path / "pool", 4, shard_rows=7_000) as w:
        w.append(X)
    monkeypatch.setattr(shards, "NEARBY_BYTES", 0)  # every row not next to another is read alone
    rows = np.random.default_rng(6).permutation(np.arange(0, 30_000, 3))[:1000]
    np.testing.assert_array_equal(shards.DiskArray(tmp_path / "pool")[rows], X[rows])
