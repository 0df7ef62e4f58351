"""How real cheap labels err, measured against trusted ones, and the `difficulty` oracle that reproduces it.

    python simulations/measured_noise/run.py            # Cohen's two tiers and Davidson's votes (~3 min, warm caches)
    python simulations/measured_noise/run.py --case "my data" data=file data.path=x.parquet \\
        data.label_column=trusted data.context_columns=[cheap] --cheap cheap features=tfidf

A case is data with a trusted label (the data's label) and a cheap one (a context column, or one real vote drawn
from vote counts): Cohen's abstract-screening decision against the full-text inclusion decision, and one
Davidson CrowdFlower vote against the majority of that tweet's other votes. Each item's difficulty is the one the
`difficulty` oracle uses with `difficulty: reference`: how unsure a 5-fold out-of-fold logistic regression on the
data's features is of the trusted label, on the pool of seed 0's split. Measured: the cheap label's kappa
overall and on the hardest 7% and 20% of items, the share of its errors that fall there, and per difficulty
decile. Fitted: the oracle's `concentration` (errors drawn with weight difficulty^concentration) whose expected
error shares by decile are nearest the observed ones (least squares), with a bootstrap interval over items, and
the `positive_bias` that reproduces the split of errors between the classes (the interval resamples items with
the reference model held fixed). The fit is checked by running the oracle itself (`difficulty_errors`) at the
fitted values and measuring it the same way: it reproduces where the errors fall, not always the kappa on the
hardest items, which also depends on how errors split between the classes there (the oracle splits them over the
whole pool). For contrast, the clickbait crowd the claim study used (kappa .59, concentration 4) is measured the
same way.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize

from alexp import runner
from alexp.config import instantiate
from alexp.features import featurize
from alexp.metrics import agreement
from alexp.oracles.difficulty import ambiguity, difficulty_errors, reference_proba

HERE = Path(__file__).parent
GRID = np.concatenate([[0.0], np.geomspace(0.02, 12, 80)])  # concentrations tried
HARD = (0.07, 0.2)
RESAMPLES = 200


@dataclass
class Case:
    name: str
    overrides: list[str]
    cheap: str  # a context column holding the cheap label, "vote" (one vote drawn from vote counts), or "": none


CASES = [Case("Cohen: abstract screening vs full-text inclusion", ["data=cohen_reviews", "features=tfidf"],
              "label_abstract_screening"),
         Case("Davidson: one CrowdFlower vote vs the majority of the other votes",
              ["data=davidson_hate", "features=minilm"], "vote")]


def labels(case: Case, seed: int = 0):
    """(features, trusted, cheap) on the pool of `seed`'s split."""
    cfg = runner.compose([*case.overrides, f"seed={seed}", "progress=false"])
    table, pool, test = runner.split(cfg)
    X, _ = featurize(instantiate(cfg, "features"), table, pool, test)
    extra = {k: np.asarray(v)[pool] for k, v in table.extra.items()}
    if not case.cheap:  # no cheap label: the truth alone
        return X, table.y[pool], None
    if case.cheap != "vote":
        return X, table.y[pool], np.asarray(extra[case.cheap], dtype=np.int64)
    rng = np.random.default_rng(seed)
    votes, count = extra["n_hate_speech"].astype(int), extra["annotator_count"].astype(int)
    vote = (rng.random(len(votes)) < votes / count).astype(np.int64)  # one rater's vote, drawn from the item's
    rest, others = votes - vote, count - 1
    majority = np.where(2 * rest == others, rng.integers(0, 2, len(rest)), 2 * rest > others).astype(np.int64)
    return X, majority, vote


def deciles(difficulty: np.ndarray) -> np.ndarray:
    """Each item's difficulty decile, 0 = easiest tenth, 9 = hardest (ties broken by position)."""
    order = np.argsort(difficulty, kind="stable")
    out = np.empty(len(difficulty), dtype=int)
    out[order] = np.arange(len(difficulty)) * 10 // len(difficulty)
    return out


def hardest(difficulty: np.ndarray, share: float) -> np.ndarray:
    return np.argsort(-difficulty, kind="stable")[:max(2, round(share * len(difficulty)))]


def measure(truth, answers, difficulty) -> dict:
    """Kappa overall and on the hardest shares, the share of errors there and per decile."""
    wrong = answers != truth
    out = {"kappa": agreement(truth, answers), "errors": int(wrong.sum())}
    for share in HARD:
        rows = hardest(difficulty, share)
        out[f"kappa_{share}"] = agreement(truth[rows], answers[rows])
        out[f"errors_{share}"] = wrong[rows].sum() / max(wrong.sum(), 1)
    out["by_decile"] = np.bincount(deciles(difficulty)[wrong], minlength=10) / max(wrong.sum(), 1)
    return out


def expected_shares(difficulty, truth, wrong, decile, concentration) -> np.ndarray:
    """Expected share of errors per difficulty decile if, within each class, the observed number of errors were
    drawn with weight difficulty^concentration without replacement (the oracle's draw), by the Poisson
    approximation of successive sampling: P(item erred) = 1 - exp(-lam * weight), lam solving the class total."""
    weight = difficulty ** concentration if concentration else np.ones_like(difficulty)
    p = np.zeros(len(truth))
    for c in (0, 1):
        rows = truth == c
        t, w = wrong[rows].sum(), weight[rows]
        if t == 0:
            continue
        if t >= rows.sum():
            p[rows] = 1.0
            continue
        positive = w > 0
        if t >= positive.sum():  # every weighted item errs, the rest spread evenly on the others
            p[rows] = np.where(positive, 1.0, (t - positive.sum()) / max((~positive).sum(), 1))
            continue
        lam = optimize.brentq(lambda a, w=w, t=t: (1 - np.exp(-a * w)).sum() - t, 0,
                              1e3 / max(w[positive].min(), 1e-12))
        p[rows] = 1 - np.exp(-lam * w)
    return np.bincount(decile, weights=p, minlength=10) / p.sum()


def fit(difficulty, truth, wrong) -> float:
    """The concentration whose expected decile shares are nearest the observed ones (least squares, on GRID)."""
    decile = deciles(difficulty)
    observed = np.bincount(decile[wrong], minlength=10) / wrong.sum()
    loss = [np.sum((expected_shares(difficulty, truth, wrong, decile, c) - observed) ** 2) for c in GRID]
    return float(GRID[int(np.argmin(loss))])


def positive_bias(difficulty, truth, wrong, concentration) -> float:
    """The oracle's positive_bias that splits errors between the classes as observed at this concentration."""
    weight = difficulty ** concentration if concentration else np.ones_like(difficulty)
    t1, t0 = wrong[truth == 1].sum(), wrong[truth == 0].sum()
    return float((t1 / max(t0, 1)) * weight[truth == 0].sum() / weight[truth == 1].sum())


def study(name: str, truth, answers, difficulty, rng) -> dict:
    wrong = answers != truth
    out = {"name": name, "n": len(truth), **measure(truth, answers, difficulty)}
    out["concentration"] = fit(difficulty, truth, wrong)
    boot = []
    for _ in range(RESAMPLES):
        rows = rng.integers(0, len(truth), len(truth))
        boot.append(fit(difficulty[rows], truth[rows], wrong[rows]))
    out["low"], out["high"] = (float(v) for v in np.quantile(boot, [0.025, 0.975]))
    out["positive_bias"] = positive_bias(difficulty, truth, wrong, out["concentration"])
    simulated = [measure(truth, difficulty_errors(truth, difficulty, out["kappa"], out["concentration"],
                                                  np.arange(len(truth)), np.random.default_rng(k),
                                                  out["positive_bias"]), difficulty) for k in range(5)]
    out["check"] = {key: float(np.mean([s[key] for s in simulated]))
                    for key in ("kappa", "kappa_0.07", "errors_0.07", "errors_0.2")}
    out["check_by_decile"] = np.mean([s["by_decile"] for s in simulated], axis=0)
    return out


def row(r: dict) -> str:
    c = r["check"]
    return (f"| {r['name']} | {r['n']:,} | {r['kappa']:.3f} | {r['kappa_0.07']:.3f} | {r['kappa_0.2']:.3f} | "
            f"{r['errors_0.07']:.0%} / {r['errors_0.2']:.0%} | **{r['concentration']:.2f}** [{r['low']:.2f}, "
            f"{r['high']:.2f}] | {r['positive_bias']:.2f} | {c['kappa']:.3f} / {c['kappa_0.07']:.3f} | "
            f"{c['errors_0.07']:.0%} / {c['errors_0.2']:.0%} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", help="alexp overrides of one more case (data=..., features=...)")
    p.add_argument("--case", help="the name of the case given by the overrides")
    p.add_argument("--cheap", help="the context column holding the cheap label (with --case)")
    p.add_argument("--out", default=str(HERE / "RESULTS.md"), help="where the tables are written")
    args = p.parse_args(argv)
    cases = [Case(args.case, args.overrides, args.cheap)] if args.case else CASES
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    results = []
    for case in cases:
        X, truth, cheap = labels(case)
        difficulty = ambiguity(reference_proba(X, truth, cache_dir=Path.home() / ".cache" / "alexp"))
        results.append(study(case.name, truth, cheap, difficulty, rng))
        print(row(results[-1]), flush=True)
    if not args.case:  # the study's simulated clickbait crowd, measured the same way
        X, truth, _ = labels(Case("clickbait", ["data=clickbait", "data.positive_rate=0.05", "features=minilm"], ""))
        difficulty = ambiguity(reference_proba(X, truth, cache_dir=Path.home() / ".cache" / "alexp"))
        crowd = difficulty_errors(truth, difficulty, 0.59, 4.0, np.arange(len(truth)), np.random.default_rng(0))
        results.append(study("clickbait: the claim study's simulated crowd (kappa .59, concentration 4)", truth,
                             crowd, difficulty, rng))
        print(row(results[-1]), flush=True)
    lines = ["# How real cheap labels err, and the `difficulty` oracle that reproduces it", "",
             __doc__.split("\n\n", 2)[2].strip(), "",
             "| labels | pool items | kappa | kappa on the hardest 7% | on the hardest 20% | share of errors in the "
             "hardest 7% / 20% | fitted concentration [95% interval] | fitted positive_bias | the oracle at the "
             "fit: kappa / on the hardest 7% | its errors in the hardest 7% / 20% |",
             "|---|---|---|---|---|---|---|---|---|---|", *map(row, results), "",
             "Share of errors per difficulty decile (easiest tenth first), observed and from the oracle at the fit:",
             "", "| labels | " + " | ".join(f"d{i}" for i in range(1, 11)) + " |", "|---|" + "---|" * 10]
    for r in results:
        lines.append(f"| {r['name']} | " + " | ".join(f"{v:.0%}" for v in r["by_decile"]) + " |")
        lines.append("| the oracle at the fit | " + " | ".join(f"{v:.0%}" for v in r["check_by_decile"]) + " |")
    lines += ["", f"{time.perf_counter() - started:.0f} s; `python simulations/measured_noise/run.py`"]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
