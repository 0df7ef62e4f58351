"""MLflow tracking: the only module that imports mlflow. One Hydra job = one MLflow run."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Without this tag MLflow 3's UI opens the experiment in GenAI mode instead of runs and charts.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def init_store(uri: str, experiment_name: str) -> str:
    """Create (or migrate) the store and the experiment if needed; returns the experiment id.

    Called once before parallel jobs start: several first-time writers on a fresh sqlite store corrupt it.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        try:
            return client.create_experiment(experiment_name, tags=EXPERIMENT_TAGS)
        except MlflowException:  # created meanwhile by another process
            exp = client.get_experiment_by_name(experiment_name)
            if exp is None:
                raise
    for key, value in EXPERIMENT_TAGS.items():
        if exp.tags.get(key) != value:
            client.set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id


@dataclass(frozen=True)
class Tracker:
    """Logging handle of one active run."""

    run_id: str

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        import mlflow

        mlflow.log_metrics(dict(metrics), step=step)

    def pause(self) -> None:
        """End the run as SCHEDULED (waiting for labels); continuing it later sets it running again."""
        import mlflow

        mlflow.end_run(status="SCHEDULED")

    def log_artifacts(self, folder: Path) -> None:
        import mlflow

        mlflow.log_artifacts(str(folder))


@contextmanager
def tracked_run(uri: str, experiment_name: str, run_name: str, params: Mapping[str, str],
                tags: Mapping[str, str], config: dict, run_id: str | None = None) -> Iterator[Tracker]:
    """Start a new run (or continue `run_id`), logging params, tags and the resolved config once."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    experiment_id = init_store(uri, experiment_name)
    new = {} if run_id else {"experiment_id": experiment_id, "run_name": run_name, "tags": dict(tags)}
    with mlflow.start_run(run_id=run_id, log_system_metrics=False, **new) as run:
        if run_id is None:
            mlflow.log_params(dict(params))
            mlflow.log_dict(config, "config.yaml")
        yield Tracker(run.info.run_id)


def client(uri: str):
    """An MlflowClient on `uri`."""
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def log_report(uri: str, experiment_name: str, folder: Path) -> str:
    """Log a report folder as the artifacts of a run tagged alexp.kind=report (reports skip such runs)."""
    c = client(uri)
    run = c.create_run(init_store(uri, experiment_name), run_name="report", tags={"alexp.kind": "report"})
    c.log_artifacts(run.info.run_id, str(folder))
    c.set_terminated(run.info.run_id)
    return run.info.run_id
