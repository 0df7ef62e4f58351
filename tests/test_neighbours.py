"""acquisition=neighbours (SEALS): the base strategy's batch among the unlabelled nearest neighbours of the labelled
rows, found in a faiss index; checked against exact neighbours, on a pool on disk, and across a resume."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors

from alexp import AlexpError, shards
from alexp.acquisition import Margin, Neighbours, PoolView
from alexp.acquisition.neighbours import auto_index

from conftest import runs


@pytest.fixture(scope="module")
def clustered():
    """6,000 rows in 30 tight clusters in 16 dimensions, a boundary through them, 60 labelled rows."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((30, 16)) * 4
    X = (centres[rng.integers(30, size=6000)] + rng.standard_normal((6000, 16)) * 0.5).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.standard_normal(6000) > 1).astype(np.int64)
    labeled_in = np.full(6000, -1)
    labeled_in[rng.choice(6000, 60, replace=False)] = 0
    model = LogisticRegression().fit(X[labeled_in >= 0], y[labeled_in >= 0])
    return X, y, labeled_in, model


def view(X, y, labeled_in):
    return PoolView(X, labeled_in, np.where(labeled_in >= 0, y, -1))


def test_the_candidates_are_the_exact_neighbours_of_the_labelled_rows(clustered):
    X, y, labeled_in, model = clustered
    strategy = Neighbours(base=Margin(), k=15, index="Flat")
    picks = strategy(model, view(X, y, labeled_in), 25, np.random.default_rng(1))
    labeled = np.flatnonzero(labeled_in >= 0)
    exact = NearestNeighbors(n_neighbors=15).fit(X).kneighbors(X[labeled], return_distance=False)
    expected = np.setdiff1d(np.unique(exact), labeled)
    assert strategy.stats["candidates"] == len(expected) and strategy.stats["topped_up"] == 0
    restricted = view(X, y, labeled_in).restrict(expected)
    np.testing.assert_array_equal(picks, Margin()(model, restricted, 25, np.random.default_rng(1)))
    assert set(picks) <= set(expected)


def test_an_inverted_file_finds_nearly_the_exact_candidates(clustered):
    X, y, labeled_in, model = clustered
    exact = Neighbours(k=15, index="Flat")
    approximate = Neighbours(k=15, index="IVF32,Flat", nprobe=4, train_rows=3000)
    exact(model, view(X, y, labeled_in), 25, np.random.default_rng(1))
    approximate(model, view(X, y, labeled_in), 25, np.random.default_rng(1))
    found = lambda s: np.unique(np.concatenate(list(s._built[next(iter(s._built))][2].values())))  # noqa: E731
    overlap = len(np.intersect1d(found(exact), found(approximate))) / len(found(exact))
    assert overlap > 0.9
    assert auto_index(10_000) == "Flat" and auto_index(10_000_000) == "IVF4096,SQ8"


def test_too_few_candidates_are_topped_up_and_a_fresh_strategy_picks_the_same(clustered):
    X, y, labeled_in, model = clustered
    a = Neighbours(k=2, index="Flat")
    picks = a(model, view(X, y, labeled_in), 300, np.random.default_rng(2))
    assert a.stats["topped_up"] > 0 and len(np.unique(picks)) == 300 and (labeled_in[picks] < 0).all()
    state = labeled_in.copy()
    state[picks[:100]] = 1  # a second round, asked of the strategy that ran the first and of a new one (a resume)
    again = a(model, view(X, y, state), 50, np.random.default_rng(3))
    fresh = Neighbours(k=2, index="Flat")(model, view(X, y, state), 50, np.random.default_rng(3))
    np.testing.assert_array_equal(again, fresh)


def test_on_a_pool_on_disk_one_index_over_the_stored_rows_is_kept_and_reused(clustered, tmp_path):
    X, y, labeled_in, model = clustered
    with shards.ArrowWriter(tmp_path / "pool", 16, shard_rows=2500) as w:
        w.append(X, y=y.astype(np.int8))
    test = np.zeros(6000, dtype=bool)
    test[::5] = True  # every fifth row held out: the pool is a view of the others
    disk = shards.DiskArray(tmp_path / "pool").rows(np.flatnonzero(~test))
    state = labeled_in[~test]
    strategy = Neighbours(k=10, index="Flat", cache_dir=str(tmp_path / "cache"))
    picks = strategy(model, view(disk, y[~test], state), 20, np.random.default_rng(4))
    [file] = list((tmp_path / "cache").glob("ann-*.faiss"))
    stamp = file.stat().st_mtime_ns
    again = Neighbours(k=10, index="Flat", cache_dir=str(tmp_path / "cache"))(
        model, view(disk, y[~test], state), 20, np.random.default_rng(4))
    np.testing.assert_array_equal(picks, again)
    assert file.stat().st_mtime_ns == stamp  # loaded, not rebuilt
    # the candidates: the exact 10 nearest stored rows of each labelled row, those in the pool and unlabelled
    labeled = np.flatnonzero(~test)[state >= 0]
    exact = NearestNeighbors(n_neighbors=10).fit(X).kneighbors(X[labeled], return_distance=False)
    in_pool = np.setdiff1d(np.intersect1d(np.unique(exact), np.flatnonzero(~test)), labeled)
    assert strategy.stats["candidates"] == len(in_pool)


def test_alexp_runs_neighbours_and_refuses_bad_settings(alexp, tmp_path):
    args = ["acquisition=neighbours", "acquisition.k=20", "budget=small", "data.n_rows=4000", "progress=false"]
    alexp(*args, cwd=tmp_path)
    client, _, [run] = runs(tmp_path)
    history = client.get_metric_history(run.info.run_id, "candidates")
    assert [m.step for m in history] == [20, 30, 40, 50, 60] and all(m.value >= 10 for m in history)
    with pytest.raises(AlexpError, match="acquisition.k must be a positive integer"):
        Neighbours(k=0)
    bad = alexp(*args, "acquisition.index=Nonsense", "seed=1", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "acquisition.index='Nonsense': faiss cannot build 'Nonsense'" in bad.stderr
