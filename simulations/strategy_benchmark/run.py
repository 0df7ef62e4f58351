"""The strategy benchmark: which selection strategy to use, over many tasks, against strong baselines and a bound.

    python simulations/strategy_benchmark/run.py                # the benchmark (RESULTS.md gives its wall time)
    python simulations/strategy_benchmark/run.py --quick        # a CI-sized run of the same pipeline
    python simulations/strategy_benchmark/run.py --report-only  # rebuild RESULTS.md from the runs already logged

Every condition (a strategy with a model) runs on every task (a `+experiment=task_*` preset) for --seeds seeds;
then, on each task where the two best conditions (the bound aside) are not told apart by their paired interval
over those seeds, for --more-seeds seeds. Runs go to the MLflow store in $MLFLOW_TRACKING_URI (default
sqlite:///mlflow.db in the working directory), one experiment per task (`bench-<task>`); a run already logged as
finished is not run again (a second invocation skips everything logged), and a run cut short resumes from its
checkpoint. Two worker processes run the jobs, one core each (--parallel). The ranking is `alexp report --tasks`'s.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
BUDGET = ["budget.initial=20", "budget.batch_size=20", "budget.rounds=10"]  # 20 .. 220 labels, 11 points
TASKS = ["cohen_atypical_antipsychotics", "cohen_calcium_channel_blockers", "cohen_proton_pump_inhibitors",
         "cohen_beta_blockers", "cohen_ace_inhibitors", "cohen_oral_hypoglycemics", "clickbait", "clickbait_rare",
         "davidson", "synthetic_easy", "synthetic_hard", "synthetic_noisy"]
DEFAULT_MODEL = "logreg_tuned"  # the model of a condition that names none (conf/config.yaml's default)
CONDITIONS = {  # name: overrides
    "random": ["acquisition=random"],
    "margin": ["acquisition=margin"],
    "boundary_pairs": ["acquisition=boundary_pairs"],  # the seed's method
    "coreset": ["acquisition=coreset"],  # diversity
    "cluster_margin": ["acquisition=cluster_margin"],  # hybrid: uncertainty within diverse clusters
    "badge": ["acquisition=badge"],  # hybrid: gradient embeddings, k-means++
    "random+retuned": ["acquisition=random", "model=logreg_retuned"],  # strong baselines
    "margin+retuned": ["acquisition=margin", "model=logreg_retuned"],
    "random+self_trained": ["acquisition=random", "model=self_trained"],
    "greedy_oracle": ["acquisition=greedy_oracle"],  # the upper bound (cheats)
}
COST = {"greedy_oracle": 4.0, "cluster_margin": 2.0, "boundary_pairs": 1.5, "margin+retuned": 1.5,
        "random+retuned": 1.2, "random+self_trained": 1.2}  # rough relative run times: longest jobs first
QUICK_TASKS = ["synthetic_easy", "synthetic_hard", "cohen_oral_hypoglycemics"]
QUICK_CONDITIONS = ["random", "margin", "random+retuned", "random+self_trained", "greedy_oracle"]


def experiment(task: str) -> str:
    return f"bench-{task}"


def overrides(task: str, condition: str, budget: list[str], seed: int) -> list[str]:
    return [f"+experiment=task_{task}", *CONDITIONS[condition], *budget, f"seed={seed}",
            f"tracking.experiment_name={experiment(task)}", "progress=false", "threads=1"]


def finished_keys(uri: str, tasks: list[str]) -> set[str]:
    """The run keys of every finished run in the tasks' experiments (one query per task)."""
    from alexp import tracking

    if not tracking.store_exists(uri):
        return set()
    client = tracking.client(uri)
    keys = set()
    for task in tasks:
        exp = client.get_experiment_by_name(experiment(task))
        if exp is not None:
            keys |= {r.data.tags.get("alexp.run_key") for r in client.search_runs(
                [exp.experiment_id], "attributes.status = 'FINISHED'", max_results=50_000)}
    return keys


def missing(uri: str, tasks: list[str], conditions: list[str], budget: list[str], seeds: list[int]
            ) -> list[tuple[str, str, list[int]]]:
    """(task, condition, seeds not yet logged as finished) for every pair with work left, longest first."""
    from omegaconf import OmegaConf

    from alexp.config import run_key
    from alexp.runner import compose

    done = finished_keys(uri, tasks)
    jobs = []
    for task in tasks:
        for condition in conditions:
            resolved = OmegaConf.to_container(compose(overrides(task, condition, budget, seeds[0])), resolve=True)
            left = [s for s in seeds if run_key({**resolved, "seed": s}) not in done]  # the seed names no path
            if left:
                jobs.append((task, condition, left))
    return sorted(jobs, key=lambda j: -COST.get(j[1], 1.0) * len(j[2]))


def work(task: str, condition: str, budget: list[str], seeds: list[int], uri: str) -> tuple[int, float]:
    """One worker's job: the seeds of one condition on one task, in this process (alexp.runner). Returns the
    runs done and the worker's peak memory so far (MB)."""
    os.environ["MLFLOW_TRACKING_URI"] = uri
    from alexp.runner import compose, run

    for seed in seeds:
        run(compose(overrides(task, condition, budget, seed)))
    return len(seeds), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_all(uri: str, jobs, budget: list[str], parallel: int) -> float:
    """Run the jobs on `parallel` worker processes; the largest worker's peak memory (MB, 0 if none ran)."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    total = sum(len(s) for _, _, s in jobs)
    if not total:
        print("every run is logged already: nothing to run")
        return 0.0
    print(f"{total} runs in {len(jobs)} jobs on {parallel} worker processes", flush=True)
    peak = 0.0
    with tqdm(total=total, unit="run", desc="benchmark") as bar:
        for done, mb in Parallel(n_jobs=parallel, return_as="generator_unordered")(
                delayed(work)(t, c, budget, s, uri) for t, c, s in jobs):
            bar.update(done)
            peak = max(peak, mb)
    return peak


def record(uri: str, first_task: str, seconds: float, peak_mb: float) -> dict:
    """Add this invocation's wall time to the benchmark's (experiment tags of its first task) and keep the largest
    peak memory; returns the totals: seconds, peak_mb, invocations."""
    from alexp import tracking

    client = tracking.client(uri)
    exp = client.get_experiment_by_name(experiment(first_task))
    tags = exp.tags
    totals = {"seconds": float(tags.get("alexp.bench_seconds", 0)) + seconds,
              "peak_mb": max(float(tags.get("alexp.bench_peak_mb", 0)), peak_mb),
              "invocations": int(tags.get("alexp.bench_invocations", 0)) + 1}
    for key, value in totals.items():
        client.set_experiment_tag(exp.experiment_id, f"alexp.bench_{key}", str(value))
    return totals


def recorded(uri: str, first_task: str) -> dict | None:
    from alexp import tracking

    exp = tracking.client(uri).get_experiment_by_name(experiment(first_task))
    tags = exp.tags if exp is not None else {}
    if "alexp.bench_seconds" not in tags:
        return None
    return {"seconds": float(tags["alexp.bench_seconds"]), "peak_mb": float(tags["alexp.bench_peak_mb"]),
            "invocations": int(tags["alexp.bench_invocations"])}


def run_seconds(uri: str, tasks: list[str], conditions: list[str]) -> str:
    """Where the time goes: the median seconds of one run (MLflow start to end) per condition, and the sum."""
    from alexp import tracking

    client = tracking.client(uri)
    names = by_params(conditions)
    rows = []
    for task in tasks:
        exp = client.get_experiment_by_name(experiment(task))
        for r in client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'", max_results=50_000):
            key = " ".join(f"{k}={r.data.params.get(k, DEFAULT_MODEL if k == 'model' else '')}"
                           for k in ("acquisition", "model"))
            if key in names and r.info.end_time:
                rows.append((names[key], (r.info.end_time - r.info.start_time) / 1000))
    frame = pl.DataFrame(rows, schema=["condition", "seconds"], orient="row")
    table = frame.group_by("condition").agg(pl.len().alias("runs"), pl.col("seconds").median().alias("median"),
                                            pl.col("seconds").sum().alias("total")).sort("total", descending=True)
    lines = ["| condition | runs | median s per run | core-minutes |", "|---|---|---|---|"]
    lines += [f"| {c} | {n} | {m:.1f} | {t / 60:.1f} |" for c, n, m, t in table.iter_rows()]
    return "\n".join(lines + ["", f"In all {frame['seconds'].sum() / 60:.0f} core-minutes of runs (process start-up "
                                   "and the ranking come on top)."])


def load(uri: str, tasks: list[str], conditions: list[str]):
    """The runs as `alexp report --tasks` loads them, keeping the benchmark's conditions only."""
    from alexp.report.runs import load_runs

    runs = load_runs(uri, [experiment(t) for t in tasks], metric="kappa", tasks=True)
    names = by_params(conditions)
    runs = runs.with_columns(pl.col("condition").replace_strict(
        {c: names.get(" ".join(sorted(c.split())), c) for c in runs["condition"].unique()}))
    return runs.filter(pl.col("condition").is_in(conditions)).with_columns(
        pl.col("task").str.strip_prefix("bench-"))


def by_params(conditions: list[str]) -> dict[str, str]:
    """'acquisition=margin model=logreg_tuned' (the MLflow params that name it, sorted) -> the condition's name."""
    named = {c: {"model": DEFAULT_MODEL, **dict(o.split("=", 1) for o in CONDITIONS[c])} for c in conditions}
    return {" ".join(f"{k}={v}" for k, v in sorted(p.items())): c for c, p in named.items()}


def close_tasks(runs, conditions: list[str]) -> list[str]:
    """Tasks on which the two best conditions by mean area (the bound aside) are not told apart by the paired
    interval of their difference over seeds: they get more seeds."""
    from alexp.report import ranking, stats

    tasks, names, scores, _ = ranking.scores(runs, "aulc")
    out = []
    for task, m in zip(tasks, scores):
        fair = [i for i, c in enumerate(names) if c != "greedy_oracle"]
        best = sorted(fair, key=lambda i: -m[i].mean())[:2]
        _, low, high = stats.mean_interval(m[best[0]] - m[best[1]])
        if low <= 0 <= high:
            out.append(task)
    return out


def write(uri: str, tasks: list[str], conditions: list[str], out: Path, timing: str, budget: list[str],
          command: str) -> None:
    from alexp.report import ranking
    from alexp.report.tables import interval

    runs = load(uri, tasks, conditions)
    result = ranking.rank(runs, "aulc", "random", "greedy_oracle")
    final = ranking.rank(runs, "final", "random", "greedy_oracle")
    out.mkdir(parents=True, exist_ok=True)
    ranking.figure(result, out / "ranking.png")
    ranking.figure(final, out / "ranking-final.png")
    text = ranking.markdown(result, "Strategy benchmark: ranking by area under the kappa curve", "ranking.png")
    final_board = final.leaderboard()
    last = int(runs["n_labels"].max())
    lines = [text, f"## The same ranking by final kappa (at {last} labels)", "",
             "| condition | mean rank | mean final kappa | share of the gap closed |", "|---|---|---|---|"]
    nan = float("nan")
    for row in final_board.iter_rows(named=True):
        rank = interval(row["mean_rank"], row["rank_low"], row["rank_high"], 2)
        gap = interval(row.get("gap_share", nan), row.get("gap_low", nan), row.get("gap_high", nan), 2)
        lines.append(f"| {row['condition']} | {rank} | {row['mean_final']:.3f} | {gap} |")
    lines += ["", f"Friedman p (final kappa) = {final.friedman_p:.2g}; critical difference "
              f"{final.critical_difference:.2f}.",
              "", "![final kappa ranking](ranking-final.png)", ""]
    lines += [limits(result), "", "## How it was run", "", setup(tasks, conditions, budget, command), "", timing, "",
              "## Where the time goes", "", run_seconds(uri, tasks, conditions)]
    (out / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'RESULTS.md'}")


def limits(r) -> str:
    """What the ranking cannot show, with this benchmark's own numbers."""
    spread = r.rank_high - r.rank_low
    return "\n".join([
        "## What this ranking cannot show", "",
        f"- **Tasks outside these {len(r.tasks)}.** Rank intervals resample seeds within each task; they do not "
        "resample tasks. The Friedman test and the critical difference treat the tasks as the sample, and these "
        "tasks were chosen (six Cohen reviews, two clickbait variants, Davidson, three synthetic pools), not drawn.",
        f"- **Close ranks.** Rank intervals are {np.nanmedian(spread):.2f} ranks wide (median); conditions within the "
        f"critical difference ({r.critical_difference:.2f}) are not told apart, whatever their order in the table."
        + conservative(r),
        "- **Other budgets, models and features.** One schedule (20 initial labels, 10 rounds of 20), logistic "
        "regression on tf-idf or the generated features, kappa on a gold test set. Strategies that pay off later "
        "(diversity at large budgets) or with other models (deep ones) can rank differently (Lüth et al. 2023).",
        "- **Noisy labels and real costs.** A perfect oracle answers every strategy; the claim study measures what "
        "label noise changes. Every label costs the same here.",
        "- **The bound is not a ceiling.** The greedy oracle picks the best of its candidate batches by test kappa "
        "one round at a time; a strategy can beat it (shares above 1), and its test-set choice makes it optimistic "
        "on the tasks with few test positives (Cohen reviews: 8-30).",
        "- **Small test sets.** A Cohen review's test set holds 20% of its abstracts; with 8-30 positives one "
        "prediction moves kappa by several hundredths, so per-task means there carry wide seed-to-seed spread.",
    ])


def conservative(r) -> str:
    """A sentence on the pair the critical difference cannot separate that the paired intervals most often do."""
    k = len(r.conditions)
    close = [(r.wins[i, j], i, j) for i in range(k) for j in range(k)
             if i != j and abs(r.mean_rank[i] - r.mean_rank[j]) < r.critical_difference]
    if not close:
        return ""
    wins, i, j = max(close)
    if wins < len(r.tasks) / 2:
        return ""
    return (f" Nemenyi's test is conservative at {len(r.tasks)} tasks: {r.conditions[i]} and {r.conditions[j]} are "
            f"{abs(r.mean_rank[i] - r.mean_rank[j]):.2f} ranks apart, within the critical difference, yet "
            f"{r.conditions[i]} beats {r.conditions[j]} by its paired interval over seeds on {wins} of "
            f"{len(r.tasks)} tasks (the pairwise matrix).")


def setup(tasks: list[str], conditions: list[str], budget: list[str], command: str) -> str:
    return "\n".join([
        f"- Tasks ({len(tasks)}, presets `conf/experiment/task_*.yaml`): " + ", ".join(tasks) + ".",
        f"- Conditions ({len(conditions)}): " + "; ".join(f"{c} (`{' '.join(CONDITIONS[c])}`)" for c in conditions)
        + ". The default model is `logreg_tuned` (logistic regression, C=1, threshold tuned for kappa by inner CV).",
        f"- Budget: `{' '.join(budget)}`; oracle: perfect (the data's labels).",
        f"- Command: `{command}`; `alexp report --tasks --experiment bench-<task> ...` gives the same ranking from "
        "the store.",
    ])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI-sized: 3 tasks, 5 conditions, 3 seeds, a small budget")
    p.add_argument("--report-only", action="store_true", help="only rebuild RESULTS.md from logged runs")
    p.add_argument("--seeds", type=int, default=10, help="seeds per condition and task (default 10)")
    p.add_argument("--more-seeds", type=int, default=20,
                   help="seeds on tasks whose two best conditions are not told apart (default 20; = --seeds: none)")
    p.add_argument("--parallel", type=int, default=2, help="worker processes (default 2, one core each)")
    p.add_argument("--out", default=None, help="folder of RESULTS.md and figures (default: this folder; "
                   "./strategy-benchmark-quick with --quick)")
    args = p.parse_args(argv)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    tasks, conditions = (QUICK_TASKS, QUICK_CONDITIONS) if args.quick else (TASKS, list(CONDITIONS))
    budget = ["budget.initial=10", "budget.batch_size=10", "budget.rounds=4"] if args.quick else BUDGET
    seeds, more = (3, 3) if args.quick else (args.seeds, max(args.more_seeds, args.seeds))
    out = Path(args.out) if args.out else (Path("strategy-benchmark-quick") if args.quick else HERE)
    started, peaks = time.time(), [0.0]
    if not args.report_only:
        from alexp import tracking

        for task in tasks:
            tracking.init_store(uri, experiment(task))
        try:
            peaks.append(run_all(uri, missing(uri, tasks, conditions, budget, list(range(seeds))), budget,
                                 args.parallel))
            if more > seeds:  # decided on the first `seeds` seeds, so every invocation picks the same tasks
                first = load(uri, tasks, conditions).filter(pl.col("seed") < seeds)
                close = close_tasks(first, conditions)
                print(f"{len(close)} of {len(tasks)} tasks close at {seeds} seeds, run to {more}: {', '.join(close)}")
                peaks.append(run_all(uri, missing(uri, close, conditions, budget, list(range(more))), budget,
                                     args.parallel))
        except BaseException:  # a failed or interrupted invocation's time counts too (a rerun resumes)
            record(uri, tasks[0], time.time() - started, max(peaks))
            raise
        if max(peaks):  # this invocation ran runs: its time counts towards the benchmark's
            record(uri, tasks[0], time.time() - started, max(peaks))
    totals = recorded(uri, tasks[0])
    timing = (f"Wall time: {totals['seconds'] / 60:.1f} min in the {totals['invocations']} invocation(s) that ran "
              f"runs, on {os.cpu_count()} cores ({platform.processor() or platform.machine()}, {args.parallel} worker "
              f"processes); peak memory of the largest worker {totals['peak_mb']:.0f} MB." if totals else
              "Wall time: not recorded (the runs were logged by an older version of this script).")
    command = "python simulations/strategy_benchmark/run.py" + (" --quick" if args.quick else "") + \
        (f" --seeds {args.seeds}" if args.seeds != 10 else "") + \
        (f" --more-seeds {args.more_seeds}" if args.more_seeds != 20 else "")
    write(uri, tasks, conditions, out, timing, budget, command)
    print(timing)


if __name__ == "__main__":
    sys.exit(main())
