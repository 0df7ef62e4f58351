"""Selection benchmark: alexp's acquisition strategies against modAL and scikit-activeml, and the physical floor.

Setup: synthetic pools of n rows x 384 float32 features (two Gaussian classes, ~5% positives shifted on 8
dims, seed 0). One LogisticRegression is fitted on the first 2,000 rows, which count as labeled; k = 100.

Measured, per pool size (median wall time of one selection round over --repeats runs; extra peak RSS = the
peak RSS during the timed runs minus the RSS just before them, from getrusage ru_maxrss):
  floor        one X @ w pass (w float32), and one X @ W pass with W 384x5 (a 5-member committee)
  alexp        Entropy, Margin, VoteEntropy(5), KLDisagreement(5): the full call (which fits the bootstrap
               committee) and the committee's scoring pass alone (committee built once, outside the timing)
  modAL        entropy_sampling, margin_sampling, vote_entropy_sampling, max_disagreement_sampling (KL) on
               X_unlabeled = X[2000:] (a copy made once, outside the timing), committee of 5 fitted learners
  skactiveml   UncertaintySampling(entropy / margin_sampling).query(X, y with NaN for unlabeled, fitted
               SklearnClassifier, fit_clf=False, batch_size=100)
Every (method, size) runs in a fresh child process (fork) that builds its own pool; the parent kills a
child that passes 15 GiB RSS or 120 s in one run and records "did not finish".
Then: targets (a)-(c), (d) one round of Coreset / Badge / ClusterMargin / BoundaryPairs on 100k rows, and
(e) a 20-round entropy loop on 100k rows (fit + select), alexp against modAL.

Run from the repository root (stdout only, no files written; MB = 2**20 bytes):
    python benchmarks/selection.py                     # 10k, 100k, 1M rows; 5 repeats (~10 min, 2 cores)
    python benchmarks/selection.py --quick             # 10k, 100k rows; 3 repeats
    python benchmarks/selection.py --sizes 10000 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
import warnings
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata

import numpy as np
from sklearn.linear_model import LogisticRegression

from alexp.acquisition import (Badge, BoundaryPairs, ClusterMargin, Coreset, Entropy, KLDisagreement, Margin,
                               PoolView, VoteEntropy, select_top)
from alexp.acquisition.committee import build_committee

D = 384  # features
K = 100  # batch size of one selection round
N_LABELED = 2000  # the first rows are labeled
N_MEMBERS = 5  # committee size
POS_RATE, SHIFT_DIMS, SHIFT = 0.05, 8, 1.0
SEED = 0
RUN_LIMIT_S = 120.0  # one timed run longer than this: did not finish
SETUP_LIMIT_S = 300.0  # building the pool, model and committee in the child
RSS_LIMIT = 15 * 2**30  # bytes of child RSS
DIVERSITY_N = 100_000  # pool of (d) and (e)
LOOP_ROUNDS, LOOP_INIT_POS, LOOP_INIT = 20, 10, 100
MB = 2**20


# ----------------------------------------------------------------------------------------------- data

def make_pool(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """n x 384 float32 features and binary labels (~5% positives, shifted by SHIFT on the first dims)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, D), dtype=np.float32)
    y = (rng.random(n) < POS_RATE).astype(np.int64)
    X[y == 1, :SHIFT_DIMS] += np.float32(SHIFT)
    return X, y


class Data:
    """One pool with its model and labeling state; built inside the child that measures it."""

    def __init__(self, n: int):
        self.n = n
        self.X, self.y = make_pool(n)
        self.model = LogisticRegression(max_iter=1000).fit(self.X[:N_LABELED], self.y[:N_LABELED])
        self.labeled_in = np.full(n, -1, dtype=np.int64)
        self.labeled_in[:N_LABELED] = 0
        self.labels = np.full(n, -1, dtype=np.int64)
        self.labels[:N_LABELED] = self.y[:N_LABELED]
        self.pool = PoolView(self.X, self.labeled_in, self.labels)

    @cached_property
    def X_unlabeled(self) -> np.ndarray:
        """The peers' pool: the unlabeled rows, copied once (outside the timing)."""
        return self.X[N_LABELED:].copy()

    @cached_property
    def committee(self) -> list:
        """5 bootstrap members, exactly those alexp's committee strategies fit inside a call with rng(0)."""
        return build_committee(self.model, self.pool, np.random.default_rng(0), N_MEMBERS, None)


# ------------------------------------------------------------------------------- what is timed, per method
# Each setup takes a Data and returns the zero-argument callable that one timed run calls.

def floor_w(d: Data):
    w = d.model.coef_[0].astype(np.float32)
    X = d.X
    return lambda: X @ w


def floor_W(d: Data):
    W = np.random.default_rng(1).standard_normal((D, N_MEMBERS), dtype=np.float32)
    X = d.X
    return lambda: X @ W


def alexp_call(make_strategy):
    def setup(d: Data):
        strategy = make_strategy()
        return lambda: strategy(d.model, d.pool, K, np.random.default_rng(0))
    return setup


def alexp_scoring(cls):
    def setup(d: Data):
        strategy, committee = cls(n_members=N_MEMBERS), d.committee
        return lambda: select_top(strategy._scorer(committee, 2), d.pool, K, np.random.default_rng(0),
                                  strategy.chunk_size)
    return setup


def modal_uncertainty(name: str):
    def setup(d: Data):
        from modAL import uncertainty
        query, model, X_unl = getattr(uncertainty, name), d.model, d.X_unlabeled
        return lambda: query(model, X_unl, n_instances=K)
    return setup


def modal_committee(name: str):
    def setup(d: Data):
        # Learners wrap already-fitted estimators: no X_training, so modAL's fit/teach path (check_X_y with
        # force_all_finite, which scikit-learn 1.9 no longer accepts) is never called.
        from modAL import disagreement
        from modAL.models import ActiveLearner, Committee
        committee = Committee([ActiveLearner(estimator=m) for m in d.committee])
        query, X_unl = getattr(disagreement, name), d.X_unlabeled
        return lambda: query(committee, X_unl, n_instances=K)
    return setup


def skal_uncertainty(method: str):
    def setup(d: Data):
        from skactiveml.classifier import SklearnClassifier
        from skactiveml.pool import UncertaintySampling
        from skactiveml.utils import MISSING_LABEL
        y = np.full(d.n, MISSING_LABEL)
        y[:N_LABELED] = d.y[:N_LABELED]
        clf = SklearnClassifier(LogisticRegression(max_iter=1000), classes=[0, 1], missing_label=MISSING_LABEL)
        clf.fit(d.X[:N_LABELED], y[:N_LABELED])
        qs = UncertaintySampling(method=method, missing_label=MISSING_LABEL, random_state=0)
        return lambda: qs.query(d.X, y, clf, fit_clf=False, batch_size=K)
    return setup


def initial_labeled(y: np.ndarray) -> np.ndarray:
    """The loop's stratified start: 10 positives and 90 negatives, seeded."""
    rng = np.random.default_rng(SEED + 1)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    return np.sort(np.concatenate([rng.choice(pos, LOOP_INIT_POS, replace=False),
                                   rng.choice(neg, LOOP_INIT - LOOP_INIT_POS, replace=False)]))


def loop_alexp(d: Data):
    X, y, init = d.X, d.y, initial_labeled(d.y)

    def run():
        labeled_in = np.full(d.n, -1, dtype=np.int64)
        labels = np.full(d.n, -1, dtype=np.int64)
        labeled_in[init], labels[init] = 0, y[init]
        fit_s = select_s = 0.0
        picks = []
        for r in range(1, LOOP_ROUNDS + 1):
            t0 = time.perf_counter()
            rows = np.flatnonzero(labeled_in >= 0)
            model = LogisticRegression(max_iter=1000).fit(X[rows], y[rows])
            t1 = time.perf_counter()
            chosen = Entropy()(model, PoolView(X, labeled_in, labels), K, np.random.default_rng(r))
            t2 = time.perf_counter()
            labeled_in[chosen], labels[chosen] = r, y[chosen]
            fit_s, select_s = fit_s + t1 - t0, select_s + t2 - t1
            picks.append(np.sort(chosen).tolist())
        return {"fit_s": fit_s, "select_s": select_s, "picks": picks}
    return run


def loop_modal(d: Data):
    from modAL.uncertainty import entropy_sampling
    X, y, init = d.X, d.y, initial_labeled(d.y)

    def run():
        labeled = init.copy()
        unlabeled = np.setdiff1d(np.arange(d.n), init)
        fit_s = select_s = 0.0
        picks = []
        for _ in range(LOOP_ROUNDS):
            t0 = time.perf_counter()
            model = LogisticRegression(max_iter=1000).fit(X[labeled], y[labeled])  # same row order as alexp
            t1 = time.perf_counter()
            idx, _ = entropy_sampling(model, X[unlabeled], n_instances=K)  # modAL needs the unlabeled rows
            chosen = unlabeled[idx]
            unlabeled = np.delete(unlabeled, idx)
            t2 = time.perf_counter()
            labeled = np.sort(np.concatenate([labeled, chosen]))
            fit_s, select_s = fit_s + t1 - t0, select_s + t2 - t1
            picks.append(np.sort(chosen).tolist())
        return {"fit_s": fit_s, "select_s": select_s, "picks": picks}
    return run


def agreement(d: Data):
    """Overlap of the top-100 sets of the libraries on the same pool and model (a sanity check)."""
    from modAL import uncertainty

    def run():
        def to_pool(idx):
            return set((np.asarray(idx) + N_LABELED).tolist())
        out = {}
        for measure, strategy, modal_query, skal_method in [
                ("entropy", Entropy(), uncertainty.entropy_sampling, "entropy"),
                ("margin", Margin(), uncertainty.margin_sampling, "margin_sampling")]:
            mine = set(strategy(d.model, d.pool, K, np.random.default_rng(0)).tolist())
            out[f"{measure}: alexp & modAL"] = len(mine & to_pool(modal_uncertainty(modal_query.__name__)(d)()[0]))
            out[f"{measure}: alexp & skactiveml"] = len(mine & set(skal_uncertainty(skal_method)(d)().tolist()))
        for measure, cls, name in [("vote entropy", VoteEntropy, "vote_entropy_sampling"),
                                   ("KL", KLDisagreement, "max_disagreement_sampling")]:
            mine = set(alexp_scoring(cls)(d)().tolist())
            out[f"{measure}: alexp & modAL"] = len(mine & to_pool(modal_committee(name)(d)()[0]))
        return out
    return run


@dataclass(frozen=True)
class Method:
    key: str
    library: str  # floor, alexp, modAL, skactiveml
    measure: str  # entropy, margin, vote_entropy, kl, or floor1 / floor5 for the floors
    label: str
    setup: object
    scoring_only: bool = False


SELECTION_METHODS = [
    Method("floor1", "floor", "floor1", "X @ w  (w float32)", floor_w),
    Method("floor5", "floor", "floor5", "X @ W  (W 384x5 float32)", floor_W),
    Method("alexp_entropy", "alexp", "entropy", "Entropy()", alexp_call(Entropy)),
    Method("alexp_margin", "alexp", "margin", "Margin()", alexp_call(Margin)),
    Method("alexp_ve", "alexp", "vote_entropy", "VoteEntropy(5) full call (fits 5)",
           alexp_call(lambda: VoteEntropy(n_members=N_MEMBERS))),
    Method("alexp_ve_score", "alexp", "vote_entropy", "VoteEntropy(5) scoring only",
           alexp_scoring(VoteEntropy), scoring_only=True),
    Method("alexp_kl", "alexp", "kl", "KLDisagreement(5) full call (fits 5)",
           alexp_call(lambda: KLDisagreement(n_members=N_MEMBERS))),
    Method("alexp_kl_score", "alexp", "kl", "KLDisagreement(5) scoring only",
           alexp_scoring(KLDisagreement), scoring_only=True),
    Method("modal_entropy", "modAL", "entropy", "entropy_sampling", modal_uncertainty("entropy_sampling")),
    Method("modal_margin", "modAL", "margin", "margin_sampling", modal_uncertainty("margin_sampling")),
    Method("modal_ve", "modAL", "vote_entropy", "vote_entropy_sampling (5)",
           modal_committee("vote_entropy_sampling")),
    Method("modal_kl", "modAL", "kl", "max_disagreement_sampling (5, KL)",
           modal_committee("max_disagreement_sampling")),
    Method("skal_entropy", "skactiveml", "entropy", "UncertaintySampling(entropy)", skal_uncertainty("entropy")),
    Method("skal_margin", "skactiveml", "margin", "UncertaintySampling(margin_sampling)",
           skal_uncertainty("margin_sampling")),
]
DIVERSITY_METHODS = [
    Method(f"alexp_{cls.__name__.lower()}", "alexp", "diversity", f"{cls.__name__}()", alexp_call(cls))
    for cls in (Coreset, Badge, ClusterMargin, BoundaryPairs)]
EXTRA_SETUPS = {"loop_alexp": loop_alexp, "loop_modal": loop_modal, "agreement": agreement}
SETUPS = {m.key: m.setup for m in SELECTION_METHODS + DIVERSITY_METHODS} | EXTRA_SETUPS


# ------------------------------------------------------------------------------------- child processes

def maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0), so ru_maxrss starts from here."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def warm_blas(X: np.ndarray) -> None:
    """A GEMV and a GEMM on a 65,536-row block in float32 and float64 before the baseline: OpenBLAS touches
    its multi-thread work buffers (~50 MB) on the first large GEMM of a process, a once-per-process cost
    that would otherwise be charged to whichever method happens to run first in the child."""
    block = X[:65_536]
    for A in (block, block.astype(np.float64)):
        A @ np.ones(A.shape[1], A.dtype)
        A @ np.ones((A.shape[1], N_MEMBERS), A.dtype)


def child(key: str, n: int, repeats: int, conn) -> None:
    """Build the pool, then time `repeats` runs; report run times and the extra peak RSS through `conn`."""
    warnings.simplefilter("ignore")
    try:
        data = Data(n)
        fn = SETUPS[key](data)
        warm_blas(data.X)
        del data
        gc.collect()
        reset_peak_rss()
        before = maxrss_kib()
        conn.send(("ready", before))
        times, info = [], None
        for i in range(repeats):
            conn.send(("start", i))
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
            conn.send(("time", times[-1]))
            if isinstance(out, dict):
                info = out
            del out
        conn.send(("done", {"times": times, "extra_mb": (maxrss_kib() - before) / 1024, "info": info}))
    except BaseException as e:  # noqa: BLE001 -- reported as "did not finish"
        conn.send(("error", f"{type(e).__name__}: {e}"[:200]))
    finally:
        conn.close()


@dataclass
class Result:
    times: list
    extra_mb: float | None
    dnf: str | None = None  # why it did not finish
    info: dict | None = None

    @property
    def median(self) -> float | None:
        return float(np.median(self.times)) if self.times and not self.dnf else None


def measure(key: str, n: int, repeats: int) -> Result:
    """Run one (method, size) in a fresh forked child under the RSS and time guards."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=child, args=(key, n, repeats, send))
    proc.start()
    send.close()
    times, before_kib, peak, since, phase, dnf = [], None, 0, time.monotonic(), "setup", None
    result = None
    while result is None and dnf is None:
        if recv.poll(0.05):
            try:
                kind, value = recv.recv()
            except EOFError:
                dnf = f"child died (exit code {proc.exitcode})"
                break
            if kind == "ready":
                before_kib, phase, since = value, "run", time.monotonic()
            elif kind == "start":
                since = time.monotonic()
            elif kind == "time":
                times.append(value)
            elif kind == "done":
                result = Result(value["times"], value["extra_mb"], info=value["info"])
            else:
                dnf = value
            continue
        rss = rss_bytes(proc.pid)
        peak = max(peak, rss) if phase == "run" else peak
        limit = SETUP_LIMIT_S if phase == "setup" else RUN_LIMIT_S
        if rss > RSS_LIMIT:
            dnf = f"RSS {rss / 2**30:.1f} GiB > limit {RSS_LIMIT / 2**30:g} GiB"
        elif time.monotonic() - since > limit:
            dnf = f"{'a timed run' if phase == 'run' else 'setup'} took > {limit:g} s"
        elif not proc.is_alive() and not recv.poll(0.5):
            dnf = f"child died (exit code {proc.exitcode})"
    if dnf is not None:
        if proc.is_alive():
            proc.kill()
        extra = (peak / 1024 - before_kib) / 1024 if before_kib and peak else None  # polled: a lower bound
        result = Result(times, extra, dnf=dnf)
    proc.join()
    recv.close()
    return result


# ------------------------------------------------------------------------------------------- reporting

def fmt_s(t: float | None) -> str:
    if t is None:
        return "-"
    return f"{t:.4f}" if t < 10 else f"{t:.2f}"


def fmt_mb(m: float | None) -> str:
    return "-" if m is None else f"{m:.1f}"


def best_peer(results: dict, measure_: str, n: int) -> tuple[str | None, float | None]:
    peers = [(m.library + " " + m.label, results[m.key, n].median) for m in SELECTION_METHODS
             if m.library in ("modAL", "skactiveml") and m.measure == measure_
             and results[m.key, n].median is not None]
    return min(peers, key=lambda p: p[1]) if peers else (None, None)


def floor_of(m: Method) -> str:
    return "floor5" if m.measure in ("vote_entropy", "kl", "floor5") else "floor1"


def print_table(results: dict, n: int, repeats: int) -> None:
    print(f"\n=== {n:,} rows x {D} float32, k = {K}, {N_LABELED:,} labeled, median of {repeats} runs ===")
    head = (f"{'method':<50} {'median s':>9} {'(min s)':>9} {'extra peak MB':>14} {'x floor':>8}   "
            "speed-up vs fastest peer")
    print(head)
    print("-" * (len(head) + 40))
    for m in SELECTION_METHODS:
        r = results[m.key, n]
        name = f"{m.library:<11}{m.label}"
        if r.dnf:
            done = f" after {len(r.times)} run(s), median so far {fmt_s(float(np.median(r.times)))} s" \
                if r.times else ""
            extra = f" (>= {fmt_mb(r.extra_mb)} MB polled)" if r.extra_mb is not None else ""
            print(f"{name:<50} did not finish: {r.dnf}{done}{extra}")
            continue
        floor = results[floor_of(m), n].median
        ratio = f"{r.median / floor:.2f}" if floor else "-"
        speed = ""
        if m.library == "alexp":
            peer, t = best_peer(results, m.measure, n)
            if peer:
                speed = f"{t / r.median:.1f}x vs {peer}" + (
                    "  (peer's committee prebuilt)" if m.measure in ("vote_entropy", "kl")
                    and not m.scoring_only else "")
        print(f"{name:<50} {fmt_s(r.median):>9} {fmt_s(min(r.times)):>9} {fmt_mb(r.extra_mb):>14} {ratio:>8}   "
              f"{speed}".rstrip())


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_targets(results: dict, sizes: list[int]) -> None:
    n = max(sizes)
    print(f"\n=== Targets (a)-(c) (selection at {n:,} rows unless stated) ===")
    floor1, floor5 = results["floor1", n].median, results["floor5", n].median
    for measure_, key in (("entropy", "alexp_entropy"), ("margin", "alexp_margin")):
        t = results[key, n].median
        peer, tp = best_peer(results, measure_, n)
        if t is None or tp is None or floor1 is None:
            print(f"(a) alexp {measure_}: FAIL (missing measurement)")
            continue
        ok = tp / t >= 4 and t / floor1 <= 1.5
        print(f"(a) alexp {measure_}: {verdict(ok)}  {t:.4f} s = {tp / t:.1f}x faster than {peer} ({tp:.4f} s; "
              f"need >= 4x), {t / floor1:.2f}x the X @ w floor ({floor1:.4f} s; need <= 1.5x)")
    alexp_rows = [(m, s, results[m.key, s].extra_mb) for m in SELECTION_METHODS if m.library == "alexp"
                  for s in sizes]
    worst = max(alexp_rows, key=lambda r: -1 if r[2] is None else r[2])
    over = [f"{m.label} at {s:,}: {e:.1f} MB" for m, s, e in alexp_rows if e is None or e > 16]
    print(f"(b) extra peak memory of every alexp selection row at every size <= 16 MB: {verdict(not over)}  "
          f"max {fmt_mb(worst[2])} MB ({worst[0].label} at {worst[1]:,} rows)"
          + (f"; over: {', '.join(over)}" if over else ""))
    for label, key in (("vote entropy", "alexp_ve"), ("KL", "alexp_kl")):
        for suffix, what in (("_score", "scoring pass"), ("", "full call incl. fitting the 5 members")):
            t = results[key + suffix, n].median
            if t is None or floor5 is None:
                print(f"(c) alexp {label} ({what}): FAIL (missing measurement)")
                continue
            print(f"(c) alexp {label}, 5 members, {what}: {verdict(t / floor5 <= 2)}  {t:.4f} s = "
                  f"{t / floor5:.2f}x the X @ W floor ({floor5:.4f} s; need <= 2x)")


def print_diversity(results: dict) -> None:
    print(f"\n=== (d) one round on {DIVERSITY_N:,} rows, k = {K}, {N_LABELED:,} labeled (1 run; "
          f"target < 30 s) ===")
    for m in DIVERSITY_METHODS:
        r = results[m.key]
        if r.dnf:
            print(f"(d) {m.label:<16} FAIL  did not finish: {r.dnf}")
        else:
            t = r.times[0]
            print(f"(d) {m.label:<16} {verdict(t < 30)}  {t:8.2f} s   extra peak {fmt_mb(r.extra_mb)} MB")


def print_loop(alexp_r: Result, modal_r: Result) -> None:
    print(f"\n=== (e) {LOOP_ROUNDS}-round entropy loop on {DIVERSITY_N:,} rows, {LOOP_INIT} initial labels "
          f"({LOOP_INIT_POS} positive), {K} per round, LogisticRegression(max_iter=1000) refit each round ===")
    for name, r in (("alexp Entropy", alexp_r), ("modAL entropy_sampling", modal_r)):
        if r.dnf:
            print(f"(e) {name:<24} did not finish: {r.dnf}")
        else:
            print(f"(e) {name:<24} total {r.times[0]:7.2f} s   (fits {r.info['fit_s']:.2f} s, "
                  f"selection {r.info['select_s']:.2f} s)")
    if alexp_r.dnf or modal_r.dnf:
        print("(e) alexp loop faster: FAIL (a loop did not finish)")
        return
    same = sum(a == b for a, b in zip(alexp_r.info["picks"], modal_r.info["picks"]))
    ta, tm = alexp_r.times[0], modal_r.times[0]
    print(f"(e) identical batches in {same}/{LOOP_ROUNDS} rounds; alexp loop faster: {verdict(ta < tm)}  "
          f"{ta:.2f} s vs {tm:.2f} s ({tm / ta:.2f}x; selection alone "
          f"{modal_r.info['select_s'] / alexp_r.info['select_s']:.1f}x)")


def print_header(sizes: list[int], repeats: int) -> None:
    import threadpoolctl

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print("alexp selection benchmark")
    print(f"machine   : {os.cpu_count()} CPUs (affinity {len(os.sched_getaffinity(0))}), {mem:.1f} GiB RAM, "
          f"{platform.platform()}, {platform.processor() or platform.machine()}")
    print(f"python    : {platform.python_version()}; numpy {np.__version__}, scipy {version('scipy')}, "
          f"scikit-learn {version('scikit-learn')}, alexp {version('alexp')}, modAL-python "
          f"{version('modAL-python')}, scikit-activeml {version('scikit-activeml')}")
    pools = "; ".join(f"{p['internal_api']} {p.get('version')} {p['num_threads']} threads"
                      for p in threadpoolctl.threadpool_info())
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
           if k in os.environ}
    print(f"threads   : {pools or 'no BLAS/OpenMP pool loaded'}; env {env or 'unset'}")
    print(f"setup     : sizes {', '.join(f'{s:,}' for s in sizes)}; {repeats} repeats; {D} float32 features, "
          f"~{POS_RATE:.0%} positives; LogisticRegression on the first {N_LABELED:,} rows; k = {K}")
    print("            each (method, size) in a fresh forked child that builds its own pool; extra peak = "
          "ru_maxrss after the timed runs - ru_maxrss before (peak mark reset to current RSS first; "
          "OpenBLAS work buffers warmed first by one GEMV and GEMM on a 65,536-row block)")
    print(f"            modAL gets X_unlabeled = X[{N_LABELED}:], a copy made once outside the timing (in the "
          "baseline RSS); skactiveml gets the full X and y with NaN for unlabeled rows and copies "
          "X[unlabeled] inside query()")
    print("            modAL's max_disagreement_sampling ranks by the max KL over members, alexp's KLDisagreement "
          "by the mean KL: same inputs and cost, different ranking")


# ---------------------------------------------------------------------------------------------------- main

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="sizes 10k and 100k, 3 repeats")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats = [10_000, 100_000], 3
    if min(args.sizes) <= N_LABELED + K:
        p.error(f"every size must exceed {N_LABELED + K}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up when redirected to a file
    sizes = sorted(args.sizes)
    start = time.monotonic()
    print_header(sizes, args.repeats)
    check = measure("agreement", sizes[0], 1)
    if check.dnf:
        print(f"agreement : did not finish: {check.dnf}")
    else:
        print(f"agreement : top-{K} overlap at {sizes[0]:,} rows (of {K}): "
              + ", ".join(f"{k} {v}" for k, v in check.info.items()))
    results = {}
    for n in sizes:
        for m in SELECTION_METHODS:
            results[m.key, n] = measure(m.key, n, args.repeats)
        print_table(results, n, args.repeats)
    print_targets(results, sizes)
    diversity = {m.key: measure(m.key, DIVERSITY_N, 1) for m in DIVERSITY_METHODS}
    print_diversity(diversity)
    print_loop(measure("loop_alexp", DIVERSITY_N, 1), measure("loop_modal", DIVERSITY_N, 1))
    print(f"\ntotal wall time {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
