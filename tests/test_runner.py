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
