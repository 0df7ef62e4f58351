"""Run a config: the one way alexp turns a composed config into an MLflow run, for the CLI, studies and notebooks.

    from alexp.runner import compose, run
    outcome = run(compose(["budget=small", "acquisition=margin", "seed=3"]))
    print(outcome.kappa, outcome.n_labels, outcome.run_id)

- `compose(overrides)`: the config `alexp OVERRIDES` would run (the same run key, params and run name);
- `check(cfg)`: refuses a bad setting before any work, naming it and the fix;
- `split(cfg)`: the data and its pool / gold test split, as the run splits it;
- `build(cfg)`: the parts of the run (data split, features, model, strategy, oracle, budget, stopping), not run;
- `run(cfg)`: checks, builds and runs it under MLflow tracking, one run per config (a finished config is
  reported, an interrupted one continues from its checkpoint).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from alexp import AlexpError, plural
from alexp.errors import check_writable
from alexp.config import GROUPS, NOT_PARAMS, OPTIONAL_GROUPS, RUNTIME_ARGS, check_node, check_seed, choices, \
    instantiate, params, prefixed, run_key

log = logging.getLogger("alexp")


def compose(overrides: Sequence[str] = (), config_dir: str | None = None) -> DictConfig:
    """The config that `alexp OVERRIDES` runs (with `config_dir`, as `alexp --config-dir DIR OVERRIDES`: that
    folder's options join the shipped ones); a bad override raises AlexpError with the command's one line. It
    also becomes the current Hydra job's, as under the command line,
    so that `run` names the run and logs its params from the chosen options and overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from alexp.errors import user_error

    if config_dir is not None:
        overrides = [f"hydra.searchpath=[file://{Path(config_dir).resolve()}]", *overrides]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("alexp.conf", version_base="1.3"):
            cfg = hydra_compose("config", overrides=list(overrides), return_hydra_config=True)
    except Exception as e:  # a misspelt option or key, an unparsable override: one line, as the command says it
        message = user_error(e)
        if message is None:
            raise
        raise AlexpError(message) from None
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def check(cfg: DictConfig) -> None:
    """Raise AlexpError, naming the setting and the fix, for a bad seed, thread count, tracking store or config node
    (an unknown key, an unimportable `_target_`, a required `???` value). Loads no data."""
    from alexp import tracking

    check_seed(cfg.seed)
    job_threads(cfg.get("threads", "auto"))
    for group in (g for g in (*GROUPS, *OPTIONAL_GROUPS) if cfg.get(g) is not None):
        check_node(cfg[group], group, skip=RUNTIME_ARGS.get(group, ()))
    tracking.check_uri(cfg.tracking.uri)


@dataclass
class Parts:
    """What one run is made of, built from its config."""

    table: Any  # alexp.data.Table: every row of the data
    pool_rows: Any  # the table's rows in the pool, and in the gold test set
    test_rows: Any
    X_pool: Any  # the pool's and test set's features
    X_test: Any
    model: Any
    acquisition: Any
    budget: Any
    oracle: Any
    scout: Any
    stopping: Any
    run_name: str
    X_curated: Any = None  # the common curated evaluation set (curated_set), held out of the pool
    y_curated: Any = None

    @property
    def n_pool(self) -> int:
        return len(self.pool_rows)

    @property
    def pool_ids(self):
        return self.table.ids[self.pool_rows]

    def loop(self, cfg: DictConfig, log_metrics=None, checkpoint: Path | None = None, engine=None):
        """The active-learning loop over these parts (alexp.loop.Loop), logging through `log_metrics`."""
        from alexp.loop import Loop

        extra = {"log_metrics": log_metrics} if log_metrics is not None else {}
        extra |= {"engine": engine} if engine is not None else {}
        curated = (self.X_curated, self.y_curated) if self.y_curated is not None else None
        return Loop(self.X_pool, self.X_test, self.table.y[self.test_rows], self.model, self.acquisition,
                    self.oracle, self.budget, cfg.seed, truth=self.table.y[self.pool_rows], checkpoint=checkpoint,
                    progress=cfg.progress, scout=self.scout, stopping=self.stopping, curated=curated, **extra)


def split(cfg: DictConfig):
    """(table, pool rows, test rows): the data and its split into pool and gold test set, as a run of `cfg` splits
    it (the run seed's "split" stream, so each seed has its own split and every strategy the same one)."""
    from alexp import data
    from alexp.seeds import stream_int

    source = instantiate(cfg, "data")
    table = prefixed("data", source.load)
    data.check_classes(table)
    pool_rows, test_rows = data.split(table, source.test_size, stream_int(cfg.seed, "split"))
    return table, pool_rows, test_rows


def build(cfg: DictConfig) -> Parts:
    """Build every part of the run, checking that they fit together (data vs budget, model vs strategy) before the
    costly ones: the data split as `split` does, the features, the oracle with the pool's context."""
    from alexp.acquisition import check_compatible
    from alexp.features import featurize
    from hydra.utils import get_class

    from alexp.oracles.simulated import Simulated
    from alexp.seeds import stream

    features, model = instantiate(cfg, "features"), instantiate(cfg, "model")
    acquisition, budget = instantiate(cfg, "acquisition"), instantiate(cfg, "budget")
    scout = instantiate(cfg, "scout", features=features) if cfg.get("scout") is not None else None
    stopping = instantiate(cfg, "stopping") if cfg.get("stopping") is not None else None
    if budget.initial == 0 and scout is None:
        raise AlexpError("budget: initial=0 starts from a scout's predictions; add scout=zero_shot "
                         "(or set budget.initial to a number of labels)")
    check_compatible(acquisition, model)
    if getattr(acquisition, "reads_truth", False) and not issubclass(get_class(cfg.oracle._target_), Simulated):
        raise AlexpError(f"acquisition=greedy_oracle reads the data's labels to pick batches (an upper bound for "
                         f"simulated studies); with oracle={choices().get('oracle')} a person answers: use a "
                         "simulated oracle (perfect, noisy, ...) or another strategy")
    table, pool_rows, test_rows = split(cfg)
    spec = cfg.get("curated_set") or {}
    size = int(spec.get("size") or 0)
    curated_rows = np.empty(0, dtype=np.intp)
    if size:  # the seed's draw, the same for every arm of a seed: held out of the pool, labelled once
        if not 0 < size < len(pool_rows):
            raise AlexpError(f"curated_set.size={size} must be between 1 and the pool's {len(pool_rows)} rows")
        keep = np.ones(len(pool_rows), dtype=bool)
        keep[stream(cfg.seed, "curated_set").choice(len(pool_rows), size, replace=False)] = False
        pool_rows, curated_rows = pool_rows[keep], pool_rows[~keep]
    budget.check_pool(len(pool_rows))
    X_pool, X_rest = featurize(features, table, pool_rows, np.concatenate([test_rows, curated_rows]),
                               getattr(model, "accepts_text", False))
    X_test, X_curated = _take(X_rest, slice(0, len(test_rows))), _take(X_rest, slice(len(test_rows), None))
    oracle = instantiate(cfg, "oracle", truth=table.y[pool_rows], rng=stream(cfg.seed, "oracle"),
                         context=_context(table, pool_rows), pool_features=X_pool, seed=cfg.seed, features=features)
    first = (budget.initial or budget.batch_size) * oracle.cost_per_label  # what round 0 costs, at least
    if budget.max_cost is not None and first > budget.max_cost:
        raise AlexpError(f"budget.max_cost={budget.max_cost:g} does not pay for the first "
                         f"{budget.initial or budget.batch_size} labels at {oracle.cost_per_label:g} each "
                         f"({first:g}); raise budget.max_cost or lower budget.initial")
    y_curated = _curated_labels(cfg, spec, table, pool_rows, curated_rows, X_pool, X_curated) if size else None
    return Parts(table, pool_rows, test_rows, X_pool, X_test, model, acquisition, budget, oracle, scout, stopping,
                 run_name(cfg), X_curated if size else None, y_curated)


def _context(table, rows) -> dict:
    """The oracle's view of these rows: ids, texts and the data's context columns."""
    return {"id": table.ids[rows], **({"text": table.inputs[rows]} if table.is_text else {}),
            **{name: column[rows] for name, column in table.extra.items()}}


def _take(X, rows):
    """Rows of a feature matrix, an array of texts or an on-disk view."""
    return X.rows(np.arange(X.shape[0] if hasattr(X, "shape") else len(X))[rows]) if hasattr(X, "rows") else X[rows]


def _curated_labels(cfg, spec, table, pool_rows, curated_rows, X_pool, X_curated):
    """The curated set's labels: the data's own, or `curated_set.oracle`'s answers. That oracle (simulated)
    sees the pool and the curated rows together, as it would the whole pool, with its own seed stream, so every
    arm of a seed gets the same answers."""
    if spec.get("oracle") is None:
        return table.y[curated_rows]
    from scipy import sparse

    from alexp.oracles.simulated import Simulated
    from alexp.seeds import stream

    rows = np.concatenate([pool_rows, curated_rows])
    stack = sparse.vstack if sparse.issparse(X_pool) else np.concatenate
    oracle = instantiate(cfg, "curated_set.oracle", truth=table.y[rows], rng=stream(cfg.seed, "curated_set", 1),
                         context=_context(table, rows), pool_features=stack([X_pool, X_curated]))
    if not isinstance(oracle, Simulated):
        raise AlexpError(f"curated_set.oracle must be a simulated oracle (it labels the set once, at the start); "
                         f"got {type(oracle).__name__}")
    return oracle.answers[len(pool_rows):]


@dataclass
class Outcome:
    """How a run ended: finished now, finished before (run again), or waiting for a human oracle's labels."""

    run_id: str
    name: str
    history: list[dict[str, float]] | None = None  # finished now: the metrics per evaluated round
    message: str | None = None  # finished before, or waiting: the whole story in one line
    stopped_by: str | None = None  # the stopping rule that ended it (stopping.enforce)
    final: dict[str, float] | None = None  # the last logged metrics (kappa, n_labels, ...); None while waiting

    @property
    def kappa(self) -> float | None:
        """Cohen's kappa against the gold test labels at the run's last label count (None while waiting)."""
        return None if self.final is None else self.final.get("kappa")

    @property
    def n_labels(self) -> int | None:
        """The number of labels the run ended with (None while waiting)."""
        n = None if self.final is None else self.final.get("n_labels")
        return None if n is None else int(n)

    def line(self, seconds: float) -> str:
        """One line for a sweep's terminal."""
        if self.history is None:
            return f"{self.name}: {self.message.removeprefix('alexp: ')}"
        return (f"{self.name}: kappa {self.kappa:.3f} at {self.n_labels} labels in {seconds:.0f} s"
                + (f", stopped by {self.stopped_by}" if self.stopped_by else ""))

    def table(self) -> str:
        """Kappa and the other metrics by label count, one row per evaluated round."""
        import polars as pl

        cols = ["n_labels", "kappa", "f1", "average_precision", "positives_labeled"]
        rows = pl.DataFrame(self.history).select(cols).with_columns(
            pl.col("n_labels", "positives_labeled").cast(pl.Int64),
            pl.col("kappa", "f1", "average_precision").round(3))
        with pl.Config(tbl_rows=-1, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
                       tbl_hide_dtype_separator=True):
            return str(rows)


def run(cfg: DictConfig) -> Outcome:
    """Check, build and run the config under MLflow tracking, one run per config: a lock on the run key makes a
    second process with the same config wait; a config whose run has finished is reported, not run again; an
    interrupted one continues from its checkpoint in `state_dir` and ends as if never stopped."""
    from alexp import faults, secrets, tracking
    from alexp.loop import LoopState
    from alexp.mlflow_view import run_color

    check(cfg)
    threads = job_threads(cfg.get("threads", "auto"))
    limit_threads(threads)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    key = run_key(resolved)
    checkpoint = _state_dir(cfg.state_dir) / f"{key}.npz"
    uri, experiment_name = cfg.tracking.uri, cfg.tracking.experiment_name
    with tracking.locked(checkpoint.with_suffix(".lock"), f"another process is running this config (run key "
                         f"{key}); waiting for it to finish"):
        found = tracking.find_run(uri, experiment_name, key)
        if found is not None and found.status == "FINISHED":
            _forget(checkpoint)  # left by a process killed after the run was marked finished
            _record(found.run_id)
            return Outcome(found.run_id, found.name, message=_finished_line(found), final=found.metrics)
        parts = build(cfg)
        _check_engine(cfg, parts)
        state = LoopState.load(checkpoint) if checkpoint.is_file() else None
        if state is not None and state.run_id and tracking.run_gone(uri, state.run_id):
            aside = checkpoint.with_name(f"{key}.deleted-run-{state.run_id}.npz")
            os.replace(checkpoint, aside)
            log.warning("the MLflow run %s of this config was deleted: starting it anew (its checkpoint, %s, is "
                        "kept as %s)", state.run_id, plural(state.n_labeled, "label"), aside)
            state = None
        if state is not None:
            rounds = parts.budget.rounds  # the round under way: the one asked, or the last one still to be scored
            current = state.round + (2 if state.pending.size or state.evaluated >= state.round else 1)
            if rounds is not None:
                current = min(current, rounds + 1)
            log.info("resuming from %s: %s so far, in round %d%s", checkpoint, plural(state.n_labeled, "label"),
                     current, f" of {rounds + 1}" if rounds is not None else "")
        run_id = state.run_id if state is not None else (found.run_id if found is not None else None)
        tags = {"alexp.run_key": key, "alexp.threads": str(threads),
                "mlflow.note.content": run_description(cfg, parts.budget),
                "mlflow.runColor": run_color(str(choices().get("acquisition")))}  # seeds of a strategy alike
        if _multirun():
            tags["alexp.sweep_dir"] = str(Path(HydraConfig.get().sweep.dir).resolve())  # groups a sweep's runs
        with tracking.tracked_run(uri, experiment_name, parts.run_name, params(cfg), tags, resolved,
                                  run_id=run_id) as tracker:
            state = state or LoopState.fresh(parts.n_pool)
            state.run_id = tracker.run_id
            _record(tracker.run_id)
            if not state.finished:
                engine = instantiate(cfg, "engine") if cfg.get("engine") is not None else None
                try:
                    state = parts.loop(cfg, tracker.log_metrics, checkpoint, engine).run(state)
                finally:
                    if engine is not None:
                        engine.close()
            else:  # killed after its last round: what the oracle journaled (labels' provenance) is still needed
                parts.oracle.keep_journal(checkpoint.with_suffix(".answers.jsonl"))
            if not state.finished:
                tracker.pause()
                return Outcome(tracker.run_id, parts.run_name, message=(
                    f"alexp: waiting for {plural(state.pending.size, 'label')}: "
                    f"{secrets.redact(parts.oracle.where())}; then run the same command again"))
            _log_final_state(tracker, state, parts.pool_ids, parts.oracle)
            parts.oracle.finish()
            faults.crash_point("final")
        _forget(checkpoint)
    return Outcome(tracker.run_id, parts.run_name, history=state.history, stopped_by=state.stopped_by,
                   final=state.history[-1])


def _check_engine(cfg: DictConfig, parts: Parts) -> None:
    """engine=dask scores pools on disk: an in-memory pool is refused by name."""
    from alexp.shards import is_disk

    if cfg.get("engine") is None:
        return
    if not is_disk(parts.X_pool):
        raise AlexpError(f"engine={choices().get('engine')}: the engine scores pools on disk, and data="
                         f"{choices().get('data')} is in memory; use data=shards, data=synthetic_disk or "
                         "features.on_disk=true, or drop engine= (a pool in memory is scored here)")


def _forget(checkpoint: Path) -> None:
    """Remove a finished run's checkpoint and the journal beside it (oracle=tiers keeps what it bought there until
    the run is marked finished: a rerun after a kill before that rebuilds the labels' provenance from it)."""
    checkpoint.unlink(missing_ok=True)
    checkpoint.with_suffix(".answers.jsonl").unlink(missing_ok=True)


def _record(run_id: str) -> None:
    """In a sweep, note the run this job stands for in the sweep's folder (`sweep.record_run`)."""
    if _multirun():
        from alexp.sweep import record_run

        record_run(HydraConfig.get().sweep.dir, run_id)


def _multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _finished_line(found) -> str:
    kappa, n = found.metrics.get("kappa"), found.metrics.get("n_labels")
    return (f"already finished: run {found.run_id} ({found.name})"
            + (f", kappa {kappa:.3f} at {n:.0f} labels" if kappa is not None and n is not None else "")
            + "; change the config or seed for a new run, or delete that run to redo it")


def run_name(cfg: DictConfig) -> str:
    """What a run compares first, then what it ran on: 'margin-noisy-seed3-davidson_hate-minilm' (a data file is
    named by its file name), so that a name cut short in MLflow's run list still says strategy, oracle and seed."""
    c = choices()
    return "-".join(str(part) for part in (c.get("acquisition"), c.get("oracle"), f"seed{cfg.seed}", _data_name(cfg),
                                           c.get("features")) if part is not None)


def _data_name(cfg: DictConfig) -> str | None:
    choice = choices().get("data")
    path = cfg.data.get("path") if choice == "file" else None
    return Path(str(path)).stem if path else choice


def run_description(cfg: DictConfig, budget) -> str:
    """The run in one paragraph (MLflow shows it as the run's description)."""
    c = choices()
    overrides = [o for o in (HydraConfig.get().overrides.task if HydraConfig.initialized() else [])
                 if o.lstrip("+~").split("=")[0].split(".")[0] not in NOT_PARAMS]
    return (f"Active learning on **{_data_name(cfg)}** ({c.get('features')} features, {c.get('model')} model): "
            f"**{c.get('acquisition')}** picks what the **{c.get('oracle')}** oracle labels, "
            f"{budget.describe()} (budget {c.get('budget')}), seed {cfg.seed}. Kappa against the gold test labels "
            "is logged at each label count (step = number of labels)."
            + (f" Overrides: `{' '.join(overrides)}`." if overrides else ""))


def _state_dir(setting: str) -> Path:
    path = Path(setting)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise AlexpError(f"state_dir={setting!r} is a file, not a folder; point state_dir (or ALEXP_STATE_DIR) "
                         "at a folder") from None
    except PermissionError:
        raise AlexpError(f"state_dir={setting!r} cannot be created here (permission denied); point state_dir "
                         "(or ALEXP_STATE_DIR) at a writable folder") from None
    check_writable(path, "state_dir")
    return path


def job_threads(setting: Any, cores: int | None = None) -> int:
    """BLAS and torch threads for this job: `setting`, or for `auto` the cores shared among the jobs that run
    at once, so that jobs x threads <= cores: all cores for a single run or a serial sweep, cores // n_jobs
    under the joblib launcher, and `cpus_per_task` (else 1) under submitit, which starts every job at once."""
    cores = cores or len(os.sched_getaffinity(0))
    if setting != "auto":
        if not isinstance(setting, int) or isinstance(setting, bool) or setting < 1:
            raise AlexpError(f"threads must be a positive number or auto, got {setting!r}")
        return setting
    if not _multirun():
        return cores
    launcher = HydraConfig.get().launcher
    target = str(launcher.get("_target_", ""))
    if "joblib" in target.lower():
        n_jobs = int(launcher.get("n_jobs") or 1)
        return max(1, cores // (n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)))
    if "submitit" in target.lower():
        return int(launcher.get("cpus_per_task") or 1)
    return cores


def limit_threads(threads: int) -> None:
    """Cap the thread pools of BLAS/OpenMP (threadpoolctl) and torch at `threads`, now and for later imports."""
    from threadpoolctl import threadpool_limits

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    threadpool_limits(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _log_final_state(tracker, state, pool_ids, oracle=None) -> None:
    """Final state (for replay) and a readable table of the labeled items as artifacts (logging twice is fine);
    an oracle of several sources (oracle=tiers) adds each label's provenance: its tier, price and every answer."""
    import tempfile

    import polars as pl

    rows = state.selected()
    with tempfile.TemporaryDirectory() as tmp:
        state.save(Path(tmp) / "state.npz")
        provenance = oracle.provenance(rows) if hasattr(oracle, "provenance") else {}
        pl.DataFrame({"id": pool_ids[rows], "round": state.labeled_in[rows], "label": state.labels[rows],
                      **provenance}).write_parquet(Path(tmp) / "labeled.parquet")
        tracker.log_artifacts(Path(tmp))
