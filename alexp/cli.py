"""The `alexp` command: compose the Hydra config, check it, build the parts, run the loop, track it.

The only module that imports hydra. Heavy libraries (sklearn, torch, transformers, mlflow) are imported inside
functions so that `alexp --help` stays fast.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf

from alexp import AlexpError

log = logging.getLogger("alexp")

GROUPS = ("data", "features", "model", "acquisition", "oracle", "budget")
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")  # the checkout's conf/ (editable install)
# Arguments alexp passes at instantiation, not set in YAML.
RUNTIME_ARGS = {"oracle": ("truth", "rng", "context", "pool_features"), "scout": ("features",)}
# Settings that change neither a run's results (beyond float rounding) nor where it is logged.
NOT_IN_RUN_KEY = ("progress", "state_dir", "threads")
NOT_PARAMS = ("tracking", *NOT_IN_RUN_KEY)  # overrides not worth an MLflow param


def main() -> None:
    """`alexp [overrides]` runs an experiment (Hydra); `alexp report [options]` summarises runs (see --help)."""
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        from alexp import report

        report.main(sys.argv[2:])
    else:
        experiment()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def experiment(cfg: DictConfig) -> None:
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        run(cfg)
    except (AlexpError, InvalidParameterError) as e:
        print(f"alexp: error: {e}", file=sys.stderr)
        sys.exit(2)


class InitTrackingStore(Callback):
    """Hydra callback: create the tracking store and experiment once, before a sweep's jobs start."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from alexp import tracking

        tracking.init_store(config.tracking.uri, config.tracking.experiment_name)


def run(cfg: DictConfig) -> None:
    """One experiment: every group checked before any work, then data -> features -> loop -> tracking."""
    from alexp import data, tracking
    from alexp.loop import Loop, LoopState, stream, stream_int

    threads = job_threads(cfg.get("threads", "auto"))
    limit_threads(threads)
    groups = [g for g in (*GROUPS, "scout") if cfg.get(g) is not None]
    for group in groups:
        check_node(cfg[group], group, skip=RUNTIME_ARGS.get(group, ()))
    source, features, model = build(cfg, "data"), build(cfg, "features"), build(cfg, "model")
    acquisition, budget = build(cfg, "acquisition"), build(cfg, "budget")
    scout = build(cfg, "scout", features=features) if "scout" in groups else None
    if budget.initial == 0 and scout is None:
        raise AlexpError("budget: initial=0 starts from a scout's predictions; add scout=zero_shot "
                         "(or set budget.initial to a number of labels)")

    table = _prefixed("data", source.load)
    pool_rows, test_rows = data.split(table, source.test_size, stream_int(cfg.seed, "split"))
    budget.check_pool(len(pool_rows))
    raw_text = getattr(model, "accepts_text", False)
    X_pool, X_test = featurize(features, table, pool_rows, test_rows, raw_text)
    if raw_text:
        check_reads_text(acquisition, type(model).__name__)
    if getattr(acquisition, "needs_samples", False) and not hasattr(model, "sample_proba"):
        raise AlexpError(f"acquisition: {type(acquisition).__name__} needs posterior samples, and "
                         f"{type(model).__name__} draws none; use model=mlp_head or model=transformer")
    context = {"id": table.ids[pool_rows], **({"text": table.inputs[pool_rows]} if table.is_text else {}),
               **{name: column[pool_rows] for name, column in table.extra.items()}}
    oracle = build(cfg, "oracle", truth=table.y[pool_rows], rng=stream(cfg.seed, "oracle"), context=context,
                   pool_features=X_pool)

    resolved = OmegaConf.to_container(cfg, resolve=True)
    key = run_key(resolved)
    checkpoint = Path(cfg.state_dir) / f"{key}.npz"
    state = _unfinished_state(checkpoint)
    choices = _choices()
    run_name = f"{choices.get('data')}-{choices.get('acquisition')}-{choices.get('oracle')}-seed{cfg.seed}"
    tags = {"alexp.run_key": key, "alexp.threads": str(threads)}
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        tags["alexp.sweep_dir"] = HydraConfig.get().sweep.dir  # groups the runs of one sweep
    with tracking.tracked_run(cfg.tracking.uri, cfg.tracking.experiment_name, run_name, run_params(cfg),
                              tags, resolved, run_id=state.run_id if state else None) as tracker:
        state = state or LoopState.fresh(len(pool_rows))
        state.run_id = tracker.run_id
        loop = Loop(X_pool, X_test, table.y[test_rows], model, acquisition, oracle, budget, cfg.seed,
                    truth=table.y[pool_rows], log_metrics=tracker.log_metrics, checkpoint=checkpoint,
                    progress=cfg.progress, scout=scout)
        state = loop.run(state)
        if not state.finished:
            tracker.pause()
            where = oracle.where()
            print(f"alexp: waiting for {state.pending.size} labels: {where}; then run the same command again")
            return
        _log_final_state(tracker, state, table.ids[pool_rows], checkpoint)
    print(f"run {tracker.run_id} ({run_name}): kappa by label count")
    print(_curve_table(state.history))


def job_threads(setting: Any, cores: int | None = None) -> int:
    """BLAS and torch threads for this job: `setting`, or for `auto` the cores shared among the jobs that run
    at once, so that jobs x threads <= cores: all cores for a single run or a serial sweep, cores // n_jobs
    under the joblib launcher, and `cpus_per_task` (else 1) under submitit, which starts every job at once."""
    cores = cores or len(os.sched_getaffinity(0))
    if setting != "auto":
        if not isinstance(setting, int) or isinstance(setting, bool) or setting < 1:
            raise AlexpError(f"threads must be a positive number or auto, got {setting!r}")
        return setting
    if not (HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN):
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


def _unfinished_state(checkpoint: Path):
    """The loop state of an interrupted run with this config, or None to start afresh."""
    from alexp.loop import LoopState

    if not checkpoint.is_file():
        return None
    state = LoopState.load(checkpoint)
    if state.finished:
        return None
    log.info("resuming from %s at round %d (%d labels)", checkpoint, state.round, state.n_labeled)
    return state


def check_node(node: Any, where: str, skip: tuple[str, ...] = ()) -> None:
    """Raise AlexpError for a `_target_` that cannot be imported, a key its signature lacks, or a `???` value.

    The constructor signature is the schema: a misspelt key fails here, before any data is loaded.
    """
    if isinstance(node, ListConfig):
        for i, item in enumerate(node):
            check_node(item, f"{where}[{i}]")
        return
    if not isinstance(node, DictConfig):
        return
    for k in node:
        if OmegaConf.is_missing(node, k):
            raise AlexpError(f"{where}.{k} is required: set it on the command line, e.g. {where}.{k}=...")
    target = node.get("_target_")
    if target is not None:
        params = _signature_params(target, where)
        if params is not None:
            for k in node:
                if not str(k).startswith("_") and k not in params:
                    close = difflib.get_close_matches(str(k), params, n=1)
                    hint = f"; did you mean {where}.{close[0]}?" if close else ""
                    raise AlexpError(f"{where}: unknown key {k!r} for {target}{hint} "
                                     f"(valid keys: {', '.join(p for p in params if p not in skip)})")
    for k in node:
        if not OmegaConf.is_missing(node, k):
            check_node(node[k], f"{where}.{k}")


def _signature_params(target: str, where: str) -> list[str] | None:
    """Names of the keyword parameters of `target`, or None when it takes **kwargs."""
    from hydra.utils import get_object

    try:
        obj = get_object(target)
    except Exception as e:
        raise AlexpError(f"{where}: cannot import _target_ {target!r} ({e})") from None
    params = inspect.signature(obj).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def build(cfg: DictConfig, group: str, **runtime: Any) -> Any:
    """Instantiate config group `group`, reporting its validation errors as 'group: problem'. Runtime arguments
    go only to a constructor that names them (an oracle that needs no truth gets none)."""
    params = _signature_params(cfg[group]["_target_"], group) if runtime and "_target_" in cfg[group] else None
    if params is not None:
        runtime = {k: v for k, v in runtime.items() if k in params}
    return _prefixed(group, lambda: hydra.utils.instantiate(cfg[group], _convert_="all", **runtime))


def _prefixed(group: str, fn):
    from hydra.errors import InstantiationException

    try:
        return fn()
    except AlexpError as e:
        raise AlexpError(f"{group}: {e}") from None
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, AlexpError):
            raise AlexpError(f"{group}: {cause}") from None
        raise AlexpError(f"{group}: {cause or e}") from None


def featurize(features, table, pool_rows, test_rows, raw_text: bool = False):
    """Fit the representation on the pool's inputs only, then transform every row once; -> (X_pool, X_test).

    With `raw_text` (a model that reads text, such as model=transformer) the texts themselves are the inputs."""
    from alexp import shards

    kind = "text" if table.is_text else "numeric"
    identity = type(features).__name__ == "FunctionTransformer" and features.func is None
    if raw_text:
        if not table.is_text:
            raise AlexpError("model: this model reads raw texts and the data is numeric; use a text dataset, or "
                             "model=logreg / mlp_head for numeric features")
        if not identity:
            raise AlexpError(f"features: the model reads raw texts itself; use features=identity "
                             f"(got {type(features).__name__})")
        return table.inputs[pool_rows], table.inputs[test_rows]
    if shards.is_disk(table.inputs):  # views that stay on disk: each round streams them
        if not identity:
            raise AlexpError(f"features: an on-disk pool stores its features already; use features=identity "
                             f"(got {type(features).__name__})")
        return table.inputs.rows(pool_rows), table.inputs.rows(test_rows)
    try:
        features.fit(table.inputs[pool_rows])
        X = features.transform(table.inputs)
    except (AttributeError, TypeError, ValueError) as e:
        raise AlexpError(f"features: {type(features).__name__} cannot transform {kind} inputs ({e}); "
                         "use features=identity for numeric data, tfidf or minilm for text") from None
    if shards.is_disk(X):  # embeddings written to disk by the features step (e.g. minilm with on_disk=true)
        return X.rows(pool_rows), X.rows(test_rows)
    if getattr(getattr(X, "dtype", None), "kind", None) == "O":
        raise AlexpError(f"features: {type(features).__name__} left the inputs as text; "
                         "use features=tfidf or features=minilm for text data")
    return X[pool_rows], X[test_rows]


def check_reads_text(acquisition, model_name: str) -> None:
    """Strategies that compare feature vectors cannot run on raw texts: say which ones can."""
    for strategy in (acquisition, getattr(acquisition, "base", None)):
        if getattr(strategy, "reads_features", False):
            raise AlexpError(f"acquisition: {type(strategy).__name__} compares feature vectors, and {model_name} "
                             "reads raw texts; use an uncertainty, committee or BALD strategy (entropy, margin, "
                             "vote_entropy, bald, ...) or features=minilm with model=mlp_head")


def run_key(resolved: dict) -> str:
    """Hash of the config that determines a run's results and its MLflow experiment: the same config resumes
    the same checkpoint (and MLflow run); the same experiment logged to another store or experiment does not."""
    content = {k: v for k, v in resolved.items() if k not in NOT_IN_RUN_KEY}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_params(cfg: DictConfig) -> dict[str, str]:
    """MLflow params: each group's chosen option, the seed, and the job's overrides that change results."""
    params = {g: v for g, v in _choices().items() if v is not None}
    params["seed"] = str(cfg.seed)
    if HydraConfig.initialized():
        for override in HydraConfig.get().overrides.task:
            k, _, v = override.lstrip("+~").partition("=")
            if k not in params and k.split(".")[0] not in NOT_PARAMS:
                params[k] = v
    return params


def _choices() -> dict[str, str | None]:
    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices.items()
    # A nested choice is keyed 'group@package' (e.g. acquisition@acquisition.base): name it by its package.
    return {g.split("@")[-1]: v for g, v in choices if not g.startswith("hydra")}


def _log_final_state(tracker, state, pool_ids, checkpoint: Path) -> None:
    """Final state (for replay) and a readable table of the labeled items as artifacts; then drop the checkpoint."""
    import tempfile

    import polars as pl

    rows = state.selected()
    with tempfile.TemporaryDirectory() as tmp:
        state.save(Path(tmp) / "state.npz")
        pl.DataFrame({"id": pool_ids[rows], "round": state.labeled_in[rows], "label": state.labels[rows]}
                     ).write_parquet(Path(tmp) / "labeled.parquet")
        tracker.log_artifacts(Path(tmp))
    checkpoint.unlink(missing_ok=True)


def _curve_table(history: list[dict[str, float]]):
    import polars as pl

    pl.Config.set_tbl_rows(-1)
    pl.Config.set_tbl_hide_dataframe_shape(True)
    cols = ["n_labels", "kappa", "f1", "average_precision", "positives_labeled"]
    return pl.DataFrame(history).select(cols).with_columns(
        pl.col("n_labels", "positives_labeled").cast(pl.Int64), pl.col("kappa", "f1", "average_precision").round(3))
