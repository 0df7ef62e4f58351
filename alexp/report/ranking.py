"""Ranking strategies across tasks: which to use, how sure that is, and how much of the possible gain it takes.

Input: one long table of runs with a `task` column (one task per MLflow experiment). Each run is reduced to one
score per task, condition and seed: the area under its learning curve (the curve's mean height over the label
range every run of the task logged, `stats.aulc`) or its final value. Then, as in CDALBench (Werner et al.
2024) and Demšar (2006):

- per task, conditions are ranked by their mean score over seeds (1 = best; ties share the mean of their ranks);
- the mean rank over tasks gets a bootstrap interval over seeds: seeds are resampled within each task, paired
  across conditions (runs of one seed share their split and initial labels), and the ranks recomputed; the
  interval is symmetric about the observed mean rank (see `mean_rank_intervals`). It shows how sure the ranking
  is *on these tasks*; it says nothing about tasks not in the benchmark;
- the Friedman test asks whether any condition ranks differently from the others over tasks (tasks are the
  sample: it speaks to tasks like these), and Nemenyi's critical difference says which mean ranks are further
  apart than chance allows at 95% (two conditions closer than it are not told apart);
- the pairwise matrix counts, for each pair, the tasks on which the row beats the column by its paired interval
  over seeds (Lüth et al. 2023's pairwise-penalty matrix, counting significant wins);
- the share of the gap closed on a task is (condition - random) / (upper bound - random), paired over seeds,
  defined only where the bound beats random by its interval (else the gap is noise); its mean over those tasks
  gets a bootstrap interval over seeds. Above 1: the condition beat the bound (a greedy bound is not a ceiling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy import stats as sps

from alexp.report import stats

MEASURES = ("aulc", "final")


@dataclass
class Ranking:
    """The cross-task ranking of `conditions` on `tasks` by `measure` (see the module's docstring)."""

    tasks: list[str]
    conditions: list[str]
    measure: str
    scores: list[NDArray]  # per task: conditions x seeds (seeds every condition of the task has)
    seeds: list[list[int]]
    means: NDArray  # tasks x conditions: mean score over seeds
    ranks: NDArray  # tasks x conditions: 1 = best
    mean_rank: NDArray  # conditions
    rank_low: NDArray
    rank_high: NDArray
    friedman_stat: float
    friedman_p: float
    critical_difference: float
    wins: NDArray  # conditions x conditions: tasks where the row beats the column by its interval over seeds
    base: str | None = None  # the random baseline and the upper bound of the gap, when both were run
    bound: str | None = None
    gap_share: NDArray | None = None  # tasks x conditions (NaN where the gap is not defined)
    gap_mean: NDArray | None = None  # conditions: mean share over the tasks where it is defined, and interval
    gap_low: NDArray | None = None
    gap_high: NDArray | None = None
    gap_tasks: list[str] = field(default_factory=list)  # tasks where the bound beats random by its interval

    def leaderboard(self) -> pl.DataFrame:
        """One row per condition, best mean rank first."""
        order = np.argsort(self.mean_rank, kind="stable")
        frame = pl.DataFrame({
            "condition": [self.conditions[i] for i in order],
            "mean_rank": self.mean_rank[order], "rank_low": self.rank_low[order], "rank_high": self.rank_high[order],
            f"mean_{self.measure}": self.means.mean(axis=0)[order],
            "tasks_first": (self.ranks == self.ranks.min(axis=1, keepdims=True)).sum(axis=0)[order],
            "significant_wins": self.wins.sum(axis=1)[order], "significant_losses": self.wins.sum(axis=0)[order],
        })
        if self.gap_mean is not None:
            frame = frame.with_columns(gap_share=pl.Series(self.gap_mean[order]),
                                       gap_low=pl.Series(self.gap_low[order]), gap_high=pl.Series(self.gap_high[order]))
        return frame

    def cd_groups(self) -> list[list[str]]:
        """Maximal runs of conditions (in mean-rank order) whose mean ranks differ by less than the critical
        difference: conditions of one group are not told apart."""
        order = np.argsort(self.mean_rank, kind="stable")
        r = self.mean_rank[order]
        groups = []
        for i in range(len(r)):
            j = i
            while j + 1 < len(r) and r[j + 1] - r[i] < self.critical_difference:
                j += 1
            if j > i and not any(g[0] <= i and j <= g[1] for g in groups):
                groups.append((i, j))
        return [[self.conditions[order[t]] for t in range(i, j + 1)] for i, j in groups]


def scores(runs: pl.DataFrame, measure: str = "aulc") -> tuple[list[str], list[str], list[NDArray], list[list[int]]]:
    """(tasks, conditions, per task a conditions x seeds matrix, per task its seeds) from a long table with columns
    task, condition, seed, n_labels, value. A task's scores use the label counts every run of it logged and the
    seeds every condition ran; a condition missing from a task raises ValueError (a ranking needs all)."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    tasks = runs["task"].unique(maintain_order=True).to_list()
    conditions = runs["condition"].unique(maintain_order=True).to_list()
    out, seeds_out = [], []
    for task in tasks:
        part = runs.filter(pl.col("task") == task)
        missing = set(conditions) - set(part["condition"].unique().to_list())
        if missing:
            raise ValueError(f"task {task!r} has no finished runs of {sorted(missing)}; run them, or leave the task "
                             "out")
        per_run = part.group_by("condition", "seed").agg(pl.col("n_labels").sort(),
                                                         pl.col("value").sort_by("n_labels"))
        common_labels = set.intersection(*(set(x) for x in per_run["n_labels"].to_list()))
        seeds = sorted(set.intersection(*(set(per_run.filter(pl.col("condition") == c)["seed"].to_list())
                                          for c in conditions)))
        if len(common_labels) < 2 or not seeds:
            raise ValueError(f"task {task!r}: its runs share {len(common_labels)} label counts and {len(seeds)} "
                             "seeds across conditions; a ranking needs runs of one schedule and common seeds")
        grid = np.array(sorted(common_labels), dtype=float)
        matrix = np.full((len(conditions), len(seeds)), np.nan)
        index = {(c, s): (x, v) for c, s, x, v in per_run.iter_rows()}
        for i, c in enumerate(conditions):
            for j, s in enumerate(seeds):
                x, v = index[(c, s)]
                curve = np.array(v, dtype=float)[np.isin(np.array(x, dtype=float), grid)]
                matrix[i, j] = stats.aulc(grid, curve) if measure == "aulc" else curve[-1]
        out.append(matrix)
        seeds_out.append(seeds)
    return tasks, conditions, out, seeds_out


def task_ranks(means: NDArray) -> NDArray:
    """Ranks within each task (row): 1 = the highest mean; tied conditions share the mean of their ranks."""
    return sps.rankdata(-np.asarray(means, dtype=float), method="average", axis=1)


def friedman(means: NDArray) -> tuple[float, float]:
    """Friedman's chi-square statistic and p-value over tasks (rows) x conditions (columns), scipy's (with its
    correction for ties); NaN with fewer than 3 conditions or 2 tasks."""
    means = np.asarray(means, dtype=float)
    if means.shape[1] < 3 or means.shape[0] < 2:
        return math.nan, math.nan
    res = sps.friedmanchisquare(*means.T)
    return float(res.statistic), float(res.pvalue)


def nemenyi_cd(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi's critical difference of mean ranks for k conditions on n tasks (Demšar 2006):
    q_alpha * sqrt(k (k + 1) / (6 n)), q_alpha the studentized range quantile over sqrt(2)."""
    if k < 2 or n < 1:
        return math.nan
    q = sps.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n)))


def mean_rank_intervals(task_scores: list[NDArray], level: float = stats.LEVEL, resamples: int = 2000,
                        seed: int = 0, symmetric: bool = True) -> tuple[NDArray, NDArray, NDArray]:
    """(mean rank, low, high) per condition, from a bootstrap over seeds, resampled within each task and paired
    across its conditions (tail share widened for the fewest seeds of a task, as `stats.mean_interval` widens it).

    The rank of a noisy mean is pulled toward the middle where conditions are close, and a resample's rank is
    pulled further, so the plain percentile interval misses the true mean rank of the best and worst conditions
    (61% coverage with noisy seeds in `simulations/strategy_benchmark/calibration.py`). The interval is
    therefore symmetric about the observed mean rank, as wide on each side as the bootstrap's wider tail (the
    union of the percentile and the basic interval), clipped to [1, conditions]: 93-98% there.
    `symmetric=False` gives the plain percentile interval."""
    rng = np.random.default_rng(seed)
    k = task_scores[0].shape[0]
    rank_sums = np.zeros((resamples, k))
    for m in task_scores:
        picks = rng.integers(0, m.shape[1], size=(resamples, m.shape[1]))
        rank_sums += task_ranks(m[:, picks].mean(axis=2).T)
    replicates = rank_sums / len(task_scores)
    mean = task_ranks(np.array([m.mean(axis=1) for m in task_scores])).mean(axis=0)
    fewest = min(m.shape[1] for m in task_scores)
    if fewest < stats.MIN_SEEDS:
        return mean, np.full(k, np.nan), np.full(k, np.nan)
    alpha = stats.expanded_alpha(fewest, level)
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2], axis=0)
    if not symmetric:
        return mean, np.minimum(low, mean), np.maximum(high, mean)
    half = np.maximum(mean - low, high - mean)
    return mean, np.maximum(mean - half, 1.0), np.minimum(mean + half, float(k))


def pairwise_wins(task_scores: list[NDArray], level: float = stats.LEVEL) -> NDArray:
    """conditions x conditions: on how many tasks the row's mean beats the column's by the paired bootstrap
    interval over seeds (the interval of the per-seed difference lies above 0)."""
    k = task_scores[0].shape[0]
    wins = np.zeros((k, k), dtype=int)
    for t, m in enumerate(task_scores):
        for i in range(k):
            for j in range(i + 1, k):
                mean, low, high = stats.mean_interval(m[i] - m[j], level, seed=t)
                wins[i, j] += bool(low > 0)
                wins[j, i] += bool(high < 0)
    return wins


def gap_shares(task_scores: list[NDArray], base: int, bound: int, level: float = stats.LEVEL,
               resamples: int = 2000, seed: int = 0) -> tuple[NDArray, NDArray, NDArray, NDArray, NDArray]:
    """The share of the gap between `base` (random) and `bound` (the upper bound) that each condition closes:
    (per task x condition, NaN where undefined; mean over defined tasks, low, high; defined-task mask). A task's
    gap is defined where the bound beats the base by the paired interval over seeds; the mean's interval
    resamples seeds within each defined task (paired across conditions) and recomputes the shares."""
    rng = np.random.default_rng(seed)
    k = task_scores[0].shape[0]
    defined = np.array([stats.mean_interval(m[bound] - m[base], level, seed=t)[1] > 0
                        for t, m in enumerate(task_scores)])
    share = np.full((len(task_scores), k), np.nan)
    replicates = np.zeros((resamples, k))
    for t, m in enumerate(task_scores):
        if not defined[t]:
            continue
        means = m.mean(axis=1)
        share[t] = (means - means[base]) / (means[bound] - means[base])
        picks = rng.integers(0, m.shape[1], size=(resamples, m.shape[1]))
        boot = m[:, picks].mean(axis=2)  # conditions x resamples
        gap = boot[bound] - boot[base]
        with np.errstate(divide="ignore", invalid="ignore"):
            replicates += ((boot - boot[base]) / np.where(gap > 0, gap, np.nan)).T
    n = int(defined.sum())
    if n == 0:
        nan = np.full(k, np.nan)
        return share, nan, nan, nan, defined
    replicates /= n
    mean = np.nanmean(share[defined], axis=0)
    fewest = min(m.shape[1] for m, d in zip(task_scores, defined) if d)
    alpha = stats.expanded_alpha(fewest, level) if fewest >= stats.MIN_SEEDS else math.nan
    if math.isnan(alpha):
        return share, mean, np.full(k, np.nan), np.full(k, np.nan), defined
    low, high = np.nanquantile(replicates, [alpha / 2, 1 - alpha / 2], axis=0)
    return share, mean, low, high, defined


def rank(runs: pl.DataFrame, measure: str = "aulc", base: str | None = None, bound: str | None = None,
         level: float = stats.LEVEL) -> Ranking:
    """The whole cross-task ranking of the runs (a `task` column; see `scores`); the gap shares when `base` and
    `bound` name conditions."""
    tasks, conditions, task_scores, seeds = scores(runs, measure)
    means = np.array([m.mean(axis=1) for m in task_scores])
    ranks = task_ranks(means)
    mean, low, high = mean_rank_intervals(task_scores, level)
    stat, p = friedman(means)
    out = Ranking(tasks, conditions, measure, task_scores, seeds, means, ranks, mean, low, high, stat, p,
                  nemenyi_cd(len(conditions), len(tasks), 1 - level), pairwise_wins(task_scores, level))
    if base in conditions and bound in conditions:
        share, gmean, glow, ghigh, defined = gap_shares(task_scores, conditions.index(base), conditions.index(bound),
                                                        level)
        out.base, out.bound, out.gap_share = base, bound, share
        out.gap_mean, out.gap_low, out.gap_high = gmean, glow, ghigh
        out.gap_tasks = [t for t, d in zip(tasks, defined) if d]
    return out


def counterpart(conditions: list[str], of: str | None, settings: dict[str, str]) -> str | None:
    """The condition equal to `of` but for `settings` (random's counterpart of the bound: the same model and
    oracle, acquisition=random); with no `of`, the only condition matching `settings`, if exactly one does."""
    from alexp.report.runs import condition_params

    named = {c: condition_params(c) for c in conditions}
    if of is not None:
        wanted = {**named[of], **settings}
        found = [c for c, p in named.items() if p == wanted]
    else:
        found = [c for c, p in named.items() if all(p.get(k) == v for k, v in settings.items())]
    return found[0] if len(found) == 1 else None


def markdown(r: Ranking, title: str, figure: str | None = None, level: float = stats.LEVEL) -> str:
    """The ranking in words and tables: leaderboard, Friedman and the critical difference, the pairwise matrix,
    the gap closed, and per-task means."""
    from alexp.report.tables import interval

    pct = f"{level:.0%}"
    board = r.leaderboard()
    what = "area under the learning curve (its mean height)" if r.measure == "aulc" else "value at the last label count"
    lines = [f"# {title}", "",
             f"{len(r.conditions)} conditions on {len(r.tasks)} tasks, each scored by its {what}; seeds per task: "
             + ", ".join(sorted({str(len(s)) for s in r.seeds})) + ". Ranks: 1 = best on a task (mean over seeds). "
             f"Intervals are {pct} bootstrap intervals over seeds (resampled within each task, paired across "
             "conditions): they say how sure the ranking is on these tasks, not on tasks outside the benchmark.", ""]
    gap = r.gap_mean is not None
    head = ["condition", "mean rank", f"mean {r.measure}", "tasks ranked first", "significant wins / losses"]
    if gap:
        head.append(f"share of the gap closed ({len(r.gap_tasks)} tasks)")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in board.iter_rows(named=True):
        cells = [row["condition"], interval(row["mean_rank"], row["rank_low"], row["rank_high"], 2),
                 f"{row[f'mean_{r.measure}']:.3f}", str(row["tasks_first"]),
                 f"{row['significant_wins']} / {row['significant_losses']}"]
        if gap:
            cells.append(interval(row["gap_share"], row["gap_low"], row["gap_high"], 2))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if math.isnan(r.friedman_p):
        lines.append("Friedman test: undefined (it needs at least 3 conditions and 2 tasks).")
    else:
        verdict = ("the conditions' ranks differ more than chance would make them" if r.friedman_p < 1 - level else
                   "no evidence that the conditions' ranks differ beyond chance: the mean ranks above may be noise")
        lines.append(f"Friedman test over {len(r.tasks)} tasks: chi-square {r.friedman_stat:.2f}, "
                     f"p = {r.friedman_p:.2g}: {verdict}.")
    groups = r.cd_groups()
    lines += ["", f"Nemenyi critical difference ({pct}): {r.critical_difference:.2f} ranks. Two conditions whose mean "
              "ranks differ by less are not told apart on these tasks"
              + (": " + "; ".join("{" + ", ".join(g) + "}" for g in groups) + "." if groups else
                 "; every pair differs by more."), ""]
    if gap:
        left = [t for t in r.tasks if t not in r.gap_tasks]
        lines += [f"Share of the gap closed: (condition - {r.base}) / ({r.bound} - {r.base}) in mean "
                  f"{r.measure}, averaged over the {len(r.gap_tasks)} tasks where the bound beats random by its "
                  "interval (0 = no better than random, 1 = as good as the bound, above 1 = better than this greedy "
                  "bound, which is not a ceiling)"
                  + (f"; undefined on {', '.join(left)} (the bound's gain there is within noise)." if left
                     else "."), ""]
    order = list(np.argsort(r.mean_rank, kind="stable"))  # the leaderboard's order
    lines += ["## Pairwise wins", "", "Tasks on which the row beats the column by its paired interval over seeds "
              "(conditions in leaderboard order).", "",
              "| | " + " | ".join(f"({n + 1})" for n in range(len(order))) + " |", "|---|" + "---|" * len(order)]
    for n, i in enumerate(order):
        lines.append(f"| ({n + 1}) {r.conditions[i]} | " + " | ".join("" if i == j else str(r.wins[i, j])
                                                                      for j in order) + " |")
    lines += ["", f"## Per task: mean {r.measure} over seeds (rank)", "", "Columns numbered as the matrix's rows.", "",
              "| task | seeds | " + " | ".join(f"({n + 1})" for n in range(len(order))) + " |",
              "|---|---|" + "---|" * len(order)]
    for t, task in enumerate(r.tasks):
        lines.append(f"| {task} | {len(r.seeds[t])} | " + " | ".join(
            f"{r.means[t, i]:.3f} ({r.ranks[t, i]:g})" for i in order) + " |")
    if figure:
        lines += ["", f"![critical difference and pairwise wins]({figure})"]
    return "\n".join(lines) + "\n"


def figure(r: Ranking, path) -> None:
    """A critical-difference diagram (mean ranks on a line, best left, groups not told apart joined by a bar,
    each mean rank with its interval over seeds) above the pairwise-wins matrix; png and pdf."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alexp.report.figures import line_styles

    k = len(r.conditions)
    order = list(np.argsort(r.mean_rank, kind="stable"))
    looks = line_styles(r.conditions)
    fig, (ax, mx) = plt.subplots(2, 1, figsize=(7, 3.2 + 0.32 * k), dpi=200,
                                 gridspec_kw={"height_ratios": [1.1, 1.0]})
    ax.set_xlim(0.6, k + 0.4)
    ax.set_ylim(-0.6 - 0.35 * len(r.cd_groups()), k + 2.0)
    ax.hlines(k, 1, k, color="black", linewidth=1)
    for i in range(1, k + 1):
        ax.vlines(i, k, k + 0.15, color="black", linewidth=1)
        ax.text(i, k + 0.25, str(i), ha="center", va="bottom", fontsize=8)
    for line, c in enumerate(order):
        y = k - 1 - line
        color, style, marker = looks[r.conditions[c]]  # conditions sharing a strategy differ by style and marker
        ax.plot([r.mean_rank[c]] * 2, [y, k], color=color, linewidth=0.8, linestyle=style)
        if not math.isnan(r.rank_low[c]):
            ax.hlines(y, r.rank_low[c], r.rank_high[c], color=color, linewidth=3, alpha=0.5)
        ax.plot(r.mean_rank[c], y, marker, color=color, markersize=5, markeredgecolor="black", markeredgewidth=0.5)
        ax.text(k + 0.45, y, f"{r.conditions[c]}  ({r.mean_rank[c]:.2f})", va="center", fontsize=8, clip_on=False)
    for g, group in enumerate(r.cd_groups()):
        ranks = [r.mean_rank[r.conditions.index(c)] for c in group]
        ax.hlines(-0.4 - 0.35 * g, min(ranks) - 0.03, max(ranks) + 0.03, color="black", linewidth=3)
    ax.hlines(k + 1.4, 1, 1 + r.critical_difference, color="0.3", linewidth=1.5)
    ax.vlines([1, 1 + r.critical_difference], k + 1.3, k + 1.5, color="0.3", linewidth=1.5)
    ax.text(1 + r.critical_difference + 0.08, k + 1.4, f"critical difference {r.critical_difference:.2f}",
            ha="left", va="center", fontsize=8)
    ax.axis("off")
    p = "" if math.isnan(r.friedman_p) else f"; Friedman p = {r.friedman_p:.2g}"
    ax.set_title(f"mean rank by {r.measure} over {len(r.tasks)} tasks (1 = best; bars: {stats.LEVEL:.0%} intervals "
                 f"over seeds; black: not told apart{p})", fontsize=8)
    wins = r.wins[np.ix_(order, order)]
    mx.imshow(wins, cmap="Greens", vmin=0, vmax=max(1, len(r.tasks)))
    for i in range(k):
        for j in range(k):
            if i != j:
                dark = wins[i, j] > 0.6 * max(1, len(r.tasks))
                mx.text(j, i, str(wins[i, j]), ha="center", va="center", fontsize=7, color="white" if dark else "black")
    names = [r.conditions[c] for c in order]
    mx.set_yticks(range(k), names, fontsize=7)
    mx.set_xticks(range(k), [f"({i + 1})" for i in range(k)], fontsize=7)
    mx.set_yticklabels([f"({i + 1}) {n}" for i, n in enumerate(names)], fontsize=7)
    mx.set_title("tasks on which the row beats the column (paired interval over seeds)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    fig.savefig(str(path).rsplit(".", 1)[0] + ".pdf", bbox_inches="tight")
    plt.close(fig)
