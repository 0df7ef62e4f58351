"""The MLflow server `alexp ui` runs: MLflow's own app with one page more, `/alexp/open`.

MLflow keeps two things alexp needs in the browser's local storage, out of a server's reach: the colour of a group
of runs (a view grouped by `acquisition`), and the layout a page opens in when its address does not name one
(GenAI unless the user switched). `/alexp/open?experiment=<id>&view=<saved view>&strategies=<a,b,...>` writes
each strategy's colour there (the colour of its runs; one the user picked in the UI is kept) and the
model-training layout (so a run page or the compare page opened from the runs table stays in it; the sidebar's
switch changes it back), then goes on to the saved view.
Registered as the MLflow app `alexp` (pyproject's `mlflow.app` entry point): `mlflow server --app-name alexp`.
"""

from __future__ import annotations

import html
import json
import os
import re

from flask import request
from mlflow.server import app as flask_app
from mlflow.server.fastapi_app import app

from alexp.lifeline import die_with
from alexp.mlflow_view import COLORS, GROUPED_KEY, SHARE_KEY, group_colors, url

__all__ = ["app"]

if os.environ.get("ALEXP_UI_PID"):  # started by `alexp ui`: ends with it, also after a kill -9 (alexp.lifeline)
    die_with(int(os.environ["ALEXP_UI_PID"]), code=0)

PAGE = """<!doctype html><meta charset="utf-8"><title>alexp: opening the MLflow UI</title>
<script>
const key = "experimentRunColors", colors = JSON.parse(localStorage.getItem(key) || "{{}}");
for (const [group, color] of Object.entries({colors})) if (!(group in colors)) colors[group] = color;
localStorage.setItem(key, JSON.stringify(colors));
localStorage.setItem("mlflow.workflowType_v1", JSON.stringify("machine_learning"));
location.replace({target});
</script>
<p>Opening <a href="{href}">the runs of experiment {experiment}</a> ...</p>
"""


@flask_app.route("/alexp/open")
def open_view():
    experiment = request.args.get("experiment", "")
    view = request.args.get("view", SHARE_KEY)
    strategies = [s for s in request.args.get("strategies", "").split(",") if s]
    if not re.fullmatch(r"\d+", experiment) or view not in (SHARE_KEY, GROUPED_KEY) or not all(
            re.fullmatch(r"[\w.-]+", s) for s in strategies):
        return (f"alexp: expected /alexp/open?experiment=<id>&view={SHARE_KEY}|{GROUPED_KEY}&strategies=<name,...>"
                " (names of letters, digits, _ . -)\n", 400, {"Content-Type": "text/plain; charset=utf-8"})
    target = url("", experiment, view)
    return PAGE.format(colors=json.dumps(group_colors([*COLORS, *strategies])), target=json.dumps(target),
                       href=html.escape(target), experiment=experiment)
