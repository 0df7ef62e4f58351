"""Calibration of the report's reduction factor on learning curves whose answer is known.

    python simulations/report_calibration/run.py              # 400 studies at 5 and at 20 seeds (~1 min)
    python simulations/report_calibration/run.py --studies 50 # quicker

Each simulated study has a baseline and a strategy whose true curves are kappa(n) = a - b * n^-c, with their
own a, b, c, observed on schedules like the claim study's (the baseline log-spaced from 100 to 100,000 labels,
3 per decade; the strategy in rounds of 70 from 100 to 450, or log-spaced to 3,000). Every seed adds noise:
an offset shared by both conditions of the seed (common random numbers), an offset of its own per condition,
and noise at each point that shrinks with more labels. The truth follows from the curves: the target is 95% of
the baseline's true plateau (its mean over its last 3 label counts), the true labels-to-target solves
a - b n^-c = target, and the true reduction is their ratio (0 when the strategy's asymptote is below the
target: it never gets there). Some studies are censored on purpose: the strategy's crossing lies beyond its
last label count or does not exist.

Printed: per number of seeds, the share of studies whose 95% interval covers the true reduction, the median
relative error of the point estimate, and how often the estimate's censoring agrees with the truth; then, for a
few fixed studies re-run with fresh noise, the spread of the estimate against the rule alexp used before (the
baseline's best mean as the target, the first label count at or above it, no interpolation).
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from alexp.report import stats

BASE_LABELS = np.unique(np.round(100 * 10 ** (np.arange(10) / 3))).astype(float)  # 100 ... 100,000
ROUNDS = np.arange(100, 451, 70, dtype=float)  # 100, 170, ..., 450: the curated budget
LONG = np.unique(np.round(100 * 10 ** (np.arange(0, 11) / 6.8))).astype(float)  # 100 ... ~3,000


def curve(n, a, b, c):
    return a - b * n ** -c


def draw_study(rng: np.random.Generator) -> dict:
    """True curve parameters of a baseline and a strategy that start from the same initial labels."""
    a_b, c_b = rng.uniform(0.45, 0.85), rng.uniform(0.25, 0.7)
    start = a_b * rng.uniform(0.15, 0.5)  # both conditions' kappa at the 100 initial labels
    b_b = (a_b - start) * 100 ** c_b
    a_s = a_b * rng.uniform(0.94, 1.1)  # some strategies level off below the target: censored, truth 0
    c_s = rng.uniform(0.5, 1.6)
    b_s = (a_s - start) * 100 ** c_s
    labels = ROUNDS if rng.random() < 0.3 else LONG
    return {"base": (a_b, b_b, c_b), "strat": (a_s, b_s, c_s), "labels": labels}


def true_need(params: tuple[float, float, float], target: float) -> float:
    """Labels at which a - b n^-c reaches `target` (inf when its asymptote a is below it)."""
    a, b, c = params
    return (b / (a - target)) ** (1 / c) if a > target else math.inf


def true_target(study: dict) -> float:
    """95% of the baseline's true plateau (its true curve's mean over its last 3 label counts)."""
    return stats.FRACTION * float(np.mean(curve(BASE_LABELS[-stats.PLATEAU_POINTS:], *study["base"])))


def truth(study: dict) -> float:
    """The true reduction factor of a study (0 when the strategy never reaches the target)."""
    return need_base(study) / true_need(study["strat"], true_target(study))


def observe(study: dict, seeds: int, rng: np.random.Generator, noise: float = 0.03) -> tuple[np.ndarray, ...]:
    """seeds x label counts of kappa for the baseline and the strategy, with paired per-seed noise."""
    def runs(labels, params, shared):
        own = rng.normal(0, noise, (seeds, 1))
        point = rng.normal(0, noise, (seeds, len(labels))) * (100 / labels) ** 0.25
        return np.clip(curve(labels, *params) + shared + own + point, -1, 1)

    shared = rng.normal(0, noise, (seeds, 1))
    return runs(BASE_LABELS, study["base"], shared), runs(study["labels"], study["strat"], shared)


def best_mean_rule(base: np.ndarray, strat: np.ndarray, labels: np.ndarray) -> float:
    """alexp's former estimate: target = the baseline's best mean; first label count at or above it."""
    mb, ms = base.mean(axis=0), strat.mean(axis=0)
    target = mb.max()
    hit_b, hit_s = np.flatnonzero(mb >= target), np.flatnonzero(ms >= target)
    need_s = labels[hit_s[0]] if len(hit_s) else labels[-1]
    return float(BASE_LABELS[hit_b[0]] / need_s)


def calibrate(studies: int, seeds: int, seed: int = 0) -> dict[str, float]:
    """Over `studies` simulated studies: coverage of the reduction's interval (all studies, and those whose
    truth is inside the observed labels), the median relative error of exact point estimates, how often the
    estimate is censored exactly when the truth is, and the coverage of two curve bands per study."""
    rng = np.random.default_rng([seed, seeds])
    covered, covered_exact, exact_truths, errors, censor_ok, censored, bands = 0, 0, 0, [], 0, 0, []
    for i in range(studies):
        study = draw_study(rng)
        true = truth(study)
        base, strat = observe(study, seeds, rng)
        r = stats.reduction(BASE_LABELS, base, study["labels"], strat, seed=i)
        hit = r.low <= true <= r.high
        covered += hit
        true_censored = true < need_base(study) / study["labels"][-1]  # its crossing is beyond its last count
        censored += true_censored
        if not true_censored:
            exact_truths += 1
            covered_exact += hit
        censor_ok += (r.bound == "<") == true_censored
        if r.bound == "" and true > 0:
            errors.append(abs(r.factor - true) / true)
        for runs, labels, params, j in ((base, BASE_LABELS, study["base"], 2), (strat, study["labels"],
                                                                                 study["strat"], -1)):
            _, low, high = stats.mean_interval(runs[:, j], seed=i)
            bands.append(low <= curve(labels[j], *params) <= high)
    return {"seeds": seeds, "studies": studies, "coverage": covered / studies,
            "coverage_exact": covered_exact / exact_truths, "median_rel_error": float(np.median(errors)),
            "exact_estimates": len(errors), "censored_truths": censored, "censoring_agrees": censor_ok / studies,
            "band_coverage": float(np.mean(bands))}


def need_base(study: dict) -> float:
    """The baseline's true labels-to-target."""
    return true_need(study["base"], true_target(study))


def spread(replicates: int, seeds: int, seed: int = 1) -> list[dict[str, float]]:
    """Fixed studies re-run with fresh noise: the spread of the new and the former estimate."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(4):
        study = draw_study(rng)
        study["labels"] = LONG
        new, old = [], []
        for k in range(replicates):
            base, strat = observe(study, seeds, rng)
            new.append(stats.reduction(BASE_LABELS, base, study["labels"], strat, seed=k).factor)
            old.append(best_mean_rule(base, strat, study["labels"]))
        rows.append({"truth": truth(study), "new": np.array(new), "old": np.array(old)})
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--studies", type=int, default=400, help="simulated studies per number of seeds")
    p.add_argument("--replicates", type=int, default=50, help="fresh-noise reruns of each fixed study")
    args = p.parse_args(argv)
    print("reduction factor: coverage of its 95% interval (all studies / those whose true crossing lies within "
          "the observed labels),\nmedian relative error of exact estimates, censoring of the estimate agreeing "
          "with the truth's; coverage of the 95% curve bands\n")
    print(f"{'seeds':>5} {'studies':>7} {'coverage':>8} {'(uncensored)':>12} {'median rel. error':>17} "
          f"{'exact':>5} {'censored truths':>15} {'censoring agrees':>16} {'band coverage':>13}")
    for seeds in (5, 20):
        r = calibrate(args.studies, seeds)
        print(f"{seeds:>5} {r['studies']:>7} {r['coverage']:>8.1%} {r['coverage_exact']:>12.1%} "
              f"{r['median_rel_error']:>17.1%} {r['exact_estimates']:>5} {r['censored_truths']:>15} "
              f"{r['censoring_agrees']:>16.1%} {r['band_coverage']:>13.1%}")
    print(f"\nspread over {args.replicates} fresh-noise reruns of fixed studies, 20 seeds (median [10%, 90%] of "
          "the estimate;\nthe former rule's target moves with the noise, so it has no fixed truth)")
    print(f"{'truth':>7} | {'95% of plateau, interpolated':>30} | {'best mean, first point (former)':>32}")
    for row in spread(args.replicates, 20):
        def q(v):
            v = v[~np.isnan(v)]
            return f"{np.median(v):7.2f} [{np.quantile(v, 0.1):6.2f}, {np.quantile(v, 0.9):6.2f}]"
        print(f"{row['truth']:7.2f} | {q(row['new']):>30} | {q(row['old']):>32}")


if __name__ == "__main__":
    sys.exit(main())
