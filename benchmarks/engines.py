"""Which engine scores a pool on disk: Dask distributed or Ray, measured on the same task.

Both run alexp's own selection task (alexp.engine._task_top: read whole blocks of an Arrow pool, score them with a
fitted logistic model's -|x @ w + b|, keep the top 1,000 with the seeded tie keys) over the whole pool in tasks of
`--rows-per-task` rows, then merge on the driver; each engine on a local cluster of 1 or 2 single-threaded worker
processes on this machine. Printed per engine: seconds to import it and start the cluster (a fresh process),
the round trip of 200 empty tasks, the scoring pass (cold: the cluster's first; warm: the second) and whether the
picks equal the single-process pass. Ray's tasks are its core API (ray.remote), the same unit of work as Dask's
futures; Ray Data's read_* cuts the pool into blocks of its own, which a selection identical to one process
cannot use (a float32 score may differ with the block it is computed in).

    python benchmarks/engines.py --pool PATH          # an Arrow pool, e.g. from benchmarks/scale.py
    (Ray is measured when `import ray` works: pip install "ray[data]"; it is not a dependency of alexp)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time
import numpy as np
engine, pool, workers, rows_per_task = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
from sklearn.linear_model import LogisticRegression
from alexp import shards
from alexp.acquisition.base import scan_top, tie_salt, top_k
from alexp.acquisition.uncertainty import uncertainty_scorer, margin
from alexp.engine import _task_top

def _noop(i):
    return i

def main():
    X = shards.DiskArray(pool)
    y = shards.read_column(pool, "y")
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(X), 2000, replace=False))
    model = LogisticRegression(max_iter=500).fit(X[rows], y[rows])
    score = uncertainty_scorer(model, 2, margin)
    mask = np.ones(len(X), dtype=bool)
    mask[rows] = False
    salt, n, chunk = tie_salt(np.random.default_rng(1)), 1000, 65536
    ranges = [(a, min(a + rows_per_task, len(X))) for a in range(0, len(X), rows_per_task)]
    out = {}
    t = time.perf_counter()
    if engine == "dask":
        from distributed import Client, LocalCluster
        client = Client(LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None, host="127.0.0.1"))
        client.wait_for_workers(workers)
        out["start_s"] = time.perf_counter() - t
        t = time.perf_counter()
        client.gather([client.submit(int, i, pure=False) for i in range(200)])
        out["tasks200_s"] = time.perf_counter() - t
        def run():
            [shared] = client.scatter([score], broadcast=True, hash=False)
            return client.gather([client.submit(_task_top, shared, X.window(a, b), a, mask[a:b], n, salt, chunk,
                                                pure=False) for a, b in ranges])
    else:
        import ray
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        task = ray.remote(num_cpus=1)(_task_top)
        noop = ray.remote(num_cpus=1)(_noop)
        ray.get([noop.remote(0) for _ in range(workers)])  # workers up
        out["start_s"] = time.perf_counter() - t
        t = time.perf_counter()
        ray.get([noop.remote(i) for i in range(200)])
        out["tasks200_s"] = time.perf_counter() - t
        def run():
            shared = ray.put(score)
            return ray.get([task.remote(shared, X.window(a, b), a, mask[a:b], n, salt, chunk) for a, b in ranges])
    for name in ("cold_s", "warm_s"):
        t = time.perf_counter()
        parts = run()
        r = np.concatenate([p[0] for p in parts]); s = np.concatenate([p[1] for p in parts])
        picks = r[top_k(s, r, n, salt)]
        out[name] = time.perf_counter() - t
    single = scan_top(score, X, mask, n, salt, chunk)[0]
    out["identical"] = bool(np.array_equal(picks, single))
    print(json.dumps(out))

if __name__ == "__main__":
    main()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", required=True, help="an Arrow pool or shard folder (alexp.shards)")
    parser.add_argument("--rows-per-task", type=int, default=1_048_576)
    parser.add_argument("--engines", nargs="+", default=["dask", "ray"])
    args = parser.parse_args()
    import alexp.shards as shards

    n = len(shards.DiskArray(args.pool))
    print(f"pool {args.pool}: {n:,} rows; tasks of {args.rows_per_task:,} rows; margin top 1,000")
    print(f"{'engine':>6} {'workers':>7} {'import+start s':>14} {'200 tasks s':>11} {'pass cold s':>11} "
          f"{'pass warm s':>11} {'rows/s warm':>12} {'identical':>9}")
    for engine in args.engines:
        for workers in (1, 2):
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", CHILD, engine, args.pool, str(workers),
                                   str(args.rows_per_task)], capture_output=True, text=True)
            if proc.returncode:
                print(f"{engine:>6} {workers:>7} failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            m = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{engine:>6} {workers:>7} {m['start_s']:14.1f} {m['tasks200_s']:11.2f} {m['cold_s']:11.1f} "
                  f"{m['warm_s']:11.1f} {n / m['warm_s']:12,.0f} {str(m['identical']):>9}   "
                  f"(whole child {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
