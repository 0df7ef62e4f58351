"""alexp.runner, the public way to run a config: the same run as the command line, built the same way."""

import numpy as np
import pytest
from conftest import job_env, ready_store, runs

from alexp import AlexpError, runner

SMALL = ["budget=small", "data.n_rows=2000", "progress=false"]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A working folder with its own store and checkpoints, as a user's notebook would have (the environment an
    in-process `alexp` gets there too: a config resolved with another data_dir would be another run)."""
    monkeypatch.chdir(tmp_path)
    for key, value in job_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    return tmp_path


def test_a_run_from_python_is_the_run_of_the_command_line(folder, alexp):
    outcome = runner.run(runner.compose([*SMALL, "acquisition=margin", "seed=2"]))
    client, _, (run,) = runs(folder)
    kappa = client.get_metric_history(run.info.run_id, "kappa")
    assert outcome.run_id == run.info.run_id and outcome.name == "margin-perfect-seed2-synthetic-identity"
    assert (outcome.n_labels, outcome.kappa) == (60, kappa[-1].value) and len(outcome.history) == 6
    assert run.data.params["acquisition"] == "margin" and run.data.params["data.n_rows"] == "2000"
    again = alexp(*SMALL, "acquisition=margin", "seed=2", cwd=folder).stdout  # the same run key and store
    assert f"already finished: run {outcome.run_id}" in again
    finished = runner.run(runner.compose([*SMALL, "acquisition=margin", "seed=2"]))
    assert finished.history is None and finished.kappa == outcome.kappa and "already finished" in finished.message


def test_build_splits_with_the_run_seeds_own_stream(folder):
    parts = {seed: runner.build(runner.compose([*SMALL, f"seed={seed}"])) for seed in (0, 1)}
    table, pool_rows, test_rows = runner.split(runner.compose([*SMALL, "seed=1"]))
    np.testing.assert_array_equal(pool_rows, parts[1].pool_rows)
    np.testing.assert_array_equal(test_rows, parts[1].test_rows)
    assert not np.array_equal(parts[0].pool_rows, parts[1].pool_rows)  # each seed its own split
    assert parts[1].X_pool.shape == (len(pool_rows), table.inputs.shape[1])
    # every strategy shares a seed's split (common random numbers)
    other = runner.build(runner.compose([*SMALL, "seed=1", "acquisition=random", "oracle=noisy"]))
    np.testing.assert_array_equal(other.pool_rows, parts[1].pool_rows)


def test_the_loop_of_built_parts_runs_without_tracking(folder):
    cfg = runner.compose([*SMALL, "acquisition=margin", "seed=2"])
    state = runner.build(cfg).loop(cfg).run()
    assert state.finished and state.n_labeled == 60
    from alexp import tracking

    assert tracking.client(ready_store(folder)).get_experiment_by_name("alexp") is None  # nothing logged
    tracked = runner.run(cfg)
    assert [h["kappa"] for h in state.history] == [h["kappa"] for h in tracked.history]


def test_check_names_the_bad_setting_before_any_work(folder):
    with pytest.raises(AlexpError, match=r"acquisition=margn: no such option; did you mean acquisition=margin\?"):
        runner.compose(["acquisition=margn"])
    with pytest.raises(AlexpError, match="unknown key 'budget.batch_sise'; did you mean budget.batch_size"):
        runner.compose(["budget.batch_sise=5"])
    with pytest.raises(AlexpError, match="budget: unknown key 'batch_sise'.*did you mean budget.batch_size"):
        runner.check(runner.compose([*SMALL, "+budget.batch_sise=5"]))
    with pytest.raises(AlexpError, match="seed must be a non-negative integer"):
        runner.check(runner.compose([*SMALL, "seed=-1"]))
    with pytest.raises(AlexpError, match="threads must be a positive number or auto"):
        runner.run(runner.compose([*SMALL, "threads=0"]))
    assert not (folder / "state").exists()  # refused before the run made anything


def test_compose_takes_a_config_folder_of_ones_own(folder):
    (folder / "myconf" / "budget").mkdir(parents=True)
    (folder / "myconf" / "budget" / "tiny.yaml").write_text(
        "_target_: alexp.budget.Budget\ninitial: 10\nbatch_size: 5\nrounds: 1\n")
    outcome = runner.run(runner.compose(["budget=tiny", "data.n_rows=2000", "progress=false"],
                                        config_dir=str(folder / "myconf")))
    assert outcome.n_labels == 15


CURATED = ["+curated_set.size=150", "+oracle@curated_set.oracle=difficulty", "curated_set.oracle.kappa=0.7",
           "curated_set.oracle.difficulty=posterior"]


def test_a_curated_set_is_held_out_of_the_pool_and_the_same_for_every_arm_of_a_seed(folder):
    """Issue 30: every arm of a seed is also scored on one expert-labelled curated set (crowd arms had none)."""
    plain = runner.build(runner.compose([*SMALL, "seed=3"]))
    arms = {acq: runner.build(runner.compose([*SMALL, *CURATED, f"acquisition={acq}", "oracle=noisy", "seed=3"]))
            for acq in ("random", "margin")}
    a, b = arms.values()
    assert a.n_pool == plain.n_pool - 150 and len(a.y_curated) == 150
    np.testing.assert_array_equal(a.X_curated, b.X_curated)  # the same items ...
    np.testing.assert_array_equal(a.y_curated, b.y_curated)  # ... with the same expert answers
    held_out = np.setdiff1d(plain.pool_rows, a.pool_rows)
    assert len(held_out) == 150 and not np.isin(held_out, a.test_rows).any()
    truth = plain.table.y[plain.pool_rows[np.isin(plain.pool_rows, held_out)]]  # in the held-out rows' order
    assert 0.8 < (a.y_curated == truth).mean() < 1  # the expert's answers, not the truth
    state = a.loop(runner.compose([*SMALL, *CURATED, "acquisition=random", "oracle=noisy", "seed=3"])).run()
    assert all("common_curated_kappa" in h for h in state.history)
    other = runner.build(runner.compose([*SMALL, *CURATED, "seed=4"]))
    assert not np.array_equal(other.X_curated, a.X_curated)  # each seed its own draw
    with pytest.raises(AlexpError, match="curated_set.size=5000 must be between 1 and the pool"):
        runner.build(runner.compose([*SMALL, "+curated_set.size=5000"]))
