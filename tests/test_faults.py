"""Fault injection: a real SIGKILL at each named crash point (alexp.faults), then the same command again until it
ends. Every scenario must end with exactly one FINISHED run equal to an uninterrupted one, and a usable store.

Processes are forked from a forkserver that has imported alexp, Hydra and MLflow once, so each run costs its
work, not 10 s of imports; the kill is a real kill -9 of that process."""

import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

# One worker runs this module (pytest -n 2 --dist loadgroup): its module fixtures are made once.
pytestmark = pytest.mark.xdist_group("faults")

ARGS = ["data.n_rows=2000", "budget.initial=10", "budget.batch_size=10", "budget.rounds=3", "progress=false",
        "acquisition=margin", "oracle=noisy"]
TIERS = [*ARGS[:-1], "oracle=tiers", "oracle.route=[cheap,expert]", "oracle.escalate=disagreement"]
FILES = ["oracle=files", "oracle.wait=true", "oracle.poll_seconds=0.05", "oracle.queue_dir=labels"]
TIMERS = ("fit_seconds", "test_seconds", "select_seconds")


def _alexp(argv, cwd, env):
    """Child process: `alexp *argv` in `cwd` with `env` added (run in-process: the CLI's entry point).

    A signal that reaches this wrapper outside `cli.main` is not alexp's to handle: before it, it ends the child
    as the signal ends any program (not as a KeyboardInterrupt in multiprocessing's bootstrap, exit code 1);
    after it, alexp has ended and the signal changes nothing (the child exits with alexp's own code)."""
    try:
        os.chdir(cwd)
        os.environ.update(env)
        sys.argv = ["alexp", *argv]
        from alexp import cli
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    with open(Path(cwd) / "stdout.txt", "a") as out, open(Path(cwd) / "stderr.txt", "a") as err:
        sys.stdout, sys.stderr = out, err
        try:
            cli.main()
        except SystemExit:
            raise
        except BaseException:  # written while the file is open: at exit, Python would find stderr closed
            import traceback

            traceback.print_exc(file=err)
            raise
        finally:  # alexp has ended: a signal from here on changes nothing
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)


@pytest.fixture(scope="module")
def ctx():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["alexp.cli", "alexp.runner", "alexp.loop", "alexp.tracking", "mlflow",
                                    "sklearn.linear_model", "polars", "hydra", "test_faults"])
    return context


def start(ctx, cwd, argv, crash=None):
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{cwd}/mlflow.db", "ALEXP_STATE_DIR": f"{cwd}/state",
           "ALEXP_CRASH_AT": crash or ""}
    p = ctx.Process(target=_alexp, args=(argv, str(cwd), env))
    p.start()
    return p


def run(ctx, cwd, argv, crash=None, answer=None):
    """Run to the end (exit code), answering a files oracle's requests from `answer` {id: label} meanwhile."""
    p = start(ctx, cwd, argv, crash)
    stop = threading.Event()
    if answer is not None:
        threading.Thread(target=_answer, args=(Path(cwd) / "labels", answer, stop), daemon=True).start()
    p.join(120)
    stop.set()
    assert p.exitcode is not None, "the run hung"
    return p.exitcode


def _answer(queue: Path, truth: dict, stop: threading.Event):
    """A person working through the files oracle's queue: each pending batch answered from the truth."""
    while not stop.is_set():
        pending, labels = queue / "pending.csv", queue / "labels.csv"
        if pending.is_file() and not labels.exists():
            try:
                ids = pl.read_csv(pending)["id"].to_list()
            except Exception:  # noqa: BLE001 - read while being replaced; look again
                continue
            tmp = queue / "labels.tmp"
            pl.DataFrame({"id": ids, "label": [truth[i] for i in ids]}).write_csv(tmp)
            os.replace(tmp, labels)
        time.sleep(0.02)


def finished_run(cwd):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{cwd}/mlflow.db")
    exp = client.get_experiment_by_name("alexp")
    found = client.search_runs([exp.experiment_id])
    assert [r.info.status for r in found] == ["FINISHED"], [(r.info.run_id, r.info.status) for r in found]
    run_ = found[0]
    history = {k: [(m.step, m.value) for m in client.get_metric_history(run_.info.run_id, k)]
               for k in run_.data.metrics if k not in TIMERS}
    labeled = pl.read_parquet(client.download_artifacts(run_.info.run_id, "labeled.parquet", str(cwd)))
    return history, labeled, run_


@pytest.fixture(scope="module")
def truth():
    from alexp.data import Synthetic

    table = Synthetic(n_rows=2000).load()
    return {int(i): int(y) for i, y in zip(table.ids, table.y)}


@pytest.fixture(scope="module")
def references(ctx, truth, tmp_path_factory):
    out = {}
    for name, argv, answer in (("simulated", ARGS, None), ("files", [*ARGS, *FILES], truth), ("tiers", TIERS, None)):
        cwd = tmp_path_factory.mktemp(f"reference-{name}")
        assert run(ctx, cwd, argv, answer=answer) == 0, (cwd / "stderr.txt").read_text()
        out[name] = finished_run(cwd)
    return out


# Every point for both oracles (a simulated oracle archives nothing).
SCENARIOS = [("simulated", "store"), ("simulated", "accepted:2"), ("simulated", "logged:3"),
             ("simulated", "final"), ("files", "store"), ("files", "accepted:2"), ("files", "archived:2"),
             ("files", "logged:5"), ("files", "final"),
             # tiers: killed right after a tier was bought (mid-round), after accepting, after the final artifacts
             ("tiers", "tier_bought:5"), ("tiers", "tier_bought:6"), ("tiers", "accepted:3"), ("tiers", "final")]


@pytest.mark.slow
@pytest.mark.parametrize("oracle, crash", SCENARIOS)
def test_a_kill_at_a_crash_point_ends_in_one_run_equal_to_an_uninterrupted_one(oracle, crash, ctx, truth,
                                                                                references, tmp_path):
    argv, answer = {"simulated": (ARGS, None), "files": ([*ARGS, *FILES], truth), "tiers": (TIERS, None)}[oracle]
    assert run(ctx, tmp_path, argv, crash=crash, answer=answer) == -signal.SIGKILL  # it did reach the point
    for _ in range(3):  # the same command again, until it ends
        if run(ctx, tmp_path, argv, answer=answer) == 0 and "already finished" not in _out(tmp_path):
            break
    assert run(ctx, tmp_path, argv) == 0 and "already finished: run" in _out(tmp_path)  # a rerun reports it
    history, labeled, _ = finished_run(tmp_path)
    ref_history, ref_labeled, _ = references[oracle]
    np.testing.assert_equal(history, ref_history)  # every point once, equal to the uninterrupted run's (NaN = NaN)
    assert labeled.equals(ref_labeled)  # with tiers: each label's tier, price and every tier's answer, bought once
    assert not list((tmp_path / "state").glob("*.npz")) and not list((tmp_path / "state").glob("*.jsonl"))
    if oracle == "files":
        archived = list((tmp_path / "labels" / "done").iterdir())
        assert len({p.name for p in archived}) == len(archived) and not (tmp_path / "labels" / "pending.csv").exists()


def _out(cwd):
    return (Path(cwd) / "stdout.txt").read_text()


def _make_store(uri):
    from alexp import tracking

    tracking.init_store(uri, "alexp")


def _blank_store(folder, blank):
    """What a user may leave where the store goes: nothing, an empty file (`touch mlflow.db`), or an sqlite
    database without a table (`sqlite3 mlflow.db` and a statement)."""
    import sqlite3

    db = folder / "mlflow.db"
    if blank == "empty file":
        db.touch()
    elif blank == "database without tables":
        with sqlite3.connect(db) as connection:
            connection.execute("CREATE TABLE t (x)")
            connection.execute("DROP TABLE t")


@pytest.mark.slow
@pytest.mark.parametrize("blank", ["no file", "empty file", "database without tables"])
def test_kills_during_store_creation_leave_usable_stores(ctx, tmp_path, blank):
    """kill -9 at a random moment in the first half of MLflow's building of a fresh store (its migrations take
    a second or so), twelve times, where the store's file is absent or blank: each leaves a store that opens and
    takes a run."""
    import mlflow

    from alexp import tracking

    def start_creating(folder):
        p = ctx.Process(target=_make_store, args=(f"sqlite:///{folder}/mlflow.db",))
        p.start()
        while p.is_alive() and not list(folder.glob(".*.creating")):  # MLflow has begun to build it
            time.sleep(0.001)
        return p

    (tmp_path / "timing").mkdir()
    _blank_store(tmp_path / "timing", blank)
    p, started = start_creating(tmp_path / "timing"), time.perf_counter()
    p.join()
    seconds = time.perf_counter() - started  # how long building the store takes in a child
    rng = np.random.default_rng(0)
    killed = midway = 0
    for i in range(12):
        folder = tmp_path / f"s{i}"
        folder.mkdir()
        _blank_store(folder, blank)
        uri = f"sqlite:///{folder}/mlflow.db"
        p = start_creating(folder)
        time.sleep(rng.uniform(0, seconds / 2))  # the first half of the build: far from its end on a busy machine too
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:  # done already (and reaped by the forkserver)
            pass
        p.join()
        killed += p.exitcode == -signal.SIGKILL
        midway += bool(list(folder.glob(".*.creating")))  # killed while the store was half-made
        tracking.init_store(uri, "alexp")  # usable: opens (or creates) cleanly, and takes a run
        client = mlflow.MlflowClient(uri)
        run_ = client.create_run(client.get_experiment_by_name("alexp").experiment_id)
        client.log_metric(run_.info.run_id, "kappa", 0.5, step=1)
        client.set_terminated(run_.info.run_id)
        assert not list(folder.glob(".*.creating"))
    print(f"{killed} of 12 creators killed, {midway} of them with the store half-made; 12 usable stores")
    assert midway >= 9  # most kills landed while the store was being made


@pytest.mark.slow
def test_two_first_runs_at_once_on_an_empty_store_file_both_finish(ctx, tmp_path):
    """`touch mlflow.db`, then two different runs started at once, three times: both finish, no traceback."""
    for i in range(3):
        cwd = tmp_path / f"t{i}"
        cwd.mkdir()
        _blank_store(cwd, "empty file")
        a, b = start(ctx, cwd, [*ARGS, "seed=1"]), start(ctx, cwd, [*ARGS, "seed=2"])
        a.join(120), b.join(120)
        err = (cwd / "stderr.txt").read_text()
        assert (a.exitcode, b.exitcode) == (0, 0) and "Traceback" not in err, err
        import mlflow

        client = mlflow.MlflowClient(f"sqlite:///{cwd}/mlflow.db")
        found = client.search_runs([client.get_experiment_by_name("alexp").experiment_id])
        assert sorted(r.data.params["seed"] for r in found) == ["1", "2"]
        assert {r.info.status for r in found} == {"FINISHED"}


@pytest.mark.slow
@pytest.mark.xdist_group("signals")  # on the other worker than the kills: each takes minutes
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_and_sigint_at_random_moments_stop_runs_that_resume_to_the_same_result(sig, ctx, references,
                                                                                        tmp_path):
    """20 runs, each sent the signal at a random moment of its life (start-up included): it stops within seconds
    with one line and exit code 128 + the signal (or had finished), and the same command then ends in one run
    equal to an uninterrupted one."""
    rng = np.random.default_rng(int(sig))
    (tmp_path / "timing").mkdir()
    started = time.perf_counter()
    assert run(ctx, tmp_path / "timing", ARGS) == 0
    seconds = time.perf_counter() - started  # an uninterrupted run, start-up included
    stopped = 0
    for i in range(20):
        cwd = tmp_path / f"r{i}"
        cwd.mkdir()
        p = start(ctx, cwd, ARGS)
        time.sleep(rng.uniform(0.2, seconds))
        sent = time.perf_counter()
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
        p.join(60)
        assert p.exitcode is not None and time.perf_counter() - sent < 10, "did not stop within 10 s"
        err = (cwd / "stderr.txt").read_text() if (cwd / "stderr.txt").exists() else ""
        assert "Traceback" not in err, err
        if p.exitcode == -sig:  # it came before the process had started alexp: ended as the signal ends any program
            assert not err
        elif p.exitcode == 128 + sig:
            stopped += 1
            lines = [line for line in err.splitlines() if line.strip()]
            assert lines == [f"alexp: stopped by {sig.name}; every label accepted so far is saved: run the same "
                             "command again to continue"], err
        else:
            assert p.exitcode == 0, err  # it had finished
        assert run(ctx, cwd, ARGS) == 0, (cwd / "stderr.txt").read_text()
        history, labeled, run_ = finished_run(cwd)
        assert history == references["simulated"][0] and labeled.equals(references["simulated"][1])
    print(f"{stopped} of 20 runs stopped by {sig.name}, all resumed to the uninterrupted result")
    assert stopped >= 12  # most signals landed while the run worked


@pytest.mark.slow
def test_one_run_started_twice_at_once_gives_one_run(ctx, tmp_path):
    a, b = start(ctx, tmp_path, ARGS), start(ctx, tmp_path, ARGS)
    a.join(120), b.join(120)
    assert (a.exitcode, b.exitcode) == (0, 0), (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()
    out = _out(tmp_path)
    assert out.count("kappa by label count") == 1 and out.count("already finished: run") == 1
    finished_run(tmp_path)


@pytest.mark.slow
def test_one_sweep_started_twice_at_once_gives_one_run_per_job_and_no_duplicate_points(ctx, tmp_path):
    import mlflow

    sweep = ["-m", "acquisition=random,margin", "seed=0,1", "hydra/launcher=basic", *ARGS[:-2]]
    from alexp import tracking

    tracking.init_store(f"sqlite:///{tmp_path}/mlflow.db", "alexp")  # as the sweep's callback does first
    a, b = start(ctx, tmp_path, sweep), start(ctx, tmp_path, sweep)
    a.join(300), b.join(300)
    assert (a.exitcode, b.exitcode) == (0, 0), (tmp_path / "stderr.txt").read_text()
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    found = client.search_runs([client.get_experiment_by_name("alexp").experiment_id])
    assert sorted((r.data.params["acquisition"], r.data.params["seed"]) for r in found) == [
        ("margin", "0"), ("margin", "1"), ("random", "0"), ("random", "1")]
    assert {r.info.status for r in found} == {"FINISHED"}
    for r in found:
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "kappa")]
        assert steps == [10, 20, 30, 40]  # no point twice
    assert _out(tmp_path).count("already finished: run") == 4  # the second sweep found each job done
