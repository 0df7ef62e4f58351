"""The cross-task ranking checked where the truth is known: simulated benchmarks with known condition means.

    python simulations/strategy_benchmark/calibration.py       # 200 benchmarks per setting (~10 min)

Each simulated benchmark has T tasks, K conditions and S seeds. A condition's true mean on a task is the task's
level + the condition's effect + a task-by-condition interaction; a run's score adds a seed effect shared by every
condition of that seed (what common random numbers share) and its own noise. The truth is known: the mean ranks of
the true task means, and the share of the gap (condition - random) / (bound - random) of the true means. Printed
(and written to calibration.md): how often the 95% intervals of `alexp.report.ranking` cover the truth, how often
Friedman's test rejects when no condition differs, and how often a pair of conditions the critical difference
tells apart truly differs in mean rank.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

from alexp.report import ranking

HERE = Path(__file__).resolve().parent
EFFECTS = np.array([0.0, 0.01, 0.02, 0.02, 0.04, -0.01, 0.06, 0.10])  # random first, the bound last


def benchmark(rng, tasks: int, seeds: int, effects, interaction: float, seed_sd: float, noise: float):
    """(runs as alexp.report.ranking reads them, true means tasks x conditions)."""
    k = len(effects)
    truth = rng.uniform(0.2, 0.7, (tasks, 1)) + effects + rng.normal(0, interaction, (tasks, k))
    shared = rng.normal(0, seed_sd, (tasks, 1, seeds))
    scores = truth[:, :, None] + shared + rng.normal(0, noise, (tasks, k, seeds))
    t, c, s = np.meshgrid(np.arange(tasks), np.arange(k), np.arange(seeds), indexing="ij")
    frame = pl.DataFrame({"task": [f"t{i}" for i in t.ravel()], "condition": [f"c{i}" for i in c.ravel()],
                          "seed": s.ravel(), "value": scores.ravel()})
    runs = pl.concat([frame.with_columns(n_labels=pl.lit(n)) for n in (10, 20)])  # flat curves: area = score
    return runs, truth


def rank(runs, k: int) -> ranking.Ranking:
    """`ranking.rank` without the pairwise-wins matrix (not checked here, and most of its time)."""
    tasks, conditions, scores, seeds = ranking.scores(runs)
    means = np.array([m.mean(axis=1) for m in scores])
    mean, low, high = ranking.mean_rank_intervals(scores)
    stat, p = ranking.friedman(means)
    r = ranking.Ranking(tasks, conditions, "aulc", scores, seeds, means, ranking.task_ranks(means), mean, low, high,
                        stat, p, ranking.nemenyi_cd(k, len(tasks)), np.zeros((k, k), dtype=int))
    share, r.gap_mean, r.gap_low, r.gap_high, defined = ranking.gap_shares(scores, conditions.index("c0"),
                                                                           conditions.index(f"c{k - 1}"))
    r.gap_tasks = [t for t, d in zip(tasks, defined) if d]
    return r


def study(reps: int, tasks: int, seeds: int, effects, interaction=0.02, seed_sd=0.05, noise=0.03, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    k = len(effects)
    covered, percentile, gap_covered, rejected, told, told_wrong = np.zeros(k), np.zeros(k), np.zeros(k), 0, 0, 0
    gap_reps = 0
    for _ in range(reps):
        runs, truth = benchmark(rng, tasks, seeds, effects, interaction, seed_sd, noise)
        r = rank(runs, k)
        order = [int(c[1:]) for c in r.conditions]
        true_rank = ranking.task_ranks(truth).mean(axis=0)[order]
        covered += (r.rank_low <= true_rank) & (true_rank <= r.rank_high)
        _, low, high = ranking.mean_rank_intervals(r.scores, symmetric=False)
        percentile += (low <= true_rank) & (true_rank <= high)
        rejected += r.friedman_p < 0.05
        for i in range(k):
            for j in range(i + 1, k):
                if abs(r.mean_rank[i] - r.mean_rank[j]) > r.critical_difference:
                    told += 1
                    true_order = np.sign(true_rank[i] - true_rank[j])
                    told_wrong += true_order != np.sign(r.mean_rank[i] - r.mean_rank[j])
        if r.gap_tasks:
            gap_reps += 1
            kept = [int(t[1:]) for t in r.gap_tasks]
            t_means = truth[kept][:, order]
            base, bound = r.conditions.index("c0"), r.conditions.index(f"c{k - 1}")
            gap = t_means[:, [bound]] - t_means[:, [base]]
            if (gap <= 0).any():  # the truth has no gap to share on a kept task (every condition equal)
                continue
            true_share = ((t_means - t_means[:, [base]]) / gap).mean(axis=0)
            gap_covered += (r.gap_low <= true_share + 1e-12) & (true_share - 1e-12 <= r.gap_high)
    return {"rank coverage (min, median over conditions)": (covered.min() / reps, np.median(covered) / reps),
            "percentile": (percentile.min() / reps, np.median(percentile) / reps),
            "gap-share coverage (min, median; random and bound excluded)":
                (np.min(gap_covered[1:-1]) / max(gap_reps, 1), np.median(gap_covered[1:-1]) / max(gap_reps, 1)),
            "Friedman rejections at 5%": rejected / reps,
            "pairs told apart by the CD": told / reps, "of them in the wrong order": told_wrong / max(told, 1)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=200, help="simulated benchmarks per setting (default 200)")
    args = p.parse_args(argv)
    settings = {
        "8 conditions, 12 tasks, 10 seeds": dict(tasks=12, seeds=10, effects=EFFECTS),
        "8 conditions, 12 tasks, 20 seeds": dict(tasks=12, seeds=20, effects=EFFECTS),
        "8 conditions, 12 tasks, 10 seeds, noise x2": dict(tasks=12, seeds=10, effects=EFFECTS, noise=0.06),
        "no difference (effects 0, no interaction), 12 tasks, 10 seeds":
            dict(tasks=12, seeds=10, effects=np.r_[np.zeros(7), 0.1], interaction=0.0),
    }
    lines = ["# The cross-task ranking where the truth is known", "",
             f"{args.reps} simulated benchmarks per row (`python simulations/strategy_benchmark/calibration.py`). "
             "Effects over random: " + ", ".join(f"{e:+.2f}" for e in EFFECTS[1:]) + " (the last is the bound); "
             "task-by-condition interaction sd 0.02, seed effect sd 0.05 shared by a seed's conditions, run noise "
             "sd 0.03. In the no-difference row seven conditions are equal and the bound stays ahead (so the "
             "Friedman test there is not under its null; see the next line).", ""]
    null = study(args.reps, 12, 10, np.zeros(8), interaction=0.0, seed=1)
    table = ["| setting | rank coverage, alexp's interval (min / median over conditions) | plain percentile interval "
             "(not used) | gap-share coverage (min / median) | pairs told apart per benchmark | of them in the wrong "
             "order |", "|---|---|---|---|---|---|"]
    for name, kw in settings.items():
        res = study(args.reps, **kw)
        (rmin, rmed), (gmin, gmed) = res["rank coverage (min, median over conditions)"], \
            res["gap-share coverage (min, median; random and bound excluded)"]
        pmin, pmed = res["percentile"]
        table.append(f"| {name} | {rmin:.2f} / {rmed:.2f} | {pmin:.2f} / {pmed:.2f} | {gmin:.2f} / {gmed:.2f} | "
                     f"{res['pairs told apart by the CD']:.1f} | {res['of them in the wrong order']:.3f} |")
        print(table[-1], flush=True)
    lines += table
    lines += ["", f"Friedman's test with every condition equal (8 conditions, 12 tasks, 10 seeds): rejects at 5% in "
              f"{null['Friedman rejections at 5%']:.3f} of {args.reps} benchmarks.", ""]
    print(lines[-2])
    (HERE / "calibration.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
