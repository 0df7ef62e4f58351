"""The claim study's own rules: budget points, equal-cost crowd schedules and the verdict, on known answers."""

import importlib.util
import math
import sys

import numpy as np
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


@pytest.mark.parametrize("pool", [974, 896, 300, 12_000])
def test_the_crowd_schedule_ends_at_the_whole_pool_however_small(pool):
    """Issue 30: pools under crowd_schedule.from (1,000) stopped the crowd at the curated budget's 300 labels."""
    points = claim.curated_points(list(STUDY.budgets.replicate))
    crowd = claim.crowd_points(points, STUDY, pool)
    assert crowd[-1] == pool and crowd == sorted(set(crowd))
    assert {p for p in points if p <= pool} <= set(crowd)
    assert len([c for c in crowd if c > max(points)]) >= (1 if pool > max(points) else 0)


@pytest.mark.parametrize("center, verdict", [
    (0.01, "holds"), (-0.012, "worse but within the margin"), (-0.06, "fails"),
    (-0.025, "worse, inconclusive against the margin at 20 seeds"), (-0.01, "inconclusive at 20 seeds")])
def test_each_verdict_category_from_hand_built_differences(center, verdict):
    """Issue 30: 'cannot tell at this pool size' was said of an interval that excluded 0 and of a 1M pool."""
    spread = 0.06 if verdict.startswith("inconclusive") else 0.004 if "within" in verdict else 0.02
    diffs = center + spread * np.linspace(-1, 1, 20)  # mean `center`, interval about center +- spread / 2
    r = claim.verdict_row(dict(enumerate(diffs)), dict.fromkeys(range(20), 0.0), 0.02)
    assert r["verdict"] == verdict, r
    low, high = r["diff_low"], r["diff_high"]
    expected = ("fails" if high < -0.02 else "worse but within the margin" if low > -0.02 and high < 0 else
                "holds" if low > -0.02 else "worse, inconclusive against the margin at 20 seeds" if high < 0 else
                "inconclusive at 20 seeds")
    assert verdict == expected  # the words follow the interval


def test_too_few_seeds_give_no_verdict():
    r = claim.verdict_row({0: 0.1, 1: 0.1}, {0: 0.0, 1: 0.0}, 0.02)
    assert r["verdict"] == "inconclusive: an interval needs 3 seeds"


def test_the_adjusted_p_and_the_verdict_agree_where_adjustment_changes_the_answer():
    """Issue 30: Holm adjusted Wilcoxon p-values for 'difference = 0' while verdicts read unadjusted intervals
    against -0.02. Here one verdict of a family of 4 holds alone but not among 4: the widened interval reaches
    past -margin, and the adjusted p says the same."""
    diffs = 0.06 * np.linspace(-1, 1, 20)  # mean 0, sd 0.036: the 95% interval ends above -0.02, the 98.75% below
    alone = claim.verdict_row(dict(enumerate(diffs)), dict.fromkeys(range(20), 0.0), 0.02, family=1)
    among = claim.verdict_row(dict(enumerate(diffs)), dict.fromkeys(range(20), 0.0), 0.02, family=4)
    assert alone["verdict"] == "holds" and alone["p_holds"] < 0.025 < among["p_holds"], (alone, among)
    assert among["verdict"] == "inconclusive at 20 seeds" and among["diff_low"] < -0.02 < alone["diff_low"]
    assert among["p_holds"] == pytest.approx(min(1, 4 * alone["p_holds"]))


def test_money_factor_divides_the_reduction_by_the_price_ratio():
    row = {"problem": "", "bound": "", "reduction": 20.0, "reduction_low": math.nan, "reduction_high": math.nan}
    assert claim.money_text(row, 10) == "2.00" and claim.money_text(row, 40) == "0.50"
    assert claim.money_text({**row, "bound": "<"}, 40) == "< 0.50"
    assert claim.money_text({**row, "problem": "flat baseline"}, 10) == "–"
    # Which side is cheaper follows the interval, never the point estimate.
    row = {**row, "reduction_low": 12.0, "reduction_high": 30.0}
    assert claim.money_text(row, 10) == "2.00 [1.20, 3.00]: experts cheaper"
    assert claim.money_text(row, 20) == "1.00 [0.60, 1.50]: no clear difference"
    assert claim.money_text(row, 40) == "0.50 [0.30, 0.75]: crowd cheaper"
    # A censored factor quotes the end of its interval that the data support, not its point bound.
    never = {**row, "bound": "<", "reduction": 20.0, "reduction_low": 0.0, "reduction_high": 30.0}
    assert claim.money_text(never, 40) == "< 0.75: crowd cheaper" and claim.money_text(never, 10) == \
        "< 3.00: no clear difference"
    crowd_never = {**row, "bound": ">", "reduction": 50.0, "reduction_low": 45.0, "reduction_high": math.inf}
    assert claim.money_text(crowd_never, 40) == "> 1.12: experts cheaper"


def test_only_the_primary_arm_evaluates_the_stopping_rules():
    arms = {a.name: a for a in claim.dataset_arms(STUDY, STUDY.datasets.davidson, "x", 19826, [0],
                                                  list(STUDY.strategies), list(STUDY.budgets.curated))}
    assert [n for n, a in arms.items() if "stopping=all" in a.overrides] == [STUDY.primary.condition]


def test_a_rule_stops_each_seed_at_the_first_point_at_or_after_it_fired():
    import polars as pl

    # one condition, two seeds evaluated at 10, 20, 30 items (judgments = items here)
    runs = pl.DataFrame({"condition": ["c"] * 6, "seed": [0, 0, 0, 1, 1, 1], "items": [10, 20, 30] * 2,
                         "n_labels": [10, 20, 30] * 2, "value": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]})
    stops = pl.DataFrame({"run_id": ["a", "b", "a", "b"], "condition": ["c"] * 4, "seed": [0, 1, 0, 1],
                          "rule": ["r", "r", "q", "q"], "stop_at": [20, None, 10, 15]},
                         schema=claim.report.runs.STOPS_SCHEMA)
    assert claim.stop_points(runs, stops, "c", "r") == {0: (20, 0.2), 1: (30, 0.6)}  # seed 1 never fired: the end
    assert claim.stop_points(runs, stops, "c", "q") == {0: (10, 0.1), 1: (20, 0.5)}  # 15 -> the next point, 20


def test_a_rerun_replaces_runs_logged_with_other_config_groups(tmp_path):
    from alexp import tracking

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking.init_store(uri, "claim-x")
    client = tracking.client(uri)
    exp = client.get_experiment_by_name("claim-x").experiment_id
    picks = {"arm": "expert-boundary_pairs", "data": "synthetic", "acquisition": "boundary_pairs"}
    old, new, other = ({**picks, "seed": "0"}, {**picks, "stopping": "all", "seed": "1"},
                       {**picks, "arm": "expert-margin", "acquisition": "margin", "seed": "0"})
    ids = []
    for params in (old, new, other):
        run = client.create_run(exp)
        for k, v in params.items():
            client.log_param(run.info.run_id, k, v)
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    arm = claim.Arm("claim-x", "expert-boundary_pairs", ["data=synthetic", "acquisition=boundary_pairs",
                                                         "budget.initial=120", "stopping=all"], [0, 1, 2], 1.0)
    assert claim.group_choices(arm.overrides) == {"data": "synthetic", "acquisition": "boundary_pairs",
                                                  "stopping": "all"}
    assert claim.arm_done(client, arm) == ([0, 2], [ids[0]])  # seed 0's run has no stopping: stale, to be rerun
    arm.overrides.remove("stopping=all")  # without the group, both runs are current
    assert claim.arm_done(client, arm) == ([2], [])


def test_the_warm_up_caches_what_each_seeds_runs_read(tmp_path, monkeypatch, caplog):
    """prepare() builds each seed's run as alexp.runner builds it, so the reference difficulties it caches are
    the ones the runs read: a run afterwards computes none (no new cache file, a cache hit in its log)."""
    import logging

    from conftest import ready_store

    from alexp import runner

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALEXP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", ready_store(tmp_path))
    data = ["data=synthetic", "data.n_rows=3000", "features=identity"]
    expert = ["oracle=difficulty", "oracle.difficulty=reference", "oracle.kappa=0.8"]
    study = OmegaConf.create({"common": ["progress=false", "budget=small"]})
    info = claim.prepare(data, study, expert, seeds=[0, 1])
    cached = sorted((tmp_path / "cache").glob("reference-proba-*.npy"))
    assert len(cached) == 2 and info["pool"] == 2400  # one pool per seed
    from alexp.oracles import difficulty

    difficulty._REFERENCE.clear()  # as a new process would start: only the files are shared
    with caplog.at_level(logging.DEBUG, logger="alexp.oracles.difficulty"):
        runner.run(runner.compose([*data, *study.common, *expert, "acquisition=margin", "seed=1"]))
    assert sorted((tmp_path / "cache").glob("reference-proba-*.npy")) == cached
    assert any(r.getMessage().startswith("reference difficulty: read") for r in caplog.records)
