"""alexp report: statistics checked by hand on MLflow runs with known kappa histories."""

import math
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from scipy import stats

from alexp.report import aulc, censored_median, labels_to_target, load_runs, summarize, t_interval

STEPS = [10, 20, 40]
HISTORIES = {  # condition -> seed -> kappa at STEPS
    "random": {0: [0.1, 0.3, 0.5], 1: [0.2, 0.4, 0.6], 2: [0.0, 0.2, 0.4]},  # mean 0.1, 0.3, 0.5
    "entropy": {0: [0.3, 0.6, 0.7], 1: [0.5, 0.6, 0.8], 2: [0.1, 0.4, 0.45]},  # mean 0.3, 0.5333, 0.65
}


@pytest.fixture
def store(tmp_path):
    """A sqlite MLflow store with the runs above (entropy pays 2 per label) and one unfinished run."""
    from alexp.tracking import client, init_store

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp = init_store(uri, "study")
    c = client(uri)
    for acquisition, seeds in HISTORIES.items():
        for seed, kappas in seeds.items():
            run = c.create_run(exp, run_name=f"{acquisition}-{seed}")
            for k, v in {"acquisition": acquisition, "oracle": "perfect", "seed": str(seed)}.items():
                c.log_param(run.info.run_id, k, v)
            for step, kappa in zip(STEPS, kappas):
                c.log_metric(run.info.run_id, "kappa", kappa, step=step)
                c.log_metric(run.info.run_id, "cost", step * (2.0 if acquisition == "entropy" else 1.0), step=step)
            c.set_terminated(run.info.run_id)
    unfinished = c.create_run(exp, run_name="killed")  # never ended: not part of any condition
    c.log_param(unfinished.info.run_id, "acquisition", "margin")
    return uri


def test_runs_are_grouped_into_conditions_by_their_params_minus_the_seed(store):
    runs = load_runs(store, ["study"])
    assert sorted(runs["condition"].unique()) == ["acquisition=entropy", "acquisition=random"]  # oracle is constant
    assert runs.height == 18 and sorted(runs["seed"].unique()) == [0, 1, 2]


def test_means_and_t_intervals_over_seeds_at_each_label_count(store):
    curves = summarize(load_runs(store, ["study"]), None, {"acquisition": "random"})["curves"]
    row = curves.filter((pl.col("condition") == "acquisition=random") & (pl.col("n_labels") == 10)).row(0, named=True)
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)  # values 0.1, 0.2, 0.0: sd 0.1
    assert row["kappa_mean"] == pytest.approx(0.1)
    assert (row["kappa_low"], row["kappa_high"]) == pytest.approx((0.1 - half, 0.1 + half))
    assert t_interval([0.7])[0] == 0.7 and math.isnan(t_interval([0.7])[1])  # one seed: no interval


def test_aulc_on_a_linear_and_a_log_label_axis():
    assert aulc(np.array(STEPS), np.array([0.1, 0.3, 0.5])) == pytest.approx((2 + 8) / 30)  # trapezoids / range
    assert aulc(np.array(STEPS), np.array([0.1, 0.3, 0.5]), log=True) == pytest.approx(0.3)  # equal log steps
    assert aulc(np.array([0, 10, 20]), np.array([0.0, 0.2, 0.4]), log=True) == pytest.approx(0.3)  # 0 left out


def test_labels_to_target_and_its_censored_median():
    assert labels_to_target(np.array(STEPS), np.array([0.2, 0.4, 0.6]), 0.5) == (40, False)
    assert labels_to_target(np.array(STEPS), np.array([0.0, 0.2, 0.4]), 0.5) == (40, True)  # "> 40"
    assert censored_median(np.array([40, 40, 40]), np.array([False, False, True])) == (40, False)
    assert censored_median(np.array([20, 40, 40]), np.array([False, True, True])) == (40, True)


def test_condition_table_labels_to_target_cost_and_the_baselines_best_as_default_target(store):
    table = summarize(load_runs(store, ["study"]), None, {"acquisition": "random"})["conditions"]
    rows = {r["condition"]: r for r in table.iter_rows(named=True)}
    random, entropy = rows["acquisition=random"], rows["acquisition=entropy"]
    assert random["target"] == entropy["target"] == pytest.approx(0.5)  # random's best mean kappa
    assert (random["labels_to_target"], random["labels_to_target_censored"], random["seeds_reaching_target"]) \
        == (40, False, 2)  # seeds: 40, 40, > 40
    assert (entropy["labels_to_target"], entropy["seeds_reaching_target"]) == (20, 2)  # seeds: 20, 10, > 40
    assert entropy["cost_to_target"] == 40  # 2 per label
    assert entropy["aulc"] == pytest.approx(np.mean([aulc(np.array(STEPS), np.array(k))
                                                     for k in HISTORIES["entropy"].values()]))


def test_reduction_factor_on_mean_curves_and_per_seed_with_censoring(store):
    runs = load_runs(store, ["study"])
    (r,) = summarize(runs, None, {"acquisition": "random"})["reductions"].iter_rows(named=True)
    assert r["reduction"] == pytest.approx(2.0) and r["bound"] == ""  # mean curves reach 0.5 at 40 and 20
    # Per seed: 40/20 and 40/10; seed 2 never reaches 0.5 under either strategy (censored, left out).
    logs = [math.log(2), math.log(4)]
    half = stats.t.ppf(0.975, 1) * np.std(logs, ddof=1) / math.sqrt(2)
    assert (r["pairs"], r["censored"]) == (2, 1)
    assert r["per_seed_geomean"] == pytest.approx(math.sqrt(8))
    assert (r["per_seed_low"], r["per_seed_high"]) == pytest.approx((math.sqrt(8) / math.exp(half),
                                                                     math.sqrt(8) * math.exp(half)))
    (r,) = summarize(runs, 0.62, {"acquisition": "random"})["reductions"].iter_rows(named=True)
    assert r["bound"] == ">" and r["reduction"] == pytest.approx(1.0)  # random never gets there: at least 40/40
    (r,) = summarize(runs, 0.9, {"acquisition": "random"})["reductions"].iter_rows(named=True)
    assert r["bound"] == "n/a" and r["pairs"] == 0


def test_paired_comparisons_per_seed(store):
    comparisons = summarize(load_runs(store, ["study"]), None, {"acquisition": "random"})["comparisons"]
    final = comparisons.filter(pl.col("measure") == "final_kappa").row(0, named=True)
    assert (final["wins"], final["losses"]) == (3, 0) and final["mean_diff"] == pytest.approx((0.2 + 0.2 + 0.05) / 3)
    assert final["sign_p"] == pytest.approx(0.25) and final["wilcoxon_p"] == pytest.approx(0.25)


def test_alexp_report_writes_the_folder_and_logs_it_as_a_run(store, tmp_path):
    out = tmp_path / "report"
    args = [sys.executable, "-m", "alexp", "report", "--tracking-uri", store, "--experiment", "study",
            "--out", str(out)]
    for _ in range(2):  # the second report must not read the first report's run as an experiment
        proc = subprocess.run(args, capture_output=True, text=True, check=True)
    assert "| acquisition=entropy | acquisition=random | 0.500 | 2.00 | 2.83 [" in proc.stdout
    assert {p.name for p in out.iterdir()} == {"report.md", "summary.parquet", "curves.parquet",
                                               "kappa_vs_labels.png", "kappa_vs_cost.png"}
    assert pl.read_parquet(out / "summary.parquet").height == 2
    from alexp.tracking import client

    c = client(store)
    reports = c.search_runs([c.get_experiment_by_name("study").experiment_id], "tags.`alexp.kind` = 'report'")
    assert len(reports) == 2 and "report.md" in {a.path for a in c.list_artifacts(reports[0].info.run_id)}
    bad = subprocess.run([*args[:6], "--experiment", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no experiment 'nope'" in bad.stderr
