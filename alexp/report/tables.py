"""The report's tables and its verdict in words, from the long table of runs (`runs.load_runs`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from alexp import plural
from alexp.report import stats
from alexp.report.runs import condition_params, matrix


@dataclass
class Settings:
    """What the report summarises and how: the metric, the target rule and the interval level."""

    metric: str = "kappa"
    target: float | None = None  # absolute target; None: `fraction` of each baseline's plateau
    fraction: float = stats.FRACTION
    points: int = stats.PLATEAU_POINTS
    level: float = stats.LEVEL
    stop_loss: float = 0.02  # the loss (plateau minus the metric at stop) within which a stopping rule is "safe"


@dataclass
class Report:
    settings: Settings
    curves: pl.DataFrame
    conditions: pl.DataFrame
    reductions: pl.DataFrame
    comparisons: pl.DataFrame
    fits: pl.DataFrame
    verdict: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stopping: pl.DataFrame = field(default_factory=pl.DataFrame)  # one row per condition and stopping rule
    stopping_lines: list[str] = field(default_factory=list)  # per condition: the earliest rule within the loss


def baseline_pairs(conditions: list[str], baseline: dict[str, str]) -> list[tuple[str, str]]:
    """(condition, its baseline) for every condition that has one: the condition equal to it but for the
    baseline's settings (e.g. acquisition=random)."""
    pairs = []
    for c in conditions:
        want = {**condition_params(c), **baseline}
        match = [b for b in conditions if condition_params(b) == want]
        if match and match[0] != c:
            pairs.append((c, match[0]))
    return pairs


def curves(runs: pl.DataFrame, level: float = stats.LEVEL) -> pl.DataFrame:
    """Mean of the metric over seeds with its bootstrap interval, per condition and label count."""
    out = []
    for (condition, n), part in runs.group_by("condition", "n_labels", maintain_order=True):
        mean, low, high = stats.mean_interval(part["value"].to_numpy(), level)
        cost = part["cost"].drop_nulls()
        out.append((condition, n, part.height, mean, low, high, float(cost.mean()) if len(cost) else None))
    return pl.DataFrame(out, schema={"condition": pl.String, "n_labels": pl.Int64, "seeds": pl.Int64,
                                     "mean": pl.Float64, "low": pl.Float64, "high": pl.Float64,
                                     "cost_mean": pl.Float64}, orient="row").sort("condition", "n_labels")


def summarize(runs: pl.DataFrame, pairs: list[tuple[str, str]], settings: Settings | None = None,
              stops: pl.DataFrame | None = None) -> Report:
    """Conditions, reductions against their baselines, paired comparisons, baseline fits and the verdict; with
    `stops` (`runs.load_stops`), what each stopping rule would have cost and lost."""
    s = settings or Settings()
    table = curves(runs, s.level)
    conditions = table["condition"].unique(maintain_order=True).to_list()
    reductions, comparisons, targets, by_baseline = [], [], {}, {}
    notes = []
    for cond, base in pairs:
        if (found := compare(runs, cond, base, s)) is None:
            notes.append(f"`{cond}` shares no seed with its baseline `{base}`: not compared (run the same seeds).")
            continue
        row, comps = found
        reductions.append(row)
        comparisons += comps
        targets[cond] = row["target"]
        by_baseline.setdefault(base, []).append(row)
    for base, rows_of in by_baseline.items():  # the baseline's own row: its one target, if its comparisons share it
        same = len({r["target"] for r in rows_of if not math.isnan(r["target"])}) <= 1
        targets[base] = rows_of[0]["target"] if same else math.nan
        if not same:
            notes.append(f"`{base}` is compared on different seeds with different conditions, so each comparison "
                         "takes its target from the baseline's seeds it shares: "
                         + "; ".join(f"{r['target']:.3f} with `{r['condition']}` ({r['seeds']} seeds)"
                                     for r in rows_of) + ". Run every condition on the same seeds for one target.")
    comparisons_df = pl.DataFrame(comparisons)
    if comparisons_df.height:
        comparisons_df = comparisons_df.with_columns(holm_p=pl.Series(stats.holm(comparisons_df["wilcoxon_p"])))
        notes += significance_notes(comparisons_df)
    notes += identical_notes(runs, conditions)
    rows = [condition_row(runs, c, targets.get(c, s.target), s) for c in conditions]
    fits = [fit_row(runs, b, s) for b in dict.fromkeys(b for _, b in pairs)]
    reductions_df = pl.DataFrame(reductions, schema_overrides={"warnings": pl.List(pl.String)} if reductions else None)
    report = Report(s, table, pl.DataFrame(rows), reductions_df, comparisons_df, pl.DataFrame(fits))
    report.verdict = [verdict_line(r, s) for r in merge_identical_rows(reductions, runs)]
    report.notes = list(dict.fromkeys([*notes, *(r["cause"] for r in reductions if r["cause"]),
                                       *(w for r in reductions for w in r["warnings"])]))
    if stops is not None and stops.height:
        report.stopping = pl.DataFrame([stopping_row(runs, stops, c, rule, targets.get(c, s.target), s)
                                        for c in conditions
                                        for rule in stops.filter(pl.col("condition") == c)["rule"].unique(
                                            maintain_order=True)])
        report.stopping_lines = [earliest_safe_rule(report.stopping.filter(pl.col("condition") == c), s)
                                 for c in conditions if report.stopping.filter(pl.col("condition") == c).height]
    return report


def significance_notes(comparisons: pl.DataFrame) -> list[str]:
    """A warning for each seed count at which no paired test of this report can reach p < 0.05."""
    m = comparisons.height
    notes = []
    for n in sorted(set(comparisons["seeds"].to_list())):
        least = stats.smallest_p(n)
        if min(1.0, m * least) > 0.05:
            notes.append(f"With {n} paired seeds the smallest two-sided Wilcoxon p is {least:.3g} (all seeds won or "
                         f"all lost), {min(1.0, m * least):.3g} after Holm over {m} tests: no paired test here can "
                         "reach p < 0.05 whatever the data, so a large p says nothing of a difference. Read the "
                         "intervals and the wins, or run more seeds.")
    return notes


def stopping_row(runs: pl.DataFrame, stops: pl.DataFrame, condition: str, rule: str, target: float | None,
                 s: Settings) -> dict:
    """What one stopping rule would have cost and lost in one condition, over its seeds.

    A seed stops where the rule first fired, or at its last label count when it never fired (censored: the rule
    would have spent the whole budget). `labels_at_stop` is the median over seeds with the 10th and 90th
    percentiles, each a seed's own value (the spread between seeds, not an interval for the median);
    `at_stop` the mean of each seed's metric where it stopped; `loss` the condition's plateau (the mean of its
    mean curve over its last label counts) minus that mean; `stopped_short` the seeds that stopped before their
    own curve first reached the target (a seed that never reaches it counts as stopped short)."""
    labels, values, seeds = matrix(runs, condition)
    at = {r["seed"]: r["stop_at"] for r in stops.filter(pl.col("condition") == condition,
                                                        pl.col("rule") == rule).iter_rows(named=True)}
    stop_labels, at_stop, short = [], [], 0
    for seed, curve in zip(seeds, values):
        fired = at.get(seed)
        i = len(labels) - 1 if fired is None else int(np.searchsorted(labels, fired))
        i = min(i, len(labels) - 1)
        stop_labels.append(labels[i])
        at_stop.append(curve[i])
        if target is not None and not math.isnan(target):
            reached = np.flatnonzero(curve >= target)
            short += int(not len(reached) or reached[0] > i)
    plateau = stats.plateau(values.mean(axis=0), s.points)
    has_target = target is not None and not math.isnan(target)
    return {"condition": condition, "rule": rule, "seeds": len(seeds),
            "fired": sum(at.get(seed) is not None for seed in seeds),
            "labels_at_stop": float(np.median(stop_labels)),
            "labels_p10": float(np.percentile(stop_labels, 10, method="inverted_cdf")),  # a seed's own value
            "labels_p90": float(np.percentile(stop_labels, 90, method="inverted_cdf")), "max_labels": float(labels[-1]),
            "at_stop": float(np.mean(at_stop)), "plateau": plateau, "loss": plateau - float(np.mean(at_stop)),
            "target": target if has_target else math.nan, "stopped_short": short if has_target else None}


def recommended_rule(rows: pl.DataFrame, s: Settings) -> dict | None:
    """The rule that stops earliest (median labels) among those within `s.stop_loss` of the plateau and firing
    in at least half the seeds, or None. Only rules that read the data compete: a label budget stops where it
    was set, which is no evidence that learning is done."""
    from alexp.stopping import NOT_EVIDENCE

    safe = rows.filter(pl.col("loss") <= s.stop_loss, pl.col("fired") * 2 >= pl.col("seeds"),
                       ~pl.col("rule").is_in(list(NOT_EVIDENCE))).sort("labels_at_stop", "loss")
    return safe.row(0, named=True) if safe.height else None


def earliest_safe_rule(rows: pl.DataFrame, s: Settings) -> str:
    """One sentence: the recommended rule (`recommended_rule`) of one condition, or that none qualifies."""
    condition = rows["condition"][0]
    r = recommended_rule(rows, s)
    if r is None:
        return (f"**{condition}**: no rule stops within a loss of {s.stop_loss:g} {s.metric} of the plateau in at "
                "least half the seeds; the full budget is the safe choice here.")
    return (f"**{condition}**: within a loss of {s.stop_loss:g} {s.metric} of the plateau ({r['plateau']:.3f}), "
            f"**{r['rule']}** stops earliest: median {r['labels_at_stop']:.0f} labels of {r['max_labels']:.0f} "
            f"(fired in {r['fired']} of {r['seeds']} seeds), {s.metric} {r['at_stop']:.3f} at stop.")


def condition_row(runs: pl.DataFrame, condition: str, target: float | None, s: Settings) -> dict:
    """One condition: its final value, AULC (linear and log labels) and labels-to-target, with intervals."""
    labels, values, seeds = matrix(runs, condition)
    row = {"condition": condition, "seeds": len(seeds), "max_labels": int(labels[-1]) if len(labels) else 0}
    measures = {"final": values[:, -1], "aulc": [stats.aulc(labels, v) for v in values],
                "aulc_log": [stats.aulc(labels, v, log=True) for v in values]}
    for name, v in measures.items():
        row[name], row[f"{name}_low"], row[f"{name}_high"] = stats.mean_interval(v, s.level)
    row["target"] = math.nan if target is None else target
    if target is not None and not math.isnan(target):
        value, status, low, high = stats.labels_interval(labels, values, target, s.level)
        reached = int(np.sum(stats.crossings(labels, values, target)[1] != stats.RIGHT))
        row.update(labels_to_target=value, labels_to_target_status=status, labels_to_target_low=low,
                   labels_to_target_high=high, seeds_reaching_target=reached)
    return row


def compare(runs: pl.DataFrame, cond: str, base: str, s: Settings) -> tuple[dict, list[dict]] | None:
    """The reduction factor of `cond` against `base` on their common seeds, and the paired comparisons (None
    without a common seed)."""
    common = sorted(set(runs.filter(pl.col("condition") == cond)["seed"].to_list())
                    & set(runs.filter(pl.col("condition") == base)["seed"].to_list()))
    if not common:
        return None
    bl, bv, _ = matrix(runs, base, seeds=common)
    cl, cv, _ = matrix(runs, cond, seeds=common)
    r = stats.reduction(bl, bv, cl, cv, s.metric, s.target, s.fraction, s.points, s.level)
    still, rise, rise_low, rise_high = stats.rising(bv, s.points, s.level)
    row = {"condition": cond, "baseline": base, "target": r.target, "seeds": r.seeds,
           "baseline_labels": r.base_labels, "baseline_status": r.base_status, "labels": r.labels,
           "status": r.status, "reduction": r.factor, "bound": r.bound, "reduction_low": r.low,
           "reduction_high": r.high, "seeds_reached": r.seeds_reached, "baseline_seeds_reached": r.base_seeds_reached,
           "per_seed_median": r.per_seed_median, "problem": r.problem,
           "cause": cause(runs, base, r.problem, s.metric) if r.problem else None,
           "baseline_max_labels": float(bl[-1]), "max_labels": float(cl[-1]), "interpolation": r.interpolation,
           "baseline_rising": still, "baseline_rise": rise, "baseline_rise_low": rise_low,
           "baseline_rise_high": rise_high}
    row["warnings"] = comparison_warnings(row, bv.mean(axis=0), s)
    between = (max(bl[0], cl[0]), min(bl[-1], cl[-1]))
    comps = []
    for measure, fn in ((f"AULC (log labels {between[0]:g}-{between[1]:g})",
                         lambda x, v: stats.aulc(x, v, log=True, between=between)),
                        (f"final {s.metric} ({cl[-1]:g} vs {bl[-1]:g} labels)", lambda x, v: v[-1])):
        diffs = [fn(cl, c) - fn(bl, b) for c, b in zip(cv, bv)]
        comps.append({"condition": cond, "baseline": base, "measure": measure, **stats.paired(diffs, s.level)})
    return row, comps


def comparison_warnings(r: dict, base_mean: np.ndarray, s: Settings) -> list[str]:
    """What may mislead in one comparison's factor: a baseline still rising, a target barely above chance."""
    out = []
    if r["problem"]:
        return out
    if r["baseline_rising"]:
        out.append(f"`{r['baseline']}` is still rising at its last label counts: {s.metric} "
                   f"{r['baseline_rise']:+.3f} [{r['baseline_rise_low']:+.3f}, {r['baseline_rise_high']:+.3f}] over "
                   f"its last {s.points} ({r['baseline_max_labels']:,.0f} labels), so its 'plateau' and the target "
                   "are where its schedule stopped, not where it levels off. A factor against it holds for this "
                   "target only; with a longer baseline the target rises, and a condition that still reaches it "
                   "usually saves more: read each factor as a lower bound at this schedule.")
    if s.target is None:
        level, name = stats.chance_level(s.metric, base_mean)
        if r["target"] - level < stats.NEAR_CHANCE:
            out.append(f"The target of `{r['condition']}` vs `{r['baseline']}` ({s.metric} {r['target']:.3f}) is "
                       f"only {r['target'] - level:.3f} above {name}: the baseline barely learns, so a large factor "
                       "says that the baseline is weak, not that the condition needs few labels for a useful "
                       f"{s.metric}. Prefer an absolute --target.")
    return out


def cause(runs: pl.DataFrame, base: str, problem: str, metric: str) -> str:
    """The undefined target in words, with its likely cause and what to try."""
    last = runs.filter(pl.col("condition") == base).group_by("run_id").last()
    recall, ap = last["last_recall"].drop_nulls().mean(), last["last_average_precision"].drop_nulls().mean()
    text = f"No reduction factor against `{base}`: {problem}."
    if metric.endswith("kappa") and recall is not None and recall <= 0.02:
        ranks = f" although it ranks them (average precision {ap:.2f})" if ap is not None else ""
        return (text + f" Its model predicts almost no positives (recall {recall:.2f}){ranks}: a fixed 0.5 "
                "decision threshold on a rare class. Try `model=logreg_tuned` (a threshold tuned for kappa on the "
                "run's own labels), `model.class_weight=balanced`, or an absolute `--target`.")
    return text + " Try a model that learns on this data, more labels for the baseline, or an absolute `--target`."


def fit_row(runs: pl.DataFrame, base: str, s: Settings) -> dict:
    """The plateau a target is taken from, whether the baseline is still rising over it (a paired test of its
    last `s.points` values), and a bounded power-law fit's asymptote beside it."""
    labels, values, _ = matrix(runs, base)
    mean = values.mean(axis=0)
    fit = stats.power_law_fit(labels, mean) or {}
    still, rise, low, high = stats.rising(values, s.points, s.level)
    return {"baseline": base, "plateau": stats.plateau(mean, s.points), "plateau_points": s.points,
            "rising": still, "rise": rise, "rise_low": low, "rise_high": high,
            "fit_asymptote": fit.get("a", math.nan), "fit_exponent": fit.get("c", math.nan),
            "fit_r2": fit.get("r2", math.nan), "fit_at_bound": fit.get("at_bound", False),
            "plateau_share": fit.get("plateau_share", math.nan)}


# --- words --------------------------------------------------------------------------------------------------

def fmt_labels(value: float, status: int, last: float | None = None) -> str:
    """A labels-to-target value as text: '310', '<= 100' (already there at the first point), '> 450' (never)."""
    if status == stats.RIGHT:
        return f"> {last:,.0f}" if last is not None else "never"
    return f"<= {value:,.0f}" if status == stats.LEFT else f"{value:,.0f}"


def interval(mean: float, low: float, high: float, digits: int = 3, seeds: int | None = None) -> str:
    if math.isnan(mean):
        return "–"
    if math.isnan(low):
        return f"{mean:.{digits}f}" + (f" (interval n/a: {plural(seeds, 'seed')})" if seeds is not None else "")
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def labels_range(low: float, high: float) -> str:
    def one(v):
        return "∞" if math.isinf(v) else f"{v:,.0f}"
    return "" if math.isnan(low) else f" [{one(low)}, {one(high)}]"


def fmt_factor(v: float, digits: int = 2) -> str:
    return "∞" if math.isinf(v) else ("0" if v == 0 else f"{v:.{digits}f}")


def reduction_text(r: dict, digits: int = 2) -> str:
    """A reduction row as text: '14.80 [9.10, 23.00]', '< 3.20 [0, 4.10]', '2.10 (interval n/a: 2 seeds)',
    'n/a' (both sides censored) or 'undefined' (no target)."""
    if r["problem"]:
        return "undefined"
    if r["bound"] == "n/a":
        return "n/a"
    point = f"{r['bound']} {r['reduction']:.{digits}f}".strip()
    if math.isnan(r["reduction_low"]):
        return f"{point} (interval n/a: {plural(r['seeds'], 'seed')})"
    return f"{point} [{fmt_factor(r['reduction_low'], digits)}, {fmt_factor(r['reduction_high'], digits)}]"


def identical_notes(runs: pl.DataFrame, conditions: list[str]) -> list[str]:
    """A note per group of conditions whose runs are identical seed by seed: they picked the same items, so
    comparing them says nothing; for two classes entropy, margin and least confidence always do."""
    from alexp.report.figures import strategy_of
    from alexp.sweep import BINARY_TWINS

    groups: dict[tuple, list[str]] = {}
    for c in conditions:
        labels, values, seeds = matrix(runs, c)
        groups.setdefault((tuple(labels), tuple(seeds), values.tobytes()), []).append(c)
    notes = []
    for names in (g for g in groups.values() if len(g) > 1):
        listed = ", ".join(f"`{n}`" for n in names)
        why = (" For two classes entropy, margin and least_confidence rank items alike (each by how close "
               "P(positive) is to 1/2): compare one of them with strategies that differ."
               if all(strategy_of(n) in BINARY_TWINS for n in names) else "")
        notes.append(f"{listed} have identical runs, seed by seed: they picked the same items.{why}")
    return notes


def merge_identical_rows(rows: list[dict], runs: pl.DataFrame) -> list[dict]:
    """Comparisons of conditions whose runs are identical seed by seed (entropy, margin and least confidence on a
    binary task) merged into one row named 'a, b and c (identical runs)', so the verdict says it once."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        labels, values, seeds = matrix(runs, r["condition"])
        groups.setdefault((r["baseline"], tuple(labels), tuple(seeds), values.tobytes()), []).append(r)
    merged = []
    for members in groups.values():
        names = [m["condition"] for m in members]
        name = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]} (identical runs)"
        merged.append({**members[0], "condition": name})
    return merged


def verdict_word(r: dict) -> tuple[str, str]:
    """('fewer' | 'more' | '', why): what a reduction row lets the report say. Only the interval decides: fewer
    labels when all of it is above 1, more labels when all of it is below 1, otherwise no clear difference."""
    if r["problem"]:
        return "", "the target is undefined"
    if r["bound"] == "n/a":
        return "", "neither reaches the target"
    low, high = r["reduction_low"], r["reduction_high"]
    if math.isnan(low):
        return "", f"an interval needs at least {stats.MIN_SEEDS} paired seeds"
    if low > 1:
        return "fewer", "the interval lies above 1"
    if high < 1:
        return "more", "the interval lies below 1"
    return "", f"the interval [{fmt_factor(low)}, {fmt_factor(high)}] includes 1"


def verdict_line(r: dict, s: Settings) -> str:
    """One sentence per comparison: whether and where the condition reaches the target, and what the reduction's
    interval lets us say (`verdict_word`)."""
    cond, base, m = f"**{r['condition']}**", f"`{r['baseline']}`", s.metric
    several = "(identical runs)" in r["condition"]
    reaches, does, its = ("reach", "do", "their") if several else ("reaches", "does", "its")
    if r["problem"]:
        return f"- {cond} vs {base}: no reduction factor, the target is undefined ({r['problem']})."
    rule = (f"{m} {r['target']:.3f}" + (f", {s.fraction:.0%} of {base}'s plateau" if s.target is None else ""))
    seeds = f"{r['seeds_reached']} of {r['seeds']} seeds reach it on their own"
    need = fmt_labels(r["labels"], r["status"], r["max_labels"])
    base_need = fmt_labels(r["baseline_labels"], r["baseline_status"], r["baseline_max_labels"])
    if r["bound"] == "n/a":
        return (f"- {cond} vs {base}: neither reaches the target ({rule}) within the labels run "
                f"({need} and {base_need}); no reduction factor.")
    word, why = verdict_word(r)
    said = {"fewer": f"**fewer labels** ({why})", "more": f"**more labels** ({why})",
            "": f"no clear difference ({why})"}[word]
    bound = " (a lower bound at this schedule: the baseline is still rising)" if r.get("baseline_rising") else ""
    if r["status"] == stats.RIGHT:
        return (f"- {cond} {does} not reach the target ({rule}) within {its} {r['max_labels']:,.0f} labels; "
                f"{base} needs {base_need}: {said}, reduction {reduction_text(r)}{bound} ({seeds}).")
    return (f"- {cond} {reaches} the target ({rule}) with {need} labels against {base_need} for {base}: "
            f"{said}, reduction {reduction_text(r)}{bound} ({seeds}).")


def markdown(report: Report, title: str, figure_names: list[str]) -> str:
    """report.md: the verdict first, then the tables and the figures."""
    s, lv = report.settings, f"{report.settings.level:.0%}"
    rule = (f"the absolute target {s.metric} {s.target:g}" if s.target is not None else
            f"{s.fraction:.0%} of the baseline's plateau (the mean of its mean curve over its last {s.points} label "
            "counts)")
    lines = [f"# {title}", "", f"Metric: **{s.metric}** (mean over seeds; in brackets a {lv} bootstrap interval "
             f"over seeds, none with fewer than {stats.MIN_SEEDS} seeds). Target: {rule}.", ""]
    if report.verdict:
        lines += ["## Verdict", "", *report.verdict, ""]
    if report.notes:
        lines += ["## Warnings", "", *[f"- {n}" for n in report.notes], ""]
    lines += ["## Conditions", "", f"Final {s.metric} at the condition's last label count; AULC: the area under the "
              "curve divided by its label range (its mean height), on linear and log labels; labels to target: "
              "where the mean curve's monotone fit reaches the target, interpolated in log labels by a monotone "
              "cubic (`> N`: never within N labels; `<= N`: already at the first point), its interval widened by "
              "the interpolation error, with how many seeds reach it on their own.", "",
              f"| condition | seeds | labels | final {s.metric} | AULC | AULC (log) | target | labels to target | "
              "seeds reaching |", "|---|---|---|---|---|---|---|---|---|"]
    for r in report.conditions.iter_rows(named=True):
        n = r["seeds"]
        has = r.get("labels_to_target") is not None
        target_text = "–" if math.isnan(r["target"]) else f"{r['target']:.3f}"
        reaching = f"{r['seeds_reaching_target']}/{n}" if has else "–"
        ltt = (fmt_labels(r["labels_to_target"], r["labels_to_target_status"], r["max_labels"])
               + labels_range(r["labels_to_target_low"], r["labels_to_target_high"])) if has else "–"
        lines.append(f"| {r['condition']} | {n} | {r['max_labels']} | "
                     f"{interval(r['final'], r['final_low'], r['final_high'], seeds=n)} | "
                     f"{interval(r['aulc'], r['aulc_low'], r['aulc_high'])} | "
                     f"{interval(r['aulc_log'], r['aulc_log_low'], r['aulc_log_high'])} | "
                     f"{target_text} | {ltt} | {reaching} |")
    if report.reductions.height:
        lines += ["", "## Reduction factors", "", "The primary estimate: labels the baseline needs to reach the "
                  "target divided by labels the condition needs, both read off the monotone fits of the mean curves "
                  "(a shoulder or bump just under the target followed by a dip is not a crossing); its interval is a "
                  "paired bootstrap over seeds that recomputes the target, widened by the interpolation error "
                  "between schedule points. The verdict follows the interval alone: fewer labels when it lies above "
                  "1, more when below, otherwise no clear difference. `<` / `>`: one side never reaches the "
                  "target, so the factor is a bound; an interval end of 0 or ∞: in that share of resamples the "
                  "condition or the baseline never reaches it. The per-seed median (ratios of each seed's own "
                  "labels-to-target, censored seeds included) is a diagnostic, not the estimate.", "",
                  "| condition | baseline | target | baseline labels | condition labels | reduction (primary) | "
                  "seeds reaching (condition / baseline) | per-seed median (diagnostic) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in report.reductions.iter_rows(named=True):
            target = "undefined" if r["problem"] else f"{r['target']:.3f}"
            med = "–" if math.isnan(r["per_seed_median"]) else fmt_factor(r["per_seed_median"])
            lines.append(f"| {r['condition']} | {r['baseline']} | {target} | "
                         f"{fmt_labels(r['baseline_labels'], r['baseline_status'], r['baseline_max_labels'])} | "
                         f"{fmt_labels(r['labels'], r['status'], r['max_labels'])} | {reduction_text(r)} | "
                         f"{r['seeds_reached']} / {r['baseline_seeds_reached']} of {r['seeds']} | {med} |")
    if report.fits.height:
        lines += ["", "### Baselines' plateaus", "", f"The plateau (mean over the last {s.points} label counts); "
                  "whether the baseline is still rising across them (its per-seed rise from the first to the last "
                  f"of them, with its interval: rising when the interval is above 0 and the rise at least 0.01); and "
                  "the asymptote a of a least-squares fit of a - b n^-c to the mean curve, kept between the curve's "
                  "best value and 1 (`1 (bound)`: the fit wants more, which a levelled curve does not identify).",
                  "", "| baseline | plateau | rise over its plateau | still rising | fitted asymptote | fit R² |",
                  "|---|---|---|---|---|---|"]
        for r in report.fits.iter_rows(named=True):
            fit = ("no fit" if math.isnan(r["fit_asymptote"]) else
                   f"{r['fit_asymptote']:.3f}" + (" (bound)" if r["fit_at_bound"] else ""))
            rise = "–" if math.isnan(r["rise"]) else interval(r["rise"], r["rise_low"], r["rise_high"], seeds=0)
            r2 = "–" if math.isnan(r["fit_r2"]) else f"{r['fit_r2']:.3f}"
            lines.append(f"| {r['baseline']} | {r['plateau']:.3f} | {rise} | {'yes' if r['rising'] else 'no'} | "
                         f"{fit} | {r2} |")
    if report.comparisons.height:
        lines += ["", "## Paired comparisons", "", "Per-seed differences condition − baseline on runs with the same "
                  "seed (same split, initial set and oracle answers): the mean with its bootstrap interval, wins and "
                  "losses, Wilcoxon's signed-rank p-value, the same p-value Holm-adjusted over every comparison "
                  "in this report, and the smallest p the test can give at this many seeds (every seed won or every "
                  "seed lost): where that is above 0.05, no result can be significant. AULC is compared on the "
                  "label range both conditions cover.", "",
                  "| condition | baseline | measure | seeds | wins / losses | mean difference | Wilcoxon p | "
                  "Holm p | smallest possible p |", "|---|---|---|---|---|---|---|---|---|"]
        for r in report.comparisons.iter_rows(named=True):
            diff = interval(r["mean_diff"], r["diff_low"], r["diff_high"], seeds=r["seeds"])
            lines.append(f"| {r['condition']} | {r['baseline']} | {r['measure']} | {r['seeds']} | "
                         f"{r['wins']} / {r['losses']} | {diff} | {r['wilcoxon_p']:.3g} | {r['holm_p']:.3g} | "
                         f"{r['smallest_p']:.3g} |")
    if report.stopping.height:
        lines += ["", "## Stopping rules", "", "What each rule would have spent and lost had it ended the run: "
                  "labels at stop (median over seeds; in brackets the 10th and 90th percentile seeds' own values; "
                  "a seed whose rule never fired stops at its last label count), the rule's seeds that fired, the "
                  f"mean {s.metric} at stop, the loss against the condition's plateau (the mean of its mean curve "
                  f"over its last {s.points} label counts; negative: above it), and the seeds that stopped before "
                  "their own curve reached the target (a seed that never reaches it counts).", "",
                  *report.stopping_lines, "",
                  f"| condition | rule | labels at stop | fired | {s.metric} at stop | plateau | loss | "
                  "stopped before the target |", "|---|---|---|---|---|---|---|---|"]
        for r in report.stopping.iter_rows(named=True):
            short = "–" if r["stopped_short"] is None else f"{r['stopped_short']} / {r['seeds']}"
            spread = f"[{r['labels_p10']:.0f}–{r['labels_p90']:.0f}]"
            spent = (f"never fired: {r['max_labels']:.0f}" if r["fired"] == 0 else
                     f"{r['labels_at_stop']:.0f} {spread} of {r['max_labels']:.0f}")
            lines.append(f"| {r['condition']} | {r['rule']} | {spent} | {r['fired']} / {r['seeds']} | "
                         f"{r['at_stop']:.3f} | {r['plateau']:.3f} | {r['loss']:+.3f} | {short} |")
    lines += ["", "## Figures", ""] + [f"![{name[:-4].replace('_', ' ')}]({name}) (vector: [{name[:-4]}.pdf]"
                                       f"({name[:-4]}.pdf))\n" for name in figure_names]
    return "\n".join(lines) + "\n"
