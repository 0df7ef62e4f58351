"""Calibration of the report's reduction factor and verdict on learning curves whose answer is known.

    python simulations/report_calibration/run.py               # 200 studies per shape and seed count (~10 min)
    python simulations/report_calibration/run.py --studies 40  # quicker

It writes RESULTS.md beside itself.

A study is a baseline and a condition with known true curves, observed on schedules like the claim study's.
The shapes (`SHAPES`) differ in what makes a crossing hard to read:

- power law: kappa(n) = a - b n^-c for both, each with its own a, b, c (some conditions level off below the
  target: they never reach it, truth 0);
- logistic: kappa rises as a logistic in log n (a slow start, then a steep middle);
- bump / dip: a power law with an early bump (or dip) of 0.02-0.06 kappa on the condition;
- shoulder: a bump whose top sits 0.0005-0.01 under the target, before the condition's real rise;
- still rising: a baseline that is still rising where its schedule stops (12k or 100k labels);
- shift x1 / x3 / x10: the condition is the baseline shifted by a known factor in label count, cond(n) =
  base(k n), so the true reduction is exactly k (1: no difference at all).

Every seed adds noise of its own size per study: an offset shared by both conditions of the seed (common random
numbers), an offset per condition, and noise at each point that shrinks with more labels. The truth follows from
the curves alone: the target is 95% of the baseline's true plateau (its true mean over its last 3 label counts),
a true labels-to-target is where the true curve first reaches it, and the true reduction is their ratio.

Printed, per shape and number of seeds: the share of studies whose 95% interval covers the true reduction,
the median relative error of exact point estimates, the false verdicts ("fewer labels" where the truth is 1 or
less, "more labels" where it is 1 or more), the verdicts made at all, how often the baseline was flagged
still rising, and how often that flag was right (its true curve rises at least 0.01 across the plateau's
label counts). Every study is run through `stats.reduction` and the report's verdict rule.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import numpy as np

from scipy import stats as scipy_stats

from alexp.report import stats, tables


def log_schedule(start: float, stop: float, per_decade: float) -> np.ndarray:
    """Label counts from `start` to `stop`, `per_decade` per factor of 10 (rounded, distinct)."""
    steps = int(round(math.log10(stop / start) * per_decade))
    return np.unique(np.round(start * (stop / start) ** (np.arange(steps + 1) / steps))).astype(float)


BASE_LABELS = log_schedule(100, 100_000, 3)  # the crowd's schedule: 100 ... 100,000, 3 per decade
ROUNDS = np.arange(100, 451, 70, dtype=float)  # 100, 170, ..., 450: the curated budget's rounds
LONG = log_schedule(100, 3_000, 6.8)  # 100 ... 3,000
GRID = np.exp(np.linspace(0, math.log(1e8), 40_001))  # where true crossings are found


@dataclass
class Study:
    base: Callable[[np.ndarray], np.ndarray]
    cond: Callable[[np.ndarray], np.ndarray]
    base_labels: np.ndarray
    labels: np.ndarray
    noise: float

    def target(self) -> float:
        return stats.FRACTION * float(np.mean(self.base(self.base_labels[-stats.PLATEAU_POINTS:])))

    def truth(self) -> float:
        """The true reduction factor (0 when the condition never reaches the target)."""
        t = self.target()
        return first_crossing(self.base, t) / first_crossing(self.cond, t)


def first_crossing(f: Callable, target: float) -> float:
    """Where a true curve first reaches `target` (inf: never), on a fine log grid."""
    y = f(GRID)
    hit = np.flatnonzero(y >= target)
    if not len(hit):
        return math.inf
    i = hit[0]
    if i == 0:
        return float(GRID[0])
    x0, x1 = np.log(GRID[i - 1]), np.log(GRID[i])
    return float(np.exp(x0 + (target - y[i - 1]) / (y[i] - y[i - 1]) * (x1 - x0)))


def power_law(a: float, start: float, c: float) -> Callable:
    """a - b n^-c through `start` at 100 labels."""
    b = (a - start) * 100 ** c
    return lambda n: a - b * np.asarray(n, float) ** -c


def logistic(a: float, low: float, middle: float, width: float) -> Callable:
    return lambda n: low + (a - low) / (1 + np.exp(-(np.log(np.asarray(n, float)) - math.log(middle)) / width))


def bumped(f: Callable, at: float, height: float, width: float = 0.35) -> Callable:
    return lambda n: f(n) + height * np.exp(-0.5 * ((np.log(np.asarray(n, float)) - math.log(at)) / width) ** 2)


def _pair(rng) -> tuple[Callable, Callable]:
    """A baseline and a condition as power laws from the same start (the condition may level off lower)."""
    a_b = rng.uniform(0.45, 0.85)
    start = a_b * rng.uniform(0.15, 0.5)
    return (power_law(a_b, start, rng.uniform(0.25, 0.7)),
            power_law(a_b * rng.uniform(0.94, 1.1), start, rng.uniform(0.5, 1.6)))


def _labels(rng) -> np.ndarray:
    return ROUNDS if rng.random() < 0.3 else LONG


def draw_power_law(rng) -> Study:
    base, cond = _pair(rng)
    return Study(base, cond, BASE_LABELS, _labels(rng), rng.uniform(0.015, 0.045))


def draw_logistic(rng) -> Study:
    a_b = rng.uniform(0.45, 0.85)
    low = a_b * rng.uniform(0.0, 0.2)
    middle = math.exp(rng.uniform(math.log(300), math.log(3_000)))
    base = logistic(a_b, low, middle, rng.uniform(0.6, 1.4))
    cond = logistic(a_b * rng.uniform(0.94, 1.1), low, middle / math.exp(rng.uniform(0.5, 3)), rng.uniform(0.4, 1.2))
    return Study(base, cond, BASE_LABELS, _labels(rng), rng.uniform(0.015, 0.045))


def draw_bump(rng, sign: float = 1.0) -> Study:
    base, cond = _pair(rng)
    cond = bumped(cond, math.exp(rng.uniform(math.log(120), math.log(600))), sign * rng.uniform(0.02, 0.06))
    return Study(base, cond, BASE_LABELS, _labels(rng), rng.uniform(0.015, 0.045))


def draw_shoulder(rng) -> Study:
    """A bump whose top is just under the target, before the condition's own rise reaches it: the true curve
    rises to the shoulder, dips, and crosses the target later."""
    while True:
        base, cond = _pair(rng)
        study = Study(base, cond, BASE_LABELS, LONG, rng.uniform(0.015, 0.045))
        need = first_crossing(cond, study.target())
        if not 300 < need < 2_500:
            continue
        at = need * rng.uniform(0.25, 0.45)
        height = _height_for_top(cond, at, study.target() - rng.uniform(0.0005, 0.01))
        if height is not None:
            study.cond = bumped(cond, at, height, width=0.2)
            return study


def _height_for_top(f: Callable, at: float, top: float) -> float | None:
    """The bump height at which f + bump has its first local maximum at `top` (bisection); None if none does."""
    def first_top(height):
        y = bumped(f, at, height, width=0.2)(GRID)
        d = np.diff(y)
        peaks = np.flatnonzero((d[:-1] > 0) & (d[1:] <= 0))
        return y[peaks[0] + 1] if len(peaks) else None

    lo, hi = 0.0, 0.5
    if first_top(hi) is None or first_top(hi) < top:
        return None
    for _ in range(50):
        mid = (lo + hi) / 2
        value = first_top(mid)
        lo, hi = (mid, hi) if value is None or value < top else (lo, mid)
    return hi if first_top(hi) is not None and first_top(hi) - top < 1e-3 else None


def draw_rising(rng) -> Study:
    """A baseline still rising at the end of its schedule (a small exponent, an asymptote far above)."""
    a_b = rng.uniform(0.6, 0.95)
    start = rng.uniform(0.1, 0.25)
    base = power_law(a_b, start, rng.uniform(0.1, 0.25))
    end = 12_000 if rng.random() < 0.5 else 100_000
    base_labels = log_schedule(100, end, 3)
    plateau = float(np.mean(base(base_labels[-3:])))
    cond = power_law(plateau * rng.uniform(0.94, 1.15), start, rng.uniform(0.5, 1.6))
    return Study(base, cond, base_labels, _labels(rng), rng.uniform(0.015, 0.045))


def draw_shift(rng, factor: float) -> Study:
    """The condition is the baseline (a power law or a logistic) shifted by `factor` in label count."""
    base = (draw_power_law if rng.random() < 0.5 else draw_logistic)(rng).base
    labels = BASE_LABELS if rng.random() < 0.5 else log_schedule(100, 100_000, 6)
    return Study(base, lambda n: base(np.asarray(n, float) * factor), BASE_LABELS, labels,
                 rng.uniform(0.015, 0.045))


SHAPES = {"power law": draw_power_law, "logistic": draw_logistic, "bump": draw_bump,
          "dip": lambda rng: draw_bump(rng, -1.0), "shoulder": draw_shoulder, "still rising": draw_rising,
          "shift x1": lambda rng: draw_shift(rng, 1.0), "shift x3": lambda rng: draw_shift(rng, 3.0),
          "shift x10": lambda rng: draw_shift(rng, 10.0)}


def observe(study: Study, seeds: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """seeds x label counts of kappa for the baseline and the condition, with paired per-seed noise."""
    noise = study.noise

    def runs(labels, f, shared):
        own = rng.normal(0, noise, (seeds, 1))
        point = rng.normal(0, noise, (seeds, len(labels))) * (100 / labels) ** 0.25
        return np.clip(f(labels) + shared + own + point, -1, 1)

    shared = rng.normal(0, noise, (seeds, 1))
    return runs(study.base_labels, study.base, shared), runs(study.labels, study.cond, shared)


def verdict(r: stats.Reduction) -> str:
    """The report's verdict word for a reduction: 'fewer', 'more' or '' (no clear difference)."""
    return tables.verdict_word({"problem": r.problem, "bound": r.bound, "reduction_low": r.low,
                                "reduction_high": r.high})[0]


def calibrate(shape: str, studies: int, seeds: int, seed: int = 0) -> dict[str, float]:
    """Over `studies` studies of one shape: coverage of the reduction's interval, the median relative error of
    exact point estimates, false and made verdicts, how often the baseline is flagged still rising, and how
    often that flag is right (the true curve rises at least 0.01 across the plateau's label counts)."""
    rng = np.random.default_rng([seed, seeds, list(SHAPES).index(shape)])
    covered, scored, errors, false, made, flagged, flag_right, undefined = 0, 0, [], 0, 0, 0, 0, 0
    for i in range(studies):
        study = SHAPES[shape](rng)
        true = study.truth()
        base, cond = observe(study, seeds, rng)
        r = stats.reduction(study.base_labels, base, study.labels, cond, seed=i)
        true_rise = float(np.diff(study.base(study.base_labels[[-stats.PLATEAU_POINTS, -1]]))[0])
        flag = stats.rising(base, seed=i)[0]
        flagged += flag
        flag_right += flag == (true_rise >= 0.01)
        if not r.defined or math.isnan(r.low):
            undefined += 1
            continue
        scored += 1
        covered += r.low <= true <= r.high or math.isclose(true, r.low) or math.isclose(true, r.high)
        if r.bound == "" and 0 < true < math.inf:
            errors.append(abs(r.factor - true) / true)
        word = verdict(r)
        made += word != ""
        one = math.isclose(true, 1.0, rel_tol=1e-6)
        false += (word == "fewer" and (true < 1 or one)) or (word == "more" and (true > 1 or one))
    return {"shape": shape, "seeds": seeds, "studies": studies, "scored": scored, "undefined": undefined,
            "coverage": covered / max(scored, 1), "median_rel_error": float(np.median(errors)) if errors else math.nan,
            "exact": len(errors), "false": false / max(scored, 1), "verdicts": made / max(scored, 1),
            "rising": flagged / studies, "rising_right": flag_right / studies}


def repeated(shape: str, seeds: int, studies: int = 20, draws: int = 100, seed: int = 123) -> np.ndarray:
    """Each of `studies` studies observed `draws` times with fresh noise: the share of its intervals that cover
    its truth (its own coverage, free of which 200 studies a table cell happened to draw)."""
    rng = np.random.default_rng([seed, seeds, list(SHAPES).index(shape)])
    out = []
    for _ in range(studies):
        study = SHAPES[shape](rng)
        true = study.truth()
        hits = 0
        for k in range(draws):
            base, cond = observe(study, seeds, rng)
            r = stats.reduction(study.base_labels, base, study.labels, cond, seed=k)
            hits += r.low <= true <= r.high
        out.append(hits / draws)
    return np.array(out)


MARGIN = 0.02  # the claim study's non-inferiority margin, in kappa
DIFFERENCES = {  # per-seed kappa differences with mean 0 and sd 0.03, before the shift to the margin
    "normal": lambda rng, n: rng.normal(0, 0.03, n),
    "right-skewed": lambda rng, n: 0.03 * (rng.lognormal(0, 1, n) - math.exp(0.5)) / math.sqrt(
        (math.e - 1) * math.e),
    "left-skewed": lambda rng, n: -0.03 * (rng.lognormal(0, 1, n) - math.exp(0.5)) / math.sqrt(
        (math.e - 1) * math.e),
}


def verdict_interval(kind: str, seeds: int, studies: int, seed: int = 0) -> dict[str, float]:
    """The interval a non-inferiority verdict reads (`stats.noninferiority`: the mean per-seed difference with
    its bootstrap-t interval) on differences whose true mean sits exactly at -MARGIN: its coverage, and
    how often the verdict says "holds" (or "worse but within the margin") or "fails", each false here."""
    rng = np.random.default_rng([seed, seeds, list(DIFFERENCES).index(kind)])
    covered = holds = fails = 0
    for i in range(studies):
        d = DIFFERENCES[kind](rng, seeds) - MARGIN
        r = stats.noninferiority(d, MARGIN, seed=i)
        word = stats.noninferiority_verdict(r)
        covered += r["diff_low"] <= -MARGIN <= r["diff_high"]
        holds += word in ("holds", "worse but within the margin")
        fails += word == "fails"
    return {"coverage": covered / studies, "holds": holds / studies, "fails": fails / studies}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--studies", type=int, default=200, help="simulated studies per shape and number of seeds")
    p.add_argument("--seeds", type=int, nargs="+", default=[5, 20, 80], help="numbers of seeds to calibrate")
    p.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES), metavar="SHAPE",
                   help=f"shapes to run (default: all of {', '.join(SHAPES)})")
    p.add_argument("--repeat", type=int, default=20, help="shift x1 studies each observed 100 times with fresh "
                   "noise, for their own coverage (0: none)")
    p.add_argument("--verdict-studies", type=int, default=1000, help="studies per row of the verdict-interval "
                   "table (0: none)")
    p.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")),
                   help="where the table is written as markdown (default: RESULTS.md beside this script)")
    args = p.parse_args(argv)
    started = time.perf_counter()
    lines = [HEADER, "", "| shape | seeds | studies | coverage | median rel. error (exact estimates) | false verdicts "
             "[95% interval] | verdicts made | flagged still rising | flag right | no factor |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for shape in args.shapes:
        for seeds in args.seeds:
            r = calibrate(shape, args.studies, seeds)
            low, high = scipy_stats.binomtest(round(r["false"] * r["scored"]), max(r["scored"], 1)).proportion_ci()
            lines.append(f"| {shape} | {seeds} | {r['scored']} | {r['coverage']:.1%} | {r['median_rel_error']:.1%} "
                         f"({r['exact']}) | {r['false']:.1%} [{low:.1%}, {high:.1%}] | {r['verdicts']:.1%} | "
                         f"{r['rising']:.0%} | {r['rising_right']:.0%} | {r['undefined']} |")
            print(lines[-1], flush=True)
    if "shift x1" in args.shapes and args.repeat:
        lines += ["", f"At a true factor of 1 a false verdict is a missed interval, so a cell's false-verdict share "
                  f"is a binomial draw around the interval's miss rate. Each of {args.repeat} further shift x1 "
                  "studies observed 100 times with fresh noise, its own coverage (mean over studies, and the "
                  "lowest):", "", "| seeds | mean coverage | lowest | share of draws missed |", "|---|---|---|---|"]
        print("\n".join(lines[-5:]), flush=True)
        for seeds in args.seeds:
            own = repeated("shift x1", seeds, args.repeat)
            lines.append(f"| {seeds} | {own.mean():.1%} | {own.min():.0%} | {1 - own.mean():.1%} |")
            print(lines[-1], flush=True)
    if args.verdict_studies:
        lines += ["", "The interval the claim study's non-inferiority verdict reads (the mean per-seed difference in "
                  "kappa with its bootstrap-t interval), on differences whose true mean is exactly at the margin "
                  f"(-{MARGIN}; sd 0.03): its coverage, and the share of studies that say 'holds' or 'fails', both "
                  f"false there (a one-sided error each, 2.5% by design). {args.verdict_studies} studies per row.",
                  "", "| differences | seeds | coverage | 'holds' (false) | 'fails' (false) |", "|---|---|---|---|---|"]
        print("\n".join(lines[-4:]), flush=True)
        for kind in DIFFERENCES:
            for seeds in (5, 20):
                r = verdict_interval(kind, seeds, args.verdict_studies)
                lines.append(f"| {kind} | {seeds} | {r['coverage']:.1%} | {r['holds']:.1%} | {r['fails']:.1%} |")
                print(lines[-1], flush=True)
    lines += ["", f"{time.perf_counter() - started:.0f} s; `python simulations/report_calibration/run.py"
              + (f" --studies {args.studies}" if args.studies != 200 else "") + "`"]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


HEADER = """# The report's reduction factor on curves whose answer is known

Per shape and number of seeds: the share of studies whose 95% interval covers the true reduction factor
(studies where neither side reaches the target have no factor and are counted apart); the median relative
error of exact point estimates (how many in brackets); false verdicts, a "fewer labels" where the truth is 1
or less or a "more labels" where it is 1 or more, with the binomial 95% interval of that share; the verdicts
made at all (the rest say "no clear difference"); how often the baseline is flagged still rising, and how
often that flag is right (its true curve rises at least 0.01 across its last 3 label counts). At a true factor
of exactly 1 (shift x1) every interval that misses is a false verdict, so the false-verdict share there is the
interval's miss rate: 5% by design for a 95% interval."""


if __name__ == "__main__":
    sys.exit(main())
