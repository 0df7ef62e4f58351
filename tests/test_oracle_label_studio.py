"""The Label Studio oracle against a real Label Studio server, as an expert uses it: two rounds, resumed runs.

The server is a separate application with pins of its own, so it lives in its own virtual environment:
`ALEXP_LABEL_STUDIO` may name a `label-studio` executable; otherwise the fixture installs label-studio into
`$ALEXP_TEST_CACHE/label-studio-<version>` (default ~/.cache/alexp-tests: a folder that outlives the test run, so
only a fresh machine pays the ~70 s install) and starts it on 127.0.0.1 with a temporary data folder.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import runs
from test_oracle_files import expert, saved_labels

from alexp import AlexpError
from alexp.oracles import LabelStudio

# One worker runs this module (pytest -n 2 --dist loadgroup): its module fixtures are made once.
pytestmark = pytest.mark.xdist_group("label_studio")

VERSION = "1.23.2"
TOKEN = "5f0c2d1e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"  # a legacy API token set for the test server's admin
PROJECT = "alexp test"


def server_executable() -> Path:
    if os.environ.get("ALEXP_LABEL_STUDIO"):
        return Path(os.environ["ALEXP_LABEL_STUDIO"])
    cache = Path(os.environ.get("ALEXP_TEST_CACHE", Path.home() / ".cache" / "alexp-tests"))
    venv = cache / f"label-studio-{VERSION}"
    if not (venv / "installed").is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"label-studio=={VERSION}"], check=True)
        (venv / "installed").touch()
    return venv / "bin" / "label-studio"


class Server:
    """A Label Studio server on a free loopback port; stop() and start() keep its data folder."""

    def __init__(self, data_dir: Path):
        self.exe, self.data_dir = server_executable(), data_dir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self, timeout: float = 240) -> None:
        env = {**os.environ, "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true"}
        log = open(self.data_dir / "server.log", "ab")
        self.proc = subprocess.Popen(
            [str(self.exe), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(self.data_dir), "--username", "expert@example.com", "--password", "expert-password",
             "--user-token", TOKEN], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(1)
        tail = (self.data_dir / "server.log").read_text(errors="replace")[-2000:]
        self.stop()
        pytest.fail(f"Label Studio did not start at {self.url}:\n{tail}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("label-studio"))
    s.start()
    yield s
    s.stop()


def client(server):
    from label_studio_sdk import LabelStudio as Client

    return Client(base_url=server.url, api_key=TOKEN)


def tasks(server, project=PROJECT):
    c = client(server)
    (p,) = [p for p in c.projects.list(title=project) if p.title == project]
    return c, list(c.tasks.list(project=p.id, fields="all"))


def annotate(c, task, label=None):
    """The expert answers a task in Label Studio (label None: skips it)."""
    if label is None:
        c.annotations.create(id=task.id, was_cancelled=True, result=[])
    else:
        c.annotations.create(id=task.id, result=[{"from_name": "label", "to_name": "text", "type": "choices",
                                                  "value": {"choices": [str(label)]}}])


def unanswered(task_list):
    return [t for t in task_list if not any(not a.get("was_cancelled") for a in t.annotations or [])]


@pytest.mark.slow
def test_an_expert_labels_two_rounds_in_label_studio_across_restarts(alexp, server, tmp_path, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", TOKEN)
    args = ["oracle=label_studio", f"oracle.url={server.url}", f"oracle.project={PROJECT}",
            "oracle.names=[not positive,positive]", "data.n_rows=400", "budget.initial=6", "budget.batch_size=6",
            "budget.rounds=1", "progress=false"]
    out = alexp(*args, cwd=tmp_path).stdout
    assert f"waiting for 6 labels: annotate the tasks of project '{PROJECT}' at {server.url}/projects/" in out

    c, first = tasks(server)
    assert len({t.data["id"] for t in first}) == 6
    for t in first[:4]:
        annotate(c, t, expert([t.data["id"]])[0])
    annotate(c, first[4])  # skipped: stays pending
    assert "waiting for 2 labels" in alexp(*args, cwd=tmp_path).stdout
    state, got = saved_labels(tmp_path)
    assert state.round == -1 and len(got) == 4
    assert len(tasks(server)[1]) == 6  # asking again for the rest added no tasks

    for t in first[4:]:
        annotate(c, t, expert([t.data["id"]])[0])
    server.stop()  # the server restarts between runs: the project is found again by its title
    server.start()
    assert "waiting for 6 labels" in alexp(*args, cwd=tmp_path).stdout  # round 0 accepted, round 1 asked
    c, both = tasks(server)
    second = unanswered(both)
    assert len(both) == 12 and len(second) == 6
    for t in second:
        annotate(c, t, expert([t.data["id"]])[0])
    assert "kappa by label count" in alexp(*args, cwd=tmp_path).stdout

    mlflow_client, _, (run,) = runs(tmp_path)
    assert run.info.status == "FINISHED"
    assert [m.step for m in mlflow_client.get_metric_history(run.info.run_id, "kappa")] == [6, 12]
    labeled = pl.read_parquet(mlflow_client.download_artifacts(run.info.run_id, "labeled.parquet", str(tmp_path)))
    assert labeled.height == 12 and labeled["label"].to_list() == expert(labeled["id"].to_list())
    assert sorted(labeled["id"].to_list()) == sorted(t.data["id"] for t in both)
    for path in tmp_path.rglob("*"):  # the token is read from the environment and written nowhere
        assert not path.is_file() or TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_a_run_killed_while_it_waits_for_annotations_keeps_them_and_asks_none_twice(server, tmp_path, monkeypatch):
    """kill -9 while the run waits (oracle.wait=true) after 3 of 6 annotations: resumed, it asks for the other 3
    only (no task added), and the run ends with every answer."""
    from conftest import alexp_process, job_env

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", TOKEN)
    project = "alexp kill test"
    args = ["oracle=label_studio", f"oracle.url={server.url}", f"oracle.project={project}", "data.n_rows=400",
            "budget.initial=6", "budget.batch_size=6", "budget.rounds=1", "progress=false"]
    proc = subprocess.Popen([sys.executable, "-m", "alexp", *args, "oracle.wait=true", "oracle.poll_seconds=0.2"],
                            cwd=tmp_path, env=job_env(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while True:
        assert time.monotonic() < deadline and proc.poll() is None
        try:
            c, first = tasks(server, project)
        except ValueError:  # the project is not there yet
            first = []
        if len(first) == 6:
            break
        time.sleep(0.2)
    given = {}
    for t in first[:3]:
        given[t.data["id"]] = expert([t.data["id"]])[0]
        annotate(c, t, given[t.data["id"]])
    time.sleep(0.3)
    proc.kill()
    proc.wait(timeout=30)

    assert "waiting for 3 labels" in alexp_process(*args, cwd=tmp_path).stdout
    c, again = tasks(server, project)
    assert len(again) == 6  # nothing asked twice
    for t in unanswered(again):
        given[t.data["id"]] = expert([t.data["id"]])[0]
        annotate(c, t, given[t.data["id"]])
    alexp_process(*args, cwd=tmp_path)
    c, both = tasks(server, project)
    for t in unanswered(both):
        given[t.data["id"]] = expert([t.data["id"]])[0]
        annotate(c, t, given[t.data["id"]])
    assert "kappa by label count" in alexp_process(*args, cwd=tmp_path).stdout
    mlflow_client, _, (run,) = runs(tmp_path)
    labeled = pl.read_parquet(mlflow_client.download_artifacts(run.info.run_id, "labeled.parquet", str(tmp_path)))
    assert dict(zip(labeled["id"].to_list(), labeled["label"].to_list())) == given


@pytest.mark.slow
def test_a_project_of_another_pool_and_a_bad_token_are_refused_by_name(server, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", TOKEN)
    pool = {"id": np.array([10, 11, 12]), "text": np.array(["a", "b", "c"], dtype=object)}
    LabelStudio(pool, url=server.url, project="another pool").request(np.array([0, 1]))
    other = {**pool, "id": np.array([20, 21, 22])}
    with pytest.raises(AlexpError, match="belongs to another experiment; set oracle.project"):
        LabelStudio(other, url=server.url, project="another pool").collect()
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-the-token")
    with pytest.raises(AlexpError, match="HTTP 401.*check the token in LABEL_STUDIO_API_KEY") as e:
        LabelStudio(pool, url=server.url, project="another pool").collect()
    assert "not-the-token" not in str(e.value)


def test_without_a_token_or_a_server_the_error_says_what_to_set(monkeypatch):
    pool = {"id": np.arange(3)}
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(AlexpError, match="set the environment variable LABEL_STUDIO_API_KEY"):
        LabelStudio(pool).collect()
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", TOKEN)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AlexpError, match=f"cannot reach Label Studio at http://127.0.0.1:{port}"):
        LabelStudio(pool, url=f"http://127.0.0.1:{port}").collect()


def test_the_labeling_interface_maps_each_shown_name_to_its_class():
    config = LabelStudio({"id": np.arange(2)}, classes=["ham", "spam"], names=['fine "ok"', "spam"]).label_config()
    assert '<Choice value=\'fine "ok"\' alias="ham"/>' in config and '<Choice value="spam" alias="spam"/>' in config
    with pytest.raises(AlexpError, match="one distinct name per class"):
        LabelStudio({"id": np.arange(2)}, names=["only one"])
    with pytest.raises(AlexpError, match="3 to 50 characters"):
        LabelStudio({"id": np.arange(2)}, project="x")


@pytest.mark.slow
def test_no_credential_reaches_mlflow_files_logs_or_messages(alexp, server, tmp_path, monkeypatch):
    """The token comes from the environment; a password rides in the server URL (as for a server behind a
    proxy with basic authentication), typed on the command line, in a sweep. Neither may appear anywhere.
    (The SDK sends the URL's password as basic authentication in place of the token, so the server refuses
    the first job: the password must stay out of that error too.)"""
    password = "url-pass-7f3e9b"
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", TOKEN)
    url = server.url.replace("http://", f"http://expert:{password}@")
    proc = alexp("-m", "hydra/launcher=basic", "oracle=label_studio", f"oracle.url={url}", "oracle.project=secrets",
                 "data.n_rows=400", "budget.initial=6", "budget.batch_size=6", "budget.rounds=1", "seed=0,1",
                 "progress=false", cwd=tmp_path, check=False)
    said = proc.stdout + proc.stderr
    assert "waiting for 6 labels" in said or "alexp: error:" in said, said[-2000:]
    assert "http://expert:***@127.0.0.1" in said  # where the answers are expected, masked
    for secret in (password, TOKEN):
        assert secret not in said
        for path in tmp_path.rglob("*"):  # the store, its artifacts, checkpoints, Hydra's outputs and logs
            assert not path.is_file() or secret.encode() not in path.read_bytes(), path
    mlflow_client, _, found = runs(tmp_path)
    assert found  # the runs that started: params and config logged
    for r in found:
        assert r.data.params["oracle.url"] == "http://expert:***@" + server.url.removeprefix("http://")
        config = mlflow_client.download_artifacts(r.info.run_id, "config.yaml", str(tmp_path / r.info.run_id))
        text = Path(config).read_text()
        assert password not in text and TOKEN not in text and "expert:***@" in text
