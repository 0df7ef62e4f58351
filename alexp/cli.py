"""The `alexp` command: compose the Hydra config, check it, build the parts, run the loop, track it.

The only module that runs Hydra. Heavy libraries (sklearn, torch, transformers, mlflow) are imported inside
functions so that `alexp --help` stays fast.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf

from alexp import AlexpError, plural
from alexp.errors import UserError, user_error

log = logging.getLogger("alexp")

GROUPS = ("data", "features", "model", "acquisition", "oracle", "budget")
# Arguments alexp passes at instantiation, not set in YAML.
RUNTIME_ARGS = {"oracle": ("truth", "rng", "context", "pool_features"), "scout": ("features",)}
# Settings that change neither a run's results (beyond float rounding) nor where it is logged.
NOT_IN_RUN_KEY = ("progress", "state_dir", "threads")
NOT_PARAMS = ("tracking", *NOT_IN_RUN_KEY)  # overrides not worth an MLflow param
QUIET = ("-h", "--help", "--hydra-help", "-c", "--cfg", "--info", "--version", "--resolve", "-sc",
         "--shell-completion", "report", "ui")  # arguments that print something at once, with no run


def main() -> None:
    """`alexp [overrides]` runs an experiment (Hydra); `alexp report [options]` summarises runs; `alexp ui` shows
    them in the MLflow UI (each with --help).

    A mistake in the command line, the config or the data ends the process with exit code 2 and one line
    that names the setting or file and the fix; anything else is a bug and shows its traceback."""
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors instead of printing them; see user_error
    if sys.stdout.isatty() and not any(a.split("=")[0] in QUIET for a in sys.argv[1:]):
        print("alexp: starting (loading libraries and data) ...", flush=True)  # the imports take seconds
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # `_target_: mymodule.MyStrategy` finds modules in the working folder
    try:
        if len(sys.argv) > 1 and sys.argv[1] == "report":
            from alexp import report

            report.main(sys.argv[2:])
        elif len(sys.argv) > 1 and sys.argv[1] == "ui":
            from alexp import ui

            ui.main(sys.argv[2:])
        else:
            experiment()
    except (Exception, UserError) as e:  # noqa: BLE001 - sorted into user errors (one line) and bugs (re-raised)
        message = str(e) if isinstance(e, UserError) else user_error(e)
        if message is None:
            raise
        from alexp.secrets import redact

        print(f"alexp: error: {redact(message)}", file=sys.stderr)
        sys.exit(2)


@hydra.main(version_base="1.3", config_path="pkg://alexp.conf", config_name="config")
def experiment(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except Exception as e:
        message = user_error(e)
        if message is None:
            raise
        raise UserError(message) from None


class InitTrackingStore(Callback):
    """Hydra callback in the launching process: create the tracking store and experiment once, before a sweep's
    jobs start (a fresh sqlite store races), set up the sweep's job board, and say what to do when it is done."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from alexp import secrets, sweep, tracking

        secrets.guard()  # the launcher logs each job's overrides next
        tracking.init_store(config.tracking.uri, config.tracking.experiment_name)
        sweep.Board(config.hydra.sweep.dir).begin(sweep.total_jobs(config))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from alexp import sweep

        board = sweep.Board(config.hydra.sweep.dir)
        print(f"sweep done: {plural(board.done(), 'job')} in {config.hydra.sweep.dir}", flush=True)
        print(next_steps(config.tracking.uri, config.tracking.experiment_name, config.hydra.sweep.dir), flush=True)


def run(cfg: DictConfig) -> None:
    """One experiment: every setting checked before any work, then data -> features -> loop -> tracking.

    One run per config: a lock on the run key makes a second process with the same config wait, and a config
    whose run has finished is reported, not run again. A single run ends with its kappa table and what to do
    next; a job of a sweep ends with one line (no bars: its siblings share the terminal)."""
    from alexp import secrets, sweep

    job = None
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        secrets.guard(hydra_cfg.runtime.output_dir, *([hydra_cfg.sweep.dir] if multirun else []))
        if multirun:
            job = (sweep.Board(hydra_cfg.sweep.dir), int(hydra_cfg.job.num))
            job[0].started(job[1])
            cfg.progress = False
    started = time.monotonic()
    try:
        outcome = _run(cfg)
    except BaseException:
        if job is not None:
            job[0].failed(job[1])  # its worker process lives on: it must not count as running
        raise
    if job is not None:
        job[0].finished(job[1], outcome.line(time.monotonic() - started))
    else:
        outcome.show(cfg.tracking.uri, cfg.tracking.experiment_name)


@dataclass
class Outcome:
    """How a run ended: finished now, finished before, or waiting for a human oracle's labels."""

    run_id: str
    name: str
    history: list[dict[str, float]] | None = None  # finished now: the metrics per round
    message: str | None = None  # finished before, or waiting: the whole story
    stopped_by: str | None = None  # the stopping rule that ended it (stopping.enforce)

    def line(self, seconds: float) -> str:
        """One line for a sweep's terminal."""
        if self.history is None:
            return f"{self.name}: {self.message.removeprefix('alexp: ')}"
        last = self.history[-1]
        return (f"{self.name}: kappa {last['kappa']:.3f} at {last['n_labels']:.0f} labels in {seconds:.0f} s"
                + (f", stopped by {self.stopped_by}" if self.stopped_by else ""))

    def show(self, uri: str, experiment: str) -> None:
        """The whole story for a single run: its table of kappa by label count and the next steps."""
        if self.history is None:
            print(self.message)
            return
        print(f"run {self.run_id} ({self.name}): kappa by label count")
        print(_curve_table(self.history))
        if self.stopped_by:
            print(f"stopped by the rule {self.stopped_by} at {self.history[-1]['n_labels']:.0f} labels "
                  "(stopping.enforce=true)")
        print(next_steps(uri, experiment))


def next_steps(uri: str, experiment: str, sweep_dir: str | None = None) -> str:
    """What to run next to look at the results (with the store and experiment options when not the defaults)."""
    import shlex

    from alexp.secrets import redact

    options = "".join([f" --tracking-uri {shlex.quote(redact(uri))}" if uri != "sqlite:///mlflow.db" else "",
                       f" --experiment {shlex.quote(experiment)}" if experiment != "alexp" else ""])
    report = f"alexp report{options}" + (f" --sweep-dir {sweep_dir}" if sweep_dir else "")
    ui_command = f"alexp ui{options}"
    width = max(len(report), len(ui_command)) if len(report) <= 60 else 0  # long commands: no alignment
    return (f"next: {ui_command:<{width}}  # the runs and their curves in the MLflow UI\n"
            f"      {report:<{width}}  # curves over seeds with intervals, labels-to-target, reductions")


def _run(cfg: DictConfig) -> Outcome:
    from alexp import faults, secrets, tracking, ui
    from alexp.loop import LoopState

    check_seed(cfg.seed)
    threads = job_threads(cfg.get("threads", "auto"))
    limit_threads(threads)
    for group in (g for g in (*GROUPS, "scout", "stopping") if cfg.get(g) is not None):
        check_node(cfg[group], group, skip=RUNTIME_ARGS.get(group, ()))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    key = run_key(resolved)
    state_dir = _state_dir(cfg.state_dir)
    uri, experiment_name = cfg.tracking.uri, cfg.tracking.experiment_name
    tracking.check_uri(uri)
    checkpoint = state_dir / f"{key}.npz"
    with tracking.locked(state_dir / f"{key}.lock", f"another process is running this config (run key {key}); "
                         "waiting for it to finish"):
        found = tracking.find_run(uri, experiment_name, key)
        if found is not None and found.status == "FINISHED":
            checkpoint.unlink(missing_ok=True)  # left by a process killed after the run was marked finished
            return Outcome(found.run_id, found.name, message=_finished_line(found))
        parts = _build(cfg)
        state = LoopState.load(checkpoint) if checkpoint.is_file() else None
        if state is not None:
            rounds = parts.budget.rounds
            log.info("resuming from %s: %s so far, in round %d%s", checkpoint, plural(state.n_labeled, "label"),
                     state.round + 2, f" of {rounds + 1}" if rounds is not None else "")
        run_id = state.run_id if state is not None else (found.run_id if found is not None else None)
        tags = {"alexp.run_key": key, "alexp.threads": str(threads),
                "mlflow.note.content": run_description(cfg, parts.budget),
                "mlflow.runColor": ui.run_color(str(_choices().get("acquisition")))}  # seeds of a strategy alike
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            tags["alexp.sweep_dir"] = str(Path(HydraConfig.get().sweep.dir).resolve())  # groups a sweep's runs
        with tracking.tracked_run(uri, experiment_name, parts.run_name, run_params(cfg), tags, resolved,
                                  run_id=run_id) as tracker:
            state = state or LoopState.fresh(parts.n_pool)
            state.run_id = tracker.run_id
            loop = parts.loop(cfg, tracker.log_metrics, checkpoint)
            if not state.finished:
                state = loop.run(state)
            if not state.finished:
                tracker.pause()
                return Outcome(tracker.run_id, parts.run_name, message=(
                    f"alexp: waiting for {plural(state.pending.size, 'label')}: "
                    f"{secrets.redact(parts.oracle.where())}; then run the same command again"))
            parts.oracle.finish()
            _log_final_state(tracker, state, parts.pool_ids)
            faults.crash_point("final")
        checkpoint.unlink(missing_ok=True)
    return Outcome(tracker.run_id, parts.run_name, history=state.history, stopped_by=state.stopped_by)



def _finished_line(found) -> str:
    kappa, n = found.metrics.get("kappa"), found.metrics.get("n_labels")
    return (f"already finished: run {found.run_id} ({found.name})"
            + (f", kappa {kappa:.3f} at {n:.0f} labels" if kappa is not None and n is not None else "")
            + "; change the config or seed for a new run, or delete that run to redo it")


@dataclass
class Parts:
    """What one run is made of, built from its config."""

    table: Any
    pool_rows: Any
    test_rows: Any
    X_pool: Any
    X_test: Any
    model: Any
    acquisition: Any
    budget: Any
    oracle: Any
    scout: Any
    stopping: Any
    run_name: str

    @property
    def n_pool(self) -> int:
        return len(self.pool_rows)

    @property
    def pool_ids(self):
        return self.table.ids[self.pool_rows]

    def loop(self, cfg: DictConfig, log_metrics, checkpoint: Path):
        from alexp.loop import Loop

        return Loop(self.X_pool, self.X_test, self.table.y[self.test_rows], self.model, self.acquisition,
                    self.oracle, self.budget, cfg.seed, truth=self.table.y[self.pool_rows],
                    log_metrics=log_metrics, checkpoint=checkpoint, progress=cfg.progress, scout=self.scout,
                    stopping=self.stopping)


def _build(cfg: DictConfig) -> Parts:
    """Build every part, checking that they fit together (data vs budget, model vs strategy) before any work."""
    from alexp import data
    from alexp.acquisition import check_compatible
    from alexp.features import featurize
    from alexp.loop import stream, stream_int

    source, features, model = build(cfg, "data"), build(cfg, "features"), build(cfg, "model")
    acquisition, budget = build(cfg, "acquisition"), build(cfg, "budget")
    scout = build(cfg, "scout", features=features) if cfg.get("scout") is not None else None
    stopping = build(cfg, "stopping") if cfg.get("stopping") is not None else None
    if budget.initial == 0 and scout is None:
        raise AlexpError("budget: initial=0 starts from a scout's predictions; add scout=zero_shot "
                         "(or set budget.initial to a number of labels)")
    check_compatible(acquisition, model)
    table = _prefixed("data", source.load)
    data.check_classes(table)
    pool_rows, test_rows = data.split(table, source.test_size, stream_int(cfg.seed, "split"))
    budget.check_pool(len(pool_rows))
    X_pool, X_test = featurize(features, table, pool_rows, test_rows, getattr(model, "accepts_text", False))
    context = {"id": table.ids[pool_rows], **({"text": table.inputs[pool_rows]} if table.is_text else {}),
               **{name: column[pool_rows] for name, column in table.extra.items()}}
    oracle = build(cfg, "oracle", truth=table.y[pool_rows], rng=stream(cfg.seed, "oracle"), context=context,
                   pool_features=X_pool)
    return Parts(table, pool_rows, test_rows, X_pool, X_test, model, acquisition, budget, oracle, scout, stopping,
                 run_name(cfg))


def run_name(cfg: DictConfig) -> str:
    """What a run compares first, then what it ran on: 'margin-noisy-seed3-davidson_hate-minilm' (a data file is
    named by its file name), so that a name cut short in MLflow's run list still says strategy, oracle and seed."""
    c = _choices()
    return "-".join(str(part) for part in (c.get("acquisition"), c.get("oracle"), f"seed{cfg.seed}", _data_name(cfg),
                                           c.get("features")) if part is not None)


def _data_name(cfg: DictConfig) -> str | None:
    choice = _choices().get("data")
    path = cfg.data.get("path") if choice == "file" else None
    return Path(str(path)).stem if path else choice


def run_description(cfg: DictConfig, budget) -> str:
    """The run in one paragraph (MLflow shows it as the run's description)."""
    c = _choices()
    overrides = [o for o in (HydraConfig.get().overrides.task if HydraConfig.initialized() else [])
                 if o.lstrip("+~").split("=")[0].split(".")[0] not in NOT_PARAMS]
    return (f"Active learning on **{_data_name(cfg)}** ({c.get('features')} features, {c.get('model')} model): "
            f"**{c.get('acquisition')}** picks what the **{c.get('oracle')}** oracle labels, "
            f"{budget.describe()} (budget {c.get('budget')}), seed {cfg.seed}. Kappa against the gold test labels "
            "is logged at each label count (step = number of labels)."
            + (f" Overrides: `{' '.join(overrides)}`." if overrides else ""))


def check_seed(seed: Any) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise AlexpError(f"seed must be a non-negative integer, got {seed!r}; e.g. seed=0 (sweep: -m seed=0,1,2)")


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


def run_key(resolved: dict) -> str:
    """Hash of the config that determines a run's results and its MLflow experiment: the same config resumes
    the same checkpoint (and MLflow run); the same experiment logged to another store or experiment does not."""
    content = {k: v for k, v in resolved.items() if k not in NOT_IN_RUN_KEY
               and not (k == "stopping" and v is None)}  # runs from before stopping rules keep their key
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_params(cfg: DictConfig) -> dict[str, str]:
    """MLflow params: each group's chosen option, the seed, and the job's overrides that change results."""
    params = {g: v for g, v in _choices().items() if v is not None}
    params["seed"] = str(cfg.seed)
    if HydraConfig.initialized():
        overrides = {}
        for override in HydraConfig.get().overrides.task:  # a key set twice: the last value is the one used
            k, _, v = override.lstrip("+~").partition("=")
            if k.split(".")[0] not in NOT_PARAMS:
                overrides[k] = re.sub(r"\\(.)", r"\1", v)  # as typed: a sweep's job gets its values escaped
        params.update({k: v for k, v in overrides.items() if k not in params})
    return params


def _choices() -> dict[str, str | None]:
    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices.items()
    # A nested choice is keyed 'group@package' (e.g. acquisition@acquisition.base): name it by its package.
    return {g.split("@")[-1]: v for g, v in choices if not g.startswith("hydra")}


def _log_final_state(tracker, state, pool_ids) -> None:
    """Final state (for replay) and a readable table of the labeled items as artifacts (logging twice is fine)."""
    import tempfile

    import polars as pl

    rows = state.selected()
    with tempfile.TemporaryDirectory() as tmp:
        state.save(Path(tmp) / "state.npz")
        pl.DataFrame({"id": pool_ids[rows], "round": state.labeled_in[rows], "label": state.labels[rows]}
                     ).write_parquet(Path(tmp) / "labeled.parquet")
        tracker.log_artifacts(Path(tmp))


def _curve_table(history: list[dict[str, float]]) -> str:
    import polars as pl

    cols = ["n_labels", "kappa", "f1", "average_precision", "positives_labeled"]
    table = pl.DataFrame(history).select(cols).with_columns(
        pl.col("n_labels", "positives_labeled").cast(pl.Int64), pl.col("kappa", "f1", "average_precision").round(3))
    with pl.Config(tbl_rows=-1, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
                   tbl_hide_dtype_separator=True):
        return str(table)
