"""The claim study's --quick run: the whole pipeline, from sweeps to RESULTS.md with every section."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT, ready_store


@pytest.mark.slow
def test_the_quick_claim_study_writes_results_with_every_section(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": ready_store(tmp_path), "ALEXP_STATE_DIR": f"{tmp_path}/s"}
    run = [sys.executable, str(ROOT / "simulations" / "reduction_claim" / "run.py"), "--quick", "--out",
           str(tmp_path / "out")]
    subprocess.run(run, cwd=tmp_path, env=env, check=True, capture_output=True, text=True, timeout=900)
    text = (tmp_path / "out" / "RESULTS.md").read_text()
    for heading in ("## Does the claim hold?", "## Label quality", "## What this study cannot show",
                    "## Results by dataset", "- command: `python simulations/reduction_claim/run.py --quick`",
                    "- wall time:", "- machine:", "**Primary comparison (pre-declared):**", "p within the margin",
                    "Money at three targets", "money factor at 10x", "overlap share",
                    "## Sensitivity to the crowd's error structure", "claim-synthetic-quick-sensitivity.png"):
        assert heading in text, heading
    assert "| synthetic | **" in text  # the verdict row names one of the verdict words
    # every baseline has a value at every curated budget point (120 ... 600 judgments)
    table = text[text.index("| condition | 120 |"):].split("\n\n")[0].splitlines()[2:]
    names = {row.split(" | ")[0].strip("| ") for row in table}
    assert {"expert-random", "crowd-random", "crowd3-random", "crowd-boundary_pairs"} <= names
    assert all("–" not in row.split(" | ")[1:7] for row in table)
    assert (tmp_path / "out" / "claim-synthetic-quick-kappa_vs_labels.png").is_file()
    # the primary arm logged every stopping rule: what each would have spent, in the summary and the section
    summary = text[text.index("What each stopping rule would have spent"):].split("\n\n")[1].splitlines()
    assert [row.split(" | ")[0].strip("| ") for row in summary[2:]] == [
        "classification_change", "kappa_average", "label_budget", "max_uncertainty", "overall_uncertainty",
        "stabilizing_predictions", "(whole budget)"]
    assert "| label_budget | 216 (fired 3/3): " in text  # 200 labels -> the round that ends at 216
    table = text[text.index("**Stopping rules on the primary comparison.**"):].split("\n\n")[1].splitlines()
    assert len(table) == 2 + 6 and table[0].startswith("| rule | judgments at stop |")
    # A second run skips the logged arms and rebuilds the same tables.
    again = subprocess.run(run, cwd=tmp_path, env=env, check=True, capture_output=True, text=True, timeout=900)
    assert again.stdout.count("already logged, skipped") == 7 + 4  # and the sensitivity grid's 2 x 2 arms
    assert (tmp_path / "out" / "RESULTS.md").read_text() == text
