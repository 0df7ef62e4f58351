"""Pool scoring on a Dask cluster (alexp.engine): the picks of a local cluster equal the single-process picks,
row for row, on a pool written in the standard columnar format (Arrow IPC, by polars), strategy by strategy and in
a whole `alexp` run."""

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression

from alexp import AlexpError, acquisition, shards
from alexp.acquisition import PoolView
from alexp.acquisition.base import tie_salt
from alexp.engine import Dask

from conftest import runs


@pytest.fixture(scope="module")
def cluster():
    engine = Dask(workers=2, rows_per_task=3 * 1024)  # tasks of 3 blocks of 1,024 rows
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """40,000 x 8 float32 rows in an Arrow pool written by polars (5 files of 8,000 rows, record batches of
    3,000), a 70% view of them as the pool, and a model fitted on a few rows."""
    folder = tmp_path_factory.mktemp("arrow")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40_000, 8)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] + rng.standard_normal(40_000) > 2).astype(np.int8)
    for part in range(5):
        rows = slice(8000 * part, 8000 * (part + 1))
        frame = pl.concat([pl.DataFrame({"x": X[rows][a:a + 3000], "y": y[rows][a:a + 3000]})
                           for a in range(0, 8000, 3000)], rechunk=False)
        frame.write_ipc(folder / f"part-{part}.arrow", compression="uncompressed")
    view = np.sort(rng.choice(40_000, 28_000, replace=False))
    model = LogisticRegression().fit(X[:3000], y[:3000])
    return X, shards.DiskArray(folder).rows(view), view, model, y[view]


def labeled(n_pool, share, seed):
    labeled_in = np.full(n_pool, -1)
    labeled_in[np.random.default_rng(seed).random(n_pool) < share] = 0
    return labeled_in


def test_a_polars_arrow_file_reads_back_exactly(pool):
    X, disk, view, _, _ = pool
    np.testing.assert_array_equal(disk[:], X[view])
    rows = np.array([27_999, 0, 5, 5, 14_000, 3])
    np.testing.assert_array_equal(disk[rows], X[view][rows])
    np.testing.assert_array_equal(disk.window(1000, 9000)[:], X[view][1000:9000])


@pytest.mark.parametrize("strategy", [
    acquisition.Margin(chunk_size=1024), acquisition.Entropy(chunk_size=1024), acquisition.Random(),
    acquisition.LeastConfidence(chunk_size=1024, max_candidates=5000), acquisition.VoteEntropy(n_members=3,
                                                                                              chunk_size=1024)],
    ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("share", [0.01, 0.3, 0.97])
def test_the_clusters_picks_are_the_single_process_picks_row_for_row(cluster, pool, strategy, share):
    _, disk, _, model, y = pool
    labeled_in = labeled(len(disk), share, 1)
    labels = np.where(labeled_in >= 0, y, -1)
    for n in (1, 37, 400):
        here = strategy(model, PoolView(disk, labeled_in, labels), n, np.random.default_rng(n))
        there = strategy(model, PoolView(disk, labeled_in, labels, engine=cluster), n, np.random.default_rng(n))
        np.testing.assert_array_equal(there, here)
        assert len(np.unique(there)) == n and (labeled_in[there] < 0).all()


def test_ties_are_broken_by_the_same_seeded_keys_across_tasks(cluster, pool):
    """Scores with thousands of equal values: which tied rows enter the top n depends only on the tie keys."""
    _, disk, _, _, _ = pool
    mask = labeled(len(disk), 0.2, 2) < 0
    score = lambda X: np.round(X[:, 0], 0)  # noqa: E731 (a handful of distinct scores)
    for seed in range(3):
        salt = tie_salt(np.random.default_rng(seed))
        here = acquisition.base.scan_top(score, disk, mask, 500, salt, 1024)[0]
        there = cluster.top(score, disk, mask, 500, salt, 1024)
        np.testing.assert_array_equal(there, here)
    assert len({tuple(cluster.top(score, disk, mask, 50, tie_salt(np.random.default_rng(s)), 1024))
                for s in range(3)}) == 3  # the seed decides among ties


@pytest.mark.parametrize("share", [0.0, 0.8])  # whole blocks scored, and sparse ones (only their candidates)
def test_every_block_is_scored_as_the_single_process_scores_it(cluster, pool, share):
    """A score that depends on the block it is computed in (as a float32 X @ w may): equal picks only if every
    task cuts the single process's blocks."""
    _, disk, _, _, _ = pool
    mask = labeled(len(disk), share, 4) < 0
    score = lambda X: X[:, 0] + 0.5 * (len(X) % 5)  # noqa: E731
    salt = tie_salt(np.random.default_rng(5))
    here = acquisition.base.scan_top(score, disk, mask, 300, salt, 1024)[0]
    np.testing.assert_array_equal(cluster.top(score, disk, mask, 300, salt, 1024), here)


def test_an_alexp_run_with_engine_dask_equals_one_without(alexp, tmp_path):
    """A whole run on an Arrow pool with engine=dask (a local cluster of 2 workers): the same rows labelled in
    the same rounds and the same metrics as the run without an engine; the engine is not part of the run key."""
    args = ["data=synthetic_disk", "data.format=arrow", "data.n_rows=30000", "data.n_features=8",
            "data.n_informative=3", "data.shard_rows=7000", "data.block_rows=5000", f"data.cache_dir={tmp_path}/cache",
            "budget=small", "budget.batch_size=40", "acquisition=margin", "acquisition.chunk_size=2048",
            "progress=false"]
    results = {}
    for name, extra in {"here": [], "cluster": ["engine=dask", "engine.rows_per_task=6000"]}.items():
        cwd = tmp_path / name
        cwd.mkdir()
        alexp(*args, *extra, cwd=cwd)
        client, _, found = runs(cwd)
        [run] = found
        picks = pl.read_parquet(client.download_artifacts(run.info.run_id, "labeled.parquet", str(cwd)))
        results[name] = (picks.sort("id"), client.get_metric_history(run.info.run_id, "kappa"))
    assert list((tmp_path / "cache").glob("*-arrow/part-00000.arrow"))
    (a, kappa_a), (b, kappa_b) = results.values()
    assert a.equals(b) and len(a) == 10 + 5 * 40
    assert [(m.step, m.value) for m in kappa_a] == [(m.step, m.value) for m in kappa_b]
    again = alexp(*args, cwd=tmp_path / "cluster").stdout  # the same run, asked again without the engine
    assert "already finished" in again


def test_a_running_cluster_by_its_address_picks_what_one_process_picks(pool, tmp_path):
    """A cluster started as a user starts one (`dask scheduler`, `dask worker ADDRESS`, other processes), reached
    by its address: the same picks as one process."""
    import os
    import socket
    import subprocess
    import sys
    import time

    _, disk, _, model, y = pool
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_LOGGING__DISTRIBUTED": "warning"}
    dask = lambda command, *args: subprocess.Popen(  # noqa: E731 (`dask scheduler`, `dask worker`)
        [sys.executable, "-m", f"distributed.cli.dask_{command}", *args, "--no-dashboard"], env=env,
        stderr=subprocess.DEVNULL)
    started = [dask("scheduler", "--host", "127.0.0.1", "--port", str(port))]
    try:
        started.append(dask("worker", address, "--nthreads", "1", "--nworkers", "2"))
        engine = Dask(address=address, rows_per_task=4096)
        deadline = time.monotonic() + 60
        while True:  # the scheduler may not listen yet
            try:
                engine.client.wait_for_workers(2, timeout=60)
                break
            except AlexpError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        labeled_in = labeled(len(disk), 0.1, 3)
        labels = np.where(labeled_in >= 0, y, -1)
        here = acquisition.Margin(chunk_size=1024)(model, PoolView(disk, labeled_in, labels), 300,
                                                   np.random.default_rng(9))
        there = acquisition.Margin(chunk_size=1024)(model, PoolView(disk, labeled_in, labels, engine=engine), 300,
                                                    np.random.default_rng(9))
        np.testing.assert_array_equal(there, here)
        engine.close()
    finally:
        for process in started[::-1]:
            process.terminate()
            process.wait(30)


def test_bad_engine_settings_are_named(alexp, tmp_path):
    with pytest.raises(AlexpError, match="engine.workers"):
        Dask(workers=0)
    bad = alexp("engine=dask", "engine.address=tcp://127.0.0.1:9", "data=synthetic_disk", "data.n_rows=3000",
                "data.n_features=4", "data.n_informative=2", f"data.cache_dir={tmp_path}/cache", "budget=small",
                "progress=false", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "engine.address='tcp://127.0.0.1:9': no Dask scheduler answers" in bad.stderr
    memory = alexp("engine=dask", "budget=small", "data.n_rows=3000", "progress=false", cwd=tmp_path, check=False)
    assert memory.returncode == 2 and "engine=dask: the engine scores pools on disk, and data=synthetic is in " \
        "memory" in memory.stderr
