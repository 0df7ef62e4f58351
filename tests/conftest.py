"""Shared fixtures: a tiny rare-positive pool, a seeded generator, and `alexp` run as a user runs it.

`alexp` runs the command in-process (its own entry point, `alexp.cli.main`): a small run costs 0.5 s there and
4.5 s as a process, whose imports are most of it. `alexp_process` runs a real process, for what only a process
shows (a kill, a terminal, an installed wheel, a server, parallel sweep workers). Either gets an MLflow store
copied from one made once per pytest run (0.1 s; a new sqlite store costs 7-9 s of migrations and fsync).

Every test runs with one BLAS / torch thread (ALEXP_THREADS=1 for alexp runs) unless it sets its own.
"""

import io
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

# Before numpy, torch or a BLAS loads: one thread per test (and per alexp job these tests start).
for _var in ("ALEXP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
if os.environ.get("ALEXP_DATA_DIR"):  # tests run in their own folders: the data folder as pytest was started
    os.environ["ALEXP_DATA_DIR"] = os.path.abspath(os.environ["ALEXP_DATA_DIR"])

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
STORE_TEMPLATE = "ALEXP_TEST_STORE"  # environment variable: the ready store each test's store is copied from


@dataclass
class Result:
    """What `alexp ARGS` returned: exit code, standard output and standard error."""

    returncode: int
    stdout: str
    stderr: str


def ready_store(folder) -> str:
    """The URI of `folder`/mlflow.db, copied from the store made once per pytest run unless it exists."""
    db = Path(folder) / "mlflow.db"
    if not db.exists() and os.environ.get(STORE_TEMPLATE):
        shutil.copyfile(os.environ[STORE_TEMPLATE], db)
    return f"sqlite:///{db}"


def job_env(cwd) -> dict[str, str]:
    """The environment of an alexp job run in `cwd`: its own MLflow store (a copy of the ready one) and
    checkpoint folder."""
    return {**os.environ, "MLFLOW_TRACKING_URI": ready_store(cwd), "ALEXP_STATE_DIR": f"{cwd}/state",
            "HYDRA_FULL_ERROR": "0"}


def alexp_process(*args, cwd, check=True, env=None) -> subprocess.CompletedProcess:
    """`alexp ARGS` as a real process in `cwd` (with `env` added to its environment)."""
    proc = subprocess.run([sys.executable, "-m", "alexp", *args], cwd=cwd, env={**job_env(cwd), **(env or {})},
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"alexp {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


def alexp_in_process(*args, cwd, check=True) -> Result:
    """`alexp ARGS` run in this process, in `cwd`, as the console script runs it; a bug raises here with its
    traceback. The environment, working folder, argv and thread limits are restored afterwards. A sweep (-m) must
    pick hydra/launcher=basic: joblib's workers are other processes (use alexp_process for those)."""
    from alexp import cli

    if "-m" in args and not any(a.startswith("hydra/launcher=") for a in args):
        raise ValueError("an in-process sweep needs hydra/launcher=basic (or use alexp_process)")
    saved = dict(os.environ), os.getcwd(), sys.argv, list(sys.path)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        os.environ.update(job_env(cwd))
        os.chdir(cwd)
        sys.argv = ["alexp", *args]
        with redirect_stdout(out), redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as e:
                code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
                if isinstance(e.code, str):
                    print(e.code, file=err)
    finally:
        os.environ.clear()
        os.environ.update(saved[0])
        os.chdir(saved[1])
        sys.argv, sys.path[:] = saved[2], saved[3]
        _reset_job_state()
    result = Result(code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"alexp {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


def _reset_job_state() -> None:
    """What one in-process job leaves behind that a process would take with it: an active MLflow run, Hydra's
    current job, and thread limits raised by a test that sets threads."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from threadpoolctl import threadpool_limits

    if "mlflow" in sys.modules:
        while sys.modules["mlflow"].active_run() is not None:
            sys.modules["mlflow"].end_run("KILLED")
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None
    threadpool_limits(1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


@pytest.fixture
def alexp():
    """`alexp(*args, cwd=..., check=True)`: the command in-process, returning its exit code and output."""
    return alexp_in_process


def runs(cwd, experiment="alexp"):
    """(client, experiment, runs) of the store of an alexp job run in `cwd`."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{cwd}/mlflow.db")
    exp = client.get_experiment_by_name(experiment)
    return client, exp, client.search_runs([exp.experiment_id])


@pytest.fixture(autouse=True, scope="session")
def _ready_store(tmp_path_factory):
    """An MLflow store made once per pytest run; each alexp job's store starts as a copy of it."""
    from alexp import tracking

    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    tracking.ensure_store(f"sqlite:///{db}")
    os.environ[STORE_TEMPLATE] = str(db)
    yield db
    os.environ.pop(STORE_TEMPLATE, None)


@pytest.fixture(autouse=True)
def _own_folder_and_one_thread(tmp_path, monkeypatch):
    """Each test in its own working folder (what MLflow or alexp writes to ./ stays out of the checkout), and one
    BLAS / torch thread, whatever the test before it set."""
    monkeypatch.chdir(tmp_path)
    yield
    _reset_job_state()


@pytest.fixture
def data_dir():
    """The real datasets' folder. Missing data is a failure, not a skip: CI must run these tests."""
    path = os.environ.get("ALEXP_DATA_DIR")
    assert path, "set ALEXP_DATA_DIR to the folder with the real datasets (CI: ../shared/data)"
    for name in ("davidson2017_hate_offensive.parquet", "clickbait_chakraborty2016.parquet",
                 "cohen2006_drug_reviews.parquet"):
        assert os.path.isfile(os.path.join(path, name)), f"{name} not found in ALEXP_DATA_DIR={path}"
    return path


@dataclass
class Pool:
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory):
    """Generated pools and reference probabilities go to a temporary cache, not the user's."""
    os.environ.setdefault("ALEXP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def pool() -> Pool:
    """600 pool rows + 200 test rows, 8 features, ~10% positives."""
    X, y = make_classification(n_samples=800, n_features=8, n_informative=4, n_redundant=0,
                               weights=[0.9], class_sep=1.0, random_state=0)
    X = X.astype(np.float32)
    return Pool(X[:600], y[:600], X[600:], y[600:])


@pytest.fixture(scope="session")
def fitted(pool):
    """A logistic regression fitted on 60 pool rows."""
    return LogisticRegression(max_iter=1000).fit(pool.X[:60], pool.y[:60])


@pytest.fixture(scope="session")
def fitted_mlp(pool):
    """An MC-dropout MLP head fitted on the same 60 rows: a model that draws posterior samples."""
    from alexp.models import MLPHead

    return MLPHead(epochs=20, random_state=0).fit(pool.X[:60], pool.y[:60])


WORDS = ("good great fine nice love bad awful poor hate worst the a movie film plot was is it this "
         "very so really quite item number").split()


def text_pool(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Short texts whose label is whether they contain a negative word (~30% positives)."""
    rng = np.random.default_rng(seed)
    pos, neg, filler = WORDS[5:10], WORDS[:5], WORDS[10:]
    y = (rng.random(n) < 0.3).astype(int)
    texts = [" ".join([*rng.choice(filler, 3), rng.choice(pos if label else neg), *rng.choice(filler, 2)])
             for label in y]
    return texts, y


@pytest.fixture(scope="session")
def tiny_transformer(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with a word vocabulary, built from a config and saved like a hub model folder."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-bert")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    BertTokenizerFast(vocab=vocab).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(path)
    return str(path)
