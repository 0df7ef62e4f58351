"""The claim study, end to end: run every arm of study.yaml with alexp, then write RESULTS.md and figures.

    python simulations/reduction_claim/run.py                  # the full study (RESULTS.md gives its wall time)
    python simulations/reduction_claim/run.py --quick          # a CI-sized run of the same pipeline
    python simulations/reduction_claim/run.py --report-only    # rebuild RESULTS.md from the runs already logged
    python simulations/reduction_claim/run.py --base-seed 100 --only davidson --primary-only   # a replication

Runs go to the MLflow store in $MLFLOW_TRACKING_URI (default sqlite:///mlflow.db in the working directory), one
experiment per dataset (`claim-<dataset>`, `-b<base seed>` for other seeds); an arm whose seeds are all logged as
finished is not run again, and of an arm cut short only the missing seeds run. Two arms run at once, one core
each (`--parallel`); every arm is one `alexp -m` sweep over its seeds.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import subprocess
import threading
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl
from omegaconf import OmegaConf

from alexp import AlexpError, report, tracking
from alexp.report import stats, tables
from alexp.report.figures import figures

HERE = Path(__file__).resolve().parent
ROUND_METRICS = ("average_precision", "curated_kappa", "common_curated_kappa", "oracle_kappa", "pick_distance",
                 "pairs_overlap_share", "pairs_fallback", "pairs_contact_ratio", "panel_kappa")


# --- the arms ------------------------------------------------------------------------------------------------

@dataclass
class Arm:
    experiment: str
    name: str  # the condition: <label source>-<acquisition>
    overrides: list[str]
    seeds: list[int]
    weight: float  # a rough cost, to start the longest arms first


def log_schedule(first: int, last: int, per_decade: int) -> list[int]:
    """Label counts from `first` to `last`, `per_decade` per factor of 10 (rounded, distinct)."""
    n = int(round(math.log10(last / first) * per_decade)) + 1
    return sorted({v for i in range(n) if (v := int(round(first * 10 ** (i / per_decade)))) < last} | {last})


def curated_points(budget: list[str]) -> list[int]:
    """The label counts a budget's rounds end at (initial, then + batch_size per round)."""
    b = dict(o.split("=", 1) for o in budget)
    initial, batch, rounds = (int(b[f"budget.{k}"]) for k in ("initial", "batch_size", "rounds"))
    return [initial + batch * r for r in range(rounds + 1)]


def crowd_points(points: list[int], study, last: int) -> list[int]:
    """The random crowd arms' judgment counts: every curated point, then log-spaced up to `last` (the whole pool,
    or max_labels), which always ends the schedule: a pool smaller than `crowd_schedule.from` continues from the
    last curated point, so the crowd's plateau is never read off the curated budget's end."""
    within = [p for p in points if p <= last]
    start = study.crowd_schedule["from"] if last > study.crowd_schedule["from"] else max(within, default=1)
    tail = log_schedule(start, last, study.crowd_schedule.per_decade) if last > start else [last]
    return sorted(set(within) | set(tail))


def schedule(counts: list[int]) -> str:
    return f"budget.schedule=[{','.join(map(str, counts))}]"


def curated(study, spec) -> list[str]:
    """Overrides that score an arm also on the seed's curated set, labelled by the dataset's experts: their
    oracle overrides moved under curated_set.oracle (`oracle=X` -> `+oracle@curated_set.oracle=X`)."""
    if not study.get("curated_set"):
        return []
    out = [f"+curated_set.size={study.curated_set}"]
    for o in spec.oracles.expert:
        key, value = o.split("=", 1)
        plus = key.startswith("+")
        key = key.lstrip("+")
        out.append(f"+oracle@curated_set.oracle={value}" if key == "oracle" else
                   f"{'+' if plus else ''}curated_set.{key}={value}")
    return out


def dataset_arms(study, spec, experiment: str, pool: int, seeds: list[int], strategies: list[str],
                 budget: list[str], only: list[str] | None = None) -> list[Arm]:
    """The arms of one dataset: the strategies with experts, the seed's method with the crowd, random experts,
    the random single-vote crowd and the random k-vote crowd (both on to the plateau)."""
    o, k = spec.oracles, study.votes
    points = curated_points(budget)
    last = min(spec.max_labels, pool)
    out = {f"expert-{s}": [f"acquisition={s}", *study.strategy_overrides[s], *o.expert, *budget] for s in strategies}
    out["crowd-boundary_pairs"] = ["acquisition=boundary_pairs", *study.strategy_overrides.boundary_pairs,
                                   *o.crowd, *budget]
    out["expert-random"] = ["acquisition=random", *o.expert, *budget]
    out["crowd-random"] = ["acquisition=random", *o.crowd, schedule(crowd_points(points, study, last))]
    votes = sorted({p // k for p in crowd_points(points, study, min(spec.max_labels, k * pool))})
    out[f"crowd{k}-random"] = ["acquisition=random", *o.crowd_votes, schedule(votes)]
    if study.primary.condition in out:  # every stopping rule evaluated each round, logged (the picks are unchanged)
        out[study.primary.condition] += list(study.primary.get("stopping", []))
    weight = {"crowd-random": last / 50, f"crowd{k}-random": last / 50}
    return [Arm(experiment, name, [*spec.data, *study.common, *ov, *curated(study, spec)], seeds,
                weight.get(name, 10) * pool ** 0.5) for name, ov in out.items() if only is None or name in only]


def quality_arms(study, spec, experiment: str, pool: int, seeds: list[int], budget: list[str], kappas) -> list[Arm]:
    """The seed's method with experts of other qualities (the expert oracle with another kappa)."""
    q = study.quality
    out = []
    for kappa in kappas:
        expert = [o for o in spec.oracles.single_expert if not o.startswith("oracle.kappa=")] + [
            f"oracle.kappa={kappa}"]
        out.append(Arm(experiment, f"expert{kappa:g}-{q.acquisition}",
                       [*spec.data, *study.common, f"acquisition={q.acquisition}",
                        *study.strategy_overrides[q.acquisition], *expert, *budget, *curated(study, spec)], seeds,
                       10 * pool ** 0.5))
    return out


def sensitivity_arms(study, spec, experiment: str, pool: int, seeds: list[int], budget: list[str],
                     crowd_kappa: float, concentrations) -> list[Arm]:
    """The primary comparison across the crowd's error structure, in its own experiment: a simulated crowd at
    each concentration (random, on to the pool) and an expert of the same structure (kappa .8 over the pool) with
    the seed's method; the study's own expert (calibrated on hard items) is read from the dataset's experiment."""
    source = [o for o in spec.oracles.single_expert if o.startswith("oracle.difficulty=")]
    last = min(spec.max_labels, pool)
    acq = study.primary.condition.split("-", 1)[1]
    out = []
    for c in concentrations:
        oracle = ["oracle=difficulty", *source, f"oracle.concentration={c}"]
        out.append(Arm(experiment, f"crowd-random-c{c:g}",
                       [*spec.data, *study.common, "acquisition=random", *oracle, f"oracle.kappa={crowd_kappa}",
                        schedule(crowd_points(curated_points(budget), study, last)), *curated(study, spec)], seeds,
                       last))
        out.append(Arm(experiment, f"expert-{acq}-c{c:g}",
                       [*spec.data, *study.common, f"acquisition={acq}", *study.strategy_overrides[acq], *oracle,
                        "oracle.kappa=0.8", *budget, *curated(study, spec)], seeds, 10 * pool ** 0.5))
    return out


def group_choices(overrides: list[str]) -> dict[str, str]:
    """The config groups an arm picks (`acquisition=margin`, `stopping=all`), as its runs log them as params."""
    groups = {p.name for p in resources.files("alexp.conf").iterdir() if p.is_dir() and p.name != "__pycache__"}
    return dict(o.split("=", 1) for o in overrides if o.split("=", 1)[0] in groups)


def arm_done(client, arm: Arm) -> tuple[list[int], list[str]]:
    """The arm's seeds that have no finished run yet, and its stale runs: finished runs of the arm logged with
    other config groups than it now picks (study.yaml changed since), to be replaced."""
    exp = client.get_experiment_by_name(arm.experiment)
    if exp is None:
        return list(arm.seeds), []
    runs = client.search_runs([exp.experiment_id], f"params.arm = '{arm.name}' and attributes.status = 'FINISHED'",
                              max_results=10_000)
    picks = group_choices(arm.overrides)
    current = {r.info.run_id: r for r in runs if all(r.data.params.get(k) == v for k, v in picks.items())}
    finished = {int(r.data.params["seed"]) for r in current.values()}
    stale = [r.info.run_id for r in runs if r.info.run_id not in current]
    return [s for s in arm.seeds if s not in finished], stale


_PRINT = threading.Lock()  # two arms run at once: one line at a time


def say(line: str) -> None:
    with _PRINT:
        print(line, flush=True)


def run_arm(arm: Arm, uri: str) -> float:
    """Run the arm's missing seeds (one `alexp -m` sweep, jobs one by one); returns its wall seconds. Stale runs
    are deleted first (MLflow keeps them restorable: `mlflow gc` is what removes them for good)."""
    client = tracking.client(uri)
    missing, stale = arm_done(client, arm)
    for run_id in stale:
        client.delete_run(run_id)
    if stale:
        say(f"  {arm.experiment} {arm.name}: {len(stale)} runs of an earlier configuration deleted")
    if not missing:
        say(f"  {arm.experiment} {arm.name}: already logged, skipped")
        return 0.0
    cmd = ["alexp", "-m", *arm.overrides, f"seed={','.join(map(str, missing))}", f"+arm={arm.name}",
           f"tracking.experiment_name={arm.experiment}", "hydra/launcher=basic"]
    started = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        say(f"  {arm.experiment} {arm.name} FAILED:\n{done.stderr[-3000:]}\ncommand: {' '.join(cmd)}")
        return math.nan
    seconds = time.perf_counter() - started
    say(f"  {arm.experiment} {arm.name}: {len(missing)} seeds in {seconds:.0f} s")
    return seconds


def prepare(spec_data: list[str], study, warm_oracle: list[str], seeds: list[int]) -> dict:
    """Build each seed's run once, with every core, before parallel arms need it: this caches the features
    (sentence embeddings) and the expert oracle's reference difficulties of each seed's pool, exactly as the runs
    read them (alexp.runner.build); returns the pool's size and positive share."""
    from alexp import runner

    for seed in seeds:
        parts = runner.build(runner.compose([*spec_data, *study.common, *warm_oracle, f"seed={seed}"]))
    return {"pool": parts.n_pool, "test": len(parts.test_rows), "positive_share": float(parts.table.y.mean())}


# --- the analysis --------------------------------------------------------------------------------------------

def load(uri: str, experiment: str) -> pl.DataFrame:
    """One row per (run, evaluated round): condition (the arm), seed, `n_labels` = judgments bought (cost; every
    oracle charges 1 per answer), `items` labeled, kappa as `value`, and the other per-round metrics."""
    runs = report.load_runs(uri, [experiment], keys=["arm"])
    runs = runs.with_columns(pl.col("condition").str.strip_prefix("arm="), items=pl.col("n_labels"),
                             n_labels=pl.col("cost").round().cast(pl.Int64))
    for m in ROUND_METRICS:
        try:
            extra = report.load_runs(uri, [experiment], metric=m, keys=["arm"])
        except AlexpError:
            continue
        runs = runs.join(extra.select("run_id", pl.col("n_labels").alias("items"), pl.col("value").alias(m))
                         .unique(["run_id", "items"], keep="last"), on=["run_id", "items"], how="left")
    return runs


def at(runs: pl.DataFrame, condition: str, n: int, column: str = "value") -> dict[int, float]:
    """seed -> the condition's `column` at `n` judgments."""
    part = runs.filter(pl.col("condition") == condition, pl.col("n_labels") == n)
    return dict(zip(part["seed"].to_list(), part[column].to_list()))


def plateau_by_seed(runs: pl.DataFrame, condition: str, points: int = stats.PLATEAU_POINTS) -> dict[int, float]:
    """seed -> mean kappa over the condition's last `points` judgment counts (its plateau)."""
    part = runs.filter(pl.col("condition") == condition).sort("seed", "n_labels")
    return {s: float(g["value"].tail(points).mean()) for (s,), g in part.group_by("seed", maintain_order=True)}


def indiscriminate(study, runs: pl.DataFrame, end: int) -> str | None:
    """Why a dataset cannot test a claim about label quality, or None when it can: the seed's method with the
    lowest- and highest-quality experts of the quality arms ends within each other's intervals at `end`."""
    acq, kappas = study.quality.acquisition, list(study.quality.kappas)
    if min(kappas) == max(kappas):
        return None
    low, high = at(runs, f"expert{min(kappas):g}-{acq}", end), at(runs, f"expert{max(kappas):g}-{acq}", end)
    if len(low) < stats.MIN_SEEDS or len(high) < stats.MIN_SEEDS:
        return None
    (ml, ll, hl), (mh, lh, hh) = stats.mean_interval(list(low.values())), stats.mean_interval(list(high.values()))
    if hl < lh or hh < ll:
        return None
    return (f"with experts of kappa {min(kappas):g} and {max(kappas):g} the seed's method ends at {ml:.3f} "
            f"[{ll:.3f}, {hl:.3f}] and {mh:.3f} [{lh:.3f}, {hh:.3f}] at {end} judgments, within each other's "
            "intervals: on this data the model learns as well from poor labels as from perfect ones, so no "
            "comparison of label sources here can speak to the claim")


def crowd_level(runs: pl.DataFrame, condition: str) -> dict:
    """Where the crowd's curve stands at its end: its plateau (mean curve's last 3 points), a power-law fit's
    asymptote (capped at kappa 1), and whether it is still rising (its per-seed rise over the last 3 points has
    an interval above 0 and a mean of at least 0.01), in words."""
    part = runs.filter(pl.col("condition") == condition)
    wide = part.pivot(on="seed", index="n_labels", values="value", aggregate_function="first").sort("n_labels")
    wide = wide.drop_nulls()
    labels, values = wide["n_labels"].to_numpy().astype(float), wide.drop("n_labels").to_numpy().T
    mean = values.mean(axis=0)
    fit = stats.power_law_fit(labels, mean)
    still, rise, low, high = stats.rising(values)
    asymptote = ("not fitted" if fit is None else
                 f"{fit['a']:.3f}" + (" (at the cap: not identified)" if fit["at_bound"] else ""))
    return {"plateau": stats.plateau(mean), "asymptote": asymptote, "still_rising": still,
            "rising": (f"the crowd is still rising at its end ({rise:+.3f} [{low:+.3f}, {high:+.3f}] kappa over its "
                       "last 3 points), so more crowd labels would raise the bar" if still else
                       f"the crowd has levelled off ({rise:+.3f} [{low:+.3f}, {high:+.3f}] kappa over its last 3 "
                       "points)")}


def paired_row(cond: dict[int, float], base: dict[int, float]) -> dict:
    seeds = sorted(set(cond) & set(base))
    return stats.paired([cond[s] - base[s] for s in seeds])


def ci(t) -> str:
    return "–" if t is None else tables.interval(*t)


def mean_ci(values) -> str:
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    return ci(stats.mean_interval(v)) if len(v) else "–"


def fmt_p(p: float) -> str:
    return "–" if math.isnan(p) else f"{p:.3g}"


def money_text(r: dict | None, ratio: float) -> str:
    """A reduction factor divided by an expert:crowd price ratio, with its interval and what the interval lets
    us say: experts cheaper (all of it above 1), crowd cheaper (all below 1), or no clear difference ('–' where
    the factor is undefined). A censored factor quotes its interval's end, the bound the data support: '< 0.30'
    when the expert arm never gets there (the upper end), '> 2.10' when the crowd never does (the lower end)."""
    if r is None or r["problem"] or r["bound"] == "n/a" or math.isnan(r["reduction"]):
        return "–"
    low, high = r["reduction_low"] / ratio, r["reduction_high"] / ratio
    if math.isnan(low):
        return f"{r['bound']} {r['reduction'] / ratio:.2f}".strip()
    word = "experts cheaper" if low > 1 else "crowd cheaper" if high < 1 else "no clear difference"
    if r["bound"] in ("<", "<="):
        return f"< {tables.fmt_factor(high)}: {word}"
    if r["bound"] in (">", ">="):
        return f"> {tables.fmt_factor(low)}: {word}"
    return f"{r['reduction'] / ratio:.2f} [{tables.fmt_factor(low)}, {tables.fmt_factor(high)}]: {word}"


def money_targets(runs: pl.DataFrame, pc: str, pb: str, end: int, crowd_end: int) -> dict[str, dict | None]:
    """The reduction of `pc` against `pb` at three absolute targets: 95% and 100% of the crowd's kappa at its
    last point, and the expert arm's own kappa at its whole budget (the crowd's cheapest target, its own level,
    and the experts' level), each a report reduction row."""
    crowd = float(np.mean(list(at(runs, pb, crowd_end).values())))
    expert = float(np.mean(list(at(runs, pc, end).values())))
    out = {}
    for name, target in ((f"95% of the crowd at its end ({0.95 * crowd:.3f})", 0.95 * crowd),
                         (f"the crowd at its end ({crowd:.3f})", crowd),
                         (f"the experts at {end} ({expert:.3f})", expert)):
        rows = report.summarize(runs, [(pc, pb)], report.Settings(target=target)).reductions
        out[name] = next(rows.iter_rows(named=True), None)
    return out


def reduction_verdict(r: dict | None) -> str:
    """The report's words for a reduction row: fewer / more labels, or no clear difference, by its interval."""
    if r is None:
        return "–"
    word, why = tables.verdict_word(r)
    return {"fewer": "fewer labels", "more": "more labels", "": f"no clear difference ({why})"}[word]


def verdict_row(cond: dict[int, float], base: dict[int, float], margin: float, family: int = 1) -> dict:
    """The paired row of a non-inferiority comparison (wins, losses, Wilcoxon p), with the interval, the
    Bonferroni-adjusted one-sided p-values and the verdict words of `stats.noninferiority` over a `family` of
    such verdicts."""
    seeds = sorted(set(cond) & set(base))
    diffs = [cond[s] - base[s] for s in seeds]
    ni = stats.noninferiority(diffs, margin, family)
    return {**stats.paired(diffs), **ni, "verdict": stats.noninferiority_verdict(ni)}


def stop_points(runs: pl.DataFrame, stops: pl.DataFrame, condition: str, rule: str) -> dict[int, tuple[int, float]]:
    """seed -> (judgments, kappa) where the rule first fired: the first evaluated point at or after the label count
    it fired at, or the seed's last point when it never fired (it would have spent the whole budget)."""
    fired = {r["seed"]: r["stop_at"] for r in stops.filter(pl.col("condition") == condition,
                                                          pl.col("rule") == rule).iter_rows(named=True)}
    out = {}
    for (seed,), g in runs.filter(pl.col("condition") == condition).sort("items").group_by("seed"):
        after = g.filter(pl.col("items") >= fired[seed]) if fired.get(seed) is not None else g.clear()
        row = after.row(0, named=True) if after.height else g.row(-1, named=True)
        out[seed] = (int(row["n_labels"]), float(row["value"]))
    return dict(sorted(out.items()))


def stopping_rows(study, uri: str, runs: pl.DataFrame, base: dict[int, float], end: int) -> list[dict]:
    """What each stopping rule would have spent on the primary comparison: per rule, the judgments at its stop
    (median over seeds, 10th and 90th percentile seeds' own values), the seeds it fired in, kappa there, its change
    against the whole budget and its paired difference from the crowd at its last point, with the verdict there."""
    pc, margin = study.primary.condition, study.primary.margin
    stops = report.load_stops(uri, runs.filter(pl.col("condition") == pc))
    full = at(runs, pc, end)
    rows = []
    for rule in sorted(stops["rule"].unique()):
        points = stop_points(runs, stops, pc, rule)
        spent = np.array([n for n, _ in points.values()])
        kappa = {seed: v for seed, (_, v) in points.items()}
        diff = verdict_row(kappa, base, margin)
        rows.append({"rule": rule, "seeds": len(points),
                     "fired": int(stops.filter(pl.col("rule") == rule)["stop_at"].is_not_null().sum()),
                     "median": float(np.median(spent)),
                     "p10": int(np.percentile(spent, 10, method="inverted_cdf")),
                     "p90": int(np.percentile(spent, 90, method="inverted_cdf")),
                     "kappa": mean_ci(kappa.values()), "change": paired_row(kappa, full), "diff": diff,
                     "verdict": diff["verdict"]})
    return rows


def stopping_lines(study, rows: list[dict], end: int, verdict: str) -> list[str]:
    """The stopping table of the primary condition, and the rule that stops earliest within the margin."""
    margin = study.primary.margin
    safe = sorted((r for r in rows if r["fired"] * 2 >= r["seeds"] and r["change"]["mean_diff"] >= -margin),
                  key=lambda r: (r["median"], -r["change"]["mean_diff"]))
    if safe:
        r = safe[0]
        best = (f"Of the rules that fired in at least half the seeds and stayed within {margin} kappa of the whole "
                f"budget, **{r['rule']}** stops earliest: median {r['median']:.0f} of {end} judgments (fired in "
                f"{r['fired']} of {r['seeds']} seeds); the verdict there is **{r['verdict']}** ({verdict} at the "
                "whole budget).")
    else:
        best = (f"No rule fired in at least half the seeds within {margin} kappa of the whole budget: the whole "
                "budget is the safe choice here.")
    lines = [f"**Stopping rules on the primary comparison.** Each rule is evaluated every round of `"
             f"{study.primary.condition}`'s runs (it does not end them): judgments at its stop (median over seeds; "
             "in brackets the 10th and 90th percentile seeds' own values; a seed where it never fired stops at the "
             f"whole budget), kappa there, its change against the whole budget ({end}), and the primary comparison "
             "at the stop (paired by seed against the crowd at its last point, not adjusted for the family) with "
             "its verdict. " + best, "",
             "| rule | judgments at stop | fired | kappa at stop | change against the whole budget | "
             "difference from the crowd at its end | verdict at stop |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        c, d = r["change"], r["diff"]
        lines.append(f"| {r['rule']} | {r['median']:.0f} [{r['p10']}–{r['p90']}] | {r['fired']} / {r['seeds']} | "
                     f"{r['kappa']} | {tables.interval(c['mean_diff'], c['diff_low'], c['diff_high'])} | "
                     f"{tables.interval(d['mean_diff'], d['diff_low'], d['diff_high'])} | {r['verdict']} |")
    return [*lines, ""]


@dataclass
class Section:
    experiment: str
    lines: list[str]
    primary: dict | None  # the pre-declared comparison's paired row, with its verdict
    finals: dict[str, dict[int, float]]  # condition -> seed -> kappa at the last curated point
    runs: pl.DataFrame  # what `load` read, for the sections that look at this experiment again


def section(study, uri: str, experiment: str, title: str, about: str, info: dict, budget: list[str], out: Path,
            primary_only: bool = False, family: int = 1) -> Section:
    """One dataset's section; its primary verdict is one of a `family` of verdicts (Bonferroni)."""
    runs = load(uri, experiment)
    conditions = runs["condition"].unique(maintain_order=True).sort().to_list()
    points = curated_points(budget)
    end, k = points[-1], study.votes
    pc, pb, margin = study.primary.condition, study.primary.baseline, study.primary.margin
    lines = [f"### {title}", "", about, "",
             f"Pool {info['pool']:,} rows, gold test set {info['test']:,}, positives {info['positive_share']:.1%}. "
             f"Seeds per condition: {runs.group_by('condition').agg(pl.col('seed').n_unique())['seed'].min()}.", ""]
    primary = None
    if pc in conditions and pb in conditions:
        crowd_end = int(runs.filter(pl.col("condition") == pb)["n_labels"].max())
        base = at(runs, pb, crowd_end)  # the crowd at its last point: the whole pool, or max_labels
        primary = verdict_row(at(runs, pc, end), base, margin, family)
        level = crowd_level(runs, pb)
        primary["money"] = money_targets(runs, pc, pb, end, crowd_end)
        level["where"] = ("the whole pool" if crowd_end >= info["pool"] else
                          f"its max_labels, of a {info['pool']:,}-row pool")
        primary.update(end=end, crowd_end=crowd_end, cond_mean=mean_ci(at(runs, pc, end).values()),
                       base_mean=mean_ci(base.values()), crowd=level)
        lines += [f"**Primary comparison (pre-declared):** `{pc}` at {end} labels minus `{pb}` at its last point "
                  f"({crowd_end:,} labels: {level['where']}), paired by seed: "
                  f"{tables.interval(primary['mean_diff'], primary['diff_low'], primary['diff_high'])} kappa over "
                  f"{primary['seeds']} seeds (interval at {1 - 0.05 / family:.2%}, Bonferroni over {family} primary "
                  f"verdicts; {primary['wins']} wins, {primary['losses']} losses). {primary['cond_mean']} against "
                  f"{primary['base_mean']}: **{primary['verdict']}** (margin {margin}). Beside it, the crowd's "
                  f"plateau (mean of its last 3 points) is {level['plateau']:.3f} and a power law's asymptote, "
                  f"capped at kappa 1, {level['asymptote']}; {level['rising']}.", ""]
        primary["stopping"] = stopping_rows(study, uri, runs, base, end)
        if primary["stopping"]:
            lines += stopping_lines(study, primary["stopping"], end, primary["verdict"])
    finals = {c: at(runs, c, end) for c in conditions}
    if primary_only:
        if primary is not None:
            rows = report.summarize(runs, [(pc, pb)]).reductions
            primary["reduction"] = next(rows.iter_rows(named=True), None)
        return Section(experiment, lines, primary, finals, runs)

    # every arm at every curated budget point
    lines += [f"Kappa on the gold test set at each budget point of the curated arms (judgments bought; a "
              f"{k}-vote crowd item costs {k}), mean [95% interval] over seeds:", "",
              "| condition | " + " | ".join(map(str, points)) + " | at its end |",
              "|---|" + "---|" * (len(points) + 1)]
    for c in conditions:
        cells = [mean_ci(at(runs, c, p).values()) for p in points]
        last = int(runs.filter(pl.col("condition") == c)["n_labels"].max())
        tail = f"{mean_ci(plateau_by_seed(runs, c).values())} (plateau to {last:,})" if last > end else ""
        lines.append(f"| {c} | " + " | ".join(cells) + f" | {tail} |")
    lines += ["", f"At {end} judgments: threshold-free average precision, curated kappa (against the held-out "
              "labels of the arm's own oracle, as the seed scored), kappa on the seed's common curated set (the "
              "same items, labelled by the dataset's experts, for every arm), the realized kappa of the labels "
              "bought against the truth (oracle kappa; for real votes, against the votes not drawn) and, for a "
              "panel, how well its experts agree with each other on the items they labelled:", "",
              "| condition | AP (gold) | curated kappa | common curated kappa | oracle kappa on its labels | "
              "experts' mutual kappa |", "|---|---|---|---|---|---|"]
    for c in conditions:
        cells = [mean_ci(at(runs, c, end, m).values()) if m in runs.columns else "–"
                 for m in ("average_precision", "curated_kappa", "common_curated_kappa", "oracle_kappa",
                           "panel_kappa")]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")

    # exploratory paired comparisons at the curated budget, Holm within the dataset
    rows = []
    for c in [c for c in conditions if c.startswith("expert") and c != "expert-random"]:
        for b in ("expert-random", "crowd-boundary_pairs", "crowd-random", f"crowd{k}-random"):
            if b in conditions:
                rows.append({"condition": c, "baseline": b, **paired_row(finals[c], finals[b])})
    if rows:
        holm = stats.holm([r["wilcoxon_p"] for r in rows])
        lines += ["", f"Exploratory: paired differences in kappa at {end} judgments (condition - baseline, per seed; "
                  f"Wilcoxon p, Holm-adjusted over these {len(rows)} tests):", "",
                  "| condition | baseline | difference | wins / losses | p | Holm p |", "|---|---|---|---|---|---|"]
        for r, h in zip(rows, holm):
            lines.append(f"| {r['condition']} | {r['baseline']} | "
                         f"{tables.interval(r['mean_diff'], r['diff_low'], r['diff_high'])} | {r['wins']} / "
                         f"{r['losses']} | {r['wilcoxon_p']:.3g} | {h:.3g} |")

    # reductions and cost against the single-vote crowd
    pairs = [(c, pb) for c in conditions if c.startswith("expert") and pb in conditions]
    rep = report.summarize(runs, pairs)
    if primary is not None:
        primary["reduction"] = next((r for r in rep.reductions.iter_rows(named=True) if r["condition"] == pc), None)
    if rep.reductions.height:
        ratios = list(study.cost_ratios)
        lines += ["", f"Labels to the target (95% of `{pb}`'s plateau) and the reduction factor (crowd judgments / "
                  "expert judgments to reach it; paired bootstrap interval; the verdict follows the interval). At "
                  "an expert:crowd price ratio R, experts are cheaper for the same agreement only if the whole "
                  "interval of the factor exceeds R; the money factor is factor / R.", "",
                  "| condition | target | crowd needs | condition needs | reduction factor | verdict | "
                  "seeds reaching | " + " | ".join(f"money factor at {r}x" for r in ratios) + " |",
                  "|---|---|---|---|---|---|---|" + "---|" * len(ratios)]
        for r in rep.reductions.iter_rows(named=True):
            money = [money_text(r, x) for x in ratios]
            target = "undefined" if r["problem"] else f"{r['target']:.3f}"
            lines.append(f"| {r['condition']} | {target} | "
                         f"{tables.fmt_labels(r['baseline_labels'], r['baseline_status'], r['baseline_max_labels'])} | "
                         f"{tables.fmt_labels(r['labels'], r['status'], r['max_labels'])} | "
                         f"{tables.reduction_text(r)} | {reduction_verdict(r)} | "
                         f"{r['seeds_reached']}/{r['seeds']} | "
                         + " | ".join(money) + " |")

    # boundary_pairs fidelity, beside the other strategies' distance from the threshold
    fid = [c for c in conditions if "pick_distance" in runs.columns and not c.endswith("-random")]
    if fid:
        lines += ["", "What the strategies picked, per round (mean over seeds): the median distance of the picks' "
                  "probability from the decision threshold; for boundary_pairs also the share of opposite-label "
                  "cluster pairs that overlapped (contact ratio <= 1), their median contact ratio, and how many "
                  "of the batch margin sampling filled.", "",
                  "| condition | labels | pick distance | overlap share | contact ratio | margin fallback |",
                  "|---|---|---|---|---|---|"]
        for c in fid:
            part = runs.filter(pl.col("condition") == c, pl.col("pick_distance").is_not_null())
            for (n,), g in part.group_by("n_labels", maintain_order=True):
                cells = [_mean(g, col) for col in ("pick_distance", "pairs_overlap_share", "pairs_contact_ratio",
                                                   "pairs_fallback")]
                lines.append(f"| {c} | {n} | " + " | ".join(cells) + " |")

    targets = {b: t for b, t in zip(rep.reductions["baseline"], rep.reductions["target"])} \
        if rep.reductions.height else {}
    drawn = figures(rep.curves, out, title, "kappa", targets, {pb, f"crowd{k}-random"}, prefix=f"{experiment}-",
                    counted="judgments bought", marked=pc)
    lines += ["", *[f"![{f.name}]({f.name}) ([pdf]({f.with_suffix('.pdf').name}))" for f in drawn], ""]
    return Section(experiment, lines, primary, finals, runs)


def _mean(frame: pl.DataFrame, column: str) -> str:
    v = frame[column].fill_nan(None).drop_nulls() if column in frame.columns else pl.Series([], dtype=pl.Float64)
    return f"{v.mean():.3f}" if v.len() else "–"


def quality_lines(study, runs: pl.DataFrame, end: int) -> list[str]:
    """The seed's method at each expert quality: kappa at the curated budget, and adjacent steps paired by seed."""
    q = study.quality
    levels = sorted({float(c.split("-")[0].removeprefix("expert") or 0.8): c for c in runs["condition"].unique()
                     if c.endswith(f"-{q.acquisition}") and c.startswith("expert")}.items())
    if len(levels) < 2:
        return []
    lines = ["| expert kappa (calibrated on the hardest 7%) | realized on its labels | kappa (gold) at "
             f"{end} | curated kappa |", "|---|---|---|---|"]
    for level, c in levels:
        lines.append(f"| {level:g} | {mean_ci(at(runs, c, end, 'oracle_kappa').values())} | "
                     f"{mean_ci(at(runs, c, end).values())} | {mean_ci(at(runs, c, end, 'curated_kappa').values())} |")
    steps = [(a, b, paired_row(at(runs, cb, end), at(runs, ca, end))) for (a, ca), (b, cb) in zip(levels, levels[1:])]
    lines += ["", "Steps between adjacent expert qualities (paired by seed): " + "; ".join(
        f"{a:g} to {b:g}: {tables.interval(p['mean_diff'], p['diff_low'], p['diff_high'])}" for a, b, p in steps) + "."]
    biggest = max(steps, key=lambda t: t[2]["mean_diff"])
    real = [(a, b) for a, b, p in steps if p["diff_low"] > 0]
    lines.append(f"The largest step is {biggest[0]:g} to {biggest[1]:g} ({biggest[2]['mean_diff']:+.3f}); steps whose "
                 f"interval excludes 0: {', '.join(f'{a:g} to {b:g}' for a, b in real) or 'none'}. A threshold at "
                 ".8 would show as the .7 to .8 step standing out from its neighbours.")
    return lines


def capacity_lines(study, uri: str, experiments: dict[str, str], end: int,
                   loaded: dict[str, pl.DataFrame]) -> list[str]:
    """The capacity arms beside the same arms under logistic regression, and a sentence on what changed."""
    lines = ["| model | crowd-random at the budget | crowd-random at its end | expert-boundary_pairs at the budget | "
             "difference at the budget (paired) |", "|---|---|---|---|---|"]
    rows = {}
    for model, experiment in experiments.items():
        runs = loaded[experiment] if experiment in loaded else load(uri, experiment)
        pc, pb = study.primary.condition, study.primary.baseline
        crowd_end = int(runs.filter(pl.col("condition") == pb)["n_labels"].max())
        p = paired_row(at(runs, pc, end), at(runs, pb, end))
        rows[model] = (at(runs, pc, end), p, crowd_end)
        lines.append(f"| {model} | {mean_ci(at(runs, pb, end).values())} | "
                     f"{mean_ci(plateau_by_seed(runs, pb).values())} (mean of its last 3 points, to {crowd_end:,}) | "
                     f"{mean_ci(at(runs, pc, end).values())} | "
                     f"{tables.interval(p['mean_diff'], p['diff_low'], p['diff_high'])} |")
    if len(rows) == 2:
        (a, (ka, pa, _)), (b, (kb, pb_, b_end)) = rows.items()
        shift = paired_row(kb, ka)
        lines += ["", f"With {b} instead of {a}, the seed's method with experts moves by "
                  f"{tables.interval(shift['mean_diff'], shift['diff_low'], shift['diff_high'])} kappa at {end} "
                  f"judgments (paired by seed), and its lead over random crowd labels at the same cost goes from "
                  f"{pa['mean_diff']:+.3f} to {pb_['mean_diff']:+.3f}. The {b} crowd curve stops at "
                  f"{b_end:,} judgments (its 6 fits per point take minutes each at 13k labels), so it is compared at "
                  "equal cost only; its plateau is not measured."]
    return lines


def time_lines(uri: str, experiments: list[str]) -> list[str]:
    """Where the time goes: the runs' own wall time (start to end, as MLflow logged it) per experiment and arm."""
    client = tracking.client(uri)
    rows = []
    for experiment in experiments:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            continue
        for r in client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'", max_results=50_000):
            if r.info.end_time and "arm" in r.data.params:
                rows.append((experiment, r.data.params["arm"], (r.info.end_time - r.info.start_time) / 1000))
    if not rows:
        return []
    frame = pl.DataFrame(rows, schema=["experiment", "arm", "seconds"], orient="row")
    # the median run of an arm, times its runs: a run resumed after a crash spans the time it lay idle
    by_arm = frame.group_by("experiment", "arm").agg(pl.len().alias("runs"), pl.col("seconds").median()
                                                      .alias("per_run")).with_columns(
        seconds=pl.col("runs") * pl.col("per_run")).sort("experiment", "arm")
    total = by_arm["seconds"].sum()
    lines = [f"The runs' own time (MLflow start to end, the median run of each arm times its runs; process start-up, "
             f"about 11 s per arm, comes on top), {total / 60:.0f} min of one core in all:", "",
             "| experiment | minutes | slowest arms (s per run) |", "|---|---|---|"]
    for experiment in experiments:
        part = by_arm.filter(pl.col("experiment") == experiment)
        if not part.height:
            continue
        slow = part.sort("seconds", "arm", descending=[True, False]).head(3)
        lines.append(f"| {experiment} | {part['seconds'].sum() / 60:.1f} | "
                     + ", ".join(f"{a} ({t:.1f})" for a, t in zip(slow["arm"], slow["per_run"])) + " |")
    return lines


# --- the study -----------------------------------------------------------------------------------------------

def plan(study, args) -> tuple[list[Arm], list[dict]]:
    """Every arm to run, and per experiment what its RESULTS.md section needs."""
    seeds = list(range(args.base_seed, args.base_seed + study.seeds))
    suffix = ("-quick" if args.quick else "") + (f"-b{args.base_seed}" if args.base_seed else "")
    strategies = list(study.quick.strategies if args.quick else study.strategies)
    only = [study.primary.condition, study.primary.baseline] if args.primary_only else None
    arms, sections = [], []
    suffix += f"-{args.model}" if getattr(args, "model", None) else ""
    want = set(args.only or [])
    reviews = {d: [r for r in study.replicates.reviews if not want or d in want or f"{d}-{r}" in want]
               for d in study.datasets if d == study.replicates.of and not args.quick}
    names = [d for d in (study.quick.datasets if args.quick else study.datasets)
             if not want or d in want or reviews.get(d)]
    for name in names:
        spec = study.datasets[name]
        if want and name not in want:  # only some of its replicates (--only cohen-CalciumChannelBlockers)
            arms += replicate_arms(study, spec, name, suffix, seeds, strategies, only, reviews[name], sections, args)
            continue
        if args.quick:
            spec = OmegaConf.merge(spec, {"data": study.quick.data[name], "max_labels": study.quick.max_labels})
        budget = list(study.budgets[spec.budget])
        experiment = f"claim-{name}{suffix}"
        info = prepare(list(spec.data), study, [*spec.oracles.expert, *curated(study, spec)], seeds) \
            if not args.report_only else {}
        sections.append({"experiment": experiment, "title": name, "about": spec.about, "budget": budget,
                         "spec_data": list(spec.data), "info": info, "dataset": name})
        arms += dataset_arms(study, spec, experiment, info.get("pool", 1), seeds, strategies, budget, only)
        if args.scout and spec.get("scout", True):
            arms.append(Arm(experiment, f"expert-{study.scout.acquisition}-scout",
                            [*spec.data, *study.common, f"acquisition={study.scout.acquisition}",
                             *study.strategy_overrides[study.scout.acquisition], *spec.oracles.expert,
                             *study.scout.overrides], seeds, 10 * info.get("pool", 1) ** 0.5))
        if name in study.quality.datasets and not args.primary_only:
            kappas = study.quick.kappas if args.quick else study.quality.kappas
            arms += quality_arms(study, spec, experiment, info.get("pool", 1), seeds, budget, kappas)
        sens = study.quick.sensitivity if args.quick else study.sensitivity
        if name in sens.datasets and not args.primary_only:
            arms += sensitivity_arms(study, spec, f"{experiment}-sensitivity", info.get("pool", 1), seeds, budget,
                                     sens.datasets[name], sens.concentrations)
        if name == study.capacity.dataset and not args.primary_only and not args.quick:
            cap = OmegaConf.merge(spec, {"data": [*spec.data, *study.capacity.model],
                                         "max_labels": study.capacity.max_labels})
            arms += dataset_arms(study, cap, f"{experiment}-{study.capacity.name}", info.get("pool", 1), seeds,
                                 strategies, budget, list(study.capacity.arms))
        if name == study.replicates.of and not args.quick:
            arms += replicate_arms(study, spec, name, suffix, seeds, strategies, only, reviews[name], sections, args)
    return arms, sections


def replicate_arms(study, spec, name: str, suffix: str, seeds: list[int], strategies: list[str], only,
                   reviews: list[str], sections: list[dict], args) -> list[Arm]:
    """The arms of each review's replicate (one review of the pooled data run on its own); adds their sections."""
    arms = []
    for review in reviews:
        rep = OmegaConf.merge(spec, {"data": [*spec.data, f"data.select={{review:[{review}]}}"]})
        rep_budget = list(study.budgets[study.replicates.budget])
        rep_experiment = f"claim-{name}-{review}{suffix}"
        rep_info = prepare(list(rep.data), study, [*rep.oracles.expert, *curated(study, rep)], seeds) \
            if not args.report_only else {}
        sections.append({"experiment": rep_experiment, "title": f"{name}: {review} (replicate)",
                         "about": f"One review of the pooled Cohen data: the primary comparison and the four "
                                  f"baselines, budget {curated_points(rep_budget)[-1]}.", "budget": rep_budget,
                         "spec_data": list(rep.data), "info": rep_info, "dataset": name, "replicate": True})
        arms += dataset_arms(study, rep, rep_experiment, rep_info.get("pool", 1), seeds, strategies, rep_budget,
                             only or list(study.replicates.arms))
    return arms


def write_results(study, uri: str, sections: list[dict], command: str, meta: dict, out: Path,
                  primary_only: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    client = tracking.client(uri)
    done = [s for s in sections if client.get_experiment_by_name(s["experiment"]) is not None]
    for s in done:  # a dataset whose experts of kappa .6 and 1.0 end alike cannot test a claim about label quality
        if not s.get("replicate") and s["dataset"] in study.quality.datasets:
            s["excluded"] = indiscriminate(study, load(uri, s["experiment"]), curated_points(s["budget"])[-1])
    family = max(1, sum(not s.get("replicate") and not s.get("excluded") for s in done))  # the primary verdicts
    built = []
    for s in done:
        if not s["info"]:  # --report-only: what the study run stored
            tags = client.get_experiment_by_name(s["experiment"]).tags
            s["info"] = {"pool": int(float(tags["alexp.pool"])), "test": int(float(tags["alexp.test"])),
                         "positive_share": float(tags["alexp.positive_share"])}
        built.append((s, section(study, uri, s["experiment"], s["title"], s["about"], s["info"], s["budget"], out,
                                 primary_only, 1 if s.get("replicate") or s.get("excluded") else family)))
    primaries = [(s, sec) for s, sec in built if sec.primary and not s.get("replicate") and not s.get("excluded")]
    excluded = [f"- **{s['title']}** is not among the verdicts: {s['excluded']}." for s in done if s.get("excluded")]
    ratios = list(study.cost_ratios)
    verdict = ["| dataset | verdict | condition at its budget | crowd at its end | difference [interval] | seeds | "
               "p within the margin | p worse | Wilcoxon p (difference 0) | reduction factor | "
               + " | ".join(f"money at {r}x" for r in ratios) + " |",
               "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(ratios)]
    for s, sec in primaries:
        p, r = sec.primary, sec.primary.get("reduction")
        money = [money_text(r, x) for x in ratios]
        verdict.append(f"| {s['title']} | **{p['verdict']}** | {p['cond_mean']} | {p['base_mean']} (to "
                       f"{p['crowd_end']:,}) | {tables.interval(p['mean_diff'], p['diff_low'], p['diff_high'])} | "
                       f"{p['seeds']} | {fmt_p(p['p_holds'])} | {fmt_p(p['p_worse'])} | {fmt_p(p['wilcoxon_p'])} | "
                       f"{tables.reduction_text(r) if r else '–'} | " + " | ".join(money) + " |")
    verdict += ["", "The reduction factor is crowd judgments over expert judgments to reach 95% of the crowd's plateau "
                "(paired bootstrap interval; `<` a bound when the expert arm does not get there within its budget). "
                "The money factor divides it and its interval by the expert:crowd price ratio: the experts are "
                "cheaper for the same agreement only where the whole interval lies above 1, the crowd where it "
                "lies below 1; otherwise there is no clear difference."]
    if excluded:
        verdict += ["", *excluded]
    if any(sec.primary.get("money") for _, sec in primaries):
        verdict += ["", "Money at three targets: the crowd is cheapest at 95% of its own level, so the factor is also "
                    "given at 100% of the crowd's kappa at its end and at the expert arm's own kappa. A censored "
                    "factor quotes its interval's end: `<` the expert arm never gets there within its budget, `>` "
                    "the crowd never does within its labels.", "",
                    "| dataset | target | reduction factor | "
                    + " | ".join(f"money at {r}x" for r in ratios) + " |", "|---|---|---|" + "---|" * len(ratios)]
        for s, sec in primaries:
            for name, r in (sec.primary.get("money") or {}).items():
                verdict.append(f"| {s['title']} | {name} | {tables.reduction_text(r) if r else '–'} | "
                               + " | ".join(money_text(r, x) for x in ratios) + " |")
    reps = [(s, sec) for s, sec in built if sec.primary and s.get("replicate")]
    if reps:
        verdict += ["", "Per-review replicates of the Cohen data (exploratory, same comparison at their budget):", "",
                    "| review | verdict | difference [95% interval] | seeds |", "|---|---|---|---|"]
        for s, sec in reps:
            p = sec.primary
            verdict.append(f"| {s['title']} | {p['verdict']} | "
                           f"{tables.interval(p['mean_diff'], p['diff_low'], p['diff_high'])} | {p['seeds']} |")
    stopped = [(s, sec) for s, sec in built if sec.primary and sec.primary.get("stopping")]
    if stopped:
        rules = sorted({r["rule"] for _, sec in stopped for r in sec.primary["stopping"]})
        verdict += ["", "What each stopping rule would have spent on the primary comparison: median judgments at "
                    "its stop over seeds, the seeds it fired in, and the verdict there (paired against the crowd at "
                    "its end, same margin); a seed where it never fired spends the whole budget (last row). Each "
                    "dataset's section has the full table.", "",
                    "| rule | " + " | ".join(s["title"] for s, _ in stopped) + " |", "|---|" + "---|" * len(stopped)]
        for rule in rules:
            cells = []
            for _, sec in stopped:
                r = next((r for r in sec.primary["stopping"] if r["rule"] == rule), None)
                cells.append("–" if r is None else "never fired" if not r["fired"] else
                             f"{r['median']:.0f} (fired {r['fired']}/{r['seeds']}): {r['verdict']}")
            verdict.append(f"| {rule} | " + " | ".join(cells) + " |")
        verdict.append("| (whole budget) | " + " | ".join(f"{sec.primary['end']}: {sec.primary['verdict']}"
                                                        for _, sec in stopped) + " |")
    end = curated_points(list(study.budgets.curated))[-1]
    quality = {s["dataset"]: sec.runs for s, sec in built
               if s["dataset"] in study.quality.datasets and not s.get("replicate")}
    base = next((s["experiment"] for s in sections if s["dataset"] == study.capacity.dataset
                 and not s.get("replicate")), None)
    capacity_experiments = {"logistic regression": base} if base else {}
    if base and client.get_experiment_by_name(f"{base}-{study.capacity.name}") is not None:
        capacity_experiments["MLP head"] = f"{base}-{study.capacity.name}"
    text = ["# The claim study: results", "",
            "Regenerated by the command below from the MLflow runs. Every number is a mean over seeds with a 95% "
            "bootstrap interval over seeds; paired differences are per seed (arms share each seed's split and "
            "first draw). Arms of one dataset share the split, features, model (logistic regression with its "
            "decision threshold tuned for kappa on out-of-fold predictions of the arm's own labels) and gold test "
            "set; they differ in selection, label source and budget. x is judgments bought: every oracle charges 1 "
            f"per answer, so a {study.votes}-vote crowd item costs {study.votes}. Conditions are "
            "`<label source>-<selection>`: `expert` (calibrated to kappa .8 on the hardest 7% of the pool, where "
            "an active learner asks), `crowd` (one rater per item), "
            f"`crowd{study.votes}` ({study.votes} raters, majority).", "",
            f"- command: `{command}`",
            f"- wall time: {meta['span'] / 60:.1f} min during which runs were running (the union of their "
            "intervals); the "
            f"invocations that ran arms and recorded it ({meta['invocations']}) took {meta['wall'] / 60:.1f} min, "
            f"peak memory {meta['peak_mb']:,.0f} MB (largest process)",
            f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            f"- seeds per condition: {study.seeds} (base seed {meta['base_seed']})", "",
            "## Does the claim hold?", "",
            f"The pre-declared comparison per dataset: `{study.primary.condition}` at its whole budget ({end} "
            f"judgments, ~{round(end * 0.7)} of them fine-tune labels) against `{study.primary.baseline}` at its "
            f"last point (the whole pool, or max_labels; its plateau and fitted asymptote are in each dataset's "
            f"section), judged against a non-inferiority margin of {study.primary.margin} kappa. The interval of the "
            f"difference is a bootstrap-t interval over seeds at the family's level: Bonferroni over the {family} "
            f"datasets' primary verdicts, each at {1 - 0.05 / family:.2%}, so that the chance of any false claim "
            "among them stays within 5%. **holds**: the interval lies above -margin and reaches 0; **worse but "
            "within the margin**: above -margin and below 0; **fails**: below -margin; **worse, inconclusive "
            "against the margin**: below 0 but across -margin; **inconclusive at N seeds**: across both, so more "
            "seeds (not a bigger pool) would decide it. 'p within the margin' is the one-sided p-value of 'the "
            "difference is at most -margin', 'p worse' of 'it is at least 0', both Bonferroni-adjusted from the "
            "same resamples as the interval, so each is below 0.025 exactly when the interval says so. Wilcoxon's "
            "p tests a difference of 0 and is not adjusted.", "", *verdict, ""]
    if not primary_only:
        if quality:
            text += ["## Label quality", "", "The seed's method with experts of each quality, each calibrated on the "
                     "hardest 7% of the pool by the dataset's difficulty source; `realized` is the kappa of the "
                     "labels it actually bought, against the truth. Whether the experts err where the active learner "
                     "asks depends on that source: the true posterior (synthetic) marks what is truly ambiguous, a "
                     "reference logistic regression (clickbait) what a linear model finds hard.", ""]
            for dataset, runs in quality.items():
                text += [f"**{dataset}**", "", *quality_lines(study, runs, end), ""]
        if len(capacity_experiments) > 1:
            text += ["## Model capacity", "", f"On {study.capacity.dataset} (MiniLM), the same arms with logistic "
                     "regression and with an MLP head that learns its own representation on the embeddings, under the "
                     "same tuned-threshold rule:", "", *capacity_lines(study, uri, capacity_experiments, end,
                                                      {sec.experiment: sec.runs for _, sec in built}), ""]
        sens = [(s, sec) for s, sec in built if not s.get("replicate")
                and client.get_experiment_by_name(f"{s['experiment']}-sensitivity") is not None]
        if sens:
            text += ["## Sensitivity to the crowd's error structure", "", "Whether the claim holds depends on where "
                     "the crowd errs: a crowd whose errors sit on the hardest items teaches a model little there, one "
                     "whose errors are spread out is averaged away by volume.", ""]
            for s, sec in sens:
                text += sensitivity_lines(study, uri, f"{s['experiment']}-sensitivity", sec.runs, end, out,
                                          s["title"])
        text += ["## What this study cannot show", "", *CANNOT, ""]
        text += ["## Where the time goes", "", *time_lines(uri, [s["experiment"] for s in sections]
                                                          + list(capacity_experiments.values())[1:]), ""]
    text += ["## Results by dataset", "", *[line for _, sec in built for line in sec.lines]]
    path = out / "RESULTS.md"
    path.write_text("\n".join(text) + "\n")
    return path


def sensitivity_lines(study, uri: str, experiment: str, main: pl.DataFrame, end: int, out: Path, title: str
                      ) -> list[str]:
    """The primary comparison at each crowd concentration, for an expert of the crowd's structure and for the
    study's expert (calibrated on hard items), with a figure and the break-even concentration in words."""
    runs = load(uri, experiment)
    margin, measured = study.primary.margin, list(study.sensitivity.measured)
    acq = study.primary.condition.split("-", 1)[1]
    hard = at(main, study.primary.condition, end)
    rows = []
    for c in sorted({float(v.removeprefix("crowd-random-c")) for v in runs["condition"].unique()
                     if v.startswith("crowd-random-c")}):
        crowd_name = f"crowd-random-c{c:g}"
        crowd = at(runs, crowd_name, int(runs.filter(pl.col("condition") == crowd_name)["n_labels"].max()))
        same = at(runs, f"expert-{acq}-c{c:g}", end)
        rows.append({"c": c, "crowd": mean_ci(crowd.values()), "same": verdict_row(same, crowd, margin),
                     "hard": verdict_row(hard, crowd, margin), "same_kappa": mean_ci(same.values())})
    if not rows:
        return []

    def diff(r):
        return f"{tables.interval(r['mean_diff'], r['diff_low'], r['diff_high'])}: {r['verdict']}"

    lines = [f"**{title}.** The primary comparison (`{study.primary.condition}` at {end} judgments minus random "
             "crowd labels at their last point) with a simulated crowd at each concentration of its errors on hard "
             "items (0: anywhere alike; 4: almost only on the hardest), at the same pool kappa. Two experts: one "
             "with the crowd's own error structure (kappa .8 over the pool), and the study's expert (kappa .8 on "
             "the hardest 7%, in a panel that agrees at .8). Intervals at 95%, not adjusted across this exploratory "
             "grid.", "",
             "| crowd concentration | crowd at its end | expert, same structure | difference | study's expert: "
             "difference |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['c']:g} | {r['crowd']} | {r['same_kappa']} | {diff(r['same'])} | {diff(r['hard'])} |")

    def break_even(key: str) -> str:
        """In words: at which concentrations the verdict is non-inferior (holds, or worse within the margin)."""
        ok = [r[key]["verdict"] in ("holds", "worse but within the margin") for r in rows]
        if all(math.isnan(r[key]["p_holds"]) for r in rows):
            return f"cannot be judged: an interval needs {stats.MIN_SEEDS} seeds"
        if all(ok):
            return "holds at every concentration tried"
        if not any(ok):
            return "holds at no concentration tried"
        first = ok.index(True)
        if all(ok[first:]):
            return f"holds only if the crowd's errors concentrate on hard items at least {rows[first]['c']:g}"
        return "holds at concentrations " + ", ".join(f"{r['c']:g}" for r, good in zip(rows, ok) if good)

    lines += ["", f"With an expert of the crowd's structure the claim {break_even('same')}; with the study's experts "
              f"it {break_even('hard')}. The real cheap labels measured in simulations/measured_noise concentrate "
              f"their errors at {' and '.join(f'{m:g}' for m in measured)}."]
    figure = sensitivity_figure(rows, margin, out / f"{experiment}.png", title)
    return [*lines, "", f"![{title}: difference against the crowd's concentration]({figure.name})", ""]


def sensitivity_figure(rows: list[dict], margin: float, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    x = np.arange(len(rows))
    for shift, key, label in ((-0.08, "same", "expert with the crowd's structure"),
                              (0.08, "hard", "the study's expert (hard items)")):
        mean = np.array([r[key]["mean_diff"] for r in rows])
        low, high = np.array([r[key]["diff_low"] for r in rows]), np.array([r[key]["diff_high"] for r in rows])
        ax.errorbar(x + shift, mean, yerr=[mean - low, high - mean], fmt="o", capsize=3, label=label)
    ax.axhline(-margin, color="0.4", dashes=(4, 2), linewidth=1, label=f"-margin ({margin})")
    ax.axhline(0, color="0.7", linewidth=0.8)
    ax.set_xticks(x, [f"{r['c']:g}" for r in rows])
    ax.set_xlabel("crowd's error concentration on hard items")
    ax.set_ylabel("expert at budget - crowd at its end (kappa)")
    ax.set_title(f"{title}: the verdict across the crowd's error structure", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


CANNOT = [
    "- **The seed's model.** Its scout and fine-tuned model are an LLM; here the models are logistic regression "
    "and an MLP head on frozen embeddings. Fine-tuning a transformer is feasible on this CPU for the curated "
    "budget's 420 labels, but rescoring a 13k-20k pool every round takes 2-3 minutes (issue 19), i.e. hours per "
    "20-seed arm, and a fine-tuned model on 100,000 crowd labels is out of reach: the crowd curves here are "
    "logistic regression (and MLP) on fixed embeddings, a proxy for the seed's crowd-trained model.",
    "- **100,000 real crowd labels.** Only the synthetic pool (200k) reaches 100k crowd labels, and synthetic is "
    "out of the verdicts; the real pools end at 12k-20k items, so their crowd is compared at the whole pool, "
    "not at 100k.",
    "- **Real experts.** Expert labels are simulated: a panel of two whose members each reach kappa .8 on the "
    "hardest 7% of the pool and agree with each other at .8 there, as the seed's experts agreed (.78-.81), with "
    "errors concentrated on hard items as the real cheap labels measured here are (simulations/measured_noise). "
    "Only Davidson's crowd votes and Cohen's quick screening label are real labels; how real experts err is not "
    "measured, so the sensitivity grid shows the verdict across that assumption.",
    "- **The seed's data.** Ad-safety policies, a 5% positive pool of millions and policy experts are not public; "
    "these datasets stand in for them.",
]


def record_invocation(client, experiment: str, seconds: float) -> None:
    """Add an invocation that ran arms to the study's tags: its wall seconds (summed over invocations) and the
    peak memory of its largest process (the maximum over invocations)."""
    peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    exp = client.get_experiment_by_name(experiment)
    tags = exp.tags
    client.set_experiment_tag(exp.experiment_id, "alexp.study_seconds",
                              str(round(float(tags.get("alexp.study_seconds", 0)) + seconds)))
    client.set_experiment_tag(exp.experiment_id, "alexp.peak_mb",
                              str(round(max(float(tags.get("alexp.peak_mb", 0)), peak_mb))))
    client.set_experiment_tag(exp.experiment_id, "alexp.invocations", str(int(tags.get("alexp.invocations", 0)) + 1))


def runs_span(client, experiments: list[str]) -> float:
    """Seconds during which at least one of the study's finished runs was running (the union of their intervals:
    idle time between invocations, or before an arm rerun later, does not count; NaN if no run)."""
    spans = []
    for name in experiments:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            continue
        for r in client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'", max_results=50_000):
            spans.append((r.info.start_time, r.info.end_time))
    busy, end = 0, -math.inf
    for start, stop in sorted(spans):
        busy += max(0, stop - max(start, end))
        end = max(end, stop)
    return busy / 1000 if spans else math.nan


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI-sized: 3 seeds, a small synthetic pool")
    p.add_argument("--report-only", action="store_true", help="only rebuild RESULTS.md from logged runs")
    p.add_argument("--base-seed", type=int, default=0, help="seeds are BASE .. BASE + seeds - 1 (default 0)")
    p.add_argument("--only", nargs="+", help="datasets to run (default: all of study.yaml); cohen-REVIEW runs one "
                   "review's replicate alone (e.g. cohen-CalciumChannelBlockers)")
    p.add_argument("--primary-only", action="store_true", help="only the pre-declared primary comparison's two arms")
    p.add_argument("--scout", action="store_true", help="add the seed's cold start: a zero-shot scout picks round 0 "
                   "(text datasets; see study.yaml's scout)")
    p.add_argument("--seeds", type=int, help="seeds per condition (default: study.yaml's)")
    p.add_argument("--model", help="a model option for every arm instead of study.yaml's (e.g. logreg_retuned, "
                   "self_trained: the strong baselines); experiments get the suffix -MODEL")
    p.add_argument("--parallel", type=int, default=2, help="arms run at once (default 2, one core each)")
    p.add_argument("--out", default=None, help="folder of RESULTS.md and figures (default: this folder; a "
                   "replication with --base-seed, --only or --primary-only writes to ./claim-replication)")
    args = p.parse_args(argv)
    study = OmegaConf.load(HERE / "study.yaml")
    if args.quick:
        study.seeds = study.quick.seeds
    if args.seeds:
        study.seeds = args.seeds
    if args.model:
        study.common = [f"model={args.model}" if c.startswith("model=") else c for c in study.common]
    partial = args.base_seed or args.only or args.primary_only or args.seeds or args.scout or args.model
    out = Path(args.out or ("claim-replication" if partial else HERE))
    uri = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    started = time.perf_counter()
    arms, sections = plan(study, args)
    if not args.report_only:
        for s in sections:
            exp_id = tracking.init_store(uri, s["experiment"])
            for key, value in s["info"].items():
                tracking.client(uri).set_experiment_tag(exp_id, f"alexp.{key}", str(value))
        for experiment in sorted({a.experiment for a in arms}):  # before parallel arms write to them
            tracking.init_store(uri, experiment)
        arms.sort(key=lambda a: -a.weight)
        print(f"{len(arms)} arms x {study.seeds} seeds, {args.parallel} at once", flush=True)
        with ThreadPoolExecutor(args.parallel) as pool:
            seconds = list(pool.map(lambda arm: run_arm(arm, uri), arms))
        if any(t != 0 for t in seconds):  # this invocation ran arms: add its time and memory to the study's
            record_invocation(tracking.client(uri), sections[0]["experiment"], time.perf_counter() - started)
        failed = [f"{a.experiment} {a.name}" for a, t in zip(arms, seconds) if math.isnan(t)]
        if failed:  # the other arms are logged; a rerun runs only what is missing
            raise SystemExit(f"{len(failed)} arms failed (see above): {', '.join(failed)}")
    command = "python simulations/reduction_claim/run.py" + (" --quick" if args.quick else "") + \
        (f" --base-seed {args.base_seed}" if args.base_seed else "") + \
        (f" --only {' '.join(args.only)}" if args.only else "") + (" --primary-only" if args.primary_only else "") + \
        (f" --model {args.model}" if args.model else "")
    client = tracking.client(uri)
    tags = client.get_experiment_by_name(sections[0]["experiment"]).tags
    meta = {"wall": float(tags.get("alexp.study_seconds", "nan")), "peak_mb": float(tags.get("alexp.peak_mb", "nan")),
            "invocations": int(tags.get("alexp.invocations", "0")), "base_seed": args.base_seed,
            "span": runs_span(client, [s["experiment"] for s in sections])}
    path = write_results(study, uri, sections, command, meta, out, args.primary_only)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
