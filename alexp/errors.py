"""User errors as one line: what alexp prints (exit code 2) for a mistake in the command line, config or data.

Hydra and OmegaConf report such mistakes in several lines with their own advice; `user_error` turns each
into one line in alexp's words (the setting, the problem, the fix). Anything it does not recognise is a bug
and keeps its traceback.
"""

from __future__ import annotations

import difflib
import errno
import re
from pathlib import Path

from omegaconf import DictConfig

from alexp import AlexpError
from alexp.lifeline import causes


class UserError(BaseException):
    """A user error raised inside a Hydra job, already reduced to its line. Not an Exception, so that Hydra's
    job runner lets it through without printing its own report (it catches Exception only)."""


def user_error(e: BaseException) -> str | None:
    """The one-line message for an error in the user's command line, config or data; None for a bug."""
    from hydra.errors import (ConfigCompositionException, HydraException, MissingConfigException,
                              OverrideParseException)
    from omegaconf.errors import OmegaConfBaseException
    from sklearn.utils._param_validation import InvalidParameterError

    if isinstance(e, AlexpError | InvalidParameterError):
        return first_line(e)
    if isinstance(e, MissingConfigException) and e.missing_cfg_file and "/" in e.missing_cfg_file:
        group, _, option = e.missing_cfg_file.rpartition("/")
        options = list(e.options or [])
        close = difflib.get_close_matches(option, options, n=1)
        return (f"{group}={option}: no such option" + (f"; did you mean {group}={close[0]}?" if close else "")
                + f" (options: {', '.join(options)}; or a config folder of your own: --config-dir)")
    if isinstance(e, ConfigCompositionException) and str(e).startswith("Could not override"):
        return _unknown_key(e)
    if isinstance(e, OverrideParseException):
        tilde = re.search(r"([\w.@/]+)=(~[^\s)]*)", str(e))
        if tilde:  # Hydra's grammar has no bare ~; quoted, alexp expands it to the home folder
            key, value = tilde.groups()
            return (f"{key}={value}: a ~ needs quotes on the command line: '{key}=\"{value}\"' (alexp expands "
                    f"~ to your home folder), or give the full path")
        return (f"cannot parse the command line ({first_line(e)}); write overrides as key=value (e.g. seed=1) and "
                "put quotes around values with brackets, commas or spaces: 'data.path=\"my [1].csv\"'")
    if isinstance(e, OmegaConfBaseException):
        key = getattr(e, "full_key", None)
        return f"{key}: {first_line(e)}" if key else first_line(e)
    if isinstance(e, HydraException):
        cause = e.__cause__
        return user_error(cause) if cause is not None and user_error(cause) else first_line(e)
    return resource_fault(e)


def job_lost(error: BaseException) -> str | None:
    """One line for a sweep job that ended without a result (killed, out of memory or time: submitit's
    UncompletedJobError); None for anything else."""
    for e in causes(error):
        if type(e).__name__ == "UncompletedJobError" and type(e).__module__.startswith("submitit"):
            where = re.search(r"Job (\S+) \(task: \d+\) with path (\S+)", str(e))
            job = f"job {where.group(1)} ({Path(where.group(2)).parent})" if where else "a job"
            return (f"a sweep job ended without a result: {job} was killed or ran out of memory or time; the other "
                    f"jobs ran to their end. {RERUN.capitalize()}: finished jobs are reported, the others resume")
    return None


FULL = (errno.ENOSPC, errno.EDQUOT)
LOCKED_OUT = (errno.EROFS, errno.EACCES, errno.EPERM)
RERUN = "then run the same command again: what was saved so far is kept"


def resource_fault(error: BaseException) -> str | None:
    """One line for a full disk or a folder alexp may not write, found anywhere in the exception's chain (MLflow
    and SQLAlchemy wrap sqlite's own words: 'database or disk is full', 'attempt to write a readonly
    database'); None for anything else."""
    for e in causes(error):
        if isinstance(e, OSError) and e.errno in FULL + LOCKED_OUT:
            where = f" {e.filename}" if e.filename else ""
            if e.errno in FULL:
                return f"no space left on the device of{where or ' a file alexp writes'}; free some space, {RERUN}"
            return (f"cannot write{where or ' a file'} ({e.strerror}); make it writable or point the setting "
                    f"that names it elsewhere (state_dir, tracking.uri, oracle.queue_dir, --out), {RERUN}")
        text = str(e)
        if "database or disk is full" in text:
            return f"no space left for the MLflow store (sqlite: database or disk is full); free some space, {RERUN}"
        if "readonly database" in text or "unable to open database file" in text:
            return (f"cannot write the MLflow store (sqlite: {first_line(e, 120)}); make its file and folder "
                    f"writable or point tracking.uri elsewhere, {RERUN}")
    return None


def check_writable(folder, setting: str) -> None:
    """Raise AlexpError, naming `setting`, if alexp may not create or write files in `folder` (or in the folder
    that would hold it, if it does not exist yet); checked before a run starts, so nothing is left half-done."""
    import os
    from pathlib import Path

    existing = Path(folder).expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise AlexpError(f"{setting}: {existing} is a file, not a folder; point {setting} at a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise AlexpError(f"{setting}: cannot write in {existing} (read-only or not yours); make it writable or "
                         f"point {setting} at a folder you can write to")


def _unknown_key(e: BaseException) -> str:
    """'Could not override x.y' (a key the config lacks, set without +): alexp's did-you-mean instead."""
    key = str(e).split("'")[1] if "'" in str(e) else "?"
    parent = getattr(e.__cause__, "parent_node", None)
    valid = [str(k) for k in parent if not str(k).startswith("_")] if isinstance(parent, DictConfig) else []
    where, _, name = key.rpartition(".")
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean {where + '.' if where else ''}{close[0]}?" if close else ""
    listed = f" (valid keys{' of ' + where if where else ''}: {', '.join(valid)})" if valid else ""
    return f"unknown key {key!r}{hint}{listed}"


def first_line(e: BaseException, limit: int = 300) -> str:
    """The first meaningful line of an error message, at most `limit` characters (polars errors run to hundreds
    of lines)."""
    line = next((s.strip() for s in str(e).splitlines() if s.strip()), type(e).__name__)
    return line if len(line) <= limit else line[:limit - 3] + "..."
