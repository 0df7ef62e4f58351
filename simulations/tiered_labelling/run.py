"""The tiered-labelling study, end to end: run every arm of study.yaml with alexp, then write RESULTS.md and figures.

    python simulations/tiered_labelling/run.py                 # the full study (RESULTS.md gives its wall time)
    python simulations/tiered_labelling/run.py --quick         # a CI-sized run of the same pipeline
    python simulations/tiered_labelling/run.py --report-only   # rebuild RESULTS.md from the runs already logged

Runs go to the MLflow store in $MLFLOW_TRACKING_URI (default sqlite:///mlflow.db here), one experiment per dataset
(`tiers-<dataset>`); an arm's seeds already logged as finished are not run again. Two arms run at once, one core
each; every arm is one `alexp -m` sweep over its seeds.

The question: which items go to whom? For each dataset and price ratio, the money each arm spends to reach two
targets (the random crowd's kappa at the whole pool, and the expert arm's kappa at its end), with intervals, and
whether a routing rule spends less than every single tier (the interval of its money factor above 1 against each).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from omegaconf import OmegaConf

from alexp import report, tracking
from alexp.report import stats

HERE = Path(__file__).resolve().parent
TIERS = ("cheap", "crowd", "expert")


@dataclass
class Arm:
    experiment: str
    name: str
    overrides: list[str]
    seeds: list[int]


def say(line: str) -> None:
    print(line, flush=True)


def log_schedule(first: int, last: int, per_decade: int) -> list[int]:
    """Item counts from `first` to `last` (the pool), `per_decade` per factor of 10 (rounded, distinct)."""
    n = int(round(math.log10(last / first) * per_decade)) + 1
    return sorted({v for i in range(n) if (v := int(round(first * 10 ** (i / per_decade)))) < last} | {last})


def pool_size(study, name: str, data: list[str]) -> int:
    from alexp import runner

    cfg = runner.compose([*data, *study.common, "seed=0"])
    return len(runner.split(cfg)[1])


def arms_of(study, name: str, data: list[str], seeds: list[int], budgets) -> list[Arm]:
    spec = study.datasets[name]
    pool = pool_size(study, name, data)
    out = []
    for arm, a in study.arms.items():
        route = list(a.route)
        if a.budget == "pool":
            counts = log_schedule(study.pool_schedule.first, pool, study.pool_schedule.per_decade)
            budget = [f"budget.schedule=[{','.join(map(str, counts))}]"]
        else:
            budget = list(budgets[a.budget])
        rule = [f"oracle.escalate={a.get('escalate', 'never')}"] + \
            [f"oracle.{k}={a[k]}" for k in ("threshold", "share") if k in a]
        overrides = [*data, *study.common, *spec.tiers, f"oracle.route=[{','.join(route)}]", *rule,
                     f"acquisition={a.acquisition}", *budget]
        out.append(Arm(f"tiers-{name}", arm, overrides, seeds))
        sens = study.get("sensitivity")
        if sens and name in sens.datasets and arm in sens.arms:
            out += [Arm(f"tiers-{name}", f"{arm}@{v}", [*overrides, f"{sens.key}={v}"], seeds) for v in sens["values"]]
    return out


def missing_seeds(client, arm: Arm) -> list[int]:
    exp = client.get_experiment_by_name(arm.experiment)
    if exp is None:
        return list(arm.seeds)
    done = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'", max_results=50000)
    have = {int(r.data.params["seed"]) for r in done if r.data.params.get("arm", "").strip("'") == arm.name}
    return [s for s in arm.seeds if s not in have]


def run_arm(arm: Arm, uri: str) -> float:
    missing = missing_seeds(tracking.client(uri), arm)
    if not missing:
        say(f"  {arm.experiment} {arm.name}: already logged, skipped")
        return 0.0
    cmd = ["alexp", "-m", *arm.overrides, f"seed={','.join(map(str, missing))}", f"+arm='{arm.name}'",
           f"tracking.experiment_name={arm.experiment}", "hydra/launcher=basic"]
    started = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        say(f"  {arm.experiment} {arm.name} FAILED:\n{done.stderr[-3000:]}\ncommand: {' '.join(cmd)}")
        return math.nan
    seconds = time.perf_counter() - started
    say(f"  {arm.experiment} {arm.name}: {len(missing)} seeds in {seconds:.0f} s")
    return seconds


# --- the analysis --------------------------------------------------------------------------------------------

def load(uri: str, experiment: str) -> pl.DataFrame:
    """One row per (run, evaluated round): arm, seed, items labeled, kappa, and labels bought from each tier."""
    runs = report.load_runs(uri, [experiment], keys=["arm"]).rename({"value": "kappa"})
    runs = runs.with_columns(pl.col("condition").str.strip_prefix("arm=").str.strip_chars("'"),  # logged as typed
                             items=pl.col("n_labels"))
    for tier in TIERS:
        for what in ("labels", "kappa"):
            extra = report.load_runs(uri, [experiment], metric=f"tier_{tier}_{what}", keys=["arm"])
            runs = runs.join(extra.select("run_id", "n_labels", pl.col("value").alias(f"{tier}_{what}"))
                             .unique(["run_id", "n_labels"], keep="last"), on=["run_id", "n_labels"], how="left")
    return runs.with_columns(pl.col(f"{t}_labels").fill_null(0.0) for t in TIERS)


def matrices(runs: pl.DataFrame, arm: str, prices: dict[str, float]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(money spent so far, kappa), each seeds x rounds, seeds in order."""
    part = runs.filter(pl.col("condition") == arm).sort("seed", "items")
    money = part.select(sum(pl.col(f"{t}_labels") * prices[t] for t in TIERS)).to_series()
    part = part.with_columns(money=money)
    seeds = sorted(set(part["seed"].to_list()))
    rows = [part.filter(pl.col("seed") == s) for s in seeds]
    return np.array([r["money"].to_numpy() for r in rows]), np.array([r["kappa"].to_numpy() for r in rows]), seeds


def money_to(money: np.ndarray, kappa: np.ndarray, target) -> tuple[float, int, float, float]:
    """Money to reach the target on the mean curve over seeds, and its interval (a bootstrap over seeds that
    recomputes the target): (value, status, low, high)."""
    k = stats.t_widening(len(kappa))
    idx = np.random.default_rng(0).integers(0, len(kappa), size=(stats.RESAMPLES, len(kappa)))
    (value,), (status,) = stats.cost_crossings(money.mean(axis=0)[None], kappa.mean(axis=0)[None],
                                               np.array([target(np.arange(len(kappa))[None])[0]]))
    m = kappa.mean(axis=0)
    boot, _ = stats.cost_crossings(money[idx].mean(axis=1), m + k * (kappa[idx].mean(axis=1) - m), target(idx))
    low, high = stats.quantile_interval(boot, len(kappa))
    return float(value), int(status), low, high


def money_text(value: float, status: int, low: float, high: float, exhausts: bool, last: float) -> str:
    if status == stats.RIGHT:
        return ("never (not even with the whole pool)" if exhausts else f"not within its budget (> {last:,.0f})") \
            + f" [{_num(low)}, {_num(high)}]"
    sign = "≤ " if status == stats.LEFT else ""
    return f"{sign}{value:,.0f} [{_num(low)}, {_num(high)}]"


def _num(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:,.0f}"


def factor_text(r: stats.CostReduction) -> str:
    if r.bound == "n/a":
        return "n/a (neither reaches it)"
    if math.isinf(r.factor):
        return f"∞ [{'∞' if math.isinf(r.low) else f'{r.low:.2f}'}, ∞] (the single tier never gets there)"
    lo, hi = ("∞" if math.isinf(v) else f"{v:.2f}" for v in (r.low, r.high))
    return f"{r.bound}{r.factor:.2f} [{lo}, {hi}]"


def words(r: stats.CostReduction) -> str:
    """What the interval of a money factor (single tier / rule) says: the rule cheaper, dearer, or no clear
    difference. Follows the interval, never the point estimate."""
    if r.bound == "n/a" or math.isnan(r.low):
        return "undefined"
    if r.low > 1:
        return "rule cheaper"
    if r.high < 1:
        return "rule dearer"
    return "no clear difference"


@dataclass
class Target:
    name: str
    of: callable  # resampled seed indices (resamples x seeds) -> target per resample
    value: float


def targets(runs: pl.DataFrame) -> list[Target]:
    """The crowd's kappa at the whole pool (its last point) and the expert arm's at its end, each a mean over
    the (resampled) seeds of that arm, so the interval carries the target's own noise."""
    out = []
    for arm, name in (("crowd-random", "the crowd at the whole pool"), ("expert-margin", "the expert arm at its end")):
        _, kappa, _ = matrices(runs, arm, dict.fromkeys(TIERS, 1.0))
        last = kappa[:, -1]
        out.append(Target(name, lambda idx, last=last: last[idx].mean(axis=-1), float(last.mean())))
    return out


def dataset_section(study, runs: pl.DataFrame, name: str, out: Path) -> tuple[list[str], dict, dict]:
    """The dataset's tables and figure; returns (lines, {(ratio, target): [rules that beat every single tier]},
    {(ratio, target): [rules cheaper than the experts alone]})."""
    spec = study.datasets[name]
    arms = [a for a in study.arms if a in set(runs["condition"])]
    seeds = runs.group_by("condition").agg(pl.col("seed").n_unique()).sort("condition")
    lines = [f"## {name}", "", " ".join(str(spec.about).split()), "",
             "Realized quality of each tier (kappa of its answers against the truth it is scored against, over the "
             "items it labelled, mean over seeds at each arm's end) and what the arms bought at their end (mean "
             "over seeds):", "",
             "| arm | seeds | items | cheap labels | crowd labels | expert labels | cheap kappa | crowd kappa | "
             "expert kappa | final kappa |", "|---|---|---|---|---|---|---|---|---|---|"]
    ends = runs.sort("items").group_by("run_id").last()
    for arm in arms:
        e = ends.filter(pl.col("condition") == arm)
        n = seeds.filter(pl.col("condition") == arm)["seed"][0]
        cells = [f"{e['items'].mean():,.0f}"] + [f"{e[f'{t}_labels'].mean():,.0f}" for t in TIERS] + \
            [_mean_or_dash(e[f"{t}_kappa"]) for t in TIERS] + [f"{e['kappa'].mean():.3f}"]
        lines.append(f"| {arm} | {n} | " + " | ".join(cells) + " |")
    wins, over_experts = {}, {}
    tgs = targets(runs)
    for ratio, prices in study.prices.items():
        prices = dict(prices)
        lines += ["", f"### Prices {ratio} (cheap : crowd : expert)", "",
                  "Money to reach each target, read off the mean curve over seeds against the mean money per round, "
                  "with a 95% bootstrap interval over seeds (the target recomputed in every resample; ∞: resamples "
                  "that never get there).", "",
                  "| arm | " + " | ".join(f"money to {t.name} ({t.value:.3f})" for t in tgs) + " |",
                  "|---|" + "---|" * len(tgs)]
        curves = {arm: matrices(runs, arm, prices) for arm in arms}
        for arm in arms:
            money, kappa, _ = curves[arm]
            exhausts = study.arms[arm].budget == "pool"
            lines.append(f"| {arm} | " + " | ".join(money_text(*money_to(money, kappa, t.of), exhausts,
                                                               money.mean(axis=0)[-1]) for t in tgs) + " |")
        rules = [a for a in arms if a not in study.singles]
        singles = [a for a in study.singles if a in arms]
        lines += ["", "Money factor of each routing rule against each single tier (the single tier's money over the "
                  "rule's, paired by seed; > 1: the rule is cheaper; `<`/`>`: a side never reaches the target within "
                  "its budget, so the factor is a bound; ∞: the single tier used the whole pool and never got "
                  "there). The words follow the interval: **rule cheaper** only where its whole interval lies "
                  "above 1.", "",
                  "| rule | target | " + " | ".join(f"vs {s}" for s in singles) + " | beats every single tier |",
                  "|---|---|" + "---|" * (len(singles) + 1)]
        for rule in rules:
            for t in tgs:
                cells, beats = [], True
                for single in singles:
                    r = stats.cost_reduction(*curves[single][:2], *curves[rule][:2], t.of, seed=0,
                                             base_exhausts=study.arms[single].budget == "pool")
                    cells.append(f"{factor_text(r)}: {words(r)}")
                    beats &= words(r) == "rule cheaper"
                    if single == "expert-margin" and words(r) == "rule cheaper":
                        over_experts.setdefault((ratio, t.name), []).append(rule)
                wins.setdefault((ratio, t.name), []).extend([rule] if beats else [])
                over_experts.setdefault((ratio, t.name), [])
                lines.append(f"| {rule} | {t.name} | " + " | ".join(cells) + f" | {'**yes**' if beats else 'no'} |")
        figure(curves, tgs, out / f"tiers-{name}-{ratio.replace(':', '-')}.png", f"{name}, prices {ratio}")
        lines += ["", f"![{name} at {ratio}](tiers-{name}-{ratio.replace(':', '-')}.png)"]
    return lines, wins, over_experts


def main_arms(runs: pl.DataFrame) -> pl.DataFrame:
    """The main study's runs (without the sensitivity arms, named `<arm>@<value>`)."""
    return runs.filter(~pl.col("condition").str.contains("@", literal=True))


def with_setting(runs: pl.DataFrame, value) -> pl.DataFrame:
    """The study as if its sensitivity setting were `value`: each arm run at that value (`<arm>@<value>`) in
    place of the main one; the arms the setting does not touch as they are."""
    suffix = f"@{value}"
    swapped = runs.filter(pl.col("condition").str.ends_with(suffix)).with_columns(
        pl.col("condition").str.strip_suffix(suffix))
    return pl.concat([main_arms(runs).filter(~pl.col("condition").is_in(swapped["condition"].unique().to_list())),
                      swapped])


def sensitivity_lines(study, runs_of: dict[str, pl.DataFrame]) -> list[str]:
    """The verdict across the sensitivity setting (where the simulated cheap tier errs), per dataset."""
    import tempfile

    sens = study.get("sensitivity")
    names = [n for n in (sens.datasets if sens else []) if n in runs_of]
    if not names:
        return []
    values = [*sens["values"], f"{sens.main} (the main study)"]
    lines = ["", "## Sensitivity: where the cheap tier errs", "", " ".join(str(sens.about).split()), "",
             "| dataset | " + sens.name + " | prices | target | rules that beat every single tier | rules cheaper "
             "than the experts alone |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for value in values:
                main = isinstance(value, str)
                runs = main_arms(runs_of[name]) if main else with_setting(runs_of[name], value)
                if not main and not runs_of[name]["condition"].str.ends_with(f"@{value}").any():
                    continue
                _, wins, over = dataset_section(study, runs, name, Path(tmp))
                for (ratio, target), rules in wins.items():
                    lines.append(f"| {name} | {value} | {ratio} | {target} | {', '.join(rules) or 'none'} | "
                                 f"{', '.join(over[(ratio, target)]) or 'none'} |")
    return lines


def _mean_or_dash(col: pl.Series) -> str:
    col = col.drop_nulls().drop_nans() if col.dtype.is_float() else col.drop_nulls()
    return f"{col.mean():.3f}" if len(col) else "–"


ARM_STYLE = {  # arm -> (colour, line style): single tiers solid, routing rules dashed with markers
    "expert-margin": ("#222222", "-"), "crowd-random": ("#1f77b4", "-"), "cheap-margin": ("#8c564b", "-"),
    "cheap>expert-disagreement": ("#d62728", "--"), "cheap>expert-uncertain": ("#ff7f0e", "--"),
    "crowd>expert-confidence": ("#2ca02c", "--"),
}


def figure(curves: dict, tgs: list[Target], path: Path, title: str) -> None:
    """Mean kappa against mean money per round, every arm, with the two targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4))
    for arm, (money, kappa, _) in curves.items():
        color, style = ARM_STYLE.get(arm, ("#9467bd", "--"))
        ax.plot(money.mean(axis=0), kappa.mean(axis=0), style, marker="o" if style == "--" else None, ms=3,
                lw=1.4, color=color, label=arm)
    for t, ls in zip(tgs, (":", "-.")):
        ax.axhline(t.value, color="0.5", ls=ls, lw=0.8, label=f"target: {t.name}")
    ax.set_xscale("log")
    ax.set_xlabel("money spent (mean over seeds)", fontsize=8)
    ax.set_ylabel("kappa on the gold test set", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def write_results(study, uri: str, names: list[str], command: str, out: Path) -> None:
    seconds, peak = invocations(uri, [f"tiers-{n}" for n in names])
    parallel = "two arms at once, one core each"
    sections, wins, over = [], {}, {}
    runs_of = {name: load(uri, f"tiers-{name}") for name in names}
    for name in names:
        lines, w, e = dataset_section(study, main_arms(runs_of[name]), name, out)
        sections += lines + [""]
        for key, rules in w.items():
            wins.setdefault(key, {})[name] = rules
        for key, rules in e.items():
            over.setdefault(key, {})[name] = rules
    verdict = ["## Does routing beat the best single tier?", "",
               "A rule beats the best single tier on a dataset when the interval of its money factor lies above 1 "
               "against every single tier (expert-margin, crowd-random, cheap-margin), so whichever single tier is "
               "cheapest, the rule is cheaper still. Datasets where some rule does:", "",
               "| prices | target | datasets where a rule beats every single tier | rules |", "|---|---|---|---|"]
    sentences = []
    for (ratio, target), by in wins.items():
        hit = {d: r for d, r in by.items() if r}
        verdict.append(f"| {ratio} | {target} | {len(hit)} of {len(by)} | "
                       + ("; ".join(f"{d}: {', '.join(r)}" for d, r in hit.items()) or "none") + " |")
        sentences.append(f"at {ratio}, to reach {target}: a routing rule beats every single tier on {len(hit)} of "
                         f"{len(by)} datasets" + (" (at least 2: **yes**)" if len(hit) >= 2 else
                                                  " (fewer than 2: **no**)"))
    verdict += ["", "In words: " + "; ".join(sentences) + ".", "",
                "Against the experts alone (expert-margin, the seed's method without a cheap tier): datasets where "
                "some rule reaches the target for less money, the whole interval of its factor above 1:", "",
                "| prices | target | datasets | rules |", "|---|---|---|---|"]
    for (ratio, target), by in over.items():
        hit = {d: r for d, r in by.items() if r}
        verdict.append(f"| {ratio} | {target} | {len(hit)} of {len(by)} | "
                       + ("; ".join(f"{d}: {', '.join(r)}" for d, r in hit.items()) or "none") + " |")
    verdict += sensitivity_lines(study, runs_of)
    head = ["# The tiered-labelling study: results", "",
            "Regenerated by the command below from the MLflow runs. Which items go to whom: routing rules of "
            "`oracle=tiers` (cheap labels for every selected item, experts for some) against each single tier "
            "(experts with active learning, a 3-rater crowd at random, the cheap tier alone with active learning), "
            "in money, at two price ratios. Every arm of a dataset shares each seed's split, first draw, features, "
            "model (logistic regression, its threshold tuned for kappa on out-of-fold predictions of its own labels) "
            "and gold test set. Money is computed from the labels each arm bought from each tier; no rule reads a "
            "price, so one set of runs serves both ratios.", "",
            f"- command: `{command}`",
            f"- wall time: {seconds / 60:.1f} min, the invocations that ran arms together ({parallel}); peak memory "
            f"{peak:,.0f} MB (the largest arm process)",
            f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            f"- seeds per arm: {study.seeds}", ""]
    (out / "RESULTS.md").write_text("\n".join(head + verdict + [""] + sections))
    say(f"wrote {out / 'RESULTS.md'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a CI-sized run of the same pipeline")
    parser.add_argument("--report-only", action="store_true", help="rebuild RESULTS.md from the runs logged")
    parser.add_argument("--only", nargs="*", help="datasets to run (default: all)")
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md and figures go")
    parser.add_argument("--parallel", type=int, default=2, help="arms run at once (one core each)")
    args = parser.parse_args(argv)
    study = OmegaConf.load(HERE / "study.yaml")
    uri = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    budgets, seeds_n, names = study.budgets, study.seeds, list(study.datasets)
    data = {name: list(study.datasets[name].data) for name in names}
    if args.quick:
        q = study.quick
        budgets, seeds_n, names = q.budgets, q.seeds, list(q.datasets)
        data.update({k: list(v) for k, v in q.data.items()})
        study.seeds = seeds_n
        study.sensitivity["values"] = list(q.sensitivity_values)
    names = [n for n in names if not args.only or n in args.only]
    tracking.ensure_store(uri)
    started = time.perf_counter()
    if not args.report_only:
        arms = [a for name in names for a in arms_of(study, name, data[name], list(range(seeds_n)), budgets)]
        say(f"{len(arms)} arms, {seeds_n} seeds each, into {uri}")
        with ThreadPoolExecutor(args.parallel) as pool:
            results = list(pool.map(lambda a: run_arm(a, uri), arms))
        if any(math.isnan(r) for r in results):
            sys.exit("some arms failed (above); fix and run again: finished seeds are kept")
        record(uri, [f"tiers-{n}" for n in names], time.perf_counter() - started)
    command = "python simulations/tiered_labelling/run.py" + (" --quick" if args.quick else "") + \
        (f" --only {' '.join(args.only)}" if args.only else "")
    write_results(study, uri, names, command, args.out)


def record(uri: str, experiments: list[str], seconds: float) -> None:
    """Add this invocation's wall time and the peak memory of its largest arm process to each experiment's tags
    (`tiers.invocations`), so a report rebuilt later still says what the runs cost."""
    client = tracking.client(uri)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    for name in experiments:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            continue
        done = json.loads(exp.tags.get("tiers.invocations", "[]"))
        done.append({"seconds": round(seconds, 1), "peak_mb": round(peak), "cores": os.cpu_count()})
        client.set_experiment_tag(exp.experiment_id, "tiers.invocations", json.dumps(done))


def invocations(uri: str, experiments: list[str]) -> tuple[float, float]:
    """(wall seconds of the invocations that ran arms, largest peak MB), counted once per invocation."""
    client = tracking.client(uri)
    seen = {}
    for name in experiments:
        exp = client.get_experiment_by_name(name)
        for i, inv in enumerate(json.loads(exp.tags.get("tiers.invocations", "[]")) if exp else []):
            seen[(i, inv["seconds"])] = inv
    return sum(v["seconds"] for v in seen.values()), max((v["peak_mb"] for v in seen.values()), default=0)


if __name__ == "__main__":
    main()
