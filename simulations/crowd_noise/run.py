"""Can a crowd vote its errors away? Independent raters against raters fooled together by hard items.

    ALEXP_DATA_DIR=../shared/data python simulations/crowd_noise/run.py     # ~5 min on 2 cores

The seed's premise is that crowds err systematically on hard, borderline items, so more crowd labels do not buy
expert quality. alexp can simulate both worlds. A crowd of 5 raters labels every pool item; its aggregated label
(majority vote or Dawid-Skene) has Cohen's kappa .59 against the truth over the pool, the seed's crowd-expert
figure. Two crowds:
- independent: today's raters, each a calibrated random flip (oracle=crowd, TargetKappa raters at kappa .59);
- shared: raters whose errors fall on hard items (Difficulty, concentration 4) and err together
  (shared_errors 0.8); their own kappa is solved so the aggregated label has kappa .59 (oracle=shared_crowd).

Printed per pool: on the hardest 20% of items by difficulty, a single rater's error rate, the aggregated label's,
and the share of the rater's error the aggregation removes ("recovered"). Pools: 20,000 items at 5% positives
with uniform difficulties; the synthetic pool with its Bayes-posterior difficulty; clickbait at 5% positives with
a reference model's out-of-fold difficulty (TF-IDF features); Davidson hate speech with its raters' own vote
split as difficulty.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

import numpy as np

from alexp.data import File, Synthetic
from alexp.metrics import agreement
from alexp.oracles import Crowd, Difficulty, TargetKappa
from alexp.oracles.difficulty import hardest, item_difficulty

N_RATERS, KAPPA, SHARED, CONCENTRATION = 5, 0.59, 0.8, 4.0


def pools():
    """(name, truth, difficulty source, context, features) for each pool."""
    rng = np.random.default_rng(7)
    yield "uniform difficulty, 20k at 5%", (rng.random(20_000) < 0.05).astype(int), "column", \
        {"d": rng.random(20_000)}, None
    table = Synthetic().load()
    yield "synthetic, Bayes posterior", table.y, "posterior", table.extra, None
    folder = os.environ.get("ALEXP_DATA_DIR")
    if not folder:
        print("(set ALEXP_DATA_DIR for the clickbait and Davidson pools)", file=sys.stderr)
        return
    from sklearn.feature_extraction.text import TfidfVectorizer

    table = File(path=f"{folder}/clickbait_chakraborty2016.parquet", label_column="is_clickbait",
                 text_column="text", positive_rate=0.05).load()
    features = TfidfVectorizer(min_df=2, sublinear_tf=True).fit_transform(table.inputs)
    yield "clickbait 5%, reference (tf-idf)", table.y, "reference", {}, features
    table = File(path=f"{folder}/davidson2017_hate_offensive.parquet", label_column="hate_speech",
                 text_column="text", context_columns=["n_hate_speech", "annotator_count"]).load()
    yield "Davidson, vote split", table.y, "votes", table.extra, None


def recovered(crowd: Crowd, truth, hard) -> tuple[float, float, float]:
    rater = float((crowd.votes[hard] != truth[hard, None]).mean())
    aggregated = float((crowd.answers[hard] != truth[hard]).mean())
    return rater, aggregated, (rater - aggregated) / rater if rater else float("nan")


def main() -> None:
    cache = Path(os.environ.get("ALEXP_CACHE_DIR", Path.home() / ".cache" / "alexp"))
    started = time.perf_counter()
    print(f"Crowds of {N_RATERS}, aggregated label at pool kappa {KAPPA}; error rates on the hardest 20% of items\n")
    print("| pool | crowd | aggregate | rater kappa | crowd kappa | rater error | crowd error | recovered |")
    print("|---|---|---|---|---|---|---|---|")
    for name, truth, source, context, features in pools():
        truth = np.asarray(truth)
        d = item_difficulty(source, truth, context, features, difficulty_column="d", cache_dir=str(cache))
        hard = hardest(d, 0.2, np.random.default_rng(0))
        rater = functools.partial(Difficulty, concentration=CONCENTRATION, difficulty="column",
                                  difficulty_column="d")
        for aggregate in ("majority", "dawid_skene"):
            crowds = {
                "independent": Crowd(truth, np.random.default_rng(1), TargetKappa, n_raters=N_RATERS,
                                     aggregate=aggregate, kappa=KAPPA),
                "shared": Crowd(truth, np.random.default_rng(1), rater, n_raters=N_RATERS, aggregate=aggregate,
                                shared_errors=SHARED, kappa=KAPPA, context={"d": d}),
            }
            for kind, crowd in crowds.items():
                rater_error, crowd_error, share = recovered(crowd, truth, hard)
                print(f"| {name} | {kind} | {aggregate} | {crowd.rater_kappa:.3f} | "
                      f"{agreement(truth, crowd.answers):.3f} | {rater_error:.3f} | {crowd_error:.3f} | "
                      f"{share:.0%} |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
