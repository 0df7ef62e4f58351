"""`alexp report`: from the MLflow runs of a sweep to answers, with how sure we are.

Runs are grouped into conditions (their params minus the seed); each condition's kappa histories are
aligned on the label axis. Per condition: mean kappa with a 95% t-interval over seeds at each label count,
the normalised area under the learning curve (AULC) on a linear and a log label axis, and labels-to-target
(censored as "> N" when a seed never gets there). Against a baseline condition: the reduction factor in labels
to reach a target kappa, and paired per-seed comparisons (common random numbers) with a sign test and
Wilcoxon's signed-rank test. Statistics are plain functions of arrays; `main` does the I/O.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy import stats

from alexp import AlexpError

LEVEL = 0.95


# --- statistics ----------------------------------------------------------------------------------------------

def t_interval(values, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high): Student-t confidence interval of the mean over seeds; NaN bounds below 2 values."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1 + level) / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return mean, mean - half, mean + half


def aulc(labels: NDArray, kappa: NDArray, log: bool = False) -> float:
    """Area under the learning curve divided by its label range: the curve's mean height (0 labels are left out
    on the log axis)."""
    x, y = np.asarray(labels, dtype=float), np.asarray(kappa, dtype=float)
    if log:
        keep = x > 0
        x, y = np.log(x[keep]), y[keep]
    if len(x) < 2 or x[-1] == x[0]:
        return float(y[0]) if len(y) else math.nan
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def labels_to_target(labels: NDArray, kappa: NDArray, target: float) -> tuple[float, bool]:
    """(first label count whose kappa reaches `target`, False), or (the last label count, True) if never."""
    hit = np.flatnonzero(np.asarray(kappa) >= target - 1e-12)
    return (float(labels[hit[0]]), False) if len(hit) else (float(labels[-1]), True)


def censored_median(values: NDArray, censored: NDArray) -> tuple[float, bool]:
    """Median of right-censored values: known if the middle value(s) are observed, else (largest bound, True)."""
    v = np.where(censored, np.inf, np.asarray(values, dtype=float))
    med = float(np.median(v))
    if math.isinf(med):
        return float(np.max(np.asarray(values)[np.asarray(censored)])), True
    return med, False


def target_txt(target: float) -> str:
    return "–" if math.isnan(target) else f"{target:.3f}"


def fmt_censored(value: float, censored: bool, prefix: str = ">") -> str:
    return f"{prefix} {value:g}" if censored else f"{value:g}"


@dataclass(frozen=True)
class Reduction:
    """Labels the baseline needs to reach `target` over labels the strategy needs (> 1: the strategy saves)."""

    target: float
    factor: float  # on the mean curves; a bound when `bound` is set
    bound: str  # "" exact, ">" or "<" when one side never reached the target, "n/a" when neither did
    per_seed_mean: float  # geometric mean of the per-seed ratios where both reached the target
    per_seed_low: float
    per_seed_high: float
    pairs: int  # seeds where both reached the target
    censored: int  # seeds where one or both never did

    def text(self) -> str:
        if self.bound == "n/a":
            return "n/a (neither reaches the target)"
        return f"{self.bound} {self.factor:.2f}".strip()


def reduction(base: tuple[NDArray, NDArray], strat: tuple[NDArray, NDArray], target: float,
              base_seeds: dict[int, tuple[NDArray, NDArray]], strat_seeds: dict[int, tuple[NDArray, NDArray]]
              ) -> Reduction:
    """Reduction factor on the mean curves (labels, mean kappa) and per seed (seed -> (labels, kappa))."""
    lb, cb = labels_to_target(*base, target)
    ls, cs = labels_to_target(*strat, target)
    if cb and cs:
        factor, bound = math.nan, "n/a"
    elif cs:  # the strategy never gets there within its labels: it saves less than this
        factor, bound = lb / ls, "<"
    elif cb:
        factor, bound = lb / ls, ">"
    else:
        factor, bound = lb / ls, ""
    logs, censored = [], 0
    for seed in sorted(set(base_seeds) & set(strat_seeds)):
        (b, b_cens), (s, s_cens) = (labels_to_target(*base_seeds[seed], target),
                                    labels_to_target(*strat_seeds[seed], target))
        if b_cens or s_cens:
            censored += 1
        else:
            logs.append(math.log(b / s))
    mean, low, high = t_interval(logs)
    return Reduction(target, factor, bound, math.exp(mean) if logs else math.nan,
                     math.exp(low) if logs else math.nan, math.exp(high) if logs else math.nan, len(logs), censored)


def paired(diffs) -> dict[str, float]:
    """Per-seed differences (strategy - baseline): wins, losses, mean, sign-test and Wilcoxon p-values."""
    d = np.asarray(diffs, dtype=float)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    sign_p = float(stats.binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else math.nan
    wilcoxon_p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else math.nan
    return {"seeds": len(d), "wins": wins, "losses": losses, "mean_diff": float(d.mean()) if len(d) else math.nan,
            "sign_p": sign_p, "wilcoxon_p": wilcoxon_p}


# --- runs into a long table ----------------------------------------------------------------------------------

def load_runs(uri: str, experiments: list[str], sweep_dir: str | None = None, metric: str = "kappa",
              keys: list[str] | None = None) -> pl.DataFrame:
    """One row per (run, step): run_id, condition, seed, n_labels, value of `metric` (column `kappa`), cost.

    A condition is named by the params that vary between runs, or by `keys` when given."""
    from alexp.tracking import client as tracking_client

    client = tracking_client(uri)
    ids = []
    for name in experiments:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise AlexpError(f"no experiment {name!r} in {uri}; pass --experiment with one of "
                             f"{[e.name for e in client.search_experiments()]}")
        ids.append(exp.experiment_id)
    query = "attributes.status = 'FINISHED'" + (f" and tags.`alexp.sweep_dir` = '{sweep_dir}'" if sweep_dir else "")
    runs = [r for r in client.search_runs(ids, query, max_results=50_000) if r.data.tags.get("alexp.kind") != "report"]
    if not runs:
        raise AlexpError(f"no finished alexp runs in experiment(s) {experiments} of {uri}"
                         + (f" with sweep dir {sweep_dir}" if sweep_dir else ""))
    params = [{k: v for k, v in r.data.params.items() if k != "seed"} for r in runs]
    varying = keys or sorted(k for k in set().union(*params) if len({p.get(k) for p in params}) > 1)
    rows = []
    for r, p in zip(runs, params):
        condition = " ".join(f"{k}={p[k]}" for k in varying if k in p) or "all runs"
        cost = {m.step: m.value for m in client.get_metric_history(r.info.run_id, "cost")}
        for m in client.get_metric_history(r.info.run_id, metric):
            rows.append((r.info.run_id, condition, int(r.data.params.get("seed", 0)), m.step, m.value,
                         cost.get(m.step)))
    return pl.DataFrame(rows, schema={"run_id": pl.String, "condition": pl.String, "seed": pl.Int64,
                                      "n_labels": pl.Int64, "kappa": pl.Float64, "cost": pl.Float64}, orient="row"
                        ).sort("condition", "seed", "n_labels")


def condition_params(condition: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in condition.split()) if "=" in condition else {}


# --- the report ----------------------------------------------------------------------------------------------

def curves(runs: pl.DataFrame) -> pl.DataFrame:
    """Mean kappa and its 95% t-interval over seeds, per condition and label count."""
    out = []
    for (condition, n), part in runs.group_by("condition", "n_labels", maintain_order=True):
        mean, low, high = t_interval(part["kappa"].to_numpy())
        cost = part["cost"].drop_nulls()
        out.append((condition, n, part.height, mean, low, high, float(cost.mean()) if len(cost) else None))
    return pl.DataFrame(out, schema={"condition": pl.String, "n_labels": pl.Int64, "seeds": pl.Int64,
                                     "kappa_mean": pl.Float64, "kappa_low": pl.Float64, "kappa_high": pl.Float64,
                                     "cost_mean": pl.Float64}, orient="row").sort("condition", "n_labels")


def per_seed(runs: pl.DataFrame, condition: str, column: str = "n_labels") -> dict[int, tuple[NDArray, NDArray]]:
    part = runs.filter(pl.col("condition") == condition)
    return {seed: (g[column].to_numpy(), g["kappa"].to_numpy())
            for (seed,), g in part.group_by("seed", maintain_order=True)}


def mean_curve(table: pl.DataFrame, condition: str) -> tuple[NDArray, NDArray]:
    part = table.filter(pl.col("condition") == condition)
    return part["n_labels"].to_numpy(), part["kappa_mean"].to_numpy()


def summarize(runs: pl.DataFrame, target: float | None, baseline: dict[str, str] | None) -> dict[str, pl.DataFrame]:
    """The report's tables: conditions, reductions and paired comparisons (polars frames)."""
    table = curves(runs)
    conditions = table["condition"].unique(maintain_order=True).to_list()
    base_of = {c: _baseline_for(c, conditions, baseline) for c in conditions} if baseline else {}
    rows = []
    for c in conditions:
        seeds = per_seed(runs, c)
        finals = [k[-1] for _, k in seeds.values()]
        aulcs = {name: t_interval([aulc(x, k, log) for x, k in seeds.values()])
                 for name, log in (("aulc", False), ("aulc_log", True))}
        c_target = target if target is not None else (
            float(mean_curve(table, base_of[c])[1].max()) if base_of.get(c) else math.nan)
        intervals = {"final_kappa": t_interval(finals), **aulcs}
        row = {"condition": c, "seeds": len(seeds), "max_labels": int(max(x[-1] for x, _ in seeds.values())),
               **{f"{name}{suffix}": v for name, (m, lo, hi) in intervals.items()
                  for suffix, v in (("", m), ("_low", lo), ("_high", hi))},
               "target": c_target}
        if not math.isnan(c_target):
            hits = [labels_to_target(x, k, c_target) for x, k in seeds.values()]
            med, cens = censored_median(np.array([h[0] for h in hits]), np.array([h[1] for h in hits]))
            row.update(labels_to_target=med, labels_to_target_censored=cens,
                       seeds_reaching_target=sum(not h[1] for h in hits))
            cost_seeds = per_seed(runs.drop_nulls("cost"), c, "cost")
            if cost_seeds:
                hits = [labels_to_target(x, k, c_target) for x, k in cost_seeds.values()]
                med, cens = censored_median(np.array([h[0] for h in hits]), np.array([h[1] for h in hits]))
                row.update(cost_to_target=med, cost_to_target_censored=cens)
        rows.append(row)
    reductions, comparisons = [], []
    for c, b in base_of.items():
        if b is None or b == c:
            continue
        t = target if target is not None else float(mean_curve(table, b)[1].max())
        r = reduction(mean_curve(table, b), mean_curve(table, c), t, per_seed(runs, b), per_seed(runs, c))
        reductions.append({"condition": c, "baseline": b, "target": t, "reduction": r.factor, "bound": r.bound,
                           "per_seed_geomean": r.per_seed_mean, "per_seed_low": r.per_seed_low,
                           "per_seed_high": r.per_seed_high, "pairs": r.pairs, "censored": r.censored})
        bs, cs = per_seed(runs, b), per_seed(runs, c)
        common = sorted(set(bs) & set(cs))
        for measure, fn in (("aulc_log", lambda x, k: aulc(x, k, log=True)), ("final_kappa", lambda x, k: k[-1])):
            comparisons.append({"condition": c, "baseline": b, "measure": measure,
                                **paired([fn(*cs[s]) - fn(*bs[s]) for s in common])})
    return {"curves": table, "conditions": pl.DataFrame(rows), "reductions": pl.DataFrame(reductions),
            "comparisons": pl.DataFrame(comparisons)}


def _baseline_for(condition: str, conditions: list[str], baseline: dict[str, str]) -> str | None:
    """The condition equal to `condition` but for the baseline's settings (e.g. acquisition=random)."""
    want = {**condition_params(condition), **baseline}
    matches = [c for c in conditions if condition_params(c) == want]
    return matches[0] if matches else None


# --- output --------------------------------------------------------------------------------------------------

def write(tables: dict[str, pl.DataFrame], out: Path, title: str, target: float | None) -> list[Path]:
    """report.md, summary.parquet, curves.parquet and the figures into `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "summary.parquet", out / "curves.parquet"]
    tables["conditions"].write_parquet(files[0])
    tables["curves"].write_parquet(files[1])
    drawn = figures(tables["curves"], out, target)
    (out / "report.md").write_text(markdown(tables, title, [f.name for f in drawn]))
    return [out / "report.md", *files, *drawn]


def markdown(tables: dict[str, pl.DataFrame], title: str, figure_names: list[str]) -> str:
    def ci(m, lo, hi, digits=3):
        return f"{m:.{digits}f}" if math.isnan(lo) else f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"

    lines = [f"# {title}", "", "Mean over seeds with a 95% Student-t confidence interval in brackets. AULC is the "
             "area under the kappa-vs-labels curve divided by its label range (linear, and log labels).", "",
             "| condition | seeds | labels | final kappa | AULC | AULC (log) | target | labels to target | "
             "cost to target |", "|---|---|---|---|---|---|---|---|---|"]
    for r in tables["conditions"].iter_rows(named=True):
        has = r.get("labels_to_target") is not None and not math.isnan(r.get("target", math.nan))
        ltt = (f"{fmt_censored(r['labels_to_target'], r['labels_to_target_censored'])} "
               f"({r['seeds_reaching_target']}/{r['seeds']} seeds)") if has else "–"
        ctt = fmt_censored(r["cost_to_target"], r["cost_to_target_censored"]) \
            if has and r.get("cost_to_target") is not None else "–"
        lines.append(f"| {r['condition']} | {r['seeds']} | {r['max_labels']} | "
                     f"{ci(r['final_kappa'], r['final_kappa_low'], r['final_kappa_high'])} | "
                     f"{ci(r['aulc'], r['aulc_low'], r['aulc_high'])} | "
                     f"{ci(r['aulc_log'], r['aulc_log_low'], r['aulc_log_high'])} | "
                     f"{target_txt(r['target'])} | {ltt} | {ctt} |")
    if tables["reductions"].height:
        lines += ["", "## Reduction factors", "", "Labels the baseline needs to reach the target kappa (default: "
                  "the baseline's best mean kappa) divided by labels the condition needs, on the mean curves; "
                  "`<` / `>`: one side never reached it (a bound). Per seed: geometric mean of the paired ratios "
                  "with a 95% t-interval on their logs, over seeds where both reached the target.", "",
                  "| condition | baseline | target | reduction | per seed | pairs | censored |",
                  "|---|---|---|---|---|---|---|"]
        for r in tables["reductions"].iter_rows(named=True):
            red = "n/a" if r["bound"] == "n/a" else f"{r['bound']} {r['reduction']:.2f}".strip()
            seed_txt = "–" if not r["pairs"] else ci(r["per_seed_geomean"], r["per_seed_low"], r["per_seed_high"], 2)
            lines.append(f"| {r['condition']} | {r['baseline']} | {r['target']:.3f} | {red} | {seed_txt} | "
                         f"{r['pairs']} | {r['censored']} |")
    if tables["comparisons"].height:
        lines += ["", "## Paired comparisons (per seed, against the baseline)", "",
                  "Differences condition − baseline on runs with the same seed (same split, initial set and oracle "
                  "answers). With few seeds the tests cannot reach small p-values: 5 seeds, all wins, give a "
                  "two-sided sign-test p of 0.0625.", "",
                  "| condition | baseline | measure | seeds | wins / losses | mean difference | sign test p | "
                  "Wilcoxon p |", "|---|---|---|---|---|---|---|---|"]
        for r in tables["comparisons"].iter_rows(named=True):
            lines.append(f"| {r['condition']} | {r['baseline']} | {r['measure']} | {r['seeds']} | "
                         f"{r['wins']} / {r['losses']} | {r['mean_diff']:+.3f} | {r['sign_p']:.3g} | "
                         f"{r['wilcoxon_p']:.3g} |")
    lines += ["", "## Curves", ""] + [f"![{name[:-4].replace('_', ' ')}]({name})\n" for name in figure_names]
    return "\n".join(lines) + "\n"


def figures(table: pl.DataFrame, out: Path, target: float | None) -> list[Path]:
    """kappa vs labels (log axis) and kappa vs cost, one line per condition with its 95% CI band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    written = []
    for x_col, name, xlabel in (("n_labels", "kappa_vs_labels.png", "labels (log scale)"),
                                ("cost_mean", "kappa_vs_cost.png", "cost of labels (log scale)")):
        data = table.drop_nulls(x_col).filter(pl.col(x_col) > 0)
        if data.is_empty():
            continue
        groups = list(data.group_by("condition", maintain_order=True))
        many = len(groups) > 8  # a legend beside the plot, and 20 distinct colours
        fig, ax = plt.subplots(figsize=(12 if many else 8, 5), dpi=120)
        colors = plt.get_cmap("tab20" if len(groups) > 10 else "tab10").colors
        for i, ((condition,), part) in enumerate(groups):
            x = part[x_col].to_numpy()
            line, = ax.plot(x, part["kappa_mean"].to_numpy(), marker="o", markersize=3, label=condition,
                            color=colors[i % len(colors)])
            low, high = part["kappa_low"].to_numpy(), part["kappa_high"].to_numpy()
            if not np.all(np.isnan(low)):
                ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        if target is not None:
            ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target kappa {target:g}")
        ax.set_xscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")  # 20, 50, 100 rather than 2x10^1
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_locator(matplotlib.ticker.LogLocator(subs=(2, 5)))  # labelled minor ticks: 2x, 5x
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Cohen's kappa vs gold labels")
        ax.set_title("Mean kappa over seeds, 95% CI bands")
        ax.grid(True, which="both", alpha=0.3)
        if many:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
        else:
            ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        written.append(out / name)
    return written


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="alexp report", description="Turn the MLflow runs of a sweep into curves "
                                "with confidence intervals, labels-to-target and reduction factors.")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
                   help="MLflow store (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--experiment", action="append", help="experiment name(s) to read (default: alexp)")
    p.add_argument("--sweep-dir", help="only the runs of one sweep (its Hydra sweep dir, tag alexp.sweep_dir)")
    p.add_argument("--baseline", default="acquisition=random",
                   help="settings that make a condition the baseline, e.g. 'acquisition=random oracle=crowd' "
                        "(default: acquisition=random); each condition is compared with its own baseline")
    p.add_argument("--target", type=float, help="target kappa (default: each baseline's best mean kappa)")
    p.add_argument("--out", help="output folder (default: reports/<experiment>)")
    p.add_argument("--no-log", action="store_true", help="do not log the report as a run in the experiment")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[2:] if argv is None else argv)
    experiments = args.experiment or ["alexp"]
    baseline = dict(part.split("=", 1) for part in args.baseline.split()) if args.baseline else None
    try:
        runs = load_runs(args.tracking_uri, experiments, args.sweep_dir)
        tables = summarize(runs, args.target, baseline)
    except AlexpError as e:
        print(f"alexp report: error: {e}", file=sys.stderr)
        sys.exit(2)
    out = Path(args.out or Path("reports") / "-".join(experiments))
    files = write(tables, out, f"alexp report: {', '.join(experiments)}", args.target)
    if not args.no_log:
        from alexp.tracking import log_report

        run_id = log_report(args.tracking_uri, experiments[0], out)
        print(f"logged as run {run_id} (artifacts: {', '.join(f.name for f in files)})")
    print(f"report written to {out}/")
    print((out / "report.md").read_text())
