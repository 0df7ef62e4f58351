"""Processes that end with the process they serve, and runs that stop cleanly on SIGTERM and SIGINT.

- `die_with(pid)`: a sweep's worker processes (joblib/loky) and `alexp ui`'s MLflow server are not told when a
  `kill -9` ends the process that started them; each watches it and exits within half a second of its end (at
  once, as a kill would: a run's checkpoint is always whole, so the sweep resumes as after any kill).
- `stopping_on_signals()` (the `alexp` command; a sweep's job in a worker process): SIGTERM (what a scheduler or
  `kill` sends before a kill) and SIGINT (Ctrl-C) raise `Stopped` in the main thread, which the runner lets through
  its MLflow run (marked KILLED) and the command reports in one line, exit code 128 + the signal's number (a sweep's
  launcher stops its workers as on Ctrl-C). The checkpoint written after the last accepted labels stays; the same
  command resumes from it to the result an uninterrupted run gives.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_watched: set[int] = set()


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, killed but not yet reaped by its parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): signal 0 tells whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def die_with(pid: int, interval: float = 0.5, code: int = 1) -> None:
    """End this process (os._exit: no cleanup, like a kill) within `interval` seconds of process `pid`'s end."""
    if pid in _watched or pid == os.getpid():
        return
    _watched.add(pid)

    def watch() -> None:
        while alive(pid):
            time.sleep(interval)
        os._exit(code)

    threading.Thread(target=watch, name=f"alexp-die-with-{pid}", daemon=True).start()


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived during a run. Not an Exception, so no `except Exception` on the way swallows it;
    a KeyboardInterrupt, so what handles Ctrl-C (the terminal oracle: like q) handles it too."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_shield = threading.local()  # depth of shielded() sections; the last signal not yet handled


def causes(error: BaseException | None) -> Iterator[BaseException]:
    """`error`, then what it was raised from or while handling, down the chain (each once)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def stop_behind(error: BaseException) -> Stopped | None:
    """The stop a signal caused, if `error` is what it turned into: a library's cleanup that failed when the
    signal cut it short (OmegaConf, in the middle of composing the config; a database session) raises its own
    error from the Stopped, or swallows the Stopped and fails later on the state it left. None if no signal came."""
    found = next((e for e in causes(error) if isinstance(e, Stopped)), None)
    signum = getattr(_shield, "pending", None)
    return found or (Stopped(signum) if signum else None)


def _raise_stopped(signum, frame) -> None:
    _shield.pending = signum  # until handled (`handled()`): raised again where a finalizer swallowed it
    if not getattr(_shield, "depth", 0):  # inside a shielded section: raised when it ends
        raise Stopped(signum)


def handled() -> None:
    """The Stopped in flight is dealt with (a run ended KILLED; the terminal oracle stopped asking, as on q)."""
    _shield.pending = None


def check() -> None:
    """Raise Stopped for a signal whose exception was lost: Python ignores an exception raised while it runs a
    finalizer (a weakref callback of the garbage collector), so the handler's raise can vanish."""
    signum = getattr(_shield, "pending", None)
    if signum and not getattr(_shield, "depth", 0):
        _shield.pending = None
        raise Stopped(signum)


def _quiet_unraisable(hook):
    def unraisable(info) -> None:  # "Exception ignored in ...": Stopped is raised again by check()
        if not isinstance(info.exc_value, Stopped):
            hook(info)

    return unraisable


@contextmanager
def shielded() -> Iterator[None]:
    """A section a signal must not cut in two (a write to the MLflow store, a checkpoint, an oracle's archive): a
    SIGTERM or SIGINT that arrives inside raises Stopped when it ends. Computing (fits, selections) needs none:
    what it was computing is recomputed on resume."""
    _shield.depth = getattr(_shield, "depth", 0) + 1
    try:
        yield
    finally:
        _shield.depth -= 1
    check()


@contextmanager
def stopping_on_signals() -> Iterator[None]:
    """Inside, SIGTERM and SIGINT raise Stopped (in the main thread; elsewhere signals are left alone)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGINT) is _raise_stopped:  # inside another: its signal may be pending still
        yield
        return
    handled()
    old = {sig: signal.signal(sig, _raise_stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    hook, sys.unraisablehook = sys.unraisablehook, _quiet_unraisable(sys.unraisablehook)
    try:
        yield
    finally:
        try:
            for sig, handler in old.items():
                signal.signal(sig, handler)
        except KeyboardInterrupt:  # a SIGINT just as Python's own handler came back: alexp's work is over (saved,
            for sig, handler in old.items():  # or being reported), so there is nothing left for it to stop
                signal.signal(sig, handler)
        sys.unraisablehook = hook

