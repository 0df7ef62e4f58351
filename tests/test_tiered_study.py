"""The tiered-labelling study: its analysis on runs whose answer is known, and its --quick pipeline end to end."""

import importlib.util
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from omegaconf import OmegaConf

from conftest import ROOT

STUDY = ROOT / "simulations" / "tiered_labelling"


def study_module():
    spec = importlib.util.spec_from_file_location("tiered_study", STUDY / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["tiered_study"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def fake_runs(rule_saving: float, seeds: int = 20) -> pl.DataFrame:
    """Runs as `load` returns them: every arm's kappa is g(money at 1:10:100) per seed with noise, except the
    rule's, which reaches every level at 1/rule_saving of the money (g(rule_saving x money))."""
    rng = np.random.default_rng(0)

    def g(money):
        return 0.8 * (1 - np.exp(-money / 20000)) + rng.normal(0, 0.01, np.shape(money))

    arms = {  # name -> (items per round, labels per item from each tier, saving)
        "expert-margin": (np.arange(120, 601, 96), {"expert": 1}, 1),
        "crowd-random": (np.array([120, 400, 1200, 4000, 12000]), {"crowd": 1}, 1),
        "cheap-margin": (np.array([120, 400, 1200, 4000, 12000]), {"cheap": 1}, 1),  # to the whole pool
        "cheap>expert-uncertain": (np.arange(120, 2521, 240), {"cheap": 1, "expert": 0.1}, rule_saving),
    }
    prices = {"cheap": 1, "crowd": 10, "expert": 100}
    rows = []
    for arm, (items, share, saving) in arms.items():
        for seed in range(seeds):
            bought = {t: np.round(items * share.get(t, 0)) for t in ("cheap", "crowd", "expert")}
            money = sum(bought[t] * prices[t] for t in bought)
            kappa = g(saving * money)
            for i, n in enumerate(items):
                rows.append({"run_id": f"{arm}-{seed}", "condition": arm, "seed": seed, "items": int(n),
                             "kappa": float(kappa[i]), **{f"{t}_labels": float(bought[t][i]) for t in bought},
                             **{f"{t}_kappa": 0.5 for t in bought}})
    return pl.DataFrame(rows)


@pytest.mark.parametrize("saving, beats", [(3.0, True), (1.0, False)])
def test_the_verdict_follows_the_money_factor_against_every_single_tier(saving, beats, tmp_path):
    """A rule that reaches every level with a third of the money beats every single tier at 1:10:100 (the cheap
    tier, never getting there with the whole pool, by an infinite factor); one that spends like them does not
    (its factor's interval holds 1)."""
    run = study_module()
    study = OmegaConf.load(STUDY / "study.yaml")
    study.prices = {"1:10:100": study.prices["1:10:100"]}
    lines, wins, over_experts = run.dataset_section(study, fake_runs(saving), "synthetic", tmp_path)
    text = "\n".join(lines)
    assert wins[("1:10:100", "the expert arm at its end")] == (["cheap>expert-uncertain"] if beats else [])
    assert over_experts[("1:10:100", "the expert arm at its end")] == (["cheap>expert-uncertain"] if beats else [])
    if not beats:
        assert wins[("1:10:100", "the crowd at the whole pool")] == []
    row = next(line for line in lines if line.startswith("| cheap>expert-uncertain | the expert arm at its end"))
    if beats:
        factor = float(row.split("vs")[0].split("|")[3].split("[")[0].strip().lstrip("<>"))
        assert 2.5 < factor < 3.6 and "rule cheaper" in row
    else:
        assert "no clear difference" in row and "rule cheaper" not in row
    assert (tmp_path / "tiers-synthetic-1-10-100.png").is_file() and "### Prices 1:10:100" in text


@pytest.mark.slow
def test_the_quick_tiered_study_writes_results(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    import os

    done = subprocess.run([sys.executable, str(STUDY / "run.py"), "--quick", "--out", str(out)], cwd=tmp_path,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    text = (out / "RESULTS.md").read_text()
    for part in ("## Does routing beat the best single tier?", "## synthetic", "### Prices 1:10:100",
                 "### Prices 1:10:40", "| crowd>expert-confidence | the crowd at the whole pool |",
                 "- command: `python simulations/tiered_labelling/run.py --quick`",
                 "## Sensitivity: where the cheap tier errs", "| synthetic | 0 | 1:10:40 |"):
        assert part in text
    assert (out / "tiers-synthetic-1-10-40.png").is_file()
