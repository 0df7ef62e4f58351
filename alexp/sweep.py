"""What a sweep (`alexp -m ...`) prints: one line per finished job and a running count, never a progress bar.

Parallel jobs share the launching terminal, so each job writes only whole lines, each in a single write (lines
shorter than the pipe buffer do not interleave), and its bars are off. The counts come from marker files in the
sweep folder: `<job>.running` (holding the job's pid, so a killed job stops counting) and `<job>.done`; the
number of jobs is written there by the launcher before the jobs start. `.alexp-runs/` holds the run ids the
sweep's jobs stand for, new or reused, for `alexp report --sweep-dir`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

FOLDER = ".alexp-jobs"


def total_jobs(config: DictConfig) -> int | None:
    """How many jobs Hydra's basic sweeper makes of this config's overrides (None if another sweeper is used)."""
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        if "basic_sweeper" not in str(config.hydra.sweeper.get("_target_", "")).lower():
            return None
        params = config.hydra.sweeper.get("params") or {}
        overrides = [*config.hydra.overrides.task, *(f"{k}={v}" for k, v in params.items())]
        batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(overrides), None)
        return sum(len(batch) for batch in batches)
    except Exception:  # noqa: BLE001 - the count is a nicety; a sweep runs without it
        return None


# For two classes these rank items alike (each is a monotone function of how close P(positive) is to 1/2), so
# they pick the same items and their runs are identical.
BINARY_TWINS = ("entropy", "margin", "least_confidence")


def coinciding(config: DictConfig) -> list[str]:
    """The strategies of this sweep that pick the same items on a two-class task (`BINARY_TWINS`), if two or
    more are swept."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    except Exception:  # noqa: BLE001 - a note, not a check: the sweep itself reports bad overrides
        return []
    swept = [str(v) for o in parsed if o.key_or_group == "acquisition" for v in o.sweep_string_iterator()]
    twins = [s for s in BINARY_TWINS if s in swept]
    return twins if len(twins) > 1 else []


def coinciding_line(twins: list[str]) -> str:
    return (f"note: {', '.join(twins)} pick the same items on a two-class task (each ranks by how close "
            "P(positive) is to 1/2), so their runs will be identical; sweep one of them beside strategies that "
            "differ (random, boundary_pairs, cluster_margin, coreset, badge)")


class Board:
    """The job-status folder of one sweep."""

    def __init__(self, sweep_dir: str | Path):
        self.folder = Path(sweep_dir) / FOLDER

    def begin(self, total: int | None) -> None:
        """Launcher, before the jobs: a fresh board (a rerun of a sweep counts again from zero)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for marker in self.folder.iterdir():
            marker.unlink(missing_ok=True)
        if total is not None:
            (self.folder / "total").write_text(str(total))

    def started(self, job: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{job}.running").write_text(str(os.getpid()))

    def finished(self, job: int, text: str) -> None:
        """Mark job `job` done and print `[done/total] text (k running)` as one line."""
        (self.folder / f"{job}.done").touch()
        (self.folder / f"{job}.running").unlink(missing_ok=True)
        total = self.folder / "total"
        of = f"/{total.read_text()}" if total.is_file() else ""
        running = self.running()
        line = f"[{self.done()}{of}] {text}" + (f" ({running} running)" if running else "")
        if _is_real(sys.stdout):
            os.write(sys.stdout.fileno(), (line + "\n").encode())
        else:
            print(line, flush=True)

    def failed(self, job: int) -> None:
        (self.folder / f"{job}.running").unlink(missing_ok=True)

    def done(self) -> int:
        return len(list(self.folder.glob("*.done")))

    def running(self) -> int:
        return sum(_alive(marker) for marker in self.folder.glob("*.running"))


class FoldJobListing(logging.Filter):
    """Hydra's launchers log one line per job (`#0 : acquisition=random seed=0 ...`) and a line of joblib's
    settings before any job starts: for a sweep of many jobs, a screen of lines that say nothing new. They are
    folded into one line naming the sweep's overrides and where each job's are listed (multirun.yaml)."""

    LAUNCHERS = ("hydra_plugins.hydra_joblib_launcher._core", "hydra._internal.core_plugins.basic_launcher",
                 "hydra_plugins.hydra_submitit_launcher.submitit_launcher")

    def __init__(self, total: int | None, overrides: list[str], sweep_dir: str):
        from alexp.secrets import redact

        super().__init__()
        self.line = (f"launching {total if total is not None else 'the'} jobs of {redact(' '.join(overrides))} into "
                     f"{sweep_dir} (each job's settings: {Path(sweep_dir) / 'multirun.yaml'})")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.lstrip().startswith("#") or " is launching " in message:
            return False
        if message.startswith("Launching ") and "jobs" in message:
            record.msg, record.args = self.line, ()
        return True

    def install(self) -> None:
        """On the launchers' own loggers (Hydra reconfigures the handlers as it launches; loggers keep filters)."""
        for name in self.LAUNCHERS:
            logger = logging.getLogger(name)
            for old in [f for f in logger.filters if isinstance(f, FoldJobListing)]:
                logger.removeFilter(old)
            logger.addFilter(self)


_HEARTBEAT: list[Heartbeat] = []  # the launching process's, kept here: Hydra pickles its callbacks to the jobs


class Heartbeat:
    """In the launching process: a line when no job has ended for `every` seconds (what runs, for how long), so a
    sweep whose jobs take minutes is not silent."""

    def __init__(self, board: Board, every: float = 30.0):
        self.board, self.every = board, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        _HEARTBEAT.append(self)
        self._thread.start()

    @staticmethod
    def stop_all() -> None:
        while _HEARTBEAT:
            _HEARTBEAT.pop()._stop.set()

    def _watch(self) -> None:
        started = last = time.monotonic()
        done = self.board.done()
        while not self._stop.wait(min(1.0, self.every / 2)):
            now, finished = time.monotonic(), self.board.done()
            if finished != done:
                done, last = finished, now
            elif now - last >= self.every:
                total = self.board.folder / "total"
                of = f" of {total.read_text()}" if total.is_file() else ""
                line = (f"... {self.board.running()} running, {done}{of} done, {now - started:.0f} s since the "
                        "sweep started")
                if _is_real(sys.stdout):
                    os.write(sys.stdout.fileno(), (line + "\n").encode())
                else:
                    print(line, flush=True)
                last = now


RUNS = ".alexp-runs"  # in a sweep folder: one empty file per MLflow run id the sweep asked for


def record_run(sweep_dir: str | Path, run_id: str) -> None:
    """Note that this sweep's job stands for run `run_id`, new or reused ("already finished"), so that `alexp
    report --sweep-dir` counts it. Kept across reruns of the sweep (a rerun asks for the same runs)."""
    folder = Path(sweep_dir) / RUNS
    folder.mkdir(parents=True, exist_ok=True)
    (folder / run_id).touch()


def recorded_runs(sweep_dir: str | Path) -> set[str]:
    """The run ids a sweep asked for (`record_run`); empty for a folder that is not a sweep's."""
    folder = Path(sweep_dir) / RUNS
    return {f.name for f in folder.iterdir()} if folder.is_dir() else set()


def _alive(marker: Path) -> bool:
    try:
        os.kill(int(marker.read_text()), 0)
        return True
    except (OSError, ValueError):
        return False


def _is_real(stream: Any) -> bool:
    """Whether `stream` is a file descriptor's stream (a single os.write keeps the line whole)."""
    try:
        stream.flush()
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False
