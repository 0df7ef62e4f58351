"""The `alexp` command as a user runs it: one-line errors for bad input, multirun into MLflow, determinism."""

import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from conftest import alexp_process, job_env, runs

SMALL = ["budget=small", "data.n_rows=2000", "progress=false"]
AUTO_THREADS = {"ALEXP_THREADS": "auto"}  # these tests are about how a launcher shares the cores


@pytest.mark.parametrize("args, expected", [
    (["budget.batch_sise=5"], "alexp: error: unknown key 'budget.batch_sise'; did you mean budget.batch_size?"),
    (["seed=-1"], "alexp: error: seed must be a non-negative integer, got -1"),
])
@pytest.mark.slow
def test_a_bad_input_in_a_real_process_exits_2_with_one_line(args, expected, tmp_path):
    """The process as a user meets it (tests/test_bad_inputs.py runs the whole table in-process)."""
    proc = alexp_process(*args, "progress=false", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [expected] or proc.stderr.strip().startswith(expected), proc.stderr


def test_help_lists_the_groups(alexp, tmp_path):
    out = alexp("--help", cwd=tmp_path).stdout
    for group in ("acquisition", "budget", "data", "features", "model", "oracle"):
        assert f"{group}:" in out


@pytest.mark.slow
def test_multirun_logs_one_run_per_job_into_one_experiment(tmp_path):
    alexp_process("-m", "acquisition=random,entropy", "seed=0,1", *SMALL, cwd=tmp_path, env=AUTO_THREADS)  # joblib
    client, exp, found = runs(tmp_path)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert len(found) == 4 and {r.info.status for r in found} == {"FINISHED"}
    assert {r.data.tags["alexp.threads"] for r in found} == {"1"}  # cores shared by as many jobs: 1 thread each
    assert {(r.data.params["acquisition"], r.data.params["seed"]) for r in found} == {
        ("random", "0"), ("random", "1"), ("entropy", "0"), ("entropy", "1")}
    for r in found:
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "kappa")]
        assert steps == [10, 20, 30, 40, 50, 60]
        artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"config.yaml", "state.npz", "labeled.parquet"} <= artifacts
    assert len({r.data.tags["alexp.sweep_dir"] for r in found}) == 1
    assert not list((tmp_path / "state").glob("*.npz"))  # finished runs leave no checkpoint


def test_the_same_config_gives_identical_selections_and_metrics_and_a_rerun_reports_the_finished_run(alexp, tmp_path):
    args = [*SMALL, "oracle=noisy", "acquisition=margin", "seed=3"]
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        alexp(*args, cwd=tmp_path / name)
    rerun = alexp(*args, cwd=tmp_path / "a").stdout
    (client, _, (a,)), (client_b, _, (b,)) = runs(tmp_path / "a"), runs(tmp_path / "b")
    assert f"already finished: run {a.info.run_id}" in rerun  # one run per config: not a second identical run
    labeled = [pl.read_parquet(c.download_artifacts(r.info.run_id, "labeled.parquet", str(tmp_path / r.info.run_id)))
               for c, r in ((client, a), (client_b, b))]
    assert labeled[0].equals(labeled[1]) and labeled[0].height == 60
    for metric in ("kappa", "f1", "average_precision", "positives_labeled"):
        ha = [(m.step, m.value) for m in client.get_metric_history(a.info.run_id, metric)]
        hb = [(m.step, m.value) for m in client_b.get_metric_history(b.info.run_id, metric)]
        assert ha == hb and len(ha) == 6
    np.testing.assert_array_equal(labeled[0]["round"].unique().sort().to_numpy(), np.arange(6))


def test_boundary_pairs_gives_the_same_run_at_any_thread_count(alexp, tmp_path):
    """A sweep's jobs get cores // jobs threads and a single run all cores: the picks must not depend on it
    (k-means and distance sums add in a thread-dependent order; on 200k rows they picked other items)."""
    args = ["data.n_rows=200000", "acquisition=boundary_pairs", "oracle=target_kappa", "budget.initial=100",
            "budget.batch_size=70", "budget.rounds=1", "budget.stratified=false", "progress=false"]
    histories = []
    for threads in (1, 2):
        (cwd := tmp_path / f"t{threads}").mkdir()
        alexp(*args, f"threads={threads}", cwd=cwd)
        client, _, (run,) = runs(cwd)
        histories.append([(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "positives_labeled")]
                         + [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "kappa")])
    assert histories[0] == histories[1]


@pytest.mark.slow
def test_davidson_hate_with_tfidf_runs_end_to_end(alexp, tmp_path, data_dir):
    out = alexp("data=davidson_hate", "features=tfidf", "model=logreg", "model.class_weight=balanced", "budget=small",
                "progress=false", cwd=tmp_path).stdout
    client, _, (run,) = runs(tmp_path)
    history = client.get_metric_history(run.info.run_id, "kappa")
    assert [m.step for m in history] == [10, 20, 30, 40, 50, 60]
    assert run.data.params["data"] == "davidson_hate" and "kappa by label count" in out


@pytest.mark.slow
def test_clickbait_with_minilm_runs_end_to_end_and_caches_embeddings(alexp, tmp_path, data_dir):
    args = ["data=clickbait", "data.positive_rate=0.05", "data.max_rows=1500", "features=minilm",
            f"features.cache_dir={tmp_path / 'cache'}", "budget=small", "progress=false"]
    alexp(*args, cwd=tmp_path)
    assert len(list((tmp_path / "cache").glob("emb-*.npy"))) == 1
    alexp(*args, "seed=1", cwd=tmp_path)  # another seed reuses the same embeddings
    assert len(list((tmp_path / "cache").glob("emb-*.npy"))) == 1
    client, _, found = runs(tmp_path)
    assert len(found) == 2
    final = [client.get_metric_history(r.info.run_id, "kappa")[-1] for r in found]
    assert all(m.step == 60 for m in final)
    assert max(m.value for m in final) > 0.3  # MiniLM separates clickbait even from 60 labels


@pytest.mark.slow
def test_the_report_names_a_collapsed_baseline_and_the_default_model_gives_it_a_curve(alexp, tmp_path, data_dir):
    """Clickbait at 5% positives with tf-idf: logistic regression at a fixed 0.5 threshold never predicts a
    positive from random labels (kappa 0 throughout), so there is no target to reach; the default model does.
    Two seeds keep it quick: the collapse and the cause do not depend on intervals."""
    sweep = ["-m", "hydra/launcher=basic", "data=clickbait", "data.positive_rate=0.05", "features=tfidf",
             "acquisition=random,margin", "seed=0,1", "budget.rounds=5", "progress=false"]
    alexp(*sweep, "model=logreg", "tracking.experiment_name=fixed", cwd=tmp_path)
    alexp(*sweep, "tracking.experiment_name=default", cwd=tmp_path)
    report = {e: alexp("report", "--experiment", e, "--no-log", "--out", str(tmp_path / e), cwd=tmp_path).stdout
              for e in ("fixed", "default")}
    assert "No reduction factor against `acquisition=random`" in report["fixed"]
    assert "fixed 0.5 decision threshold on a rare class" in report["fixed"] and "1.00 [" not in report["fixed"]
    fixed = pl.read_parquet(tmp_path / "fixed" / "reductions.parquet").row(0, named=True)
    assert fixed["problem"] is not None and fixed["bound"] == "n/a"
    summary = pl.read_parquet(tmp_path / "default" / "summary.parquet")
    random_final = summary.filter(pl.col("condition") == "acquisition=random")["final"][0]
    assert random_final > 0.2, report["default"]  # a real baseline curve
    default = pl.read_parquet(tmp_path / "default" / "reductions.parquet").row(0, named=True)
    assert default["problem"] is None and default["bound"] != "n/a", report["default"]


@pytest.mark.slow
def test_a_run_killed_mid_round_resumes_to_the_uninterrupted_result(alexp, tmp_path):
    import signal
    import time

    from alexp.loop import LoopState

    args = ["data.n_rows=60000", "model=random_forest", "model.n_estimators=60", "oracle=noisy",
            "budget.rounds=12", "progress=false"]
    (reference := tmp_path / "reference").mkdir()
    alexp(*args, cwd=reference)  # the uninterrupted run: in-process (only the killed one must be a process)
    (killed := tmp_path / "killed").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "alexp", *args], cwd=killed, env=job_env(killed),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:  # wait until round 3 is checkpointed
        found = list((killed / "state").glob("*.npz"))
        if found and LoopState.load(found[0]).round >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    alexp(*args, cwd=killed)  # the same command continues from the checkpoint

    (client_a, _, (a,)), (client_b, _, (b,)) = runs(reference), runs(killed)
    assert b.info.status == "FINISHED"
    for metric in ("kappa", "average_precision", "cost", "oracle_kappa"):
        ha = [(m.step, m.value) for m in client_a.get_metric_history(a.info.run_id, metric)]
        hb = [(m.step, m.value) for m in client_b.get_metric_history(b.info.run_id, metric)]
        assert sorted(ha) == sorted(hb) and len(hb) == 13  # no point logged twice
    labeled = [pl.read_parquet(c.download_artifacts(r.info.run_id, "labeled.parquet", str(tmp_path / r.info.run_id)))
               for c, r in ((client_a, a), (client_b, b))]
    assert labeled[0].equals(labeled[1])


def test_an_expert_panel_run_logs_cost_and_panel_kappa_every_round(alexp, tmp_path):
    alexp(*SMALL, "oracle=expert_panel", "budget.max_cost=150", "budget.rounds=null", cwd=tmp_path)
    client, _, (run,) = runs(tmp_path)
    cost = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "cost")]
    assert cost == [(10, 30.0), (20, 60.0), (30, 90.0), (40, 120.0), (50, 150.0)]  # 3 experts x 1.0 per label
    panel = client.get_metric_history(run.info.run_id, "panel_kappa")
    assert [m.step for m in panel] == [10, 20, 30, 40, 50] and all(0 <= m.value <= 1 for m in panel)


@pytest.mark.slow
def test_a_submitit_local_sweep_logs_every_run(tmp_path):
    """The same sweep through submitit (each job its own process, as submitit_slurm would submit it)."""
    alexp_process("-m", "hydra/launcher=submitit_local", "acquisition=random,margin", "seed=0,1", *SMALL, cwd=tmp_path,
                  env=AUTO_THREADS)
    client, _, found = runs(tmp_path)
    assert len(found) == 4 and {r.info.status for r in found} == {"FINISHED"}
    for r in found:
        assert [m.step for m in client.get_metric_history(r.info.run_id, "kappa")] == [10, 20, 30, 40, 50, 60]
    assert {r.data.tags["alexp.threads"] for r in found} == {"1"}  # cpus_per_task unset: 1 thread per job
    assert len(list(tmp_path.glob("multirun/*/*/.submitit/*/*_result.pkl"))) == 4  # each job ran under submitit
    assert len({r.data.tags["alexp.sweep_dir"] for r in found}) == 1


def test_threads_per_job(monkeypatch):
    from alexp import AlexpError
    from alexp.runner import job_threads

    assert job_threads(3, cores=2) == 3
    assert job_threads("auto", cores=4) == 4  # a single run outside a sweep: every core
    for bad in (0, "two", 1.5):
        with pytest.raises(AlexpError, match="threads must be a positive number or auto"):
            job_threads(bad)


def test_a_sweep_folds_hydras_job_listing_into_one_line(alexp, tmp_path):
    """The basic launcher in-process (the joblib launcher folds through the same launcher-logger filter)."""
    import logging

    out = alexp("-m", "acquisition=random,margin,entropy", "seed=0", "budget=small", "data.n_rows=2000",
                "hydra/launcher=basic", cwd=tmp_path)
    text = out.stdout + out.stderr
    assert "#0 :" not in text and "#1 :" not in text
    (line,) = [t for t in text.splitlines() if "launching 3 jobs of" in t]
    assert "acquisition=random,margin,entropy seed=0" in line and "multirun.yaml" in line
    assert "note: entropy, margin pick the same items on a two-class task" in text
    logging.getLogger("hydra._internal.core_plugins.basic_launcher").filters.clear()


def test_a_silent_sweep_says_what_runs_every_so_often(tmp_path, capsys):
    import time

    from alexp import sweep

    board = sweep.Board(tmp_path)
    board.begin(4)
    board.started(0)  # this process: alive
    beat = sweep.Heartbeat(board, every=0.5)
    beat.start()
    time.sleep(1.8)
    sweep.Heartbeat.stop_all()
    lines = [t for t in capsys.readouterr().out.splitlines() if t.startswith("...")]
    assert lines and lines[0].startswith("... 1 running, 0 of 4 done, ")
    assert lines[0].endswith("since the sweep started")
