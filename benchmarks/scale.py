"""Scale benchmark: pools on disk bigger than memory, and sweeps spread over cores.

(a) Pools on disk, for each size (default 1M and 10M rows x 384 float32 features, 1.5 GB and 15 GB):
    generate   `data=synthetic_disk` writes the pool shard by shard (alexp.data.SyntheticOnDisk; skipped when
               the folder is already in the cache)
    read       one pass over the whole pool, a block at a time: the I/O floor of a round
    round      `alexp data=synthetic_disk ... acquisition=entropy`: 1,000 random labels, fit, evaluate on the
               20% gold test set, one entropy selection of 1,000 over the 80% pool, fit and evaluate again;
               the whole command, with its own MLflow store. select / test s are the run's logged
               select_seconds and test_seconds (one pass over the pool / the test rows).
    Every step runs in a child process; its peak RSS is the child's own ru_maxrss (os.wait4).
(b) Sweeps of 4 strategies x 3 seeds (12 jobs, a 1M x 50 synthetic pool in memory, 10 rounds of 20 labels):
    random,entropy,margin,least_confidence (the README's sweep), and coreset,margin,entropy,random (coreset's
    distance computations are BLAS work that already uses both cores in a serial sweep; the slow coreset
    jobs first, as a scheduler would order them). Each runs with hydra/launcher=basic (one job after
    another, all cores each) and with the default joblib launcher (one job per core, threads=auto gives
    each 1 thread), into a fresh MLflow store: wall time of the whole command and the FINISHED runs it
    logged. Each process pays ~6 s of imports before its first job.

(c) The selection pass on the engine (--engine): Arrow pools of 10M x 384 and 100M x 64 float32 (15.4 and 25.6 GB;
    384 features at 100M rows would need 154 GB of disk, more than this machine has), margin of a logistic
    model (fitted on 2,000 rows) over every row, top 1,000. Each pass runs in a child process, with the page
    cache dropped before it when this user may (cold: read from disk; else it says warm):
    read       one pass of alexp's block reads over the pool (DiskArray.blocks), scoring nothing: the I/O floor
    1 proc     alexp's single-process pass (select_top) with 1 and 2 BLAS threads
    dask N     engine=dask on a local cluster of N single-threaded workers (N = 1, 2); start s is the
               cluster's start and the workers' first task (imports; once per run), not in the pass
    Columns: pass seconds, rows/s, rows/s per core, the pass against two floors (x floor: pass time / floor time):
    the memory-bandwidth floor (1M x 384 float32 in 0.074 s on 2 threads, benchmarks/selection.py: 20.8 GB/s)
    and the read pass's time; the driver's peak RSS (its own, not the workers'), and whether the picks equal
    the single-process picks. Then a projection to 10^9-10^11 rows on N nodes, with its assumptions.

Run from the repository root (stdout only; the pools go to $ALEXP_CACHE_DIR or ~/.cache/alexp, MB = 2**20 B):
    python benchmarks/scale.py                      # 1M and 10M rows, then the sweeps (~10 min on 2 cores, 17 GB)
    python benchmarks/scale.py --sizes 1000000      # one size
    python benchmarks/scale.py --skip-sweep         # pools only
    python benchmarks/scale.py --skip-pools --skip-sweep --engine   # (c) only (~41 GB of pools; ~30 min)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 2**20
D = 384
CACHE = os.environ.get("ALEXP_CACHE_DIR", str(Path.home() / ".cache" / "alexp"))
SWEEP = ["seed=0,1,2", "data.n_rows=1000000", "data.n_features=50", "data.n_informative=10", "progress=false"]
STRATEGIES = {"uncertainty": "random,entropy,margin,least_confidence",  # the README's sweep
              "with coreset": "coreset,margin,entropy,random"}  # coreset's distances are BLAS work: 2 threads serially


def measure(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of a child process: its own ru_maxrss, from os.wait4."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err.read()[-3000:]}")
        return wall, usage.ru_maxrss / 1024, out.read()


def child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def pool_args(n: int) -> list[str]:
    return ["data=synthetic_disk", f"data.n_rows={n}", f"data.n_features={D}", f"data.cache_dir={CACHE}"]


def disk_pools(sizes: list[int]) -> None:
    print(f"(a) pools on disk: n x {D} float32, entropy round of 1,000 labels after 1,000 random ones")
    print(f"{'rows':>11} {'GB':>6} | {'generate s':>10} {'RSS MB':>7} | {'read s':>7} {'GB/s':>5} {'RSS MB':>7} | "
          f"{'round s':>7} {'select s':>8} {'test s':>7} {'RSS MB':>7} {'kappa':>6}")
    for n in sizes:
        gen = (f"from alexp.data import SyntheticOnDisk as S; g = S(n_rows={n}, n_features={D}, cache_dir={CACHE!r}, "
               "progress=False); import alexp.shards as s; new = not s.is_shard_folder(g.folder); "
               "g.load(); print(g.folder, new)")
        wall, gen_rss, out = measure(child(gen))
        folder, new = out.split()
        gen_s = f"{wall:10.1f}" if new == "True" else f"{'cached':>10}"
        gen_rss_s = f"{gen_rss:7.0f}" if new == "True" else f"{'':>7}"
        read = (f"import alexp.shards as s; X = s.DiskArray({folder!r}); "
                "print(sum(float(b[:, 0].sum()) for _, b in X.blocks()))")
        read_s, read_rss, _ = measure(child(read))
        gb = n * D * 4 / 1e9
        with tempfile.TemporaryDirectory() as tmp:
            env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db", "ALEXP_STATE_DIR": f"{tmp}/state"}
            cmd = ["alexp", *pool_args(n), "acquisition=entropy", "budget.initial=1000", "budget.batch_size=1000",
                   "budget.rounds=1", "budget.stratified=false", "progress=false", f"hydra.run.dir={tmp}/out"]
            round_s, round_rss, _ = measure(cmd, env)
            m = logged(f"sqlite:///{tmp}/mlflow.db", ("select_seconds", "test_seconds", "kappa"))
        print(f"{n:>11,} {gb:6.1f} | {gen_s} {gen_rss_s} | {read_s:7.1f} {gb / read_s:5.2f} {read_rss:7.0f} | "
              f"{round_s:7.1f} {m['select_seconds']:8.1f} {m['test_seconds']:7.1f} {round_rss:7.0f} "
              f"{m['kappa']:6.3f}")


def logged(uri: str, keys: tuple[str, ...]) -> dict[str, float]:
    """The last round's value of each metric of the store's one run."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("alexp").experiment_id])[0]
    return {k: run.data.metrics[k] for k in keys}


def sweep() -> None:
    print("\n(b) sweeps: 4 strategies x 3 seeds = 12 jobs, synthetic 1M x 50 in memory, 10 rounds of 20 labels")
    print(f"{'strategies':>12} {'launcher':>9} {'wall s':>7} {'finished runs':>13} {'threads/job':>11} {'ratio':>6}")
    import mlflow

    for name, strategies in STRATEGIES.items():
        walls = {}
        for launcher in ("basic", "joblib"):
            with tempfile.TemporaryDirectory() as tmp:
                uri = f"sqlite:///{tmp}/mlflow.db"
                env = {"MLFLOW_TRACKING_URI": uri, "ALEXP_STATE_DIR": f"{tmp}/state"}
                cmd = ["alexp", "-m", f"acquisition={strategies}", *SWEEP, f"hydra/launcher={launcher}",
                       f"hydra.sweep.dir={tmp}/multirun"]
                walls[launcher], _, _ = measure(cmd, env)
                client = mlflow.MlflowClient(uri)
                runs = client.search_runs([client.get_experiment_by_name("alexp").experiment_id])
                finished = sum(r.info.status == "FINISHED" for r in runs)
                threads = ",".join(sorted({r.data.tags.get("alexp.threads", "?") for r in runs}))
            ratio = f"{walls['joblib'] / walls['basic']:6.2f}" if launcher == "joblib" else ""
            print(f"{name:>12} {launcher:>9} {walls[launcher]:7.1f} {f'{finished} of 12':>13} {threads:>11} {ratio:>6}")
    print("ratio: joblib wall time / basic (serial) wall time")


MEMORY_FLOOR_GBS = 384 * 4 * 1e6 / 0.074 / 1e9  # benchmarks/selection.py: 1M x 384 float32 in 0.074 s, 2 threads
ENGINE_POOLS = [(10_000_000, 384), (100_000_000, 64)]

PASS = r"""
import json, os, resource, sys, time
import numpy as np
pool, mode, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
from threadpoolctl import threadpool_limits
threadpool_limits(threads)
from sklearn.linear_model import LogisticRegression
from alexp import shards
from alexp.acquisition.base import scan_top, tie_salt
from alexp.acquisition.uncertainty import margin, uncertainty_scorer
from alexp.engine import Dask

def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1")
        return True
    except OSError:
        return False

def main():
    X = shards.DiskArray(pool)
    out = {}
    if mode == "read":
        out["cold"] = drop_caches()
        t = time.perf_counter()
        for _ in X.blocks():  # alexp's own reads, the blocks a pass scores, and nothing else
            pass
        out["pass_s"] = time.perf_counter() - t
    else:
        y = shards.read_column(pool, "y")
        rows = np.sort(np.random.default_rng(0).choice(len(X), 2000, replace=False))
        model = LogisticRegression(max_iter=1000).fit(X[rows], y[rows])
        score, mask = uncertainty_scorer(model, 2, margin), np.ones(len(X), dtype=bool)
        mask[rows] = False
        salt = tie_salt(np.random.default_rng(1))
        engine = None
        if mode.startswith("dask"):
            t = time.perf_counter()
            engine = Dask(workers=int(mode[4:]))
            engine.client.wait_for_workers(engine.workers)
            first = np.zeros(len(X), dtype=bool)
            first[:65536 * engine.workers] = True
            engine.top(score, X, first, 10, salt, 65536)  # the workers import what the scorer needs (once a run)
            out["start_s"] = time.perf_counter() - t
        out["cold"] = drop_caches()
        t = time.perf_counter()
        picks = (engine.top(score, X, mask, 1000, salt, 65536) if engine is not None
                 else scan_top(score, X, mask, 1000, salt, 65536)[0])
        out["pass_s"] = time.perf_counter() - t
        out["picks"] = __import__("hashlib").sha256(picks.astype(np.int64).tobytes()).hexdigest()[:16]
        if engine is not None:
            engine.close()
    out["driver_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))

if __name__ == "__main__":
    main()
"""


def engine_passes(pools: list[tuple[int, int]]) -> None:
    from alexp.data import SyntheticOnDisk

    print(f"\n(c) the selection pass on the engine: margin top 1,000 over every row of an Arrow pool; floors: memory "
          f"bandwidth {MEMORY_FLOOR_GBS:.1f} GB/s (2 threads), the read pass")
    print(f"{'rows':>11} {'d':>3} {'GB':>5} | {'mode':>8} {'cores':>5} {'cache':>5} {'start s':>7} {'pass s':>7} "
          f"{'rows/s':>11} {'/core':>10} {'x mem floor':>11} {'x read':>6} {'driver MB':>9} {'same picks':>10}")
    measured = {}
    for n, d in pools:
        gen = SyntheticOnDisk(n_rows=n, n_features=d, cache_dir=CACHE, progress=False, format="arrow",
                              noise_scale=0.1)
        if not __import__("alexp.shards").shards.is_pool(gen.folder):
            t = time.perf_counter()
            gen.load()
            print(f"  (generated {gen.folder} in {time.perf_counter() - t:.0f} s)")
        gb = n * d * 4 / 1e9
        floor = gb / MEMORY_FLOOR_GBS
        reference, read_s = None, None
        for mode, cores in (("read", 1), ("single", 1), ("single", 2), ("dask1", 1), ("dask2", 2)):
            wall, _, out = measure(child(PASS) + [str(gen.folder), mode, str(cores)])
            m = json.loads(out.strip().splitlines()[-1])
            if mode == "read":
                read_s = m["pass_s"]
            reference = m.get("picks") if mode == "single" and reference is None else reference
            same = "" if mode == "read" else str(m["picks"] == reference)
            name = {"read": "read", "single": "1 proc", "dask1": "dask 1", "dask2": "dask 2"}[mode]
            start = f"{m['start_s']:7.1f}" if "start_s" in m else f"{'':>7}"
            print(f"{n:>11,} {d:>3} {gb:5.1f} | {name:>8} {cores:>5} {'cold' if m['cold'] else 'warm':>5} {start} "
                  f"{m['pass_s']:7.1f} {n / m['pass_s']:11,.0f} {n / m['pass_s'] / cores:10,.0f} "
                  f"{m['pass_s'] / floor:11.1f} {m['pass_s'] / read_s:6.2f} {m['driver_mb']:9.0f} {same:>10}")
            measured[(n, mode)] = m["pass_s"]
    project(measured, *pools[-1])


def project(measured: dict, n: int, d: int) -> None:
    """Seconds per pass at 10^9-10^11 rows x 384 float32 on N nodes like this one, from the measured passes."""
    node_gbs = n * d * 4 / 1e9 / measured[(n, "dask2")]  # a 2-core node's cold rate, bytes of features per second
    print(f"\nprojection: one selection pass over R rows x 384 float32 on N nodes like this one (2 cores), each "
          f"reading its own share at the measured cold rate of `dask 2` on {n:,} rows ({node_gbs:.2f} GB/s per "
          "node); assumes storage that serves every node at that rate at once (local disks or a parallel file "
          "system), one scheduler handling the tasks one after another (1M rows each: 2 ms per task measured here, "
          "`benchmarks/engines.py`), and the driver merging 1,000 rows per task (negligible below 10^6 tasks)")
    rows = [10**9, 10**10, 10**11]
    nodes = [1, 10, 100, 1000]
    print(f"{'rows':>8} | " + " ".join(f"{f'{k} node' + ('s' if k > 1 else ''):>14}" for k in nodes))
    for r in rows:
        cells = []
        for k in nodes:
            seconds = r * 384 * 4 / 1e9 / (node_gbs * k) + 0.002 * r / 1e6  # + the tasks through one scheduler
            cells.append(f"{_human(seconds):>14}")
        print(f"{r:>8.0e} | " + " ".join(cells))


def _human(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-pools", action="store_true")
    parser.add_argument("--engine", action="store_true", help="(c): the selection pass on the engine")
    parser.add_argument("--engine-pools", nargs="+", default=[f"{n}x{d}" for n, d in ENGINE_POOLS],
                        help="(c)'s pools as ROWSxFEATURES")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}; "
          f"pools in {CACHE}\n")
    if not args.skip_pools:
        disk_pools(args.sizes)
    if not args.skip_sweep:
        sweep()
    if args.engine:
        engine_passes([tuple(int(v) for v in pool.split("x")) for pool in args.engine_pools])


if __name__ == "__main__":
    main()
