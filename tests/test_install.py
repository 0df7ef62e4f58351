"""alexp installed as a package (not editable) works from any folder, with the user's own configs and code."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# One worker runs this module (pytest -n 2 --dist loadgroup): its module fixtures are made once.
pytestmark = pytest.mark.xdist_group("install")

ROOT = Path(__file__).resolve().parent.parent
STRATEGY = '''
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LargestFeature:
    """The unlabeled rows with the largest value of one feature."""

    column: int = 0

    def __call__(self, model, pool, n, rng):
        rows = pool.unlabeled()
        return rows[np.argsort(-np.asarray(pool.X[rows])[:, self.column], kind="stable")[:n]]
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A venv with alexp built and installed from this checkout as a wheel would be (dependencies from the
    environment running the tests, so no download)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                    "--no-deps", "--no-build-isolation", str(ROOT)], check=True, capture_output=True)
    return venv


def run(venv, cwd, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "ALEXP_STATE_DIR", "PYTHONPATH")}
    proc = subprocess.run([str(venv / "bin" / "alexp"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_an_installed_alexp_runs_from_an_empty_folder_with_a_users_own_strategy(installed, tmp_path):
    located = subprocess.run([str(installed / "bin" / "python"), "-c", "import alexp.conf; print(alexp.conf.__file__)"],
                             cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert str(installed) in located  # the installed copy, configs included, not this checkout
    assert "kappa by label count" in run(installed, tmp_path, "progress=false")
    out = run(installed, tmp_path, "-m", "acquisition=random,margin", "seed=0,1", "budget=small", "progress=false")
    assert len(re.findall(r"^\[\d/4\] \S+: kappa", out, re.MULTILINE)) == 4 and "sweep done: 4 jobs" in out
    (tmp_path / "my_strategies.py").write_text(STRATEGY)
    (tmp_path / "myconf" / "acquisition").mkdir(parents=True)
    (tmp_path / "myconf" / "acquisition" / "largest.yaml").write_text("_target_: my_strategies.LargestFeature\n"
                                                                      "column: 1\n")
    out = run(installed, tmp_path, "--config-dir", "myconf", "acquisition=largest", "budget=small", "progress=false")
    assert "largest-perfect-seed0-synthetic-identity" in out
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    found = client.search_runs([client.get_experiment_by_name("alexp").experiment_id])
    assert len(found) == 6 and {r.info.status for r in found} == {"FINISHED"}
