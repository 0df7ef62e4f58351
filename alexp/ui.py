"""`alexp ui`: the MLflow UI for this folder's store, on 127.0.0.1, opened on an experiment's kappa curves, every
run or grouped by strategy (alexp.mlflow_view says how the pages are chosen and what they show; alexp.ui_app is
the server, MLflow's with the page that gives each strategy's group its runs' colour).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from alexp import AlexpError
from alexp.mlflow_view import GROUPED_KEY, SHARE_KEY, opener
from alexp.secrets import environment, redact


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="alexp ui", description="Start the MLflow UI for a store on this machine "
                                "(127.0.0.1 only) and print the address of an experiment's kappa curves.")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
                   help="MLflow store (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--experiment", default="alexp", help="the experiment to open (default: alexp)")
    p.add_argument("--port", type=int, default=5000,
                   help="port (default 5000; the next free one is taken when it is in use)")
    args = p.parse_args(argv)
    if not 1 <= args.port <= 65535:
        p.error(f"--port must be a port number from 1 to 65535, got {args.port}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[2:] if argv is None else argv)
    from alexp import tracking

    uri = args.tracking_uri
    if uri.startswith(("http://", "https://")):
        raise AlexpError(f"--tracking-uri {redact(uri)} is an MLflow server already: open it in a browser "
                         "(alexp ui serves a local store: sqlite:///... or a folder)")
    if not tracking.store_exists(uri):
        raise AlexpError(f"no MLflow store at {redact(uri)}; run alexp first, or pass --tracking-uri (default: "
                         "MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working folder)")
    port = free_port(args.port)
    base = f"http://127.0.0.1:{port}"
    env = {**environment(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # starts in seconds, not half a minute
           "ALEXP_UI_PID": str(os.getpid())}  # the server ends with alexp ui, also after a kill -9
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--app-name", "alexp"]
    print(f"alexp ui: starting the MLflow UI for {redact(uri)} on {base} ...", flush=True)
    errors = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a full pipe would block the server
    for sig in (signal.SIGTERM, signal.SIGHUP):  # stopped or its terminal closed: stop the server too
        signal.signal(sig, _interrupt)
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors, text=True)
    try:
        experiment_id = tracking.experiment_id(uri, args.experiment)  # while the server starts
        tracking.init_store(uri, args.experiment)  # the saved views, for an experiment logged before alexp set them
        strategies = tracking.strategies(uri, experiment_id)
        wait_until_up(server, base, errors)
        print(f"alexp ui: kappa curves of experiment {args.experiment!r}, every run:\n"
              f"  {opener(base, experiment_id, SHARE_KEY, strategies)}\n"
              "alexp ui: the same, one line per strategy (its mean, in a band from its lowest to its highest run):\n"
              f"  {opener(base, experiment_id, GROUPED_KEY, strategies)}")
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
