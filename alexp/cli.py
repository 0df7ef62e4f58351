"""The `alexp` command: Hydra's entry point and what a run prints. The work is alexp.runner's.

The only module that runs `@hydra.main`. Heavy libraries (sklearn, torch, transformers, mlflow) are imported
inside functions so that `alexp --help` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from alexp import lifeline, plural
from alexp.errors import UserError, job_lost, user_error
from alexp.lifeline import Stopped

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
    command = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in ("report", "ui") else None
    # SIGTERM and SIGINT raise Stopped (alexp ui stops its server on them itself): one line, not a traceback
    with lifeline.stopping_on_signals() if command != "ui" else contextlib.nullcontext():
        try:
            if command == "report":
                from alexp import report

                report.main(sys.argv[2:])
            elif command == "ui":
                from alexp import ui

                ui.main(sys.argv[2:])
            else:
                experiment()
        except (Exception, UserError, Stopped) as e:  # noqa: BLE001 - stops, user errors (one line), bugs (raised)
            stopped = lifeline.stop_behind(e)  # a Stopped, or an error a signal caused (in Hydra's composition too)
            if stopped is not None:
                lifeline.handled()
                print(f"alexp: stopped by {stopped.name}" + (f" (alexp {command}; run it again for its output)"
                      if command else "; every label accepted so far is saved: run the same command again to "
                      "continue"), file=sys.stderr, flush=True)
                sys.exit(stopped.exit_code)
            lost = job_lost(e)
            if lost is not None:
                print(f"alexp: {lost}", file=sys.stderr)
                sys.exit(1)
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
        os.environ["ALEXP_SWEEP_PID"] = str(os.getpid())  # worker processes end with this one (alexp.lifeline)
        tracking.init_store(config.tracking.uri, config.tracking.experiment_name)
        board, total = sweep.Board(config.hydra.sweep.dir), sweep.total_jobs(config)
        board.begin(total)
        sweep.FoldJobListing(total, list(config.hydra.overrides.task), config.hydra.sweep.dir).install()
        sweep.Heartbeat(board).start()
        twins = sweep.coinciding(config)
        if twins:
            print(sweep.coinciding_line(twins), flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from alexp import sweep

        sweep.Heartbeat.stop_all()
        board = sweep.Board(config.hydra.sweep.dir)
        print(f"sweep done: {plural(board.done(), 'job')} in {config.hydra.sweep.dir}", flush=True)
        print(next_steps(config.tracking.uri, config.tracking.experiment_name, config.hydra.sweep.dir), flush=True)


def run(cfg: DictConfig) -> None:
    """One job: alexp.runner.run, with what Hydra wrote masked and a sweep's job board kept. A single run ends
    with its kappa table and what to do next; a job of a sweep ends with one line (no bars: its siblings share
    the terminal)."""
    from alexp import lifeline, runner, secrets, sweep

    if os.environ.get("ALEXP_SWEEP_PID"):  # a worker process of a sweep: it ends with the sweep's process
        lifeline.die_with(int(os.environ["ALEXP_SWEEP_PID"]))
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
        with lifeline.stopping_on_signals():
            outcome = runner.run(cfg)
    except BaseException as e:
        if job is not None:
            job[0].failed(job[1])  # its worker process lives on: it must not count as running
        stopped = lifeline.stop_behind(e)
        if stopped is not None and stopped is not e:  # a signal a library turned into its own error: a stop
            raise stopped from None
        raise
    if job is not None:
        job[0].finished(job[1], outcome.line(time.monotonic() - started))
    else:
        show(outcome, cfg.tracking.uri, cfg.tracking.experiment_name)


def show(outcome, uri: str, experiment: str) -> None:
    """The whole story of a single run: its table of kappa by label count and the next steps."""
    if outcome.history is None:
        print(outcome.message)
        return
    print(f"run {outcome.run_id} ({outcome.name}): kappa by label count")
    print(outcome.table())
    if outcome.stopped_by:
        print(f"stopped by the rule {outcome.stopped_by} at {outcome.n_labels} labels (stopping.enforce=true)")
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
