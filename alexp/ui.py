"""`alexp ui`: the MLflow UI for this folder's store, on 127.0.0.1, opened on an experiment's kappa curves.

MLflow 3 opens an experiment on its GenAI pages (traces, token usage) by default, even with the experiment tag
`mlflow.experimentKind` set (checked in headless Chromium); the URL does it: `workflowType=machine_learning`
opens the runs ("Model training"), `compareRunsMode=CHART` the chart view, and `viewStateShareKey=K` applies
the view saved in the experiment tag `mlflow.sharedViewState.K` (what the UI's "Share" button writes): kappa
first and the other curves in a useful order with the label count on the x axis, every run shown, and the
runs table with kappa and the settings as columns. alexp writes that tag, and names kappa the experiment's
primary metric, when it creates or uses an experiment.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from alexp import AlexpError

SHARE_KEY = "alexp-curves"
# Charts in this order: the agreement with the truth first, then what the labels bought, then timings.
CURVES = ("kappa", "average_precision", "f1", "positives_labeled", "oracle_kappa", "recall", "precision",
          "accuracy", "cost", "pick_distance")
TIMERS = ("fit_seconds", "select_seconds", "test_seconds")
COLUMNS = ("metrics.kappa", "metrics.n_labels", "params.acquisition", "params.oracle", "params.seed",
           "params.data", "params.features", "params.model", "params.budget")


# One colour per strategy (the seeds of a strategy share it): random grey, the rest from matplotlib's tab10.
COLORS = {"random": "#7f7f7f", "entropy": "#1f77b4", "margin": "#ff7f0e", "least_confidence": "#2ca02c",
          "boundary_pairs": "#9467bd", "coreset": "#d62728", "badge": "#8c564b", "cluster_margin": "#e377c2",
          "density_weighted": "#bcbd22", "class_balanced": "#17becf", "bald": "#393b79", "batchbald": "#637939",
          "vote_entropy": "#8c6d31", "kl_disagreement": "#843c39"}


def run_color(acquisition: str) -> str:
    """The colour of a strategy's runs in MLflow's charts (tag mlflow.runColor); a strategy alexp does not ship
    gets one of its palette by a stable hash of its name."""
    if acquisition in COLORS:
        return COLORS[acquisition]
    palette = sorted(set(COLORS.values()))
    return palette[int(hashlib.sha256(acquisition.encode()).hexdigest(), 16) % len(palette)]


def _column(key: str) -> str:
    kind, name = key.split(".", 1)
    return f"{kind}.`{name}`"  # the UI's canonical column key


def view_state() -> dict:
    """The saved view: sections, charts (label count on the x axis), runs-table columns, every run shown."""
    sections = {"Curves": "alexp-curves", "Timing": "alexp-timing"}

    def chart(metric: str, section: str) -> dict:
        return {"uuid": f"alexp-{metric}", "type": "LINE", "runsCountToCompare": 100, "metricSectionId": section,
                "deleted": False, "isGenerated": True, "metricKey": metric, "displayName": metric,
                "selectedMetricKeys": [metric], "lineSmoothness": 0, "xAxisScaleType": "linear",
                "scaleType": "linear", "range": {}, "xAxisKey": "metric", "selectedXAxisMetricKey": "n_labels",
                "yAxisKey": "metric", "yAxisExpressions": [], "ignoreOutliers": False, "useGlobalXaxisKey": False,
                "useGlobalLineSmoothing": True}

    return {
        "compareRunCharts": [chart(m, sections["Curves"]) for m in CURVES]
        + [chart(m, sections["Timing"]) for m in TIMERS],
        "compareRunSections": [{"uuid": uuid, "name": name, "display": name == "Curves", "isReordered": True,
                                "deleted": False, "isGenerated": False} for name, uuid in sections.items()],
        "isAccordionReordered": True,
        "selectedColumns": [_column(c) for c in COLUMNS],
        "columnOrder": [_column(c) for c in COLUMNS],
        "runsHiddenMode": "SHOW_ALL",
        "hideEmptyCharts": True,
        "useGroupedValuesInCharts": True,
        "groupBy": None,
        "globalLineChartConfig": {"xAxisKey": "metric", "lineSmoothness": 0, "selectedXAxisMetricKey": "n_labels"},
    }


def experiment_tags() -> dict[str, str]:
    """Tags alexp sets on each experiment it logs to: a training experiment, kappa first, the saved view."""
    return {"mlflow.experimentKind": "custom_model_development",
            "mlflow.experiment.primaryMetric.name": "kappa",
            f"mlflow.sharedViewState.{SHARE_KEY}": json.dumps(view_state(), separators=(",", ":"))}


def url(base: str, experiment_id: str) -> str:
    """The page of an experiment's runs in the chart view with alexp's saved view."""
    return (f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
            f"&compareRunsMode=CHART&viewStateShareKey={SHARE_KEY}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="alexp ui", description="Start the MLflow UI for a store on this machine "
                                "(127.0.0.1 only) and print the address of an experiment's kappa curves.")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
                   help="MLflow store (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--experiment", default="alexp", help="the experiment to open (default: alexp)")
    p.add_argument("--port", type=int, default=5000,
                   help="port (default 5000; the next free one is taken when it is in use)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[2:] if argv is None else argv)
    from alexp import tracking

    uri = args.tracking_uri
    if uri.startswith(("http://", "https://")):
        raise AlexpError(f"--tracking-uri {uri} is an MLflow server already: open it in a browser "
                         "(alexp ui serves a local store: sqlite:///... or a folder)")
    if not tracking.store_exists(uri):
        raise AlexpError(f"no MLflow store at {uri}; run alexp first, or pass --tracking-uri (default: "
                         "MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working folder)")
    port = free_port(args.port)
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # starts in seconds, not half a minute
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]
    print(f"alexp ui: starting the MLflow UI for {uri} on {base} ...", flush=True)
    errors = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a full pipe would block the server
    for sig in (signal.SIGTERM, signal.SIGHUP):  # stopped or its terminal closed: stop the server too
        signal.signal(sig, _interrupt)
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors, text=True)
    try:
        experiment_id = tracking.experiment_id(uri, args.experiment)  # while the server starts
        tracking.init_store(uri, args.experiment)  # the saved view, for an experiment logged before alexp set it
        wait_until_up(server, base, errors)
        print(f"alexp ui: runs and kappa curves of experiment {args.experiment!r}:\n  {url(base, experiment_id)}")
        reports = tracking.experiment_id(uri, tracking.report_experiment(args.experiment), missing_ok=True)
        if reports is not None:
            print(f"alexp ui: reports (figures and tables as artifacts):\n  {base}/#/experiments/{reports}"
                  "?workflowType=machine_learning")
        print("alexp ui: Ctrl-C stops the server", flush=True)
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def free_port(port: int, tries: int = 20) -> int:
    """`port`, or the next free one above it."""
    for candidate in range(port, port + tries):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
                return candidate
            except OSError:
                continue
    raise AlexpError(f"ports {port}-{port + tries - 1} are all in use; pass --port with a free one")


def wait_until_up(server: subprocess.Popen, base: str, errors, timeout: float = 120) -> None:
    """Return once the server answers /health; raise with its last error line if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            errors.seek(0)
            lines = [line for line in errors.read().splitlines() if line.strip()]
            raise AlexpError(f"the MLflow server exited: {lines[-1] if lines else f'exit code {server.returncode}'}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AlexpError(f"the MLflow server did not answer at {base} within {timeout:.0f} s")
