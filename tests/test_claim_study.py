"""The claim study's own rules: budget points, equal-cost crowd schedules and the verdict, on known answers."""

import importlib.util
import math
import sys

import pytest
from omegaconf import OmegaConf

from conftest import ROOT

HERE = ROOT / "simulations" / "reduction_claim"
spec = importlib.util.spec_from_file_location("claim_run", HERE / "run.py")
claim = importlib.util.module_from_spec(spec)
sys.modules["claim_run"] = claim  # dataclasses look their module up
spec.loader.exec_module(claim)
STUDY = OmegaConf.load(HERE / "study.yaml")


def test_curated_points_are_the_rounds_ends_and_multiples_of_the_votes():
    points = claim.curated_points(list(STUDY.budgets.curated))
    assert points == [120, 216, 312, 408, 504, 600]
    assert all(p % STUDY.votes == 0 for p in points)  # the k-vote crowd is measured at exactly these costs
    assert all(p % STUDY.votes == 0 for p in claim.curated_points(list(STUDY.budgets.replicate)))


def test_every_baseline_is_scheduled_at_every_curated_point():
    spec = STUDY.datasets.davidson
    arms = {a.name: a for a in claim.dataset_arms(STUDY, spec, "x", 19826, [0], list(STUDY.strategies),
                                                  list(STUDY.budgets.curated))}
    assert set(arms) == {"expert-boundary_pairs", "expert-margin", "expert-cluster_margin", "crowd-boundary_pairs",
                         "expert-random", "crowd-random", "crowd3-random"}
    points = claim.curated_points(list(STUDY.budgets.curated))

    def schedule(arm):
        return [int(v) for v in next(o for o in arm.overrides if o.startswith("budget.schedule="))
                .split("=", 1)[1].strip("[]").split(",")]

    single, votes = schedule(arms["crowd-random"]), schedule(arms["crowd3-random"])
    assert set(points) <= set(single) and single[-1] == 19826  # on to the whole pool
    assert {p // 3 for p in points} <= set(votes) and votes[-1] == 19826  # items; 3 judgments each
    for name in ("expert-random", "crowd-boundary_pairs", "expert-boundary_pairs"):
        assert set(STUDY.budgets.curated) <= set(arms[name].overrides)


@pytest.mark.parametrize("low, high, verdict", [(-0.01, 0.05, "holds"), (-0.02, 0.0, "holds"),
                                                (-0.10, -0.03, "fails"), (-0.05, 0.01, "cannot tell at this pool size"),
                                                (math.nan, math.nan, "cannot tell (too few seeds)")])
def test_the_verdict_is_non_inferiority_at_the_stated_margin(low, high, verdict):
    assert claim.verdict_of({"diff_low": low, "diff_high": high}, 0.02) == verdict


def test_money_factor_divides_the_reduction_by_the_price_ratio():
    row = {"problem": "", "bound": "", "reduction": 20.0}
    assert claim.money_text(row, 10) == "2.00" and claim.money_text(row, 40) == "0.50"
    assert claim.money_text({**row, "bound": "<"}, 40) == "< 0.50"
    assert claim.money_text({**row, "problem": "flat baseline"}, 10) == "–"
