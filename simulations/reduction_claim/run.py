"""The claim study, end to end: run every arm of study.yaml with alexp, then write RESULTS.md and figures.

    python simulations/reduction_claim/run.py            # the full study (see RESULTS.md for its wall time)
    python simulations/reduction_claim/run.py --quick    # a CI-sized run of the same pipeline
    python simulations/reduction_claim/run.py --report-only   # rebuild RESULTS.md from the runs already logged

Runs go to the MLflow store in $MLFLOW_TRACKING_URI (default sqlite:///mlflow.db in the working directory), one
experiment per dataset and feature set (`claim-<dataset>-<features>`); a finished arm is not run again.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
from omegaconf import OmegaConf

from alexp import report, tracking
from alexp.report import stats, tables
from alexp.report.figures import figures

HERE = Path(__file__).resolve().parent
KEYS = ["arm", "acquisition", "oracle.kappa"]  # what names a condition of the study


def log_schedule(first: int, last: int, per_decade: int) -> list[int]:
    """Label counts from `first` to `last`, `per_decade` per factor of 10 (rounded, distinct)."""
    n = int(round(math.log10(last / first) * per_decade)) + 1
    return sorted({int(round(first * 10 ** (i / per_decade))) for i in range(n)} | {last})


def arms(study, dataset: str, max_labels: int, acquisitions: list[str], kappas: list[float]) -> dict[str, list[str]]:
    """Arm name -> alexp overrides (before data, features, seeds and the common settings)."""
    schedule = log_schedule(study.baseline.first, max_labels, study.baseline.points_per_decade)
    out = {}
    oracles = {**study.baseline.oracles, **study.baseline.extra_oracles.get(dataset, {})}
    for name, oracle in oracles.items():
        out[f"random-{name}"] = ["acquisition=random", *oracle, f"budget.schedule=[{','.join(map(str, schedule))}]"]
    for name, oracle in study.curated.oracles.items():
        out[f"curated-{name}"] = [f"acquisition={','.join(acquisitions)}", *oracle, *study.curated.budget]
    quality = [k for k in kappas if k not in (0.8, 1.0)]  # 0.8 and 1.0 are the expert and perfect arms above
    out["quality"] = [f"acquisition={study.quality.acquisition}", "oracle=target_kappa",
                      f"oracle.kappa={','.join(map(str, quality))}", *study.curated.budget]
    return out


def run_arm(experiment: str, arm: str, overrides: list[str], seeds: int, uri: str) -> None:
    if done(uri, experiment, arm):
        print(f"  {arm}: already logged, skipped")
        return
    cmd = ["alexp", "-m", *overrides, f"seed={','.join(map(str, range(seeds)))}", f"+arm={arm}",
           f"tracking.experiment_name={experiment}", "hydra/launcher=joblib"]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(f"  {arm}: {time.perf_counter() - started:.0f} s")


def warm_features(overrides: list[str]) -> None:
    """Compute cached features (sentence embeddings) once, with every core, before the arms' parallel jobs
    start: otherwise each job's first run would wait on the one computing them with its single thread."""
    from hydra import compose, initialize_config_dir

    from alexp import cli, data

    with initialize_config_dir(config_dir=cli.CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    if cfg.features.get("cache_dir") is None:
        return
    source, features = cli.build(cfg, "data"), cli.build(cfg, "features")
    table = source.load()
    cli.featurize(features, table, *data.split(table, source.test_size, 0))


def done(uri: str, experiment: str, arm: str) -> bool:
    client = tracking.client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return False
    runs = client.search_runs([exp.experiment_id], f"params.arm = '{arm}'", max_results=5000)
    return bool(runs) and all(r.info.status == "FINISHED" for r in runs)


# --- RESULTS.md ----------------------------------------------------------------------------------------------

SEED_BASELINE, SEED_ARM = "arm=random-crowd_59", "arm=curated-expert"  # the seed's own comparison


def load(uri: str, experiment: str) -> pl.DataFrame:
    """The runs of one experiment, one row per (run, step): condition, seed, kappa as `value`, AP and curated
    kappa."""
    runs = report.load_runs(uri, [experiment], keys=KEYS)
    metrics = [m for m in ("average_precision", "curated_kappa") if _has(uri, experiment, m)]
    extra = [report.load_runs(uri, [experiment], metric=m, keys=KEYS)
             .select("run_id", "n_labels", pl.col("value").alias(m)) for m in metrics]
    for frame in extra:
        runs = runs.join(frame, on=["run_id", "n_labels"], how="left")
    return runs


def _has(uri: str, experiment: str, metric: str) -> bool:
    client = tracking.client(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], f"metrics.{metric} > -2", max_results=1)
    return bool(runs)


def final_rows(runs: pl.DataFrame) -> list[dict]:
    """Each condition at its budget: kappa, AP and curated kappa with 95% bootstrap intervals over seeds."""
    last = runs.sort("n_labels").group_by("run_id", maintain_order=True).last()
    rows = []
    for (condition,), part in last.group_by("condition", maintain_order=True):
        row = {"condition": condition, "seeds": part.height, "labels": int(part["n_labels"].max())}
        for col, name in (("value", "kappa"), ("average_precision", "average_precision"),
                          ("curated_kappa", "curated_kappa")):
            if col in part.columns and part[col].drop_nulls().len():
                row[name] = stats.mean_interval(part[col].drop_nulls().drop_nans().to_numpy())
        rows.append(row)
    return rows


def ci(t) -> str:
    if t is None:
        return "–"
    return tables.interval(*t)


def section(uri: str, experiment: str, out: Path) -> tuple[list[str], dict]:
    """The RESULTS.md section of one dataset and feature set, and its headline numbers."""
    runs = load(uri, experiment)
    conditions = runs["condition"].unique(maintain_order=True).to_list()
    baselines = [c for c in conditions if "arm=random-" in c]
    pairs = [(c, b) for b in baselines for c in conditions if c not in baselines]
    rep = report.summarize(runs, pairs)
    targets = {b.split()[0].removeprefix("arm="): t for b, t in zip(rep.reductions["baseline"],
                                                                       rep.reductions["target"])}
    drawn = figures(rep.curves, out, experiment, "kappa", targets, set(baselines), prefix=f"{experiment}-")
    lines = [f"### {experiment}", "", "| condition | seeds | labels | kappa (gold) | AP (gold) | curated kappa |",
             "|---|---|---|---|---|---|"]
    finals = final_rows(runs)
    for r in finals:
        lines.append(f"| {r['condition']} | {r['seeds']} | {r['labels']} | {ci(r.get('kappa'))} | "
                     f"{ci(r.get('average_precision'))} | {ci(r.get('curated_kappa'))} |")
    lines += ["", "Reduction factors (primary estimate on the mean curves, paired bootstrap interval): the target is "
              "95% of each baseline's plateau (its mean kappa over its last 3 label counts).", "",
              "| baseline | target | baseline labels | condition | labels | reduction factor | seeds reaching |",
              "|---|---|---|---|---|---|---|"]
    for r in rep.reductions.iter_rows(named=True):
        target = "undefined" if r["problem"] else f"{r['target']:.3f}"
        lines.append(f"| {r['baseline']} | {target} | "
                     f"{tables.fmt_labels(r['baseline_labels'], r['baseline_status'], r['baseline_max_labels'])} | "
                     f"{r['condition']} | {tables.fmt_labels(r['labels'], r['status'], r['max_labels'])} | "
                     f"{tables.reduction_text(r)} | {r['seeds_reached']}/{r['seeds']} |")
    seed_rows = rep.comparisons.filter(pl.col("baseline").str.contains(SEED_BASELINE)
                                       & pl.col("measure").str.starts_with("final"))
    lines += ["", f"Paired final-kappa differences against `{SEED_BASELINE}` at its budget (per seed; Wilcoxon p "
              f"Holm-adjusted over all {rep.comparisons.height} paired comparisons of this dataset):", "",
              "| condition | seeds | wins / losses | mean difference | Wilcoxon p | Holm p |",
              "|---|---|---|---|---|---|"]
    for r in seed_rows.iter_rows(named=True):
        lines.append(f"| {r['condition']} | {r['seeds']} | {r['wins']} / {r['losses']} | "
                     f"{tables.interval(r['mean_diff'], r['diff_low'], r['diff_high'])} | {r['wilcoxon_p']:.3g} | "
                     f"{r['holm_p']:.3g} |")
    lines += ["", *[f"![{f.name}]({f.name})" for f in drawn], ""]
    headline = {"finals": finals, "reductions": {(r["baseline"], r["condition"]): r
                                                 for r in rep.reductions.iter_rows(named=True)},
                "plateau": {r["baseline"]: r for r in rep.fits.iter_rows(named=True)}}
    return lines, headline


def quality_lines(study, finals_by_experiment: dict[str, list[dict]]) -> list[str]:
    """The seed's method at each expert quality: final gold kappa and curated kappa, per experiment."""
    method = f"acquisition={study.quality.acquisition}"
    lines = ["| experiment | expert kappa | kappa (gold) | AP (gold) | curated kappa |", "|---|---|---|---|---|"]
    for experiment, finals in finals_by_experiment.items():
        rows = []
        for r in finals:
            if method not in r["condition"] or "arm=random-" in r["condition"]:
                continue
            level = "1.0 (perfect)" if "curated-perfect" in r["condition"] else \
                r["condition"].split("oracle.kappa=")[-1]
            rows.append((level, r))
        for level, r in sorted(rows, key=lambda t: t[0]):
            lines.append(f"| {experiment} | {level} | {ci(r.get('kappa'))} | {ci(r.get('average_precision'))} | "
                         f"{ci(r.get('curated_kappa'))} |")
    return lines


def quality_statements(study, finals_by_experiment: dict[str, list[dict]]) -> list[str]:
    """Plain sentences: how far expert quality moves the seed's method, and whether kappa .8 is a step."""
    method = f"acquisition={study.quality.acquisition}"
    out = []
    for experiment, finals in finals_by_experiment.items():
        levels = {1.0 if "curated-perfect" in r["condition"] else float(r["condition"].split("oracle.kappa=")[-1]): r
                  for r in finals if method in r["condition"] and "arm=random-" not in r["condition"]
                  and r.get("kappa") and ("curated-perfect" in r["condition"] or "oracle.kappa=" in r["condition"])}
        if len(levels) < 2:
            continue
        low, high = min(levels), max(levels)
        means = [r["kappa"][0] for r in levels.values()]
        below, above = [r["kappa"] for k, r in levels.items() if k < 0.8], [r["kappa"] for k, r in levels.items()
                                                                           if k >= 0.8]
        step = below and above and min(t[1] for t in above) > max(t[2] for t in below)
        curated = [levels[k].get("curated_kappa") for k in (low, high)]
        trend = (f" Curated kappa, scored against the experts' own labels, goes from {curated[0][0]:.3f} to "
                 f"{curated[1][0]:.3f}." if all(curated) else "")
        out.append(f"- **{experiment}:** gold kappa {levels[low]['kappa'][0]:.3f} with kappa-{low:g} experts and "
                   f"{levels[high]['kappa'][0]:.3f} with {'perfect' if high == 1 else f'kappa-{high:g}'} ones "
                   f"(means {min(means):.3f} to {max(means):.3f} over {len(levels)} levels); "
                   + ("every level from .8 up beats every level below it beyond the 95% intervals." if step else
                      "no step at .8: the intervals of the levels below and from .8 up overlap.") + trend)
    return out


def capacity_rows(headlines: dict[str, dict]) -> list[tuple]:
    """Per experiment (dataset x features): the crowd baseline's plateau, the best expert curated arm, its final
    kappa interval and its reduction against the crowd."""
    rows = []
    for experiment, headline in headlines.items():
        finals = {r["condition"]: r for r in headline["finals"]}
        pairs = [(key, r) for key, r in headline["reductions"].items() if SEED_BASELINE in key[0]
                 and SEED_ARM in key[1]]
        if pairs:
            (b, c), r = max(pairs, key=lambda kv: finals[kv[0][1]]["kappa"][0])
            rows.append((experiment, headline["plateau"][b]["plateau"], c, finals[c]["kappa"], r))
    return rows


def capacity_lines(headlines: dict[str, dict]) -> list[str]:
    rows = capacity_rows(headlines)
    lines = ["| experiment | crowd baseline's plateau | best curated arm | its kappa at budget | reduction factor |",
             "|---|---|---|---|---|"]
    lines += [f"| {e} | {plateau:.3f} | {c} | {ci(k)} | {tables.reduction_text(r)} |" for e, plateau, c, k, r in rows]
    by_dataset: dict[str, list[tuple]] = {}
    for row in rows:
        by_dataset.setdefault(row[0].rsplit("-", 1)[0], []).append(row)
    statements = [f"- **{dataset}:** {' instead of '.join(e.rsplit('-', 1)[1] for e, *_ in reversed(rs))} moves the "
                  f"crowd baseline's plateau from {rs[0][1]:.3f} to {rs[-1][1]:.3f} and the best expert arm's kappa "
                  f"from {rs[0][3][0]:.3f} to {rs[-1][3][0]:.3f} (reduction factor {tables.reduction_text(rs[0][4])} "
                  f"to {tables.reduction_text(rs[-1][4])})." for dataset, rs in by_dataset.items() if len(rs) > 1]
    return [*lines, *([""] + statements if statements else [])]


def verdict(experiment: str, headline: dict, method: str) -> str:
    """A plain sentence on the seed's comparison: its method with expert labels (kappa .8) against random crowd
    labels (kappa .59), by the reduction factor at 95% of the crowd's plateau and by threshold-free AP."""
    finals = {r["condition"]: r for r in headline["finals"]}
    pairs = [key for key in headline["reductions"] if SEED_BASELINE in key[0] and SEED_ARM in key[1]
             and f"acquisition={method}" in key[1]]
    if not pairs:
        return f"- **{experiment}:** the seed's arms are not both in this run."
    b, c = pairs[0]
    r = headline["reductions"][(b, c)]
    plateau = headline["plateau"][b]
    if r["problem"]:
        return f"- **{experiment}:** no reduction factor: {r['problem']}."
    base_need = tables.fmt_labels(r["baseline_labels"], r["baseline_status"], r["baseline_max_labels"])
    if r["status"] == stats.RIGHT:
        reach = (f"does not reach it within {r['max_labels']:,.0f} labels ({r['seeds_reached']} of {r['seeds']} "
                 f"seeds do): reduction {tables.reduction_text(r)}")
    else:
        reach = (f"reaches it with {tables.fmt_labels(r['labels'], r['status'])} labels: reduction "
                 f"{tables.reduction_text(r)} ({r['seeds_reached']} of {r['seeds']} seeds reach it)")
    ap_b, ap_c = finals[b].get("average_precision"), finals[c].get("average_precision")
    return (f"- **{experiment}:** random crowd labels level off at kappa {plateau['plateau']:.3f} (mean of their last "
            f"3 label counts, up to {r['baseline_max_labels']:,.0f}); the target, 95% of it ({r['target']:.3f}), "
            f"takes them {base_need} labels. {method} with expert labels {reach}, ending at kappa "
            f"{ci(finals[c]['kappa'])}. Threshold-free, AP is {ci(ap_b)} for the baseline at {finals[b]['labels']:,} "
            f"labels against {ci(ap_c)} for the curated arm at {finals[c]['labels']}.")


def write_results(study, uri: str, experiments: list[str], command: str, wall: float, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    body, verdicts, headlines = [], [], {}
    for experiment in experiments:
        lines, headline = section(uri, experiment, out)
        body += lines
        headlines[experiment] = headline
        verdicts.append(verdict(experiment, headline, study.quality.acquisition))
    text = ["# The claim study: results", "",
            "Regenerated by the command below from the MLflow runs; every number is a mean over seeds with a 95% "
            "bootstrap interval over seeds (alexp report's statistics). "
            "Arms of one dataset share the split, features, model (logistic regression with "
            "its decision threshold tuned for kappa on out-of-fold predictions of the arm's own labels) and gold "
            "test set; they differ only in selection, label source and budget. "
            "`curated kappa` is agreement with the expert labels held out of training (20%), as the seed scored.",
            "", f"- command: `{command}`", f"- wall time: {wall / 60:.1f} min",
            f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            f"- seeds per condition: {study.seeds}", "", "## Does the claim hold?", "", *verdicts, "",
            "## Label quality", "", f"The seed's method ({study.quality.acquisition}) with experts of each quality "
            "(target kappa against the truth), at the curated budget.", "",
            *quality_lines(study, {e: h["finals"] for e, h in headlines.items()}), "",
            *quality_statements(study, {e: h["finals"] for e, h in headlines.items()}), "",
            "## Model capacity", "", "The same arms with weaker and stronger features (tf-idf vs MiniLM embeddings, "
            "both with logistic regression): the crowd (kappa .59) baseline's plateau and the best expert "
            "(kappa .8) curated arm.", "", *capacity_lines(headlines), "",
            "## Results by dataset and features", "", *body]
    path = out / "RESULTS.md"
    path.write_text("\n".join(text) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI-sized: fewer seeds, a small synthetic pool")
    p.add_argument("--report-only", action="store_true", help="only rebuild RESULTS.md from logged runs")
    p.add_argument("--out", default=str(HERE), help="folder of RESULTS.md and figures (default: this folder)")
    args = p.parse_args(argv)
    study = OmegaConf.load(HERE / "study.yaml")
    uri = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    datasets, max_labels = study.datasets, study.baseline.max_labels
    acquisitions, kappas = list(study.curated.acquisitions), list(study.quality.kappas)
    if args.quick:
        study.seeds, datasets, max_labels = study.quick.seeds, study.quick.datasets, study.quick.max_labels
        acquisitions, kappas = list(study.quick.acquisitions), list(study.quick.kappas)
    started, experiments = time.perf_counter(), []
    for dataset, spec in datasets.items():
        for features, feature_overrides in spec.features.items():
            experiment = f"claim-{dataset}-{features}{'-quick' if args.quick else ''}"
            experiments.append(experiment)
            if args.report_only:
                continue
            print(f"{experiment}:")
            tracking.init_store(uri, experiment)
            started_features = time.perf_counter()
            warm_features([*spec.data, *feature_overrides, *study.common])
            print(f"  features: {time.perf_counter() - started_features:.0f} s")
            for arm, overrides in arms(study, dataset, max_labels, acquisitions, kappas).items():
                run_arm(experiment, arm, [*spec.data, *feature_overrides, *study.common, *overrides], study.seeds,
                        uri)
    command = "python simulations/reduction_claim/run.py" + (" --quick" if args.quick else "")
    client = tracking.client(uri)
    ids = [client.get_experiment_by_name(e).experiment_id for e in experiments]
    if args.report_only:  # the wall time of the run that logged these runs
        wall = float(client.get_experiment(ids[0]).tags.get("alexp.study_seconds", "nan"))
    else:
        wall = time.perf_counter() - started
        for experiment_id in ids:
            client.set_experiment_tag(experiment_id, "alexp.study_seconds", str(round(wall)))
    path = write_results(study, uri, experiments, command, wall, Path(args.out))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
