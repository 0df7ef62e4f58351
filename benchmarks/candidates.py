"""Nearest-neighbour candidates (acquisition=neighbours, SEALS) against the exhaustive pass, on a pool on disk.

A run of `--rounds` rounds on the pool (every stored row a candidate; 1,000 random labelled rows to start, a
logistic regression refitted each round on the true labels, batches of `--batch`): each round picks its batch with
acquisition=neighbours (margin among the unlabelled k nearest neighbours of the labelled rows) and, on the same
state, with margin over the whole pool (one single-process pass). Printed per round:
    candidates     rows the candidate mode scored, and their share of the pool
    recall         |candidate-mode batch ∩ exhaustive batch| / batch: how much of the exhaustive top-k it finds
    pick pct       the median exhaustive margin rank of the candidate-mode picks, as a percentile of the pool
                   (0.01% = among the 0.01% most uncertain rows)
    s              seconds of the candidate mode (look-up of the new labelled rows' neighbours + scoring) and of
                   the exhaustive pass, and the speed-up; --cold empties the page cache before each (from disk)
Before the rounds: the index's one-off build (seconds, memory of its codes) and its own recall by nprobe: for 200
labelled rows, |approximate 100 nearest ∩ exact 100 nearest| / 100 (the exact ones by a brute-force pass), with
the seconds to look up the neighbours of 1,000 rows.

    python benchmarks/candidates.py --pool PATH [--rounds 5] [--batch 1000] [--nprobe 16]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def drop_caches() -> bool:
    """Empty the page cache (root only): the next reads come from disk."""
    import os

    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


def exact_knn(X, queries: np.ndarray, k: int) -> np.ndarray:
    """The k nearest stored rows (L2) of each query, by one pass over X."""
    best_d = np.full((len(queries), k), np.inf, dtype=np.float32)
    best_i = np.full((len(queries), k), -1, dtype=np.int64)
    qn = (queries ** 2).sum(axis=1)
    for start, block in X.blocks():
        d = qn[:, None] - 2 * queries @ block.T + (block ** 2).sum(axis=1)[None, :]
        d_all = np.concatenate([best_d, d], axis=1)
        i_all = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + len(block)), d.shape)], axis=1)
        keep = np.argpartition(d_all, k - 1, axis=1)[:, :k]
        best_d, best_i = np.take_along_axis(d_all, keep, 1), np.take_along_axis(i_all, keep, 1)
    return best_i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--index", default="auto")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each timed selection")
    args = parser.parse_args()
    import faiss
    from sklearn.linear_model import LogisticRegression

    from alexp import shards
    from alexp.acquisition import Margin, Neighbours, PoolView

    X = shards.DiskArray(args.pool)
    y = shards.read_column(args.pool, "y").astype(np.int64)
    n = len(X)
    print(f"pool {args.pool}: {n:,} rows x {X.n_features}; batches of {args.batch:,}; k = {args.k}; "
          f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    strategy = Neighbours(base=Margin(), k=args.k, index=args.index, nprobe=args.nprobe, cache_dir=args.cache_dir)
    t = time.perf_counter()
    index, _, _ = strategy.built(X)
    build = time.perf_counter() - t
    codes = index.sa_code_size() * index.ntotal / 2**30 if hasattr(index, "sa_code_size") else float("nan")
    print(f"index {index.__class__.__name__} ({args.index}): built (or loaded) in {build:.0f} s; "
          f"codes {codes:.2f} GiB")
    rng = np.random.default_rng(0)
    labeled_in = np.full(n, -1)
    labeled_in[rng.choice(n, 1000, replace=False)] = 0
    queries = np.ascontiguousarray(X[np.sort(rng.choice(np.flatnonzero(labeled_in >= 0), 200, replace=False))])
    t = time.perf_counter()
    exact = exact_knn(X, queries, 100)
    exact_s = time.perf_counter() - t
    print(f"index recall@100 on 200 labelled rows (exact neighbours by a {exact_s:.0f} s pass), and the look-up of "
          f"the 100 neighbours of 1,000 rows, by nprobe:")
    thousand = np.ascontiguousarray(X[np.sort(rng.choice(n, 1000, replace=False))])
    for nprobe in sorted({8, 16, 32, 64, args.nprobe}):
        try:
            faiss.extract_index_ivf(index).nprobe = nprobe
        except RuntimeError:  # an exact index: nprobe means nothing
            if nprobe != args.nprobe:
                continue
        _, approx = index.search(queries, 100)
        recall = np.mean([len(np.intersect1d(a, e)) / 100 for a, e in zip(approx, exact)])
        t = time.perf_counter()
        index.search(thousand, args.k)
        print(f"  nprobe {nprobe:>3}: recall@100 {recall:.3f}, look-up {time.perf_counter() - t:.2f} s"
              + ("   <- used below" if nprobe == args.nprobe else ""))
    try:
        faiss.extract_index_ivf(index).nprobe = args.nprobe
    except RuntimeError:
        pass
    print()
    cache = "cold" if args.cold and drop_caches() else "warm"
    print(f"page cache before each timed selection: {cache}")
    print(f"{'round':>5} {'labels':>7} {'candidates':>10} {'share':>7} {'recall':>6} {'pick pct':>8} "
          f"{'cand s':>7} {'(look-up':>8} {'score)':>6} {'exhaustive s':>12} {'speed-up':>8}")
    for r in range(1, args.rounds + 1):
        labeled = np.flatnonzero(labeled_in >= 0)
        model = LogisticRegression(max_iter=1000).fit(X[labeled], y[labeled])
        pool = PoolView(X, labeled_in, np.where(labeled_in >= 0, y, -1))
        if cache == "cold":
            drop_caches()
        t = time.perf_counter()
        picks = strategy(model, pool, args.batch, np.random.default_rng(r))
        cand_s = time.perf_counter() - t
        if cache == "cold":
            drop_caches()
        t = time.perf_counter()
        full = Margin()(model, pool, args.batch, np.random.default_rng(r))
        full_s = time.perf_counter() - t
        w, b = model.coef_[0].astype(np.float32), float(model.intercept_[0])
        unl = np.flatnonzero(labeled_in < 0)
        z = np.concatenate([np.abs(X[a:c] @ w + b) for a, c in ((s, min(s + 65_536, n)) for s in range(0, n, 65_536))])
        z_unl = np.sort(z[unl])
        pct = 100 * np.median(np.searchsorted(z_unl, z[picks])) / len(unl)
        overlap = len(np.intersect1d(picks, full)) / args.batch
        print(f"{r:>5} {len(labeled):>7,} {strategy.stats['candidates']:>10,} "
              f"{100 * strategy.stats['candidate_share']:6.2f}% {overlap:6.3f} {pct:7.3f}% {cand_s:7.2f} "
              f"{strategy.timings['search_seconds']:8.2f} {strategy.timings['score_seconds']:6.2f} "
              f"{full_s:12.1f} {full_s / cand_s:7.1f}x")
        labeled_in[picks] = r


if __name__ == "__main__":
    main()
