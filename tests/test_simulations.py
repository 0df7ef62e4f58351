"""The claim study's --quick run: the whole pipeline, from sweeps to RESULTS.md with every section."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_the_quick_claim_study_writes_results_with_every_section(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "ALEXP_STATE_DIR": f"{tmp_path}/s"}
    run = [sys.executable, str(ROOT / "simulations" / "reduction_claim" / "run.py"), "--quick", "--out",
           str(tmp_path / "out")]
    subprocess.run(run, cwd=tmp_path, env=env, check=True, capture_output=True, text=True, timeout=900)
    text = (tmp_path / "out" / "RESULTS.md").read_text()
    for heading in ("## Does the claim hold?", "## Label quality", "## Model capacity",
                    "## Results by dataset and features", "- command: `python simulations/reduction_claim/run.py "
                    "--quick`", "- wall time:", "- machine:"):
        assert heading in text, heading
    assert "| arm=random-crowd_59 acquisition=random oracle.kappa=0.59 | 2 | 5000 |" in text  # the full schedule
    assert "reduction factor" in text
    assert (tmp_path / "out" / "claim-synthetic-linear-quick-kappa_vs_labels.png").is_file()
    # A second run skips the logged arms and rebuilds the same tables.
    again = subprocess.run(run, cwd=tmp_path, env=env, check=True, capture_output=True, text=True, timeout=900)
    assert again.stdout.count("already logged, skipped") == 5
