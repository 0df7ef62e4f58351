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

Run from the repository root (stdout only; the pools go to $ALEXP_CACHE_DIR or ~/.cache/alexp, MB = 2**20 B):
    python benchmarks/scale.py                      # 1M and 10M rows, then the sweeps (~10 min on 2 cores, 17 GB)
    python benchmarks/scale.py --sizes 1000000      # one size
    python benchmarks/scale.py --skip-sweep         # pools only
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-pools", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}; "
          f"pools in {CACHE}\n")
    if not args.skip_pools:
        disk_pools(args.sizes)
    if not args.skip_sweep:
        sweep()


if __name__ == "__main__":
    main()
