"""Stopping rules against the truth: when would each rule have stopped, and what would it have cost?

    ALEXP_DATA_DIR=../shared/data python simulations/stopping_rules/run.py        # ~25 min on 2 cores
    python simulations/stopping_rules/run.py --seeds 3 --only synthetic             # a quick look

Three pools (the synthetic 5%-positive pool, clickbait subsampled to 5% positives, the Cohen drug-review
abstracts), each swept over random, margin and boundary_pairs x 10 seeds with every stopping rule logged
(`stopping=all`, nothing enforced; 20 + 30 x 20 = 620 labels, so that the rules have room to fire before the
budget ends; `label_budget` stops at 200). Then `alexp report` per pool, and RESULTS.md beside this file with
each pool's stopping table (the whole reports in ./reports/). Runs go to the store in $MLFLOW_TRACKING_URI
(default sqlite:///mlflow.db here), one experiment per pool (`stopping-<pool>`); finished runs are not rerun.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
POOLS = {
    "synthetic": [],
    "clickbait": ["data=clickbait", "data.positive_rate=0.05", "features=tfidf"],
    "cohen": ["data=cohen_reviews", "features=tfidf"],
}
STRATEGIES = "random,margin,boundary_pairs"
BUDGET = ["budget.rounds=30"]  # 20 + 30 x 20 = 620 labels: room for the rules to fire before the budget ends


def alexp(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "alexp", *args], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"alexp {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--only", nargs="*", choices=list(POOLS), default=list(POOLS))
    args = p.parse_args()
    sections = []
    for pool in args.only:
        experiment = f"stopping-{pool}"
        started = time.perf_counter()
        alexp("-m", f"acquisition={STRATEGIES}", f"seed=range(0,{args.seeds})", "stopping=all", *BUDGET,
              f"tracking.experiment_name={experiment}", *POOLS[pool])
        swept = time.perf_counter() - started
        out = Path("reports") / experiment  # in the working folder, beside its store
        alexp("report", "--experiment", experiment, "--out", str(out), "--no-log")
        text = (out / "report.md").read_text()
        table = text[text.index("## Stopping rules"):text.index("## Figures")].replace("## Stopping rules", "").strip()
        sections.append(f"## {pool}\n\n`alexp -m acquisition={STRATEGIES} seed=range(0,{args.seeds}) stopping=all "
                        f"{' '.join(BUDGET + POOLS[pool])}`\n\n{table}\n")
        print(f"{pool}: swept in {swept:.0f} s, report in {out}", flush=True)
    (HERE / "RESULTS.md").write_text(
        "# Stopping rules against the truth\n\nWritten by `python simulations/stopping_rules/run.py`. Each table: "
        "per condition and rule, the labels at stop (median over seeds [the 10th and 90th percentile seeds' own "
        "values]; a seed whose rule never fired counts at its last label count), the seeds in which the rule "
        "fired, kappa at stop, the loss against the condition's plateau (mean of its mean curve over its last 3 "
        "label counts), and the seeds that stopped before their own curve reached the target (95% of random's "
        "plateau).\n\n"
        + "\n".join(sections))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
