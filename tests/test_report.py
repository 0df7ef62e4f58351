"""alexp report: statistics checked on histories with a known answer, then the report end to end on MLflow runs."""

import math
import sys

import numpy as np
import polars as pl
import pytest
from conftest import ready_store

from alexp.report import Settings, load_runs, stats, summarize
from alexp.report.tables import baseline_pairs

STEPS = [10, 20, 40]
HISTORIES = {  # condition -> seed -> kappa at STEPS
    "random": {0: [0.1, 0.3, 0.5], 1: [0.2, 0.4, 0.6], 2: [0.0, 0.2, 0.4]},  # mean 0.1, 0.3, 0.5
    "entropy": {0: [0.3, 0.6, 0.7], 1: [0.5, 0.6, 0.8], 2: [0.1, 0.4, 0.45]},  # mean 0.3, 0.5333, 0.65
}


def make_store(tmp_path, histories, steps=STEPS, extra=None):
    """A sqlite MLflow store with runs of the given kappa histories (entropy pays 2 per label), one unfinished.
    Each run is logged in one batch (a commit per point made this the slowest part of these tests)."""
    from mlflow.entities import Metric, Param

    from alexp.tracking import client, init_store

    uri = ready_store(tmp_path)
    exp = init_store(uri, "study")
    c = client(uri)
    for acquisition, seeds in histories.items():
        for seed, kappas in seeds.items():
            run = c.create_run(exp, run_name=f"{acquisition}-{seed}")
            params = [Param("acquisition", acquisition), Param("oracle", "perfect"), Param("seed", str(seed))]
            metrics = []
            for step, kappa in zip(steps, kappas):
                values = {"kappa": kappa, "cost": step * (2.0 if acquisition == "entropy" else 1.0),
                          **(extra or {}).get(acquisition, {})}
                metrics += [Metric(name, value, 0, step) for name, value in values.items()]
            c.log_batch(run.info.run_id, metrics=metrics, params=params)
            c.set_terminated(run.info.run_id)
    unfinished = c.create_run(exp, run_name="killed")  # never ended: not part of any condition
    c.log_param(unfinished.info.run_id, "acquisition", "margin")
    return uri


@pytest.fixture
def store(tmp_path):
    return make_store(tmp_path, HISTORIES)


def report_of(uri, **settings):
    runs = load_runs(uri, ["study"], metric=settings.get("metric", "kappa"))
    pairs = baseline_pairs(runs["condition"].unique().to_list(), {"acquisition": "random"})
    return summarize(runs, pairs, Settings(**settings))


# --- statistics on arrays ------------------------------------------------------------------------------------

def test_labels_to_target_is_interpolated_in_log_labels():
    x = np.array(STEPS, dtype=float)
    assert stats.labels_to_target(x, np.array([0.2, 0.4, 0.6]), 0.5) == (pytest.approx(math.sqrt(20 * 40)), 0)
    assert stats.labels_to_target(x, np.array([0.2, 0.4, 0.6]), 0.4) == (pytest.approx(20), 0)  # on a point
    assert stats.labels_to_target(x, np.array([0.2, 0.4, 0.6]), 0.25) == (pytest.approx(10 * 2 ** 0.25), 0)
    # The first crossing counts, even if the curve dips below the target again.
    assert stats.labels_to_target(x, np.array([0.1, 0.6, 0.4]), 0.5) == (pytest.approx(10 * 2 ** 0.8), 0)


def test_labels_to_target_is_censored_not_dropped():
    x = np.array(STEPS, dtype=float)
    assert stats.labels_to_target(x, np.array([0.0, 0.2, 0.4]), 0.5) == (math.inf, stats.RIGHT)  # "> 40"
    assert stats.labels_to_target(x, np.array([0.7, 0.8, 0.9]), 0.5) == (10, stats.LEFT)  # "<= 10"


def test_the_target_is_a_share_of_the_baselines_plateau_not_its_best_noisy_point():
    labels = np.array([100, 200, 400, 800, 1600], dtype=float)
    base = np.array([[0.2, 0.4, 0.6, 0.62, 0.58], [0.2, 0.4, 0.6, 0.58, 0.62]])  # plateau 0.6, best mean 0.6
    cond = np.array([[0.2, 0.57, 0.6, 0.6, 0.6]] * 2)
    r = stats.reduction(labels, base, labels, cond)
    assert r.target == pytest.approx(0.95 * 0.6)
    # Baseline crosses 0.57 between 200 (0.4) and 400 (0.6) at 85%; the condition exactly at 200.
    assert r.base_labels == pytest.approx(200 * 2 ** 0.85) and r.labels == pytest.approx(200)
    assert r.factor == pytest.approx(2 ** 0.85) and r.bound == ""
    assert math.isnan(r.low) and math.isnan(r.high)  # 2 seeds: no interval


def test_identical_seeds_give_a_point_interval_and_the_exact_factor():
    labels = np.array([100, 1000, 10000], dtype=float)
    base = np.array([[0.0, 0.5, 0.8]] * 4)
    cond = np.array([[0.0, 0.8, 0.8]] * 4)
    r = stats.reduction(labels, base, labels, cond, target=0.5)
    assert (r.base_labels, r.labels) == (pytest.approx(1000), pytest.approx(100 * 10 ** (5 / 8)))
    assert r.low == pytest.approx(r.factor) and r.high == pytest.approx(r.factor)
    assert (r.seeds_reached, r.base_seeds_reached) == (4, 4)


def test_a_condition_that_never_reaches_the_target_gets_an_upper_bound_and_an_interval_down_to_zero():
    labels, short = np.array([100, 1000, 10000], dtype=float), np.array([100, 200, 300], dtype=float)
    rng = np.random.default_rng(0)
    base = np.array([0.0, 0.5, 0.8]) + rng.normal(0, 0.01, (6, 3))
    cond = np.array([0.0, 0.3, 0.4]) + rng.normal(0, 0.01, (6, 3))
    r = stats.reduction(labels, base, short, cond)
    assert r.bound == "<" and r.factor == pytest.approx(r.base_labels / 300)
    assert r.low == 0 and r.high == pytest.approx(r.factor, rel=0.2) and r.seeds_reached == 0



def test_an_undefined_target_gives_no_factor():
    labels = np.array([100, 200, 400], dtype=float)
    flat = np.zeros((5, 3))
    r = stats.reduction(labels, flat, labels, np.full((5, 3), 0.9))
    assert r.problem and "never rises above chance" in r.problem and math.isnan(r.factor) and not r.defined
    assert stats.target_problem("average_precision", np.array([0.3, 0.31, 0.32])) is not None  # never rises
    assert stats.target_problem("average_precision", np.array([0.3, 0.5, 0.6])) is None


def test_intervals_stay_inside_the_metrics_range_and_need_three_seeds():
    mean, low, high = stats.mean_interval([0.99, 1.0, 0.97, 1.0, 1.0])
    assert 0.97 <= low <= mean <= high <= 1.0
    assert stats.mean_interval([0.5, 0.7])[1:] == (pytest.approx(math.nan, nan_ok=True),) * 2
    assert stats.mean_interval([0.4, 0.4, 0.4]) == pytest.approx((0.4, 0.4, 0.4))


def test_paired_differences_wilcoxon_and_holm():
    p = stats.paired([0.2, 0.2, 0.05])
    assert (p["wins"], p["losses"], p["seeds"]) == (3, 0, 3) and p["mean_diff"] == pytest.approx(0.15)
    assert p["wilcoxon_p"] == pytest.approx(0.25)  # exact: all 3 positive, 2 / 2^3
    assert 0.05 <= p["diff_low"] <= p["diff_high"] <= 0.2
    adjusted = stats.holm([0.01, 0.04, 0.03, math.nan])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted[3])


def test_aulc_on_a_linear_a_log_and_a_common_label_axis():
    x = np.array(STEPS, dtype=float)
    assert stats.aulc(x, np.array([0.1, 0.3, 0.5])) == pytest.approx((2 + 8) / 30)
    assert stats.aulc(x, np.array([0.1, 0.3, 0.5]), log=True) == pytest.approx(0.3)
    assert stats.aulc(x, np.array([0.1, 0.3, 0.5]), log=True, between=(10, 20)) == pytest.approx(0.2)


def test_the_power_law_fit_recovers_a_known_asymptote():
    labels = 100 * 10 ** (np.arange(10) / 3)
    fit = stats.power_law_fit(labels, 0.8 - 0.6 * (labels / 100) ** -0.5)
    assert fit["a"] == pytest.approx(0.8, abs=1e-4) and fit["r2"] > 0.9999


@pytest.mark.slow
def test_calibration_by_simulation_covers_the_true_reduction():
    """Studies with known learning curves: 95% intervals cover the truth in 90-99% of 200 studies at 5 and at 20
    seeds, and the point estimate's median relative error is at most 20% at 20 seeds."""
    sys.path.insert(0, str(__import__("conftest").ROOT / "simulations" / "report_calibration"))
    from run import calibrate

    for seeds in (5, 20):
        result = calibrate(200, seeds)
        assert 0.90 <= result["coverage"] <= 0.99, result
        assert result["censored_truths"] >= 20, result  # censored cases are part of it
    assert result["median_rel_error"] <= 0.20, result


# --- the report on MLflow runs -------------------------------------------------------------------------------

def test_runs_are_grouped_into_conditions_by_their_params_minus_the_seed(store):
    runs = load_runs(store, ["study"])
    assert sorted(runs["condition"].unique()) == ["acquisition=entropy", "acquisition=random"]  # oracle is constant
    assert runs.height == 18 and sorted(runs["seed"].unique()) == [0, 1, 2]


def test_curves_condition_table_and_reduction_on_known_histories(store):
    report = report_of(store)
    row = report.curves.filter((pl.col("condition") == "acquisition=random") & (pl.col("n_labels") == 10)).row(
        0, named=True)
    assert row["mean"] == pytest.approx(0.1) and 0.0 <= row["low"] <= 0.1 <= row["high"] <= 0.2
    (r,) = report.reductions.iter_rows(named=True)
    target = 0.95 * np.mean([0.1, 0.3, 0.5])  # random's plateau: its mean curve's last 3 points
    assert r["target"] == pytest.approx(target)
    assert r["baseline_labels"] == pytest.approx(10 * 2 ** ((target - 0.1) / 0.2))
    # entropy's mean curve starts at 0.3, above the target: reached at its first point or before (<= 10), so
    # the factor is a lower bound.
    assert (r["labels"], r["status"], r["bound"]) == (10, stats.LEFT, ">=")
    assert r["reduction"] == pytest.approx(r["baseline_labels"] / 10)
    rows = {r["condition"]: r for r in report.conditions.iter_rows(named=True)}
    assert rows["acquisition=entropy"]["target"] == pytest.approx(target)
    assert rows["acquisition=random"]["seeds_reaching_target"] == 3
    assert "**acquisition=entropy** reaches the target" in report.verdict[0] and "<= 10 labels" in report.verdict[0]
    assert "fewer labels, reduction >= " in report.verdict[0]


def test_paired_comparisons_are_holm_adjusted(store):
    comparisons = report_of(store).comparisons
    final = comparisons.filter(pl.col("measure").str.starts_with("final")).row(0, named=True)
    assert (final["wins"], final["losses"]) == (3, 0) and final["mean_diff"] == pytest.approx(0.15)
    assert final["wilcoxon_p"] == pytest.approx(0.25) and final["holm_p"] == pytest.approx(0.5)  # 2 tests


def test_a_baseline_stuck_at_kappa_zero_gets_no_reduction_and_its_cause_is_named(tmp_path):
    stuck = {"random": {s: [0.0, 0.0, 0.0] for s in range(3)}, "margin": {s: [0.2, 0.6, 0.9] for s in range(3)}}
    uri = make_store(tmp_path, stuck, extra={"random": {"recall": 0.0, "average_precision": 0.93}})
    report = report_of(uri)
    (r,) = report.reductions.iter_rows(named=True)
    assert r["problem"] and math.isnan(r["reduction"]) and r["bound"] == "n/a"
    from alexp.report.tables import markdown

    text = markdown(report, "t", [])
    assert "1.00" not in text and "no reduction factor" in text
    assert "a fixed 0.5 decision threshold on a rare class" in text and "model=logreg_tuned" in text
    assert "average precision 0.93" in text


def test_a_report_of_any_logged_metric(tmp_path):
    uri = make_store(tmp_path, HISTORIES, extra={"random": {"f1": 0.5}, "entropy": {"f1": 0.7}})
    report = report_of(uri, metric="f1")
    assert report.conditions.filter(pl.col("condition") == "acquisition=entropy")["final"][0] == pytest.approx(0.7)
    assert report.reductions["problem"][0] is not None  # a flat f1 baseline never rises above its start


def test_alexp_report_writes_the_folder_and_logs_it_as_a_run(alexp, store, tmp_path):
    out = tmp_path / "report"
    args = ["report", "--tracking-uri", store, "--experiment", "study", "--out", str(out)]
    for _ in range(2):  # the second report must not read the first report's run as an experiment
        proc = alexp(*args, cwd=tmp_path)
    assert "## Verdict" in proc.stdout and "**acquisition=entropy** reaches the target" in proc.stdout
    assert {p.name for p in out.iterdir()} == {"report.md", "summary.parquet", "curves.parquet", "reductions.parquet",
                                               "comparisons.parquet", "kappa_vs_labels.png", "kappa_vs_cost.png"}
    summary = pl.read_parquet(out / "summary.parquet")
    assert summary.height == 2 and (summary["final_high"] <= 1).all() and (summary["final_low"] >= -1).all()
    from alexp.tracking import client

    c = client(store)
    assert not c.search_runs([c.get_experiment_by_name("study").experiment_id], "tags.`alexp.kind` = 'report'")
    reports = c.search_runs([c.get_experiment_by_name("study-reports").experiment_id], "")  # out of the curves
    assert len(reports) == 2 and "report.md" in {a.path for a in c.list_artifacts(reports[0].info.run_id)}
    bad = alexp(*args[:3], "--experiment", "nope", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "no experiment 'nope'" in bad.stderr
    bad = alexp(*args, "--metric", "kapa", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "no run logged the metric 'kapa'" in bad.stderr and "kappa" in bad.stderr


def test_reduction_texts_say_bounds_censoring_and_missing_intervals():
    from alexp.report.tables import reduction_text

    row = {"problem": None, "bound": "", "reduction": 14.8, "reduction_low": 9.1, "reduction_high": math.inf,
           "seeds": 20}
    assert reduction_text(row) == "14.80 [9.10, ∞]"
    assert reduction_text({**row, "bound": "<", "reduction": 3.2, "reduction_low": 0.0, "reduction_high": 4.1}) \
        == "< 3.20 [0, 4.10]"
    assert reduction_text({**row, "reduction_low": math.nan, "seeds": 2}) == "14.80 (interval n/a: 2 seeds)"
    assert reduction_text({**row, "problem": "flat"}) == "undefined"


def test_two_seeds_give_no_interval_anywhere(tmp_path):
    two = {c: {s: k for s, k in seeds.items() if s < 2} for c, seeds in HISTORIES.items()}
    report = report_of(make_store(tmp_path, two))
    for frame, columns in ((report.curves, ["low", "high"]), (report.conditions, ["final_low", "aulc_log_high"]),
                           (report.reductions, ["reduction_low", "reduction_high"]),
                           (report.comparisons, ["diff_low", "diff_high"])):
        assert frame.select(pl.col(columns).is_nan().all()).row(0) == (True, True), frame
    from alexp.report.tables import markdown

    text = markdown(report, "t", [])
    assert "interval n/a: 2 seeds" in text and "[" not in text.split("## Conditions")[1].split("## Reduction")[0]


def test_figures_draw_identical_curves_once_and_cost_only_when_it_differs_from_labels(tmp_path):
    from alexp.report.figures import figures, merge_identical

    rows = [(c, n, 3, k, k - 0.1, k + 0.1, float(n)) for c, ks in (("entropy", [0.2, 0.5]), ("margin", [0.2, 0.5]),
                                                                 ("random", [0.1, 0.3])) for n, k in zip((10, 20), ks)]
    curves = pl.DataFrame(rows, schema=["condition", "n_labels", "seeds", "mean", "low", "high", "cost_mean"],
                          orient="row")
    assert [label for label, _ in merge_identical(curves, "n_labels")] == [
        "entropy = margin (identical curves)", "random"]
    assert [p.name for p in figures(curves, tmp_path, "t")] == ["kappa_vs_labels.png"]  # cost = labels
    paid = curves.with_columns(pl.col("cost_mean") * 3)
    assert [p.name for p in figures(paid, tmp_path, "t")] == ["kappa_vs_labels.png", "kappa_vs_cost.png"]


def test_an_absolute_target_the_baseline_never_reaches_gives_a_lower_bound():
    labels = np.array([100, 200, 400], dtype=float)
    base = np.array([[0.1, 0.2, 0.3]] * 3) + np.array([[0.0], [0.01], [0.02]])
    cond = np.array([[0.1, 0.5, 0.6]] * 3) + np.array([[0.0], [0.01], [0.02]])
    r = stats.reduction(labels, base, labels, cond, target=0.4)
    assert r.bound == ">" and r.base_status == stats.RIGHT and r.factor == pytest.approx(400 / r.labels)
    assert r.high == math.inf and r.low == pytest.approx(r.factor, rel=0.1) and r.base_seeds_reached == 0


def test_a_sweep_dir_matches_with_or_without_a_trailing_slash_relative_or_absolute(tmp_path, monkeypatch):
    from alexp.report.runs import _same_folder

    monkeypatch.chdir(tmp_path)
    tag = str(tmp_path / "multirun" / "2026-12-02" / "01-00-00")  # alexp tags the absolute folder
    for given in ("multirun/2026-12-02/01-00-00", "multirun/2026-12-02/01-00-00/", tag, tag + "/",
                  "./multirun/2026-12-02/01-00-00"):
        assert _same_folder(tag, given), given
    assert _same_folder("multirun/2026-12-02/01-00-00", "multirun/2026-12-02/01-00-00/")  # older relative tags
    assert not _same_folder(tag, "multirun/2026-12-02/01-00-01")
    assert not _same_folder(None, "multirun")


def test_a_point_logged_twice_and_a_rerun_seed_count_once(store, tmp_path):
    """Stores written before alexp kept one run per config can hold both: the curve keeps one point per label
    count and one run per condition and seed."""
    from alexp.tracking import client

    c = client(store)
    exp = c.get_experiment_by_name("study").experiment_id
    (run,) = c.search_runs([exp], "params.acquisition = 'random' and params.seed = '0'")
    c.log_metric(run.info.run_id, "kappa", 0.1, step=10)  # the same point again, as a killed attempt left it
    rerun = c.create_run(exp, run_name="random-0 again")
    for k, v in {"acquisition": "random", "oracle": "perfect", "seed": "0"}.items():
        c.log_param(rerun.info.run_id, k, v)
    for step, kappa in zip(STEPS, HISTORIES["random"][0]):
        c.log_metric(rerun.info.run_id, "kappa", kappa, step=step)
    c.set_terminated(rerun.info.run_id)
    runs = load_runs(store, ["study"])
    counts = runs.group_by("condition", "seed", "n_labels").len()
    assert counts["len"].max() == 1 and runs.height == 2 * 3 * 3


def test_a_baseline_that_matches_no_condition_is_refused(store, tmp_path, capsys):
    from alexp import report

    with pytest.raises(SystemExit) as e:
        report.main(["--tracking-uri", store, "--experiment", "study", "--baseline", "acquisition=randon",
                     "--no-log", "--out", str(tmp_path / "r")])
    assert e.value.code == 2
    assert "--baseline acquisition=randon matches no condition" in capsys.readouterr().err


def test_the_stopping_table_by_hand(tmp_path):
    """entropy's seeds: a rule `sp` fires at 20 labels in seeds 0 and 1 and never in seed 2; `budget` at 40."""
    from alexp.report.runs import load_stops
    from alexp.tracking import client

    uri = make_store(tmp_path, HISTORIES)
    c = client(uri)
    for run in c.search_runs([c.get_experiment_by_name("study").experiment_id], "params.acquisition = 'entropy'"):
        seed = int(run.data.params["seed"])
        for step in STEPS:
            c.log_metric(run.info.run_id, "stop_sp", float(seed < 2 and step >= 20), step=step)
            c.log_metric(run.info.run_id, "stop_sp_value", 0.5, step=step)
            c.log_metric(run.info.run_id, "stop_budget", float(step >= 40), step=step)
    runs = load_runs(uri, ["study"])
    stops = load_stops(uri, runs)
    assert sorted(stops.filter(pl.col("rule") == "sp")["stop_at"].to_list(), key=str) == [20, 20, None]
    pairs = baseline_pairs(runs["condition"].unique().to_list(), {"acquisition": "random"})
    report = summarize(runs, pairs, Settings(points=1), stops)
    rows = {r["rule"]: r for r in report.stopping.iter_rows(named=True)}
    sp, budget = rows["sp"], rows["budget"]
    # sp stops at 20, 20 and (never fired) 40: median 20, percentiles 20 and 40 (seeds' own values); kappa there
    # 0.6, 0.6, 0.45
    assert (sp["labels_at_stop"], sp["labels_p10"], sp["labels_p90"], sp["fired"]) == (20, 20, 40, 2)
    assert sp["at_stop"] == pytest.approx(0.55) and sp["plateau"] == pytest.approx(0.65)
    assert sp["loss"] == pytest.approx(0.10)
    # target 0.95 x random's plateau 0.5 = 0.475: seed 2 never reaches it (stopped short); 0 and 1 reach it by 20
    assert sp["target"] == pytest.approx(0.475) and sp["stopped_short"] == 1
    assert (budget["labels_at_stop"], budget["loss"], budget["stopped_short"]) == (40, pytest.approx(0), 1)
    assert "**budget** stops earliest: median 40 labels of 40" in report.stopping_lines[0]
    looser = summarize(runs, pairs, Settings(points=1, stop_loss=0.2), stops)
    assert "**sp** stops earliest: median 20 labels of 40 (fired in 2 of 3 seeds)" in looser.stopping_lines[0]
    from alexp.report import write

    write(report, tmp_path / "out", "study")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Stopping rules" in text and "| acquisition=entropy | sp | 20 [20–40] of 40 | 2 / 3 | 0.550 |" in text
    assert pl.read_parquet(tmp_path / "out" / "stopping.parquet").height == 2
