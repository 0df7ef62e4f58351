"""Statistics of learning curves over seeds: pure functions of arrays (no MLflow, no polars, no plotting).

A condition's runs form a matrix `seeds x label counts` (one row per seed, columns on a shared, increasing
schedule of label counts). Every interval here is a bootstrap over seeds: resampling whole seeds keeps each
run's curve intact, and resampling them *paired* across two conditions keeps what runs of one seed share (the
data split, the initial labeled set, the oracle's answers). Percentile intervals of means never leave the
range of the values, so a kappa band stays inside kappa's range. The plain percentile interval is too narrow
with few seeds (about 85% coverage at 5 seeds), so its tails are widened to match Student's t for a mean
("expanded percentile", Hesterberg 2015); with fewer than `MIN_SEEDS` seeds no interval is given at all.

Labels-to-target is read off the *mean* curve's monotone fit (isotonic regression: a shoulder or a bump just
under the target followed by a dip is pooled with the dip, so it does not count as a crossing), interpolated
between schedule points by a monotone cubic in log labels. Where the schedule is coarse the interpolation itself
errs, by an amount no number of seeds removes; its size is estimated as the gap between the cubic and a straight
line, and each bootstrap resample's crossing is moved at random within it, so intervals keep their coverage as
seeds grow. Labels-to-target is censored, never dropped: right-censored when the curve never reaches the target
(the true value is beyond the last label count), left-censored when the first point already does (the true
value is at most the first label count). Words that compare follow intervals only: a factor is "fewer labels"
when its whole interval lies above 1. `simulations/report_calibration` checks the factor, its interval and the
verdicts on curves of nine shapes whose answer is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import interpolate, optimize, stats

LEVEL = 0.95
MIN_SEEDS = 3  # below this many (paired) seeds no interval is computed
RESAMPLES = 4000
FRACTION = 0.95  # default target: this share of the baseline's plateau
PLATEAU_POINTS = 3  # the plateau: the baseline's mean over its last this many label counts
MIN_RISE = 0.05  # a baseline must rise this far above chance (or above its start) for a relative target
NEAR_CHANCE = 0.15  # a relative target less than this far above chance is defined, with a warning
STUDENTIZE = 5  # from this many seeds a non-inferiority interval is bootstrap-t; below, t-scaled resamples

OBSERVED, LEFT, RIGHT = 0, 1, 2  # censoring of a labels-to-target value


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(0 if seed is None else seed)


def expanded_alpha(n: int, level: float = LEVEL) -> float:
    """Two-sided tail share for a percentile bootstrap over n seeds, widened so that, for a mean, the interval
    is as wide as Student's t interval: 2 * Phi(-sqrt(n / (n - 1)) * t_{n-1}) (Hesterberg 2015)."""
    t = stats.t.ppf((1 + level) / 2, n - 1)
    return float(2 * stats.norm.sf(math.sqrt(n / (n - 1)) * t))


def mean_interval(values, level: float = LEVEL, seed: int | np.random.Generator | None = None
                  ) -> tuple[float, float, float]:
    """(mean, low, high) over seeds: an expanded-percentile bootstrap interval of the mean (scipy.stats.bootstrap).
    NaN values are left out; bounds are NaN with fewer than MIN_SEEDS values."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) < MIN_SEEDS:
        return mean, math.nan, math.nan
    if np.ptp(v) == 0:  # every seed agrees: the bootstrap distribution is a point
        return mean, mean, mean
    res = stats.bootstrap((v,), np.mean, confidence_level=1 - expanded_alpha(len(v), level), method="percentile",
                          n_resamples=RESAMPLES, rng=_rng(seed))
    low, high = res.confidence_interval
    return mean, float(max(low, v.min())), float(min(high, v.max()))


def quantile_interval(replicates: NDArray, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Percentile bounds of bootstrap replicates (from `scaled_means`, so already widened for n seeds) that may
    be 0 or infinite (censored): order statistics (no interpolation, which is undefined between a finite and an
    infinite value); NaN replicates left out; NaN bounds with fewer than MIN_SEEDS seeds."""
    r = np.asarray(replicates, dtype=float)
    r = r[~np.isnan(r)]
    if n < MIN_SEEDS or len(r) == 0:
        return math.nan, math.nan
    a = 1 - level
    low, high = np.quantile(r, [a / 2, 1 - a / 2], method="inverted_cdf")
    return float(low), float(high)


def t_widening(n: int, level: float = LEVEL) -> float:
    """sqrt(n / (n - 1)) * t_{n-1} / z at `level`: how much wider than a normal interval from the plug-in
    spread Student's t interval of a mean over n seeds is."""
    q = (1 + level) / 2
    return math.sqrt(n / (n - 1)) * stats.t.ppf(q, n - 1) / stats.norm.ppf(q)


def scaled_means(rng: np.random.Generator, *runs: NDArray, level: float = LEVEL) -> list[NDArray]:
    """Bootstrap means of each `seeds x label counts` matrix over the same resampled seeds (paired), each
    resample's deviation from the mean curve scaled by sqrt(n / (n - 1)) * t_{n-1} / z: for a mean the plain
    percentile interval of these is Student's t interval, and for any smooth function of the mean curves (a
    crossing, a target, their ratio) it reaches past the seeds' own range, which few seeds' resamples cannot."""
    n = len(runs[0])
    k = t_widening(n, level)
    idx = rng.integers(0, n, size=(RESAMPLES, n))
    return [r.mean(axis=0) + k * (r[idx].mean(axis=1) - r.mean(axis=0)) for r in runs]


# --- learning curves ----------------------------------------------------------------------------------------

def monotone(curves: NDArray) -> NDArray:
    """The least-squares nondecreasing fit of each row (isotonic regression with equal weights), by the min-max
    formula fit_i = max_{j<=i} min_{k>=i} mean(y_j..y_k) (Robertson, Wright & Dykstra 1988), vectorised over rows:
    thousands of bootstrap curves of a dozen points at once, equal to sklearn's IsotonicRegression row by row."""
    y = np.atleast_2d(np.asarray(curves, dtype=float))
    n = y.shape[1]
    c = np.concatenate([np.zeros((len(y), 1)), np.cumsum(y, axis=1)], axis=1)
    j, k = np.arange(n)[:, None], np.arange(n)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        means = (c[:, None, 1:] - c[:, :n, None]) / (k - j + 1)  # [row, j, k]: mean of y_j..y_k
    means[:, j > k] = np.inf
    low = np.minimum.accumulate(means[:, :, ::-1], axis=2)[:, :, ::-1]  # [row, j, i]: min over k >= i
    low[:, j > k] = -np.inf
    return low.max(axis=1)


STEPS = 64  # points per schedule interval at which the monotone spline is evaluated to find a crossing


def crossings(labels: NDArray, curves: NDArray, targets, linear: bool = False) -> tuple[NDArray, NDArray]:
    """Labels at which each curve (row of `curves`, on `labels`) reaches its target, and the censoring.

    The crossing is read off the curve's monotone fit (`monotone`): a curve reaches the target where its
    nondecreasing fit does, so a shoulder just under the target, or a bump just over it, that is followed by a
    dip is pooled with the dip and counts only as far as their mean goes. Between schedule points the fit is
    interpolated in log labels by a monotone cubic (PCHIP), which follows a curve that bends as it levels off;
    `linear=True` interpolates linearly instead (the two differ by `interpolation_error`).
    LEFT: the first point is already there (value = first label count, an upper bound); RIGHT: never (inf).
    A point at 0 labels (a scout's, before any label) is left out. Returns (values, status), each (rows,)."""
    labels = np.asarray(labels, dtype=float)
    keep = labels > 0
    labels, x = labels[keep], np.log(labels[keep])
    fit = monotone(np.atleast_2d(np.asarray(curves, dtype=float))[:, keep])
    t = np.broadcast_to(np.asarray(targets, dtype=float), (len(fit),))
    above = fit >= t[:, None] - 1e-12
    hit = above.any(axis=1)
    first = above.argmax(axis=1)
    values = np.full(len(fit), np.inf)
    status = np.where(hit, OBSERVED, RIGHT)
    left = hit & (first == 0)
    status[left], values[left] = LEFT, float(labels[0])
    rows = np.flatnonzero(hit & (first > 0))
    if not len(rows):
        return values, status
    i, tr = first[rows], t[rows]
    if linear or len(x) < 3:
        y0, y1 = fit[rows, i - 1], fit[rows, i]
        values[rows] = np.exp(x[i - 1] + (tr - y0) / (y1 - y0) * (x[i] - x[i - 1]))  # y0 < target <= y1
        return values, status
    coef = interpolate.PchipInterpolator(x, fit[rows], axis=1).c[:, i - 1, np.arange(len(rows))]  # (4, rows)
    s = (x[i] - x[i - 1])[:, None] * np.linspace(0, 1, STEPS + 1)  # offsets within each row's interval
    y = ((coef[0][:, None] * s + coef[1][:, None]) * s + coef[2][:, None]) * s + coef[3][:, None]
    y[:, -1] = np.maximum(y[:, -1], tr)  # the interval's end is at or above the target (rounding aside)
    j = np.maximum((y >= tr[:, None] - 1e-12).argmax(axis=1), 1)
    k = np.arange(len(rows))
    y0, y1, s0, s1 = y[k, j - 1], y[k, j], s[k, j - 1], s[k, j]
    frac = np.where(y1 > y0, (tr - y0) / np.where(y1 > y0, y1 - y0, 1), 1.0)
    at = s0 + np.clip(frac, 0, 1) * (s1 - s0)
    for _ in range(3):  # Newton steps on the cubic, kept within the grid cell: exact to rounding
        slope = (3 * coef[0] * at + 2 * coef[1]) * at + coef[2]
        step = np.where(slope > 0, ((((coef[0] * at + coef[1]) * at + coef[2]) * at + coef[3]) - tr)
                        / np.where(slope > 0, slope, 1), 0.0)
        at = np.clip(at - step, s0, s1)
    values[rows] = np.exp(x[i - 1] + at)
    return values, status


def interpolation_error(labels: NDArray, curve: NDArray, target: float) -> float:
    """How far, in log labels, the crossing of one mean curve moves between the monotone cubic and a straight
    line between schedule points: the size of the error interpolation can make where the schedule is coarse
    (0 when the crossing is censored or falls on a schedule point). The intervals are widened by it."""
    (a,), (status,) = crossings(labels, curve, target)
    if status != OBSERVED:
        return 0.0
    (b,), _ = crossings(labels, curve, target, linear=True)
    return float(abs(np.log(a) - np.log(b)))


def labels_to_target(labels: NDArray, curve: NDArray, target: float) -> tuple[float, int]:
    """(labels at which one curve reaches `target`, censoring status); see `crossings`."""
    values, status = crossings(labels, curve, target)
    return float(values[0]), int(status[0])


def plateau(curve: NDArray, points: int = PLATEAU_POINTS):
    """The mean of a curve's last `points` values (per row of a matrix of curves): where it levels off, robust to
    the noise of any single point."""
    m = np.mean(np.asarray(curve, dtype=float)[..., -points:], axis=-1)
    return float(m) if np.ndim(m) == 0 else m


def chance_level(metric: str, curve: NDArray) -> tuple[float, str]:
    """The value a model that learned nothing would score, and its name: 0 for kappa metrics (agreement beyond
    chance), otherwise the curve's own first value (a baseline must rise above where it started)."""
    if metric.endswith("kappa"):
        return 0.0, "chance (kappa 0)"
    return float(np.asarray(curve)[0]), "its first value"


def target_problem(metric: str, curve: NDArray, points: int = PLATEAU_POINTS, min_rise: float = MIN_RISE
                   ) -> str | None:
    """Why a target relative to this baseline mean curve is undefined, or None when it is defined."""
    level, name = chance_level(metric, curve)
    top = plateau(curve, points)
    if top <= level + min_rise:
        return (f"the baseline never rises above {name}: its plateau is {metric} {top:.3f} "
                f"(best {float(np.max(curve)):.3f}), less than {min_rise:g} above {level:.3f}")
    return None


def labels_interval(labels: NDArray, runs: NDArray, target: float, level: float = LEVEL,
                    seed: int | np.random.Generator | None = None) -> tuple[float, int, float, float]:
    """Labels-to-target of the mean curve of `runs` (seeds x label counts) with its interval: a bootstrap over
    seeds, each resample's crossing moved at random within the interpolation error (`interpolation_error`), so
    the interval keeps its coverage when many seeds leave the schedule's coarseness as the main error.
    (value, status, low, high); the interval's ends may be inf (resamples that never reach the target)."""
    runs = np.atleast_2d(np.asarray(runs, dtype=float))
    (value,), (status,) = crossings(labels, runs.mean(axis=0), target)
    if len(runs) < MIN_SEEDS:
        return float(value), int(status), math.nan, math.nan
    rng = _rng(seed)
    (boot,) = scaled_means(rng, runs, level=level)
    jitter = _jitter(rng, interpolation_error(labels, runs.mean(axis=0), target))
    low, high = quantile_interval(crossings(labels, boot, target)[0] * jitter, len(runs), level)
    return float(value), int(status), low, high


def _jitter(rng: np.random.Generator, error: float) -> NDArray:
    """Factors exp(u), u uniform within +-`error` (log labels): where between schedule points a crossing lies."""
    return np.exp(rng.uniform(-error, error, RESAMPLES))


def power_law_fit(labels: NDArray, curve: NDArray, top: float = 1.0) -> dict[str, float] | None:
    """Least-squares fit of a - b * n^-c to a mean curve (a diagnostic of the plateau): a, b, c, R^2, the
    plateau's share of the fitted asymptote, and whether the asymptote sits on its bound. The asymptote is kept
    within the metric's range, between the curve's best value and `top` (1 for kappa and the other scores):
    a levelled curve leaves a and c unidentified, and an unbounded fit then runs a far past 1 (`at_bound`: a
    is not identified, the curve gives no evidence of a higher asymptote). None when it does not converge or
    has too few points."""
    x, y = np.asarray(labels, dtype=float), np.asarray(curve, dtype=float)
    keep = x > 0
    x, y = x[keep], y[keep]
    if len(x) < 4 or np.ptp(y) == 0:
        return None
    scale, best = x[0], float(y.max())
    top = max(top, best + 1e-6)

    def f(n, a, b, c):
        return a - b * (n / scale) ** -c

    try:
        (a, b, c), _ = optimize.curve_fit(f, x, y, p0=(min(best + 1e-3, top - 1e-9), max(best - y[0], 1e-3), 0.5),
                                          bounds=([best, 0, 1e-3], [top, np.inf, 5]), maxfev=5000)
    except (RuntimeError, ValueError):
        return None
    resid = y - f(x, a, b, c)
    r2 = 1 - float(resid @ resid) / float(((y - y.mean()) ** 2).sum())
    return {"a": float(a), "b": float(b), "c": float(c), "r2": r2, "at_bound": bool(a >= top - 1e-6),
            "plateau_share": plateau(y) / a if a > 0 else math.nan}


def rising(runs: NDArray, points: int = PLATEAU_POINTS, level: float = LEVEL, least: float = 0.01,
           seed: int | np.random.Generator | None = None) -> tuple[bool, float, float, float]:
    """Whether a curve is still rising at its end: its rise across the plateau's label counts (the last minus
    the `points`-th last value, per seed) has an interval above 0 and a mean of at least `least` (a smaller
    rise is too small to matter). (flag, mean rise, low, high); with fewer than MIN_SEEDS seeds no flag."""
    runs = np.atleast_2d(np.asarray(runs, dtype=float))
    if runs.shape[1] < 2:
        return False, math.nan, math.nan, math.nan
    mean, low, high = mean_interval(runs[:, -1] - runs[:, -min(points, runs.shape[1])], level, seed)
    return bool(low > 0 and mean >= least), mean, low, high


def aulc(labels: NDArray, curve: NDArray, log: bool = False, between: tuple[float, float] | None = None) -> float:
    """Area under a learning curve divided by its label range: the curve's mean height. On a log axis 0 labels
    are left out; `between` restricts it to a label range (the curve interpolated at its ends)."""
    x, y = np.asarray(labels, dtype=float), np.asarray(curve, dtype=float)
    if log:
        keep = x > 0
        x, y = np.log(x[keep]), y[keep]
    if between is not None:
        lo, hi = (np.log(between[0]), np.log(between[1])) if log else between
        grid = np.unique(np.concatenate([[lo, hi], x[(x > lo) & (x < hi)]]))
        x, y = grid, np.interp(grid, x, y)
    if len(x) < 2 or x[-1] == x[0]:
        return float(y[0]) if len(y) else math.nan
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


# --- reduction factors --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reduction:
    """How many times fewer labels a condition needs than its baseline to reach the target (> 1: it saves).

    The primary estimate is read off the two mean curves; its interval is a paired bootstrap over seeds that
    recomputes the baseline's plateau (so the target's own noise is in the interval). An interval end of 0 or
    inf means that in that share of resamples the condition (0) or the baseline (inf) never reached the target.
    """

    target: float  # NaN when undefined
    problem: str | None  # why the target is undefined, else None
    base_labels: float
    base_status: int
    labels: float
    status: int
    factor: float  # NaN when undefined or when both sides are censored
    bound: str  # "" exact; "<", ">", "<=", ">=" a bound (one side censored); "n/a" both censored or undefined
    low: float  # NaN with fewer than MIN_SEEDS paired seeds
    high: float
    seeds: int  # paired seeds
    seeds_reached: int  # seeds whose own curve reaches the target (condition)
    base_seeds_reached: int
    per_seed_median: float  # diagnostic: median of per-seed ratios (NaN when censored seeds decide it)
    interpolation: float = 0.0  # the interpolation error (log labels) the interval is widened by

    @property
    def defined(self) -> bool:
        return self.problem is None and self.bound != "n/a"


def _ratios(base: NDArray, base_status: NDArray, base_last: float, cond: NDArray, status: NDArray,
            cond_last: float) -> tuple[NDArray, NDArray]:
    """Lowest and highest reduction factors base / cond consistent with censored labels-to-target values.

    A side that never reaches the target needs more than its last label count; one already there at its first
    point needs at most that. Both never: no ratio (NaN)."""
    base, cond = np.asarray(base, dtype=float), np.asarray(cond, dtype=float)
    base_status, status = np.asarray(base_status), np.asarray(status)
    b_lo = np.where(base_status == RIGHT, base_last, np.where(base_status == LEFT, 0.0, base))
    b_hi = np.where(base_status == RIGHT, np.inf, base)
    c_lo = np.where(status == RIGHT, cond_last, np.where(status == LEFT, 0.0, cond))
    c_hi = np.where(status == RIGHT, np.inf, cond)
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = b_lo / c_hi, b_hi / c_lo
    both = (base_status == RIGHT) & (status == RIGHT)
    return np.where(both, np.nan, low), np.where(both, np.nan, high)


# (baseline status, condition status) -> what the factor base / condition is: exact, or a bound
_BOUNDS = {(OBSERVED, OBSERVED): "", (OBSERVED, RIGHT): "<", (LEFT, RIGHT): "<", (RIGHT, OBSERVED): ">",
           (RIGHT, LEFT): ">", (OBSERVED, LEFT): ">=", (LEFT, OBSERVED): "<=", (LEFT, LEFT): "n/a",
           (RIGHT, RIGHT): "n/a"}


def reduction(base_labels: NDArray, base: NDArray, labels: NDArray, cond: NDArray, metric: str = "kappa",
              target: float | None = None, fraction: float = FRACTION, points: int = PLATEAU_POINTS,
              level: float = LEVEL, seed: int | np.random.Generator | None = None,
              min_rise: float = MIN_RISE) -> Reduction:
    """Reduction factor of a condition against its baseline, both `seeds x label counts` with rows paired by seed.

    The target is `target` when given, else `fraction` of the baseline's plateau (the mean of its mean curve's
    last `points` values), undefined when that plateau is not `min_rise` above chance (`target_problem`)."""
    base, cond = np.atleast_2d(np.asarray(base, float)), np.atleast_2d(np.asarray(cond, float))
    n = len(base)
    mb, mc = base.mean(axis=0), cond.mean(axis=0)
    problem = None if target is not None else target_problem(metric, mb, points, min_rise)
    if problem is not None:
        return Reduction(math.nan, problem, math.nan, RIGHT, math.nan, RIGHT, math.nan, "n/a", math.nan, math.nan,
                         n, 0, 0, math.nan)
    t = target if target is not None else fraction * plateau(mb, points)
    (lb,), (sb,) = crossings(base_labels, mb, t)
    (lc,), (sc,) = crossings(labels, mc, t)
    bound = _BOUNDS[int(sb), int(sc)]
    seen_b = base_labels[-1] if sb == RIGHT else lb  # a censored side enters the bound at its last label count
    seen_c = labels[-1] if sc == RIGHT else lc
    factor = math.nan if bound == "n/a" else float(seen_b / seen_c)
    seed_b, seed_sb = crossings(base_labels, base, t)
    seed_c, seed_sc = crossings(labels, cond, t)
    error = math.hypot(interpolation_error(base_labels, mb, t), interpolation_error(labels, mc, t))
    low = high = math.nan
    if n >= MIN_SEEDS:
        rng = _rng(seed)
        boot_b, boot_c = scaled_means(rng, base, cond, level=level)
        boot_t = t if target is not None else fraction * plateau(boot_b, points)
        lows, highs = _ratios(*crossings(base_labels, boot_b, boot_t), base_labels[-1],
                              *crossings(labels, boot_c, boot_t), labels[-1])
        jitter = _jitter(rng, error)
        low = quantile_interval(lows * jitter, n, level)[0]
        high = quantile_interval(highs * jitter, n, level)[1]
    return Reduction(t, None, float(lb), int(sb), float(lc), int(sc), factor, bound, low, high, n,
                     int(np.sum(seed_sc != RIGHT)), int(np.sum(seed_sb != RIGHT)),
                     censored_median(*_ratios(seed_b, seed_sb, base_labels[-1], seed_c, seed_sc, labels[-1])),
                     error)


@dataclass(frozen=True)
class CostReduction:
    """How many times less a condition spends than its baseline to reach a target (> 1: it saves), when each
    seed's run spends its own amount per round (routed labels: the tiers bought differ by seed).

    `cost` / `base_cost` are the mean spend to the target of each side's mean curve against its mean spend per
    round; `bound` as in `Reduction` (a side that never gets there spent more than its last point). The interval
    is a paired bootstrap over seeds that recomputes both mean spend grids, both mean curves and the target."""

    target: float
    base_cost: float
    base_status: int
    cost: float
    status: int
    factor: float  # NaN when both sides are censored
    bound: str
    low: float  # NaN with fewer than MIN_SEEDS paired seeds
    high: float
    seeds: int


def cost_reduction(base_cost: NDArray, base: NDArray, cost: NDArray, cond: NDArray, target,
                   level: float = LEVEL, seed: int | np.random.Generator | None = None,
                   base_exhausts: bool = False) -> CostReduction:
    """Cost factor base / condition to reach `target`: arrays `seeds x rounds` of spend so far and of the metric,
    rows paired by seed (each side with its own rounds). `target` is a number, or a function of resampled seed
    indices (an array `resamples x seeds`) giving each resample's target (e.g. the baseline's mean at its end).
    Curves are resampled as in `scaled_means` (widened for few seeds); spend grids are plain resampled means.
    A crossing is read off the curve's monotone fit, linear in log spend between rounds (`cost_crossings`).
    `base_exhausts`: the baseline's last round used every item there is (the whole pool), so a baseline that
    never gets there never will at any cost (its factor is infinite), rather than needing more than its end."""
    base_cost, base, cost, cond = (np.atleast_2d(np.asarray(a, dtype=float)) for a in (base_cost, base, cost, cond))
    n = len(base)
    if not (len(base_cost) == len(cost) == len(cond) == n):
        raise ValueError("cost_reduction: every array needs one row per paired seed")
    target_of = target if callable(target) else (lambda idx: np.full(len(idx), float(target)))
    t = float(target_of(np.arange(n)[None])[0])
    (vb,), (sb,) = cost_crossings(base_cost.mean(axis=0)[None], base.mean(axis=0)[None], np.array([t]))
    (vc,), (sc,) = cost_crossings(cost.mean(axis=0)[None], cond.mean(axis=0)[None], np.array([t]))
    lb, lc = math.inf if base_exhausts else float(base_cost.mean(axis=0)[-1]), float(cost.mean(axis=0)[-1])
    bound = _BOUNDS[int(sb), int(sc)]
    factor = math.nan if bound == "n/a" else float((lb if sb == RIGHT else vb) / (lc if sc == RIGHT else vc))
    low = high = math.nan
    if n >= MIN_SEEDS:
        k = t_widening(n, level)
        idx = _rng(seed).integers(0, n, size=(RESAMPLES, n))
        mb, mc = base.mean(axis=0), cond.mean(axis=0)
        grid_b, grid_c = base_cost[idx].mean(axis=1), cost[idx].mean(axis=1)
        tb = np.asarray(target_of(idx), dtype=float)
        b, bs = cost_crossings(grid_b, mb + k * (base[idx].mean(axis=1) - mb), tb)
        c, cs = cost_crossings(grid_c, mc + k * (cond[idx].mean(axis=1) - mc), tb)
        lows, highs = _ratios(b, bs, np.inf if base_exhausts else grid_b[:, -1], c, cs, grid_c[:, -1])
        low = quantile_interval(lows, n, level)[0]
        high = quantile_interval(highs, n, level)[1]
    return CostReduction(t, float(vb), int(sb), float(vc), int(sc), factor, bound, low, high, n)


def cost_crossings(grids: NDArray, curves: NDArray, targets: NDArray) -> tuple[NDArray, NDArray]:
    """Spend at which each curve (row) reaches its target, each row on its own spend grid: the first round where
    the curve's monotone fit is there, linear in log spend from the round before; censored as in `crossings`
    (LEFT: at the first round already, value = its spend; RIGHT: never, inf). Vectorised over rows."""
    grids, fit = np.asarray(grids, dtype=float), monotone(np.asarray(curves, dtype=float))
    t = np.asarray(targets, dtype=float)[:, None]
    above = fit >= t - 1e-12
    hit, first = above.any(axis=1), above.argmax(axis=1)
    rows = np.arange(len(fit))
    values = np.where(hit, grids[rows, first], np.inf)
    status = np.where(hit, np.where(first == 0, LEFT, OBSERVED), RIGHT)
    mid = hit & (first > 0)
    i, r = first[mid], rows[mid]
    y0, y1 = fit[r, i - 1], fit[r, i]
    x0, x1 = np.log(grids[r, i - 1]), np.log(grids[r, i])
    frac = np.where(y1 > y0, (t[mid, 0] - y0) / np.where(y1 > y0, y1 - y0, 1), 1.0)
    values[mid] = np.exp(x0 + np.clip(frac, 0, 1) * (x1 - x0))
    return values, status


def censored_median(lows: NDArray, highs: NDArray) -> float:
    """Median of per-seed ratios known only within [low, high] where censored: the median of the lows and of the
    highs when they agree, else NaN (the censored seeds decide it); NaN values left out."""
    lo, hi = np.asarray(lows, dtype=float), np.asarray(highs, dtype=float)
    keep = ~np.isnan(lo)
    if not keep.any():
        return math.nan
    a, b = float(np.median(lo[keep])), float(np.median(hi[keep]))
    return a if a == b else math.nan


# --- paired comparisons -------------------------------------------------------------------------------------

def paired(diffs, level: float = LEVEL, seed: int | np.random.Generator | None = None) -> dict[str, float]:
    """Per-seed differences (condition - baseline): mean with its bootstrap interval, wins, losses, the
    two-sided Wilcoxon signed-rank p-value (NaN when every difference is 0) and the smallest p it could give
    at this many seeds (`smallest_p`)."""
    d = np.asarray(diffs, dtype=float)
    d = d[~np.isnan(d)]
    mean, low, high = mean_interval(d, level, seed)
    p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else math.nan
    return {"seeds": len(d), "wins": int((d > 0).sum()), "losses": int((d < 0).sum()), "mean_diff": mean,
            "diff_low": low, "diff_high": high, "wilcoxon_p": p, "smallest_p": smallest_p(int(np.sum(d != 0)))}


def smallest_p(seeds: int) -> float:
    """The smallest two-sided p-value Wilcoxon's signed-rank test can give with this many nonzero paired
    differences, all of one sign (exact: 2 / 2^n for small n): 0.0625 at 5 seeds, so no result of 5 seeds can
    be significant at 0.05, whatever the data. NaN without a difference."""
    return float(stats.wilcoxon(np.arange(1, seeds + 1)).pvalue) if seeds > 0 else math.nan


def noninferiority(diffs, margin: float, family: int = 1, level: float = LEVEL,
                    seed: int | np.random.Generator | None = None) -> dict[str, float]:
    """The numbers a non-inferiority verdict on per-seed differences (condition - baseline) rests on, one of a
    `family` of such verdicts (Bonferroni: each at level 1 - (1 - level) / family, so the family's chance of any
    false claim stays within 1 - level).

    A studentized (bootstrap-t) interval of the mean difference: the resampled t = (mean* - mean) / se* replaces
    Student's t, which keeps its coverage where the differences are skewed (a few seeds far below the rest),
    where a percentile interval claims non-inferiority up to 4x too often (`simulations/report_calibration`).
    With fewer than STUDENTIZE seeds a resample's own standard error is too often near 0 (few distinct values)
    and the bootstrap-t interval runs off; there the resampled means, scaled to Student's t, are used instead.
    From the same resamples, three one-sided p-values, each times `family` (capped at 1): `p_holds` of "the
    difference is at most -margin" (small: the condition is within the margin), `p_fails` of "at least -margin"
    (small: worse by more than the margin) and `p_worse` of "at least 0" (small: worse at all). A p-value is
    below (1 - level) / 2 exactly when the interval's end lies past its bound, so the adjusted p-values and the
    interval never disagree. NaN with fewer than MIN_SEEDS seeds."""
    d = np.asarray(diffs, dtype=float)
    d = d[~np.isnan(d)]
    n = len(d)
    out = {"seeds": n, "mean_diff": float(d.mean()) if n else math.nan, "family": family}
    if n < MIN_SEEDS:
        return {**out, **dict.fromkeys(("diff_low", "diff_high", "p_holds", "p_fails", "p_worse"), math.nan)}
    mean, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(n))
    tail = (1 - level) / 2 / family
    if se == 0:  # every seed agrees: the difference is known
        low = high = mean

        def share(bound: float, above: bool) -> float:
            return float(mean >= bound if above else mean <= bound)
    else:
        x = d[_rng(seed).integers(0, n, size=(RESAMPLES, n))]
        if n >= STUDENTIZE:
            scale = x.std(axis=1, ddof=1) / math.sqrt(n)
            t = np.sort((x.mean(axis=1)[scale > 0] - mean) / scale[scale > 0])  # resampled studentized means
        else:  # too few seeds for resampled standard errors: Student's t shape, via t-scaled resampled means
            t = np.sort(t_widening(n, level) * (x.mean(axis=1) - mean) / se)
        j = max(math.ceil(tail * len(t)) - 1, 0)  # order statistics chosen so that the p-values below agree
        low, high = mean - se * float(t[len(t) - 1 - j]), mean - se * float(t[j])

        def share(bound: float, above: bool) -> float:
            """Bootstrap-t p of 'the mean is at most (above=False) / at least (above=True) `bound`'."""
            z = (mean - bound) / se
            return float(np.mean(t >= z) if not above else np.mean(t <= z))

    def p(value: float) -> float:
        return float(min(1.0, value * family))

    return {**out, "diff_low": float(low), "diff_high": float(high), "p_holds": p(share(-margin, False)),
            "p_fails": p(share(-margin, True)), "p_worse": p(share(0.0, True))}


def noninferiority_verdict(r: dict, level: float = LEVEL) -> str:
    """The verdict in words from `noninferiority`'s adjusted p-values (equivalently, its interval): fails
    (worse by more than the margin), holds, experts worse but within the margin, experts worse but inconclusive
    against the margin, or inconclusive at this many seeds."""
    tail = (1 - level) / 2
    if math.isnan(r["p_holds"]):
        return f"inconclusive: an interval needs {MIN_SEEDS} seeds"
    if r["p_fails"] < tail:
        return "fails"
    if r["p_holds"] < tail:
        return "worse but within the margin" if r["p_worse"] < tail else "holds"
    if r["p_worse"] < tail:
        return f"worse, inconclusive against the margin at {r['seeds']} seeds"
    return f"inconclusive at {r['seeds']} seeds"


def holm(pvalues) -> NDArray:
    """Holm's step-down adjustment of p-values for the family they form (NaN values left as they are)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out
