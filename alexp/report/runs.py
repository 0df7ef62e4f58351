"""The finished runs of a sweep, from MLflow into one long polars table, and from it into seed matrices."""

from __future__ import annotations

import logging

import polars as pl
from numpy.typing import NDArray

from alexp import AlexpError
from alexp.secrets import redact

log = logging.getLogger(__name__)

SCHEMA = {"run_id": pl.String, "condition": pl.String, "seed": pl.Int64, "n_labels": pl.Int64, "value": pl.Float64,
          "cost": pl.Float64, "last_recall": pl.Float64, "last_average_precision": pl.Float64}


def load_runs(uri: str, experiments: list[str], sweep_dir: str | None = None, metric: str = "kappa",
              keys: list[str] | None = None, tasks: bool = False) -> pl.DataFrame:
    """One row per (run, step): run_id, condition, seed, n_labels, `value` (the metric), cost, and each run's
    last recall and average precision (to explain a baseline that never learns).

    A condition is named by the params that vary between runs, or by `keys` when given. With `sweep_dir`, the
    runs that sweep asked for: those it started (tagged with it) and those it found already finished (recorded
    in its folder). Runs that are not FINISHED and report runs are left out; of several finished runs of one
    condition and seed (a rerun), the latest counts, so a seed is never counted twice.

    With `tasks`, each experiment is a task (column `task`, its name): conditions are named by the params that
    vary within some task (a task's own data settings do not name its conditions), and seeds are kept per task."""
    from alexp.tracking import client as tracking_client
    from alexp.tracking import reaching, store_exists

    if not store_exists(uri):
        raise AlexpError(f"no MLflow store at {redact(uri)}; run alexp first, or pass --tracking-uri (default: "
                         "MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working folder)")
    client = tracking_client(uri)
    with reaching(uri):
        return _rows(client, uri, experiments, metric, keys, sweep_dir, tasks)


def _rows(client, uri, experiments, metric, keys, sweep_dir, tasks=False):
    from alexp.sweep import recorded_runs

    found = {}
    for name in experiments:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise AlexpError(f"no experiment {name!r} in {redact(uri)}; pass --experiment with one of "
                             f"{[e.name for e in client.search_experiments()]}")
        found[exp.experiment_id] = name
    asked = recorded_runs(sweep_dir) if sweep_dir is not None else set()
    runs = [r for r in client.search_runs(list(found), "attributes.status = 'FINISHED'", max_results=50_000,
                                          order_by=["attributes.start_time DESC"])
            if r.data.tags.get("alexp.kind") != "report"
            and (sweep_dir is None or r.info.run_id in asked
                 or _same_folder(r.data.tags.get("alexp.sweep_dir"), sweep_dir))]
    if not runs:
        raise AlexpError(f"no finished alexp runs in experiment(s) {experiments} of {redact(uri)}"
                         + (f" with sweep dir {sweep_dir}" if sweep_dir else ""))
    if not any(metric in r.data.metrics for r in runs):
        logged = sorted(set().union(*(r.data.metrics for r in runs)))
        raise AlexpError(f"no run logged the metric {metric!r}; --metric takes one of {logged}")
    params = [{k: v for k, v in r.data.params.items() if k != "seed"} for r in runs]
    task = [found[r.info.experiment_id] if tasks else "" for r in runs]
    varying = keys or sorted({k for t in set(task) for k in _varying([p for p, u in zip(params, task) if u == t])})
    rows, seen = [], set()
    for r, p, t in zip(runs, params, task):  # newest first
        condition = " ".join(f"{k}={p[k]}" for k in varying if k in p) or "all runs"
        seed = int(r.data.params.get("seed", 0))
        if (t, condition, seed) in seen:
            log.warning("run %s repeats %s seed %d: the latest run counts", r.info.run_id, condition, seed)
            continue
        seen.add((t, condition, seed))
        cost = {m.step: m.value for m in client.get_metric_history(r.info.run_id, "cost")}
        last = r.data.metrics
        points = {m.step: m for m in sorted(client.get_metric_history(r.info.run_id, metric),
                                            key=lambda m: m.timestamp)}  # one point per label count: the last
        for m in points.values():
            rows.append((r.info.run_id, condition, seed, m.step, m.value, cost.get(m.step), last.get("recall"),
                         last.get("average_precision"), t))
    frame = pl.DataFrame(rows, schema={**SCHEMA, "task": pl.String}, orient="row")
    return frame.sort("task", "condition", "seed", "n_labels") if tasks else \
        frame.drop("task").sort("condition", "seed", "n_labels")


def _varying(params: list[dict]) -> list[str]:
    """The param names whose values differ between these runs (the seed aside)."""
    return sorted(k for k in set().union(*params) if len({p.get(k) for p in params}) > 1)


def _same_folder(tag: str | None, given: str) -> bool:
    """Whether a run's sweep-dir tag names the folder `given` (relative or absolute, with or without a slash).
    Older runs were tagged with the folder relative to where the sweep started; those match by their text."""
    if not tag:
        return False
    from pathlib import Path

    return Path(tag).resolve() == Path(given).resolve() or tag.rstrip("/") == given.rstrip("/")


def condition_params(condition: str) -> dict[str, str]:
    """'acquisition=margin oracle=noisy' -> {'acquisition': 'margin', 'oracle': 'noisy'}."""
    return dict(part.split("=", 1) for part in condition.split()) if "=" in condition else {}


def matrix(runs: pl.DataFrame, condition: str, column: str = "value", seeds: list[int] | None = None
           ) -> tuple[NDArray, NDArray, list[int]]:
    """(label counts, seeds x label counts of `column`, seeds) of one condition, on the label counts every one
    of its seeds (or of `seeds`) logged; rows in seed order."""
    part = runs.filter(pl.col("condition") == condition, pl.col(column).is_not_null())
    if seeds is not None:
        part = part.filter(pl.col("seed").is_in(seeds))
    seed_list = sorted(part["seed"].unique().to_list())
    wide = part.pivot(on="seed", index="n_labels", values=column, aggregate_function="first").sort("n_labels")
    wide = wide.drop_nulls()  # label counts that some seed did not log
    if not wide.height:
        raise AlexpError(f"the runs of {condition!r} (seeds {seed_list}) have no label count in common; report "
                         "runs of one schedule together, or pass --sweep-dir to pick one sweep")
    values = wide.select([str(s) for s in seed_list]).to_numpy().T
    return wide["n_labels"].to_numpy().astype(float), values.astype(float), seed_list


STOPS_SCHEMA = {"run_id": pl.String, "condition": pl.String, "seed": pl.Int64, "rule": pl.String,
                "stop_at": pl.Int64}


def load_stops(uri: str, runs: pl.DataFrame) -> pl.DataFrame:
    """One row per (run, stopping rule) of the runs in `runs`: the label count at which the rule first fired
    (`stop_at`; null when it never fired within the run). Empty when no run logged stopping rules."""
    from alexp.tracking import client as tracking_client

    client = tracking_client(uri)
    rows = []
    for run_id, condition, seed in runs.select("run_id", "condition", "seed").unique(maintain_order=True).iter_rows():
        flags = sorted(k for k in client.get_run(run_id).data.metrics
                       if k.startswith("stop_") and not k.endswith("_value"))
        for key in flags:
            fired = [m.step for m in client.get_metric_history(run_id, key) if m.value == 1.0]
            rows.append((run_id, condition, seed, key.removeprefix("stop_"), min(fired) if fired else None))
    return pl.DataFrame(rows, schema=STOPS_SCHEMA, orient="row")
