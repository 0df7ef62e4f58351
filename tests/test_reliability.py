"""The last crash, leaks and tracebacks: the environment race, a deleted run, tokens in URLs, report and ui
arguments; and, as real processes, kills of sweeps and of `alexp ui`, a full disk and read-only folders, and a
credentialed MLflow server."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from alexp.secrets import MASK, environment, redact
from conftest import alexp_in_process, job_env, runs

SMALL = ["budget=small", "data.n_rows=2000", "progress=false"]


def test_redaction_beside_a_thread_that_changes_the_environment_never_fails(monkeypatch):
    """MLflow's telemetry thread deletes a variable while alexp lists the environment: 5,000 redactions (and
    snapshots) beside a thread that adds and deletes variables as fast as it can raise nothing."""
    monkeypatch.setenv("MY_API_TOKEN", "tok-abcdef123456")
    stop, errors = threading.Event(), []

    def churn():
        i = 0
        while not stop.is_set():
            key = f"_MLFLOW_TELEMETRY_SESSION_ID_{i % 50}"
            os.environ[key] = "x" * 40
            os.environ.pop(key, None)
            i += 1

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(5000):
            try:
                assert redact("sent tok-abcdef123456 to http://u:pw@h") == f"sent {MASK} to http://u:{MASK}@h"
                environment()
            except Exception as e:  # noqa: BLE001 - counted: the test is that there are none
                errors.append(repr(e))
    finally:
        stop.set()
        worker.join()
    assert errors == []


def test_a_token_in_a_urls_user_part_is_masked():
    assert redact("http://tok123456789@mlflow.example:5000/x") == f"http://{MASK}@mlflow.example:5000/x"
    assert redact(r"tracking.uri=http\://tok123456789@h\:5000") == rf"tracking.uri=http\://{MASK}@h\:5000"
    assert redact("user@example.com and sqlite:///mlflow.db") == "user@example.com and sqlite:///mlflow.db"


def test_a_run_deleted_in_the_ui_is_started_anew_and_its_checkpoint_kept_aside(tmp_path):
    args = ["oracle=files", "oracle.queue_dir=labels", *SMALL]
    first = alexp_in_process(*args, cwd=tmp_path)  # waits for labels: a checkpoint and a SCHEDULED run
    assert "waiting for" in first.stdout
    client, _, (run,) = runs(tmp_path)
    client.delete_run(run.info.run_id)  # what the UI's Delete does
    again = alexp_in_process(*args, cwd=tmp_path)
    assert again.returncode == 0 and "Traceback" not in again.stderr
    said = [line for line in (again.stdout + again.stderr).splitlines() if "was deleted" in line]
    assert len(said) == 1 and run.info.run_id in said[0] and "starting it anew" in said[0], again.stderr
    assert list((tmp_path / "state").glob(f"*.deleted-run-{run.info.run_id}.npz"))  # kept, not destroyed
    _, _, (new,) = runs(tmp_path)
    assert new.info.run_id != run.info.run_id and new.info.status == "SCHEDULED"


def test_report_and_ui_arguments_that_used_to_end_in_a_traceback(tmp_path):
    from alexp.report import folder_name

    bad = alexp_in_process("report", "--baseline", "random", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--baseline takes settings as key=value, got 'random'; e.g. --baseline acquisition=random" in bad.stderr
    bad = alexp_in_process("ui", "--port", "99999", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "--port must be a port number from 1 to 65535, got 99999" in bad.stderr
    for name in ("../../x", "/etc", "..", "a/../../b"):  # an experiment's name never leaves reports/
        folder = (Path("reports") / folder_name([name])).resolve()
        assert folder.parent == Path("reports").resolve(), name


# ---- real processes ----

def _descendants(pid: int) -> set[int]:
    """Every process whose ancestry leads to `pid` (read from /proc), itself excluded."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids) -> set[int]:
    from alexp.lifeline import alive

    return {p for p in pids if alive(p)}


@pytest.mark.slow
def test_kill_9_of_a_sweep_leaves_no_worker_and_the_sweep_resumes(tmp_path):
    """A 4-job sweep on joblib's workers, `kill -9` of the sweep's process while its jobs run: 5 s later none of
    its processes is alive and no joblib folder is left in /dev/shm; the same command then finishes every job."""
    shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    argv = [sys.executable, "-m", "alexp", "-m", "acquisition=random,margin", "seed=0,1", "data.n_rows=20000",
            "progress=false"]
    sweep = subprocess.Popen(argv, cwd=tmp_path, env=job_env(tmp_path), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline, family = time.monotonic() + 120, set()
    while time.monotonic() < deadline and len(family) < 2:  # its workers are up
        family = _descendants(sweep.pid)
        time.sleep(0.2)
    assert family, "the sweep started no worker"
    time.sleep(3)  # its jobs are under way
    family |= _descendants(sweep.pid)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    time.sleep(5)
    assert _alive(family) == set(), f"left alive: {_alive(family)}"
    left = {name for name in set(os.listdir("/dev/shm")) - shm_before if "joblib" in name or "loky" in name} \
        if os.path.isdir("/dev/shm") else set()
    assert left == set()
    done = subprocess.run(argv, cwd=tmp_path, env=job_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    _, _, found = runs(tmp_path)
    assert sorted((r.data.params["acquisition"], r.data.params["seed"]) for r in found
                  if r.info.status == "FINISHED") == [("margin", "0"), ("margin", "1"), ("random", "0"),
                                                      ("random", "1")]


@pytest.mark.slow
def test_kill_9_of_alexp_ui_stops_its_server_and_frees_the_port(alexp, tmp_path):
    alexp(*SMALL, cwd=tmp_path)
    ui = subprocess.Popen([sys.executable, "-m", "alexp", "ui", "--port", "5141"], cwd=tmp_path,
                          env=job_env(tmp_path), stdout=subprocess.PIPE, text=True)
    said = ""
    for line in ui.stdout:
        said += line
        if "Ctrl-C" in line:
            break
    port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", said).group(1))
    family = _descendants(ui.pid)
    assert family, "alexp ui started no server"
    ui.send_signal(signal.SIGKILL)
    ui.wait()
    time.sleep(5)
    assert _alive(family) == set(), f"left alive: {_alive(family)}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # free again
