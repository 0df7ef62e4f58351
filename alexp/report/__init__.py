"""`alexp report`: from the MLflow runs of a sweep to answers, with how sure we are.

Runs are grouped into conditions (their params minus the seed), each compared with its baseline (the same
settings but `--baseline`). `stats` holds the statistics (pure functions, checked by simulation in
`simulations/report_calibration`), `runs` the MLflow loading, `tables` the tables and the verdict in words,
`figures` the figures; `main` does the I/O.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from alexp import AlexpError
from alexp.report import stats
from alexp.report.runs import condition_params, load_runs, load_stops
from alexp.report.tables import Report, Settings, baseline_pairs, markdown, summarize

__all__ = ["Report", "Settings", "load_runs", "main", "summarize", "write"]


def write(report: Report, out: Path, title: str) -> list[Path]:
    """report.md, summary.parquet (one row per condition), reductions.parquet, comparisons.parquet,
    curves.parquet and the figures into `out`; returns the files written."""
    from alexp.report.figures import figures

    out.mkdir(parents=True, exist_ok=True)
    tables = {"summary": report.conditions, "reductions": report.reductions, "comparisons": report.comparisons,
              "curves": report.curves, "stopping": report.stopping}
    files = []
    for name, frame in tables.items():
        if frame.height:
            frame.write_parquet(out / f"{name}.parquet")
            files.append(out / f"{name}.parquet")
    baselines = set(report.reductions["baseline"].to_list()) if report.reductions.height else set()
    targets = ({report.settings.metric: report.settings.target} if report.settings.target is not None else
               comparison_targets(report.reductions) if report.reductions.height else {})
    stops = {}
    if report.stopping.height:  # where each condition's recommended rule stops (median over seeds)
        from alexp.report.tables import recommended_rule

        for (condition,), rows in report.stopping.group_by("condition", maintain_order=True):
            if (r := recommended_rule(rows, report.settings)) is not None:
                stops[condition] = (r["rule"], r["labels_at_stop"])
    drawn = figures(report.curves, out, title, report.settings.metric, targets, baselines, stops=stops)
    (out / "report.md").write_text(markdown(report, f"alexp report: {title}", [f.name for f in drawn]))
    return [out / "report.md", *files, *drawn, *(f.with_suffix(".pdf") for f in drawn)]


def comparison_targets(reductions) -> dict[str, float]:
    """The target line(s) to draw: one per baseline, or one per comparison where a baseline's comparisons (on
    different seeds) have different targets."""
    out = {}
    for (base,), part in reductions.group_by("baseline", maintain_order=True):
        distinct = set(part["target"].drop_nans().to_list())
        if len(distinct) <= 1:
            out[base] = part["target"][0]
        else:
            out.update({f"{base} vs {c}": t for c, t in zip(part["condition"], part["target"])})
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="alexp report", description="Turn the MLflow runs of a sweep into curves "
                                "with bootstrap intervals over seeds, labels-to-target, reduction factors against "
                                "a baseline, paired tests and a verdict in words.")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
                   help="MLflow store (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--experiment", action="append", help="experiment name(s) to read (default: alexp)")
    p.add_argument("--sweep-dir", help="only the runs of one sweep (its Hydra sweep dir, tag alexp.sweep_dir)")
    p.add_argument("--baseline", default="acquisition=random",
                   help="settings that make a condition the baseline, e.g. 'acquisition=random oracle=crowd' "
                        "(default: acquisition=random); each condition is compared with its own baseline")
    p.add_argument("--metric", default="kappa", help="the logged metric to summarise, higher meaning better: kappa "
                   "(default), average_precision, f1, curated_kappa, ... (any metric the runs logged per round)")
    p.add_argument("--target", type=float, help="an absolute target value of the metric (default: --target-fraction "
                   "of each baseline's plateau)")
    p.add_argument("--target-fraction", type=float, default=stats.FRACTION,
                   help=f"the target as a share of the baseline's plateau (default {stats.FRACTION})")
    p.add_argument("--plateau-points", type=int, default=stats.PLATEAU_POINTS,
                   help="the plateau is the mean of the baseline's mean curve over its last this many label counts "
                        f"(default {stats.PLATEAU_POINTS})")
    p.add_argument("--stop-loss", type=float, default=0.02,
                   help="the loss against the plateau within which the report names the stopping rule that stops "
                        "earliest (default 0.02, in units of --metric)")
    p.add_argument("--tasks", action="store_true",
                   help="rank the conditions across tasks, each --experiment one task: mean ranks with intervals "
                        "over seeds, Friedman test, critical-difference diagram, pairwise wins, share of the gap "
                        "between --baseline and --bound closed (ranking.md; see alexp.report.ranking)")
    p.add_argument("--measure", choices=("aulc", "final"), default="aulc",
                   help="with --tasks: score each run by the area under its curve (default) or its final value")
    p.add_argument("--bound", default="acquisition=greedy_oracle",
                   help="with --tasks: settings of the upper-bound condition (default: acquisition=greedy_oracle); "
                        "the baseline is its counterpart with --baseline's settings")
    p.add_argument("--out", help="output folder (default: reports/<experiment>)")
    p.add_argument("--no-log", action="store_true", help="do not log the report as a run (in the experiment "
                   "'<experiment>-reports', kept apart from the curves)")
    args = p.parse_args(argv)
    if not 0 < args.target_fraction <= 1:
        p.error(f"--target-fraction must be in (0, 1], got {args.target_fraction}")
    if args.stop_loss < 0:
        p.error(f"--stop-loss must be >= 0, got {args.stop_loss}")
    if args.plateau_points < 1:
        p.error(f"--plateau-points must be at least 1, got {args.plateau_points}")
    if args.tasks and len(args.experiment or []) < 2:
        p.error("--tasks ranks conditions across tasks: pass each task's experiment, --experiment A --experiment B ...")
    for name, value in (("--baseline", args.baseline), ("--bound", args.bound)):
        if value and any("=" not in part for part in value.split()):
            bare = next(part for part in value.split() if "=" not in part)
            p.error(f"{name} takes settings as key=value, got {bare!r}; e.g. {name} acquisition={bare}")
    return args


def folder_name(experiments: list[str]) -> str:
    """The report folder's name under reports/: the experiment names, each reduced to letters, digits, '_', '-'
    and inner dots, so that no name (`../../x`, `/etc`) reaches outside reports/."""
    parts = [re.sub(r"[^\w.-]+", "_", name).strip("._") or "experiment" for name in experiments]
    return "-".join(parts)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[2:] if argv is None else argv)
    experiments = args.experiment or ["alexp"]
    baseline = dict(part.split("=", 1) for part in args.baseline.split()) if args.baseline else {}
    settings = Settings(args.metric, args.target, args.target_fraction, args.plateau_points,
                        stop_loss=args.stop_loss)
    if args.tasks:
        return rank_tasks(args, experiments, baseline)
    try:
        runs = load_runs(args.tracking_uri, experiments, args.sweep_dir, args.metric)
        conditions = runs["condition"].unique(maintain_order=True).to_list()
        named = [condition_params(c) for c in conditions]
        if any(k in p for p in named for k in baseline) and not any(
                all(p.get(k) == v for k, v in baseline.items()) for p in named):
            raise AlexpError(f"--baseline {args.baseline} matches no condition; the conditions are: "
                             + "; ".join(conditions))
        report = summarize(runs, baseline_pairs(runs["condition"].unique(maintain_order=True).to_list(), baseline),
                           settings, load_stops(args.tracking_uri, runs))
    except AlexpError as e:
        print(f"alexp report: error: {e}", file=sys.stderr)
        sys.exit(2)
    out = Path(args.out) if args.out else Path("reports") / folder_name(experiments)
    try:
        files = write(report, out, ", ".join(experiments))
    except OSError as e:
        print(f"alexp report: error: cannot write the report to {out}/: {e.strerror or e}; pass --out with a "
              "folder you can write to", file=sys.stderr)
        sys.exit(2)
    if not args.no_log:
        from alexp.tracking import log_report

        from alexp.tracking import report_experiment

        run_id = log_report(args.tracking_uri, experiments[0], out, ", ".join(experiments))
        print(f"logged as run {run_id} in experiment {report_experiment(experiments[0])!r} (artifacts: "
              f"{', '.join(f.name for f in files)}); see it with alexp ui")
    print(f"report written to {out}/")
    print((out / "report.md").read_text())


def rank_tasks(args: argparse.Namespace, experiments: list[str], baseline: dict[str, str]) -> None:
    """`alexp report --tasks`: the cross-task ranking (alexp.report.ranking) into ranking.md, leaderboard.parquet,
    task_scores.parquet, pairwise_wins.parquet and ranking.png/pdf."""
    import polars as pl

    from alexp.report import ranking

    try:
        runs = load_runs(args.tracking_uri, experiments, args.sweep_dir, args.metric, tasks=True)
        conditions = runs["condition"].unique(maintain_order=True).to_list()
        bound_settings = dict(part.split("=", 1) for part in args.bound.split()) if args.bound else {}
        bound = ranking.counterpart(conditions, None, bound_settings) if bound_settings else None
        base = ranking.counterpart(conditions, bound, baseline) if bound else None
        result = ranking.rank(runs, args.measure, base, bound)
    except (ValueError, AlexpError) as e:  # a task without every condition, runs of different schedules
        print(f"alexp report: error: {e}", file=sys.stderr)
        sys.exit(2)
    out = Path(args.out) if args.out else Path("reports") / folder_name(["tasks", *experiments])[:120]
    try:
        out.mkdir(parents=True, exist_ok=True)
        result.leaderboard().write_parquet(out / "leaderboard.parquet")
        pl.DataFrame([{"task": t, "condition": c, "seed": s, "score": float(m[i, j]), "measure": args.measure}
                      for t, m, seeds in zip(result.tasks, result.scores, result.seeds)
                      for i, c in enumerate(result.conditions) for j, s in enumerate(seeds)]
                     ).write_parquet(out / "task_scores.parquet")
        pl.DataFrame({"condition": result.conditions, **{c: result.wins[:, i] for i, c in
                                                         enumerate(result.conditions)}}
                     ).write_parquet(out / "pairwise_wins.parquet")
        ranking.figure(result, out / "ranking.png")
        text = ranking.markdown(result, f"alexp report: ranking across {len(result.tasks)} tasks", "ranking.png")
        (out / "ranking.md").write_text(text)
    except OSError as e:
        print(f"alexp report: error: cannot write the report to {out}/: {e.strerror or e}; pass --out with a "
              "folder you can write to", file=sys.stderr)
        sys.exit(2)
    if bound is None or base is None:
        why = (f"no single condition matches --bound {args.bound}" if bound is None else
               f"no condition is {bound} with --baseline {args.baseline}")
        print(f"note: no share of the gap closed: {why}")
    if not args.no_log:
        from alexp.tracking import log_report, report_experiment

        run_id = log_report(args.tracking_uri, experiments[0], out, "ranking: " + ", ".join(experiments))
        print(f"logged as run {run_id} in experiment {report_experiment(experiments[0])!r}; see it with alexp ui")
    print(f"report written to {out}/")
    print(text)
