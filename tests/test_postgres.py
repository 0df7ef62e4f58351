"""Tracking on a real database: an MLflow server on PostgreSQL (Debian's package, started here on 127.0.0.1)
under a sweep of 8 concurrent jobs, each its own process (submitit_local, as submitit_slurm would run them on other
machines); one job is killed mid-run and the same command resumes it: one FINISHED run per config, no point twice.
"""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import alexp_process

SWEEP = ["-m", "hydra/launcher=submitit_local", "acquisition=random,margin,entropy,least_confidence", "seed=0,1",
         "budget=small", "data.n_rows=20000", "progress=false"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl)."""
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[::-1]), None)
    if found is None:
        pytest.fail("PostgreSQL's server is not installed: apt-get install postgresql (Debian's package; .ci/run "
                    "installs it when missing)")
    return Path(os.path.realpath(found)).parent


@contextmanager
def postgres():
    """A PostgreSQL server on 127.0.0.1 (a fresh cluster in a temporary folder, user alexp, database mlflow, no
    fsync); yields its SQLAlchemy URI. As root it runs as the postgres user, as PostgreSQL requires."""
    bin_dir, port = postgres_bin(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="alexp-pg-"))
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(str(bin_dir / "initdb"), "-D", f"{folder}/data", "-A", "trust", "-U", "alexp", "--no-sync", "-E", "UTF8")
        run(str(bin_dir / "pg_ctl"), "-D", f"{folder}/data", "-l", f"{folder}/log", "-w", "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", "start")
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "alexp", "-d", "postgres", "-c",
                        "CREATE DATABASE mlflow"], check=True, capture_output=True)
        yield f"postgresql://alexp@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", f"{folder}/data", "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def mlflow_server(store: str, folder: Path):
    """`mlflow server` on the store, 4 workers, artifacts in `folder`; yields its URL once it answers."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", store, "--artifacts-destination", str(folder / "artifacts"),
                               "--workers", "4"], cwd=folder, stdout=subprocess.DEVNULL,
                              stderr=open(folder / "server.log", "w"),
                              env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log = (folder / 'server.log').read_text()[-3000:]
                    raise AssertionError(f"mlflow server did not start:\n{log}") from None
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(30)


def database_rows(store: str, query: str) -> list[tuple]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(store)
    try:
        with engine.connect() as db:
            return [tuple(row) for row in db.execute(sqlalchemy.text(query))]
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_sweep_of_8_concurrent_jobs_on_a_postgresql_server_one_killed_and_resumed(tmp_path):
    import mlflow

    with postgres() as store, mlflow_server(store, tmp_path) as url:
        env = {"MLFLOW_TRACKING_URI": url, "ALEXP_THREADS": "1"}
        first = alexp_process(*SWEEP, cwd=tmp_path, check=False,
                              env={**env, "ALEXP_CRASH_AT": "logged:3", "ALEXP_CRASH_JOB": "5"})
        assert first.returncode == 1, first.stderr[-3000:]
        assert "alexp: a sweep job ended without a result" in first.stderr and "Traceback" not in first.stderr
        client = mlflow.MlflowClient(url)
        experiment = client.get_experiment_by_name("alexp").experiment_id
        runs = client.search_runs([experiment])
        assert len(runs) == 8
        peak = max(sum(r.info.start_time <= t < (r.info.end_time or float("inf")) for r in runs)
                   for t in (r.info.start_time for r in runs))
        print(f"runs open at once, at most: {peak} of 8")
        assert peak >= 4  # the 8 job processes start together; on 2 busy cores the first ends as the last starts
        killed = [r for r in runs if r.info.status != "FINISHED"]
        assert [(r.data.params["acquisition"], r.data.params["seed"]) for r in killed] == [("entropy", "1")]
        assert [m.step for m in client.get_metric_history(killed[0].info.run_id, "kappa")] == [10, 20]

        second = alexp_process(*SWEEP, cwd=tmp_path, env=env)  # the same command: the killed job resumes
        assert "sweep done: 8 jobs" in second.stdout
        runs = client.search_runs([experiment])
        assert sorted((r.data.params["acquisition"], r.data.params["seed"]) for r in runs) == sorted(
            (a, s) for a in ("random", "margin", "entropy", "least_confidence") for s in "01")
        assert {r.info.status for r in runs} == {"FINISHED"}
        assert killed[0].info.run_id in {r.info.run_id for r in runs}  # resumed, not started anew
        for r in runs:
            assert [m.step for m in client.get_metric_history(r.info.run_id, "kappa")] == [10, 20, 30, 40, 50, 60]
        again = alexp_process("acquisition=entropy", "seed=1", *SWEEP[-3:], cwd=tmp_path, env=env)
        assert "already finished: run " + killed[0].info.run_id in again.stdout
        # in the database itself: 8 runs, no metric point twice
        assert database_rows(store, "SELECT count(*) FROM runs") == [(8,)]
        assert database_rows(store, "SELECT run_uuid, key, step, count(*) FROM metrics GROUP BY run_uuid, key, step "
                                    "HAVING count(*) > 1") == []
