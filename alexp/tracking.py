"""MLflow tracking: the only module that imports mlflow. One run config = one MLflow run, whatever happens.

A run is found again by its tag `alexp.run_key` (the hash of its config): a rerun of a finished config reports
that run, and a rerun of an interrupted one continues it, logging only the points it had not logged yet.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from alexp import AlexpError, faults, lifeline
from alexp.errors import check_writable, first_line
from alexp.lifeline import shielded
from alexp.secrets import redact
from alexp.mlflow_view import experiment_tags

log = logging.getLogger(__name__)


@contextmanager
def locked(path: Path, wait_message: str | None = None) -> Iterator[None]:
    """Hold an exclusive advisory lock (flock) on `path` (a file, created if needed, or a folder) while inside.

    The kernel drops the lock when the process dies, so a killed holder never leaves a stale lock behind."""
    fd = os.open(path, os.O_RDONLY) if path.is_dir() else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if wait_message:
                print(f"alexp: {wait_message}", flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///path` URI (None for other stores and in-memory sqlite)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri[len("sqlite:///"):].split("?")[0])
    return Path(path) if path and path != ":memory:" else None


def check_uri(uri: str) -> None:
    """Raise AlexpError for a tracking URI MLflow cannot use, without creating anything."""
    db = sqlite_file(uri)
    if db is None:
        _client(uri)
    elif not db.parent.is_dir():
        raise AlexpError(f"tracking.uri: the folder of {db} does not exist; create it or point tracking.uri "
                         "at an existing folder (default sqlite:///mlflow.db)")
    else:
        check_writable(db.parent, "tracking.uri")  # sqlite writes its journal beside the store


def store_exists(uri: str) -> bool:
    """False for a sqlite store not created yet (so it holds no run), also when its file is blank; True for every
    other kind of store."""
    db = sqlite_file(uri)
    return db is None or (db.exists() and not _blank(db))


def _blank(db: Path) -> bool:
    """Whether a sqlite file holds nothing yet: empty (what `touch` leaves) or a database without a table (what
    `sqlite3 mlflow.db` leaves). Such a file is made into a store as if it were not there."""
    import sqlite3
    from contextlib import closing

    try:
        if db.stat().st_size == 0:
            return True
        with closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as connection:
            return connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    except (OSError, sqlite3.Error):
        return False  # not a database, or unreadable: MLflow says what it is


def ensure_store(uri: str) -> None:
    """Create a fresh sqlite store so that no kill or concurrent first user can leave it half-made.

    MLflow creates its tables in many migration steps; a process killed between them, or two processes doing
    them at once, break the file for good. Here one process at a time (a lock on the folder) builds the store
    under a temporary name and renames it into place, so the store either does not exist or is complete. A blank
    file (empty, or a database without a table) counts as no store and is replaced."""
    if store_exists(uri):
        return
    db = sqlite_file(uri)
    check_uri(uri)
    with locked(db.parent):
        if store_exists(uri):  # made by another process while this one waited
            return
        for stale in db.parent.iterdir():  # left by a killed creator (with its sqlite journal)
            if stale.name.startswith(f".{db.name}.") and ".creating" in stale.name:
                stale.unlink(missing_ok=True)
        tmp = db.parent / f".{db.name}.{os.getpid()}.creating"
        chatty = [logging.getLogger(name) for name in ("mlflow.store.db.utils", "alembic")]
        levels = [logger.level for logger in chatty]
        for logger in chatty:  # "Creating initial MLflow database tables..." on every new store
            logger.setLevel(logging.WARNING)
        try:
            _client(f"sqlite:///{tmp.resolve()}").search_experiments(max_results=1)  # runs MLflow's migrations
        finally:
            for logger, level in zip(chatty, levels):
                logger.setLevel(level)
        _dispose(f"sqlite:///{tmp.resolve()}")
        faults.crash_point("store")
        os.replace(tmp, db)


def _dispose(uri: str) -> None:
    """Close the cached connections of the store at `uri` (about to be renamed)."""
    from mlflow.tracking._tracking_service.utils import _get_store

    store = _get_store(uri)
    engine = getattr(store, "engine", None)
    if engine is not None:
        engine.dispose()


_REACHED: set[str] = set()  # servers this process has reached


def _probe(uri: str, timeout: float = 5.0) -> None:
    """Raise AlexpError within `timeout` seconds if the MLflow server at an http(s) `uri` takes no connection
    (MLflow itself retries a refused connection for minutes, silently)."""
    import socket
    from urllib.parse import urlsplit

    if uri in _REACHED or not uri.startswith(("http://", "https://")):
        return
    parts = urlsplit(uri)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            pass
    except (OSError, ValueError) as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e)) if isinstance(e, OSError) \
            else str(e)
        raise AlexpError(f"cannot reach the MLflow server at tracking.uri={redact(uri)!r} ({reason}); start it "
                         "(mlflow server ...) or point tracking.uri (MLFLOW_TRACKING_URI) at a reachable store"
                         ) from None
    _REACHED.add(uri)


def _client(uri: str):
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # its own run link, with credentials
    _probe(uri)
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.MlflowClient(tracking_uri=uri)  # checks the URI's scheme
    except MlflowException:
        raise AlexpError(f"tracking.uri={redact(uri)!r} is not a store MLflow can use; use sqlite:///mlflow.db, "
                         "a folder such as file:./mlruns, or http(s)://host:port of an MLflow server") from None


@contextmanager
def reaching(uri: str) -> Iterator[None]:
    """Turn a store that cannot be reached (a server that is down, a database refusing us) into one line."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as e:
        text = str(e)
        if "Failed to establish a new connection" in text or "Max retries exceeded" in text:
            raise AlexpError(f"cannot reach the MLflow store at tracking.uri={redact(uri)!r}; start the server "
                             "(mlflow server ...) or point tracking.uri (MLFLOW_TRACKING_URI) at a reachable store"
                             ) from None
        if "API request" in text or "OperationalError" in text:
            raise AlexpError(f"the MLflow store at tracking.uri={redact(uri)!r} refused a request: "
                             f"{redact(first_line(e, 200))}") from None
        raise


def init_store(uri: str, experiment_name: str) -> str:
    """Create the store (safely) and the experiment if needed; returns the experiment id."""
    with reaching(uri):
        return _init_store(uri, experiment_name)


def _init_store(uri: str, experiment_name: str) -> str:
    from mlflow.exceptions import MlflowException

    if not isinstance(experiment_name, str) or not experiment_name.strip():
        raise AlexpError(f"tracking.experiment_name must be a non-empty name, got {experiment_name!r}; "
                         "e.g. tracking.experiment_name=my-study")
    ensure_store(uri)
    client = _client(uri)
    tags = experiment_tags()  # a training experiment, kappa its primary metric, the saved chart view
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        try:
            return client.create_experiment(experiment_name, tags=tags)
        except MlflowException:  # created meanwhile by another process
            exp = client.get_experiment_by_name(experiment_name)
            if exp is None:
                raise
    for key, value in tags.items():
        if exp.tags.get(key) != value:
            client.set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id


@dataclass(frozen=True)
class Found:
    """The latest run logged for a run key."""

    run_id: str
    status: str  # RUNNING | SCHEDULED | FINISHED | FAILED | KILLED
    name: str
    metrics: dict[str, float]


def find_run(uri: str, experiment_name: str, key: str) -> Found | None:
    """The run of config `key` (a finished one first, else the latest), or None if none was started."""
    if not store_exists(uri):
        return None
    client = _client(uri)
    with reaching(uri):
        exp = client.get_experiment_by_name(experiment_name)
        if exp is None:
            return None
        runs = client.search_runs([exp.experiment_id], f"tags.`alexp.run_key` = '{key}'",
                                  order_by=["attributes.start_time DESC"], max_results=100)
    if not runs:
        return None
    run = next((r for r in runs if r.info.status == "FINISHED"), runs[0])
    return Found(run.info.run_id, run.info.status, run.info.run_name, dict(run.data.metrics))


def run_gone(uri: str, run_id: str) -> bool:
    """Whether run `run_id` was deleted (in the MLflow UI, or `mlflow runs delete`) or is not in the store."""
    from mlflow.exceptions import MlflowException

    with reaching(uri):
        try:
            return _client(uri).get_run(run_id).info.lifecycle_stage == "deleted"
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                return True
            raise


@dataclass
class Tracker:
    """Logging handle of one active run. Points it logged before (an interrupted attempt) are not logged again."""

    run_id: str
    logged: set[tuple[str, int]] = field(default_factory=set)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        import mlflow

        new = {k: v for k, v in metrics.items() if (k, step) not in self.logged}
        if new:
            with shielded():
                mlflow.log_metrics(new, step=step)
                self.logged.update((k, step) for k in new)
            faults.crash_point("logged")

    def pause(self) -> None:
        """End the run as SCHEDULED (waiting for labels); continuing it later sets it running again."""
        import mlflow

        with shielded():
            mlflow.end_run(status="SCHEDULED")

    def log_artifacts(self, folder: Path) -> None:
        import mlflow

        with shielded():
            mlflow.log_artifacts(str(folder))


@contextmanager
def tracked_run(uri: str, experiment_name: str, run_name: str, params: Mapping[str, str],
                tags: Mapping[str, str], config: dict, run_id: str | None = None) -> Iterator[Tracker]:
    """Start a new run (or continue `run_id`), logging the params, tags and config it does not have yet.

    Every value passes through `redact` first: no credential reaches the store."""
    import mlflow

    experiment_id = init_store(uri, experiment_name)
    mlflow.set_tracking_uri(uri)
    client = _client(uri)
    tags = {k: redact(str(v)) for k, v in tags.items()}
    # A new run carries its run key from its first moment: a kill right after start leaves a run a rerun finds.
    new = {} if run_id else {"experiment_id": experiment_id, "run_name": run_name, "tags": tags}
    run, status = None, "FINISHED"
    try:
        with shielded():  # SIGTERM/SIGINT wait for the store's writes to end (alexp.lifeline)
            run = mlflow.start_run(run_id=run_id, log_system_metrics=False, **new)
            data = client.get_run(run.info.run_id).data
            missing = {k: redact(str(v)) for k, v in params.items() if k not in data.params}
            if missing:
                mlflow.log_params(missing)
            mlflow.set_tags(tags)
            mlflow.log_dict(redact(config), "config.yaml")
            logged = {(key, m.step) for key in data.metrics
                      for m in client.get_metric_history(run.info.run_id, key)}
        yield Tracker(run.info.run_id, logged)
    except KeyboardInterrupt:  # SIGTERM, SIGINT (alexp.lifeline.Stopped): stopped, to be resumed
        status = "KILLED"
        lifeline.handled()
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        active = mlflow.active_run()
        if run is not None and active is not None and active.info.run_id == run.info.run_id:  # not paused already
            with shielded():
                mlflow.end_run(status=status)


def client(uri: str):
    """An MlflowClient on `uri`."""
    return _client(uri)


def experiment_id(uri: str, name: str, missing_ok: bool = False) -> str | None:
    """The id of experiment `name` in the store at `uri` (None if missing_ok and there is none)."""
    c = client(uri)
    with reaching(uri):
        exp = c.get_experiment_by_name(name)
        if exp is None and not missing_ok:
            names = [e.name for e in c.search_experiments()]
            raise AlexpError(f"no experiment {name!r} in {redact(uri)}; pass --experiment with one of {names}")
    return exp.experiment_id if exp is not None else None


def strategies(uri: str, experiment_id: str) -> list[str]:
    """The `acquisition` values of an experiment's runs, in order of first appearance."""
    c, names, token = client(uri), {}, None
    with reaching(uri):
        while True:
            page = c.search_runs([experiment_id], max_results=1000, page_token=token)
            names.update((r.data.params["acquisition"], None) for r in page if "acquisition" in r.data.params)
            if not (token := page.token):
                return list(names)


def report_experiment(experiment_name: str) -> str:
    """Where reports of `experiment_name` are logged: an experiment of their own, so that their runs stay out of
    the curve charts and run tables of the experiment they summarise."""
    return f"{experiment_name}-reports"


def log_report(uri: str, experiment_name: str, folder: Path, title: str) -> str:
    """Log a report folder as the artifacts of a run in the reports experiment of `experiment_name`."""
    c = client(uri)
    run = c.create_run(init_store(uri, report_experiment(experiment_name)), run_name=f"report: {title}",
                       tags={"alexp.kind": "report", "mlflow.note.content": f"alexp report of {title}: see the "
                             "artifacts (report.md, figures, tables)"})
    c.log_artifacts(run.info.run_id, str(folder))
    c.set_terminated(run.info.run_id)
    return run.info.run_id
